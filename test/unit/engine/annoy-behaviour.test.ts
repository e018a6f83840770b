// Annoy's published behaviour per metric on small hand-made inputs (docs/annoy-format.md, "Search").
import { describe, expect, test } from 'vitest';

import { Index, type Metric } from '../../../src';

function built(metric: Metric, items: number[][], nTrees = 10): Index {
  const index = new Index({ dim: items[0]!.length, metric });
  items.forEach((v, i) => index.addItem(i, v));
  index.buildSync({ nTrees, threads: 1 });
  return index;
}

const ids = (index: Index, q: number[], k = 3) => Array.from(index.searchSync(q, k).ids);

describe('angular', () => {
  test('neighbour order', () => {
    const index = built('angular', [[0, 0, 1], [0, 1, 0], [1, 0, 0]]);
    expect(ids(index, [3, 2, 1])).toEqual([2, 1, 0]);
    expect(ids(index, [1, 2, 3])).toEqual([0, 1, 2]);
    expect(ids(index, [2, 0, 1])).toEqual([2, 0, 1]);
    const byItem = built('angular', [[2, 1, 0], [1, 2, 0], [0, 0, 1]]);
    expect(Array.from(byItem.searchByItemSync(1, 3).ids)).toEqual([1, 0, 2]);
  });

  test('distances', () => {
    const d = (a: number[], b: number[]) => built('angular', [a, b]).getDistance(0, 1);
    expect(d([0, 1], [1, 1])).toBeCloseTo(Math.sqrt(2 * (1 - 2 ** -0.5)), 5);
    expect(d([1000, 0], [10, 0])).toBeCloseTo(0, 5);
    expect(d([97, 0], [42, 42])).toBeCloseTo(Math.sqrt((1 - 2 ** -0.5) ** 2 + 0.5), 5);
    expect(d([1, 0], [0, 0])).toBeCloseTo(Math.SQRT2, 5);
    const opposite = built('angular', [[1, 2, 3], [-1, -2, -3]]).searchSync([1, 2, 3], 2);
    expect(Array.from(opposite.distances).map((x) => Math.round(x * 1e5) / 1e5)).toEqual([0, 2]);
  });

  test('one item and zero items', () => {
    expect(ids(built('angular', [[1, 1]]), [1, 1], 5)).toEqual([0]);
    const empty = new Index({ dim: 2, metric: 'angular' });
    empty.buildSync({ nTrees: 3 });
    expect(empty.nItems).toBe(0);
    expect(ids(empty, [1, 1], 5)).toEqual([]);
  });
});

describe('euclidean', () => {
  test('neighbour order and distances', () => {
    const index = built('euclidean', [[2, 2], [3, 2], [3, 3]]);
    expect(ids(index, [4, 4])).toEqual([2, 1, 0]);
    expect(ids(index, [1, 1])).toEqual([0, 1, 2]);
    expect(ids(index, [4, 2])).toEqual([1, 2, 0]);
    const three = built('euclidean', [[0, 0, 2], [0, 1, 1], [1, 0, 0]]);
    expect([0, 1, 2].map((j) => three.getDistance(0, j) ** 2).map(Math.round)).toEqual([0, 2, 5]);
    const r = three.searchSync([2, 2, 2], 3);
    expect(Array.from(r.ids)).toEqual([1, 0, 2]);
    expect(Array.from(r.distances).map((x) => Math.round(x * x))).toEqual([6, 8, 9]);
    expect(built('euclidean', [[1, 0], [9, 0]]).getDistance(0, 1)).toBe(8);
    expect(built('euclidean', [[0.712593], [0.7123166]]).getDistance(0, 1)).toBeGreaterThanOrEqual(0);
  });
});

describe('manhattan', () => {
  test('neighbour order and distances', () => {
    const index = built('manhattan', [[2, 2], [3, 2], [3, 3]]);
    expect(ids(index, [5, 3])).toEqual([2, 1, 0]);
    const three = built('manhattan', [[0, 0, 2], [0, 1, 1], [1, 0, 0]]);
    expect([0, 1, 2].map((j) => three.getDistance(0, j))).toEqual([0, 2, 3]);
    const r = three.searchSync([2, 2, 1], 3);
    expect(Array.from(r.ids)).toEqual([1, 2, 0]);
    expect(Array.from(r.distances)).toEqual([3, 4, 5]);
  });
});

describe('dot', () => {
  test('inner products, largest first', () => {
    const index = built('dot', [[2, 2], [3, 2], [3, 3]]);
    for (const q of [[1, 1], [2, 1], [1, 2]]) expect(ids(index, q)).toEqual([2, 1, 0]);
    expect(built('dot', [[0, 1], [1, 1]]).getDistance(0, 1)).toBe(1);
    const three = built('dot', [[0, 0, 2], [0, 1, 1], [1, 0, 0]]);
    expect(Array.from(three.searchByItemSync(0, 3).distances)).toEqual([4, 2, 0]);
    const r = three.searchSync([2, 2, 2], 3);
    expect(Array.from(r.ids)).toEqual([0, 1, 2]);
    expect(Array.from(r.distances)).toEqual([4, 4, 2]);
  });
});

describe('hamming', () => {
  test('distance is the number of differing bits, and bits round-trip', () => {
    const a = Array.from({ length: 100 }, (_, i) => (i % 3 === 0 ? 1 : 0));
    const b = a.map((x, i) => (i < 7 ? 1 - x : x));
    const index = built('hamming', [a, b]);
    expect(index.getDistance(0, 1)).toBe(7);
    expect(Array.from(index.getItemVector(1))).toEqual(b);
    const r = index.searchSync(b, 2);
    expect(Array.from(r.ids)).toEqual([1, 0]);
    expect(Array.from(r.distances)).toEqual([0, 7]);
  });
});
