// The search pool's latency bound: past maxQueueWaitMs of queued searches (their count x the recent
// mean search time / threads) a call fails at once with QUEUE_FULL, however much room the queue has.
// Runs in its own process (vitest forks per file), so configuring the pool here touches no other test.
import { expect, test } from 'vitest';

import { configureSearchPool, EngineError, searchPoolStats } from '../../../src';
import { builtIndex, vectors } from '../../support/engine-fixtures';

test('QUEUE_FULL when the queued searches would wait too long, with room in the queue', async () => {
  configureSearchPool({ threads: 1, maxQueue: 10_000, maxQueueWaitMs: 1 });
  expect(searchPoolStats()).toMatchObject({ threads: 1, maxQueue: 10_000, maxQueueWaitMs: 1, meanSearchMs: 0 });

  const items = vectors(20_000, 32, 7);
  const index = builtIndex('euclidean', items, 10, 3);
  const exhaustive = { searchK: 1_000_000 };
  await index.search(items[0]!, 3, exhaustive); // teaches the pool what a search costs
  const meanSearchMs = searchPoolStats().meanSearchMs;
  expect(meanSearchMs).toBeGreaterThan(0);

  // 200 exhaustive searches hold the only thread; then more than 1 ms worth of searches is asked for.
  const blocker = index.searchBatch(items.slice(0, 200), 3, exhaustive);
  const asked = Math.ceil(2 / meanSearchMs) + 2;
  const settled = await Promise.allSettled(Array.from({ length: asked }, (_, i) => index.search(items[i]!, 3, exhaustive)));
  const rejected = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
  expect(rejected.length).toBeGreaterThan(0);
  for (const r of rejected) {
    expect(r.reason).toBeInstanceOf(EngineError);
    expect(r.reason.code).toBe('QUEUE_FULL');
    expect(r.reason.message).toMatch(/search queue is full \(\d+ of 10000 pending, ~[\d.]+ ms of searches ahead, at most 1\.0 ms\)/);
  }
  expect((await blocker).length).toBe(200);

  // Drained: a search is admitted again.
  expect((await index.search(items[1]!, 3)).ids.length).toBe(3);
  expect(searchPoolStats().queuedWaitMs).toBe(0);
});
