// What a router knows about the index it serves: enough to check queries,
// route ids and merge answers, and the version every request is pinned to.
import * as grpc from '@grpc/grpc-js';

import { PARTITIONER } from '../format/partition';
import type { Metric } from '../format/metric';
import { METRICS } from '../format/metric';
import { CanopyError } from '../wire/canopy-error';
import type { IndexInfo } from '../wire/contract';

export interface IndexView {
  readonly index: string;
  /** The active version: every request is pinned to it. */
  readonly version: string;
  readonly metric: Metric;
  readonly dim: number;
  readonly shardCount: number;
  readonly nTrees: number;
}

/**
 * The view agreed by the backends' DescribeIndex answers; throws (naming the
 * backends) when they disagree or speak another partitioner.
 */
export function viewFromBackends(answers: readonly { address: string; shard: number; info: IndexInfo }[]): IndexView {
  if (answers.length === 0) throw CanopyError.unavailable('no backend answered DescribeIndex');
  const first = answers[0]!;
  const { info } = first;
  if (!METRICS.includes(info.metric as Metric)) {
    throw new CanopyError(grpc.status.FAILED_PRECONDITION, `${first.address} reports unknown metric ${JSON.stringify(info.metric)}`);
  }
  if (info.partitioner !== PARTITIONER) {
    throw new CanopyError(grpc.status.FAILED_PRECONDITION, `${first.address} reports partitioner ${JSON.stringify(info.partitioner)}; this router routes ids by ${PARTITIONER}`);
  }
  for (const { address, shard, info: other } of answers) {
    if (!other.shards.some((s) => s.shard === shard)) {
      throw new CanopyError(
        grpc.status.FAILED_PRECONDITION,
        `${address} is configured as shard ${shard} but serves shard(s) ${other.shards.map((s) => s.shard).join(', ')}`,
      );
    }
    if (shard >= other.shardCount) {
      throw new CanopyError(grpc.status.FAILED_PRECONDITION, `${address} is configured as shard ${shard}, but the index has ${other.shardCount} shards`);
    }
    for (const field of ['index', 'activeVersion', 'metric', 'dim', 'shardCount'] as const) {
      if (other[field] !== info[field]) {
        throw new CanopyError(
          grpc.status.FAILED_PRECONDITION,
          `backends disagree on ${field}: ${first.address} says ${JSON.stringify(info[field])}, ${address} says ${JSON.stringify(other[field])}`,
        );
      }
    }
  }
  return {
    index: info.index,
    version: info.activeVersion,
    metric: info.metric as Metric,
    dim: info.dim,
    shardCount: info.shardCount,
    nTrees: info.nTrees,
  };
}
