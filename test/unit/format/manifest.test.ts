// The manifest's sidecar entries: optional (old manifests stay valid), checked
// field by field when present, and part of what makes two shards the same.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { filesOfShard, ManifestError, parseManifest, sameShardFiles, sidecarFileOf, verifyFile, type ShardEntry } from '../../../src/format/manifest';

const SHA_A = 'a'.repeat(64);
const SHA_B = 'b'.repeat(64);

const shard: ShardEntry = {
  shard: 0,
  file: 'shard-0000.ann',
  idsFile: 'shard-0000.ids',
  items: 10,
  fileBytes: 640,
  fileSha256: SHA_A,
  idsBytes: 40,
  idsSha256: SHA_A,
  buildSeconds: 0.1,
};
const codes = { kind: 'codes', file: 'shard-0000.codes', bytes: 1024, sha256: SHA_B } as const;
const graph = { kind: 'graph', file: 'shard-0000.graph', bytes: 2048, sha256: SHA_B } as const;

const manifestText = (entry: object): string =>
  JSON.stringify({
    formatVersion: 1,
    index: 'i',
    version: 'v',
    metric: 'euclidean',
    dim: 4,
    nTrees: 2,
    seed: 1,
    partitioner: 'fnv1a32-fmix',
    shardCount: 1,
    createdAt: '2026-12-03T00:00:00Z',
    shards: [entry],
  });

describe('parseManifest and sidecars', () => {
  test('a manifest written before sidecars existed stays valid and lists none', () => {
    const manifest = parseManifest(manifestText(shard), 'm.json');
    expect(manifest.shards[0]!.sidecars).toBeUndefined();
    expect(filesOfShard(manifest.shards[0]!).map((f) => f.file)).toEqual(['shard-0000.ann', 'shard-0000.ids']);
  });

  test('codes and graph entries are read as written, after the forest and ids in filesOfShard', () => {
    const manifest = parseManifest(manifestText({ ...shard, sidecars: [codes, graph] }), 'm.json');
    expect(manifest.shards[0]!.sidecars).toEqual([codes, graph]);
    expect(filesOfShard(manifest.shards[0]!).map((f) => f.file)).toEqual(['shard-0000.ann', 'shard-0000.ids', 'shard-0000.codes', 'shard-0000.graph']);
  });

  test.each([
    ['not an array', { codes }, /shards\[0\]\.sidecars must be an array/],
    ['an unknown kind', [{ ...codes, kind: 'pq' }], /sidecars\[0\]\.kind must be one of codes, graph/],
    ['a kind twice', [codes, { ...codes, file: 'other.codes' }], /sidecars\[1\]\.kind "codes" appears twice/],
    ['a path out of the folder', [{ ...codes, file: '../x.codes' }], /sidecars\[0\]\.file "\.\.\/x\.codes" must be a relative path inside the version folder/],
    ['zero bytes', [{ ...codes, bytes: 0 }], /sidecars\[0\]\.bytes must be a positive integer/],
    ['a short sha256', [{ ...codes, sha256: 'abc' }], /sidecars\[0\]\.sha256 must be a hex sha256/],
  ])('refuses %s, naming the field and the file', (_, sidecars, message) => {
    const parse = (): unknown => parseManifest(manifestText({ ...shard, sidecars }), 'm.json');
    expect(parse).toThrow(ManifestError);
    expect(parse).toThrow(message);
    expect(parse).toThrow(/^m\.json: /);
  });
});

test('sidecarFileOf replaces .ann by the kind, or appends it', () => {
  expect(sidecarFileOf('shard-0003.ann', 'codes')).toBe('shard-0003.codes');
  expect(sidecarFileOf('dir/f.ann', 'graph')).toBe('dir/f.graph');
  expect(sidecarFileOf('forest.bin', 'codes')).toBe('forest.bin.codes');
});

test('sameShardFiles tells shards apart by their sidecars too', () => {
  const withCodes = { ...shard, sidecars: [codes] };
  expect(sameShardFiles(withCodes, { ...shard, sidecars: [codes] })).toBe(true);
  expect(sameShardFiles(withCodes, shard)).toBe(false);
  expect(sameShardFiles(withCodes, { ...shard, sidecars: [{ ...codes, sha256: SHA_A }] })).toBe(false);
  expect(sameShardFiles(shard, undefined)).toBe(false);
});

describe('verifyFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'canopy-manifest-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const sha256OfHello = '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824';

  test('returns the absolute path of a file whose size and sha256 match', async () => {
    writeFileSync(join(dir, 'f.codes'), 'hello');
    await expect(verifyFile(dir, { file: 'f.codes', bytes: 5, sha256: sha256OfHello })).resolves.toBe(join(dir, 'f.codes'));
  });

  test('names a wrong size, a wrong sha256 (unless checksums are off) and a missing file', async () => {
    writeFileSync(join(dir, 'g.codes'), 'hellO');
    await expect(verifyFile(dir, { file: 'g.codes', bytes: 6, sha256: sha256OfHello })).rejects.toThrow(/g\.codes: size is 5 bytes, manifest says 6/);
    await expect(verifyFile(dir, { file: 'g.codes', bytes: 5, sha256: sha256OfHello })).rejects.toThrow(/g\.codes: sha256 is [0-9a-f]{64}, manifest says 2cf2/);
    await expect(verifyFile(dir, { file: 'g.codes', bytes: 5, sha256: sha256OfHello }, false)).resolves.toBe(join(dir, 'g.codes'));
    await expect(verifyFile(dir, { file: 'none.codes', bytes: 5, sha256: sha256OfHello })).rejects.toThrow(/none\.codes: ENOENT/);
  });
});
