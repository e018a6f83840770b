// A steady stream of queries for fault and cutover tests: `concurrency`
// callers loop over a fixed set of queries until stopped, or until
// `maxQueries` or `maxMs` is reached (bounded whatever happens). Every answer
// and every failure is kept for the test to check.
import type { CanopyClient, QueryOptions } from '../../../src/client/canopy-client';
import type { CanopyError } from '../../../src/wire/canopy-error';
import type { SearchResponse } from '../../../src/wire/contract';

export interface Answer {
  readonly query: number;
  readonly response: SearchResponse;
  /** From sending the query to its answer. */
  readonly latencyMs: number;
}

export interface LoadReport {
  readonly answers: readonly Answer[];
  readonly failures: readonly CanopyError[];
}

export interface LoadOptions {
  readonly client: CanopyClient;
  readonly index: string;
  readonly queries: readonly Float32Array[];
  readonly options: QueryOptions;
  readonly concurrency?: number;
  readonly maxQueries?: number;
  readonly maxMs?: number;
}

export class QueryLoad {
  private readonly answers: Answer[] = [];
  private readonly failures: CanopyError[] = [];
  private readonly done: Promise<void>;
  private stopped = false;

  constructor(o: LoadOptions) {
    const endMs = Date.now() + (o.maxMs ?? 120_000);
    const maxQueries = o.maxQueries ?? 200_000;
    let sent = 0;
    const worker = async (): Promise<void> => {
      while (!this.stopped && sent < maxQueries && Date.now() < endMs) {
        const query = sent++ % o.queries.length;
        const startedMs = performance.now();
        try {
          const response = await o.client.search(o.index, o.queries[query]!, o.options);
          this.answers.push({ query, response, latencyMs: performance.now() - startedMs });
        } catch (err) {
          this.failures.push(err as CanopyError);
        }
      }
    };
    this.done = Promise.all(Array.from({ length: o.concurrency ?? 4 }, worker)).then(() => undefined);
  }

  get answered(): number {
    return this.answers.length;
  }

  /** Answers so far that came from `version`. */
  countFrom(version: string): number {
    return this.answers.filter((a) => a.response.indexVersion === version).length;
  }

  /** Resolves once at least `n` more answers have come in (bounded by `timeoutMs`). */
  async waitForMore(n: number, timeoutMs = 20_000): Promise<void> {
    const target = this.answers.length + n;
    const endMs = Date.now() + timeoutMs;
    while (this.answers.length < target && Date.now() < endMs) await new Promise((r) => setTimeout(r, 20));
    if (this.answers.length < target) throw new Error(`the load did not reach ${target} answers in ${timeoutMs} ms (failures: ${this.failures.length})`);
  }

  async stop(): Promise<LoadReport> {
    this.stopped = true;
    await this.done;
    return { answers: this.answers, failures: this.failures };
  }
}
