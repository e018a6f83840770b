// `canopy build` as a real process, from a real file in every input format to
// a version folder: the manifest describes it, every id lands on the shard the
// partitioner names, every item's vector is the input row with that id (read
// back by the engine and by Python annoy), and `canopy inspect` accepts it.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { readIdsFile } from '../../src/format/ids-file';
import { parseManifest, type Manifest } from '../../src/format/manifest';
import { shardOfId } from '../../src/format/partition';
import { Index } from '../../src';
import type { Metric } from '../../src/format/metric';
import { annoyQuery } from '../support/annoy-reference';
import { runCanopy } from '../support/cli';
import { makeMatrix, row, type Matrix } from '../support/matrix';
import { binaryVectors, clusteredVectors } from '../support/vectors';
import { words, writeAnn, writeIdsNpy, writeJsonl, writeNpy, writeParquet, writeVecs, writeWord2vecBinary, writeWord2vecText } from '../support/input-files';

const dir = mkdtempSync(join(tmpdir(), 'canopy-build-formats-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ROWS = 2_000;
const DIM = 16;
const data = clusteredVectors({ rows: ROWS, dim: DIM, clusters: 20, spread: 0.3, seed: 5 });
const bytes = makeMatrix(ROWS, DIM, data.data.map((v) => Math.min(255, Math.max(0, Math.round(128 + 40 * v)))));
const rowIds = Array.from({ length: ROWS }, (_, i) => String(i));

interface Case {
  readonly format: string;
  readonly extra?: readonly string[];
  readonly metric: Metric;
  readonly vectors: Matrix;
  readonly ids: readonly string[];
  readonly write: (file: string) => void;
}

const vocabulary = words(ROWS);
const jsonIds = Array.from({ length: ROWS }, (_, i) => `item/${i}`);
const trackIds = Array.from({ length: ROWS }, (_, i) => `track:${i * 7 + 3}`);
const intIds = Array.from({ length: ROWS }, (_, i) => 1_000_000 + i * 3);
const textIdsFile = join(dir, 'ids.txt');
const npyIdsFile = join(dir, 'ids.npy');
const CASES: Record<string, Case> = {
  'npy float32': { format: 'npy', metric: 'angular', vectors: data, ids: rowIds, write: (f) => writeNpy(f, data) },
  'npy float64': { format: 'npy', metric: 'euclidean', vectors: data, ids: rowIds, write: (f) => writeNpy(f, data, { dtype: '<f8' }) },
  fvecs: { format: 'fvecs', metric: 'euclidean', vectors: data, ids: rowIds, write: (f) => writeVecs(f, data, 'fvecs') },
  bvecs: { format: 'bvecs', metric: 'manhattan', vectors: bytes, ids: rowIds, write: (f) => writeVecs(f, bytes, 'bvecs') },
  'word2vec binary': { format: 'word2vec', metric: 'angular', vectors: data, ids: vocabulary, write: (f) => writeWord2vecBinary(f, vocabulary, data) },
  'word2vec text': { format: 'word2vec', metric: 'dot', vectors: data, ids: vocabulary, write: (f) => writeWord2vecText(f, vocabulary, data) },
  jsonl: { format: 'jsonl', metric: 'euclidean', vectors: data, ids: jsonIds, write: (f) => writeJsonl(f, data, jsonIds) },
  'parquet by pyarrow (string ids, fixed-size list<float>, several row groups)': {
    format: 'parquet', metric: 'angular', vectors: data, ids: trackIds, write: (f) => writeParquet(f, data, trackIds),
  },
  'parquet by pandas (integer ids, list<double>, named columns)': {
    format: 'parquet', extra: ['--id-column', 'track', '--vector-column', 'embedding'], metric: 'dot', vectors: data, ids: intIds.map(String),
    write: (f) => writeParquet(f, data, intIds, { writer: 'pandas', idColumn: 'track', vectorColumn: 'embedding' }),
  },
  'npy with --ids, one id per line': {
    format: 'npy', extra: ['--ids', textIdsFile], metric: 'euclidean', vectors: data, ids: trackIds,
    write: (f) => {
      writeNpy(f, data);
      writeFileSync(textIdsFile, trackIds.join('\n') + '\n');
    },
  },
  'npy with --ids, a numpy string array': {
    format: 'npy', extra: ['--ids', npyIdsFile], metric: 'angular', vectors: data, ids: trackIds,
    write: (f) => {
      writeNpy(f, data);
      writeIdsNpy(npyIdsFile, trackIds);
    },
  },
  'fvecs with --ids': {
    format: 'fvecs', extra: ['--ids', textIdsFile], metric: 'euclidean', vectors: data, ids: jsonIds,
    write: (f) => {
      writeVecs(f, data, 'fvecs');
      writeFileSync(textIdsFile, jsonIds.join('\n'));
    },
  },
  'Annoy .ann': {
    format: 'ann',
    extra: ['--dim', String(DIM)],
    metric: 'angular',
    vectors: data,
    ids: rowIds,
    write: (f) => writeAnn(f, data, 'angular', rowIds.map(Number)),
  },
  'Annoy .ann, hamming': {
    format: 'ann',
    extra: ['--dim', '40'],
    metric: 'hamming',
    vectors: binaryVectors(ROWS, 40, 6),
    ids: rowIds,
    write: (f) => writeAnn(f, binaryVectors(ROWS, 40, 6), 'hamming', rowIds.map(Number)),
  },
};

function loadShards(version: string, manifest: Manifest): { index: Index; ids: Promise<string[]> }[] {
  return manifest.shards.map((s) => ({
    index: Index.load(join(version, s.file), { dim: manifest.dim, metric: manifest.metric }),
    ids: readIdsFile(join(version, s.idsFile)),
  }));
}

describe.each(Object.entries(CASES))('%s', (name, c) => {
  test('builds a version folder whose items are the input rows, by id', async () => {
    const input = join(dir, name.replace(/\W+/g, '-'));
    c.write(input);
    const out = join(dir, `out-${name.replace(/\W+/g, '-')}`);
    const result = await runCanopy([
      'build', '--input', input, '--format', c.format, '--metric', c.metric, '--trees', '4', '--shards', '3',
      '--out', out, '--index', 'things', '--version', 'v1', '--threads', '2', ...(c.extra ?? []),
    ]);
    expect(result.stderr).toContain('canopy build: things/v1: 2000 items');
    expect(result.code).toBe(0);
    const version = join(out, 'v1');
    expect(result.stdout).toBe(`${version}\n`);
    expect(readdirSync(out)).toEqual(['v1']);

    const manifest = parseManifest(readFileSync(join(version, 'manifest.json'), 'utf8'), version);
    expect(manifest).toMatchObject({ index: 'things', version: 'v1', metric: c.metric, dim: c.vectors.dim, nTrees: 4, seed: 42, shardCount: 3 });
    expect(manifest.shards.reduce((sum, s) => sum + s.items, 0)).toBe(ROWS);

    const rowOfId = new Map(c.ids.map((id, i) => [id, i]));
    const seen = new Set<string>();
    const shards = loadShards(version, manifest);
    try {
      for (const [shard, { index, ids }] of shards.entries()) {
        const shardIds = await ids;
        expect(index.nItems).toBe(shardIds.length);
        shardIds.forEach((id, item) => {
          expect(shardOfId(id, 3)).toBe(shard);
          seen.add(id);
          expect(Array.from(index.getItemVector(item))).toEqual(Array.from(row(c.vectors, rowOfId.get(id)!)));
        });
      }
    } finally {
      for (const { index } of shards) index.unload();
    }
    expect(seen.size).toBe(ROWS);

    // Python annoy reads the shard files as they are.
    const ids0 = await readIdsFile(join(version, manifest.shards[0]!.idsFile));
    const probe = [0, 1, ids0.length - 1];
    const reference = annoyQuery({ index: join(version, manifest.shards[0]!.file), dim: manifest.dim, metric: c.metric, k: 1, searchKs: [], itemVectors: probe });
    probe.forEach((item, k) => expect(reference.itemVectors[k]).toEqual(Array.from(row(c.vectors, rowOfId.get(ids0[item]!)!))));

    const inspect = await runCanopy(['inspect', version]);
    expect(inspect.code).toBe(0);
    expect(inspect.stdout).toContain('ok: things/v1, 2000 items in 3 shards');
  });
});

test('defaults: index from the file name, a UTC timestamp version, 50 trees, seed 42, one shard', async () => {
  const input = join(dir, 'My Vectors!.jsonl');
  writeJsonl(input, makeMatrix(30, 3, Float32Array.from({ length: 90 }, (_, i) => i % 7)));
  const out = join(dir, 'defaults');
  const result = await runCanopy(['build', '--input', input, '--format', 'jsonl', '--ids-from-row', '--metric', 'euclidean', '--out', out]);
  expect(result.code).toBe(0);
  const [version] = readdirSync(out);
  expect(version).toMatch(/^\d{8}T\d{6}Z$/);
  const manifest = parseManifest(readFileSync(join(out, version!, 'manifest.json'), 'utf8'), out);
  expect(manifest).toMatchObject({ index: 'My-Vectors', version, nTrees: 50, seed: 42, shardCount: 1 });
});
