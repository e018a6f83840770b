// A version folder written by hand (no engine): the `.ann` bytes are opaque to
// every check that does not load them, so tests of the manifest checks can run
// on plain files.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Manifest, ShardEntry } from '../../src/format/manifest';
import { PARTITIONER, shardOfId } from '../../src/format/partition';

const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');

/** Writes `<parent>/<version>` with `ids` spread over `shardCount` shards; returns the folder. */
export function writeVersionFixture(parent: string, version: string, ids: readonly string[], shardCount: number): string {
  const dir = join(parent, version);
  mkdirSync(dir, { recursive: true });
  const perShard: string[][] = Array.from({ length: shardCount }, () => []);
  for (const id of ids) perShard[shardOfId(id, shardCount)]!.push(id);
  const shards: ShardEntry[] = perShard.map((shardIds, shard) => {
    const file = `shard-${String(shard).padStart(4, '0')}.ann`;
    const idsFile = `shard-${String(shard).padStart(4, '0')}.ids`;
    const ann = Buffer.alloc(64 * (shardIds.length + 1), shard + 1);
    const idsText = shardIds.map((id) => `${id}\n`).join('');
    writeFileSync(join(dir, file), ann);
    writeFileSync(join(dir, idsFile), idsText);
    return {
      shard,
      file,
      idsFile,
      items: shardIds.length,
      fileBytes: ann.length,
      fileSha256: sha256(ann),
      idsBytes: Buffer.byteLength(idsText),
      idsSha256: sha256(idsText),
      buildSeconds: 0.5,
    };
  });
  const manifest: Manifest = {
    formatVersion: 1,
    index: 'fixture',
    version,
    metric: 'euclidean',
    dim: 12,
    nTrees: 3,
    seed: 42,
    partitioner: PARTITIONER,
    shardCount,
    createdAt: new Date(0).toISOString(),
    shards,
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  return dir;
}
