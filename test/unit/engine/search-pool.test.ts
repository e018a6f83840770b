// The search pool's bound: past maxQueue pending searches a call fails at once with QUEUE_FULL.
// Runs in its own process (vitest forks per file), so configuring the pool here touches no other test.
import { expect, test } from 'vitest';

import { configureSearchPool, EngineError, searchPoolStats } from '../../../src';
import { builtIndex, vectors } from '../../support/engine-fixtures';

test('configure, then QUEUE_FULL past the bound, then recovery', async () => {
  expect(() => configureSearchPool({ threads: 0 })).toThrow(/threads must be between 1/);
  configureSearchPool({ threads: 1, maxQueue: 4 });
  expect(searchPoolStats()).toMatchObject({ threads: 1, maxQueue: 4, queued: 0 });

  const items = vectors(20_000, 16, 5);
  const index = builtIndex('euclidean', items, 10, 2);
  const slow = { searchK: 1_000_000 };
  // One batch slice occupies the only thread for a long while (100 exhaustive searches)...
  const blocker = index.searchBatch(items.slice(0, 100), 3, slow);
  // ...so of these, at most four fit in the queue and the rest are refused as they are made.
  const calls = Array.from({ length: 12 }, (_, i) => index.search(items[i]!, 3, slow));
  const settled = await Promise.allSettled(calls);
  const rejected = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
  expect(rejected.length).toBeGreaterThanOrEqual(8);
  for (const r of rejected) {
    expect(r.reason).toBeInstanceOf(EngineError);
    expect(r.reason.code).toBe('QUEUE_FULL');
    expect(r.reason.message).toMatch(/search queue is full \(4 of 4 pending\)/);
    // An expected answer under overload: refusing must not pay for a stack trace.
    expect(r.reason.stack).not.toMatch(/\n\s+at /);
  }
  expect(settled.filter((s) => s.status === 'fulfilled').length).toBeGreaterThanOrEqual(3);
  expect((await blocker).length).toBe(100);

  // A batch counts one slice per pool thread; when the queue has drained, searches work again.
  expect((await index.searchBatch(items.slice(0, 10), 3)).length).toBe(10);
  expect(searchPoolStats().queued).toBe(0);
  expect(() => configureSearchPool({ threads: 2 })).toThrow(/already started/);
});
