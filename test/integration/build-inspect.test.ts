// `canopy inspect` as a real process: it prints the manifest and exits 0 on a
// sound folder, exits 1 naming the file and the difference otherwise.
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, expect, test } from 'vitest';

import { runCanopy } from '../support/cli';
import { buildFixture } from '../support/serving/fixture';
import { gaussianVectors } from '../support/vectors';
import { writeVersionFixture } from '../support/version-fixture';

const dir = mkdtempSync(join(tmpdir(), 'canopy-inspect-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ids = Array.from({ length: 50 }, (_, i) => `id-${i}`);

test('a sound folder: manifest on stdout, exit 0', async () => {
  // Built by the engine: inspect loads each forest, so the bytes must be a real one.
  const opts = { metric: 'euclidean', shards: 2, trees: 2, index: 'fixture', version: 'good' } as const;
  const version = (await buildFixture(dir, gaussianVectors(ids.length, 4, 1), opts)).dir;
  const result = await runCanopy(['inspect', version]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect(result.stdout).toContain('"version": "good"');
  expect(result.stdout).toContain('ok: fixture/good, 50 items in 2 shards, every size and sha256 matches, every forest and sidecar loads');
});

test('a file of the wrong size: exit 1 naming it', async () => {
  const version = writeVersionFixture(dir, 'grown', ids, 2);
  appendFileSync(join(version, 'shard-0001.ids'), 'extra\n');
  const result = await runCanopy(['inspect', version]);
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(/shard 1: .*shard-0001\.ids: size is \d+ bytes, manifest says \d+/);
});

test('no manifest: exit 1 naming it', async () => {
  const result = await runCanopy(['inspect', join(dir, 'absent')]);
  expect(result.code).toBe(1);
  expect(result.stderr).toBe(`canopy: cannot read ${join(dir, 'absent', 'manifest.json')}: ENOENT\n`);
});
