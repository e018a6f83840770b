// Exact nearest neighbours by scanning every row: the ground truth that recall
// is measured against. Distances follow Annoy's per-metric definitions, so a
// brute-force answer can also be compared value by value with the engine's.
import type { Metric } from '../../src/format/metric';
import { row, type Matrix } from './matrix';

export interface Neighbours {
  readonly ids: Int32Array;
  /** As Annoy returns them: distances (dot: inner products), best first. */
  readonly distances: Float64Array;
}

/**
 * Per-metric scan of a base matrix: `key(i, query, offset)` orders rows (smaller
 * is closer) and `reported` turns a key into the distance Annoy returns. Row norms
 * are computed once per scan, not once per query; loops index the flat array
 * directly because this runs n x queries x dim times.
 */
interface Scan {
  key(i: number, q: Float32Array, qq: number): number;
  reported(key: number): number;
}

function dotAt(data: Float32Array, offset: number, q: Float32Array): number {
  let s0 = 0;
  let s1 = 0;
  let d = 0;
  for (; d + 1 < q.length; d += 2) {
    s0 += data[offset + d]! * q[d]!;
    s1 += data[offset + d + 1]! * q[d + 1]!;
  }
  if (d < q.length) s0 += data[offset + d]! * q[d]!;
  return s0 + s1;
}

function squaredNorms(base: Matrix): Float64Array {
  const norms = new Float64Array(base.rows);
  for (let i = 0; i < base.rows; i++) norms[i] = dotAt(base.data, i * base.dim, row(base, i));
  return norms;
}

const SCANS: Record<Metric, (base: Matrix) => Scan> = {
  angular(base) {
    const pp = squaredNorms(base);
    return {
      key(i, q, qq) {
        const ppqq = pp[i]! * qq;
        return ppqq > 0 ? 2 - (2 * dotAt(base.data, i * base.dim, q)) / Math.sqrt(ppqq) : 2;
      },
      reported: (key) => Math.sqrt(Math.max(key, 0)),
    };
  },
  euclidean(base) {
    const { data, dim } = base;
    return {
      key(i, q) {
        const offset = i * dim;
        let s0 = 0;
        let s1 = 0;
        let d = 0;
        for (; d + 1 < dim; d += 2) {
          const a = data[offset + d]! - q[d]!;
          const b = data[offset + d + 1]! - q[d + 1]!;
          s0 += a * a;
          s1 += b * b;
        }
        if (d < dim) s0 += (data[offset + d]! - q[d]!) ** 2;
        return s0 + s1;
      },
      reported: (key) => Math.sqrt(Math.max(key, 0)),
    };
  },
  manhattan(base) {
    const { data, dim } = base;
    return {
      key(i, q) {
        let s = 0;
        for (let d = 0; d < dim; d++) s += Math.abs(data[i * dim + d]! - q[d]!);
        return s;
      },
      reported: (key) => Math.max(key, 0),
    };
  },
  dot(base) {
    return {
      key: (i, q) => -dotAt(base.data, i * base.dim, q),
      reported: (key) => -key,
    };
  },
  hamming(base) {
    // Annoy stores bit d as (value > 0.5).
    const { data, dim } = base;
    return {
      key(i, q) {
        let s = 0;
        for (let d = 0; d < dim; d++) s += data[i * dim + d]! > 0.5 !== q[d]! > 0.5 ? 1 : 0;
        return s;
      },
      reported: (key) => key,
    };
  },
};

function topK(base: Matrix, scan: Scan, query: Float32Array, k: number): Neighbours {
  const take = Math.min(k, base.rows);
  const qq = dotAt(query, 0, query);
  // Sorted insertion into a k-slot buffer: k is small, so this beats sorting n keys.
  const keys = new Float64Array(take).fill(Infinity);
  const ids = new Int32Array(take).fill(-1);
  for (let i = 0; i < base.rows; i++) {
    const key = scan.key(i, query, qq);
    if (!(key < keys[take - 1]!)) continue; // ties keep the earlier (smaller) id
    let at = take - 1;
    while (at > 0 && key < keys[at - 1]!) {
      keys[at] = keys[at - 1]!;
      ids[at] = ids[at - 1]!;
      at--;
    }
    keys[at] = key;
    ids[at] = i;
  }
  return { ids, distances: keys.map(scan.reported) };
}

/** The k rows of `base` closest to `query`, ties broken by smaller id (as Annoy does). */
export function bruteForceTopK(base: Matrix, query: Float32Array, k: number, metric: Metric): Neighbours {
  return topK(base, SCANS[metric](base), query, k);
}

/** Brute-force top-k of every row of `queries`. */
export function bruteForceAll(base: Matrix, queries: Matrix, k: number, metric: Metric): Neighbours[] {
  const scan = SCANS[metric](base);
  const out: Neighbours[] = [];
  for (let q = 0; q < queries.rows; q++) out.push(topK(base, scan, row(queries, q), k));
  return out;
}

/**
 * Mean over queries of |found[:k] ∩ truth[:k]| / k. Ids only: a tie at the k-th
 * distance can make an equally good answer count as a miss, which only ever
 * lowers recall.
 */
export function recallAtK(found: readonly ArrayLike<number>[], truth: readonly ArrayLike<number>[], k: number): number {
  if (found.length !== truth.length || truth.length === 0) {
    throw new RangeError(`recall needs one answer per query: ${found.length} answers, ${truth.length} truths`);
  }
  let hits = 0;
  for (let q = 0; q < truth.length; q++) {
    const want = new Set(Array.from(truth[q]!).slice(0, k));
    hits += Array.from(found[q]!).slice(0, k).filter((id) => want.has(id)).length;
  }
  return hits / (k * truth.length);
}
