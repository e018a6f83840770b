// A loaded index whose file is truncated on disk (issue #8): every search and read fails with
// EngineError BAD_FILE naming the file, instead of SIGBUS ending this process; other indexes answer on.
import { copyFileSync, statSync, truncateSync } from 'node:fs';
import { afterAll, describe, expect, test } from 'vitest';

import { EngineError, Index } from '../../../src';
import { builtIndex, scratchDir, vectors } from '../../support/engine-fixtures';

const DIM = 8;
const ITEMS = 3_000; // about 200 kB of nodes: the truncated half spans many pages
const K = 10;
const scratch = scratchDir();
afterAll(() => scratch.cleanup());

async function engineErrorOf(call: () => unknown): Promise<EngineError> {
  try {
    await call();
  } catch (e) {
    expect(e).toBeInstanceOf(EngineError);
    return e as EngineError;
  }
  throw new Error('the call did not fail');
}

describe.each([false, true])('an index file truncated while mapped (prefault %s)', (prefault) => {
  const items = vectors(ITEMS, DIM, 8);
  const file = scratch.file(`served-${prefault}.ann`);
  const otherFile = scratch.file(`other-${prefault}.ann`);
  builtIndex('angular', items, 8).save(file);
  copyFileSync(file, otherFile);
  const served = Index.load(file, { dim: DIM, metric: 'angular', prefault });
  const other = Index.load(otherFile, { dim: DIM, metric: 'angular', prefault });
  const expected = other.searchSync(items[7]!, K);
  afterAll(() => {
    served.unload();
    other.unload();
  });

  test('answers before, then every call fails with BAD_FILE naming the file; other indexes still answer', async () => {
    expect(Array.from(served.searchSync(items[7]!, K).ids)).toEqual(Array.from(expected.ids));
    truncateSync(file, Math.floor(statSync(file).size / 2));

    const calls: Array<[string, () => unknown]> = [
      ['search', () => served.search(items[7]!, K)],
      ['searchSync', () => served.searchSync(items[7]!, K)],
      ['searchBatch', () => served.searchBatch(items.slice(0, 4), K)],
      ['searchByItem', () => served.searchByItem(3, K)],
      ['searchByItemSync', () => served.searchByItemSync(3, K)],
      ['getItemVector', () => served.getItemVector(ITEMS - 1)],
      ['search again', () => served.search(items[8]!, K)],
    ];
    for (const [name, call] of calls) {
      const error = await engineErrorOf(call);
      expect(error.code, name).toBe('BAD_FILE');
      expect(error.message, name).toContain(`'${file}' changed on disk while mapped (truncated?)`);
    }

    const stillServed = await other.search(items[7]!, K);
    expect(Array.from(stillServed.ids)).toEqual(Array.from(expected.ids));
  });
});
