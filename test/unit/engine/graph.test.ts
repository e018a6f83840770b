// The neighbour graph through the binding: ef searches the graph once one is built (on float rows,
// codes or not), answers carry the forest's exact distances, searches without ef, without a
// graph or with `exact` are Annoy's, and bad arguments or metrics are refused.
import { readFileSync, writeFileSync } from 'node:fs';

import { describe, expect, test } from 'vitest';

import { EngineError, Index } from '../../../src';
import { builtIndex, scratchDir, vectors } from '../../support/engine-fixtures';

const DIM = 16;

function overlap(a: Int32Array, truth: Int32Array): number {
  const t = new Set(truth);
  return a.filter((id) => t.has(id)).length / truth.length;
}

type Answer = { ids: Int32Array; distances: Float32Array };

/** Every id both answers hold has the same distance bits as in the exhaustive forest search. */
function expectExactDistances(found: Answer, truth: Answer): void {
  found.ids.forEach((id, i) => {
    const at = truth.ids.indexOf(id);
    if (at >= 0) expect(found.distances[i]).toBe(truth.distances[at]);
  });
}

describe('a euclidean index of 5,000 items with a graph', () => {
  const items = vectors(5_000, DIM, 3);
  const index = builtIndex('euclidean', items, 10, 1);
  const queries = vectors(50, DIM, 77);
  const exhaustive = { searchK: 5_000 * 10 * 4 };

  test('has no graph until one is built, and ef alone changes nothing then', () => {
    expect(index.hasGraph).toBe(false);
    const q = queries[0]!;
    expect(index.searchSync(q, 10, { searchK: 300, ef: 64 })).toEqual(index.searchSync(q, 10, { searchK: 300 }));
  });

  test('buildGraph resolves and ef searches reach recall 0.95 with exact distances', async () => {
    await index.buildGraph({ threads: 2 });
    expect(index.hasGraph).toBe(true);
    let recall = 0;
    for (const q of queries) {
      const truth = index.searchSync(q, 10, exhaustive);
      const found = index.searchSync(q, 10, { ef: 64 });
      recall += overlap(found.ids, truth.ids);
      expectExactDistances(found, truth);
    }
    expect(recall / queries.length).toBeGreaterThanOrEqual(0.95);
  });

  test('sync, async, by-item and batch graph searches agree', async () => {
    const q = queries[1]!;
    const sync = index.searchSync(q, 10, { ef: 40 });
    expect(await index.search(q, 10, { ef: 40 })).toEqual(sync);
    const [batched] = await index.searchBatch([q], 10, { ef: 40 });
    expect(batched).toEqual(sync);
    const byItem = index.searchByItemSync(7, 5, { ef: 40 });
    expect(byItem.ids[0]).toBe(7);
    expect(await index.searchByItem(7, 5, { ef: 40 })).toEqual(byItem);
  });

  test('without ef the forest answers, as Annoy', () => {
    const fresh = builtIndex('euclidean', items, 10, 1);
    for (const q of queries.slice(0, 5)) expect(index.searchSync(q, 10)).toEqual(fresh.searchSync(q, 10));
  });

  test('bad ef and width are refused', async () => {
    expect(() => index.searchSync(queries[0]!, 10, { ef: -1 })).toThrow(EngineError);
    expect(() => index.searchSync(queries[0]!, 10, { ef: 1.5 })).toThrow(/ef must be an integer/);
    await expect(index.buildGraph({ width: 20 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  test('with codes, ef searches still score on float rows, and exact: true is Annoy', () => {
    const { file, cleanup } = scratchDir();
    try {
      const withoutCodes = queries.map((q) => index.searchSync(q, 10, { ef: 64, rerank: 10 }));
      index.saveCodes(file('f.codes'));
      const fresh = builtIndex('euclidean', items, 10, 1);
      queries.forEach((q, i) => {
        // The same answer: the codes would only have added their pages to what the search keeps resident.
        expect(index.searchSync(q, 10, { ef: 64, rerank: 10 })).toEqual(withoutCodes[i]);
        expect(index.searchSync(q, 10, { ef: 64, exact: true })).toEqual(fresh.searchSync(q, 10));
      });
    } finally {
      cleanup();
    }
  });
});

test('dot and hamming indexes refuse a graph', async () => {
  for (const metric of ['dot', 'hamming'] as const) {
    const index = builtIndex(metric, vectors(200, 8, 5), 3, 1);
    await expect(index.buildGraph()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(() => index.buildGraphSync()).toThrow(/needs a metric distance/);
  }
});

test('a graph build finishing after unload is refused; unbuilt indexes refuse at once', async () => {
  const index = builtIndex('angular', vectors(3_000, DIM, 9), 5, 1);
  const building = index.buildGraph({ threads: 1 });
  index.unload();
  await expect(building).rejects.toMatchObject({ code: 'BAD_STATE' });
  const unbuilt = new Index({ dim: DIM, metric: 'angular' });
  await expect(unbuilt.buildGraph()).rejects.toMatchObject({ code: 'BAD_STATE' });
});

describe('a graph saved to a sidecar', () => {
  const items = vectors(3_000, DIM, 21);
  const queries = vectors(20, DIM, 22);
  // An index with a graph, saved as f.ann and its graph as f.codes.
  const savedWithGraph = (file: (name: string) => string): Index => {
    const index = builtIndex('angular', items, 8, 1);
    index.buildGraphSync({ threads: 1 });
    index.save(file('f.ann'));
    index.saveGraph(file('f.codes'));
    return index;
  };

  test('loads beside the saved forest and answers as the built graph', () => {
    const { file, cleanup } = scratchDir();
    try {
      const built = savedWithGraph(file);
      const loaded = Index.load(file('f.ann'), { dim: DIM, metric: 'angular' });
      expect(loaded.hasGraph).toBe(false);
      loaded.loadGraph(file('f.codes'));
      expect(loaded.hasGraph).toBe(true);
      for (const q of queries) expect(loaded.searchSync(q, 10, { ef: 30 })).toEqual(built.searchSync(q, 10, { ef: 30 }));
    } finally {
      cleanup();
    }
  });

  test('a damaged, foreign or graph-less sidecar is refused and the index keeps serving', () => {
    const { file, cleanup } = scratchDir();
    try {
      savedWithGraph(file);
      const bytes = readFileSync(file('f.codes'));
      bytes[bytes.length - 100] ^= 0x40; // a bit of the graph rows
      writeFileSync(file('damaged.codes'), bytes);
      const other = builtIndex('angular', vectors(3_000, DIM, 23), 8, 1);
      expect(() => other.saveGraph(file('none.codes'))).toThrow(/has none/);
      other.buildGraphSync({ threads: 1 });
      other.saveGraph(file('other.codes'));
      const loaded = Index.load(file('f.ann'), { dim: DIM, metric: 'angular' });
      for (const [name, reason] of [
        ['damaged.codes', /section .* hash|corrupt/],
        ['other.codes', /stale|another forest/],
        ['missing.codes', /missing\.codes/],
      ] as const) {
        let error: unknown;
        try {
          loaded.loadGraph(file(name));
        } catch (e) {
          error = e;
        }
        expect(error).toBeInstanceOf(EngineError);
        expect((error as EngineError).message).toMatch(reason);
      }
      expect(loaded.hasGraph).toBe(false);
      expect(loaded.searchSync(queries[0]!, 10, { ef: 30 }).ids).toHaveLength(10);
    } finally {
      cleanup();
    }
  });
});
