// ShardCaller against real gRPC servers on loopback whose answers the test
// controls: retries (refusals included), hedging from the first call, replica
// ejection and in-flight counts, without the engine.
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';

import type { CanopyError } from '../../../src/wire/canopy-error';
import type { BatchSearchRequest } from '../../../src/wire/contract';
import { BackendPool, type BackendPoolOptions } from '../../../src/router/backend-pool';
import { ShardCaller, type Transport } from '../../../src/router/shard-caller';
import { CuttingProxy } from '../../support/cutting-proxy';
import { distinctPorts, freePort } from '../../support/free-port';
import { ScriptedReplica } from '../../support/scripted-replica';

const silent = pino({ level: 'silent' });

/** Polls `done` every 5 ms, at most 5 s (bounded: the test fails rather than hangs). */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 1_000 && !done(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(done()).toBe(true);
}
const batch: BatchSearchRequest = {
  index: 'i',
  version: 'v',
  minShards: 0,
  queries: [{ index: '', vector: [], vectorF32: Buffer.alloc(0), k: 1, searchK: 0, excludeIds: [], minShards: 0, version: '', exact: false, rerank: 0, ef: 0 }],
};

describe.each<Transport>(['unary', 'stream'])('ShardCaller over %s calls', (transport) => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });

  async function setUp(options: ConstructorParameters<typeof ShardCaller>[1] = {}, poolOptions: BackendPoolOptions = {}) {
    const a = new ScriptedReplica('a');
    const b = new ScriptedReplica('b');
    const addresses = [await a.start(), await b.start()];
    cleanups.push(
      () => a.server.close(),
      () => b.server.close(),
      () => a.drain.endAll(),
      () => b.drain.endAll(),
    );
    const pool = new BackendPool(poolOptions, silent);
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

  it('fails naming what happened on each replica when both fail', async () => {
    const { a, b, caller } = await setUp({ hedging: false });
    a.behaviour = 'unavailable';
    b.behaviour = 'refuse';
    const err = (await caller.call(0, 'BatchSearch', batch, Date.now() + 2_000, transport).catch((e) => e)) as CanopyError;
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.message).toMatch(/^shard 0 \(127\.0\.0\.1:\d+\): [ab] is (down|full); shard 0 \(127\.0\.0\.1:\d+\): [ab] is (down|full)$/);
    expect(err.message).toContain('a is down');
    expect(err.message).toContain('b is full');
  });

  it('sends a refused call to the other replica, never the same one again', async () => {
    const { a, b, caller } = await setUp({ hedging: false });
    a.behaviour = 'refuse';
    for (let i = 0; i < 10; i++) expect(await answerer(caller)).toBe('b');
    expect(b.calls).toBe(10);
    expect(caller.stats.attempts).toBe(10 + a.calls); // each refusal cost one more attempt, on b
  });

  it('answers RESOURCE_EXHAUSTED only when every replica refused, naming each', async () => {
    const { a, b, caller } = await setUp({ hedging: false });
    a.behaviour = 'refuse';
    b.behaviour = 'refuse';
    const err = (await caller.call(0, 'BatchSearch', batch, Date.now() + 2_000, transport).catch((e) => e)) as CanopyError;
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err.message).toContain('a is full');
    expect(err.message).toContain('b is full');
    expect([a.calls, b.calls]).toEqual([1, 1]);
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

  it('hedges from the first call, before any latency is known, after the initial hedge delay', async () => {
    const { a, b, caller } = await setUp({ initialHedgeDelayMs: 20 });
    a.behaviour = 'hang';
    b.behaviour = 'hang';
    const pending = caller.call(0, 'BatchSearch', batch, Date.now() + 3_000, transport);
    await until(() => a.calls + b.calls === 2); // the hedge left; the first attempt did not answer
    expect(caller.stats.hedges).toBe(1);
    a.behaviour = 'answer';
    b.behaviour = 'answer';
    // Neither hung attempt will ever answer: the call ends at its deadline; cut it short here.
    void pending.catch(() => undefined);
  });

  it('a hung replica costs a cold router one hedge delay per call, then is ejected from first choice', async () => {
    // An ejection long enough to outlast the test, so what is seen is the ejection, not its probe.
    const { a, pool, caller } = await setUp({ initialHedgeDelayMs: 20 }, { ejectBaseMs: 60_000 });
    const hung = pool.replicasOf(0).find((r) => r.address.endsWith(`:${a.port}`))!;
    a.behaviour = 'hang';
    // Rounds of concurrent calls, so that b is busy too and a keeps being picked first until ejected.
    const round = async () => expect(await Promise.all(Array.from({ length: 8 }, () => answerer(caller, 3_000)))).toEqual(Array(8).fill('b'));
    for (let i = 0; i < 30 && hung.health === 'healthy'; i++) await round();
    // Hedges won against it three times in a row: ejected; from then on it gets no attempt.
    expect(hung.health).toBe('ejected');
    await until(() => a.calls === hung.outstanding); // a cancelled hedge may still be on its way to a
    const callsWhenEjected = a.calls;
    expect(callsWhenEjected).toBeGreaterThanOrEqual(3);
    for (let i = 0; i < 5; i++) await round();
    expect(a.calls).toBe(callsWhenEjected);
    // Its given-up calls still count as in flight: cancelling did not reset its load as if it had answered.
    expect(hung.outstanding).toBe(a.calls);
  });

  it('never sends a call to a replica known dead while another is alive', async () => {
    const { a, b, pool, caller } = await setUp();
    await a.server.close();
    const dead = pool.replicasOf(0).find((r) => r.address.endsWith(`:${a.port}`))!;
    // The first call to the closed replica fails over; after that its channel reports the failure.
    await answerer(caller);
    await until(() => dead.health === 'dead');
    const callsBefore = caller.stats.attempts;
    for (let i = 0; i < 10; i++) expect(await answerer(caller)).toBe('b');
    expect(caller.stats.attempts - callsBefore).toBe(10);
    expect(b.calls).toBeGreaterThanOrEqual(10);
  });

  it('retries a call whose connection dropped on a replica whose channel was failing, dialling it first', async () => {
    // a sits behind a proxy whose stop() drops the connection and refuses dials, as when a is killed;
    // b is down, so its channel reports a failure, and comes up only once the retry is waiting for it.
    const a = new ScriptedReplica('a');
    const proxy = await CuttingProxy.start(Number((await a.start()).split(':')[1]));
    const bAddress = `127.0.0.1:${await freePort()}`;
    const b = new ScriptedReplica('b', bAddress);
    cleanups.push(
      () => a.server.close(),
      () => a.drain.endAll(),
      () => proxy.stop(),
      () => b.server.close(),
      () => b.drain.endAll(),
    );
    const pool = new BackendPool({}, silent);
    pool.setReplicas(0, [`127.0.0.1:${proxy.port}`, bAddress]);
    cleanups.push(() => pool.close());
    // A connect wait long enough for b's channel to get past its backoff (at most 1 s) whatever the load.
    const caller = new ShardCaller(pool, { hedging: false, connectWaitMs: 10_000 });
    expect(await answerer(caller)).toBe('a');
    const down = pool.replicasOf(0).find((r) => r.address === bAddress)!;
    await until(() => down.health === 'dead');

    a.behaviour = 'hang';
    const pending = caller.call(0, 'BatchSearch', batch, Date.now() + 30_000, transport);
    let outcome = 'pending';
    void pending.then(
      () => (outcome = 'answered'),
      (err: CanopyError) => (outcome = err.message),
    );
    await until(() => a.calls === 2);
    await proxy.stop(); // the connection drops before a answers
    await until(() => outcome !== 'pending' || caller.stats.retries === 1);
    expect(outcome).toBe('pending'); // not failed on the drop: the retry waits for b to connect
    await b.start();
    expect((await pending).results[0]!.neighbors[0]!.id).toBe('b');
  });

  it('fails a shard whose replicas all stayed down through the connect wait without waiting for each again', async () => {
    const pool = new BackendPool({}, silent);
    const replicaPorts = await distinctPorts(2);
    pool.setReplicas(0, replicaPorts.map((port) => `127.0.0.1:${port}`));
    cleanups.push(() => pool.close());
    const caller = new ShardCaller(pool, { hedging: false, connectWaitMs: 200 });
    const call = () => caller.call(0, 'BatchSearch', batch, Date.now() + 5_000, transport);
    await expect(call()).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    await until(() => pool.replicasOf(0).every((r) => r.health === 'dead'));
    const attemptsBefore = caller.stats.attempts;
    await expect(call()).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect(caller.stats.attempts - attemptsBefore).toBe(1);
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
