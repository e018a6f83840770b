// Sharding must not cost recall: the MNIST digits built as 1 shard and as 3
// shards (by `canopy build`, from a real .npy), queried with the same per-shard
// search_k, the 3 shards' top-k merged by distance. Recall@10 against brute
// force of the 3-shard build is within 0.02 of the 1-shard build's.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, expect, test } from 'vitest';

import { readIdsFile } from '../../src/format/ids-file';
import { parseManifest } from '../../src/format/manifest';
import { Index } from '../../src';
import { bruteForceAll, recallAtK } from '../support/brute-force';
import { runCanopy } from '../support/cli';
import { holdOut, row, type Matrix } from '../support/matrix';
import { loadMnist } from '../support/mnist';
import { writeNpy } from '../support/input-files';

const K = 10;
const SEARCH_K = 500;
const TREES = 10;

const dir = mkdtempSync(join(tmpdir(), 'canopy-build-recall-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let base: Matrix;
let queries: Matrix;
beforeAll(() => {
  // Every 50th digit is a query (200), the other 9,800 are the index.
  ({ base, queries } = holdOut(loadMnist().vectors, 50));
  writeNpy(join(dir, 'mnist.npy'), base);
});

/** Builds with `shards` shards and answers every query by merging the shards' top-k by distance. */
async function buildAndSearch(shards: number): Promise<number[][]> {
  const out = join(dir, `out-${shards}`);
  const result = await runCanopy([
    'build', '--input', join(dir, 'mnist.npy'), '--format', 'npy', '--metric', 'euclidean',
    '--trees', String(TREES), '--shards', String(shards), '--threads', '2', '--out', out, '--version', 'v1',
  ], 120_000);
  expect(result.stderr).toContain(`canopy build: mnist/v1: 9800 items, dim 784, ${shards} shards x ${TREES} trees`);
  expect(result.code).toBe(0);
  const version = join(out, 'v1');
  const manifest = parseManifest(readFileSync(join(version, 'manifest.json'), 'utf8'), version);
  const loaded = await Promise.all(
    manifest.shards.map(async (s) => ({
      index: Index.load(join(version, s.file), { dim: manifest.dim, metric: manifest.metric }),
      ids: (await readIdsFile(join(version, s.idsFile))).map(Number),
    })),
  );
  try {
    const answers: number[][] = [];
    for (let q = 0; q < queries.rows; q++) {
      const merged: { id: number; distance: number }[] = [];
      for (const { index, ids } of loaded) {
        const found = await index.search(row(queries, q), K, { searchK: SEARCH_K });
        found.ids.forEach((item, i) => merged.push({ id: ids[item]!, distance: found.distances[i]! }));
      }
      merged.sort((a, b) => a.distance - b.distance || a.id - b.id);
      answers.push(merged.slice(0, K).map((m) => m.id));
    }
    return answers;
  } finally {
    for (const { index } of loaded) index.unload();
  }
}

test('3 shards answer with recall@10 within 0.02 of 1 shard at the same per-shard search_k', async () => {
  const truth = bruteForceAll(base, queries, K, 'euclidean').map((n) => n.ids);
  const oneShard = recallAtK(await buildAndSearch(1), truth, K);
  const threeShards = recallAtK(await buildAndSearch(3), truth, K);
  console.log(`MNIST recall@${K}, ${TREES} trees, search_k ${SEARCH_K} per shard: 1 shard ${oneShard.toFixed(3)}, 3 shards ${threeShards.toFixed(3)}`);
  // The comparison means something only if the index is doing real work.
  expect(oneShard).toBeGreaterThan(0.6);
  expect(oneShard).toBeLessThan(1);
  expect(threeShards).toBeGreaterThanOrEqual(oneShard - 0.02);
});
