// Shard nodes whose versions live in object storage download their own shard
// of each version (manifest.json, the .ann, the .ids file and the sidecars) into a local
// cache folder, then load it from there like any version folder (mmap). Each
// file is checked for size and sha256 against the manifest as it arrives; a
// version appears in the cache whole or not at all (src/storage/folder-cache.ts),
// so an interrupted or refused download leaves nothing behind to load. The
// cache is bounded in bytes: versions this node no longer holds go first,
// least recently used first.
import { writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';

import { filesOfShard, type ListedFile, MANIFEST_FILE, MAX_MANIFEST_BYTES, parseManifest } from '../format/manifest';
import { FolderCache } from '../storage/folder-cache';
import { ObjectIntegrityError } from '../storage/object-integrity-error';
import type { ObjectStore } from '../storage/object-store';
import { joinObjectUrl } from '../storage/object-url';

export const DEFAULT_CACHE_MAX_MB = 20 * 1024;

export interface VersionCacheOptions {
  /** Called on first download: a node that never meets an s3:// location never makes an S3 client (nor loads the SDK). */
  readonly store: () => Promise<ObjectStore>;
  /** The cache folder; this node uses `<dir>/shard-<NNNN>/<index>@<version>/`. */
  readonly dir: string;
  readonly maxBytes: number;
  readonly shard: number;
  readonly onEvict?: (entry: string, bytes: number) => void;
  /** A sidecar that could not be downloaded whole and intact; the version is cached, and served, without it. */
  readonly onSidecarSkipped?: (url: string, error: Error) => void;
}

export class VersionCache {
  private readonly cache: FolderCache;

  constructor(private readonly options: VersionCacheOptions) {
    const root = path.join(options.dir, `shard-${String(options.shard).padStart(4, '0')}`);
    this.cache = new FolderCache({ root, maxBytes: options.maxBytes, ...(options.onEvict ? { onEvict: options.onEvict } : {}) });
  }

  /**
   * The local folder holding this node's shard of the version at `url`,
   * downloaded first unless cached. Entries in `inUse` (see `entryName`) are never evicted.
   */
  async fetch(url: string, inUse: ReadonlySet<string>): Promise<string> {
    const { shard } = this.options;
    const store = await this.options.store();
    const manifestUrl = joinObjectUrl(url, MANIFEST_FILE);
    const text = await store.readText(manifestUrl, MAX_MANIFEST_BYTES);
    const manifest = parseManifest(text, manifestUrl);
    const entry = manifest.shards[shard];
    if (entry === undefined) throw new Error(`${url} has ${manifest.shardCount} shards; this node serves shard ${shard}`);
    const files = filesOfShard(entry);
    const bytes = Buffer.byteLength(text) + files.reduce((sum, f) => sum + f.bytes, 0);
    const sidecars = new Set<ListedFile>(entry.sidecars);
    return this.cache.get(entryName(manifest.index, manifest.version), bytes, inUse, async (tempDir) => {
      for (const listed of files) {
        const local = path.join(tempDir, listed.file);
        await mkdir(path.dirname(local), { recursive: true });
        try {
          await store.downloadFile(joinObjectUrl(url, listed.file), local, listed);
        } catch (err) {
          // A sidecar that is gone or whose bytes differ is left out: the shard serves without it (loading
          // finds it missing) and never fails for one. Other errors (the network) fail the download, to be tried again.
          if (!sidecars.has(listed) || !(err instanceof ObjectIntegrityError)) throw err;
          this.options.onSidecarSkipped?.(joinObjectUrl(url, listed.file), err as Error);
        }
      }
      await writeFile(path.join(tempDir, MANIFEST_FILE), text);
    });
  }

  /** Drops a cached version (one that failed to load), so publishing it again downloads it afresh. */
  async forget(index: string, version: string): Promise<void> {
    await this.cache.remove(entryName(index, version));
  }
}

/** A version's entry in the cache; '@' is in no index or version name, so entries never collide. */
export function entryName(index: string, version: string): string {
  return `${index}@${version}`;
}
