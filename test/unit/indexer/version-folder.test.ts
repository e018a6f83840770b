import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, expect, test } from 'vitest';

import { VersionExistsError, writeVersionFolder } from '../../../src/indexer/version-folder';

const dir = mkdtempSync(join(tmpdir(), 'canopy-version-folder-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('the folder appears under its final name only once filled', async () => {
  const parent = join(dir, 'index-a');
  const final = await writeVersionFolder(parent, 'v1', async (temp) => {
    expect(existsSync(join(parent, 'v1'))).toBe(false);
    expect(temp.startsWith(join(parent, '.v1.partial-'))).toBe(true);
    writeFileSync(join(temp, 'manifest.json'), '{}');
  });
  expect(final).toBe(join(parent, 'v1'));
  expect(readdirSync(parent)).toEqual(['v1']);
  expect(readFileSync(join(final, 'manifest.json'), 'utf8')).toBe('{}');
});

test('a failure leaves nothing behind', async () => {
  const parent = join(dir, 'index-b');
  await expect(
    writeVersionFolder(parent, 'v1', async (temp) => {
      writeFileSync(join(temp, 'shard-0000.ann'), 'half');
      throw new Error('bad row');
    }),
  ).rejects.toThrow('bad row');
  expect(readdirSync(parent)).toEqual([]);
});

test('an existing version is never overwritten', async () => {
  const parent = join(dir, 'index-a');
  await expect(writeVersionFolder(parent, 'v1', async () => undefined)).rejects.toBeInstanceOf(VersionExistsError);
  expect(readdirSync(parent)).toEqual(['v1']);
});
