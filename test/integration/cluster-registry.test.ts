// A cluster driven by etcd, as real processes on loopback: 2 shards x 2
// replicas of `tracks` and 1 shard of `artists` (`canopy serve shard --etcd`),
// one router (`canopy serve router --etcd`, running the version controller),
// a real etcd. Versions roll in under a steady stream of queries; faults are
// real (a corrupt file, SIGKILL, SIGTERM, etcd stopped). Tests run in order.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readManifest } from '../../src/format/manifest';
import { CanopyClient } from '../../src/client/canopy-client';
import type { ClusterSnapshot } from '../../src/registry/cluster-view';
import { ClusterKeys } from '../../src/registry/keys';
import { publishVersion } from '../../src/registry/versions';
import { bruteForceTopK } from '../support/brute-force';
import { runCanopy } from '../support/cli';
import { EtcdServer } from '../support/etcd';
import { freePort } from '../support/free-port';
import { row } from '../support/matrix';
import { buildFixture, type Fixture, idOfRow } from '../support/serving/fixture';
import { ProcessGroup, type ServingProcess, waitServing } from '../support/serving/processes';
import { QueryLoad, type LoadReport } from '../support/serving/query-load';
import { publishFixture, untilCluster } from '../support/serving/registry-steps';
import { gaussianVectors } from '../support/vectors';

const CLUSTER = 'itest';
const SHARDS = 2;
const REPLICAS = 2;
const ITEMS = 1_200;
const DIM = 8;
const K = 10;
/** Visits every leaf: answers are exact, so each can be checked against its version's brute force. */
const EXHAUSTIVE_SEARCH_K = 1_000_000;
const LEASE_TTL_SECONDS = 2;
const UNLOAD_GRACE_MS = 1_500;

describe('a cluster driven by etcd', () => {
  const group = new ProcessGroup();
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-registry-'));
  const keys = new ClusterKeys(CLUSTER);
  let etcd: EtcdServer;
  let etcdClient: Etcd3;
  let v1: Fixture;
  let v2: Fixture;
  let v3: Fixture;
  let artists: Fixture;
  let replicas: ServingProcess[][];
  let router: ServingProcess;
  let client: CanopyClient;
  const shardArgs = new Map<ServingProcess, string[]>();
  const queries = Array.from({ length: 30 }, (_, i) => row(gaussianVectors(30, DIM, 99), i));
  const truthOf = new Map<string, string[][]>();

  const etcdFlags = (): string[] => ['--etcd', etcd.url, '--cluster', CLUSTER];

  /** `ipv6`: listens on ::1 and advertises `::1:PORT` unbracketed, as `$(POD_IP):PORT` expands on an IPv6 pod. */
  async function startShard(name: string, index: string, shard: number, nodeId: string, ipv6 = false): Promise<ServingProcess> {
    const port = await freePort();
    const address = ipv6 ? `[::1]:${port}` : `127.0.0.1:${port}`;
    const args = ['serve', 'shard', ...etcdFlags(), '--index', index, '--shard', String(shard), '--listen', address,
      ...(ipv6 ? ['--advertise', `::1:${port}`] : []),
      '--node-id', nodeId, '--lease-ttl-seconds', String(LEASE_TTL_SECONDS), '--unload-grace-ms', String(UNLOAD_GRACE_MS),
      '--log-level', 'warn'];
    const proc = group.start(name, address, args);
    shardArgs.set(proc, args);
    return proc;
  }

  const publish = (fixture: Fixture): Promise<void> => publishFixture(etcdFlags(), fixture);
  const until = (what: string, test: (s: ClusterSnapshot) => boolean, timeoutMs?: number): Promise<ClusterSnapshot> =>
    untilCluster(etcdClient, keys, what, test, timeoutMs);

  function truth(fixture: Fixture): string[][] {
    return queries.map((q) => Array.from(bruteForceTopK(fixture.base, q, K, fixture.metric).ids, idOfRow));
  }

  /** Every answer is exactly its version's top k: never a mix of two versions. */
  function expectWholeVersions(report: LoadReport): void {
    for (const { query, response } of report.answers) {
      const expected = truthOf.get(response.indexVersion);
      expect(expected, `answer from unexpected version ${response.indexVersion}`).toBeDefined();
      expect(response.neighbors.map((n) => n.id)).toEqual(expected![query]);
      expect(response.shardsAnswered).toBe(SHARDS);
    }
  }

  function startLoad(): QueryLoad {
    return new QueryLoad({ client, index: 'tracks', queries, options: { k: K, searchK: EXHAUSTIVE_SEARCH_K }, concurrency: 4 });
  }

  beforeAll(async () => {
    etcd = await EtcdServer.start();
    etcdClient = new Etcd3({ hosts: etcd.url });
    const build = (base: ReturnType<typeof gaussianVectors>, index: string, version: string, shards = SHARDS) =>
      buildFixture(path.join(workDir, `${index}-${version}`), base, { metric: 'euclidean', shards, trees: 4, index, version });
    for (const dir of ['tracks-v1', 'tracks-v2', 'tracks-v3', 'artists-a1']) mkdirSync(path.join(workDir, dir));
    [v1, v2, v3, artists] = await Promise.all([
      build(gaussianVectors(ITEMS, DIM, 1), 'tracks', 'v1'),
      build(gaussianVectors(ITEMS, DIM, 2), 'tracks', 'v2'),
      build(gaussianVectors(ITEMS, DIM, 3), 'tracks', 'v3'),
      build(gaussianVectors(300, DIM, 4), 'artists', 'a1', 1),
    ]);
    truthOf.set('v1', truth(v1));
    truthOf.set('v2', truth(v2));

    await publish(v1);
    await publish(artists);
    replicas = [];
    for (let shard = 0; shard < SHARDS; shard++) {
      const list: ServingProcess[] = [];
      for (let r = 0; r < REPLICAS; r++) list.push(await startShard(`tracks ${shard}/${r}`, 'tracks', shard, `tracks-${shard}-${r}`));
      replicas.push(list);
    }
    const artistsShard = await startShard('artists 0/0', 'artists', 0, 'artists-0-0', true);
    // Nothing is active before a controller (the router) flips it: wait for the processes to be up.
    await Promise.all([...replicas.flat(), artistsShard].map((p) => waitServing(p, 20_000, '')));

    const address = `127.0.0.1:${await freePort()}`;
    router = group.start('router', address, ['serve', 'router', ...etcdFlags(), '--listen', address, '--log-level', 'warn']);
    await Promise.all([router, ...replicas.flat(), artistsShard].map((p) => waitServing(p)));
    client = new CanopyClient({ target: address, deadlineMs: 10_000 });
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await group.killAll();
    etcdClient?.close();
    await etcd?.stop();
    rmSync(workDir, { recursive: true, force: true });
  });

  it('serves the first published version, and several indexes side by side (one shard node over IPv6)', async () => {
    const tracks = await client.search('tracks', queries[0]!, { k: K, searchK: EXHAUSTIVE_SEARCH_K });
    expect(tracks.indexVersion).toBe('v1');
    expect(tracks.neighbors.map((n) => n.id)).toEqual(truthOf.get('v1')![0]);
    const a = await client.search('artists', queries[0]!, { k: 3, searchK: EXHAUSTIVE_SEARCH_K });
    expect(a.indexVersion).toBe('a1');
    expect(a.neighbors.map((n) => n.id)).toEqual(Array.from(bruteForceTopK(artists.base, queries[0]!, 3, 'euclidean').ids, idOfRow));
    expect((await client.describeIndex('artists')).shardCount).toBe(1);
    expect((await client.describeIndex('tracks')).shardCount).toBe(SHARDS);
  });

  it('rolls v2 in under load: no failed query, every answer wholly v1 or wholly v2, v1 unloaded afterwards', async () => {
    const load = startLoad();
    await load.waitForMore(40);
    await publish(v2);
    const endMs = Date.now() + 30_000;
    while (load.countFrom('v2') < 100 && Date.now() < endMs) await new Promise((r) => setTimeout(r, 50));
    const report = await load.stop();
    expect(report.failures.map((f) => f.message)).toEqual([]);
    expect(report.answers.some((a) => a.response.indexVersion === 'v1')).toBe(true);
    expect(report.answers.filter((a) => a.response.indexVersion === 'v2').length).toBeGreaterThanOrEqual(100);
    expectWholeVersions(report);
    await until('every tracks node dropped v1', (s) =>
      [...s.nodes.values()].filter((n) => n.index === 'tracks').every((n) => Object.keys(n.versions).join() === 'v2'),
    );
    const described = await client.describeIndex('tracks');
    expect(described.activeVersion).toBe('v2');
  });

  it('never activates a version whose shard file is corrupt; the served one keeps answering and status names the failure', async () => {
    const file = path.join(v3.dir, 'shard-0001.ann');
    const bytes = readFileSync(file);
    bytes[bytes.length - 5] ^= 0xff;
    writeFileSync(file, bytes);
    const load = startLoad();
    await publishVersion(etcdClient, keys, v3.dir, await readManifest(v3.dir)); // as if the file rotted after publishing
    await until('shard 1 replicas report v3 failed', (s) =>
      [...s.nodes.values()].filter((n) => n.index === 'tracks' && n.shard === 1).every((n) => n.versions.v3?.state === 'failed'),
    );
    await load.waitForMore(40);
    const report = await load.stop();
    expect(report.failures.map((f) => f.message)).toEqual([]);
    expect(new Set(report.answers.map((a) => a.response.indexVersion))).toEqual(new Set(['v2']));
    expectWholeVersions(report);
    expect(await etcdClient.get(keys.active('tracks')).string()).toBe('v2');
    const status = await runCanopy(['status', ...etcdFlags()]);
    expect(status.stdout).toMatch(/version v3 \(target\)/);
    expect(status.stdout).toMatch(/tracks-1-0 127\.0\.0\.1:\d+ failed: .*sha256/);
    const back = await runCanopy(['rollback', ...etcdFlags(), '--index', 'tracks', '--to', 'v2']);
    expect(back.code).toBe(0);
  });

  it('survives kill -9 of a replica: its key expires, no query fails, and it rejoins on restart', async () => {
    const victim = replicas[0]![0]!;
    const load = startLoad();
    await load.waitForMore(30);
    await victim.kill();
    await until('the killed node key expired', (s) => !s.nodes.has('tracks-0-0'), (LEASE_TTL_SECONDS + 5) * 1_000);
    await load.waitForMore(60);
    const restarted = group.start('tracks 0/0 again', victim.address, shardArgs.get(victim)!);
    shardArgs.set(restarted, shardArgs.get(victim)!);
    replicas[0]![0] = restarted;
    await until('the restarted node is ready with v2', (s) => s.nodes.get('tracks-0-0')?.versions.v2?.state === 'ready');
    await load.waitForMore(30);
    const report = await load.stop();
    expect(report.failures.map((f) => f.message)).toEqual([]);
    expectWholeVersions(report);
  });

  it('keeps answering while etcd is down for 30 s, and nodes register again when it returns', async () => {
    const load = startLoad();
    await load.waitForMore(20);
    await etcd.pause();
    const before = load.answered;
    await new Promise((r) => setTimeout(r, 30_000));
    expect(load.answered).toBeGreaterThan(before + 100);
    await etcd.resume();
    await until('every node registered again', (s) => s.nodes.size === SHARDS * REPLICAS + 1, 30_000);
    await load.waitForMore(20);
    const report = await load.stop();
    expect(report.failures.map((f) => f.message)).toEqual([]);
    expectWholeVersions(report);
  }, 90_000);

  it('drains on SIGTERM: the node says it is stopping, finishes in-flight queries, exits 0, and no query fails', async () => {
    const leaving = replicas[1]![1]!;
    const load = startLoad();
    await load.waitForMore(30);
    const exited = new Promise<number | null>((resolve) => leaving.child.once('exit', (code) => resolve(code)));
    leaving.signal('SIGTERM');
    expect(await exited).toBe(0);
    await until('the stopped node key is gone', (s) => !s.nodes.has('tracks-1-1'));
    await load.waitForMore(30);
    const report = await load.stop();
    expect(report.failures.map((f) => f.message)).toEqual([]);
    expectWholeVersions(report);
  });
});
