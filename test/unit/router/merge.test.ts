import { describe, expect, it } from 'vitest';

import type { Neighbor } from '../../../src/wire/contract';
import { neighborComparator } from '../../../src/wire/neighbor-order';
import { mergeTopK } from '../../../src/router/merge';

const n = (id: string, distance: number): Neighbor => ({ id, distance });

describe('mergeTopK', () => {
  const euclidean = neighborComparator('euclidean');

  it('merges sorted shard lists into the global top k, closest first', () => {
    const lists = [
      [n('a', 0.1), n('d', 0.9)],
      [n('b', 0.2), n('e', 1.5)],
      [n('c', 0.3), n('f', 0.4)],
    ];
    expect(mergeTopK(lists, 4, euclidean).map((x) => x.id)).toEqual(['a', 'b', 'c', 'f']);
  });

  it('breaks distance ties by id, whatever shard they come from', () => {
    const lists = [[n('z', 1)], [n('m', 1)], [n('a', 1), n('b', 2)]];
    expect(mergeTopK(lists, 3, euclidean).map((x) => x.id)).toEqual(['a', 'm', 'z']);
  });

  it('orders dot products largest first', () => {
    const dot = neighborComparator('dot');
    const lists = [[n('a', 5), n('b', -1)], [n('c', 7), n('d', 0)]];
    expect(mergeTopK(lists, 3, dot).map((x) => x.id)).toEqual(['c', 'a', 'd']);
  });

  it('skips excluded ids and still fills k from later entries', () => {
    const lists = [[n('a', 0.1), n('c', 0.3)], [n('b', 0.2), n('d', 0.4)]];
    expect(mergeTopK(lists, 2, euclidean, new Set(['a', 'b'])).map((x) => x.id)).toEqual(['c', 'd']);
  });

  it('returns fewer than k when the lists run out, and nothing for no lists', () => {
    expect(mergeTopK([[n('a', 1)], []], 5, euclidean)).toHaveLength(1);
    expect(mergeTopK([], 5, euclidean)).toEqual([]);
  });

  it('keeps an id once when two lists both hold it', () => {
    expect(mergeTopK([[n('a', 1)], [n('a', 1), n('b', 2)]], 5, euclidean).map((x) => x.id)).toEqual(['a', 'b']);
  });
});
