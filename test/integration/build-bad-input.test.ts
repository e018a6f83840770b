// Every bad input the build refuses, through the real `canopy build` process:
// exit 1, one stderr line naming the file, the row and the problem, and
// nothing left in the output folder (no version, no temporary folder).
// Flags that cannot work are usage errors instead: exit 2 before any reading.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, expect, test } from 'vitest';

import { runCanopy } from '../support/cli';
import { makeMatrix } from '../support/matrix';
import { gaussianVectors } from '../support/vectors';
import { writeNpy, writeVecs, writeWord2vecBinary } from '../support/input-files';

const dir = mkdtempSync(join(tmpdir(), 'canopy-build-bad-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
async function expectRefused(input: string, format: string, message: string | RegExp, extra: readonly string[] = []): Promise<void> {
  const out = join(dir, `out-${n++}`);
  const result = await runCanopy(['build', '--input', input, '--format', format, '--metric', 'euclidean', '--trees', '2', '--shards', '2', '--out', out, ...extra]);
  expect(result.code).toBe(1);
  expect(result.stdout).toBe('');
  if (typeof message === 'string') expect(result.stderr).toBe(`canopy: ${message}\n`);
  else expect(result.stderr).toMatch(message);
  expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
}

async function expectUsageError(input: string, format: string, message: string, extra: readonly string[] = []): Promise<void> {
  const out = join(dir, `out-${n++}`);
  const result = await runCanopy(['build', '--input', input, '--format', format, '--metric', 'euclidean', '--out', out, ...extra]);
  expect(result.code, result.stderr).toBe(2);
  expect(result.stderr).toContain(`error: ${message}\n`);
  expect(result.stderr).toContain('Usage: canopy build');
  expect(existsSync(out)).toBe(false);
}

function file(name: string, content: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const jsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const fine = (i: number) => ({ id: `a${i}`, vector: [i, 1, 2] });

test('a duplicate id', async () => {
  const path = file('dup.jsonl', jsonl([fine(0), fine(1), fine(2), { id: 'a1', vector: [0, 0, 0] }]));
  await expectRefused(path, 'jsonl', `${path}: row 3 (line 4): duplicate id "a1" (first seen at row 1)`);
  const words = file('dup.bin', '');
  writeWord2vecBinary(words, ['king', 'queen', 'king'], gaussianVectors(3, 4, 1));
  await expectRefused(words, 'word2vec', `${words}: row 2: duplicate id "king" (first seen at row 0)`);
});

test('a row of the wrong length', async () => {
  const path = file('short.jsonl', jsonl([fine(0), fine(1), { id: 'b', vector: [1, 2] }]));
  await expectRefused(path, 'jsonl', `${path}: row 2 (line 3): vector has 2 values, expected 3`);
  const text = file('short.txt', '2 3\nking 1 2 3\nqueen 1 2\n');
  await expectRefused(text, 'word2vec', `${text}: row 1 (line 3): vector has 2 values, expected 3`);
  const path2 = file('dim.npy', '');
  writeNpy(path2, gaussianVectors(10, 4, 1));
  await expectRefused(path2, 'npy', `${path2}: the file's vectors have dim 4, --dim says 5`, ['--dim', '5']);
});

test('a non-finite value', async () => {
  const m = gaussianVectors(50, 4, 2);
  m.data[17 * 4 + 2] = NaN;
  const npy = file('nan.npy', '');
  writeNpy(npy, m);
  await expectRefused(npy, 'npy', `${npy}: row 17: value 2 is NaN: every value must be finite (and within float32 range)`);
  const big = file('big.jsonl', jsonl([fine(0)]) + '{"id": "x", "vector": [1, 1e999, 0]}\n');
  await expectRefused(big, 'jsonl', `${big}: row 1 (line 2): value 1 is Infinity: every value must be finite (and within float32 range)`);
  const f64 = file('inf.npy', '');
  writeNpy(f64, makeMatrix(3, 4, gaussianVectors(3, 4, 3).data.map((v, i) => (i === 5 ? -Infinity : v))), { dtype: '<f8' });
  await expectRefused(f64, 'npy', `${f64}: row 1: value 1 is -Infinity: every value must be finite (and within float32 range)`);
  const text = file('inf.txt', '2 3\nking 1 2 3\nqueen 1 inf 3\n');
  await expectRefused(text, 'word2vec', `${text}: row 1 (line 3): value 1 is Infinity: every value must be finite (and within float32 range)`);
});

test('an empty input', async () => {
  const empty = file('empty.jsonl', '');
  await expectRefused(empty, 'jsonl', `${empty}: the input holds no rows`);
  const npy = file('empty.npy', '');
  writeNpy(npy, makeMatrix(0, 8));
  await expectRefused(npy, 'npy', `${npy}: the input holds no rows`);
  const words = file('empty.bin', '0 4\n');
  await expectRefused(words, 'word2vec', `${words}: the input holds no rows`);
  const fvecs = file('empty.fvecs', '');
  await expectRefused(fvecs, 'fvecs', `${fvecs}: the input holds no rows`);
});

test('ids a shard file cannot hold, a truncated file', async () => {
  const path = file('newline.jsonl', jsonl([fine(0), { id: 'two\nlines', vector: [1, 2, 3] }]));
  await expectRefused(path, 'jsonl', `${path}: row 1 (line 2): id "two\\nlines" contains a line break`);
  const emptyId = file('emptyid.jsonl', jsonl([{ id: '', vector: [1, 2, 3] }]));
  await expectRefused(emptyId, 'jsonl', `${emptyId}: row 0 (line 1): id is empty`);
  const fvecs = file('cut.fvecs', '');
  writeVecs(fvecs, gaussianVectors(5, 4, 1), 'fvecs');
  truncateSync(fvecs, 5 * 20 - 3);
  await expectRefused(fvecs, 'fvecs', /cut\.fvecs: row 4: truncated/);
});

test('ids: a JSON Lines row without one, an --ids list of the wrong length or with an empty line, --ids where rows carry ids', async () => {
  const noId = file('noid.jsonl', jsonl([fine(0), { vector: [1, 2, 3] }, fine(2)]));
  await expectRefused(noId, 'jsonl', `${noId}: row 1 (line 2): no "id" (every row needs one; --ids-from-row uses row numbers instead)`);
  const npy = join(dir, 'five.npy');
  writeNpy(npy, gaussianVectors(5, 4, 1));
  const four = file('four.txt', 'a\nb\nc\nd\n');
  await expectRefused(npy, 'npy', `${four}: holds 4 ids, but ${npy} has 5 rows`, ['--ids', four]);
  const gap = file('gap.txt', 'a\nb\n\nd\ne\n');
  await expectRefused(npy, 'npy', `${npy}: row 2: id is empty`, ['--ids', gap]);
});

test('flags that cannot work exit 2 with the usage, before reading anything', async () => {
  const npy = join(dir, 'usage.npy');
  writeNpy(npy, gaussianVectors(5, 4, 1));
  const rows = file('usage.jsonl', jsonl([fine(0), fine(1)]));
  const absent = join(dir, 'absent.npy');
  await expectUsageError(absent, 'npy', `--input ${absent}: no such file`);
  await expectUsageError(dir, 'npy', `--input ${dir}: not a file`);
  await expectUsageError(npy, 'npy', `--ids ${join(dir, 'none.txt')}: no such file`, ['--ids', join(dir, 'none.txt')]);
  await expectUsageError(rows, 'jsonl', '--ids is for inputs without ids of their own; jsonl rows carry their ids', ['--ids', npy]);
  await expectUsageError(file('x.ann', Buffer.alloc(64)), 'ann', '--format ann needs --dim: an Annoy file has no header');
});

test('an existing version is never overwritten', async () => {
  const out = join(dir, 'existing');
  mkdirSync(join(out, 'v1'), { recursive: true });
  const input = file('ok.jsonl', jsonl([fine(0), fine(1), fine(2), fine(3)]));
  const result = await runCanopy(['build', '--input', input, '--format', 'jsonl', '--metric', 'euclidean', '--out', out, '--version', 'v1']);
  expect(result.code).toBe(1);
  expect(result.stderr).toBe(`canopy: ${join(out, 'v1')} exists already; versions are never overwritten (pick another --version)\n`);
  expect(readdirSync(out)).toEqual(['v1']);
});

test('more shards than items place nothing on some shard: refused, naming it', async () => {
  const input = file('two.jsonl', jsonl([fine(0), fine(1)]));
  await expectRefused(input, 'jsonl', /two\.jsonl: shard \d would hold no items \(2 items over 5 shards\): use fewer --shards/, ['--shards', '5']);
});
