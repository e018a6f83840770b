// Coalescing the queries bound for one shard into BatchSearch calls, so the
// router's per-RPC cost does not grow with the query rate. Batching is
// "natural": when no call to the shard is out and the shard has been quiet
// (no query for `quietGapMs`), a request's queries leave at once, in the
// caller's turn; otherwise, while fewer than `maxInFlightBatches` calls are
// out, they leave on the next turn of the event loop, together with whatever
// else arrived in this one; at the limit they wait, and all queries that
// arrived meanwhile leave together when a call returns. Low load thus pays no
// waiting (not even a turn), and high load gets large batches, up to
// `maxBatchQueries`: a larger call would carry the excess to the shard, where
// it waits behind the other calls out and no bound sees it.
//
// That cap makes a router that cannot keep up hold its excess here, and here
// it is bounded: the wait of the oldest query for a call (from submit until its
// call leaves) is tested for a standing queue (standing-queue.ts), and while
// one stands new queries are refused with RESOURCE_EXHAUSTED.
import * as grpc from '@grpc/grpc-js';
import type { Context } from '@opentelemetry/api';

import { CanopyError } from '../wire/canopy-error';
import type { BatchSearchRequest, BatchSearchResponse, SearchRequest, SearchResponse } from '../wire/contract';
import { type CallParent, sharedCallParent } from '../telemetry/grpc-context';
import { isTracingEnabled } from '../telemetry/spans';
import { type StandingBounds, StandingQueue } from './standing-queue';

/**
 * Most queries in one coalesced call. With 8 calls out per replica a router keeps
 * at most 64 queries at a replica: enough to keep its search threads busy, and
 * the excess waits here, where the standing test sees it. At 256 per call a
 * router at twice saturation refused nothing and its answers' median reached 3 s
 * (docs/design.md, "Overload"); small batches also keep a shard's own queue
 * bounds, which scale with the time of one batch's slice, short.
 */
export const DEFAULT_COALESCE_MAX_BATCH_QUERIES = 8;
/**
 * Queries this far apart are "low load": one that finds no call out leaves at
 * once. Closer together (a busy router reads several requests per turn), the
 * first of a turn would leave alone and the rest in a second call: measured,
 * sending at once whenever no call was out cut the 3-shard
 * router's saturated throughput by 10-15% in load-tests/serving/router-bench.js.
 */
export const DEFAULT_COALESCE_QUIET_GAP_MS = 1;

export interface CoalescerOptions {
  /** Most queries in one coalesced call. */
  readonly maxBatchQueries: number;
  /** How many calls may be out at once (read at each decision: replicas may come and go). */
  readonly maxInFlightBatches: () => number;
  /** Since the previous query, how long the shard must have been quiet for a query to leave in its caller's turn. */
  readonly quietGapMs: number;
  /** The shard these calls go to (named in a refusal). */
  readonly shard: number;
  /** When queries waiting for a call count as a standing queue; undefined: never refused. */
  readonly standing: StandingBounds | undefined;
}

export type SendBatch = (batch: BatchSearchRequest, deadlineMs: number, parent: CallParent | undefined) => Promise<BatchSearchResponse>;

/**
 * The queries of one request: answered together once each has its response,
 * or failed with the first error any of them meets (as Promise.all would, for
 * one promise instead of one per query).
 */
class Submission {
  readonly responses: SearchResponse[];
  private remaining: number;
  private settled = false;

  constructor(
    count: number,
    /** The span context of the request; undefined while tracing is off. */
    readonly parent: Context | undefined,
    private readonly resolve: (responses: SearchResponse[]) => void,
    private readonly reject: (err: CanopyError) => void,
  ) {
    this.responses = new Array<SearchResponse>(count);
    this.remaining = count;
  }

  answer(slot: number, response: SearchResponse): void {
    if (this.settled) return;
    this.responses[slot] = response;
    if (--this.remaining === 0) {
      this.settled = true;
      this.resolve(this.responses);
    }
  }

  fail(err: CanopyError): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(err);
  }
}

interface Pending {
  readonly query: SearchRequest;
  readonly deadlineMs: number;
  readonly submission: Submission;
  /** Where this query's response goes in its submission's answer. */
  readonly slot: number;
  /** performance.now() when it was queued. */
  readonly queuedMs: number;
}

interface Queue {
  readonly index: string;
  readonly version: string;
  readonly items: Pending[];
}

export class Coalescer {
  private readonly queues = new Map<string, Queue>();
  private inFlight = 0;
  private pendingCount = 0;
  private flushScheduled = false;
  /** performance.now() of the previous submission. */
  private lastSubmitMs = Number.NEGATIVE_INFINITY;
  private readonly standing: StandingQueue | undefined;

  constructor(
    private readonly send: SendBatch,
    private readonly options: CoalescerOptions,
  ) {
    this.standing = options.standing === undefined ? undefined : new StandingQueue(options.standing);
  }

  /**
   * The RESOURCE_EXHAUSTED to answer a query with instead of queueing it, while the queries
   * here stand waiting for a call over the target; undefined: submit it.
   */
  refusal(): CanopyError | undefined {
    if (this.standing === undefined) return undefined;
    const nowMs = performance.now();
    const oldestWaitMs = this.oldestWaitMs(nowMs);
    this.standing.observe(nowMs, oldestWaitMs);
    if (this.standing.admits(oldestWaitMs)) return undefined;
    return new CanopyError(
      grpc.status.RESOURCE_EXHAUSTED,
      `router overloaded: queries for shard ${this.options.shard} have waited ${Math.round(oldestWaitMs)} ms in the router for a call to a replica ` +
        `(${this.inFlight} calls out), over the router's ${this.options.standing!.targetMs} ms queue-wait target for ${this.options.standing!.intervalMs} ms`,
    );
  }

  /** How long the oldest query queued here has waited (ms), 0 when none is. */
  private oldestWaitMs(nowMs: number): number {
    let oldestMs = nowMs;
    for (const queue of this.queues.values()) if (queue.items.length > 0) oldestMs = Math.min(oldestMs, queue.items[0]!.queuedMs);
    return nowMs - oldestMs;
  }

  /**
   * Queues the queries of one request of `index`/`version` (traced as
   * `parent`); settles with their responses, in order, or the first error.
   */
  submit(index: string, version: string, queries: readonly SearchRequest[], deadlineMs: number, parent?: Context): Promise<SearchResponse[]> {
    if (queries.length === 0) return Promise.resolve([]);
    return new Promise<SearchResponse[]>((resolve, reject) => {
      const key = `${index}\u0000${version}`;
      let queue = this.queues.get(key);
      if (queue === undefined) {
        queue = { index, version, items: [] };
        this.queues.set(key, queue);
      }
      const submission = new Submission(queries.length, parent, resolve, reject);
      const nowMs = performance.now();
      for (let slot = 0; slot < queries.length; slot++) queue.items.push({ query: queries[slot]!, deadlineMs, submission, slot, queuedMs: nowMs });
      this.pendingCount += queries.length;
      const quiet = nowMs - this.lastSubmitMs >= this.options.quietGapMs;
      this.lastSubmitMs = nowMs;
      if (this.inFlight === 0 && quiet) {
        // Nothing to wait for, and nothing likely to join: a later turn would only add latency.
        this.flush();
      } else if (!this.flushScheduled && this.inFlight < this.options.maxInFlightBatches()) {
        this.flushScheduled = true;
        setImmediate(() => {
          this.flushScheduled = false;
          this.flush();
        });
      }
    });
  }

  /** Sends batches while there is room for more calls and queries wait; then tells the standing test what is left. */
  private flush(): void {
    this.sendWhileRoom();
    if (this.standing !== undefined) {
      const nowMs = performance.now();
      this.standing.observe(nowMs, this.oldestWaitMs(nowMs));
    }
  }

  private sendWhileRoom(): void {
    for (const [key, queue] of this.queues) {
      while (queue.items.length > 0 && this.inFlight < this.options.maxInFlightBatches()) {
        const taken = this.takeLive(queue);
        if (taken.length > 0) this.dispatch(queue, taken);
      }
      if (queue.items.length === 0) this.queues.delete(key);
      if (this.inFlight >= this.options.maxInFlightBatches()) return;
    }
  }

  /** Up to `maxBatchQueries` queries whose deadline has not passed; late ones are failed here. */
  private takeLive(queue: Queue): Pending[] {
    const nowMs = Date.now();
    const taken: Pending[] = [];
    while (queue.items.length > 0 && taken.length < this.options.maxBatchQueries) {
      const item = queue.items.shift()!;
      this.pendingCount--;
      if (item.deadlineMs <= nowMs) item.submission.fail(CanopyError.deadlineExceeded('deadline passed while queued for the shard'));
      else taken.push(item);
    }
    return taken;
  }

  private dispatch(queue: Queue, items: Pending[]): void {
    this.inFlight++;
    const batch: BatchSearchRequest = {
      index: queue.index,
      version: queue.version,
      minShards: 0,
      queries: items.map((p) => p.query),
    };
    const deadlineMs = Math.max(...items.map((p) => p.deadlineMs));
    // One call serves several requests, each in its own trace: its span is a
    // child of the first traced one and links to the others.
    const parent = isTracingEnabled() ? sharedCallParent(items.map((p) => p.submission.parent)) : undefined;
    this.send(batch, deadlineMs, parent).then(
      (response) => {
        if (response.results.length !== items.length) {
          const err = new CanopyError(grpc.status.INTERNAL, `shard answered ${response.results.length} results for ${items.length} queries`);
          for (const p of items) p.submission.fail(err);
        } else {
          items.forEach((p, i) => p.submission.answer(p.slot, response.results[i]!));
        }
        this.callReturned();
      },
      (err: unknown) => {
        const error = CanopyError.from(err);
        for (const p of items) p.submission.fail(error);
        this.callReturned();
      },
    );
  }

  private callReturned(): void {
    this.inFlight--;
    if (this.pendingCount > 0) this.flush();
  }
}
