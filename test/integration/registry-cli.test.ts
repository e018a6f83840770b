// `canopy publish`, `status` and `rollback` as real processes against a real etcd.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Manifest } from '../../src/format/manifest';
import { ClusterKeys } from '../../src/registry/keys';
import { flipActive } from '../../src/registry/versions';
import { CANOPY_BIN, runCanopy } from '../support/cli';
import { EtcdServer } from '../support/etcd';

let etcd: EtcdServer;
let client: Etcd3;
let root: string;
const keys = new ClusterKeys('cli');

beforeAll(async () => {
  etcd = await EtcdServer.start();
  client = new Etcd3({ hosts: etcd.url });
  root = mkdtempSync(path.join(tmpdir(), 'canopy-cli-'));
});

afterAll(async () => {
  client?.close();
  await etcd?.stop();
  rmSync(root, { recursive: true, force: true });
});

/** A version folder whose files match its manifest (their bytes are not a forest: publish only checks sizes and sums). */
function versionFolder(version: string, annBytes: Buffer): string {
  const dir = path.join(root, version);
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const ids = Buffer.from('a\nb\n');
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'shard-0000.ann'), annBytes);
  writeFileSync(path.join(dir, 'shard-0000.ids'), ids);
  const manifest: Manifest = {
    formatVersion: 1, index: 'tracks', version, metric: 'euclidean', dim: 2, nTrees: 1, seed: 1,
    partitioner: 'fnv1a32-fmix', shardCount: 1, createdAt: new Date().toISOString(),
    shards: [{ shard: 0, file: 'shard-0000.ann', idsFile: 'shard-0000.ids', items: 2, fileBytes: annBytes.length,
      fileSha256: sha(annBytes), idsBytes: ids.length, idsSha256: sha(ids), buildSeconds: 0 }],
  };
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  return dir;
}

const flags = () => ['--etcd', etcd.url, '--cluster', 'cli'];

describe('canopy publish / status / rollback', () => {
  it('publishes, shows, refuses a corrupt folder, and rolls back', async () => {
    const v1 = versionFolder('v1', Buffer.alloc(72, 1));
    const v2 = versionFolder('v2', Buffer.alloc(72, 2));

    const published = await runCanopy(['publish', ...flags(), '--manifest', v1]);
    expect(published.stderr).toBe('');
    expect(published.code).toBe(0);
    expect(await client.get(keys.target('tracks')).string()).toBe('v1');
    expect(await flipActive(client, keys, 'tracks', 'v1')).toBe(true);

    writeFileSync(path.join(v2, 'shard-0000.ann'), Buffer.alloc(72, 3)); // same size, other bytes
    const corrupt = await runCanopy(['publish', ...flags(), '--manifest', v2]);
    expect(corrupt.code).toBe(1);
    expect(corrupt.stderr).toMatch(/shard-0000\.ann: sha256 is [0-9a-f]{64}, manifest says/);
    expect(await client.get(keys.target('tracks')).string()).toBe('v1');

    writeFileSync(path.join(v2, 'shard-0000.ann'), Buffer.alloc(72, 2));
    const mismatch = await runCanopy(['publish', ...flags(), '--manifest', v2, '--index', 'artists']);
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toMatch(/--index artists does not match the manifest/);

    // v1 is active: publishing over it needs a live node for every shard of v2.
    await client.put(keys.node('n1')).value(JSON.stringify({
      addr: '127.0.0.1:7001', index: 'tracks', shard: 0, stopping: false,
      versions: { v1: { state: 'ready' }, v2: { state: 'failed', reason: 'sha256 mismatch' } },
    }));
    expect((await runCanopy(['publish', ...flags(), '--manifest', v2])).code).toBe(0);
    expect(await flipActive(client, keys, 'tracks', 'v2')).toBe(true);

    const status = await runCanopy(['status', ...flags()]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/index tracks {2}active v2 {2}target v2/);
    expect(status.stdout).toMatch(/shard 0: n1 127\.0\.0\.1:7001 failed: sha256 mismatch/);
    expect(status.stdout).toMatch(/shard 0: n1 127\.0\.0\.1:7001 ready/);
    const json = JSON.parse((await runCanopy(['status', ...flags(), '--json'])).stdout);
    expect(json.indexes.tracks.active).toBe('v2');

    const rollback = await runCanopy(['rollback', ...flags(), '--index', 'tracks']);
    expect(rollback.code).toBe(0);
    expect(rollback.stdout).toMatch(/now targets v1/);
    expect(await client.get(keys.target('tracks')).string()).toBe('v1');
    const unknown = await runCanopy(['rollback', ...flags(), '--index', 'nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/index nope is not published/);
  });

  it('names the etcd it could not reach', async () => {
    const result = await runCanopy(['status', '--etcd', 'http://127.0.0.1:9', '--cluster', 'cli']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/etcd at http:\/\/127\.0\.0\.1:9 did not answer/);
  });
});

describe('canopy serve controller', () => {
  it('flips the target to active once every shard has a ready replica, and stops on SIGTERM', async () => {
    const dir = versionFolder('c1', Buffer.alloc(72, 5));
    const cluster = new ClusterKeys('ctl');
    const flags = ['--etcd', etcd.url, '--cluster', 'ctl'];
    expect((await runCanopy(['publish', ...flags, '--manifest', dir])).code).toBe(0);
    const controller = spawn(process.execPath, [CANOPY_BIN, 'serve', 'controller', ...flags, '--log-level', 'warn'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 500));
      expect(await client.get(cluster.active('tracks')).string()).toBeNull(); // no replica is ready yet
      await client.put(cluster.node('n1')).value(JSON.stringify({
        addr: '127.0.0.1:7001', index: 'tracks', shard: 0, stopping: false, versions: { c1: { state: 'ready' } },
      }));
      let active: string | null = null;
      for (let i = 0; i < 100 && active !== 'c1'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        active = await client.get(cluster.active('tracks')).string();
      }
      expect(active).toBe('c1');
    } finally {
      const exited = new Promise((resolve) => controller.once('exit', resolve));
      controller.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  });
});
