// Save/load round trips, on-disk build, prefault, async build with progress, multi-threaded builds.
import { readFileSync, statSync } from 'node:fs';
import { afterAll, describe, expect, test } from 'vitest';

import { Index } from '../../../src';
import { METRICS } from '../../../src/format/metric';
import { builtIndex, scratchDir, vectors } from '../../support/engine-fixtures';

const scratch = scratchDir();
afterAll(() => scratch.cleanup());

describe.each(METRICS)('%s', (metric) => {
  const dim = metric === 'hamming' ? 72 : 10;
  const items = vectors(600, dim, 3).map((v) => (metric === 'hamming' ? v.map((x) => (x > 0 ? 1 : 0)) : v));

  test('save then load answers exactly as the built index', () => {
    const index = builtIndex(metric, items, 8, 1, 5);
    const before = items.slice(0, 10).map((q) => index.searchSync(q, 10, { searchK: 300 }));
    const file = scratch.file(`${metric}.ann`);
    index.save(file);
    // After save the index serves from the file, with the same answers.
    expect(items.slice(0, 10).map((q) => index.searchSync(q, 10, { searchK: 300 }))).toEqual(before);
    for (const prefault of [false, true]) {
      const loaded = Index.load(file, { dim, metric, prefault });
      expect(loaded.nItems).toBe(600);
      expect(loaded.nTrees).toBe(8);
      expect(loaded.dim).toBe(dim);
      expect(loaded.metric).toBe(metric);
      expect(items.slice(0, 10).map((q) => loaded.searchSync(q, 10, { searchK: 300 }))).toEqual(before);
      expect(Array.from(loaded.getItemVector(7))).toEqual(Array.from(items[7]!));
      loaded.unload();
    }
  });
});

test('on-disk build writes the file the in-memory build would save, and serves from it', () => {
  const items = vectors(500, 16, 9);
  const memory = builtIndex('euclidean', items, 6, 1, 77);
  memory.save(scratch.file('memory.ann'));
  const disk = new Index({ dim: 16, metric: 'euclidean', seed: 77 });
  disk.onDiskBuild(scratch.file('disk.ann'));
  items.forEach((v, i) => disk.addItem(i, v));
  disk.buildSync({ nTrees: 6, threads: 1 });
  expect(statSync(scratch.file('disk.ann')).size).toBe(statSync(scratch.file('memory.ann')).size);
  expect(readFileSync(scratch.file('disk.ann')).equals(readFileSync(scratch.file('memory.ann')))).toBe(true);
  expect(disk.searchSync(items[4]!, 5)).toEqual(memory.searchSync(items[4]!, 5));
  disk.save(scratch.file('disk.ann')); // the build already wrote it: a no-op
  expect(Index.load(scratch.file('disk.ann'), { dim: 16, metric: 'euclidean' }).searchSync(items[4]!, 5)).toEqual(
    memory.searchSync(items[4]!, 5),
  );
});

test('build() runs off the event loop and reports progress in treesBuilt', async () => {
  const items = vectors(20_000, 32, 4);
  const index = new Index({ dim: 32, metric: 'angular' });
  items.forEach((v, i) => index.addItem(i, v));
  const seen: number[] = [];
  const timer = setInterval(() => seen.push(index.treesBuilt), 1);
  await index.build({ nTrees: 16, threads: 2 });
  clearInterval(timer);
  expect(index.nTrees).toBe(16);
  expect(index.treesBuilt).toBe(16);
  expect(seen.length).toBeGreaterThan(0); // the loop kept turning during the build
  expect(seen.every((n, i) => i === 0 || n >= seen[i - 1]!)).toBe(true);
});

test('multi-threaded seeded builds give the same answers as each other and find every item', () => {
  const items = vectors(3000, 12, 21);
  const a = builtIndex('angular', items, 10, 2, 123);
  const b = builtIndex('angular', items, 10, 2, 123);
  expect(a.nTrees).toBe(10);
  // Node numbering interleaves across threads (as in Annoy), but each thread's trees are seeded,
  // so the forests hold the same trees and answer alike.
  for (const q of items.slice(0, 20)) expect(a.searchSync(q, 10)).toEqual(b.searchSync(q, 10));
  for (let i = 0; i < 3000; i += 97) expect(a.searchByItemSync(i, 1, { searchK: 100_000 }).ids[0]).toBe(i);
});

test('nTrees -1 keeps adding trees until the forest has twice as many nodes as items', () => {
  const index = builtIndex('euclidean', vectors(1000, 8, 2), -1, 2);
  expect(index.nTrees).toBeGreaterThan(1);
});
