// With shipped defaults, no query a healthy replica could answer is lost. Real processes on
// loopback: etcd, 2 shards x 2 replicas (`canopy serve shard --etcd`), one router, all with their
// default flags, and a CPU hog (one busy process per core) on the same cores throughout. Closed-loop
// load from a few clients: zero non-OK answers, first with nothing wrong, then through a replica
// SIGSTOPped, one SIGKILLed, one draining (SIGTERM) and a new version loading, with p99 under the
// initial hedge delay plus a query's p99 when nothing is wrong. A version published right after a
// 10 s etcd outage is what the router answers with within 3 s of etcd's return. Open loop at twice
// the saturation measured just before (deep searches of a larger version, so searching bounds the
// rate): a shard node of the cluster refuses some queries, answers others, and fails none otherwise
// than RESOURCE_EXHAUSTED; so does the router, offered twice its own saturation, and the queries it
// accepts are answered within a bound set by an unloaded query's latency and the router's queue-wait
// bound, far under the client's deadline.
// Tests run in order; every loop is bounded.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CanopyClient, DEFAULT_CLIENT_DEADLINE_MS } from '../../src/client/canopy-client';
import { readManifest } from '../../src/format/manifest';
import { readCluster, type ClusterSnapshot } from '../../src/registry/cluster-view';
import { createEtcdClient } from '../../src/registry/etcd-client';
import { ClusterKeys } from '../../src/registry/keys';
import { publishVersion } from '../../src/registry/versions';
import { DEFAULT_COALESCE_MAX_BATCH_QUERIES } from '../../src/router/coalescer';
import { DEFAULT_MAX_IN_FLIGHT_BATCHES_PER_REPLICA } from '../../src/router/fan-out';
import { DEFAULT_INITIAL_HEDGE_DELAY_MS, DEFAULT_MAX_ROUTER_QUEUE_WAIT_MS, ROUTER_STANDING_INTERVAL_MS } from '../../src/router/router-defaults';
import { CanopyError } from '../../src/wire/canopy-error';
import { EtcdServer } from '../support/etcd';
import { freePort } from '../support/free-port';
import { row } from '../support/matrix';
import { buildFixture, type Fixture } from '../support/serving/fixture';
import { ProcessGroup, type ServingProcess, waitServing } from '../support/serving/processes';
import { type LoadReport, QueryLoad } from '../support/serving/query-load';
import { publishFixture, untilCluster } from '../support/serving/registry-steps';
import { gaussianVectors } from '../support/vectors';

const CLUSTER = 'failover';
const SHARDS = 2;
const REPLICAS = 2;
const ITEMS = 4_000;
const DIM = 32;
const K = 10;
const CLIENTS = 3;
const STEADY_MS = 20_000;
const ETCD_OUTAGE_MS = 10_000;
const ACTIVE_AFTER_OUTAGE_MS = 3_000;
/**
 * The overload phase serves a version this large, and every search visits every item: a query costs a
 * search thread far more than an event loop its call, so searching is what saturates (not this client,
 * which must keep twice that rate on schedule), even with every process of the host on the same two cores.
 */
const HEAVY_ITEMS = 40_000;
const HEAVY_SEARCH_K = 1_000_000;
/** Enough queries in flight that a shard node's queue stands (it refuses some): what it answers then is its capacity. */
const SATURATION_IN_FLIGHT = 32;
/** A refused query of the closed loop waits this long before the next, as a client backs off. */
const CLOSED_LOOP_BACKOFF_MS = 20;
const SATURATION_MS = 3_000;
const OVERLOAD_FACTOR = 2;
const OPEN_LOOP_MS = 3_000;
const OPEN_LOOP_TICK_MS = 5;
/** Queries asked one at a time through the idle router to learn what one costs. */
const UNLOADED_QUERIES = 20;

function p99(report: LoadReport): number {
  const sorted = report.answers.map((a) => a.latencyMs).sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(0.99 * sorted.length))]!;
}

const nonOk = (report: LoadReport): string[] => report.failures.map((f) => `${grpc.status[f.code]}: ${f.message}`);

describe('failover under load with shipped defaults and a CPU hog on the host', () => {
  const group = new ProcessGroup();
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-failover-'));
  const keys = new ClusterKeys(CLUSTER);
  const hogs: ChildProcess[] = [];
  let etcd: EtcdServer;
  let etcdClient: Etcd3;
  let fixtures: Fixture[];
  let replicas: ServingProcess[][];
  const shardArgs = new Map<ServingProcess, string[]>();
  let client: CanopyClient;
  let steadyP99Ms = 0;
  const queries = Array.from({ length: 50 }, (_, i) => row(gaussianVectors(50, DIM, 99), i));
  const etcdFlags = (): string[] => ['--etcd', etcd.url, '--cluster', CLUSTER];
  const load = (concurrency = CLIENTS, maxMs = 60_000) =>
    new QueryLoad({ client, index: 'tracks', queries, options: { k: K }, concurrency, maxMs });

  async function startShard(shard: number, replica: number): Promise<ServingProcess> {
    const address = `127.0.0.1:${await freePort()}`;
    const args = ['serve', 'shard', ...etcdFlags(), '--index', 'tracks', '--shard', String(shard), '--listen', address,
      '--node-id', `tracks-${shard}-${replica}`, '--log-level', 'warn'];
    const proc = group.start(`tracks ${shard}/${replica}`, address, args);
    shardArgs.set(proc, args);
    return proc;
  }

  const publish = (fixture: Fixture): Promise<void> => publishFixture(etcdFlags(), fixture);
  const until = (what: string, test: (s: ClusterSnapshot) => boolean): Promise<ClusterSnapshot> => untilCluster(etcdClient, keys, what, test);

  const readyOn = (version: string) => (s: ClusterSnapshot) =>
    [...s.nodes.values()].filter((n) => n.index === 'tracks' && n.versions[version]?.state === 'ready').length === SHARDS * REPLICAS;

  /** Kills `victim` (already stopped or not) and starts it again with the same flags, waiting until it serves `version`. */
  async function restart(victim: ServingProcess, shard: number, replica: number, version: string): Promise<void> {
    await victim.kill();
    const again = group.start(`tracks ${shard}/${replica} again`, victim.address, shardArgs.get(victim)!);
    shardArgs.set(again, shardArgs.get(victim)!);
    replicas[shard]![replica] = again;
    await until(`tracks-${shard}-${replica} ready again`, (s) => s.nodes.get(`tracks-${shard}-${replica}`)?.versions[version]?.state === 'ready');
  }

  beforeAll(async () => {
    etcd = await EtcdServer.start();
    etcdClient = new Etcd3({ hosts: etcd.url });
    fixtures = await Promise.all(
      [ITEMS, ITEMS, ITEMS, HEAVY_ITEMS].map((items, i) => {
        const version = `v${i + 1}`;
        const dir = path.join(workDir, version);
        mkdirSync(dir);
        return buildFixture(dir, gaussianVectors(items, DIM, i + 1), { metric: 'euclidean', shards: SHARDS, trees: 10, index: 'tracks', version });
      }),
    );
    await publish(fixtures[0]!);
    replicas = [];
    for (let shard = 0; shard < SHARDS; shard++) replicas.push([await startShard(shard, 0), await startShard(shard, 1)]);
    await Promise.all(replicas.flat().map((p) => waitServing(p, 20_000, '')));
    const address = `127.0.0.1:${await freePort()}`;
    const router = group.start('router', address, ['serve', 'router', ...etcdFlags(), '--listen', address, '--log-level', 'warn']);
    await Promise.all([router, ...replicas.flat()].map((p) => waitServing(p)));
    client = new CanopyClient({ target: address });
    // Other work on the host: one busy process per core, at the same priority as the cluster.
    for (let i = 0; i < cpus().length; i++) hogs.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  }, 120_000);

  afterAll(async () => {
    for (const hog of hogs) hog.kill('SIGKILL');
    client?.close();
    for (const p of replicas?.flat() ?? []) p.signal('SIGCONT');
    await group.killAll();
    etcdClient?.close();
    await etcd?.stop();
    rmSync(workDir, { recursive: true, force: true });
  });

  it('answers every query of a closed-loop load for 20 s', async () => {
    const steady = load(CLIENTS, STEADY_MS);
    await sleep(STEADY_MS);
    const report = await steady.stop();
    expect(nonOk(report)).toEqual([]);
    expect(report.answers.length).toBeGreaterThan(100);
    steadyP99Ms = p99(report);
    console.log(`steady with hog: ${report.answers.length} answers in ${STEADY_MS} ms, p99 ${steadyP99Ms.toFixed(1)} ms`);
  }, 60_000);

  it('answers every query through SIGSTOP, SIGKILL, a drain and a new version, p99 under the hedge delay plus a query', async () => {
    const faults = load();
    await faults.waitForMore(50);
    // A hung replica of shard 0, for 3 s.
    replicas[0]![0]!.signal('SIGSTOP');
    await sleep(3_000);
    replicas[0]![0]!.signal('SIGCONT');
    await faults.waitForMore(50);
    // A crashed replica of shard 1, started again.
    await restart(replicas[1]![0]!, 1, 0, 'v1');
    await faults.waitForMore(50);
    // A draining replica of shard 0 (exits by itself), started again.
    const leaving = replicas[0]![1]!;
    const exited = new Promise<number | null>((resolve) => leaving.child.once('exit', (code) => resolve(code)));
    leaving.signal('SIGTERM');
    expect(await exited).toBe(0);
    await restart(leaving, 0, 1, 'v1');
    // Every replica loading a new version beside the served one, and the flip.
    await publish(fixtures[1]!);
    await until('every replica ready on v2', readyOn('v2'));
    const endMs = Date.now() + 20_000;
    while (faults.countFrom('v2') < 50 && Date.now() < endMs) await new Promise((r) => setTimeout(r, 50));
    const report = await faults.stop();
    expect(nonOk(report)).toEqual([]);
    expect(faults.countFrom('v2')).toBeGreaterThanOrEqual(50);
    const boundMs = DEFAULT_INITIAL_HEDGE_DELAY_MS + steadyP99Ms;
    console.log(`through faults: ${report.answers.length} answers, p99 ${p99(report).toFixed(1)} ms (bound ${boundMs.toFixed(1)} ms)`);
    expect(p99(report)).toBeLessThan(boundMs);
  }, 120_000);

  it('activates a version published right after a 10 s etcd outage within 3 s of etcd\'s return', async () => {
    await etcd.pause();
    await sleep(ETCD_OUTAGE_MS);
    await etcd.resume();
    const backMs = Date.now();
    // The registry writes `canopy publish` makes once started, from a client opened after etcd came back
    // (the CLI's own start-up, seconds on a busy host, is the same with or without an outage).
    const publisher = createEtcdClient({ endpoints: etcd.url });
    try {
      await readCluster(publisher, keys);
      await publishVersion(publisher, keys, fixtures[2]!.dir, await readManifest(fixtures[2]!.dir));
    } finally {
      publisher.close();
    }
    const steps = [`published ${Date.now() - backMs} ms after etcd returned`];
    let version = '';
    let readyMs: number | undefined;
    while (version !== 'v3' && Date.now() - backMs < ACTIVE_AFTER_OUTAGE_MS + 10_000) {
      if (readyMs === undefined && readyOn('v3')(await readCluster(etcdClient, keys))) readyMs = Date.now();
      version = (await client.search('tracks', queries[0]!, { k: K })).indexVersion;
      if (version !== 'v3') await sleep(50);
    }
    const activeAfterMs = Date.now() - backMs;
    if (readyMs !== undefined) steps.push(`every replica ready on v3 ${readyMs - backMs} ms after`);
    console.log(`the router answered from v3 ${activeAfterMs} ms after etcd returned; ${steps.join('; ')}`);
    expect(version).toBe('v3');
    expect(activeAfterMs).toBeLessThan(ACTIVE_AFTER_OUTAGE_MS);
  }, 60_000);

  it('a shard node offered twice its measured saturation sheds with RESOURCE_EXHAUSTED, and nothing else (open loop)', async () => {
    await publish(fixtures[3]!);
    await until('every replica ready on v4', readyOn('v4'));
    const node = new CanopyClient({ target: replicas[0]![0]!.address });
    try {
      const { saturation, overload } = await twiceSaturation(node, 'shard node');
      expect(overload.offered).toBeGreaterThanOrEqual(0.9 * OVERLOAD_FACTOR * saturation.ok * (OPEN_LOOP_MS / SATURATION_MS));
      expect(Object.keys(overload.codes).filter((c) => c !== 'OK' && c !== 'RESOURCE_EXHAUSTED'), overload.messages.join('\n')).toEqual([]);
      expect(overload.codes.RESOURCE_EXHAUSTED ?? 0, 'nothing was refused at twice saturation').toBeGreaterThan(0);
      expect(overload.codes.OK ?? 0, 'nothing was answered at twice saturation').toBeGreaterThan(0);
    } finally {
      node.close();
    }
  }, 60_000);

  it('the router offered twice its measured saturation sheds with RESOURCE_EXHAUSTED and answers the rest in bounded time', async () => {
    const unloadedMs = await unloadedLatencyMs();
    const { saturation, overload } = await twiceSaturation(client, 'router');
    expect(overload.offered).toBeGreaterThanOrEqual(0.9 * OVERLOAD_FACTOR * saturation.ok * (OPEN_LOOP_MS / SATURATION_MS));
    expect(Object.keys(overload.codes).filter((c) => c !== 'OK' && c !== 'RESOURCE_EXHAUSTED'), overload.messages.join('\n')).toEqual([]);
    expect(overload.codes.RESOURCE_EXHAUSTED ?? 0, 'nothing was refused at twice saturation').toBeGreaterThan(0);
    expect(overload.codes.OK ?? 0, 'nothing was answered at twice saturation').toBeGreaterThan(0);
    // An accepted query waits in the router about the standing test's target and interval at most, then
    // at its replica behind at most the router's calls out there, each of at most the batch cap, which
    // the replica answers at its share of the measured saturation rate (every query goes to every shard,
    // split between a shard's replicas). Twice that: the saturation rate was measured closed loop, and
    // at twice it hedges and the host's other processes take their share too.
    const queuedAtReplica = DEFAULT_MAX_IN_FLIGHT_BATCHES_PER_REPLICA * DEFAULT_COALESCE_MAX_BATCH_QUERIES;
    const replicaPerMs = saturation.ok / SATURATION_MS / REPLICAS;
    const boundMs = 2 * (DEFAULT_MAX_ROUTER_QUEUE_WAIT_MS + ROUTER_STANDING_INTERVAL_MS + unloadedMs + queuedAtReplica / replicaPerMs);
    console.log(`router: unloaded p90 ${unloadedMs.toFixed(1)} ms; answered p99 ${overload.p99Ms.toFixed(0)} ms (bound ${boundMs.toFixed(0)} ms)`);
    expect(overload.p99Ms).toBeLessThan(Math.min(boundMs, DEFAULT_CLIENT_DEADLINE_MS));
  }, 60_000);

  /** The p90 latency of deep queries asked one at a time through the idle router. */
  async function unloadedLatencyMs(): Promise<number> {
    const latencies: number[] = [];
    for (let i = 0; i < UNLOADED_QUERIES; i++) {
      const startedMs = performance.now();
      await client.search('tracks', queries[i % queries.length]!, { k: K, searchK: HEAVY_SEARCH_K });
      latencies.push(performance.now() - startedMs);
    }
    latencies.sort((a, b) => a - b);
    return latencies[Math.floor(0.9 * latencies.length)]!;
  }

  /**
   * Saturation of `target` (the answer rate of a closed loop deep enough that its queues stand), then twice
   * that offered open loop: queries leave on schedule whatever comes back.
   */
  async function twiceSaturation(target: CanopyClient, name: string) {
    const saturation = await offer(target, { concurrency: SATURATION_IN_FLIGHT, durationMs: SATURATION_MS });
    const perS = (saturation.ok * 1_000) / SATURATION_MS;
    const overload = await offer(target, { perS: OVERLOAD_FACTOR * perS, durationMs: OPEN_LOOP_MS });
    console.log(
      `${name}: saturation ${perS.toFixed(0)} answers/s closed loop (${JSON.stringify(saturation.codes)}); ` +
        `${((overload.offered * 1_000) / OPEN_LOOP_MS).toFixed(0)}/s offered open loop: ${JSON.stringify(overload.codes)}, ` +
        `answered p50 ${overload.p50Ms.toFixed(0)} ms, p99 ${overload.p99Ms.toFixed(0)} ms, max ${overload.maxMs.toFixed(0)} ms`,
    );
    return { saturation, overload };
  }

  /**
   * Queries to `target`, closed loop (`concurrency` in flight; a refused one waits a moment, as a client
   * backs off) or open loop (`perS` leave on schedule), for `durationMs`; then every outcome is awaited
   * (each has the client's deadline).
   */
  async function offer(target: CanopyClient, o: { concurrency?: number; perS?: number; durationMs: number }) {
    const codes: Record<string, number> = {};
    const messages: string[] = [];
    const answeredMs: number[] = [];
    let offered = 0;
    /** One query; true if it was answered. */
    const ask = (): Promise<boolean> => {
      const q = queries[offered++ % queries.length]!;
      const startedMs = performance.now();
      return target.search('tracks', q, { k: K, searchK: HEAVY_SEARCH_K }).then(
        () => {
          answeredMs.push(performance.now() - startedMs);
          codes.OK = (codes.OK ?? 0) + 1;
          return true;
        },
        (err: unknown) => {
          const error = CanopyError.from(err);
          const code = grpc.status[error.code]!;
          codes[code] = (codes[code] ?? 0) + 1;
          if (code !== 'RESOURCE_EXHAUSTED' && messages.length < 5) messages.push(`${code}: ${error.message}`);

          return false;
        },
      );
    };
    const startMs = Date.now();
    const pending: Promise<unknown>[] = [];
    if (o.concurrency !== undefined) {
      const loop = async (): Promise<void> => {
        while (Date.now() - startMs < o.durationMs) if (!(await ask())) await sleep(CLOSED_LOOP_BACKOFF_MS);
      };
      pending.push(...Array.from({ length: o.concurrency }, loop));
    } else {
      const perMs = o.perS! / 1_000;
      while (Date.now() - startMs < o.durationMs) {
        const due = Math.floor((Date.now() - startMs) * perMs) - offered;
        for (let i = 0; i < due; i++) pending.push(ask());
        await sleep(OPEN_LOOP_TICK_MS);
      }
    }
    await Promise.all(pending);
    answeredMs.sort((x, y) => x - y);
    const p99Ms = answeredMs[Math.min(answeredMs.length - 1, Math.floor(0.99 * answeredMs.length))] ?? 0;
    return { codes, messages, ok: codes.OK ?? 0, offered, p50Ms: answeredMs[answeredMs.length >> 1] ?? 0, p99Ms, maxMs: answeredMs.at(-1) ?? 0 };
  }
});
