// Every reader against real files: the rows come back as written, in order,
// with the ids the format carries, and malformed files fail naming file and row.
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { readIdsList, withIdsList } from '../../../src/indexer/readers/ids-list';

import { InputError } from '../../../src/indexer/input-error';
import { openReader, type InputFormat, type Row } from '../../../src/indexer/readers';
import type { Metric } from '../../../src/format/metric';
import { makeMatrix, row, type Matrix } from '../../support/matrix';
import { binaryVectors, gaussianVectors } from '../../support/vectors';
import { writeIdsNpy, writeParquet, words, writeAnn, writeJsonl, writeNpy, writeVecs, writeWord2vecBinary, writeWord2vecText } from '../../support/input-files';

const dir = mkdtempSync(join(tmpdir(), 'canopy-readers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function readAll(format: InputFormat, file: string, options: { dim?: number; metric?: Metric; idsFromRow?: boolean } = {}): Promise<Row[]> {
  const reader = await openReader(format, file, { dim: options.dim, metric: options.metric ?? 'euclidean', idsFromRow: options.idsFromRow });
  const rows: Row[] = [];
  try {
    for await (const batch of reader.batches()) for (const r of batch) rows.push({ ...r, vector: r.vector.slice() });
  } finally {
    await reader.close();
  }
  return rows;
}

function expectRows(rows: Row[], m: Matrix, ids?: readonly string[]): void {
  expect(rows.length).toBe(m.rows);
  rows.forEach((r, i) => {
    expect(r.row).toBe(i);
    expect(r.id).toBe(ids?.[i]);
    expect(Array.from(r.vector)).toEqual(Array.from(row(m, i)));
  });
}

async function expectInputError(promise: Promise<unknown>, message: RegExp, where: { file: string; row?: number }): Promise<void> {
  const err = await promise.then(
    () => expect.unreachable('expected an InputError'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InputError);
  expect((err as InputError).file).toBe(where.file);
  expect((err as InputError).row).toBe(where.row);
  expect((err as Error).message).toMatch(message);
}

// 2,500 rows: more than two batches, so batch boundaries are crossed.
const m = gaussianVectors(2_500, 12, 11);

describe('npy', () => {
  test('reads float32 and float64 C-order arrays written by numpy', async () => {
    const f4 = join(dir, 'a.npy');
    writeNpy(f4, m);
    expectRows(await readAll('npy', f4), m);
    const f8 = join(dir, 'a64.npy');
    writeNpy(f8, m, { dtype: '<f8' });
    expectRows(await readAll('npy', f8), m);
  });

  test('refuses Fortran order, other dtypes, other ranks and truncated files', async () => {
    const small = gaussianVectors(5, 3, 1);
    const fortran = join(dir, 'f.npy');
    writeNpy(fortran, small, { fortran: true });
    await expectInputError(readAll('npy', fortran), /Fortran order/, { file: fortran });
    const ints = join(dir, 'i.npy');
    writeNpy(ints, small, { dtype: '<i4' });
    await expectInputError(readAll('npy', ints), /dtype <i4 is not supported/, { file: ints });
    const bigEndian = join(dir, 'be.npy');
    writeNpy(bigEndian, small, { dtype: '>f4' });
    await expectInputError(readAll('npy', bigEndian), /dtype >f4/, { file: bigEndian });
    const truncated = join(dir, 't.npy');
    writeNpy(truncated, small);
    truncateSync(truncated, readFileSync(truncated).length - 3);
    await expectInputError(readAll('npy', truncated), /5 x 3 <f4 array needs/, { file: truncated });
    const notNpy = join(dir, 'x.npy');
    writeFileSync(notNpy, 'hello world, not numpy');
    await expectInputError(readAll('npy', notNpy), /magic/, { file: notNpy });
  });
});

describe('fvecs and bvecs', () => {
  test('read every row', async () => {
    const fvecs = join(dir, 'a.fvecs');
    writeVecs(fvecs, m, 'fvecs');
    expectRows(await readAll('fvecs', fvecs), m);
    const bytes = makeMatrix(3_000, 16, Float32Array.from({ length: 3_000 * 16 }, (_, i) => (i * 7) % 256));
    const bvecs = join(dir, 'a.bvecs');
    writeVecs(bvecs, bytes, 'bvecs');
    expectRows(await readAll('bvecs', bvecs), bytes);
  });

  test('a row with another dimension or a truncated last row is named', async () => {
    const mixed = join(dir, 'mixed.fvecs');
    writeVecs(mixed, gaussianVectors(1_500, 4, 2), 'fvecs');
    const odd = Buffer.alloc(4 + 5 * 4);
    odd.writeInt32LE(5, 0);
    appendFileSync(mixed, odd);
    await expectInputError(readAll('fvecs', mixed), /vector has 5 values, expected 4/, { file: mixed, row: 1_500 });
    const truncated = join(dir, 'truncated.fvecs');
    writeVecs(truncated, gaussianVectors(10, 4, 2), 'fvecs');
    truncateSync(truncated, 10 * 20 - 2);
    await expectInputError(readAll('fvecs', truncated), /truncated/, { file: truncated, row: 9 });
  });
});

describe('word2vec', () => {
  const vocabulary = words(m.rows);

  test('binary, with and without the newline after each row, gives words as ids', async () => {
    for (const newlineAfterRow of [true, false]) {
      const file = join(dir, `w-${newlineAfterRow}.bin`);
      writeWord2vecBinary(file, vocabulary, m, { newlineAfterRow });
      expectRows(await readAll('word2vec', file), m, vocabulary);
    }
  });

  test('text gives words as ids', async () => {
    const file = join(dir, 'w.txt');
    writeWord2vecText(file, vocabulary, m);
    expectRows(await readAll('word2vec', file), m, vocabulary);
  });

  test('fewer rows than the header says, extra data, a bad value and a bad header are named', async () => {
    const small = gaussianVectors(4, 3, 5);
    const short = join(dir, 'short.bin');
    writeWord2vecBinary(short, words(4), small);
    writeFileSync(short, Buffer.concat([Buffer.from('5 3\n'), readFileSync(short).subarray(4)]));
    await expectInputError(readAll('word2vec', short), /file ends after 4 rows; the header says 5/, { file: short, row: 4 });
    const extra = join(dir, 'extra.bin');
    writeWord2vecBinary(extra, words(4), small);
    appendFileSync(extra, 'surplus 1 2 3\n');
    await expectInputError(readAll('word2vec', extra), /data after the 4 rows/, { file: extra, row: 4 });
    const badValue = join(dir, 'bad.txt');
    writeFileSync(badValue, '2 3\na 1 2 3\nb 1 x 3\n');
    await expectInputError(readAll('word2vec', badValue), /value "x" at column 1 is not a number/, { file: badValue, row: 1 });
    const badHeader = join(dir, 'header.bin');
    writeFileSync(badHeader, 'hello\n');
    await expectInputError(readAll('word2vec', badHeader), /first line must be "<rows> <dim>"/, { file: badHeader });
  });
});

describe('jsonl', () => {
  test('string and integer ids; rows without ids only with --ids-from-row; blank lines skipped', async () => {
    const withIds = join(dir, 'ids.jsonl');
    const ids = Array.from({ length: m.rows }, (_, i) => (i % 2 === 0 ? `item-${i}` : i));
    writeJsonl(withIds, m, ids);
    expectRows(await readAll('jsonl', withIds), m, ids.map(String));
    const withoutIds = join(dir, 'noids.jsonl');
    writeJsonl(withoutIds, m);
    appendFileSync(withoutIds, '\n  \n');
    expectRows(await readAll('jsonl', withoutIds, { idsFromRow: true }), m);
    await expectInputError(readAll('jsonl', withoutIds), /no "id" \(every row needs one; --ids-from-row uses row numbers instead\)/, { file: withoutIds, row: 0 });
  });

  test('bad JSON, a non-number value and a bad id name the row and line', async () => {
    const file = join(dir, 'bad.jsonl');
    writeFileSync(file, '{"vector": [1, 2]}\n\n{"vector": [1, oops]}\n');
    const err = await readAll('jsonl', file, { idsFromRow: true }).catch((e: InputError) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).message).toMatch(new RegExp(`^${file}: row 1 \\(line 3\\): not valid JSON`));
    writeFileSync(file, '{"vector": [1, "2"]}\n');
    await expectInputError(readAll('jsonl', file, { idsFromRow: true }), /vector\[1\] is "2", not a number/, { file, row: 0 });
    writeFileSync(file, '{"id": 1.5, "vector": [1, 2]}\n');
    await expectInputError(readAll('jsonl', file), /"id" must be a string or an integer/, { file, row: 0 });
  });
});

describe('parquet', () => {
  const ids = Array.from({ length: m.rows }, (_, i) => `t${i}`);

  test('rows come back in order across row groups, ids from the id column', async () => {
    const file = join(dir, 'rows.parquet');
    writeParquet(file, m, ids, { rowGroupRows: 1_000 });
    expectRows(await readAll('parquet', file), m, ids);
  });

  test('missing columns, a null vector and a null value are refused, naming what is there', async () => {
    const file = join(dir, 'named.parquet');
    writeParquet(file, m, ids, { idColumn: 'key', vectorColumn: 'emb' });
    await expectInputError(readAll('parquet', file), /no vector column "vector" \(--vector-column\); the file's columns: key, emb/, { file });
    const noId = await openReader('parquet', file, { dim: undefined, metric: 'euclidean', vectorColumn: 'emb' }).catch((e: unknown) => e);
    expect((noId as Error).message).toMatch(/no id column "id" \(--id-column, or --ids-from-row to use row numbers\)/);
    const byRow = await openReader('parquet', file, { dim: undefined, metric: 'euclidean', vectorColumn: 'emb', idsFromRow: true });
    await byRow.close();
    const notList = await openReader('parquet', file, { dim: undefined, metric: 'euclidean', vectorColumn: 'key', idColumn: 'key' }).catch((e: unknown) => e);
    expect((notList as Error).message).toMatch(/column "key" is not a list of numbers/);

    const nulls = join(dir, 'nulls.parquet');
    const script = `import pyarrow as pa, pyarrow.parquet as pq
pq.write_table(pa.table({'id': ['a', 'b', 'c'], 'vector': pa.array([[1.0, 2.0], None, [1.0, None]], pa.list_(pa.float32()))}), ${JSON.stringify(nulls)})`;
    execFileSync('python3', ['-c', script]);
    await expectInputError(readAll('parquet', nulls), /vector is null, not a list of numbers/, { file: nulls, row: 1 });
    writeFileSync(join(dir, 'not.parquet'), 'hello');
    await expectInputError(readAll('parquet', join(dir, 'not.parquet')), /not a readable Parquet file/, { file: join(dir, 'not.parquet') });
  });
});

describe('--ids lists', () => {
  const small = gaussianVectors(5, 3, 2);

  test('text and numpy string arrays; a count that differs from the rows is refused', async () => {
    const vectors = join(dir, 'small.npy');
    writeNpy(vectors, small);
    const text = join(dir, 'ids.txt');
    writeFileSync(text, 'a\nb\nc\nd\ne\n');
    expect(await readIdsList(text)).toEqual(['a', 'b', 'c', 'd', 'e']);
    const npy = join(dir, 'ids.npy');
    writeIdsNpy(npy, ['track:1', 'trück:22', 'x', '', 'long-id-number-5']);
    expect(await readIdsList(npy)).toEqual(['track:1', 'trück:22', 'x', '', 'long-id-number-5']);

    const reader = await openReader('npy', vectors, { dim: undefined, metric: 'euclidean' });
    const rows: Row[] = [];
    for await (const batch of withIdsList(reader, await readIdsList(text), text).batches()) rows.push(...batch);
    expect(rows.map((r) => r.id)).toEqual(['a', 'b', 'c', 'd', 'e']);
    await reader.close();
    expect(() => withIdsList(reader, ['a', 'b'], text)).toThrow(`${text}: holds 2 ids, but ${vectors} has 5 rows`);

    const objects = join(dir, 'objects.npy');
    execFileSync('python3', ['-c', `import numpy as np; np.save(${JSON.stringify(objects)}, np.array(['a', 1], dtype=object), allow_pickle=True)`]);
    await expect(readIdsList(objects)).rejects.toThrow(/dtype \|O is not a string dtype/);
  });
});

describe('Annoy .ann', () => {
  test.each(['angular', 'euclidean', 'dot'] as const)('%s: items come back by item number, holes skipped', async (metric) => {
    const small = gaussianVectors(300, 10, 3);
    const itemIds = Array.from({ length: 300 }, (_, i) => (i < 100 ? i : i + 50)); // 100..149 are holes
    const file = join(dir, `${metric}.ann`);
    writeAnn(file, small, metric, itemIds);
    const rows = await readAll('ann', file, { dim: 10, metric });
    expect(rows.map((r) => r.id)).toEqual(itemIds.map(String));
    rows.forEach((r, i) => expect(Array.from(r.vector)).toEqual(Array.from(row(small, i))));
  });

  test('hamming bits are unpacked', async () => {
    const bits = binaryVectors(200, 70, 4);
    const file = join(dir, 'hamming.ann');
    writeAnn(file, bits, 'hamming', Array.from({ length: 200 }, (_, i) => i));
    const rows = await readAll('ann', file, { dim: 70, metric: 'hamming' });
    expectRows(rows, bits, rows.map((_, i) => String(i)));
  });

  test('needs --dim, and a wrong one is named', async () => {
    const file = join(dir, 'euclidean.ann');
    await expectInputError(readAll('ann', file), /give --dim/, { file });
    await expectInputError(readAll('ann', file, { dim: 11, metric: 'euclidean' }), /wrong --dim or --metric/, { file });
  });
});

test('a missing file is an InputError naming it', async () => {
  const file = join(dir, 'absent.npy');
  await expectInputError(readAll('npy', file), /cannot read: ENOENT/, { file });
});
