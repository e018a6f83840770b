// FanOut's status when a shard cannot answer, against scripted replicas on
// loopback: a shard whose every replica refused makes the query RESOURCE_EXHAUSTED
// whether the other shard answered or is still pending.
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';

import { BackendPool } from '../../../src/router/backend-pool';
import { FanOut } from '../../../src/router/fan-out';
import type { IndexView } from '../../../src/router/index-view';
import { ShardCaller } from '../../../src/router/shard-caller';
import type { CanopyError } from '../../../src/wire/canopy-error';
import { type Behaviour, ScriptedReplica } from '../../support/scripted-replica';

const view: IndexView = { index: 'i', version: 'v', metric: 'euclidean', dim: 1, shardCount: 2, nTrees: 1 } as IndexView;
const query = {
  request: { index: 'i', vector: [], vectorF32: Buffer.alloc(0), k: 1, searchK: 0, excludeIds: [], minShards: 0, version: '' },
  k: 1,
  excluded: new Set<string>(),
};

describe('FanOut status when a shard cannot answer', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });

  /** Shard 0: two replicas that refuse; shard 1: two replicas behaving as `other`. */
  async function searchWith(other: Behaviour): Promise<CanopyError> {
    const pool = new BackendPool({}, pino({ level: 'silent' }));
    cleanups.push(() => pool.close());
    for (const [shard, behaviour] of [[0, 'refuse'], [1, other]] as const) {
      const replicas = [new ScriptedReplica(`s${shard}a`), new ScriptedReplica(`s${shard}b`)];
      for (const r of replicas) {
        r.behaviour = behaviour;
        cleanups.push(() => r.server.close(), () => r.drain.endAll());
      }
      pool.setReplicas(shard, await Promise.all(replicas.map((r) => r.start())));
    }
    const fanOut = new FanOut(pool, new ShardCaller(pool, { hedging: false }));
    return (await fanOut.search(view, [query], Date.now() + 1_000, 0).catch((e: unknown) => e)) as CanopyError;
  }

  it.each<Behaviour>(['answer', 'hang'])('shard 1 does %s: RESOURCE_EXHAUSTED naming both refusals of shard 0', async (other) => {
    const err = await searchWith(other);
    expect(grpc.status[err.code]).toBe('RESOURCE_EXHAUSTED');
    expect(err.message).toMatch(/shard 0 \(127\.0\.0\.1:\d+\): s0[ab] is full; shard 0 \(127\.0\.0\.1:\d+\): s0[ab] is full/);
  });
});
