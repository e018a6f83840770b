// A static-mode router (`--backend`) started before its shard nodes listen:
// its channels meet closed ports and back off. Once a replica of each shard
// serves, the router's next query must be answered (not UNAVAILABLE "No
// connection established" until some backoff runs out), and when the replicas
// it was using die, the others (started later) must take over at once.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CanopyClient } from '../../src/client/canopy-client';
import { freePort } from '../support/free-port';
import { row } from '../support/matrix';
import { buildFixture, type Fixture } from '../support/serving/fixture';
import { ProcessGroup, type ServingProcess, waitServing } from '../support/serving/processes';
import { gaussianVectors } from '../support/vectors';

const SHARDS = 2;
const ITEMS = 400;
const DIM = 8;
/** Failed queries before any shard listens: enough for grpc-js's backoff to grow past a few seconds. */
const QUERIES_WHILE_DOWN = 8;
const DOWN_QUERY_GAP_MS = 700;

describe('router started before its shard nodes', () => {
  const group = new ProcessGroup();
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-reconnect-'));
  let fixture: Fixture;
  /** addresses[shard][replica] */
  const addresses: string[][] = [];
  let router: ServingProcess;
  let client: CanopyClient;

  beforeAll(async () => {
    fixture = await buildFixture(workDir, gaussianVectors(ITEMS, DIM, 3), { metric: 'euclidean', shards: SHARDS, trees: 4, index: 'vectors', version: 'v1' });
    for (let shard = 0; shard < SHARDS; shard++) addresses.push([`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`]);
    const address = `127.0.0.1:${await freePort()}`;
    const backends = addresses.flatMap((list, shard) => list.flatMap((a) => ['--backend', `${shard}=${a}`]));
    router = group.start('router', address, ['serve', 'router', '--listen', address, ...backends]);
    await waitServing(router, 20_000, ''); // up; SERVING for queries only once a backend described the index
    client = new CanopyClient({ target: address, deadlineMs: 5_000 });
  });

  afterAll(async () => {
    client?.close();
    await group.killAll();
    rmSync(workDir, { recursive: true, force: true });
  });

  const startReplica = (shard: number, replica: number): ServingProcess =>
    group.start(`shard ${shard} replica ${replica}`, addresses[shard]![replica]!, [
      'serve', 'shard', '--manifest', fixture.dir, '--shard', String(shard), '--listen', addresses[shard]![replica]!,
    ]);

  it('answers as soon as one replica per shard serves, then fails over to replicas started later', async () => {
    const query = row(fixture.base, 0);
    for (let i = 0; i < QUERIES_WHILE_DOWN; i++) {
      await expect(client.search('vectors', query, { k: 5, deadlineMs: 300 })).rejects.toThrow();
      await new Promise((r) => setTimeout(r, DOWN_QUERY_GAP_MS));
    }

    const first = [0, 1].map((shard) => startReplica(shard, 0));
    await Promise.all(first.map((p) => waitServing(p)));
    await waitServing(router);
    // A channel may be mid-backoff (at most 1 s) when its shard comes up: the router must answer within
    // a bound, not after grpc-js's default backoff (up to 2 minutes).
    const answer = await answerWithin(10_000, () => client.search('vectors', query, { k: 5 }));
    expect(answer.shardsAnswered).toBe(SHARDS);
    expect(answer.neighbors[0]!.id).toBe('item-0');

    const second = [0, 1].map((shard) => startReplica(shard, 1));
    await Promise.all(second.map((p) => waitServing(p)));
    await Promise.all(first.map((p) => p.kill()));
    for (let i = 0; i < 5; i++) {
      const again = await client.search('vectors', row(fixture.base, i), { k: 5 });
      expect(again.shardsAnswered).toBe(SHARDS);
      expect(again.neighbors[0]!.id).toBe(`item-${i}`);
    }
  }, 60_000);
});

/** The first success of `call`, retried until `ms` have passed; the last failure otherwise. */
async function answerWithin<T>(ms: number, call: () => Promise<T>): Promise<T> {
  const endMs = Date.now() + ms;
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if (Date.now() > endMs) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
