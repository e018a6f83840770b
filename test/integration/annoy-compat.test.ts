// Canopy and Python annoy are interchangeable: each loads the other's file and,
// for the same query and search_k, returns the same ids and distances; and a
// single-threaded build with the same seed writes the same bytes.
//
// Data: 2,000 x 32 clustered vectors (hamming: 2,000 x 100 bits) plus 50 held-out
// queries, 10 trees, seed 42. Answers are compared in full (every id, in order),
// distances to 1e-5 relative.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { Index } from '../../src';
import type { Metric } from '../../src/format/metric';
import { annoyBuild, annoyQuery, type ReferenceAnswer, type ReferenceAnswers } from '../support/annoy-reference';
import { holdOut, row, writeFloat32File, type Matrix } from '../support/matrix';
import { runPythonJson } from '../support/python';
import { binaryVectors, clusteredVectors } from '../support/vectors';

const ROWS = 2000;
const QUERY_EVERY = 41; // 2,050 generated rows -> 2,000 items + 50 queries
const K = 10;
const TREES = 10;
const SEED = 42;
/** -1 is Annoy's default, n * trees; 2,500 collects more candidates than there are items. */
const SEARCH_KS = [-1, 25, 250, 2500];
const BY_ITEM = Array.from({ length: 25 }, (_, i) => i * 83);
const DISTANCE_PAIRS: [number, number][] = [[0, 1], [5, 1999], [17, 17], [1234, 42]];

const dir = mkdtempSync(join(tmpdir(), 'canopy-compat-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Case {
  metric: Metric;
  base: Matrix;
  queries: Matrix;
  dataFile: string;
  queryFile: string;
}

interface Prepared extends Case {
  /** Built by python annoy from the case's data: 10 trees, seed 42, one thread. */
  annoyFile: string;
  /** Where the Canopy-built index is saved. */
  canopyFile: string;
}

const prepared = new Map<string, Prepared>();

/** The data of (metric, dim) and annoy's index of it, made once per file run. */
function prepare(metric: Metric, dim: number): Prepared {
  const name = `${metric}-${dim}`;
  const known = prepared.get(name);
  if (known) return known;
  const rows = ROWS + ROWS / (QUERY_EVERY - 1);
  const generated =
    metric === 'hamming'
      ? binaryVectors(rows, dim, 11)
      : clusteredVectors({ rows, dim, clusters: 20, spread: 0.5, seed: 11 });
  const { base, queries } = holdOut(generated, QUERY_EVERY);
  const c: Prepared = {
    metric, base, queries,
    dataFile: join(dir, `${name}.f32`),
    queryFile: join(dir, `${name}-queries.f32`),
    annoyFile: join(dir, `${name}-annoy.ann`),
    canopyFile: join(dir, `${name}-canopy.ann`),
  };
  writeFloat32File(c.dataFile, base);
  writeFloat32File(c.queryFile, queries);
  annoyBuild({ data: c.dataFile, dim, metric, nTrees: TREES, seed: SEED, jobs: 1, out: c.annoyFile });
  prepared.set(name, c);
  return c;
}

function buildCanopy(c: Case): Index {
  const index = new Index({ dim: c.base.dim, metric: c.metric, seed: SEED });
  for (let i = 0; i < c.base.rows; i++) index.addItem(i, row(c.base, i));
  return index;
}

function referenceAnswers(c: Case, file: string): ReferenceAnswers {
  return annoyQuery({
    index: file, dim: c.base.dim, metric: c.metric, k: K, searchKs: SEARCH_KS, queries: c.queryFile,
    byItem: BY_ITEM, itemVectors: [0, 1, ROWS - 1], distancePairs: DISTANCE_PAIRS,
  });
}

const searchOpts = (searchK: number) => (searchK === -1 ? undefined : { searchK });

function expectClose(got: ArrayLike<number>, want: readonly number[], what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  want.forEach((w, i) => {
    const tolerance = 1e-5 * Math.max(1, Math.abs(w));
    expect(Math.abs(got[i]! - w), `${what}[${i}]: got ${got[i]}, annoy ${w}`).toBeLessThanOrEqual(tolerance);
  });
}

function expectSameAnswer(got: { ids: Int32Array; distances: Float32Array }, want: ReferenceAnswer, what: string): void {
  expect(Array.from(got.ids), `${what}: ids`).toEqual(want.ids);
  expectClose(got.distances, want.distances, `${what}: distances`);
}

/** Every query, every search_k, by vector and by item, plus item vectors and distances. */
function expectSameAsAnnoy(index: Index, c: Case, want: ReferenceAnswers, label: string): void {
  expect(index.nItems, `${label}: nItems`).toBe(want.nItems);
  expect(index.nTrees, `${label}: nTrees`).toBe(want.nTrees);
  SEARCH_KS.forEach((searchK, s) => {
    want.byVector![s]!.results.forEach((answer, q) => {
      const got = index.searchSync(row(c.queries, q), K, searchOpts(searchK));
      expectSameAnswer(got, answer, `${label} query ${q} search_k ${searchK}`);
    });
    want.byItem[s]!.results.forEach((answer, n) => {
      const got = index.searchByItemSync(BY_ITEM[n]!, K, searchOpts(searchK));
      expectSameAnswer(got, answer, `${label} item ${BY_ITEM[n]} search_k ${searchK}`);
    });
  });
  [0, 1, ROWS - 1].forEach((item, n) => {
    expect(Array.from(index.getItemVector(item)), `${label}: vector of item ${item}`).toEqual(want.itemVectors[n]);
  });
  DISTANCE_PAIRS.forEach(([i, j], n) => {
    expectClose([index.getDistance(i, j)], [want.distances[n]!], `${label}: distance(${i}, ${j})`);
  });
}

/** The Promise-returning calls answer exactly as the synchronous ones. */
async function expectAsyncSameAsSync(index: Index, c: Case): Promise<void> {
  const vectors = Array.from({ length: c.queries.rows }, (_, q) => row(c.queries, q));
  const batch = await index.searchBatch(vectors, K, { searchK: 250 });
  expect(batch).toHaveLength(vectors.length);
  for (let q = 0; q < vectors.length; q++) {
    const sync = index.searchSync(vectors[q]!, K, { searchK: 250 });
    expect(batch[q], `batch answer ${q}`).toEqual(sync);
  }
  expect(await index.search(vectors[3]!, K)).toEqual(index.searchSync(vectors[3]!, K));
  expect(await index.searchByItem(7, K, { searchK: 25 })).toEqual(index.searchByItemSync(7, K, { searchK: 25 }));
}

// Node layout of annoy 1.17.3, the release on PyPI and the reference here
// (docs/annoy-format.md; dot follows the release, not later
// sources: n_descendants, children[2], dot_factor, then v at 16). Annoy copies a
// split node from an uninitialised stack buffer; every metric's split fills all
// its bytes except hamming's, whose padding (12..16) and bit words after the
// first hold whatever was on the stack (two identical runs of annoy differ
// there). Those bytes carry no meaning; Canopy must write zeros there.
function garbageRanges(metric: Metric, dim: number): [number, number][] {
  return metric === 'hamming' ? [[12, 16], [24, 16 + 8 * Math.ceil(dim / 64)]] : [];
}

function nodeLayout(metric: Metric, dim: number): { size: number; leafMax: number } {
  const header = { angular: 12, euclidean: 16, manhattan: 16, dot: 16, hamming: 16 }[metric];
  const size = metric === 'hamming' ? header + 8 * Math.ceil(dim / 64) : header + 4 * dim;
  const childrenAt = metric === 'euclidean' || metric === 'manhattan' ? 8 : 4;
  return { size, leafMax: (size - childrenAt) / 4 };
}

/** First differing node (outside annoy's garbage bytes), or null when the files agree. */
function firstDifference(metric: Metric, dim: number, canopy: Buffer, annoy: Buffer, nItems: number): string | null {
  if (canopy.length !== annoy.length) return `sizes differ: canopy ${canopy.length} bytes, annoy ${annoy.length}`;
  const { size, leafMax } = nodeLayout(metric, dim);
  const ignore = garbageRanges(metric, dim);
  for (let n = 0; n * size < annoy.length; n++) {
    const a = annoy.subarray(n * size, (n + 1) * size);
    const b = canopy.subarray(n * size, (n + 1) * size);
    const nDescendants = a.readInt32LE(0);
    const isSplit = n >= nItems && nDescendants > leafMax; // roots too: here n_items > K
    const masked = isSplit ? ignore : [];
    const differs = (from: number, to: number) => !a.subarray(from, to).equals(b.subarray(from, to));
    let at = 0;
    for (const [from, to] of [...masked, [size, size] as [number, number]]) {
      if (differs(at, from)) return `node ${n} (n_descendants ${nDescendants}) differs in bytes ${at}..${from}`;
      if (from < to && b.subarray(from, to).some((byte) => byte !== 0)) {
        return `node ${n}: canopy wrote non-zero bytes in ${from}..${to}, which carry no meaning`;
      }
      at = to;
    }
  }
  return null;
}

// 32 = 2 x 16 floats: whole AVX-512 lanes; 37 adds a scalar tail to every kernel.
// Hamming: 100 bits = two 64-bit words, the second partly used.
const ANSWER_CASES: [Metric, number][] = [
  ['angular', 32], ['euclidean', 32], ['manhattan', 32], ['dot', 32], ['hamming', 100],
  ['angular', 37], ['euclidean', 37], ['manhattan', 37], ['dot', 37],
];
const BYTE_CASES = ANSWER_CASES.filter(([, dim]) => dim !== 37);

describe.each(ANSWER_CASES)('%s, dim %i: same answers as annoy', (metric, dim) => {
  let c: Prepared;
  beforeAll(() => {
    c = prepare(metric, dim);
  });

  test('on a file built by python annoy', async () => {
    const index = Index.load(c.annoyFile, { dim, metric });
    expect(index.dim).toBe(dim);
    expect(index.metric).toBe(metric);
    expectSameAsAnnoy(index, c, referenceAnswers(c, c.annoyFile), 'annoy-built file');
    await expectAsyncSameAsSync(index, c);

    const prefaulted = Index.load(c.annoyFile, { dim, metric, prefault: true });
    expect(prefaulted.searchSync(row(c.queries, 0), K)).toEqual(index.searchSync(row(c.queries, 0), K));
    prefaulted.unload();
    index.unload();
  });

  test('on a file built by Canopy, loaded by python annoy', async () => {
    const built = buildCanopy(c);
    await built.build({ nTrees: TREES, threads: 1 });
    built.save(c.canopyFile);
    const want = referenceAnswers(c, c.canopyFile);
    expectSameAsAnnoy(built, c, want, 'canopy-built index, as built');
    const loaded = Index.load(c.canopyFile, { dim, metric });
    expectSameAsAnnoy(loaded, c, want, 'canopy-built file, loaded');
    loaded.unload();
  });
});

describe.each(BYTE_CASES)('%s, dim %i: same bytes for the same seeded single-threaded build', (metric, dim) => {
  let c: Prepared;
  let syncFile: string;
  beforeAll(() => {
    c = prepare(metric, dim);
    syncFile = join(dir, `${metric}-${dim}-canopy-sync.ann`);
    const sync = buildCanopy(c);
    sync.buildSync({ nTrees: TREES, threads: 1 });
    sync.save(syncFile);
  });

  test('build, buildSync and onDiskBuild write one and the same file', async () => {
    const built = buildCanopy(c);
    await built.build({ nTrees: TREES, threads: 1 });
    const asyncFile = join(dir, `${metric}-${dim}-canopy-async.ann`);
    built.save(asyncFile);
    const onDiskFile = join(dir, `${metric}-${dim}-canopy-on-disk.ann`);
    const onDisk = new Index({ dim, metric, seed: SEED });
    onDisk.onDiskBuild(onDiskFile);
    for (let i = 0; i < c.base.rows; i++) onDisk.addItem(i, row(c.base, i));
    onDisk.buildSync({ nTrees: TREES, threads: 1 });
    onDisk.unload();
    expect(readFileSync(asyncFile).equals(readFileSync(syncFile)), 'build vs buildSync').toBe(true);
    expect(readFileSync(onDiskFile).equals(readFileSync(syncFile)), 'onDiskBuild vs in-memory').toBe(true);
  });

  // pip's annoy is compiled with -O3 -march=native -ffast-math -fno-associative-math
  // (its setup.py): matching its bytes means rounding as that build rounds.
  test('as python annoy writes', () => {
    expect(firstDifference(metric, dim, readFileSync(syncFile), readFileSync(c.annoyFile), c.base.rows)).toBeNull();
  });
});

describe('build options as annoy reads them', () => {
  // Threads interleave node ids, so the layout is not reproducible (in annoy
  // either); the file must still be one annoy reads, with every tree in it.
  test.each<Metric>(['angular', 'euclidean'])('a 2-thread build of 7 trees is a file annoy answers from as Canopy does (%s)', (metric) => {
    const c = prepare(metric, 32);
    const built = buildCanopy(c);
    built.buildSync({ nTrees: 7, threads: 2 });
    const file = join(dir, `${metric}-threads.ann`);
    built.save(file);
    const loaded = Index.load(file, { dim: 32, metric });
    expect(loaded.nTrees).toBe(7);
    expectSameAsAnnoy(loaded, c, referenceAnswers(c, file), '2-thread build');
    loaded.unload();
  });

  test('nTrees -1 (the default) adds trees as annoy does: same count, same bytes', () => {
    const c = prepare('euclidean', 32);
    const annoyFile = join(dir, 'default-trees-annoy.ann');
    const built = annoyBuild({ data: c.dataFile, dim: 32, metric: 'euclidean', nTrees: -1, seed: SEED, jobs: 1, out: annoyFile });
    const canopy = buildCanopy(c);
    canopy.buildSync({ threads: 1 });
    const canopyFile = join(dir, 'default-trees-canopy.ann');
    canopy.save(canopyFile);
    expect(canopy.nTrees).toBe(built.nTrees);
    expect(readFileSync(canopyFile).equals(readFileSync(annoyFile))).toBe(true);
  });
});

// Ids need not be dense: an id never added is a hole (an all-zero node) that
// trees and answers skip (annoy #284).
describe('holes', () => {
  test.each<Metric>(['angular', 'dot'])('items at 3i + 1 only: same answers as annoy on its file and on Canopy\'s (%s)', (metric) => {
    const c = prepare(metric, 32);
    const ids = Array.from({ length: c.base.rows }, (_, r) => 3 * r + 1);
    const annoyFile = join(dir, `${metric}-holes-annoy.ann`);
    annoyBuild({ data: c.dataFile, dim: 32, metric, nTrees: TREES, seed: SEED, jobs: 1, out: annoyFile, ids });
    const canopy = new Index({ dim: 32, metric, seed: SEED });
    ids.forEach((id, r) => canopy.addItem(id, row(c.base, r)));
    canopy.buildSync({ nTrees: TREES, threads: 1 });
    const canopyFile = join(dir, `${metric}-holes-canopy.ann`);
    canopy.save(canopyFile);
    expect(canopy.nItems).toBe(3 * c.base.rows - 1);
    for (const file of [annoyFile, canopyFile]) {
      const want = annoyQuery({ index: file, dim: 32, metric, k: K, searchKs: [-1, 250], queries: c.queryFile, byItem: [1, 4, 301] });
      const index = Index.load(file, { dim: 32, metric });
      [-1, 250].forEach((searchK, s) => {
        want.byVector![s]!.results.forEach((answer, q) => {
          const got = index.searchSync(row(c.queries, q), K, searchOpts(searchK));
          expect(Array.from(got.ids).every((id) => id % 3 === 1), 'only real items').toBe(true);
          expectSameAnswer(got, answer, `${file} query ${q} search_k ${searchK}`);
        });
        want.byItem[s]!.results.forEach((answer, n) => {
          expectSameAnswer(index.searchByItemSync([1, 4, 301][n]!, K, searchOpts(searchK)), answer, `${file} item`);
        });
      });
      index.unload();
    }
    expect(readFileSync(canopyFile).equals(readFileSync(annoyFile)), 'same bytes').toBe(true);
  });
});

// Annoy's own test suite checks these hand-worked cases (10 trees, default search_k).
describe('hand-worked cases from annoy', () => {
  function tiny(metric: Metric, items: number[][]): Index {
    const index = new Index({ dim: items[0]!.length, metric, seed: SEED });
    items.forEach((v, i) => index.addItem(i, v));
    index.buildSync({ nTrees: 10 });
    return index;
  }
  const ids = (index: Index, v: number[], n = 3) => Array.from(index.searchSync(v, n).ids);
  const dists = (index: Index, v: number[], n = 3) => Array.from(index.searchSync(v, n).distances);

  test('angular', () => {
    const axes = tiny('angular', [[0, 0, 1], [0, 1, 0], [1, 0, 0]]);
    expect(ids(axes, [3, 2, 1])).toEqual([2, 1, 0]);
    expect(ids(axes, [1, 2, 3])).toEqual([0, 1, 2]);
    expect(ids(axes, [2, 0, 1])).toEqual([2, 0, 1]);
    expect(Array.from(tiny('angular', [[2, 1, 0], [1, 2, 0], [0, 0, 1]]).searchByItemSync(1, 3).ids)).toEqual([1, 0, 2]);
    const pair = (a: number[], b: number[]) => tiny('angular', [a, b]).getDistance(0, 1);
    expect(pair([0, 1], [1, 1])).toBeCloseTo(Math.sqrt(2 * (1 - 2 ** -0.5)), 5);
    expect(pair([1000, 0], [10, 0])).toBeCloseTo(0, 5);
    expect(pair([97, 0], [42, 42])).toBeCloseTo(Math.sqrt((1 - 2 ** -0.5) ** 2 + 0.5), 5);
    expect(pair([1, 0], [0, 0])).toBeCloseTo(Math.SQRT2, 5);
    expect(dists(tiny('angular', [[1, 2, 3], [-1, -2, -3]]), [1, 2, 3], 2)).toEqual([0, 2]);
    expect(ids(tiny('angular', [[1, 2, 3]]), [4, 5, 6])).toEqual([0]);
    const empty = new Index({ dim: 3, metric: 'angular' });
    empty.buildSync({ nTrees: 10 });
    expect(empty.nItems).toBe(0);
    expect(ids(empty, [1, 2, 3])).toEqual([]);
  });

  test('euclidean', () => {
    const square = tiny('euclidean', [[2, 2], [3, 2], [3, 3]]);
    expect(ids(square, [4, 4])).toEqual([2, 1, 0]);
    expect(ids(square, [1, 1])).toEqual([0, 1, 2]);
    expect(ids(square, [4, 2])).toEqual([1, 2, 0]);
    const cube = tiny('euclidean', [[0, 0, 2], [0, 1, 1], [1, 0, 0]]);
    expect(ids(cube, [2, 2, 2])).toEqual([1, 0, 2]);
    expectClose(cube.searchSync([2, 2, 2], 3).distances, [6, 8, 9].map(Math.sqrt), 'euclidean distances');
    expect(tiny('euclidean', [[1, 0], [9, 0]]).getDistance(0, 1)).toBe(8);
  });

  test('manhattan', () => {
    expect(ids(tiny('manhattan', [[2, 2], [3, 2], [3, 3]]), [5, 3])).toEqual([2, 1, 0]);
    const cube = tiny('manhattan', [[0, 0, 2], [0, 1, 1], [1, 0, 0]]);
    expect(ids(cube, [2, 2, 1])).toEqual([1, 2, 0]);
    expect(dists(cube, [2, 2, 1])).toEqual([3, 4, 5]);
  });

  test('dot returns inner products, largest first', () => {
    const square = tiny('dot', [[2, 2], [3, 2], [3, 3]]);
    for (const q of [[1, 1], [4, 4], [1, 0.9], [0.9, 1]]) expect(ids(square, q)).toEqual([2, 1, 0]);
    const cube = tiny('dot', [[0, 0, 2], [0, 1, 1], [1, 0, 0]]);
    expect(Array.from(cube.searchByItemSync(0, 3).distances)).toEqual([4, 2, 0]);
    expect(ids(cube, [2, 2, 2])).toEqual([0, 1, 2]);
    expect(dists(cube, [2, 2, 2])).toEqual([4, 4, 2]);
    expect(tiny('dot', [[0, 1], [1, 1]]).getDistance(0, 1)).toBe(1);
  });
});

// Annoy's test/test.tree came from an older writer: trees in pre-order and no
// cached norms in item nodes. Loading must rely only on the trailing root copies
// and recompute a zero norm, as annoy does.
describe('legacy layout (like annoy test/test.tree)', () => {
  test('angular f=10, 100 items, 10 trees: same answers as annoy and as the modern layout', () => {
    const small = clusteredVectors({ rows: 100, dim: 10, clusters: 5, spread: 0.5, seed: 3 });
    const data = join(dir, 'legacy.f32');
    writeFloat32File(data, small);
    const modern = join(dir, 'legacy-modern.ann');
    const legacy = join(dir, 'legacy.ann');
    annoyBuild({ data, dim: 10, metric: 'angular', nTrees: 10, seed: SEED, jobs: 1, out: modern });
    runPythonJson(join(__dirname, '..', 'support', 'annoy_reference.py'), { op: 'legacy', index: modern, dim: 10, out: legacy });
    const items = Array.from({ length: 100 }, (_, i) => i);
    const want = annoyQuery({ index: legacy, dim: 10, metric: 'angular', k: 10, searchKs: [-1], byItem: items });
    const index = Index.load(legacy, { dim: 10, metric: 'angular' });
    const modernIndex = Index.load(modern, { dim: 10, metric: 'angular' });
    expect(index.nTrees).toBe(10);
    expect(index.nItems).toBe(100);
    want.byItem[0]!.results.forEach((answer, i) => {
      expectSameAnswer(index.searchByItemSync(i, 10), answer, `legacy item ${i}`);
      expect(index.searchByItemSync(i, 10)).toEqual(modernIndex.searchByItemSync(i, 10));
    });
  });
});
