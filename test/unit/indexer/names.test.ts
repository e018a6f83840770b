import { expect, test } from 'vitest';

import { indexNameOf, versionStampOf } from '../../../src/indexer/builder';
import { checkName } from '../../../src/format/manifest';

test('the default index name is the input base name, reduced to what a name allows', () => {
  expect(indexNameOf('/data/GoogleNews-vectors-negative300.bin')).toBe('GoogleNews-vectors-negative300');
  expect(indexNameOf('My Vectors!.jsonl')).toBe('My-Vectors');
  expect(indexNameOf('/tmp/.hidden.npy')).toBe('hidden');
  expect(indexNameOf('/tmp/日本.npy')).toBe('index');
  expect(checkName('index', indexNameOf(`${'x'.repeat(300)}.npy`))).toHaveLength(128);
});

test('the default version is the UTC time to the second', () => {
  expect(versionStampOf(new Date('2026-11-26T14:01:02.345Z'))).toBe('20261126T140102Z');
});
