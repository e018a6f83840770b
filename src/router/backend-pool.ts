// The router's backends: for each shard, the replicas that serve it, each with
// its own gRPC channel and load count. The set can change at run time
// (`setReplicas`), so a membership watcher can drive it later.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';

import { searchClientConstructor } from '../wire/contract';
import type { ReplicaLoad } from './replica-choice';
import { ReplicaStream } from './replica-stream';

export const DEFAULT_EJECT_BASE_MS = 250;
export const DEFAULT_EJECT_MAX_MS = 8_000;
export const DEFAULT_BACKEND_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const RECONNECT_BACKOFF_INITIAL_MS = 250;
const RECONNECT_BACKOFF_MAX_MS = 1_000;

export interface BackendPoolOptions {
  /** First ejection after a failure; doubles with each consecutive failure. */
  readonly ejectBaseMs?: number;
  readonly ejectMaxMs?: number;
  readonly maxMessageBytes?: number;
  /** How replica channels dial (TLS or not; see Router's `backendTls`); omitted: plaintext. */
  readonly backendCredentials?: grpc.ChannelCredentials;
}

/** `ejected` iff the replica failed recently; it is tried again after `untilMs`. */
type ReplicaState =
  | { readonly kind: 'ready' }
  | { readonly kind: 'ejected'; readonly untilMs: number; readonly failures: number }
  | { readonly kind: 'closed' };

export class Replica implements ReplicaLoad {
  outstanding = 0;
  /** Carries coalesced BatchSearch calls; opened on first use. */
  readonly stream: ReplicaStream;
  private state: ReplicaState = { kind: 'ready' };

  constructor(
    readonly shard: number,
    readonly address: string,
    readonly client: grpc.Client,
    private readonly pool: BackendPool,
  ) {
    this.stream = new ReplicaStream(client, address);
  }

  get healthy(): boolean {
    if (this.state.kind === 'closed') return false;
    if (this.state.kind === 'ejected' && this.state.untilMs > Date.now()) return false;
    return this.client.getChannel().getConnectivityState(false) !== grpc.connectivityState.TRANSIENT_FAILURE;
  }

  get closed(): boolean {
    return this.state.kind === 'closed';
  }

  /** A call to it failed in a way that says the replica (not the request) is at fault. */
  markFailed(reason: string): void {
    if (this.state.kind === 'closed') return;
    const failures = this.state.kind === 'ejected' ? this.state.failures + 1 : 1;
    const ms = Math.min(this.pool.ejectBaseMs * 2 ** (failures - 1), this.pool.ejectMaxMs);
    this.transition({ kind: 'ejected', untilMs: Date.now() + ms, failures }, reason);
  }

  markAnswered(): void {
    if (this.state.kind === 'ejected') this.transition({ kind: 'ready' }, 'answered');
  }

  close(): void {
    if (this.state.kind === 'closed') return;
    this.transition({ kind: 'closed' }, 'removed');
    this.stream.close();
    this.client.close();
  }

  private transition(next: ReplicaState, reason: string): void {
    const from = this.state.kind;
    this.state = next;
    if (from !== next.kind || next.kind === 'ejected') {
      this.pool.log.info({ shard: this.shard, address: this.address, from, to: next.kind, reason }, 'replica state');
    }
  }
}

export class BackendPool {
  readonly ejectBaseMs: number;
  readonly ejectMaxMs: number;
  private readonly channelOptions: grpc.ChannelOptions;
  private readonly credentials: grpc.ChannelCredentials;
  private readonly shards = new Map<number, Replica[]>();

  constructor(
    options: BackendPoolOptions,
    readonly log: Logger,
  ) {
    this.ejectBaseMs = options.ejectBaseMs ?? DEFAULT_EJECT_BASE_MS;
    this.ejectMaxMs = options.ejectMaxMs ?? DEFAULT_EJECT_MAX_MS;
    const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_BACKEND_MAX_MESSAGE_BYTES;
    this.credentials = options.backendCredentials ?? grpc.credentials.createInsecure();
    this.channelOptions = {
      'grpc.enable_channelz': 0,
      'grpc.max_receive_message_length': maxMessageBytes,
      'grpc.max_send_message_length': maxMessageBytes,
      // Retries are the router's own (on another replica); grpc-js's would only add per-call cost.
      'grpc.enable_retries': 0,
      // Each replica gets its own connection even when two routers share a process.
      'grpc.use_local_subchannel_pool': 1,
      // grpc-js backs off up to 120 s between dials: a replica that came back (or came up after the
      // router) would fail calls that long. Dialling a down replica each second is cheap.
      'grpc.initial_reconnect_backoff_ms': RECONNECT_BACKOFF_INITIAL_MS,
      'grpc.max_reconnect_backoff_ms': RECONNECT_BACKOFF_MAX_MS,
    };
  }

  /** Replaces the replicas of `shard`: keeps known addresses, connects new ones, closes removed ones. */
  setReplicas(shard: number, addresses: readonly string[]): void {
    const current = this.shards.get(shard) ?? [];
    const wanted = new Set(addresses);
    const kept = current.filter((r) => wanted.has(r.address));
    for (const r of current) if (!wanted.has(r.address)) r.close();
    const known = new Set(kept.map((r) => r.address));
    const Client = searchClientConstructor();
    for (const address of wanted) {
      if (known.has(address)) continue;
      const client = new Client(address, this.credentials, this.channelOptions);
      kept.push(new Replica(shard, address, client, this));
    }
    if (kept.length === 0) this.shards.delete(shard);
    else this.shards.set(shard, kept);
  }

  replicasOf(shard: number): readonly Replica[] {
    return this.shards.get(shard) ?? [];
  }

  shardNumbers(): number[] {
    return [...this.shards.keys()].sort((a, b) => a - b);
  }

  close(): void {
    for (const replicas of this.shards.values()) for (const r of replicas) r.close();
    this.shards.clear();
  }
}
