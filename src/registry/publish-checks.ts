// What publish refuses so that a new version cannot break serving. Each check
// compares the new version with the index's active one and the live nodes;
// with no active version there is nothing to break, and only the ids are new.
// `canopy publish --force` skips them, and the version record says who did.
import type { Manifest } from '../format/manifest';
import { shardOfId } from '../format/partition';
import type { ClusterSnapshot } from './cluster-view';
import type { VersionSource } from './version-source';

/** Default largest drop in item count, as a fraction of the active version's items. */
export const DEFAULT_MAX_ITEM_DROP = 0.5;
/** Default smallest share of the active version's (sampled) ids the new one must still hold. */
export const DEFAULT_MIN_ID_OVERLAP = 0.5;
/** Ids sampled from the active version for the overlap check. */
export const ID_OVERLAP_SAMPLE = 2_000;

export interface PublishLimits {
  readonly maxItemDrop: number;
  readonly minIdOverlap: number;
}

export interface ActiveVersion {
  readonly version: string;
  readonly manifest: Manifest;
  readonly source: VersionSource;
}

const itemsOf = (manifest: Manifest): number => manifest.shards.reduce((sum, s) => sum + s.items, 0);

/**
 * The reasons to refuse publishing `manifest` over `active` (empty: publish).
 * Cheap checks first; the id overlap reads ids only when they all pass.
 */
export async function publishRefusals(
  snapshot: ClusterSnapshot,
  manifest: Manifest,
  source: VersionSource,
  active: ActiveVersion | undefined,
  limits: PublishLimits,
): Promise<string[]> {
  if (active === undefined) return [];
  const was = active.manifest;
  const name = `the active version ${active.version}`;
  const reasons: string[] = [];
  if (manifest.metric !== was.metric) reasons.push(`metric ${manifest.metric} differs from ${name}'s ${was.metric}`);
  if (manifest.dim !== was.dim) reasons.push(`dimension ${manifest.dim} differs from ${name}'s ${was.dim}: every query would be refused`);
  const unserved = shardsWithoutNodes(snapshot, manifest.index, manifest.shardCount);
  if (unserved.length > 0) {
    reasons.push(`${manifest.shardCount} shards, but no live node serves shard ${unserved.join(', ')} of index ${manifest.index}`);
  }
  const items = itemsOf(manifest);
  const wasItems = itemsOf(was);
  if (items < wasItems * (1 - limits.maxItemDrop)) {
    reasons.push(`${items} items, ${Math.round((1 - items / wasItems) * 100)}% fewer than ${name}'s ${wasItems} (--max-item-drop ${limits.maxItemDrop})`);
  }
  if (reasons.length > 0) return reasons;
  const overlap = await sampledIdOverlap(active, manifest, source);
  if (overlap !== undefined && overlap.share < limits.minIdOverlap) {
    reasons.push(
      `only ${(overlap.share * 100).toFixed(1)}% of ${overlap.sampled} ids sampled from ${name} are in ${manifest.version} (--min-id-overlap ${limits.minIdOverlap})`,
    );
  }
  return reasons;
}

/** Shards of the new layout that no live, not stopping node of the index serves. */
function shardsWithoutNodes(snapshot: ClusterSnapshot, index: string, shardCount: number): number[] {
  const served = new Set<number>();
  for (const node of snapshot.nodes.values()) if (node.index === index && !node.stopping) served.add(node.shard);
  return Array.from({ length: shardCount }, (_, shard) => shard).filter((shard) => !served.has(shard));
}

/**
 * The share of the active version's ids that the new version still holds,
 * estimated from two ids files only: ids of the active version's shard 0 that
 * the new layout also puts on its shard 0 (a hash-chosen, so unbiased, subset),
 * reservoir-sampled, looked up in the new version's shard 0. Undefined when
 * that subset is empty.
 */
async function sampledIdOverlap(active: ActiveVersion, manifest: Manifest, source: VersionSource): Promise<{ share: number; sampled: number } | undefined> {
  const sample: string[] = [];
  let seen = 0;
  for await (const id of active.source.lines(active.manifest.shards[0]!.idsFile)) {
    if (shardOfId(id, manifest.shardCount) !== 0) continue;
    seen++;
    if (sample.length < ID_OVERLAP_SAMPLE) sample.push(id);
    else {
      const slot = Math.floor(Math.random() * seen);
      if (slot < ID_OVERLAP_SAMPLE) sample[slot] = id;
    }
  }
  if (sample.length === 0) return undefined;
  const wanted = new Set(sample);
  let found = 0;
  for await (const id of source.lines(manifest.shards[0]!.idsFile)) if (wanted.has(id)) found++;
  return { share: found / sample.length, sampled: sample.length };
}
