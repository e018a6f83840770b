// Publishing, flipping and rolling back index versions. Every write that
// moves `active` is one etcd transaction guarded on `target`, so any number
// of controllers may run at once (one per router, say): they can only ever
// agree, and none can flip to a version that is no longer the target.
import type { Etcd3 } from 'etcd3';

import { sameShardFiles, type Manifest } from '../format/manifest';
import type { ClusterSnapshot, IndexVersions } from './cluster-view';
import type { ClusterKeys } from './keys';
import type { ForcedPublish, NodeRecord, VersionRecord } from './records';

/**
 * Writes `versions/<v>` and sets `target = v`, in one transaction. Publishing
 * a version again (a rollback) only re-targets it; publishing different files
 * under a name already taken is refused, so a version name always means the
 * same bytes.
 */
export async function publishVersion(etcd: Etcd3, keys: ClusterKeys, location: string, manifest: Manifest, forced?: ForcedPublish): Promise<void> {
  const versionKey = keys.version(manifest.index, manifest.version);
  const existing = await etcd.get(versionKey).exec();
  const previous = existing.kvs[0];
  if (previous) {
    const published = JSON.parse(previous.value.toString()) as VersionRecord;
    if (!sameFiles(published.manifest, manifest)) {
      throw new Error(`version ${manifest.version} of index ${manifest.index} is already published with different files`);
    }
  }
  const record: VersionRecord = { location, manifest, publishedAt: new Date().toISOString(), ...(forced === undefined ? {} : { forced }) };
  const result = await etcd
    .if(versionKey, 'Mod', '==', previous ? previous.mod_revision : 0)
    .then(etcd.put(versionKey).value(JSON.stringify(record)), etcd.put(keys.target(manifest.index)).value(manifest.version))
    .commit();
  if (!result.succeeded) throw new Error(`version ${manifest.version} of index ${manifest.index} changed while publishing; try again`);
}

function sameFiles(a: Manifest, b: Manifest): boolean {
  return a.shardCount === b.shardCount && a.shards.every((s, i) => sameShardFiles(s, b.shards[i]));
}

/** Sets `target` to an already published version. */
export async function retarget(etcd: Etcd3, keys: ClusterKeys, index: string, version: string): Promise<void> {
  const result = await etcd
    .if(keys.version(index, version), 'Create', '>', 0)
    .then(etcd.put(keys.target(index)).value(version))
    .commit();
  if (!result.succeeded) throw new Error(`version ${version} of index ${index} is not published`);
}

/**
 * The version to roll back to: the newest published version older than the
 * active one (by publish time), or undefined when there is none.
 */
export function previousVersion(view: IndexVersions): string | undefined {
  const active = view.active === undefined ? undefined : view.versions.get(view.active);
  if (!active) return undefined;
  let best: [string, VersionRecord] | undefined;
  for (const entry of view.versions) {
    const [, record] = entry;
    if (record.publishedAt >= active.publishedAt) continue;
    if (!best || record.publishedAt > best[1].publishedAt) best = entry;
  }
  return best?.[0];
}

/** Live, not stopping replicas of `index` that report `version` ready, counted per shard. */
export function readyReplicasPerShard(nodes: Iterable<NodeRecord>, index: string, version: string, shardCount: number): number[] {
  const counts = new Array<number>(shardCount).fill(0);
  for (const node of nodes) {
    if (node.index !== index || node.stopping || node.versions[version]?.state !== 'ready') continue;
    if (node.shard >= 0 && node.shard < shardCount) counts[node.shard]! += 1;
  }
  return counts;
}

/** The versions whose flip to active is due: target differs from active and every shard has `minReady` ready replicas. */
export function flipsDue(snapshot: ClusterSnapshot, minReady: number): Array<{ index: string; version: string }> {
  const due: Array<{ index: string; version: string }> = [];
  for (const [index, view] of snapshot.indexes) {
    const target = view.target;
    if (target === undefined || target === view.active) continue;
    const record = view.versions.get(target);
    if (!record) continue;
    const counts = readyReplicasPerShard(snapshot.nodes.values(), index, target, record.manifest.shardCount);
    if (counts.every((n) => n >= minReady)) due.push({ index, version: target });
  }
  return due;
}

/** Sets `active = version` only if `target` is still `version`. Returns whether it flipped. */
export async function flipActive(etcd: Etcd3, keys: ClusterKeys, index: string, version: string): Promise<boolean> {
  const result = await etcd
    .if(keys.target(index), 'Value', '==', version)
    .then(etcd.put(keys.active(index)).value(version))
    .commit();
  return result.succeeded;
}
