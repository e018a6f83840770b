// Sidecar codes through the TypeScript Index: recall through codes against exact mode at the same
// searchK (each metric), exact: true identical to pip annoy, and refused sidecars (stale, foreign,
// truncated, corrupt) failing with BAD_FILE while the index keeps serving exactly.
import { readFileSync, writeFileSync } from 'node:fs';

import { afterAll, describe, expect, test } from 'vitest';

import { Index } from '../../../src';
import type { Metric } from '../../../src/format/metric';
import { annoyBuild, annoyQuery } from '../../support/annoy-reference';
import { bruteForceAll, recallAtK } from '../../support/brute-force';
import { scratchDir } from '../../support/engine-fixtures';
import { holdOut, row, writeFloat32File, type Matrix } from '../../support/matrix';
import { clusteredVectors } from '../../support/vectors';

const K = 10;
const TREES = 10;
const SEED = 42;
const scratch = scratchDir();
afterAll(() => scratch.cleanup());

function data(dim: number, seed: number): { base: Matrix; queries: Matrix } {
  return holdOut(clusteredVectors({ rows: 4100, dim, clusters: 25, spread: 0.6, seed }), 41);
}

function build(metric: Metric, base: Matrix, seed = SEED): Index {
  const index = new Index({ dim: base.dim, metric, seed });
  for (let i = 0; i < base.rows; i++) index.addItem(i, row(base, i));
  index.buildSync({ nTrees: TREES, threads: 1 });
  return index;
}

function searchAll(index: Index, queries: Matrix, opts: { searchK: number; exact?: boolean }): Int32Array[] {
  return Array.from({ length: queries.rows }, (_, q) => index.searchSync(row(queries, q), K, opts).ids);
}

describe.each<Metric>(['angular', 'euclidean', 'manhattan', 'dot'])('codes, %s', (metric) => {
  test('recall through codes is within 0.01 of exact mode at the same searchK; distances are exact', () => {
    const { base, queries } = data(32, 7);
    const index = build(metric, base);
    const codes = scratch.file(`${metric}.codes`);
    index.saveCodes(codes);
    expect(index.hasCodes).toBe(true);
    const truth = bruteForceAll(base, queries, K, metric).map((n) => n.ids);
    for (const searchK of [1000, 3000]) {
      const exact = recallAtK(searchAll(index, queries, { searchK, exact: true }), truth, K);
      const coded = recallAtK(searchAll(index, queries, { searchK }), truth, K);
      expect(coded, `searchK ${searchK}: exact ${exact}, codes ${coded}`).toBeGreaterThanOrEqual(exact - 0.01);
    }
    // a returned distance is the exact one: the same float the exact search returns for that id
    for (let q = 0; q < queries.rows; q++) {
      const exact = index.searchSync(row(queries, q), base.rows, { exact: true, searchK: base.rows * TREES });
      const byId = new Map(Array.from(exact.ids, (id, i) => [id, exact.distances[i]]));
      const coded = index.searchSync(row(queries, q), K, { searchK: 3000 });
      coded.ids.forEach((id, i) => expect(coded.distances[i]).toBe(byId.get(id)));
    }
  });
});

test('exact: true answers as pip annoy does, with codes loaded', () => {
  const { base, queries } = data(24, 3);
  const dataFile = scratch.file('ref.f32');
  const queryFile = scratch.file('ref-queries.f32');
  const annFile = scratch.file('ref.ann');
  writeFloat32File(dataFile, base);
  writeFloat32File(queryFile, queries);
  annoyBuild({ data: dataFile, dim: 24, metric: 'euclidean', nTrees: TREES, seed: SEED, out: annFile });
  const index = Index.load(annFile, { dim: 24, metric: 'euclidean' });
  index.saveCodes(scratch.file('ref.codes'));
  const reference = annoyQuery({ index: annFile, dim: 24, metric: 'euclidean', k: K, searchKs: [-1, 300], queries: queryFile });
  for (const sweep of reference.byVector ?? []) {
    sweep.results.forEach((want, q) => {
      const got = index.searchSync(row(queries, q), K, { searchK: sweep.searchK, exact: true });
      expect(Array.from(got.ids)).toEqual(want.ids);
      got.distances.forEach((d, i) => expect(d).toBeCloseTo(want.distances[i]!, 5));
    });
  }
});

describe('refused sidecars', () => {
  const { base, queries } = data(16, 5);
  const annFile = scratch.file('served.ann');
  const codesFile = scratch.file('served.codes');
  const original = build('euclidean', base);
  original.save(annFile);
  original.saveCodes(codesFile);
  const sidecar = readFileSync(codesFile);

  function expectRefused(path: string, reason: RegExp): void {
    const index = Index.load(annFile, { dim: 16, metric: 'euclidean' });
    const before = index.searchSync(row(queries, 0), K, { searchK: 500 });
    expect(() => index.loadCodes(path)).toThrow(expect.objectContaining({ code: 'BAD_FILE', message: expect.stringMatching(reason) }));
    expect(() => index.loadCodes(path)).toThrow(path);
    expect(index.hasCodes).toBe(false);
    expect(index.searchSync(row(queries, 0), K, { searchK: 500 })).toEqual(before);  // still serving, exactly
    index.unload();
  }

  test('stale: written for another build of the forest', () => {
    const rebuilt = build('euclidean', base, SEED + 1);
    const stale = scratch.file('stale.codes');
    rebuilt.saveCodes(stale);
    expectRefused(stale, /is stale/);
  });

  test('foreign: another metric or dimension, or not a sidecar at all', () => {
    const other = build('angular', base);
    const foreign = scratch.file('foreign.codes');
    other.saveCodes(foreign);
    expectRefused(foreign, /belongs to another forest/);
    expectRefused(annFile, /not a Canopy sidecar/);
  });

  test('truncated anywhere', () => {
    const cut = scratch.file('cut.codes');
    for (const size of [0, 40, 100, 1000, sidecar.length - 100]) {
      writeFileSync(cut, sidecar.subarray(0, size));
      expectRefused(cut, /truncated|shorter|too short/);
    }
  });

  test('corrupt: a flipped byte in the header, the table or a section', () => {
    const bad = scratch.file('flipped.codes');
    for (const at of [20, 70, 400, 5000, sidecar.length - 70]) {
      const copy = Buffer.from(sidecar);
      copy[at]! ^= 0x10;
      writeFileSync(bad, copy);
      expectRefused(bad, /corrupt|another forest|is stale/);
    }
  });

  test('the sidecar saved with the forest loads beside it', () => {
    const index = Index.load(annFile, { dim: 16, metric: 'euclidean' });
    index.loadCodes(codesFile);
    expect(index.hasCodes).toBe(true);
    expect(index.searchSync(row(queries, 0), K).ids.length).toBe(K);
  });
});
