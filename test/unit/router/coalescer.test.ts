import { describe, expect, it } from 'vitest';

import { CanopyError } from '../../../src/wire/canopy-error';
import type { BatchSearchRequest, BatchSearchResponse, SearchRequest, SearchResponse } from '../../../src/wire/contract';
import { Coalescer } from '../../../src/router/coalescer';

function query(k: number): SearchRequest {
  return { index: '', vector: [], vectorF32: Buffer.alloc(0), k, searchK: 0, excludeIds: [], minShards: 0, version: '', exact: false, rerank: 0, ef: 0 };
}

/** A shard stand-in that answers each query with one neighbour named after its k, when released. */
class ManualShard {
  readonly batches: BatchSearchRequest[] = [];
  private readonly waiting: (() => void)[] = [];

  send = (batch: BatchSearchRequest): Promise<BatchSearchResponse> => {
    this.batches.push(batch);
    return new Promise((resolve) => {
      this.waiting.push(() =>
        resolve({
          results: batch.queries.map((q) => ({
            neighbors: [{ id: `k${q.k}`, distance: q.k }],
            indexVersion: batch.version,
            shardsTotal: 1,
            shardsAnswered: 1,
            shardsMissing: [],
          })),
          indexVersion: batch.version,
          shardsTotal: 1,
          shardsAnswered: 1,
          shardsMissing: [],
        }),
      );
    });
  };

  /** Answers the oldest outstanding call. */
  releaseOne(): void {
    this.waiting.shift()?.();
  }

  get outstanding(): number {
    return this.waiting.length;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const FAR = Date.now() + 60_000;

const ids = (responses: readonly SearchResponse[]): string[] => responses.map((r) => r.neighbors[0]!.id);

describe('Coalescer', () => {
  it("sends a request's queries at once, in the caller's turn, when no call is out", async () => {
    const shard = new ManualShard();
    const c = new Coalescer(shard.send, { maxBatchQueries: 100, maxInFlightBatches: () => 1, quietGapMs: 0, shard: 0, standing: undefined });
    for (let i = 1; i <= 3; i++) {
      const answer = c.submit('idx', 'v1', [query(i), query(10 + i)], FAR);
      expect(shard.batches).toHaveLength(i); // sent before any turn of the event loop
      shard.releaseOne();
      expect(ids(await answer)).toEqual([`k${i}`, `k${10 + i}`]);
    }
    expect(shard.batches.map((b) => b.queries.length)).toEqual([2, 2, 2]);
    expect(shard.batches[0]!.index).toBe('idx');
    expect(shard.batches[0]!.version).toBe('v1');
  });

  it('when queries come close together, sends even a lone one on the next turn, with the rest of its turn', async () => {
    const shard = new ManualShard();
    const c = new Coalescer(shard.send, { maxBatchQueries: 100, maxInFlightBatches: () => 10, quietGapMs: 60_000, shard: 0, standing: undefined });
    const first = c.submit('idx', 'v1', [query(1)], FAR); // the first ever: the shard was quiet
    expect(shard.batches).toHaveLength(1);
    shard.releaseOne();
    await first;
    const answers = [c.submit('idx', 'v1', [query(2)], FAR), c.submit('idx', 'v1', [query(3)], FAR)];
    expect(shard.batches).toHaveLength(1); // nothing is out, but the shard is not quiet
    await tick();
    expect(shard.batches.map((b) => b.queries.map((q) => q.k))).toEqual([[1], [2, 3]]);
    shard.releaseOne();
    expect((await Promise.all(answers)).map(ids)).toEqual([['k2'], ['k3']]);
  });

  it('while a call is out, sends the requests that arrive in one turn together on the next turn', async () => {
    const shard = new ManualShard();
    const c = new Coalescer(shard.send, { maxBatchQueries: 100, maxInFlightBatches: () => 10, quietGapMs: 0, shard: 0, standing: undefined });
    const first = c.submit('idx', 'v1', [query(1)], FAR);
    const second = c.submit('idx', 'v1', [query(2)], FAR);
    const third = c.submit('idx', 'v1', [query(3), query(4)], FAR);
    expect(shard.batches).toHaveLength(1);
    await tick();
    expect(shard.batches.map((b) => b.queries.map((q) => q.k))).toEqual([[1], [2, 3, 4]]);
    shard.releaseOne();
    shard.releaseOne();
    expect([ids(await first), ids(await second), ids(await third)]).toEqual([['k1'], ['k2'], ['k3', 'k4']]);
  });

  it('holds queries while the call limit is reached and sends them together when a call returns', async () => {
    const shard = new ManualShard();
    const c = new Coalescer(shard.send, { maxBatchQueries: 100, maxInFlightBatches: () => 1, quietGapMs: 0, shard: 0, standing: undefined });
    const first = c.submit('idx', 'v1', [query(1)], FAR);
    const later = [2, 3, 4, 5].map((k) => c.submit('idx', 'v1', [query(k)], FAR));
    await tick();
    expect(shard.batches).toHaveLength(1);
    shard.releaseOne();
    await first;
    await tick();
    expect(shard.batches.map((b) => b.queries.map((q) => q.k))).toEqual([[1], [2, 3, 4, 5]]);
    shard.releaseOne();
    expect((await Promise.all(later)).map(ids)).toEqual([['k2'], ['k3'], ['k4'], ['k5']]);
  });

  it('caps batch size, keeps versions apart, and answers a request split over calls in order', async () => {
    const shard = new ManualShard();
    const c = new Coalescer(shard.send, { maxBatchQueries: 2, maxInFlightBatches: () => 10, quietGapMs: 0, shard: 0, standing: undefined });
    const split = c.submit('idx', 'v1', [query(1), query(2), query(3)], FAR);
    const answers = [c.submit('idx', 'v2', [query(4)], FAR), c.submit('idx', 'v1', [query(5)], FAR), c.submit('idx', 'v1', [query(6)], FAR)];
    await tick();
    expect(shard.batches.map((b) => [b.version, b.queries.map((q) => q.k)])).toEqual([
      ['v1', [1, 2]],
      ['v1', [3]],
      ['v2', [4]],
      ['v1', [5, 6]],
    ]);
    while (shard.outstanding > 0) shard.releaseOne();
    expect(ids(await split)).toEqual(['k1', 'k2', 'k3']);
    expect((await Promise.all(answers)).map(ids)).toEqual([['k4'], ['k5'], ['k6']]);
  });

  it('answers a request of no queries at once, without a call', async () => {
    const shard = new ManualShard();
    const c = new Coalescer(shard.send, { maxBatchQueries: 10, maxInFlightBatches: () => 1, quietGapMs: 0, shard: 0, standing: undefined });
    await expect(c.submit('i', 'v', [], FAR)).resolves.toEqual([]);
    expect(shard.batches).toHaveLength(0);
  });

  it('fails every request of a failed call with its error, and keeps working after', async () => {
    let fail = true;
    const c = new Coalescer(
      async (batch) => {
        if (fail) throw CanopyError.unavailable('shard down');
        return { results: batch.queries.map(() => ({ neighbors: [], indexVersion: 'v', shardsTotal: 1, shardsAnswered: 1, shardsMissing: [] })), indexVersion: 'v', shardsTotal: 1, shardsAnswered: 1, shardsMissing: [] };
      },
      { maxBatchQueries: 10, maxInFlightBatches: () => 1, quietGapMs: 0, shard: 0, standing: undefined },
    );
    const results = await Promise.allSettled([c.submit('i', 'v', [query(1), query(2)], FAR), c.submit('i', 'v', [query(3)], FAR)]);
    expect(results.map((r) => r.status === 'rejected' && (r.reason as CanopyError).message)).toEqual(['shard down', 'shard down']);
    fail = false;
    await expect(c.submit('i', 'v', [query(4)], FAR)).resolves.toMatchObject([{ neighbors: [] }]);
  });

  it('fails a request whose deadline passed while it waited, without sending it', async () => {
    const shard = new ManualShard();
    const c = new Coalescer(shard.send, { maxBatchQueries: 10, maxInFlightBatches: () => 1, quietGapMs: 0, shard: 0, standing: undefined });
    const first = c.submit('i', 'v', [query(1)], FAR);
    const late = c.submit('i', 'v', [query(2)], Date.now() - 1);
    const onTime = c.submit('i', 'v', [query(3)], FAR);
    shard.releaseOne();
    await first;
    await expect(late).rejects.toMatchObject({ code: 4 });
    await tick();
    shard.releaseOne();
    await expect(onTime).resolves.toMatchObject([{ neighbors: [{ id: 'k3' }] }]);
    expect(shard.batches.map((b) => b.queries.map((q) => q.k))).toEqual([[1], [3]]);
  });

  it('refuses with RESOURCE_EXHAUSTED, naming the wait, once queries stand waiting for a call; admits again once drained', async () => {
    const shard = new ManualShard();
    const standing = { targetMs: 5, intervalMs: 20 };
    const c = new Coalescer(shard.send, { maxBatchQueries: 1, maxInFlightBatches: () => 1, quietGapMs: 0, shard: 3, standing });
    const answers = [c.submit('i', 'v', [query(1)], FAR), c.submit('i', 'v', [query(2)], FAR), c.submit('i', 'v', [query(3)], FAR)];
    expect(c.refusal()).toBeUndefined(); // queued a moment ago: a burst
    await sleep(2 * standing.targetMs);
    expect(c.refusal()).toBeUndefined(); // over the target, not yet for an interval
    await sleep(2 * standing.intervalMs);
    const refusal = c.refusal();
    expect(refusal?.code).toBe(8);
    expect(refusal?.message).toMatch(/^router overloaded: queries for shard 3 have waited \d+ ms in the router for a call to a replica/);
    for (let i = 0; i < 3; i++) {
      shard.releaseOne();
      await tick();
    }
    await Promise.all(answers);
    await sleep(2 * standing.intervalMs);
    expect(c.refusal()).toBeUndefined();
  });
});
