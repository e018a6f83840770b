// A published version's files where they live: a local folder (a path every
// shard node can read) or an object-storage prefix (`s3://bucket/prefix/v`).
// Publish reads the manifest and ids through this; shard nodes fetch whole
// files from object storage into their cache instead (src/shard/version-cache.ts).
import { createReadStream } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { createInterface } from 'node:readline';

import {
  filesOfShard,
  MANIFEST_FILE,
  MAX_MANIFEST_BYTES,
  type Manifest,
  ManifestError,
  parseManifest,
  readManifest,
  resolveInside,
  verifyFile,
} from '../format/manifest';
import type { ObjectStore } from '../storage/object-store';
import { isObjectUrl, joinObjectUrl } from '../storage/object-url';

export interface VersionSource {
  /** As shard nodes see it: an absolute folder path or an s3:// URL. */
  readonly location: string;
  readManifest(): Promise<Manifest>;
  /**
   * Checks every shard's files (sidecars included) against the manifest: a folder's sizes and
   * sha256; an object prefix's sizes (each shard node checks sha256 as it
   * downloads, and refuses a version whose bytes differ).
   */
  verify(manifest: Manifest): Promise<void>;
  /** The lines of a manifest-relative text file (an `.ids` file), streamed. */
  lines(relative: string): AsyncIterable<string>;
}

/** `location` is a folder path (made absolute) or an s3:// URL; `store` is asked for the latter only. */
export function versionSource(location: string, store: () => Promise<ObjectStore>): VersionSource {
  return isObjectUrl(location) ? objectSource(location, store) : folderSource(path.resolve(location));
}

function folderSource(dir: string): VersionSource {
  return {
    location: dir,
    readManifest: () => readManifest(dir),
    async verify(manifest) {
      for (const entry of manifest.shards) for (const listed of filesOfShard(entry)) await verifyFile(dir, listed);
    },
    async *lines(relative) {
      yield* linesOf(createReadStream(await resolveInside(dir, relative)));
    },
  };
}

function objectSource(prefix: string, store: () => Promise<ObjectStore>): VersionSource {
  return {
    location: prefix.replace(/\/+$/, ''),
    async readManifest() {
      const url = joinObjectUrl(prefix, MANIFEST_FILE);
      return parseManifest(await (await store()).readText(url, MAX_MANIFEST_BYTES), url);
    },
    async verify(manifest) {
      for (const entry of manifest.shards) {
        for (const { file, bytes } of filesOfShard(entry)) {
          const url = joinObjectUrl(prefix, file);
          const size = await (await store()).sizeOf(url);
          if (size === undefined) throw new ManifestError(`${url} does not exist`);
          if (size !== bytes) throw new ManifestError(`${url}: size is ${size} bytes, manifest says ${bytes}`);
        }
      }
    },
    async *lines(relative) {
      yield* linesOf(await (await store()).openRead(joinObjectUrl(prefix, relative)));
    },
  };
}

async function* linesOf(stream: Readable): AsyncIterable<string> {
  try {
    for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) yield line;
  } finally {
    stream.destroy();
  }
}
