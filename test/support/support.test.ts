// The test helpers are part of the proof: a wrong brute force would make every
// recall figure meaningless. Checked against hand-worked cases and against the
// real Python annoy run exhaustively.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import type { Metric } from '../../src/format/metric';
import { annoyBuild, annoyQuery } from './annoy-reference';
import { bruteForceAll, bruteForceTopK, recallAtK } from './brute-force';
import { holdOut, makeMatrix, writeFloat32File } from './matrix';
import { loadMnist } from './mnist';
import { binaryVectors, clusteredVectors, gaussianVectors } from './vectors';

const dir = mkdtempSync(join(tmpdir(), 'canopy-support-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const points = (rows: number[][]) => makeMatrix(rows.length, rows[0]!.length, Float32Array.from(rows.flat()));
const ids = (metric: Metric, rows: number[][], q: number[]) =>
  Array.from(bruteForceTopK(points(rows), Float32Array.from(q), rows.length, metric).ids);

describe('bruteForceTopK', () => {
  test('orders by each metric as Annoy does', () => {
    expect(ids('euclidean', [[2, 2], [3, 2], [3, 3]], [4, 4])).toEqual([2, 1, 0]);
    expect(ids('euclidean', [[2, 2], [3, 2], [3, 3]], [4, 2])).toEqual([1, 2, 0]);
    expect(ids('manhattan', [[2, 2], [3, 2], [3, 3]], [5, 3])).toEqual([2, 1, 0]);
    expect(ids('angular', [[0, 0, 1], [0, 1, 0], [1, 0, 0]], [3, 2, 1])).toEqual([2, 1, 0]);
    expect(ids('angular', [[0, 0, 1], [0, 1, 0], [1, 0, 0]], [2, 0, 1])).toEqual([2, 0, 1]);
    expect(ids('dot', [[2, 2], [3, 2], [3, 3]], [1, 1])).toEqual([2, 1, 0]);
    expect(ids('hamming', [[1, 1, 0], [0, 0, 0], [1, 0, 0]], [1, 1, 1])).toEqual([0, 2, 1]);
  });

  test('reports distances as Annoy does', () => {
    const near = (metric: Metric, rows: number[][], q: number[]) =>
      Array.from(bruteForceTopK(points(rows), Float32Array.from(q), rows.length, metric).distances);
    expect(near('euclidean', [[0, 0, 2], [0, 1, 1], [1, 0, 0]], [2, 2, 2])).toEqual([Math.sqrt(6), Math.sqrt(8), 3]);
    expect(near('manhattan', [[0, 0, 2], [0, 1, 1], [1, 0, 0]], [2, 2, 1])).toEqual([3, 4, 5]);
    expect(near('dot', [[0, 0, 2], [0, 1, 1], [1, 0, 0]], [2, 2, 2])).toEqual([4, 4, 2]);
    expect(near('angular', [[1, 0]], [-1, 0])).toEqual([2]);
    expect(near('angular', [[0, 0]], [1, 0])).toEqual([Math.sqrt(2)]);
  });

  test('breaks ties by the smaller id and returns at most n rows', () => {
    const got = bruteForceTopK(points([[1, 0], [0, 1], [1, 0]]), Float32Array.from([1, 0]), 10, 'euclidean');
    expect(Array.from(got.ids)).toEqual([0, 2, 1]);
  });

  // Annoy with search_k far above n visits every item, so it answers exactly.
  test.each<Metric>(['angular', 'euclidean', 'manhattan', 'dot', 'hamming'])(
    'agrees with exhaustive python annoy (%s)',
    (metric) => {
      const dim = 16;
      const data = metric === 'hamming' ? binaryVectors(400, 64, 7) : gaussianVectors(400, dim, 7);
      const { base, queries } = holdOut(data, 20);
      writeFloat32File(join(dir, `${metric}.f32`), base);
      writeFloat32File(join(dir, `${metric}-q.f32`), queries);
      const index = join(dir, `${metric}.ann`);
      annoyBuild({ data: join(dir, `${metric}.f32`), dim: data.dim, metric, nTrees: 3, seed: 1, out: index });
      const annoy = annoyQuery({
        index, dim: data.dim, metric, k: 5, searchKs: [100_000], queries: join(dir, `${metric}-q.f32`),
      });
      const truth = bruteForceAll(base, queries, 5, metric);
      const answers = annoy.byVector![0]!.results;
      answers.forEach((answer, q) => {
        // Exact ids could differ only on an exact distance tie (hamming has many):
        // compare distances, which are what a tie leaves unchanged.
        const tol = (x: number) => 1e-5 * Math.max(1, Math.abs(x));
        answer.distances.forEach((d, r) => expect(Math.abs(d - truth[q]!.distances[r]!)).toBeLessThan(tol(d)));
        if (metric !== 'hamming') expect(answer.ids).toEqual(Array.from(truth[q]!.ids));
      });
    },
  );
});

describe('recallAtK', () => {
  test('counts shared ids over k per query', () => {
    expect(recallAtK([[1, 2, 3], [4, 5, 6]], [[3, 2, 9], [4, 5, 6]], 3)).toBeCloseTo(5 / 6);
    expect(recallAtK([[1, 2, 3]], [[1, 2, 4]], 2)).toBe(1);
    expect(() => recallAtK([], [], 10)).toThrow(/one answer per query/);
  });
});

describe('data', () => {
  test('generators are deterministic per seed', () => {
    const a = clusteredVectors({ rows: 50, dim: 8, clusters: 4, spread: 0.1, seed: 3 });
    const b = clusteredVectors({ rows: 50, dim: 8, clusters: 4, spread: 0.1, seed: 3 });
    const c = clusteredVectors({ rows: 50, dim: 8, clusters: 4, spread: 0.1, seed: 4 });
    expect(a.data).toEqual(b.data);
    expect(a.data).not.toEqual(c.data);
  });

  test('MNIST loads 10,000 digits of 784 pixels in [0, 1], digits interleaved', () => {
    const { vectors, labels } = loadMnist();
    expect(vectors.rows).toBe(10_000);
    expect(vectors.dim).toBe(784);
    expect(vectors.data.every((v) => v >= 0 && v <= 1)).toBe(true);
    expect(Array.from(labels.subarray(0, 10))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(new Set(labels).size).toBe(10);
  });
});
