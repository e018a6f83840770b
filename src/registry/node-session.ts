// A shard node's presence in etcd: its NodeRecord under `nodes/<node-id>`,
// bound to a lease it keeps alive. When the node dies the lease expires and
// the key vanishes; when the node loses etcd (the lease is reported lost) it
// registers again under a new lease as soon as etcd answers, with the latest
// record. Record changes are written in order, last one wins, retried until
// they land.
import { EventEmitter } from 'node:events';

import type { Etcd3, Lease } from 'etcd3';

import type { ClusterKeys } from './keys';
import type { NodeRecord } from './records';

export const DEFAULT_LEASE_TTL_SECONDS = 5;
export const DEFAULT_RETRY_DELAY_MS = 500;

export interface NodeSessionOptions {
  readonly etcd: Etcd3;
  readonly keys: ClusterKeys;
  readonly nodeId: string;
  /** How long etcd keeps the key after the node stops renewing; default 5 s. */
  readonly leaseTtlSeconds?: number;
  /** Pause between attempts while etcd does not answer; default 500 ms. */
  readonly retryDelayMs?: number;
}

export type SessionState = 'unregistered' | 'registered' | 'closed';

export interface NodeSessionEvents {
  state: [state: SessionState, cause?: Error];
}

export class NodeSession extends EventEmitter<NodeSessionEvents> {
  private readonly key: string;
  private readonly leaseTtlSeconds: number;
  private readonly retryDelayMs: number;
  private record: NodeRecord;
  private lease: Lease | undefined;
  private writtenRecord: NodeRecord | undefined;
  private syncing: Promise<void> | undefined;
  private currentState: SessionState = 'unregistered';

  constructor(private readonly options: NodeSessionOptions, initial: NodeRecord) {
    super();
    this.key = options.keys.node(options.nodeId);
    this.leaseTtlSeconds = options.leaseTtlSeconds ?? DEFAULT_LEASE_TTL_SECONDS;
    this.retryDelayMs = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    this.record = initial;
  }

  get state(): SessionState {
    return this.currentState;
  }

  get current(): NodeRecord {
    return this.record;
  }

  /** Starts registering; resolves once the record is in etcd (retrying until then). */
  start(): Promise<void> {
    return this.sync();
  }

  /** Replaces the record; resolves once etcd has it (or the session is closed). */
  update(change: (record: NodeRecord) => NodeRecord): Promise<void> {
    this.record = change(this.record);
    return this.sync();
  }

  /** Revokes the lease, so the key goes at once instead of after the TTL. */
  async close(): Promise<void> {
    this.transition('closed');
    const lease = this.lease;
    this.lease = undefined;
    await this.syncing?.catch(() => undefined);
    if (lease) await lease.revoke().catch(() => undefined);
  }

  /** One writer loop at a time; it runs until etcd holds the latest record. */
  private sync(): Promise<void> {
    this.syncing ??= this.writeUntilCurrent().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  private async writeUntilCurrent(): Promise<void> {
    while (!this.closed && (this.lease === undefined || this.writtenRecord !== this.record)) {
      const record = this.record;
      const lease = this.lease ?? this.grantLease();
      try {
        await lease.put(this.key).value(JSON.stringify(record));
        if (this.closed) return;
        this.lease = lease;
        this.writtenRecord = record;
        this.transition('registered');
      } catch (err) {
        if (lease !== this.lease) lease.release();
        this.dropLease(err as Error);
        await new Promise((resolve) => setTimeout(resolve, this.retryDelayMs).unref());
      }
    }
  }

  private get closed(): boolean {
    return this.currentState === 'closed';
  }

  private grantLease(): Lease {
    const lease = this.options.etcd.lease(this.leaseTtlSeconds);
    lease.on('lost', (err) => {
      if (this.lease !== lease) return;
      this.dropLease(err);
      void this.sync();
    });
    return lease;
  }

  private dropLease(cause: Error): void {
    this.lease?.release();
    this.lease = undefined;
    this.writtenRecord = undefined;
    if (!this.closed) this.transition('unregistered', cause);
  }

  private transition(state: SessionState, cause?: Error): void {
    if (state === this.currentState) return;
    this.currentState = state;
    this.emit('state', state, cause);
  }
}
