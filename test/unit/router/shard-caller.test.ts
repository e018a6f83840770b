// ShardCaller against real gRPC servers on loopback whose answers the test
// controls: retries, hedging and replica ejection, without the engine.
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';

import { CanopyError } from '../../../src/wire/canopy-error';
import type { BatchSearchRequest, BatchSearchResponse, SearchServiceHandlers } from '../../../src/wire/contract';
import { batchStreamHandler, SearchServer, StreamDrain } from '../../../src/wire/search-server';
import { BackendPool } from '../../../src/router/backend-pool';
import { ShardCaller, type Transport } from '../../../src/router/shard-caller';

type Behaviour = 'answer' | 'unavailable' | 'invalid' | 'hang';

/** A Search server whose BatchSearch answers with its own name, fails, or never answers. */
class ScriptedReplica {
  behaviour: Behaviour = 'answer';
  calls = 0;
  readonly server: SearchServer;
  port = 0;
  readonly drain = new StreamDrain();

  constructor(readonly name: string) {
    const refuse = (_: unknown, cb: grpc.sendUnaryData<never>) => cb({ code: grpc.status.UNIMPLEMENTED });
    const handlers: SearchServiceHandlers = {
      search: refuse,
      searchByItem: refuse,
      getItem: refuse,
      describeIndex: refuse,
      batchSearch: (call: grpc.ServerUnaryCall<BatchSearchRequest, BatchSearchResponse>, cb) => {
        this.answer(call.request).then(
          (response) => cb(null, response),
          (err: CanopyError) => cb({ code: err.code, details: err.message }),
        );
      },
      batchSearchStream: batchStreamHandler((batch) => this.answer(batch), () => undefined, this.drain),
    };
    this.server = new SearchServer(handlers, { listen: '127.0.0.1:0', shutdownGraceMs: 0 });
  }

  /** The scripted outcome of one BatchSearch, whichever transport carried it. */
  private answer(batch: BatchSearchRequest): Promise<BatchSearchResponse> {
    this.calls++;
    switch (this.behaviour) {
      case 'hang':
        return new Promise(() => undefined);
      case 'unavailable':
        return Promise.reject(new CanopyError(grpc.status.UNAVAILABLE, `${this.name} is down`));
      case 'invalid':
        return Promise.reject(CanopyError.invalidArgument('bad query'));
      case 'answer':
        return Promise.resolve({
          results: batch.queries.map(() => ({ neighbors: [{ id: this.name, distance: 0 }], indexVersion: 'v', shardsTotal: 1, shardsAnswered: 1, shardsMissing: [] })),
          indexVersion: 'v',
          shardsTotal: 1,
          shardsAnswered: 1,
          shardsMissing: [],
        });
    }
  }

  async start(): Promise<string> {
    this.port = await this.server.start();
    return `127.0.0.1:${this.port}`;
  }
}

const silent = pino({ level: 'silent' });
const batch: BatchSearchRequest = {
  index: 'i',
  version: 'v',
  minShards: 0,
  queries: [{ index: '', vector: [], vectorF32: Buffer.alloc(0), k: 1, searchK: 0, excludeIds: [], minShards: 0, version: '' }],
};

describe.each<Transport>(['unary', 'stream'])('ShardCaller over %s calls', (transport) => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });

  async function setUp(options: ConstructorParameters<typeof ShardCaller>[1] = {}) {
    const a = new ScriptedReplica('a');
    const b = new ScriptedReplica('b');
    const addresses = [await a.start(), await b.start()];
    cleanups.push(
      () => a.server.close(),
      () => b.server.close(),
      () => a.drain.endAll(),
      () => b.drain.endAll(),
    );
    const pool = new BackendPool({}, silent);
    pool.setReplicas(0, addresses);
    cleanups.push(() => pool.close());
    return { a, b, pool, caller: new ShardCaller(pool, options) };
  }

  const answerer = async (caller: ShardCaller, deadlineMs = 2_000) =>
    (await caller.call(0, 'BatchSearch', batch, Date.now() + deadlineMs, transport)).results[0]!.neighbors[0]!.id;

  it('retries a failed call once on the other replica, then avoids the failed one', async () => {
    const { a, b, caller } = await setUp({ hedging: false });
    a.behaviour = 'unavailable';
    for (let i = 0; i < 10; i++) expect(await answerer(caller)).toBe('b');
    expect(a.calls).toBe(1);
    expect(caller.stats.retries).toBe(1);
    expect(b.calls).toBe(10);
  });

  it('fails with the last error, naming the replica, when both replicas fail', async () => {
    const { a, b, caller } = await setUp({ hedging: false });
    a.behaviour = 'unavailable';
    b.behaviour = 'unavailable';
    const err = (await caller.call(0, 'BatchSearch', batch, Date.now() + 2_000, transport).catch((e) => e)) as CanopyError;
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.message).toMatch(/^shard 0 \(127\.0\.0\.1:\d+\): [ab] is down$/);
  });

  it('does not retry a request the replica refused as invalid', async () => {
    const { a, b, caller } = await setUp({ hedging: false });
    a.behaviour = 'invalid';
    b.behaviour = 'invalid';
    await expect(caller.call(0, 'BatchSearch', batch, Date.now() + 2_000, transport)).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    expect(a.calls + b.calls).toBe(1);
  });

  it('hedges to the other replica when one hangs, so no call waits for it', async () => {
    const { a, caller } = await setUp({ hedgeMinDelayMs: 1 });
    for (let i = 0; i < 40; i++) await answerer(caller); // learn the shard's p95
    a.behaviour = 'hang';
    for (let i = 0; i < 10; i++) expect(await answerer(caller, 3_000)).toBe('b');
    expect(caller.stats.hedges).toBeGreaterThan(0);
  });

  it('without hedging, a hung replica makes the calls sent to it miss their deadline', async () => {
    const { a, caller } = await setUp({ hedging: false });
    a.behaviour = 'hang';
    const outcomes = await Promise.allSettled(Array.from({ length: 8 }, () => answerer(caller, 300)));
    const codes = outcomes.map((o) => (o.status === 'rejected' ? (o.reason as CanopyError).code : 'ok'));
    expect(codes).toContain(grpc.status.DEADLINE_EXCEEDED);
  });

  it('reports a shard with no replica as UNAVAILABLE', async () => {
    const caller = new ShardCaller(new BackendPool({}, silent));
    await expect(caller.call(3, 'BatchSearch', batch, Date.now() + 100, transport)).rejects.toMatchObject({
      code: grpc.status.UNAVAILABLE,
      message: 'shard 3 has no replica',
    });
  });
});
