// The daily pipeline through object storage, as real processes against a real
// S3 API (moto's server) and a real etcd: a Parquet file written by pyarrow is
// built straight to s3://, published with --wait, downloaded by the shard nodes
// into their caches and answered by a router. A version whose object was
// corrupted is refused by the node that downloads it (publish --wait names the
// node and the reason) while the active version goes on answering, and a
// download cut midway leaves nothing in the cache.
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CanopyClient } from '../../src/client/canopy-client';
import { VersionCache } from '../../src/shard/version-cache';
import { ObjectStore } from '../../src/storage/object-store';
import { runCanopy } from '../support/cli';
import { CuttingProxy } from '../support/cutting-proxy';
import { EtcdServer } from '../support/etcd';
import { freePort } from '../support/free-port';
import { writeParquet } from '../support/input-files';
import { MotoServer } from '../support/moto';
import { ProcessGroup, type ServingProcess, waitServing } from '../support/serving/processes';
import { gaussianVectors } from '../support/vectors';

const BUCKET = 'daily-index';
const ROWS = 600;
const DIM = 16;
const ids = Array.from({ length: ROWS }, (_, i) => `track:${i}`);
const vectors = gaussianVectors(ROWS, DIM, 3);

let moto: MotoServer;
let etcd: EtcdServer;
const group = new ProcessGroup();
const scratch = mkdtempSync(path.join(tmpdir(), 'canopy-s3-cluster-'));
const savedEnv = { ...process.env };
const input = path.join(scratch, 'tracks.parquet');

beforeAll(async () => {
  [moto, etcd] = await Promise.all([MotoServer.start(), EtcdServer.start()]);
  Object.assign(process.env, moto.env);
  await moto.createBucket(BUCKET);
  writeParquet(input, vectors, ids);
});

afterAll(async () => {
  await group.killAll();
  await Promise.all([moto?.stop(), etcd?.stop()]);
  process.env = savedEnv;
  rmSync(scratch, { recursive: true, force: true });
});

const folderBytes = (dir: string): number => readdirSync(dir).reduce((sum, name) => sum + statSync(path.join(dir, name)).size, 0);

const etcdFlags = (): string[] => ['--etcd', etcd.url, '--cluster', 's3'];
const s3Flags = (): string[] => ['--s3-endpoint', moto.endpoint];
const cacheOf = (shard: number): string => path.join(scratch, `cache-${shard}`);

async function buildToS3(version: string): Promise<string> {
  const result = await runCanopy([
    'build', '--input', input, '--format', 'parquet', '--metric', 'angular', '--trees', '5', '--shards', '2',
    '--index', 'tracks', '--version', version, '--out', `s3://${BUCKET}/tracks`, ...s3Flags(),
  ]);
  expect(result.stderr).toContain(`uploading tracks/${version} to s3://${BUCKET}/tracks/${version}`);
  expect(result.code).toBe(0);
  expect(result.stdout).toBe(`s3://${BUCKET}/tracks/${version}\n`);
  return result.stdout.trim();
}

describe('an index version in object storage', () => {
  let router: ServingProcess;
  let client: CanopyClient;

  beforeAll(async () => {
    await Promise.all(
      [0, 1].map(async (shard) => {
        const address = `127.0.0.1:${await freePort()}`;
        return group.start(`shard ${shard}`, address, [
          'serve', 'shard', ...etcdFlags(), ...s3Flags(), '--index', 'tracks', '--shard', String(shard), '--listen', address,
          '--node-id', `node-${shard}`, '--cache-dir', cacheOf(shard), '--cache-max-mb', '64', '--log-level', 'warn',
        ]);
      }),
    );
    const address = `127.0.0.1:${await freePort()}`;
    router = group.start('router', address, ['serve', 'router', ...etcdFlags(), '--listen', address, '--log-level', 'warn']);
    await waitServing(router, 20_000, '');
    client = new CanopyClient({ target: router.address, deadlineMs: 10_000 });
  });

  afterAll(() => client?.close());

  it('goes from Parquet to s3:// to every shard node, and answers', async () => {
    const url = await buildToS3('v1');
    const published = await runCanopy(['publish', ...etcdFlags(), ...s3Flags(), '--manifest', url, '--wait', '--timeout', '60']);
    expect(published.stderr).toBe('');
    expect(published.stdout).toMatch(/published tracks\/v1 \(2 shards\) from s3:\/\/daily-index\/tracks\/v1/);
    expect(published.stdout).toMatch(/tracks\/v1 is active\n$/);
    expect(published.code).toBe(0);

    await waitServing(router);
    const answer = await client.searchByItem('tracks', 'track:42', { k: 5 });
    expect(answer.neighbors[0]).toEqual({ id: 'track:42', distance: 0 });
    expect(answer.indexVersion).toBe('v1');
    expect(answer.shardsAnswered).toBe(2);
    for (const shard of [0, 1]) {
      const entry = path.join(cacheOf(shard), `shard-000${shard}`, 'tracks@v1');
      expect(readdirSync(entry).sort()).toEqual(['manifest.json', `shard-000${shard}.ann`, `shard-000${shard}.codes`, `shard-000${shard}.graph`, `shard-000${shard}.ids`]);
    }
    const info = await client.describeIndex('tracks');
    expect(info.shards.map((s) => s.sidecars.find((c) => c.kind === 'codes')?.state)).toEqual(['loaded', 'loaded']);
  });

  it('a corrupted object is refused by the node that downloads it; the active version keeps answering', async () => {
    const url = await buildToS3('v2');
    // Same size, other bytes: only the sha256 tells, and only the shard nodes read every byte.
    const store = ObjectStore.create({ endpoint: moto.endpoint });
    const size = (await store.sizeOf(`${url}/shard-0000.ann`))!;
    store.close();
    await moto.putObject(BUCKET, 'tracks/v2/shard-0000.ann', Buffer.alloc(size, 7));

    const published = await runCanopy(['publish', ...etcdFlags(), ...s3Flags(), '--manifest', url, '--wait', '--timeout', '60']);
    expect(published.stderr).toMatch(/^canopy: tracks\/v2 failed on node node-0 \(127\.0\.0\.1:\d+\): s3:\/\/daily-index\/tracks\/v2\/shard-0000\.ann: sha256 is [0-9a-f]{64}, the manifest says [0-9a-f]{64}\n$/);
    expect(published.code).toBe(1);

    const answer = await client.searchByItem('tracks', 'track:7', { k: 3 });
    expect(answer.indexVersion).toBe('v1');
    expect(answer.neighbors[0]!.id).toBe('track:7');
    expect(readdirSync(path.join(cacheOf(0), 'shard-0000'))).toEqual(['tracks@v1']);
  });

  it('a corrupted sidecar object is left out of the download; the version serves without it, and says so', async () => {
    const url = await buildToS3('v1s');
    const store = ObjectStore.create({ endpoint: moto.endpoint });
    const size = (await store.sizeOf(`${url}/shard-0001.codes`))!;
    store.close();
    await moto.putObject(BUCKET, 'tracks/v1s/shard-0001.codes', Buffer.alloc(size, 7));

    const published = await runCanopy(['publish', ...etcdFlags(), ...s3Flags(), '--manifest', url, '--wait', '--timeout', '60']);
    expect(published.stderr).toBe('');
    expect(published.code).toBe(0);
    const answer = await client.searchByItem('tracks', 'track:9', { k: 3 });
    expect(answer.indexVersion).toBe('v1s');
    expect(answer.neighbors[0]).toEqual({ id: 'track:9', distance: 0 });
    const codes = (await client.describeIndex('tracks')).shards.map((s) => s.sidecars.find((c) => c.kind === 'codes')!);
    expect(codes.map((c) => c.state)).toEqual(['loaded', 'missing']);
    expect(codes[1]!.reason).toMatch(/shard-0001\.codes is not there/);
  });
});

describe('the shard download cache', () => {
  it('a download cut midway leaves no half version; the next try downloads it whole', async () => {
    const url = await buildToS3('v3');
    const proxy = await CuttingProxy.start(Number(new URL(moto.endpoint).port));
    const store = ObjectStore.create({ endpoint: proxy.endpoint });
    const dir = path.join(scratch, 'cut-cache');
    const cache = new VersionCache({ store: async () => store, dir, maxBytes: 64 * 1024 * 1024, shard: 1 });
    try {
      proxy.cutAfterBytes = 20_000;
      await expect(cache.fetch(url, new Set())).rejects.toThrow();
      expect(existsSync(path.join(dir, 'shard-0001')) ? readdirSync(path.join(dir, 'shard-0001')) : []).toEqual([]);

      proxy.cutAfterBytes = undefined;
      const folder = await cache.fetch(url, new Set());
      expect(folder).toBe(path.join(dir, 'shard-0001', 'tracks@v3'));
      expect(readdirSync(folder).sort()).toEqual(['manifest.json', 'shard-0001.ann', 'shard-0001.codes', 'shard-0001.graph', 'shard-0001.ids']);
    } finally {
      store.close();
      await proxy.stop();
    }
  });

  it('stays within its bound: versions not in use are evicted, versions in use never are', async () => {
    const [a, b] = [await buildToS3('e1'), await buildToS3('e2')];
    const store = ObjectStore.create({ endpoint: moto.endpoint });
    const dir = path.join(scratch, 'small-cache');
    const evicted: string[] = [];
    const probe = new VersionCache({ store: async () => store, dir: path.join(scratch, 'probe'), maxBytes: 64 * 1024 * 1024, shard: 0 });
    const oneVersionBytes = folderBytes(await probe.fetch(a, new Set()));
    // Room for one version of this shard, not two.
    const cache = new VersionCache({ store: async () => store, dir, maxBytes: Math.ceil(oneVersionBytes * 1.5), shard: 0, onEvict: (entry) => evicted.push(entry) });
    try {
      await cache.fetch(a, new Set());
      await cache.fetch(b, new Set());
      expect(evicted).toEqual(['tracks@e1']);
      expect(readdirSync(path.join(dir, 'shard-0000'))).toEqual(['tracks@e2']);
      await expect(cache.fetch(a, new Set(['tracks@e2']))).rejects.toThrow(/entries in use; \d+ more exceed its \d+ bytes \(raise the cache size\)/);
      expect(readdirSync(path.join(dir, 'shard-0000'))).toEqual(['tracks@e2']);
    } finally {
      store.close();
    }
  });
});
