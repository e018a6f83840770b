// `canopy inspect`: everything that can be checked about a version folder,
// its sidecars included. Problems are collected, not thrown, so
// one run names every one of them.
import path from 'node:path';

import type { Metric } from '../format/metric';
import { readIdsFile } from '../format/ids-file';
import { readManifest, verifyFile, verifyShard, type Manifest, type SidecarKind } from '../format/manifest';
import { PARTITIONER, shardOfId } from '../format/partition';

export interface InspectResult {
  readonly manifest: Manifest;
  /** Empty when every check passed. */
  readonly problems: readonly string[];
}

/**
 * Loads a forest file as a shard node would (the engine checks every node
 * reference), then each of its sidecars (the engine refuses a stale, foreign
 * or damaged one), and returns its item count; throws naming what is wrong.
 * Given by the caller so that the build layer stays free of the engine.
 */
export type ForestCheck = (file: string, opts: { dim: number; metric: Metric; sidecars: readonly SidecarFile[] }) => number;

/** A sidecar to load with its forest: kind and absolute path. */
export interface SidecarFile {
  readonly kind: SidecarKind;
  readonly file: string;
}

/**
 * Throws ManifestError if the manifest itself is unreadable or invalid. With
 * `checkForest`, each shard's forest is also loaded, so a file whose size and
 * checksum match a manifest written for corrupt bytes is still caught.
 */
export async function inspectVersion(dir: string, checkForest?: ForestCheck): Promise<InspectResult> {
  const manifest = await readManifest(dir);
  const problems: string[] = [];
  if (manifest.partitioner !== PARTITIONER) {
    problems.push(`partitioner ${JSON.stringify(manifest.partitioner)} is unknown to this canopy (it knows ${PARTITIONER})`);
  }
  if (path.basename(path.resolve(dir)) !== manifest.version) {
    problems.push(`the folder is named ${path.basename(path.resolve(dir))} but holds version ${manifest.version}`);
  }
  for (let shard = 0; shard < manifest.shardCount; shard++) {
    const problem = await shardProblem(dir, manifest, shard, checkForest);
    if (problem !== undefined) problems.push(`shard ${shard}: ${problem}`);
  }
  return { manifest, problems };
}

async function shardProblem(dir: string, manifest: Manifest, shard: number, checkForest?: ForestCheck): Promise<string | undefined> {
  try {
    const { entry, file, idsFile } = await verifyShard(dir, manifest, shard);
    const sidecars: SidecarFile[] = [];
    for (const sidecar of entry.sidecars ?? []) sidecars.push({ kind: sidecar.kind, file: await verifyFile(dir, sidecar) });
    if (checkForest !== undefined) {
      const items = checkForest(file, { dim: manifest.dim, metric: manifest.metric, sidecars });
      if (items !== entry.items) return `${file} holds ${items} items, the manifest says ${entry.items}`;
    }
    const ids = await readIdsFile(idsFile);
    if (ids.length !== entry.items) return `${idsFile} holds ${ids.length} ids, the manifest says ${entry.items} items`;
    if (manifest.partitioner !== PARTITIONER) return undefined;
    const misplaced = ids.findIndex((id) => shardOfId(id, manifest.shardCount) !== shard);
    if (misplaced !== -1) {
      return `${idsFile} line ${misplaced + 1}: id ${JSON.stringify(ids[misplaced])} belongs to shard ${shardOfId(ids[misplaced]!, manifest.shardCount)}`;
    }
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
