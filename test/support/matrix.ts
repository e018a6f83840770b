// A dense row-major float32 matrix: the one shape test data takes, whether it
// is handed to the engine row by row or written to disk for the Python peer.
import { writeFileSync } from 'node:fs';

export interface Matrix {
  readonly rows: number;
  readonly dim: number;
  /** rows * dim values, row i at [i * dim, (i + 1) * dim). */
  readonly data: Float32Array;
}

export function makeMatrix(rows: number, dim: number, data = new Float32Array(rows * dim)): Matrix {
  if (data.length !== rows * dim) {
    throw new RangeError(`matrix data has ${data.length} values, expected ${rows} x ${dim}`);
  }
  return { rows, dim, data };
}

/** A view (no copy) of row i; it lives as long as the matrix. */
export function row(m: Matrix, i: number): Float32Array {
  return m.data.subarray(i * m.dim, (i + 1) * m.dim);
}

/** The given rows, copied in order into a new matrix. */
export function selectRows(m: Matrix, ids: readonly number[]): Matrix {
  const out = makeMatrix(ids.length, m.dim);
  ids.forEach((id, k) => out.data.set(row(m, id), k * m.dim));
  return out;
}

/**
 * Splits rows into (base, queries): every `everyNth` row becomes a query, the
 * rest stay in the base in their original order, renumbered from 0.
 */
export function holdOut(m: Matrix, everyNth: number): { base: Matrix; queries: Matrix } {
  const baseIds: number[] = [];
  const queryIds: number[] = [];
  for (let i = 0; i < m.rows; i++) (i % everyNth === everyNth - 1 ? queryIds : baseIds).push(i);
  return { base: selectRows(m, baseIds), queries: selectRows(m, queryIds) };
}

/** Raw little-endian float32, row major: what test/support/annoy_reference.py reads. */
export function writeFloat32File(path: string, m: Matrix): void {
  writeFileSync(path, Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
}
