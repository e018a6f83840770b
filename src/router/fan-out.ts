// Sending queries to every shard and merging what comes back: one replica per
// shard (through that shard's coalescer), the global top k by the index's
// order, and the rule for partial answers: answer once `min_shards` shards
// have answered and the rest have failed or the deadline is near; otherwise
// fail naming the missing shards: RESOURCE_EXHAUSTED when a shard refused on
// every replica, else UNAVAILABLE or DEADLINE_EXCEEDED.
import * as grpc from '@grpc/grpc-js';
import type { Context } from '@opentelemetry/api';

import { CanopyError } from '../wire/canopy-error';
import type { SearchRequest, SearchResponse } from '../wire/contract';
import { neighborComparator } from '../wire/neighbor-order';
import type { BackendPool } from './backend-pool';
import type { SendBatch } from './coalescer';
import { Coalescer, DEFAULT_COALESCE_MAX_BATCH_QUERIES, DEFAULT_COALESCE_QUIET_GAP_MS } from './coalescer';
import type { IndexView } from './index-view';
import { DEFAULT_MAX_ROUTER_QUEUE_WAIT_MS, ROUTER_STANDING_INTERVAL_MS } from './router-defaults';
import { mergeTopK } from './merge';
import type { ShardCaller } from './shard-caller';

/**
 * Calls out at once per replica before queries wait for one to return. High
 * enough that queries arriving in the same event-loop turn leave together
 * without waiting (measured: holding at 2 cut throughput when shards, not the
 * router, were the bottleneck), low enough to bound a shard's queue.
 */
export const DEFAULT_MAX_IN_FLIGHT_BATCHES_PER_REPLICA = 8;

export interface FanOutOptions {
  /** False: one unary BatchSearch of one query per query per shard (for comparison). */
  readonly coalesce?: boolean;
  readonly coalesceMaxBatchQueries?: number;
  readonly maxInFlightBatchesPerReplica?: number;
  /** The standing-queue target for queries waiting in the router for a shard call (ms); 0: no bound. */
  readonly maxRouterQueueWaitMs?: number;
}

/** One query as sent to the shards: the vector as float32 bytes, exclusions applied there and here. */
export interface ShardQuery {
  readonly request: SearchRequest;
  readonly k: number;
  readonly excluded: ReadonlySet<string>;
}

export interface FanOutAnswer {
  /** One per query, in order; each without coverage fields (the caller sets them). */
  readonly results: SearchResponse[];
  readonly shardsTotal: number;
  readonly shardsAnswered: number;
  readonly shardsMissing: number[];
}

export class FanOut {
  private readonly coalesce: boolean;
  private readonly maxBatchQueries: number;
  private readonly maxInFlightPerReplica: number;
  private readonly maxRouterQueueWaitMs: number;
  private readonly coalescers = new Map<number, Coalescer>();

  constructor(
    private readonly pool: BackendPool,
    private readonly caller: ShardCaller,
    options: FanOutOptions = {},
  ) {
    this.coalesce = options.coalesce ?? true;
    this.maxBatchQueries = options.coalesceMaxBatchQueries ?? DEFAULT_COALESCE_MAX_BATCH_QUERIES;
    this.maxInFlightPerReplica = options.maxInFlightBatchesPerReplica ?? DEFAULT_MAX_IN_FLIGHT_BATCHES_PER_REPLICA;
    this.maxRouterQueueWaitMs = options.maxRouterQueueWaitMs ?? DEFAULT_MAX_ROUTER_QUEUE_WAIT_MS;
  }

  /**
   * Runs `queries` on every shard of `view` and merges per query. `deadlineMs`
   * (epoch ms) is when the answer must be sent; `minShards` 0 means all.
   * `parent` is the request's span context (undefined while tracing is off).
   */
  search(view: IndexView, queries: readonly ShardQuery[], deadlineMs: number, minShards: number, parent?: Context): Promise<FanOutAnswer> {
    const total = view.shardCount;
    const required = minShards === 0 ? total : Math.min(minShards, total);
    // Refused before any shard gets the queries: a shard whose queries stand in the router would fail the
    // request anyway, and the other shards would search for nothing.
    for (let shard = 0; shard < total; shard++) {
      const refusal = this.coalescerOf(shard).refusal();
      if (refusal !== undefined) return Promise.reject(refusal);
    }
    const perShard: (SearchResponse[] | undefined)[] = new Array(total).fill(undefined);
    const errors = new Map<number, CanopyError>();
    return new Promise<FanOutAnswer>((resolve, reject) => {
      let settled = 0;
      let done = false;
      const decide = (timedOut: boolean): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        const missing = [...perShard.keys()].filter((s) => perShard[s] === undefined);
        const answered = total - missing.length;
        if (answered >= required) {
          resolve({ results: this.merge(view, queries, perShard), shardsTotal: total, shardsAnswered: answered, shardsMissing: missing });
          return;
        }
        // A shard whose own call ran out of time counts as late, like one still pending at the deadline.
        const isLate = (s: number): boolean => !errors.has(s) || errors.get(s)!.code === grpc.status.DEADLINE_EXCEEDED;
        const late = missing.filter(isLate);
        const failed = missing.filter((s) => !isLate(s));
        let summary = `${answered} of ${total} shards answered, ${required} required`;
        if (failed.length > 0) summary += `; failed: ${failed.map((s) => errors.get(s)!.message).join('; ')}`;
        if (late.length > 0) {
          const which = `shard${late.length > 1 ? 's' : ''} ${late.join(', ')}`;
          summary += timedOut || late.some((s) => errors.has(s)) ? `; no answer before the deadline from ${which}` : `; still waiting for ${which}`;
        }
        // A shard whose every replica refused says "back off", not "down": the caller gets that signal,
        // whatever the other shards did.
        const shed = failed.some((s) => errors.get(s)!.code === grpc.status.RESOURCE_EXHAUSTED);
        if (shed) reject(new CanopyError(grpc.status.RESOURCE_EXHAUSTED, summary));
        else if (timedOut || failed.length === 0) reject(CanopyError.deadlineExceeded(summary));
        else reject(CanopyError.unavailable(summary));
      };
      const timer = setTimeout(() => decide(true), Math.max(0, deadlineMs - Date.now()));
      const requests = queries.map((q) => q.request);
      for (let shard = 0; shard < total; shard++) {
        const coalescer = this.coalescerOf(shard);
        coalescer.submit(view.index, view.version, requests, deadlineMs, parent).then(
          (responses) => {
            perShard[shard] = responses;
            if (++settled === total) decide(false);
          },
          (err: unknown) => {
            const error = CanopyError.from(err);
            // The caller's fault, not the shard's: no partial answer hides it.
            if (error.code === grpc.status.INVALID_ARGUMENT && !done) {
              done = true;
              clearTimeout(timer);
              reject(error);
              return;
            }
            errors.set(shard, error);
            if (++settled === total || total - errors.size < required) decide(false);
          },
        );
      }
    });
  }

  private merge(view: IndexView, queries: readonly ShardQuery[], perShard: (SearchResponse[] | undefined)[]): SearchResponse[] {
    const order = neighborComparator(view.metric);
    const answered = perShard.filter((r): r is SearchResponse[] => r !== undefined);
    return queries.map((q, i) => ({
      neighbors: mergeTopK(answered.map((responses) => responses[i]!.neighbors), q.k, order, q.excluded),
      indexVersion: view.version,
      shardsTotal: 0,
      shardsAnswered: 0,
      shardsMissing: [],
    }));
  }

  private coalescerOf(shard: number): Coalescer {
    let coalescer = this.coalescers.get(shard);
    if (coalescer === undefined) {
      // Coalesced calls ride the replica's stream; the comparison mode pays a unary RPC per query.
      const send: SendBatch = (batch, deadlineMs, parent) =>
        this.caller.call(shard, 'BatchSearch', batch, deadlineMs, this.coalesce ? 'stream' : 'unary', parent);
      coalescer = new Coalescer(send, {
        maxBatchQueries: this.coalesce ? this.maxBatchQueries : 1,
        maxInFlightBatches: this.coalesce
          ? () => this.maxInFlightPerReplica * Math.max(1, this.pool.replicasOf(shard).length)
          : () => Number.POSITIVE_INFINITY,
        quietGapMs: DEFAULT_COALESCE_QUIET_GAP_MS,
        shard,
        standing:
          this.maxRouterQueueWaitMs > 0 ? { targetMs: this.maxRouterQueueWaitMs, intervalMs: ROUTER_STANDING_INTERVAL_MS } : undefined,
      });
      this.coalescers.set(shard, coalescer);
    }
    return coalescer;
  }
}
