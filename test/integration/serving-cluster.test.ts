// A real cluster on loopback: 3 shards x 2 replicas (`canopy serve shard`),
// one router (`canopy serve router`), queried through the TypeScript client.
// Answers are checked against brute force over all items; faults are real
// (SIGKILL, SIGSTOP). Destructive tests run last, in order.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { shardOfId } from '../../src/format/partition';
import { CanopyClient } from '../../src/client/canopy-client';
import type { CanopyError } from '../../src/wire/canopy-error';
import type { SearchResponse } from '../../src/wire/contract';
import { viewFloat32 } from '../../src/wire/query';
import { bruteForceTopK } from '../support/brute-force';
import { runCanopy } from '../support/cli';
import { freePort } from '../support/free-port';
import { row } from '../support/matrix';
import { buildFixture, type Fixture, idOfRow } from '../support/serving/fixture';
import { ProcessGroup, type ServingProcess, waitEveryWorkerServing, waitServing } from '../support/serving/processes';
import { gaussianVectors, SeededRandom } from '../support/vectors';

const SHARDS = 3;
const REPLICAS = 2;
const ITEMS = 1_500;
const DIM = 12;
const K = 10;
/** Enough nodes per shard to visit every leaf: the answer is then exact. */
const EXHAUSTIVE_SEARCH_K = 1_000_000;

describe('serving: router over 3 shards x 2 replicas', () => {
  const group = new ProcessGroup();
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-serving-'));
  let fixture: Fixture;
  let replicas: ServingProcess[][] = [];
  let router: ServingProcess;
  let client: CanopyClient;

  beforeAll(async () => {
    fixture = await buildFixture(workDir, gaussianVectors(ITEMS, DIM, 7), {
      metric: 'euclidean',
      shards: SHARDS,
      trees: 8,
      index: 'vectors',
      version: 'v1',
    });
    replicas = [];
    for (let shard = 0; shard < SHARDS; shard++) {
      const list: ServingProcess[] = [];
      for (let r = 0; r < REPLICAS; r++) {
        const address = `127.0.0.1:${await freePort()}`;
        list.push(group.start(`shard ${shard} replica ${r}`, address, ['serve', 'shard', '--manifest', fixture.dir, '--shard', String(shard), '--listen', address]));
      }
      replicas.push(list);
    }
    await Promise.all(replicas.flat().map((p) => waitServing(p)));
    const address = `127.0.0.1:${await freePort()}`;
    const backends = replicas.flatMap((list, shard) => list.flatMap((p) => ['--backend', `${shard}=${p.address}`]));
    router = group.start('router', address, ['serve', 'router', '--listen', address, ...backends]);
    await waitServing(router);
    client = new CanopyClient({ target: address, deadlineMs: 10_000 });
  });

  afterAll(async () => {
    client?.close();
    await group.killAll();
    rmSync(workDir, { recursive: true, force: true });
  });

  function truth(query: Float32Array, k: number): { ids: string[]; distances: number[] } {
    const exact = bruteForceTopK(fixture.base, query, k, fixture.metric);
    return { ids: Array.from(exact.ids, idOfRow), distances: Array.from(exact.distances) };
  }

  const ids = (r: SearchResponse): string[] => r.neighbors.map((n) => n.id);

  function queries(n: number, seed: number): Float32Array[] {
    const m = gaussianVectors(n, DIM, seed);
    return Array.from({ length: n }, (_, i) => row(m, i));
  }

  async function refusal(p: Promise<unknown>): Promise<CanopyError> {
    const outcome = await p.then(
      () => undefined,
      (err: CanopyError) => err,
    );
    expect(outcome, 'the call should have failed').toBeDefined();
    return outcome!;
  }

  it('answers the exact top k (brute force over all items) when search_k is large', async () => {
    for (const q of queries(25, 11)) {
      const answer = await client.search(fixture.index, q, { k: K, searchK: EXHAUSTIVE_SEARCH_K });
      const want = truth(q, K);
      expect(ids(answer)).toEqual(want.ids);
      answer.neighbors.forEach((n, i) => expect(n.distance).toBeCloseTo(want.distances[i]!, 4));
      expect(answer).toMatchObject({ indexVersion: 'v1', shardsTotal: SHARDS, shardsAnswered: SHARDS, shardsMissing: [] });
    }
  });

  it('answers a BatchSearch like the same searches one by one', async () => {
    const qs = queries(12, 12);
    const batch = await client.batchSearch(fixture.index, qs, { k: K, searchK: EXHAUSTIVE_SEARCH_K });
    expect(batch.results).toHaveLength(qs.length);
    batch.results.forEach((r, i) => expect(ids(r)).toEqual(truth(qs[i]!, K).ids));
    expect(batch).toMatchObject({ indexVersion: 'v1', shardsAnswered: SHARDS });
  });

  it('leaves out exclude_ids and still returns k neighbours', async () => {
    const [q] = queries(1, 13);
    const want = truth(q!, K + 4).ids;
    const excluded = [want[0]!, want[2]!, want[5]!, 'no-such-id'];
    const answer = await client.search(fixture.index, q!, { k: K, searchK: EXHAUSTIVE_SEARCH_K, excludeIds: excluded });
    expect(ids(answer)).toEqual(want.filter((id) => !excluded.includes(id)).slice(0, K));
  });

  it('finds neighbours of a stored item by id, and returns its stored vector', async () => {
    const rng = new SeededRandom(5);
    for (let i = 0; i < 6; i++) {
      const r = rng.below(ITEMS);
      const id = idOfRow(r);
      const answer = await client.searchByItem(fixture.index, id, { k: K, searchK: EXHAUSTIVE_SEARCH_K });
      expect(answer.neighbors[0]).toEqual({ id, distance: 0 });
      expect(ids(answer)).toEqual(truth(row(fixture.base, r), K).ids);
      const item = await client.getItem(fixture.index, id);
      expect(item.shard).toBe(shardOfId(id, SHARDS));
      expect(Array.from(viewFloat32(item.vectorF32))).toEqual(Array.from(row(fixture.base, r)));
      expect(item.vector).toEqual(Array.from(row(fixture.base, r)));
    }
  });

  it('describes the index: metric, dim, items over all shards, replicas, version', async () => {
    const info = await client.describeIndex(fixture.index);
    expect(info).toMatchObject({ index: 'vectors', metric: 'euclidean', dim: DIM, items: ITEMS, shardCount: SHARDS, activeVersion: 'v1' });
    expect(info.shards.map((s) => [s.shard, s.replicasTotal, s.replicasAnswered])).toEqual([
      [0, 2, 2],
      [1, 2, 2],
      [2, 2, 2],
    ]);
  });

  it('refuses bad requests with clear statuses and keeps serving after each', async () => {
    const good = queries(1, 14)[0]!;
    const cases: [string, () => Promise<unknown>, grpc.status, RegExp][] = [
      ['wrong dimension', () => client.search(fixture.index, [1, 2, 3]), grpc.status.INVALID_ARGUMENT, /dimension 3, the index has 12/],
      ['NaN', () => client.search(fixture.index, Array.from(good, (x, i) => (i === 4 ? Number.NaN : x))), grpc.status.INVALID_ARGUMENT, /vector\[4\] is NaN/],
      ['k = 0', () => client.search(fixture.index, good, { k: 0 }), grpc.status.INVALID_ARGUMENT, /k must be between 1 and 1000/],
      ['k above max', () => client.search(fixture.index, good, { k: 1001 }), grpc.status.INVALID_ARGUMENT, /k must be between 1 and 1000/],
      ['batch above max', () => client.batchSearch(fixture.index, Array.from({ length: 1025 }, () => good)), grpc.status.INVALID_ARGUMENT, /at most 1024 queries, got 1025/],
      ['bad query in a batch', () => client.batchSearch(fixture.index, [good, [1]]), grpc.status.INVALID_ARGUMENT, /^queries\[1\]: vector has dimension 1/],
      ['unknown index', () => client.search('nope', good), grpc.status.NOT_FOUND, /index "nope" is not served here/],
      ['unknown id (GetItem)', () => client.getItem(fixture.index, 'no-such-id'), grpc.status.NOT_FOUND, /id "no-such-id" is not in shard/],
      ['unknown id (SearchByItem)', () => client.searchByItem(fixture.index, 'no-such-id'), grpc.status.NOT_FOUND, /id "no-such-id" is not in shard/],
      ['unknown version', () => client.search(fixture.index, good, { version: 'v0' }), grpc.status.NOT_FOUND, /version "v0"/],
      ['message above the size cap', () => client.search(fixture.index, new Float32Array(5_000_000)), grpc.status.RESOURCE_EXHAUSTED, /message larger than max/i],
    ];
    for (const [name, call, code, message] of cases) {
      const err = await refusal(call());
      expect(grpc.status[err.code], name).toBe(grpc.status[code]);
      expect(err.message, name).toMatch(message);
      expect(ids(await client.search(fixture.index, good, { k: 3 })), `serving after ${name}`).toHaveLength(3);
    }
  });

  it('answers shard nodes directly with the same statuses', async () => {
    const shard = new CanopyClient({ target: replicas[1]![0]!.address });
    try {
      expect((await refusal(shard.search(fixture.index, [1]))).code).toBe(grpc.status.INVALID_ARGUMENT);
      expect((await refusal(shard.search('nope', new Float32Array(DIM)))).code).toBe(grpc.status.NOT_FOUND);
      const answer = await shard.search(fixture.index, new Float32Array(DIM), { k: 5, searchK: EXHAUSTIVE_SEARCH_K });
      expect(answer.neighbors.every((n) => shardOfId(n.id, SHARDS) === 1)).toBe(true);
      expect(answer).toMatchObject({ shardsTotal: 1, shardsAnswered: 1 });
    } finally {
      shard.close();
    }
  });

  it('prints answers as JSON with canopy query, by vector and by item, and fails clearly', async () => {
    const q = queries(1, 18)[0]!;
    const target = ['query', '--target', router.address, '--index', fixture.index];
    const byVector = await runCanopy([...target, '--vector', JSON.stringify(Array.from(q)), '--k', '4', '--search-k', String(EXHAUSTIVE_SEARCH_K)]);
    expect(byVector.code, byVector.stderr).toBe(0);
    expect((JSON.parse(byVector.stdout) as SearchResponse).neighbors.map((n) => n.id)).toEqual(truth(q, 4).ids);
    const byItem = await runCanopy([...target, '--item', idOfRow(42), '--k', '2']);
    expect((JSON.parse(byItem.stdout) as SearchResponse).neighbors[0]).toEqual({ id: idOfRow(42), distance: 0 });
    const bad = await runCanopy([...target, '--vector', '[1,2]']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/INVALID_ARGUMENT: query: vector has dimension 2, the index has 12/);
  });

  it('serves from several worker processes sharing one port (--workers 2)', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const backends = replicas.flatMap((list, shard) => list.flatMap((p) => ['--backend', `${shard}=${p.address}`]));
    const workers = group.start('router with 2 workers', address, ['serve', 'router', '--listen', address, '--workers', '2', ...backends]);
    await waitEveryWorkerServing(workers, 2);
    // Separate clients get separate connections, which node:cluster deals out to the workers.
    const clients = Array.from({ length: 4 }, () => new CanopyClient({ target: address, deadlineMs: 10_000 }));
    try {
      const q = queries(1, 19)[0]!;
      const answers = await Promise.all(clients.map((c) => c.search(fixture.index, q, { k: K, searchK: EXHAUSTIVE_SEARCH_K })));
      for (const a of answers) expect(ids(a)).toEqual(truth(q, K).ids);
    } finally {
      for (const c of clients) c.close();
      await workers.kill();
    }
  });

  it('loses no query when a replica stops gracefully (SIGTERM) under a stream of queries', async () => {
    const qs = queries(200, 20);
    const leaving = replicas[0]![1]!;
    let sent = 0;
    const results: SearchResponse[] = [];
    const worker = async (): Promise<void> => {
      while (sent < qs.length) {
        const q = qs[sent++]!;
        if (sent === 40) leaving.signal('SIGTERM');
        results.push(await client.search(fixture.index, q, { k: K }));
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    expect(results).toHaveLength(qs.length);
    expect(results.every((r) => r.shardsAnswered === SHARDS && r.neighbors.length === K)).toBe(true);
    for (let i = 0; i < 50 && !leaving.exited; i++) await new Promise((r) => setTimeout(r, 100));
    expect(leaving.exited).toBe(true);
  });

  it('loses no query when a replica is killed (SIGKILL) under a stream of queries', async () => {
    const qs = queries(300, 15);
    const victim = replicas[1]![0]!;
    let sent = 0;
    const results: SearchResponse[] = [];
    const worker = async (): Promise<void> => {
      while (sent < qs.length) {
        const q = qs[sent++]!;
        if (sent === 60) void victim.kill();
        results.push(await client.search(fixture.index, q, { k: K }));
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    expect(victim.exited).toBe(true);
    expect(results).toHaveLength(qs.length);
    expect(results.every((r) => r.shardsAnswered === SHARDS && r.neighbors.length === K)).toBe(true);
  });

  it('honours deadlines: a hung shard yields a partial answer when min_shards allows, DEADLINE_EXCEEDED naming it otherwise', async () => {
    const hung = replicas[2]!;
    for (const p of hung) p.signal('SIGSTOP');
    try {
      const q = queries(1, 16)[0]!;
      const partial = await client.search(fixture.index, q, { k: K, minShards: 2, deadlineMs: 400 });
      expect(partial).toMatchObject({ shardsTotal: SHARDS, shardsAnswered: 2, shardsMissing: [2] });
      expect(partial.neighbors.every((n) => shardOfId(n.id, SHARDS) !== 2)).toBe(true);
      const err = await refusal(client.search(fixture.index, q, { k: K, deadlineMs: 400 }));
      expect(grpc.status[err.code]).toBe('DEADLINE_EXCEEDED');
      expect(err.message).toMatch(/^2 of 3 shards answered, 3 required; no answer before the deadline from shard 2$/);
    } finally {
      for (const p of hung) p.signal('SIGCONT');
    }
  });

  it('with no live replica of a shard: partial answer when min_shards allows, UNAVAILABLE naming the shard otherwise', async () => {
    await Promise.all(replicas[2]!.map((p) => p.kill()));
    const q = queries(1, 17)[0]!;
    const partial = await client.search(fixture.index, q, { k: K, minShards: 2, searchK: EXHAUSTIVE_SEARCH_K });
    expect(partial).toMatchObject({ shardsAnswered: 2, shardsMissing: [2] });
    const want = truth(q, ITEMS).ids.filter((id) => shardOfId(id, SHARDS) !== 2).slice(0, K);
    expect(ids(partial)).toEqual(want);
    const err = await refusal(client.search(fixture.index, q, { k: K }));
    expect(grpc.status[err.code]).toBe('UNAVAILABLE');
    expect(err.message).toMatch(/^\d of 3 shards answered, 3 required; failed: shard 2 \(127\.0\.0\.1:\d+\): /);
  });
});
