import { describe, expect, it } from 'vitest';

import { CanopyError } from '../../../src/client/canopy-error';
import type { BatchSearchRequest, BatchSearchResponse, SearchRequest } from '../../../src/client/contract';
import { Coalescer } from '../../../src/router/coalescer';

function query(k: number): SearchRequest {
  return { index: '', vector: [], vectorF32: Buffer.alloc(0), k, searchK: 0, excludeIds: [], minShards: 0, version: '' };
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

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const FAR = Date.now() + 60_000;

describe('Coalescer', () => {
  it('sends a lone query at once, in a batch of one', async () => {
    const shard = new ManualShard();
    const c = new Coalescer(shard.send, { maxBatchQueries: 100, maxInFlightBatches: () => 1 });
    for (let i = 1; i <= 3; i++) {
      const answer = c.submit('idx', 'v1', query(i), FAR);
      await tick();
      shard.releaseOne();
      expect((await answer).neighbors[0]!.id).toBe(`k${i}`);
    }
    expect(shard.batches.map((b) => b.queries.length)).toEqual([1, 1, 1]);
    expect(shard.batches[0]!.index).toBe('idx');
    expect(shard.batches[0]!.version).toBe('v1');
  });

  it('holds queries while the call limit is reached and sends them together when a call returns', async () => {
    const shard = new ManualShard();
    const c = new Coalescer(shard.send, { maxBatchQueries: 100, maxInFlightBatches: () => 1 });
    const first = c.submit('idx', 'v1', query(1), FAR);
    await tick();
    const later = [2, 3, 4, 5].map((k) => c.submit('idx', 'v1', query(k), FAR));
    await tick();
    expect(shard.batches).toHaveLength(1);
    shard.releaseOne();
    await first;
    await tick();
    expect(shard.batches.map((b) => b.queries.map((q) => q.k))).toEqual([[1], [2, 3, 4, 5]]);
    shard.releaseOne();
    expect((await Promise.all(later)).map((r) => r.neighbors[0]!.id)).toEqual(['k2', 'k3', 'k4', 'k5']);
  });

  it('caps batch size and keeps versions apart', async () => {
    const shard = new ManualShard();
    const c = new Coalescer(shard.send, { maxBatchQueries: 2, maxInFlightBatches: () => 10 });
    const answers = [c.submit('idx', 'v1', query(1), FAR), c.submit('idx', 'v2', query(2), FAR)];
    for (let k = 3; k <= 5; k++) answers.push(c.submit('idx', 'v1', query(k), FAR));
    await tick();
    expect(shard.batches.map((b) => [b.version, b.queries.map((q) => q.k)])).toEqual([
      ['v1', [1, 3]],
      ['v1', [4, 5]],
      ['v2', [2]],
    ]);
    while (shard.outstanding > 0) shard.releaseOne();
    expect((await Promise.all(answers)).map((r) => r.neighbors[0]!.id)).toEqual(['k1', 'k2', 'k3', 'k4', 'k5']);
  });

  it('fails every query of a failed call with its error, and keeps working after', async () => {
    let fail = true;
    const c = new Coalescer(
      async (batch) => {
        if (fail) throw CanopyError.unavailable('shard down');
        return { results: batch.queries.map(() => ({ neighbors: [], indexVersion: 'v', shardsTotal: 1, shardsAnswered: 1, shardsMissing: [] })), indexVersion: 'v', shardsTotal: 1, shardsAnswered: 1, shardsMissing: [] };
      },
      { maxBatchQueries: 10, maxInFlightBatches: () => 1 },
    );
    const results = await Promise.allSettled([c.submit('i', 'v', query(1), FAR), c.submit('i', 'v', query(2), FAR)]);
    expect(results.map((r) => r.status === 'rejected' && (r.reason as CanopyError).message)).toEqual(['shard down', 'shard down']);
    fail = false;
    await expect(c.submit('i', 'v', query(3), FAR)).resolves.toMatchObject({ neighbors: [] });
  });

  it('fails a query whose deadline passed while it waited, without sending it', async () => {
    const shard = new ManualShard();
    const c = new Coalescer(shard.send, { maxBatchQueries: 10, maxInFlightBatches: () => 1 });
    const first = c.submit('i', 'v', query(1), FAR);
    await tick();
    const late = c.submit('i', 'v', query(2), Date.now() - 1);
    const onTime = c.submit('i', 'v', query(3), FAR);
    shard.releaseOne();
    await first;
    await expect(late).rejects.toMatchObject({ code: 4 });
    await tick();
    shard.releaseOne();
    await expect(onTime).resolves.toMatchObject({ neighbors: [{ id: 'k3' }] });
    expect(shard.batches.map((b) => b.queries.map((q) => q.k))).toEqual([[1], [3]]);
  });
});
