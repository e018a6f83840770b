// Shared helpers for the engine's unit tests: deterministic vectors and a scratch directory.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { Index, type Metric } from '../../src';

/** Deterministic pseudo-random vectors (xorshift), in [-1, 1). */
export function vectors(n: number, dim: number, seed = 1): Float32Array[] {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) / 2 ** 32) * 2 - 1;
  };
  return Array.from({ length: n }, () => Float32Array.from({ length: dim }, next));
}

export function builtIndex(metric: Metric, items: Float32Array[], nTrees = 10, threads = 1, seed?: number): Index {
  const index = new Index({ dim: items[0]!.length, metric, seed });
  items.forEach((v, i) => index.addItem(i, v));
  index.buildSync({ nTrees, threads });
  return index;
}

/** A temporary directory, removed by the returned cleanup. */
export function scratchDir(): { dir: string; file: (name: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'canopy-engine-'));
  return { dir, file: (name) => path.join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
