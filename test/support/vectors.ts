// Deterministic, seeded test vectors. Same seed, same numbers, on every
// machine: thresholds tuned on this data stay meaningful.
import { makeMatrix, type Matrix } from './matrix';

/** mulberry32: a tiny 32-bit generator, good enough for test data (not for the engine). */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Standard normal, by Box-Muller (one value per call; the twin is dropped for simplicity). */
  gaussian(): number {
    const u = 1 - this.next(); // (0, 1], so log(u) is finite
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  /** Integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** rows x dim independent standard normal values. */
export function gaussianVectors(rows: number, dim: number, seed: number): Matrix {
  const rng = new SeededRandom(seed);
  const m = makeMatrix(rows, dim);
  for (let i = 0; i < m.data.length; i++) m.data[i] = rng.gaussian();
  return m;
}

export interface ClusterOptions {
  rows: number;
  dim: number;
  clusters: number;
  /** Standard deviation of points around their centre; centres are standard normal. */
  spread: number;
  seed: number;
}

/**
 * Gaussian blobs: each row picks a centre at random and adds isotropic noise.
 * Real embeddings are clumpy like this, which is what makes ANN trees pay off
 * and what a regression in split quality shows up on.
 */
export function clusteredVectors(opts: ClusterOptions): Matrix {
  const rng = new SeededRandom(opts.seed);
  const centres = gaussianVectors(opts.clusters, opts.dim, opts.seed ^ 0x5bd1e995);
  const m = makeMatrix(opts.rows, opts.dim);
  for (let i = 0; i < opts.rows; i++) {
    const c = rng.below(opts.clusters) * opts.dim;
    for (let d = 0; d < opts.dim; d++) {
      m.data[i * opts.dim + d] = centres.data[c + d]! + opts.spread * rng.gaussian();
    }
  }
  return m;
}

/** rows x dim values in {0, 1}, for the hamming metric. */
export function binaryVectors(rows: number, dim: number, seed: number): Matrix {
  const rng = new SeededRandom(seed);
  const m = makeMatrix(rows, dim);
  for (let i = 0; i < m.data.length; i++) m.data[i] = rng.next() < 0.5 ? 0 : 1;
  return m;
}
