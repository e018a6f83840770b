// Overload is shed, not queued: a shard node whose engine queue holds one
// search (`--search-threads 1 --max-queued-searches 1`), flooded with
// concurrent exhaustive searches directly and through a router, refuses the
// excess at once with RESOURCE_EXHAUSTED naming the full queue, answers the
// rest exactly, and answers normally once the flood is over. Not timed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CanopyClient } from '../../src/client/canopy-client';
import { CanopyError } from '../../src/client/canopy-error';
import { bruteForceTopK } from '../support/brute-force';
import { freePort } from '../support/free-port';
import { row } from '../support/matrix';
import { buildFixture, type Fixture, idOfRow } from '../support/serving/fixture';
import { ProcessGroup, type ServingProcess, waitServing } from '../support/serving/processes';
import { gaussianVectors } from '../support/vectors';

const ITEMS = 4_000;
const DIM = 32;
const K = 5;
/** Every search visits every item: slow enough that a flood outruns one thread. */
const EXHAUSTIVE_SEARCH_K = 1_000_000;
const FLOOD_CALLS = 300;
const CALL_DEADLINE_MS = 20_000;

describe('overload shedding on a shard node with a tiny engine queue', () => {
  const group = new ProcessGroup();
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-overload-'));
  let fixture: Fixture;
  let shard: ServingProcess;
  let router: ServingProcess;
  const clients: CanopyClient[] = [];

  const query = (seed: number): Float32Array => row(gaussianVectors(1, DIM, seed), 0);
  const exact = (q: Float32Array): string[] => Array.from(bruteForceTopK(fixture.base, q, K, fixture.metric).ids, idOfRow);

  beforeAll(async () => {
    fixture = await buildFixture(workDir, gaussianVectors(ITEMS, DIM, 9), { metric: 'euclidean', shards: 1, trees: 2, index: 'vectors', version: 'v1' });
    const shardAddress = `127.0.0.1:${await freePort()}`;
    shard = group.start('shard', shardAddress, [
      'serve', 'shard', '--manifest', fixture.dir, '--shard', '0', '--listen', shardAddress, '--search-threads', '1', '--max-queued-searches', '1',
    ]);
    await waitServing(shard);
    const routerAddress = `127.0.0.1:${await freePort()}`;
    // No coalescing: each query is its own shard call, so the flood reaches the shard as it came.
    router = group.start('router', routerAddress, ['serve', 'router', '--listen', routerAddress, '--backend', `0=${shardAddress}`, '--no-coalesce']);
    await waitServing(router);
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await group.killAll();
    rmSync(workDir, { recursive: true, force: true });
  });

  it.each(['shard', 'router'] as const)('a flood at the %s gets some RESOURCE_EXHAUSTED at once, exact answers otherwise, and service after', async (name) => {
    const proc = name === 'shard' ? shard : router;
    const client = new CanopyClient({ target: proc.address, deadlineMs: CALL_DEADLINE_MS });
    clients.push(client);
    const q = query(1);
    const want = exact(q);
    const outcomes = await Promise.all(
      Array.from({ length: FLOOD_CALLS }, () =>
        client.search(fixture.index, q, { k: K, searchK: EXHAUSTIVE_SEARCH_K }).then(
          (answer) => ({ ids: answer.neighbors.map((n) => n.id), error: undefined }),
          (err: unknown) => ({ ids: undefined, error: CanopyError.from(err) }),
        ),
      ),
    );
    const refused = outcomes.filter((o) => o.error !== undefined);
    const answered = outcomes.filter((o) => o.error === undefined);
    expect(refused.length, 'no call was refused').toBeGreaterThan(0);
    expect(answered.length, 'no call was answered').toBeGreaterThan(0);
    for (const o of refused) {
      expect(o.error!.code, o.error!.message).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(o.error!.message).toMatch(/search queue is full/);
    }
    for (const o of answered) expect(o.ids).toEqual(want);

    // After the flood: sequential calls are all answered.
    for (const seed of [2, 3, 4]) {
      const answer = await client.search(fixture.index, query(seed), { k: K, searchK: EXHAUSTIVE_SEARCH_K });
      expect(answer.neighbors.map((n) => n.id)).toEqual(exact(query(seed)));
    }
    expect(proc.exited).toBe(false);
  }, 60_000);
});
