// Every kind of bad input is an EngineError with a stable code and a message naming the problem.
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, test } from 'vitest';

import { EngineError, Index, type EngineErrorCode } from '../../../src';
import { builtIndex, scratchDir, vectors } from '../../support/engine-fixtures';

const scratch = scratchDir();
afterAll(() => scratch.cleanup());

function expectEngineError(fn: () => unknown, code: EngineErrorCode, message: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(EngineError);
  expect((caught as EngineError).code).toBe(code);
  expect((caught as EngineError).message).toMatch(message);
}

describe('vectors and numbers', () => {
  const index = builtIndex('euclidean', vectors(50, 4), 3);

  test('wrong length, NaN and infinities', () => {
    expectEngineError(() => index.searchSync([1, 2, 3], 5), 'INVALID_ARGUMENT', /wrong length \(expected 4, got 3\)/);
    expectEngineError(() => index.searchSync(new Float32Array(5), 5), 'INVALID_ARGUMENT', /expected 4, got 5/);
    expectEngineError(() => index.searchSync([1, NaN, 0, 0], 5), 'INVALID_ARGUMENT', /\[1\] is NaN/);
    expectEngineError(() => index.searchSync(Float32Array.of(0, 0, Infinity, 0), 5), 'INVALID_ARGUMENT', /\[2\] is infinite/);
    expectEngineError(() => index.searchSync(['a', 1, 2, 3] as unknown as number[], 5), 'INVALID_ARGUMENT', /not a number/);
    expectEngineError(() => index.searchSync('x' as unknown as number[], 5), 'INVALID_ARGUMENT', /Float32Array or an array/);
    const fresh = new Index({ dim: 2, metric: 'angular' });
    expectEngineError(() => fresh.addItem(0, [1, -Infinity]), 'INVALID_ARGUMENT', /infinite/);
  });

  test('k, searchK and item ids', () => {
    expectEngineError(() => index.searchSync([0, 0, 0, 0], 0), 'INVALID_ARGUMENT', /k must be between 1/);
    expectEngineError(() => index.searchSync([0, 0, 0, 0], -3), 'INVALID_ARGUMENT', /k must be/);
    expectEngineError(() => index.searchSync([0, 0, 0, 0], 2.5), 'INVALID_ARGUMENT', /k must be an integer/);
    expectEngineError(() => index.searchSync([0, 0, 0, 0], 2, { searchK: 1.5 }), 'INVALID_ARGUMENT', /searchK/);
    expectEngineError(() => index.searchByItemSync(50, 3), 'OUT_OF_RANGE', /item 50 is out of range \(index has 50 items/);
    expectEngineError(() => index.searchByItemSync(-1, 3), 'OUT_OF_RANGE', /item -1 is out of range/);
    expectEngineError(() => index.getItemVector(50), 'OUT_OF_RANGE', /50/);
    expectEngineError(() => index.getDistance(0, 99), 'OUT_OF_RANGE', /99/);
    expectEngineError(() => new Index({ dim: 2, metric: 'angular' }).addItem(-4, [1, 1]), 'OUT_OF_RANGE', /-4/);
  });

  test('options of the constructor', () => {
    expectEngineError(() => new Index({ dim: 0, metric: 'angular' }), 'INVALID_ARGUMENT', /dim/);
    expectEngineError(() => new Index({ dim: 3, metric: 'cosine' as 'angular' }), 'INVALID_ARGUMENT', /unknown metric 'cosine'/);
    expectEngineError(() => new Index({ dim: 3, metric: 'dot', seed: -1 }), 'INVALID_ARGUMENT', /seed/);
  });

  test('async searches reject with the same errors', async () => {
    await expect(index.search([1, 2], 3)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(index.searchByItem(1000, 3)).rejects.toMatchObject({ code: 'OUT_OF_RANGE' });
    await expect(index.searchBatch(new Float32Array(7), 3)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(index.searchBatch([[1, 2, 3, 4], [1, 2]], 3)).rejects.toThrow(/queries\[1\] has wrong length/);
  });
});

describe('life-cycle order', () => {
  test('search before build, build twice, add after build, save before build', async () => {
    const index = new Index({ dim: 2, metric: 'euclidean' });
    index.addItem(0, [1, 1]);
    expectEngineError(() => index.searchSync([1, 1], 1), 'BAD_STATE', /not been built/);
    await expect(index.search([1, 1], 1)).rejects.toMatchObject({ code: 'BAD_STATE' });
    expectEngineError(() => index.save(scratch.file('early.ann')), 'BAD_STATE', /not been built/);
    expectEngineError(() => index.buildSync({ nTrees: 0 }), 'INVALID_ARGUMENT', /nTrees/);
    index.buildSync({ nTrees: 2 });
    expectEngineError(() => index.buildSync({ nTrees: 2 }), 'BAD_STATE', /cannot build/);
    await expect(index.build({ nTrees: 2 })).rejects.toMatchObject({ code: 'BAD_STATE' });
    expectEngineError(() => index.addItem(1, [1, 2]), 'BAD_STATE', /cannot add an item/);
    expectEngineError(() => index.onDiskBuild(scratch.file('late.ann')), 'BAD_STATE', /on-disk build/);
  });

  test('every call during an async build is refused', async () => {
    const index = new Index({ dim: 16, metric: 'angular' });
    vectors(5000, 16).forEach((v, i) => index.addItem(i, v));
    const building = index.build({ nTrees: 20, threads: 1 });
    expectEngineError(() => index.addItem(5000, new Float32Array(16)), 'BAD_STATE', /building/);
    expectEngineError(() => index.searchSync(new Float32Array(16), 1), 'BAD_STATE', /building/);
    expectEngineError(() => index.unload(), 'BAD_STATE', /building/);
    await building;
    expect(index.searchSync(new Float32Array(16), 1).ids.length).toBe(1);
  });

  test('using an unloaded index', async () => {
    const index = builtIndex('angular', vectors(20, 3), 2);
    index.unload();
    expectEngineError(() => index.searchSync([1, 2, 3], 1), 'BAD_STATE', /unloaded/);
    expectEngineError(() => index.getItemVector(0), 'BAD_STATE', /unloaded/);
    expectEngineError(() => index.save(scratch.file('gone.ann')), 'BAD_STATE', /unloaded/);
    await expect(index.searchBatch([[1, 2, 3]], 1)).rejects.toMatchObject({ code: 'BAD_STATE' });
  });
});

describe('files', () => {
  test('missing, empty, truncated and mis-sized files', () => {
    expectEngineError(() => Index.load(scratch.file('missing.ann'), { dim: 3, metric: 'angular' }), 'IO_ERROR', /missing\.ann.*No such file/);
    writeFileSync(scratch.file('empty.ann'), Buffer.alloc(0));
    expectEngineError(() => Index.load(scratch.file('empty.ann'), { dim: 3, metric: 'angular' }), 'BAD_FILE', /empty/);
    const index = builtIndex('angular', vectors(100, 3), 4);
    index.save(scratch.file('good.ann'));
    const size = 24 * (100 + 0); // a prefix that is not a whole number of 24-byte nodes
    writeFileSync(scratch.file('short.ann'), readFileSync(scratch.file('good.ann')).subarray(0, size + 5));
    expectEngineError(
      () => Index.load(scratch.file('short.ann'), { dim: 3, metric: 'angular' }),
      'BAD_FILE',
      /short\.ann' \(angular, dim 3, node size 24 bytes\) has size 2405 bytes, not a multiple/,
    );
    expectEngineError(() => Index.load(scratch.file('good.ann'), { dim: 4, metric: 'angular' }), 'BAD_FILE', /dim 4, node size 28/);
  });

  test('a corrupt child reference is refused at load, not a crash at search', () => {
    const index = builtIndex('euclidean', vectors(200, 2), 3);
    index.save(scratch.file('tree.ann'));
    const bytes = readFileSync(scratch.file('tree.ann'));
    const last = bytes.length - 24; // the last root copy: a split node
    bytes.writeInt32LE(0x7fffff00, last + 8);
    writeFileSync(scratch.file('corrupt.ann'), bytes);
    expectEngineError(() => Index.load(scratch.file('corrupt.ann'), { dim: 2, metric: 'euclidean' }), 'BAD_FILE', /corrupt: node \d+ has child 2147483392/);
  });

  test('a file path that cannot be written', () => {
    const index = builtIndex('angular', vectors(10, 3), 2);
    expectEngineError(() => index.save('/nonexistent-dir/x.ann'), 'IO_ERROR', /nonexistent-dir/);
  });
});
