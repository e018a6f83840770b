// A static router's view of its index comes from its backends' DescribeIndex
// answers: it must refuse backends that disagree, speak another partitioner or
// are configured as a shard they do not serve, naming the backend.
import { describe, expect, test } from 'vitest';

import { PARTITIONER } from '../../../src/format/partition';
import { viewFromBackends } from '../../../src/router/index-view';
import type { IndexInfo } from '../../../src/wire/contract';

function info(shard: number, overrides: Partial<IndexInfo> = {}): IndexInfo {
  return {
    index: 'tracks', metric: 'angular', dim: 8, items: 100, nTrees: 10, shardCount: 2, activeVersion: 'v1',
    shards: [{ shard, items: 50, replicasTotal: 1, replicasAnswered: 1, sidecars: [] }], versions: ['v1'], partitioner: PARTITIONER,
    ...overrides,
  };
}
const backend = (shard: number, overrides: Partial<IndexInfo> = {}) => ({ address: `10.0.0.${shard}:50051`, shard, info: info(shard, overrides) });

describe('viewFromBackends', () => {
  test('agreeing backends give the index, its active version, metric, dim, shards and trees', () => {
    expect(viewFromBackends([backend(0), backend(1)])).toEqual({ index: 'tracks', version: 'v1', metric: 'angular', dim: 8, shardCount: 2, nTrees: 10 });
  });

  test('no answer at all is UNAVAILABLE', () => {
    expect(() => viewFromBackends([])).toThrow(/no backend answered/);
  });

  test.each([
    ['another partitioner', [backend(0, { partitioner: 'modulo' }), backend(1)], /partitioner "modulo"/],
    ['an unknown metric', [backend(0, { metric: 'cosine' }), backend(1)], /unknown metric "cosine"/],
    ['a disagreement on the version', [backend(0), backend(1, { activeVersion: 'v2' })], /disagree on activeVersion: 10.0.0.0:50051 says "v1", 10.0.0.1:50051 says "v2"/],
    ['a disagreement on the dimension', [backend(0), backend(1, { dim: 9 })], /disagree on dim/],
    ['a backend serving another shard', [backend(0), { ...backend(1), info: info(0) }], /configured as shard 1 but serves shard\(s\) 0/],
    ['a shard beyond the shard count', [backend(0), backend(1), { ...backend(2), info: info(2) }], /configured as shard 2, but the index has 2 shards/],
  ])('refuses %s, naming it', (_, answers, message) => {
    expect(() => viewFromBackends(answers)).toThrow(message);
  });
});
