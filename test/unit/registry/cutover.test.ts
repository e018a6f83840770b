// The version controller's pure rules: which etcd values make which snapshot,
// how ready replicas are counted per shard, and when a flip is due. The
// controller itself runs against real etcd in test/integration/registry.test.ts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { deriveSnapshot } from '../../../src/registry/cluster-view';
import { ClusterKeys } from '../../../src/registry/keys';
import type { NodeRecord, VersionState } from '../../../src/registry/records';
import { flipsDue, readyReplicasPerShard } from '../../../src/registry/versions';
import { writeVersionFixture } from '../../support/version-fixture';

const dir = mkdtempSync(join(tmpdir(), 'canopy-cutover-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const keys = new ClusterKeys('test');
const ids = Array.from({ length: 40 }, (_, i) => `item-${i}`);
/** The manifest JSON of a 2-shard version named `version` of index `fixture`. */
const manifestOf = (version: string): unknown => JSON.parse(readFileSync(join(writeVersionFixture(dir, version, ids, 2), 'manifest.json'), 'utf8'));
const versionValue = (version: string): string =>
  JSON.stringify({ location: join(dir, version), manifest: manifestOf(version), publishedAt: '2026-12-03T00:00:00Z' });

function node(shard: number, versions: Record<string, VersionState['state']>, extra: Partial<NodeRecord> = {}): NodeRecord {
  const states = Object.fromEntries(Object.entries(versions).map(([v, state]) => [v, state === 'failed' ? { state, reason: 'x' } : { state }]));
  return { addr: `127.0.0.1:${7000 + shard}`, index: 'fixture', shard, versions: states as NodeRecord['versions'], stopping: false, ...extra };
}

function snapshotOf(nodes: NodeRecord[], index: { target?: string; active?: string; versions: string[] }) {
  const values = new Map<string, string>();
  nodes.forEach((n, i) => values.set(keys.node(`node-${i}`), JSON.stringify(n)));
  for (const v of index.versions) values.set(keys.version('fixture', v), versionValue(v));
  if (index.target !== undefined) values.set(keys.target('fixture'), index.target);
  if (index.active !== undefined) values.set(keys.active('fixture'), index.active);
  return deriveSnapshot(keys, values, 7, () => undefined);
}

describe('deriveSnapshot', () => {
  test('reads nodes, versions, target and active, and keeps the revision', () => {
    const snapshot = snapshotOf([node(0, { v1: 'ready' }), node(1, { v1: 'loading' })], { target: 'v2', active: 'v1', versions: ['v1', 'v2'] });
    expect(snapshot.revision).toBe(7);
    expect([...snapshot.nodes.keys()].sort()).toEqual(['node-0', 'node-1']);
    const index = snapshot.indexes.get('fixture')!;
    expect(index.target).toBe('v2');
    expect(index.active).toBe('v1');
    expect([...index.versions.keys()].sort()).toEqual(['v1', 'v2']);
    expect(index.versions.get('v2')!.manifest.shardCount).toBe(2);
  });

  test('reports a value of the wrong shape and leaves it out; keys of other clusters are ignored', () => {
    const values = new Map<string, string>([
      [keys.node('good'), JSON.stringify(node(0, {}))],
      [keys.node('bad'), '{"addr": 1}'],
      [keys.version('fixture', 'broken'), 'not json'],
      [new ClusterKeys('other').node('elsewhere'), JSON.stringify(node(0, {}))],
    ]);
    const invalid: string[] = [];
    const snapshot = deriveSnapshot(keys, values, 1, (key) => invalid.push(key));
    expect([...snapshot.nodes.keys()]).toEqual(['good']);
    expect(invalid.sort()).toEqual([keys.node('bad'), keys.version('fixture', 'broken')].sort());
    expect(snapshot.indexes.get('fixture')?.versions.size ?? 0).toBe(0);
  });
});

describe('readyReplicasPerShard', () => {
  test('counts ready replicas of the version per shard, not stopping nodes, other indexes or other states', () => {
    const nodes = [
      node(0, { v2: 'ready' }),
      node(0, { v2: 'ready' }),
      node(1, { v2: 'loading' }),
      node(1, { v2: 'ready' }, { stopping: true }),
      node(1, { v2: 'failed' }),
      node(1, { v2: 'ready' }, { index: 'another' }),
      node(5, { v2: 'ready' }),
    ];
    expect(readyReplicasPerShard(nodes, 'fixture', 'v2', 2)).toEqual([2, 0]);
    expect(readyReplicasPerShard(nodes, 'fixture', 'v3', 2)).toEqual([0, 0]);
  });
});

describe('flipsDue', () => {
  const index = { target: 'v2', active: 'v1', versions: ['v1', 'v2'] };

  test('is due once every shard has the ready replicas asked for', () => {
    const nodes = [node(0, { v1: 'ready', v2: 'ready' }), node(1, { v1: 'ready', v2: 'ready' })];
    expect(flipsDue(snapshotOf(nodes, index), 1)).toEqual([{ index: 'fixture', version: 'v2' }]);
    expect(flipsDue(snapshotOf(nodes, index), 2)).toEqual([]);
  });

  test('is not due while one shard has no ready replica of the target', () => {
    const nodes = [node(0, { v2: 'ready' }), node(1, { v1: 'ready', v2: 'loading' }), node(1, { v2: 'failed' })];
    expect(flipsDue(snapshotOf(nodes, index), 1)).toEqual([]);
  });

  test('is not due when the target is already active, missing, or not published', () => {
    const nodes = [node(0, { v2: 'ready' }), node(1, { v2: 'ready' })];
    expect(flipsDue(snapshotOf(nodes, { target: 'v2', active: 'v2', versions: ['v2'] }), 1)).toEqual([]);
    expect(flipsDue(snapshotOf(nodes, { active: 'v1', versions: ['v1', 'v2'] }), 1)).toEqual([]);
    expect(flipsDue(snapshotOf(nodes, { target: 'v9', active: 'v1', versions: ['v1'] }), 1)).toEqual([]);
  });
});
