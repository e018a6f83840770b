// `canopy build --out s3://bucket/prefix`: a version is built in a local
// staging folder as usual, then uploaded to `<prefix>/<version>/`: the shard
// files first, `manifest.json` last, so a version whose manifest can be read
// is complete (publish and shard nodes start from the manifest).
import path from 'node:path';

import { filesOfShard, MANIFEST_FILE, type Manifest } from '../format/manifest';
import type { ObjectStore } from '../storage/object-store';
import { joinObjectUrl } from '../storage/object-url';

/** Uploads the version folder `dir`; returns the version's URL. */
export async function uploadVersion(store: ObjectStore, dir: string, manifest: Manifest, prefix: string): Promise<string> {
  const url = joinObjectUrl(prefix, manifest.version);
  for (const shard of manifest.shards) {
    for (const { file } of filesOfShard(shard)) await store.uploadFile(path.join(dir, file), joinObjectUrl(url, file));
  }
  await store.uploadFile(path.join(dir, MANIFEST_FILE), joinObjectUrl(url, MANIFEST_FILE));
  return url;
}

/** Whether `<prefix>/<version>/manifest.json` exists: the version name is taken. */
export async function objectVersionTaken(store: ObjectStore, prefix: string, version: string): Promise<boolean> {
  return (await store.sizeOf(joinObjectUrl(prefix, version, MANIFEST_FILE))) !== undefined;
}
