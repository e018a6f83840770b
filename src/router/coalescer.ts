// Coalescing the queries bound for one shard into BatchSearch calls, so the
// router's per-RPC cost does not grow with the query rate. Batching is
// "natural": a query is sent at once (on the next turn of the event loop) when
// fewer than `maxInFlightBatches` calls are out; otherwise it waits, and all
// queries that arrived meanwhile leave together when a call returns. Low load
// thus pays no waiting, and high load gets large batches.
import * as grpc from '@grpc/grpc-js';
import type { Context } from '@opentelemetry/api';

import { CanopyError } from '../client/canopy-error';
import type { BatchSearchRequest, BatchSearchResponse, SearchRequest, SearchResponse } from '../client/contract';
import { type CallParent, sharedCallParent } from '../telemetry/grpc-context';
import { isTracingEnabled } from '../telemetry/spans';

export const DEFAULT_COALESCE_MAX_BATCH_QUERIES = 256;

export interface CoalescerOptions {
  /** Most queries in one coalesced call. */
  readonly maxBatchQueries: number;
  /** How many calls may be out at once (read at each decision: replicas may come and go). */
  readonly maxInFlightBatches: () => number;
}

export type SendBatch = (batch: BatchSearchRequest, deadlineMs: number, parent: CallParent | undefined) => Promise<BatchSearchResponse>;

interface Pending {
  readonly query: SearchRequest;
  readonly deadlineMs: number;
  /** The span context of the request this query belongs to; undefined while tracing is off. */
  readonly parent: Context | undefined;
  resolve(response: SearchResponse): void;
  reject(err: CanopyError): void;
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

  constructor(
    private readonly send: SendBatch,
    private readonly options: CoalescerOptions,
  ) {}

  /** Queues one query of `index`/`version` (of the request traced as `parent`); settles with its own response. */
  submit(index: string, version: string, query: SearchRequest, deadlineMs: number, parent?: Context): Promise<SearchResponse> {
    return new Promise<SearchResponse>((resolve, reject) => {
      const key = `${index}\u0000${version}`;
      let queue = this.queues.get(key);
      if (queue === undefined) {
        queue = { index, version, items: [] };
        this.queues.set(key, queue);
      }
      queue.items.push({ query, deadlineMs, parent, resolve, reject });
      this.pendingCount++;
      if (!this.flushScheduled && this.inFlight < this.options.maxInFlightBatches()) {
        this.flushScheduled = true;
        setImmediate(() => {
          this.flushScheduled = false;
          this.flush();
        });
      }
    });
  }

  /** Sends batches while there is room for more calls and queries wait. */
  private flush(): void {
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
      if (item.deadlineMs <= nowMs) item.reject(CanopyError.deadlineExceeded('deadline passed while queued for the shard'));
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
    const parent = isTracingEnabled() ? sharedCallParent(items.map((p) => p.parent)) : undefined;
    this.send(batch, deadlineMs, parent).then(
      (response) => {
        if (response.results.length !== items.length) {
          const err = new CanopyError(grpc.status.INTERNAL, `shard answered ${response.results.length} results for ${items.length} queries`);
          for (const p of items) p.reject(err);
        } else {
          items.forEach((p, i) => p.resolve(response.results[i]!));
        }
        this.callReturned();
      },
      (err: unknown) => {
        const error = CanopyError.from(err);
        for (const p of items) p.reject(error);
        this.callReturned();
      },
    );
  }

  private callReturned(): void {
    this.inFlight--;
    if (this.pendingCount > 0) this.flush();
  }
}
