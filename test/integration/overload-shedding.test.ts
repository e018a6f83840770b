// Overload is shed, not queued: a shard node whose engine queue holds one
// search (`--search-threads 1 --max-queued-searches 1`), flooded with
// concurrent exhaustive searches directly and through a router, refuses the
// excess at once with RESOURCE_EXHAUSTED naming the full queue, answers the
// rest exactly, and answers normally once the flood is over. The same with
// the engine's wait bound (`--max-queue-wait-ms 1`, room for 100,000
// searches): once the queue stands over 1 ms, the refusals name the oldest search's wait (and the
// searches queued before, dropped when a thread takes them, say how long they waited). And with the event-loop-lag gate (`--max-event-loop-lag-ms 1`, engine queue
// unbounded) on a shard node and on a router: the refusals name the lag.
// Not timed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CanopyClient } from '../../src/client/canopy-client';
import { CanopyError } from '../../src/wire/canopy-error';
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
/**
 * The wait bound sheds only a queue that stands over its target for an interval (at least 20 ms):
 * a burst that all arrives within that interval is absorbed by design. On a quiet machine 300 calls
 * arrive in less, so this flood is long enough to keep arriving after the queue has stood.
 */
const STANDING_FLOOD_CALLS = 3_000;
const CALL_DEADLINE_MS = 20_000;
/** A lag a flood surely causes (the gate's probe ticks every 5 ms) and an idle loop rarely shows. */
const GATE_LAG_MS = 1;
const QUEUE_FULL = /search queue is full/;
const WAIT_REFUSAL = /search queue is full \(\d+ of 100000 pending, the oldest waiting ~[\d.]+ ms, target 1\.0 ms\)/;
/** A search queued before the shedding began, dropped when a thread took it: refused late, never run. */
const WAIT_DROPPED = /search queue is full \(this search waited \d+ ms while the queue stood over its target\)/;
const LAG_REFUSAL = new RegExp(`overloaded: event loop lag \\d+ ms over ${GATE_LAG_MS}`);
/** After a flood, a lone call refused by a late tick on this busy machine is asked again (RESOURCE_EXHAUSTED says: retry). */
const AFTER_FLOOD_ATTEMPTS = 20;
const RETRY_PAUSE_MS = 50;

describe('overload shedding on a shard node with a tiny engine queue', () => {
  const group = new ProcessGroup();
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-overload-'));
  let fixture: Fixture;
  let shard: ServingProcess;
  let router: ServingProcess;
  let waitBoundShard: ServingProcess;
  let gatedShard: ServingProcess;
  let gatedRouter: ServingProcess;
  const clients: CanopyClient[] = [];

  const query = (seed: number): Float32Array => row(gaussianVectors(1, DIM, seed), 0);
  const exact = (q: Float32Array): string[] => Array.from(bruteForceTopK(fixture.base, q, K, fixture.metric).ids, idOfRow);

  beforeAll(async () => {
    fixture = await buildFixture(workDir, gaussianVectors(ITEMS, DIM, 9), { metric: 'euclidean', shards: 1, trees: 2, index: 'vectors', version: 'v1' });
    const shardAddress = `127.0.0.1:${await freePort()}`;
    shard = group.start('shard', shardAddress, [
      'serve', 'shard', '--manifest', fixture.dir, '--shard', '0', '--listen', shardAddress, '--search-threads', '1', '--max-queued-searches', '1',
      '--max-event-loop-lag-ms', '0',
    ]);
    const routerAddress = `127.0.0.1:${await freePort()}`;
    // No coalescing: each query is its own shard call, so the flood reaches the shard as it came.
    router = group.start('router', routerAddress, [
      'serve', 'router', '--listen', routerAddress, '--backend', `0=${shardAddress}`, '--no-coalesce', '--max-event-loop-lag-ms', '0',
    ]);
    const waitBoundShardAddress = `127.0.0.1:${await freePort()}`;
    waitBoundShard = group.start('wait-bound shard', waitBoundShardAddress, [
      'serve', 'shard', '--manifest', fixture.dir, '--shard', '0', '--listen', waitBoundShardAddress, '--search-threads', '1',
      '--max-queued-searches', '100000', '--max-queue-wait-ms', '1', '--max-event-loop-lag-ms', '0',
    ]);
    const gatedShardAddress = `127.0.0.1:${await freePort()}`;
    gatedShard = group.start('gated shard', gatedShardAddress, [
      'serve', 'shard', '--manifest', fixture.dir, '--shard', '0', '--listen', gatedShardAddress, '--search-threads', '1', '--max-queued-searches', '100000',
      '--max-queue-wait-ms', '0', '--max-event-loop-lag-ms', String(GATE_LAG_MS),
    ]);
    // In front of the queue-bounded shard with its gate off: the lag refusals it answers are its own.
    const gatedRouterAddress = `127.0.0.1:${await freePort()}`;
    gatedRouter = group.start('gated router', gatedRouterAddress, [
      'serve', 'router', '--listen', gatedRouterAddress, '--backend', `0=${shardAddress}`, '--no-coalesce', '--max-event-loop-lag-ms', String(GATE_LAG_MS),
    ]);
    await Promise.all([shard, router, waitBoundShard, gatedShard, gatedRouter].map((p) => waitServing(p)));
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await group.killAll();
    rmSync(workDir, { recursive: true, force: true });
  });

  it.each([
    { name: 'shard', proc: () => shard, refusal: QUEUE_FULL },
    { name: 'router', proc: () => router, refusal: QUEUE_FULL },
    { name: 'wait-bound shard', proc: () => waitBoundShard, refusal: WAIT_REFUSAL, calls: STANDING_FLOOD_CALLS },
    { name: 'gated shard', proc: () => gatedShard, refusal: LAG_REFUSAL },
    { name: 'gated router', proc: () => gatedRouter, refusal: LAG_REFUSAL },
  ])('a flood at the $name gets some RESOURCE_EXHAUSTED at once, exact answers otherwise, and service after', async ({ proc: procOf, refusal, calls = FLOOD_CALLS }) => {
    const proc = procOf();
    const client = new CanopyClient({ target: proc.address, deadlineMs: CALL_DEADLINE_MS });
    clients.push(client);
    const q = query(1);
    const want = exact(q);
    const outcomes = await Promise.all(
      Array.from({ length: calls }, () =>
        client.search(fixture.index, q, { k: K, searchK: EXHAUSTIVE_SEARCH_K }).then(
          (answer) => ({ ids: answer.neighbors.map((n) => n.id), error: undefined }),
          (err: unknown) => ({ ids: undefined, error: CanopyError.from(err) }),
        ),
      ),
    );
    const refused = outcomes.filter((o) => o.error !== undefined);
    const answered = outcomes.filter((o) => o.error === undefined);
    // The queue takes in what it can hold; the lag gate may refuse a whole burst that arrives in one go.
    if (refusal !== LAG_REFUSAL) expect(answered.length, 'no call was answered').toBeGreaterThan(0);
    for (const o of refused) {
      expect(o.error!.code, o.error!.message).toBe(grpc.status.RESOURCE_EXHAUSTED);
      // The gated router also passes on its shard's full queue.
      const also = refusal === LAG_REFUSAL ? QUEUE_FULL : refusal === WAIT_REFUSAL ? WAIT_DROPPED : refusal;
      expect(o.error!.message).toMatch(new RegExp(`${refusal.source}|${also.source}`));
    }
    expect(refused.filter((o) => refusal.test(o.error!.message)).length, 'no call was refused as expected').toBeGreaterThan(0);
    for (const o of answered) expect(o.ids).toEqual(want);

    // After the flood: sequential calls are all answered.
    for (const seed of [2, 3, 4]) {
      const answer = await searchPatiently(client, query(seed));
      expect(answer.neighbors.map((n) => n.id)).toEqual(exact(query(seed)));
    }
    expect(proc.exited).toBe(false);
  }, 60_000);

  /** A search, asked again (bounded) while it is refused with RESOURCE_EXHAUSTED. */
  async function searchPatiently(client: CanopyClient, q: Float32Array) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await client.search(fixture.index, q, { k: K, searchK: EXHAUSTIVE_SEARCH_K });
      } catch (err) {
        if (attempt === AFTER_FLOOD_ATTEMPTS || CanopyError.from(err).code !== grpc.status.RESOURCE_EXHAUSTED) throw err;
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
      }
    }
  }
});
