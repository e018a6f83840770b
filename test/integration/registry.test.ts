// The registry against a real etcd: sessions, the cluster view, publishing and
// the guarded flip of `active`, a crashed node's lease expiring, and an etcd outage.
import { spawn } from 'node:child_process';

import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import type { Manifest } from '../../src/format/manifest';
import { ClusterView, type ClusterSnapshot } from '../../src/registry/cluster-view';
import { ClusterKeys } from '../../src/registry/keys';
import { NodeSession } from '../../src/registry/node-session';
import type { NodeRecord } from '../../src/registry/records';
import { VersionController } from '../../src/registry/version-controller';
import { flipActive, previousVersion, publishVersion, retarget } from '../../src/registry/versions';
import { EtcdServer } from '../support/etcd';

let etcd: EtcdServer;
let client: Etcd3;
let cluster = 0;
let keys: ClusterKeys;
const closers: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  etcd = await EtcdServer.start();
  client = new Etcd3({ hosts: etcd.url });
});

afterAll(async () => {
  client?.close();
  await etcd?.stop();
});

beforeEach(async () => {
  while (closers.length) await closers.pop()!();
  keys = new ClusterKeys(`test-${++cluster}`);
});

function manifest(index: string, version: string, shardCount: number, sha = 'a'): Manifest {
  const hex = sha.repeat(64).slice(0, 64);
  return {
    formatVersion: 1, index, version, metric: 'angular', dim: 4, nTrees: 2, seed: 1, partitioner: 'fnv1a32-fmix',
    shardCount, createdAt: '2026-11-26T00:00:00Z',
    shards: Array.from({ length: shardCount }, (_, shard) => ({
      shard, file: `shard-${shard}.ann`, idsFile: `shard-${shard}.ids`, items: 1, fileBytes: 28,
      fileSha256: hex, idsBytes: 2, idsSha256: hex, buildSeconds: 0,
    })),
  };
}

function nodeRecord(shard: number, versions: NodeRecord['versions'] = {}): NodeRecord {
  return { addr: `127.0.0.1:${7000 + shard}`, index: 'tracks', shard, versions, stopping: false };
}

async function startView(): Promise<ClusterView> {
  const view = new ClusterView({ etcd: client, keys, relistDelayMs: 100 });
  await view.start();
  closers.push(() => view.close());
  return view;
}

async function startSession(nodeId: string, record: NodeRecord, etcdClient = client): Promise<NodeSession> {
  const session = new NodeSession({ etcd: etcdClient, keys, nodeId, leaseTtlSeconds: 2, retryDelayMs: 100 }, record);
  await session.start();
  closers.push(() => session.close());
  return session;
}

/** Resolves with the first snapshot (current or coming) that satisfies `test`; bounded in time. */
function until(view: ClusterView, test: (s: ClusterSnapshot) => boolean, timeoutMs = 10_000): Promise<ClusterSnapshot> {
  if (test(view.snapshot)) return Promise.resolve(view.snapshot);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      view.off('change', onChange);
      reject(new Error('view did not reach the expected state in time'));
    }, timeoutMs);
    const onChange = (s: ClusterSnapshot) => {
      if (!test(s)) return;
      clearTimeout(timer);
      view.off('change', onChange);
      resolve(s);
    };
    view.on('change', onChange);
  });
}

/**
 * Resolves once the view holds everything etcd committed before this call,
 * including a flip the controller may have sent on an earlier change: a fence
 * key written after it (same connection, so etcd commits it later) must reach
 * the view, and watch events arrive in revision order.
 */
async function fence(view: ClusterView): Promise<void> {
  const put = await client.put(`${keys.root}fence`).value(String(Date.now())).exec();
  const revision = Number(put.header.revision);
  await until(view, (s) => s.revision >= revision);
}

describe('ClusterKeys', () => {
  it('builds and parses every key of the layout, and refuses unsafe names', () => {
    const k = new ClusterKeys('prod');
    expect(k.node('n1')).toBe('/canopy/prod/nodes/n1');
    expect(k.version('tracks', 'v2')).toBe('/canopy/prod/indexes/tracks/versions/v2');
    expect(k.parse(k.target('tracks'))).toEqual({ kind: 'target', index: 'tracks' });
    expect(k.parse(k.active('tracks'))).toEqual({ kind: 'active', index: 'tracks' });
    expect(k.parse(k.version('tracks', 'v2'))).toEqual({ kind: 'version', index: 'tracks', version: 'v2' });
    expect(k.parse(k.node('n1'))).toEqual({ kind: 'node', nodeId: 'n1' });
    expect(k.parse('/canopy/other/nodes/n1')).toBeUndefined();
    expect(() => k.node('../x')).toThrow(/node id/);
    expect(() => new ClusterKeys('a/b')).toThrow(/cluster name/);
  });
});

describe('registry against a real etcd', () => {
  it('a session registers its node, updates it, and removes it on close', async () => {
    const view = await startView();
    const session = await startSession('n1', nodeRecord(0));
    await until(view, (s) => s.nodes.get('n1')?.shard === 0);
    await session.update((r) => ({ ...r, versions: { v1: { state: 'ready' } } }));
    await until(view, (s) => s.nodes.get('n1')?.versions.v1?.state === 'ready');
    await session.close();
    await until(view, (s) => !s.nodes.has('n1'));
  });

  it("a node killed with SIGKILL vanishes when its lease expires", async () => {
    const view = await startView();
    const script = `
      const { Etcd3 } = require('etcd3');
      const c = new Etcd3({ hosts: ${JSON.stringify(etcd.url)} });
      c.lease(1).put(${JSON.stringify(keys.node('doomed'))}).value(${JSON.stringify(JSON.stringify(nodeRecord(1)))})
        .then(() => process.stdout.write('registered\\n'));
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['-e', script], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
    closers.push(() => child.kill('SIGKILL'));
    await until(view, (s) => s.nodes.has('doomed'));
    child.kill('SIGKILL');
    const gone = await until(view, (s) => !s.nodes.has('doomed'), 8_000);
    expect(gone.nodes.has('doomed')).toBe(false);
  });

  it('publishes versions, refuses a name reused for other files, and rolls back to the previous one', async () => {
    const view = await startView();
    await publishVersion(client, keys, '/data/tracks/v1', manifest('tracks', 'v1', 2));
    await until(view, (s) => s.indexes.get('tracks')?.target === 'v1');
    expect(await flipActive(client, keys, 'tracks', 'v1')).toBe(true);
    await new Promise((r) => setTimeout(r, 5)); // publishedAt is millisecond-grained
    await publishVersion(client, keys, '/data/tracks/v2', manifest('tracks', 'v2', 2));
    expect(await flipActive(client, keys, 'tracks', 'v1')).toBe(false); // no longer the target
    await expect(publishVersion(client, keys, '/x', manifest('tracks', 'v2', 2, 'b'))).rejects.toThrow(/already published/);
    await publishVersion(client, keys, '/data/tracks/v2', manifest('tracks', 'v2', 2)); // same files: fine
    expect(await flipActive(client, keys, 'tracks', 'v2')).toBe(true);
    const snap = await until(view, (s) => s.indexes.get('tracks')?.active === 'v2');
    const rollbackTo = previousVersion(snap.indexes.get('tracks')!);
    expect(rollbackTo).toBe('v1');
    await retarget(client, keys, 'tracks', rollbackTo!);
    await until(view, (s) => s.indexes.get('tracks')?.target === 'v1');
    await expect(retarget(client, keys, 'tracks', 'v9')).rejects.toThrow(/not published/);
  });

  it('the controller flips active only once every shard has a ready replica, never to a failed version', async () => {
    const view = await startView();
    const flips: string[] = [];
    const controller = new VersionController({ etcd: client, keys, view, onFlip: (_i, v) => flips.push(v) });
    controller.start();
    closers.push(() => controller.stop());
    const a = await startSession('a', nodeRecord(0, { v1: { state: 'loading' } }));
    const b = await startSession('b', nodeRecord(1, { v1: { state: 'loading' } }));
    await publishVersion(client, keys, '/data/v1', manifest('tracks', 'v1', 2));
    await a.update((r) => ({ ...r, versions: { v1: { state: 'ready' } } }));
    await until(view, (s) => s.nodes.get('a')?.versions.v1?.state === 'ready');
    await fence(view);
    expect(view.snapshot.indexes.get('tracks')?.active).toBeUndefined(); // shard 1 not ready yet
    await b.update((r) => ({ ...r, versions: { v1: { state: 'ready' } } }));
    await until(view, (s) => s.indexes.get('tracks')?.active === 'v1');

    await publishVersion(client, keys, '/data/v2', manifest('tracks', 'v2', 2));
    await a.update((r) => ({ ...r, versions: { ...r.versions, v2: { state: 'ready' } } }));
    await b.update((r) => ({ ...r, versions: { ...r.versions, v2: { state: 'failed', reason: 'sha256 mismatch' } } }));
    await until(view, (s) => s.nodes.get('b')?.versions.v2?.state === 'failed');
    await fence(view);
    expect(view.snapshot.indexes.get('tracks')?.active).toBe('v1');
    expect(flips).toEqual(['v1']);
  });

  it('keeps the last view while etcd is down, and sessions register again when it returns', async () => {
    const view = await startView();
    await startSession('n1', nodeRecord(0, { v1: { state: 'ready' } }));
    await until(view, (s) => s.nodes.has('n1'));
    await etcd.pause();
    await new Promise((r) => setTimeout(r, 5_000)); // past twice the lease TTL: the session reports it lost
    expect(view.snapshot.nodes.get('n1')?.versions.v1?.state).toBe('ready');
    await etcd.resume();
    // After the restart etcd renews old leases, so look only once the old lease has expired as well
    // (its TTL after the restart): the key must then be there under the session's new lease. The
    // client's own reconnect backoff decides when the session gets through, so poll (bounded).
    const oldLeaseGoneAtMs = Date.now() + 3_000;
    const fresh = new Etcd3({ hosts: etcd.url });
    try {
      let state: string | undefined;
      while (Date.now() < oldLeaseGoneAtMs + 15_000) {
        const value = await fresh.get(keys.node('n1')).string().catch(() => null);
        state = value ? JSON.parse(value).versions.v1?.state : undefined;
        if (state === 'ready' && Date.now() > oldLeaseGoneAtMs) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(state).toBe('ready');
    } finally {
      fresh.close();
    }
  }, 45_000);
});
