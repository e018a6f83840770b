// Async searches run on the engine's threads: the event loop keeps turning, results equal the sync
// ones, and unload() while searches are in flight is safe.
import { describe, expect, test } from 'vitest';

import { Index, searchPoolStats } from '../../../src';
import { builtIndex, scratchDir, vectors } from '../../support/engine-fixtures';

describe('a forest of 30k items', () => {
  const items = vectors(30_000, 24, 8);
  const index = builtIndex('euclidean', items, 20, 2);
  const everything = { searchK: 2_000_000 }; // visit every node: a long search

  test('a long search does not block a timer on the event loop', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const queries = items.slice(0, 24);
    const results = await index.searchBatch(queries, 10, everything);
    const single = await index.search(items[30]!, 10, everything);
    clearInterval(timer);
    // The same work done synchronously would have allowed no tick at all.
    expect(ticks).toBeGreaterThan(2);
    expect(results).toHaveLength(24);
    results.forEach((r, q) => expect(r.ids[0]).toBe(q)); // exhaustive: each item finds itself
    expect(single.ids[0]).toBe(30);
  });

  test('async, batch and sync answers are identical', async () => {
    const queries = items.slice(100, 140);
    const flat = new Float32Array(40 * 24);
    queries.forEach((q, i) => flat.set(q, i * 24));
    const sync = queries.map((q) => index.searchSync(q, 7, { searchK: 500 }));
    expect(await index.searchBatch(flat, 7, { searchK: 500 })).toEqual(sync);
    expect(await index.searchBatch(queries, 7, { searchK: 500 })).toEqual(sync);
    expect(await Promise.all(queries.map((q) => index.search(q, 7, { searchK: 500 })))).toEqual(sync);
    expect(await index.searchByItem(5, 4)).toEqual(index.searchByItemSync(5, 4));
    expect(await index.searchBatch(new Float32Array(0), 3)).toEqual([]);
    expect(searchPoolStats().queued).toBe(0);
  });
});

test('unload while searches are in flight: they finish, later calls fail, nothing crashes', async () => {
  const { file, cleanup } = scratchDir();
  try {
    const items = vectors(20_000, 16, 12);
    builtIndex('angular', items, 10, 2).save(file('inflight.ann'));
    const index = Index.load(file('inflight.ann'), { dim: 16, metric: 'angular' });
    const expected = index.searchSync(items[1]!, 5, { searchK: 1_000_000 });
    const pending = [
      index.searchBatch(items.slice(0, 16), 5, { searchK: 1_000_000 }),
      index.search(items[1]!, 5, { searchK: 1_000_000 }),
    ];
    index.unload(); // the mapping stays until both finish
    const [batch, single] = await Promise.all(pending);
    expect((batch as unknown[]).length).toBe(16);
    expect(single).toEqual(expected);
    await expect(index.search(items[1]!, 5)).rejects.toMatchObject({ code: 'BAD_STATE' });
  } finally {
    cleanup();
  }
});
