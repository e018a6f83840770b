// LoadedVersion and ShardCatalog over a real version folder built by the
// builder and the engine: answers against brute force over the shard's items.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { shardOfId } from '../../../src/format/partition';
import type { CanopyError } from '../../../src/wire/canopy-error';
import { Index } from '../../../src/engine/engine-index';
import { LoadedVersion } from '../../../src/shard/loaded-version';
import { ShardCatalog } from '../../../src/shard/shard-catalog';
import { bruteForceTopK } from '../../support/brute-force';
import { row, selectRows } from '../../support/matrix';
import { buildFixture, type Fixture, idOfRow } from '../../support/serving/fixture';
import { gaussianVectors } from '../../support/vectors';

const SHARDS = 2;
const DIM = 6;
const EXHAUSTIVE = 1_000_000;
/** A query's sidecar options left at their defaults. */
const DEFAULT_OPTIONS = { exact: false, rerank: undefined, ef: undefined } as const;
const load = (dir: string, shard: number) =>
  LoadedVersion.load(dir, shard, (file, opts) => Index.load(file, opts), { verifyChecksums: true, prefault: false });

describe('LoadedVersion', () => {
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-shard-'));
  let fixture: Fixture;
  let loaded: LoadedVersion;
  /** Rows of the fixture held by shard 1, in item order. */
  let rowsOfShard: number[];

  beforeAll(async () => {
    fixture = await buildFixture(workDir, gaussianVectors(400, DIM, 21), { metric: 'euclidean', shards: SHARDS, trees: 4, index: 'idx', version: 'v1' });
    loaded = await load(fixture.dir, 1);
    rowsOfShard = readFileSync(path.join(fixture.dir, loaded.manifest.shards[1]!.idsFile), 'utf8')
      .trim()
      .split('\n')
      .map((id) => Number(id.slice('item-'.length)));
  });

  afterAll(() => {
    loaded?.release();
    rmSync(workDir, { recursive: true, force: true });
  });

  function shardTruth(query: Float32Array, k: number): string[] {
    const exact = bruteForceTopK(selectRows(fixture.base, rowsOfShard), query, k, 'euclidean');
    return Array.from(exact.ids, (i) => idOfRow(rowsOfShard[i]!));
  }

  it('loads the shard named in the manifest, with its ids', () => {
    expect(loaded).toMatchObject({ index: 'idx', version: 'v1', metric: 'euclidean', dim: DIM, shard: 1, nTrees: 4 });
    expect(loaded.nItems).toBe(rowsOfShard.length);
    expect(rowsOfShard.every((r) => shardOfId(idOfRow(r), SHARDS) === 1)).toBe(true);
    const r = rowsOfShard[3]!;
    expect(loaded.itemOf(idOfRow(r))).toBe(3);
    expect(Array.from(loaded.vectorOf(3))).toEqual(Array.from(row(fixture.base, r)));
    expect(loaded.itemOf('no-such-id')).toBeUndefined();
  });

  it('answers closest first with the shard exact top k, leaving out excluded ids', async () => {
    const queries = gaussianVectors(5, DIM, 22);
    for (let q = 0; q < queries.rows; q++) {
      const v = row(queries, q);
      const want = shardTruth(v, 8);
      const [plain, excluding] = await loaded.search([
        { vector: v, k: 5, searchK: EXHAUSTIVE, excludeIds: [], ...DEFAULT_OPTIONS },
        { vector: v, k: 5, searchK: EXHAUSTIVE, excludeIds: [want[1]!, want[3]!], ...DEFAULT_OPTIONS },
      ]);
      expect(plain!.map((n) => n.id)).toEqual(want.slice(0, 5));
      expect(excluding!.map((n) => n.id)).toEqual(want.filter((_, i) => i !== 1 && i !== 3).slice(0, 5));
      const distances = plain!.map((n) => n.distance);
      expect(distances).toEqual([...distances].sort((a, b) => a - b));
    }
  });

  it('answers a mixed batch (different k and search_k) like the same queries one by one', async () => {
    const queries = gaussianVectors(6, DIM, 23);
    const batch = Array.from({ length: 6 }, (_, i) => ({ vector: row(queries, i), k: 1 + (i % 3), searchK: i < 3 ? EXHAUSTIVE : undefined, excludeIds: [], ...DEFAULT_OPTIONS }));
    const together = await loaded.search(batch);
    const alone = await Promise.all(batch.map(async (q) => (await loaded.search([q]))[0]!));
    expect(together).toEqual(alone);
    expect(together.map((a) => a.length)).toEqual([1, 2, 3, 1, 2, 3]);
  });

  it('refuses a shard whose file differs from the manifest, naming the file', async () => {
    const copy = path.join(workDir, 'corrupt');
    rmSync(copy, { recursive: true, force: true });
    const manifest = JSON.parse(readFileSync(path.join(fixture.dir, 'manifest.json'), 'utf8'));
    mkdirSync(copy);
    for (const f of ['manifest.json', manifest.shards[0].file, manifest.shards[0].idsFile]) copyFileSync(path.join(fixture.dir, f), path.join(copy, f));
    const ann = path.join(copy, manifest.shards[0].file);
    const bytes = readFileSync(ann);
    bytes[bytes.length - 1] ^= 0xff;
    writeFileSync(ann, bytes);
    await expect(load(copy, 0)).rejects.toThrow(/shard-0000\.ann: sha256 is [0-9a-f]+, manifest says/);
    await expect(load(copy, 5)).rejects.toThrow(/shard 5 is not in idx\/v1 \(it has 2 shards\)/);
  });
});

describe('LoadedVersion with sidecars', () => {
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-shard-sidecars-'));
  let fixture: Fixture;
  let loaded: LoadedVersion;

  beforeAll(async () => {
    const base = gaussianVectors(1_500, DIM, 31);
    fixture = await buildFixture(workDir, base, { metric: 'euclidean', shards: 1, trees: 4, index: 'idx', version: 'v1', codes: true, graph: true });
    loaded = await load(fixture.dir, 0);
  });

  afterAll(() => {
    loaded?.release();
    rmSync(workDir, { recursive: true, force: true });
  });

  it('loads the codes and the graph the manifest lists', () => {
    expect(loaded.sidecars).toEqual([
      { kind: 'codes', state: 'loaded' },
      { kind: 'graph', state: 'loaded' },
    ]);
  });

  it('answers a batch mixing exact, rerank, ef and default queries like the same queries one by one; exact ones are brute force', async () => {
    const queries = gaussianVectors(8, DIM, 32);
    const options = [DEFAULT_OPTIONS, { ...DEFAULT_OPTIONS, exact: true }, { ...DEFAULT_OPTIONS, rerank: 40 }, { ...DEFAULT_OPTIONS, ef: 30 }];
    const batch = Array.from({ length: 8 }, (_, i) => ({ vector: row(queries, i), k: 5, searchK: EXHAUSTIVE, excludeIds: [], ...options[i % 4]! }));
    const together = await loaded.search(batch);
    const alone = await Promise.all(batch.map(async (q) => (await loaded.search([q]))[0]!));
    expect(together).toEqual(alone);
    for (const i of [1, 5]) {
      const want = Array.from(bruteForceTopK(fixture.base, row(queries, i), 5, 'euclidean').ids, idOfRow);
      expect(together[i]!.map((n) => n.id)).toEqual(want);
    }
  });
});

describe('ShardCatalog', () => {
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-catalog-'));
  const catalog = new ShardCatalog();

  beforeAll(async () => {
    const base = gaussianVectors(60, 4, 31);
    for (const version of ['v1', 'v2']) {
      const f = await buildFixture(workDir, base, { metric: 'angular', shards: 1, trees: 2, index: 'cat', version });
      catalog.add(await load(f.dir, 0), false);
    }
  });

  afterAll(() => {
    catalog.releaseAll();
    rmSync(workDir, { recursive: true, force: true });
  });

  const code = (fn: () => unknown): string => {
    try {
      fn();
    } catch (err) {
      return grpc.status[(err as CanopyError).code]!;
    }
    return 'OK';
  };

  it('keeps several versions per index, answers the current one unless a request pins another', () => {
    expect(catalog.versionsOf('cat')).toEqual(['v1', 'v2']);
    expect(catalog.resolve('cat', '').version).toBe('v1');
    expect(catalog.resolve('cat', 'v2').version).toBe('v2');
    expect(catalog.resolveCurrent('').index).toBe('cat');
  });

  it('says NOT_FOUND for an unknown index or version, INVALID_ARGUMENT for no index', () => {
    expect(code(() => catalog.resolve('other', ''))).toBe('NOT_FOUND');
    expect(code(() => catalog.resolve('cat', 'v9'))).toBe('NOT_FOUND');
    expect(code(() => catalog.resolve('', ''))).toBe('INVALID_ARGUMENT');
  });
});
