import { appendFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, expect, test } from 'vitest';

import { inspectVersion } from '../../../src/indexer/inspect';
import { ManifestError } from '../../../src/format/manifest';
import { shardOfId } from '../../../src/format/partition';
import { writeVersionFixture } from '../../support/version-fixture';

const dir = mkdtempSync(join(tmpdir(), 'canopy-inspect-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ids = Array.from({ length: 300 }, (_, i) => `item-${i}`);
let counter = 0;
const fixture = (): string => writeVersionFixture(dir, `v${counter++}`, ids, 3);

test('a folder that matches its manifest has no problems', async () => {
  const version = fixture();
  const { manifest, problems } = await inspectVersion(version);
  expect(problems).toEqual([]);
  expect(manifest.shards.reduce((sum, s) => sum + s.items, 0)).toBe(300);
});

test('a changed byte, a wrong size and a missing file are each named', async () => {
  const version = fixture();
  const ann = join(version, 'shard-0000.ann');
  const bytes = readFileSync(ann);
  bytes[10] ^= 0xff;
  writeFileSync(ann, bytes);
  appendFileSync(join(version, 'shard-0001.ann'), 'x');
  rmSync(join(version, 'shard-0002.ids'));
  const { problems } = await inspectVersion(version);
  expect(problems).toHaveLength(3);
  expect(problems[0]).toMatch(/^shard 0: .*shard-0000\.ann: sha256 is [0-9a-f]{64}, manifest says/);
  expect(problems[1]).toMatch(/^shard 1: .*shard-0001\.ann: size is \d+ bytes, manifest says/);
  expect(problems[2]).toMatch(/^shard 2: .*shard-0002\.ids: ENOENT/);
});

test('ids that the partitioner puts on another shard are named', async () => {
  const version = fixture();
  const manifest = JSON.parse(readFileSync(join(version, 'manifest.json'), 'utf8'));
  // Swap two shards' files: sizes and checksums still match their entries' new names.
  [manifest.shards[0].idsFile, manifest.shards[1].idsFile] = [manifest.shards[1].idsFile, manifest.shards[0].idsFile];
  for (const key of ['idsBytes', 'idsSha256', 'items'] as const) {
    [manifest.shards[0][key], manifest.shards[1][key]] = [manifest.shards[1][key], manifest.shards[0][key]];
  }
  writeFileSync(join(version, 'manifest.json'), JSON.stringify(manifest));
  const { problems } = await inspectVersion(version);
  const first = ids.find((id) => shardOfId(id, 3) === 1)!;
  expect(problems[0]).toBe(`shard 0: ${join(version, 'shard-0001.ids')} line 1: id "${first}" belongs to shard 1`);
});

test('a folder renamed away from its version is named; a broken manifest throws', async () => {
  const version = fixture();
  renameSync(version, join(dir, 'elsewhere'));
  expect((await inspectVersion(join(dir, 'elsewhere'))).problems).toEqual([`the folder is named elsewhere but holds version ${version.split('/').pop()}`]);
  writeFileSync(join(dir, 'elsewhere', 'manifest.json'), '{"formatVersion": 1');
  await expect(inspectVersion(join(dir, 'elsewhere'))).rejects.toBeInstanceOf(ManifestError);
});
