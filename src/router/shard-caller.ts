// One logical call to a shard: picks a replica, retries once on another one
// when the first fails in a retryable way, and sends a hedged copy to a second
// replica when the first is slower than that shard's recent p95. At most two
// attempts are made; the first answer wins and the other attempt is cancelled.
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
import { LatencyWindow } from './latency-window';
import { chooseReplica } from './replica-choice';

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

interface Attempt<Res> {
  readonly replica: Replica;
  readonly promise: Promise<Res>;
  cancel(): void;
}

export class ShardCaller {
  readonly stats: ShardCallStats = { attempts: 0, retries: 0, hedges: 0 };
  private readonly hedging: boolean;
  private readonly hedgeQuantile: number;
  private readonly hedgeMinDelayMs: number;
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
      return awaitConnected(replicas, this.connectWaitUntil(deadlineMs)).then(() => this.callNow(shard, method, request, deadlineMs, transport, parent));
    }
    return this.callNow(shard, method, request, deadlineMs, transport, parent);
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
  ): Promise<ShardMethods[M]['response']> {
    type Res = ShardMethods[M]['response'];
    const replicas = this.pool.replicasOf(shard);
    const first = chooseReplica(replicas);
    if (first === undefined) return Promise.reject(this.noReplicaError(shard));
    return new Promise<Res>((resolve, reject) => {
      const attempts: Attempt<Res>[] = [];
      let settled = false;
      let failures = 0;
      let lastError: CanopyError | undefined;
      let hedgeTimer: NodeJS.Timeout | undefined;

      const finish = (): void => {
        settled = true;
        if (hedgeTimer !== undefined) clearTimeout(hedgeTimer);
      };
      // An overloaded replica (RESOURCE_EXHAUSTED) is not asked again: another one may have room, it has none.
      let secondLaunched = false;
      const launchSecond = (why: 'retry' | 'hedge', overloaded = false): boolean => {
        if (settled || secondLaunched || attempts.length >= 2) return false;
        const second = chooseReplica(replicas, new Set([first])) ?? (why === 'retry' && !overloaded ? first : undefined);
        if (second === undefined || second.closed) return false;
        this.stats[why === 'retry' ? 'retries' : 'hedges']++;
        if (isMetricsEnabled()) {
          const instruments = canopyInstruments();
          (why === 'retry' ? instruments.retries : instruments.hedges).add(1, { [ATTR_INDEX]: request.index, [ATTR_SHARD]: shard });
        }
        secondLaunched = true;
        if (why === 'retry' && !isConnected(second)) {
          // The retry's replica is not connected (say every replica this router used just died and this one
          // started meanwhile): let it dial, within the connect wait and half the time left, rather than
          // fail at once on a channel in backoff.
          void awaitConnected([second], this.connectWaitUntil(deadlineMs)).then(() => {
            if (!settled) start(second, why);
          });
          return true;
        }
        start(second, why);
        return true;
      };
      const start = (replica: Replica, kind: AttemptKind): void => {
        const attempt = this.attempt<M>(replica, method, request, deadlineMs, transport, kind, parent);
        attempts.push(attempt);
        const startedMs = performance.now();
        attempt.promise.then(
          (response) => {
            if (settled) return;
            finish();
            this.windowOf(shard).record(performance.now() - startedMs);
            for (const other of attempts) if (other !== attempt) other.cancel();
            resolve(response);
          },
          (err: CanopyError) => {
            if (settled) return;
            failures++;
            lastError = err;
            if (err.retryable && launchSecond('retry', err.code === grpc.status.RESOURCE_EXHAUSTED)) return;
            if (failures >= attempts.length) {
              finish();
              reject(lastError);
            }
          },
        );
      };

      start(first, 'first');
      const hedgeDelayMs = this.hedgeDelayMs(shard, replicas.length);
      if (hedgeDelayMs !== undefined && Date.now() + hedgeDelayMs < deadlineMs) {
        hedgeTimer = setTimeout(() => launchSecond('hedge'), hedgeDelayMs);
        hedgeTimer.unref();
      }
    });
  }

  /** One call to one given replica, no retry (DescribeIndex asks every replica). */
  callReplica<M extends ShardMethod>(
    replica: Replica,
    method: M,
    request: ShardMethods[M]['request'],
    deadlineMs: number,
    parent?: CallParent,
  ): Promise<ShardMethods[M]['response']> {
    return this.attempt<M>(replica, method, request, deadlineMs, 'unary', 'first', parent).promise;
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
    return p === undefined ? undefined : Math.max(p, this.hedgeMinDelayMs);
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
    replica.outstanding++;
    let cancelled = false;
    const viaStream = transport === 'stream' && method === 'BatchSearch';
    const span = isTracingEnabled()
      ? startClientCallSpan(
          `${SEARCH_SERVICE_NAME}/${viaStream ? 'BatchSearchStream' : method}`,
          { [ATTR_SHARD]: replica.shard, [ATTR_ATTEMPT]: kind, [ATTR_REPLICA]: replica.address },
          parent,
        )
      : undefined;
    const startedMs = isMetricsEnabled() ? performance.now() : undefined;
    const sent = viaStream
      ? replica.stream.send(request as BatchSearchRequest, deadlineMs, span === undefined ? undefined : injectTraceCarrier(span))
      : this.unary<Res>(replica, method, request, deadlineMs, span);
    const promise = sent.promise.then(
      (response) => {
        replica.outstanding--;
        replica.markAnswered();
        endClientCallSpan(span, {});
        if (startedMs !== undefined) recordAttempt(request.index, replica.shard, kind, startedMs, 'ok');
        return response as Res;
      },
      (err: unknown) => {
        replica.outstanding--;
        const error = CanopyError.from(err);
        endClientCallSpan(span, cancelled ? { cancelled } : { error });
        if (startedMs !== undefined) recordAttempt(request.index, replica.shard, kind, startedMs, (grpc.status[error.code] ?? 'unknown').toLowerCase());
        // A replica shedding load is healthy: ejecting it would pile its share onto the others.
        if (error.retryable && error.code !== grpc.status.RESOURCE_EXHAUSTED && !cancelled) replica.markFailed(error.message);
        throw new CanopyError(error.code, `shard ${replica.shard} (${replica.address}): ${error.message}`, {
          cause: err,
          retryable: error.retryable,
        });
      },
    );
    // A cancelled attempt's rejection is expected and nobody waits for it.
    promise.catch(() => undefined);
    return {
      replica,
      promise,
      cancel: () => {
        if (cancelled) return;
        cancelled = true;
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

function isConnected(replica: Replica): boolean {
  return !replica.closed && replica.client.getChannel().getConnectivityState(false) === grpc.connectivityState.READY;
}

/**
 * Asks every replica's channel to connect (an idle one dials; one in backoff
 * dials when its backoff ends) and resolves once one is READY or at `untilMs`.
 */
function awaitConnected(replicas: readonly Replica[], untilMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(finish, Math.max(0, untilMs - Date.now()));
    const watch = (channel: ReturnType<grpc.Client["getChannel"]>): void => {
      if (done) return;
      const state = channel.getConnectivityState(true);
      if (state === grpc.connectivityState.READY) return finish();
      if (state === grpc.connectivityState.SHUTDOWN) return;
      channel.watchConnectivityState(state, untilMs, (err) => {
        if (err === undefined) watch(channel);
      });
    };
    for (const r of replicas) if (!r.closed) watch(r.client.getChannel());
  });
}
