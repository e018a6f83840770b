// FanOut's status when a shard cannot answer, against scripted replicas on
// loopback: a shard whose every replica refused makes the query RESOURCE_EXHAUSTED
// whatever the other shard does (answers, is still pending, or fails UNAVAILABLE
// after the refusal), with or without partial answers allowed; a shard down on
// every replica, with no refusal anywhere, makes it UNAVAILABLE.
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
  request: { index: 'i', vector: [], vectorF32: Buffer.alloc(0), k: 1, searchK: 0, excludeIds: [], minShards: 0, version: '', exact: false, rerank: 0, ef: 0 },
  k: 1,
  excluded: new Set<string>(),
};
/** Long enough that shard 0's two refusals (first attempt and retry) are in before shard 1 fails. */
const LATE_MS = 300;
const BOTH_REFUSALS = /shard 0 \(127\.0\.0\.1:\d+\): s0[ab] is full; shard 0 \(127\.0\.0\.1:\d+\): s0[ab] is full/;

/** What one replica does: a behaviour, after an optional delay. */
type Script = readonly [Behaviour, number?];

describe('FanOut status when a shard cannot answer', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });

  /** Shards 0 and 1, two replicas each, scripted; the query's failure (minShards 0: all shards required). */
  async function searchWith(scripts: readonly [readonly Script[], readonly Script[]], minShards = 0): Promise<CanopyError> {
    const pool = new BackendPool({}, pino({ level: 'silent' }));
    cleanups.push(() => pool.close());
    for (const [shard, replicaScripts] of scripts.entries()) {
      const replicas = replicaScripts.map(([behaviour, delayMs = 0], i) => {
        const r = new ScriptedReplica(`s${shard}${'ab'[i]}`);
        r.behaviour = behaviour;
        r.delayMs = delayMs;
        cleanups.push(() => r.server.close(), () => r.drain.endAll());
        return r;
      });
      pool.setReplicas(shard, await Promise.all(replicas.map((r) => r.start())));
    }
    const fanOut = new FanOut(pool, new ShardCaller(pool, { hedging: false }));
    const outcome = await fanOut.search(view, [query], Date.now() + 2_000, minShards).then(() => undefined, (e: unknown) => e as CanopyError);
    expect(outcome, 'the search was answered').toBeDefined();
    return outcome!;
  }

  const refusing: Script[] = [['refuse'], ['refuse']];

  it.each<[string, Script[]]>([
    ['answers', [['answer'], ['answer']]],
    ['is still pending', [['hang'], ['hang']]],
    ['fails UNAVAILABLE on both replicas after the refusal', [['unavailable', LATE_MS], ['unavailable', LATE_MS]]],
    ['refuses on one replica and is down on the other, after the refusal', [['refuse', LATE_MS], ['unavailable', LATE_MS]]],
  ])('shard 1 %s: RESOURCE_EXHAUSTED naming both refusals of shard 0', async (_, other) => {
    const err = await searchWith([refusing, other]);
    expect(grpc.status[err.code], err.message).toBe('RESOURCE_EXHAUSTED');
    expect(err.message).toMatch(BOTH_REFUSALS);
  });

  it('with partial answers allowed (min_shards 1), shard 1 failing UNAVAILABLE after shard 0 refused: RESOURCE_EXHAUSTED', async () => {
    const err = await searchWith([refusing, [['unavailable', LATE_MS], ['unavailable', LATE_MS]]], 1);
    expect(grpc.status[err.code], err.message).toBe('RESOURCE_EXHAUSTED');
    expect(err.message).toMatch(BOTH_REFUSALS);
    expect(err.message).toMatch(/s1a is down/);
  });

  it('one replica of shard 0 refusing and the other down, shard 1 answering: UNAVAILABLE (not every replica refused)', async () => {
    const err = await searchWith([[['refuse'], ['unavailable']], [['answer'], ['answer']]]);
    expect(grpc.status[err.code], err.message).toBe('UNAVAILABLE');
  });
});
