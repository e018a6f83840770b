import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, expect, test } from 'vitest';

import { idProblem, readIdsFile, writeIdsFile } from '../../../src/format/ids-file';

const dir = mkdtempSync(join(tmpdir(), 'canopy-ids-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('one UTF-8 id per line, line n = item n, every line ended by a newline', async () => {
  const ids = Array.from({ length: 70_000 }, (_, i) => (i % 2 ? `日本-${i}` : `id ${i}`));
  const file = join(dir, 'a.ids');
  await writeIdsFile(file, ids);
  expect(readFileSync(file, 'utf8').startsWith('id 0\n日本-1\nid 2\n')).toBe(true);
  expect(await readIdsFile(file)).toEqual(ids);
});

test('an existing file is never overwritten, a truncated one is refused', async () => {
  const file = join(dir, 'b.ids');
  writeFileSync(file, 'a\nb');
  await expect(writeIdsFile(file, ['x'])).rejects.toThrow(/EEXIST/);
  await expect(readIdsFile(file)).rejects.toThrow(/truncated/);
});

test('empty ids and ids with line breaks cannot be stored', () => {
  expect(idProblem('')).toBe('id is empty');
  expect(idProblem('a\nb')).toMatch(/line break/);
  expect(idProblem('a\rb')).toMatch(/line break/);
  expect(idProblem(' spaced id ')).toBeUndefined();
});
