// The search pool's latency bound: once the oldest queued search has waited over maxQueueWaitMs for an
// interval (a standing queue, not a burst), a call fails at once with QUEUE_FULL, however much room the
// queue has; a drained queue admits again. Runs in its own process (vitest forks per file), so
// configuring the pool here touches no other test.
import { setTimeout as sleep } from 'node:timers/promises';

import { expect, test } from 'vitest';

import { configureSearchPool, EngineError, searchPoolStats } from '../../../src';
import { builtIndex, vectors } from '../../support/engine-fixtures';

test('QUEUE_FULL once the queue stands over its target, with room in the queue', async () => {
  configureSearchPool({ threads: 1, maxQueue: 10_000, maxQueueWaitMs: 1 });
  expect(searchPoolStats()).toMatchObject({ threads: 1, maxQueue: 10_000, maxQueueWaitMs: 1, meanSearchMs: 0 });

  const items = vectors(20_000, 32, 7);
  const index = builtIndex('euclidean', items, 10, 3);
  const exhaustive = { searchK: 1_000_000 };
  // 100 exhaustive searches in one call hold the only thread.
  const blocker = index.searchBatch(items.slice(0, 100), 3, exhaustive);
  // Calls keep arriving a millisecond apart; the first ones are admitted (a burst may drain), later ones refused.
  const calls: Promise<unknown>[] = [];
  let refusal: unknown;
  for (let i = 0; i < 500 && refusal === undefined; i++) {
    const call = index.search(items[i]!, 3);
    calls.push(call);
    refusal = await Promise.race([call.then(() => undefined, (err: unknown) => err), sleep(1, undefined)]);
  }
  expect(refusal).toBeInstanceOf(EngineError);
  expect((refusal as EngineError).code).toBe('QUEUE_FULL');
  expect((refusal as EngineError).message).toMatch(/search queue is full \(\d+ of 10000 pending, the oldest waiting ~[\d.]+ ms, target 1\.0 ms\)/);
  expect(calls.length).toBeGreaterThan(1);
  expect((await blocker).length).toBe(100);
  await Promise.allSettled(calls);

  // Drained: a search is admitted again.
  expect((await index.search(items[1]!, 3)).ids.length).toBe(3);
  expect(searchPoolStats().queuedWaitMs).toBe(0);
});
