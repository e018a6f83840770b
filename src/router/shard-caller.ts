// Calls to shards for one router: each logical call is a ShardCall (shard-call.ts: retries on another
// replica, a hedge, the first answer wins); this file holds what calls share: the options, each
// shard's recent latencies (the hedge delay), and how one attempt travels to one replica.
import * as grpc from '@grpc/grpc-js';

import { CanopyError } from '../wire/canopy-error';
import type {
  BatchSearchRequest,
  BatchSearchResponse,
  DescribeIndexRequest,
  GetItemRequest,
  GetItemResponse,
  IndexInfo,
} from '../wire/contract';
import { SEARCH_SERVICE_NAME } from '../wire/contract';
import { ATTR_ATTEMPT, ATTR_INDEX, ATTR_OUTCOME, ATTR_REPLICA, ATTR_SHARD, type AttemptKind } from '../telemetry/attributes';
import {
  type CallParent,
  endClientCallSpan,
  injectTraceCarrier,
  injectTraceContext,
  type SpanScope,
  startClientCallSpan,
} from '../telemetry/grpc-context';
import { canopyInstruments, isMetricsEnabled } from '../telemetry/instruments';
import { isTracingEnabled } from '../telemetry/spans';
import type { BackendPool, Replica } from './backend-pool';
import { awaitConnected, isConnected } from './connect-wait';
import { LatencyWindow } from './latency-window';
import { chooseReplica } from './replica-choice';
import { DEFAULT_INITIAL_HEDGE_DELAY_MS } from './router-defaults';
import { type Attempt, ShardCall } from './shard-call';

export const DEFAULT_HEDGE_QUANTILE = 0.95;
/** Never hedge sooner than this, however fast the shard has been. */
export const DEFAULT_HEDGE_MIN_DELAY_MS = 2;
/** About one capped reconnect backoff (backend-pool's channel options) plus a dial. */
export const DEFAULT_CONNECT_WAIT_MS = 1_500;

export interface ShardCallerOptions {
  /** False turns hedging off (retries stay). */
  readonly hedging?: boolean;
  readonly hedgeQuantile?: number;
  readonly hedgeMinDelayMs?: number;
  /** The hedge delay before the shard's latency quantile is known. */
  readonly initialHedgeDelayMs?: number;
  /** When no replica of a shard is connected, how long a call waits for one to connect (at most half its time left). */
  readonly connectWaitMs?: number;
}

/** The backend methods a router calls, with their request and response types. */
export interface ShardMethods {
  BatchSearch: { request: BatchSearchRequest; response: BatchSearchResponse };
  GetItem: { request: GetItemRequest; response: GetItemResponse };
  DescribeIndex: { request: DescribeIndexRequest; response: IndexInfo };
}
export type ShardMethod = keyof ShardMethods;

/**
 * How a call travels: its own unary RPC, or (BatchSearch only) a message on
 * the replica's long-lived BatchSearchStream, several times cheaper in grpc-js.
 */
export type Transport = 'unary' | 'stream';

export interface ShardCallStats {
  attempts: number;
  retries: number;
  hedges: number;
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response?: Res) => void,
) => grpc.ClientUnaryCall;

export class ShardCaller {
  readonly stats: ShardCallStats = { attempts: 0, retries: 0, hedges: 0 };
  private readonly hedging: boolean;
  private readonly hedgeQuantile: number;
  private readonly hedgeMinDelayMs: number;
  private readonly initialHedgeDelayMs: number;
  private readonly connectWaitMs: number;
  private readonly latency = new Map<number, LatencyWindow>();
  private readonly noReplicaErrors = new Map<number, CanopyError>();

  constructor(
    private readonly pool: BackendPool,
    options: ShardCallerOptions = {},
  ) {
    this.hedging = options.hedging ?? true;
    this.hedgeQuantile = options.hedgeQuantile ?? DEFAULT_HEDGE_QUANTILE;
    this.hedgeMinDelayMs = options.hedgeMinDelayMs ?? DEFAULT_HEDGE_MIN_DELAY_MS;
    this.initialHedgeDelayMs = options.initialHedgeDelayMs ?? DEFAULT_INITIAL_HEDGE_DELAY_MS;
    this.connectWaitMs = options.connectWaitMs ?? DEFAULT_CONNECT_WAIT_MS;
  }

  /**
   * Calls `method` on one replica of `shard` (retrying/hedging as above),
   * before `deadlineMs` (epoch ms). Each attempt gets a client span under
   * `parent` (when traced), marked first, retry or hedge.
   */
  call<M extends ShardMethod>(
    shard: number,
    method: M,
    request: ShardMethods[M]['request'],
    deadlineMs: number,
    transport: Transport = 'unary',
    parent?: CallParent,
  ): Promise<ShardMethods[M]['response']> {
    const replicas = this.pool.replicasOf(shard);
    if (replicas.length > 0 && !replicas.some(isConnected)) {
      // Nothing connected (a router started before its shards, or every replica restarted): dial now and
      // give the dials a moment, rather than failing on channels that would wait out grpc-js's backoff.
      return awaitConnected(replicas, this.connectWaitUntil(deadlineMs)).then(() => this.callNow(shard, method, request, deadlineMs, transport, parent, true));
    }
    return this.callNow(shard, method, request, deadlineMs, transport, parent, false);
  }

  /** How long to let an unconnected replica dial: the connect wait, and at most half the time left. */
  private connectWaitUntil(deadlineMs: number): number {
    const nowMs = Date.now();
    return Math.min(nowMs + this.connectWaitMs, nowMs + Math.max(0, deadlineMs - nowMs) / 2);
  }

  private callNow<M extends ShardMethod>(
    shard: number,
    method: M,
    request: ShardMethods[M]['request'],
    deadlineMs: number,
    transport: Transport,
    parent: CallParent | undefined,
    waitedForConnect: boolean,
  ): Promise<ShardMethods[M]['response']> {
    const replicas = this.pool.replicasOf(shard);
    const first = chooseReplica(replicas);
    if (first === undefined) return Promise.reject(this.noReplicaError(shard));
    const call = new ShardCall<ShardMethods[M]['response']>({
      shard,
      replicas,
      deadlineMs,
      hedgeDelayMs: this.hedgeDelayMs(shard, replicas.length),
      send: (replica, kind) => this.attempt<M>(replica, method, request, deadlineMs, transport, kind, parent),
      connect: (replica) => awaitConnected([replica], this.connectWaitUntil(deadlineMs)),
      waitedForConnect,
      onSecond: (kind) => this.countSecond(request.index, shard, kind),
      onAnswer: (latencyMs) => this.windowOf(shard).record(latencyMs),
    });
    return call.run(first);
  }

  private countSecond(index: string, shard: number, kind: 'retry' | 'hedge'): void {
    this.stats[kind === 'retry' ? 'retries' : 'hedges']++;
    if (!isMetricsEnabled()) return;
    const instruments = canopyInstruments();
    (kind === 'retry' ? instruments.retries : instruments.hedges).add(1, { [ATTR_INDEX]: index, [ATTR_SHARD]: shard });
  }

  /** One call to one given replica, no retry (DescribeIndex asks every replica). */
  callReplica<M extends ShardMethod>(
    replica: Replica,
    method: M,
    request: ShardMethods[M]['request'],
    deadlineMs: number,
    parent?: CallParent,
  ): Promise<ShardMethods[M]['response']> {
    return this.attempt<M>(replica, method, request, deadlineMs, 'unary', 'first', parent).promise.catch((err: CanopyError) => {
      throw new CanopyError(err.code, `shard ${replica.shard} (${replica.address}): ${err.message}`, { cause: err, retryable: err.retryable });
    });
  }

  /**
   * One error object per shard: a router serving while a shard has no replica (or told only some shards,
   * with min_shards) fails that shard on every query, and a fresh Error's stack trace would cost more than the query.
   */
  private noReplicaError(shard: number): CanopyError {
    let err = this.noReplicaErrors.get(shard);
    if (err === undefined) {
      err = CanopyError.unavailable(`shard ${shard} has no replica`);
      this.noReplicaErrors.set(shard, err);
    }
    return err;
  }

  private hedgeDelayMs(shard: number, replicaCount: number): number | undefined {
    if (!this.hedging || replicaCount < 2) return undefined;
    const p = this.windowOf(shard).valueMs();
    return p === undefined ? this.initialHedgeDelayMs : Math.max(p, this.hedgeMinDelayMs);
  }

  private windowOf(shard: number): LatencyWindow {
    let window = this.latency.get(shard);
    if (window === undefined) {
      window = new LatencyWindow(this.hedgeQuantile);
      this.latency.set(shard, window);
    }
    return window;
  }

  private attempt<M extends ShardMethod>(
    replica: Replica,
    method: M,
    request: ShardMethods[M]['request'],
    deadlineMs: number,
    transport: Transport,
    kind: AttemptKind,
    parent: CallParent | undefined,
  ): Attempt<ShardMethods[M]['response']> {
    type Res = ShardMethods[M]['response'];
    this.stats.attempts++;
    const ticket = replica.sent();
    let cancelled = false;
    const viaStream = transport === 'stream' && method === 'BatchSearch';
    const span = isTracingEnabled()
      ? startClientCallSpan(
          `${SEARCH_SERVICE_NAME}/${viaStream ? 'BatchSearchStream' : method}`,
          { [ATTR_SHARD]: replica.shard, [ATTR_ATTEMPT]: kind, [ATTR_REPLICA]: replica.address },
          parent,
        )
      : undefined;
    const startedMs = performance.now();
    const sent = viaStream
      ? replica.stream.send(request as BatchSearchRequest, deadlineMs, span === undefined ? undefined : injectTraceCarrier(span))
      : this.unary<Res>(replica, method, request, deadlineMs, span);
    const promise = sent.promise.then(
      (response) => {
        replica.answered(ticket);
        endClientCallSpan(span, {});
        if (isMetricsEnabled()) recordAttempt(request.index, replica.shard, kind, startedMs, 'ok');
        return response as Res;
      },
      (err: unknown) => {
        const error = CanopyError.from(err);
        endClientCallSpan(span, cancelled ? { cancelled } : { error });
        if (isMetricsEnabled()) recordAttempt(request.index, replica.shard, kind, startedMs, (grpc.status[error.code] ?? 'unknown').toLowerCase());
        // Given up, the call stays counted (abandoned, below). A replica shedding load is healthy: ejecting
        // it would pile its share onto the others.
        if (!cancelled) replica.failed(ticket, error.retryable && error.code !== grpc.status.RESOURCE_EXHAUSTED ? error.message : undefined);
        throw error;
      },
    );
    // A cancelled attempt's rejection is expected and nobody waits for it.
    promise.catch(() => undefined);
    return {
      replica,
      startedMs,
      promise,
      cancel: () => {
        if (cancelled) return;
        cancelled = true;
        replica.abandoned(ticket, deadlineMs);
        sent.cancel();
      },
    };
  }

  private unary<Res>(
    replica: Replica,
    method: string,
    request: unknown,
    deadlineMs: number,
    span: SpanScope | undefined,
  ): { promise: Promise<Res>; cancel(): void } {
    let call: grpc.ClientUnaryCall | undefined;
    const metadata = new grpc.Metadata();
    if (span !== undefined) injectTraceContext(metadata, span.context);
    const promise = new Promise<Res>((resolve, reject) => {
      const fn = (replica.client as unknown as Record<string, UnaryMethod<unknown, Res>>)[method]!;
      call = fn.call(replica.client, request, metadata, { deadline: deadlineMs }, (err, response) => {
        if (err === null && response !== undefined) resolve(response);
        else reject(err);
      });
    });
    return { promise, cancel: () => call?.cancel() };
  }
}

/** One attempt in canopy.router.shard_call.duration_seconds, by index, shard, outcome (`ok` or the status name) and kind. */
function recordAttempt(index: string, shard: number, kind: AttemptKind, startedMs: number, outcome: string): void {
  const attributes = { [ATTR_INDEX]: index, [ATTR_SHARD]: shard, [ATTR_OUTCOME]: outcome, [ATTR_ATTEMPT]: kind };
  canopyInstruments().shardCallDuration.record((performance.now() - startedMs) / 1000, attributes);
}
