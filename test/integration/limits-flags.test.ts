// Each serving limit is a flag, and each refusal names its limit: a shard
// node and a router started with small limits (real processes, loopback)
// refuse k, batch size, search_k and message size above them, hold a
// connection's calls at --max-concurrent-streams, and the router cuts a
// caller's far deadline to --max-deadline-ms. Both keep answering exactly.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CanopyClient } from '../../src/client/canopy-client';
import { CanopyError } from '../../src/wire/canopy-error';
import { searchClientConstructor } from '../../src/wire/contract';
import { bruteForceTopK } from '../support/brute-force';
import { runCanopy } from '../support/cli';
import { freePort } from '../support/free-port';
import { row } from '../support/matrix';
import { buildFixture, type Fixture, idOfRow } from '../support/serving/fixture';
import { ProcessGroup, type ServingProcess, waitServing } from '../support/serving/processes';
import { gaussianVectors } from '../support/vectors';

const ITEMS = 300;
const DIM = 8;
const MAX_K = 5;
const MAX_BATCH = 3;
const MAX_SEARCH_K = 500;
const MAX_MESSAGE_BYTES = 4_096;
const MAX_STREAMS = 2;
const MAX_DEADLINE_MS = 800;
const FAR_DEADLINE_MS = 60_000;
const HELD_CALL_DEADLINE_MS = 1_000;

const limitFlags = [
  '--max-k', String(MAX_K),
  '--max-batch-queries', String(MAX_BATCH),
  '--max-search-k', String(MAX_SEARCH_K),
  '--max-message-bytes', String(MAX_MESSAGE_BYTES),
  '--max-concurrent-streams', String(MAX_STREAMS),
];

type StreamClient = grpc.Client & { BatchSearchStream(opts: grpc.CallOptions): grpc.ClientDuplexStream<unknown, unknown> };

describe('limit flags on a shard node and a router', () => {
  const group = new ProcessGroup();
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-limits-'));
  const clients: CanopyClient[] = [];
  let fixture: Fixture;
  let shard: ServingProcess;
  let router: ServingProcess;

  const query = (seed: number): Float32Array => row(gaussianVectors(1, DIM, seed), 0);

  async function refusal(call: Promise<unknown>): Promise<CanopyError> {
    const err = await call.then(
      () => undefined,
      (e: unknown) => CanopyError.from(e),
    );
    expect(err, 'the call was answered').toBeDefined();
    return err!;
  }

  async function expectExact(client: CanopyClient): Promise<void> {
    const q = query(11);
    const answer = await client.search(fixture.index, q, { k: MAX_K, searchK: MAX_SEARCH_K });
    expect(answer.neighbors.map((n) => n.id)).toEqual(Array.from(bruteForceTopK(fixture.base, q, MAX_K, fixture.metric).ids, idOfRow));
  }

  beforeAll(async () => {
    fixture = await buildFixture(workDir, gaussianVectors(ITEMS, DIM, 4), { metric: 'euclidean', shards: 1, trees: 4, index: 'vectors', version: 'v1' });
    const shardAddress = `127.0.0.1:${await freePort()}`;
    shard = group.start('shard', shardAddress, ['serve', 'shard', '--manifest', fixture.dir, '--shard', '0', '--listen', shardAddress, ...limitFlags]);
    await waitServing(shard);
    const routerAddress = `127.0.0.1:${await freePort()}`;
    router = group.start('router', routerAddress, [
      'serve', 'router', '--listen', routerAddress, '--backend', `0=${shardAddress}`, ...limitFlags, '--max-deadline-ms', String(MAX_DEADLINE_MS), '--default-deadline-ms', '500',
    ]);
    await waitServing(router);
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await group.killAll();
    rmSync(workDir, { recursive: true, force: true });
  });

  it.each(['shard', 'router'] as const)('%s: k, batch size, search_k and message size above their flags are refused, naming the limit', async (name) => {
    const proc = name === 'shard' ? shard : router;
    const client = new CanopyClient({ target: proc.address });
    clients.push(client);
    const q = query(1);

    const k = await refusal(client.search(fixture.index, q, { k: MAX_K + 1 }));
    expect([k.code, k.message]).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringMatching(new RegExp(`between 1 and ${MAX_K} \\(max k\\)`))]);

    const batch = await refusal(client.batchSearch(fixture.index, Array.from({ length: MAX_BATCH + 1 }, () => q), { k: 1 }));
    expect([batch.code, batch.message]).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringMatching(new RegExp(`at most ${MAX_BATCH} queries`))]);

    const searchK = await refusal(client.search(fixture.index, q, { k: 1, searchK: MAX_SEARCH_K + 1 }));
    expect([searchK.code, searchK.message]).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringMatching(new RegExp(`at most ${MAX_SEARCH_K} \\(max search_k\\)`))]);

    const big = await refusal(client.search(fixture.index, new Float32Array(MAX_MESSAGE_BYTES / 4 + 16), { k: 1 }));
    expect([big.code, big.message]).toEqual([grpc.status.RESOURCE_EXHAUSTED, expect.stringMatching(new RegExp(`larger than max.*${MAX_MESSAGE_BYTES}`))]);

    await expectExact(client);
    expect(proc.exited).toBe(false);
  });

  it.each(['shard', 'router'] as const)('%s: a connection holds at most --max-concurrent-streams calls; the next waits until one ends', async (name) => {
    const proc = name === 'shard' ? shard : router;
    const Client = searchClientConstructor();
    const raw = new Client(proc.address, grpc.credentials.createInsecure()) as unknown as StreamClient;
    const open = Array.from({ length: MAX_STREAMS }, () => raw.BatchSearchStream({ deadline: Date.now() + FAR_DEADLINE_MS }));
    for (const s of open) s.on('error', () => undefined);
    const describeOnSameConnection = (deadlineMs: number): Promise<unknown> =>
      new Promise((resolve, reject) => {
        (raw as unknown as Record<string, (r: unknown, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => void>).DescribeIndex!(
          { index: '' },
          { deadline: Date.now() + deadlineMs },
          (err, res) => (err ? reject(err) : resolve(res)),
        );
      });
    try {
      const held = await refusal(describeOnSameConnection(HELD_CALL_DEADLINE_MS));
      expect(held.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      open[0]!.end();
      await new Promise((r) => open[0]!.on('status', r));
      await expect(describeOnSameConnection(FAR_DEADLINE_MS)).resolves.toMatchObject({ index: fixture.index });
    } finally {
      for (const s of open) s.cancel();
      raw.close();
    }
  });

  it('router: a caller\'s far deadline is cut to --max-deadline-ms', async () => {
    const client = new CanopyClient({ target: router.address, deadlineMs: FAR_DEADLINE_MS });
    clients.push(client);
    shard.signal('SIGSTOP'); // the shard cannot answer: only a deadline ends the call
    try {
      const err = await refusal(client.search(fixture.index, query(2), { k: 1 }));
      expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      // The router's words, not the client's own "Deadline exceeded".
      expect(err.message).toMatch(/shards answered/);
    } finally {
      shard.signal('SIGCONT');
    }
    await expectExact(client);
  }, 30_000);

  it('router: a default deadline beyond the max deadline is refused at start', async () => {
    const listen = `127.0.0.1:${await freePort()}`;
    const result = await runCanopy(['serve', 'router', '--listen', listen, '--backend', `0=${shard.address}`, '--default-deadline-ms', '5000', '--max-deadline-ms', '1000']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/default deadline \(5000 ms\) exceeds the max deadline \(1000 ms\)/);
  });
});
