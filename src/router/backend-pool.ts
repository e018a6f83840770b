// The router's backends: for each shard, the replicas that serve it, each with
// its own gRPC channel, its calls in flight and its health. The set can change
// at run time (`setReplicas`), driven by the registry's membership.
//
// Outlier detection, as Envoy does it: a replica is ejected from first choice
// when a call to it fails in a way that blames the replica, when hedges to
// other replicas won against it several times in a row, or while its oldest
// call in flight is older than the stall bound. An ejection lasts
// `ejectBaseMs`, doubling with each ejection in a row up to `ejectMaxMs`; then
// the replica gets calls again, which probe it: an answer readmits it, another
// failure or lost race ejects it for longer.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';

import { searchClientConstructor } from '../wire/contract';
import { InFlight } from './in-flight';
import type { ReplicaHealth, ReplicaLoad } from './replica-choice';
import { ReplicaStream } from './replica-stream';

export const DEFAULT_EJECT_BASE_MS = 250;
export const DEFAULT_EJECT_MAX_MS = 8_000;
/** Hedges won against a replica in a row, with no answer from it between, before it is ejected. */
export const DEFAULT_EJECT_AFTER_LOST_RACES = 3;
/** A replica whose oldest call in flight is older than this has stopped answering (a search takes milliseconds). */
export const DEFAULT_STALL_MS = 1_000;
export const DEFAULT_BACKEND_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const RECONNECT_BACKOFF_INITIAL_MS = 250;
const RECONNECT_BACKOFF_MAX_MS = 1_000;

export interface BackendPoolOptions {
  /** First ejection after a failure; doubles with each consecutive failure. */
  readonly ejectBaseMs?: number;
  readonly ejectMaxMs?: number;
  readonly ejectAfterLostRaces?: number;
  readonly stallMs?: number;
  readonly maxMessageBytes?: number;
  /** How replica channels dial (TLS or not; see Router's `backendTls`); omitted: plaintext. */
  readonly backendCredentials?: grpc.ChannelCredentials;
}

/** `ejected` iff the replica failed recently (`failures` ejections in a row); it is probed again after `untilMs`. */
type ReplicaState =
  | { readonly kind: 'ready' }
  | { readonly kind: 'ejected'; readonly untilMs: number; readonly failures: number }
  | { readonly kind: 'closed' };

export class Replica implements ReplicaLoad {
  /** Carries coalesced BatchSearch calls; opened on first use. */
  readonly stream: ReplicaStream;
  private readonly inFlight = new InFlight();
  private state: ReplicaState = { kind: 'ready' };
  private lostRaces = 0;

  constructor(
    readonly shard: number,
    readonly address: string,
    readonly client: grpc.Client,
    private readonly pool: BackendPool,
  ) {
    this.stream = new ReplicaStream(client, address);
  }

  get outstanding(): number {
    return this.inFlight.count(Date.now());
  }

  get health(): ReplicaHealth {
    if (this.state.kind === 'closed') return 'dead';
    const connectivity = this.client.getChannel().getConnectivityState(false);
    if (connectivity === grpc.connectivityState.TRANSIENT_FAILURE || connectivity === grpc.connectivityState.SHUTDOWN) return 'dead';
    const nowMs = Date.now();
    if (this.state.kind === 'ejected' && this.state.untilMs > nowMs) return 'ejected';
    const oldest = this.inFlight.oldestSentMs(nowMs);
    return oldest !== undefined && nowMs - oldest > this.pool.stallMs ? 'ejected' : 'healthy';
  }

  get closed(): boolean {
    return this.state.kind === 'closed';
  }

  /** Counts a call sent to it; the ticket goes to `answered`, `failed` or `abandoned`. */
  sent(): number {
    return this.inFlight.begin(Date.now());
  }

  answered(ticket: number): void {
    this.inFlight.end(ticket);
    this.inFlight.releaseAbandoned();
    this.lostRaces = 0;
    if (this.state.kind === 'ejected') this.transition({ kind: 'ready' }, 'answered');
  }

  /** The call failed; `blame` says why the replica (not the request, not load) is at fault, if it is. */
  failed(ticket: number, blame?: string): void {
    this.inFlight.end(ticket);
    if (blame !== undefined) this.eject(blame);
  }

  /** The router gave up on the call (another replica answered first); it counts until `deadlineMs`. */
  abandoned(ticket: number, deadlineMs: number): void {
    this.inFlight.abandon(ticket, deadlineMs);
  }

  /** Another replica answered a call this one had longer: after a few in a row, this one is ejected. */
  lostRace(): void {
    if (++this.lostRaces >= this.pool.ejectAfterLostRaces) this.eject(`${this.lostRaces} hedges in a row won against it`);
  }

  close(): void {
    if (this.state.kind === 'closed') return;
    this.transition({ kind: 'closed' }, 'removed');
    this.stream.close();
    this.client.close();
  }

  private eject(reason: string): void {
    if (this.state.kind === 'closed') return;
    const ejections = this.state.kind === 'ejected' ? this.state.failures + 1 : 1;
    const ms = Math.min(this.pool.ejectBaseMs * 2 ** (ejections - 1), this.pool.ejectMaxMs);
    this.transition({ kind: 'ejected', untilMs: Date.now() + ms, failures: ejections }, reason);
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
  readonly ejectAfterLostRaces: number;
  readonly stallMs: number;
  private readonly channelOptions: grpc.ChannelOptions;
  private readonly credentials: grpc.ChannelCredentials;
  private readonly shards = new Map<number, Replica[]>();

  constructor(
    options: BackendPoolOptions,
    readonly log: Logger,
  ) {
    this.ejectBaseMs = options.ejectBaseMs ?? DEFAULT_EJECT_BASE_MS;
    this.ejectMaxMs = options.ejectMaxMs ?? DEFAULT_EJECT_MAX_MS;
    this.ejectAfterLostRaces = options.ejectAfterLostRaces ?? DEFAULT_EJECT_AFTER_LOST_RACES;
    this.stallMs = options.stallMs ?? DEFAULT_STALL_MS;
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
