// The manifest is the header Annoy's file lacks: it says what metric and
// dimension each `.ann` file was built with, which ids it holds, and how to
// check that the bytes on disk are the bytes that were built.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';

import type { Metric } from './metric';
import { METRICS } from './metric';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT_VERSION = 1;
/** A manifest is a few hundred bytes per shard; a file far larger than this is not one (checked before reading it whole). */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

export interface ShardEntry {
  /** 0-based shard number; equals the entry's position in `shards`. */
  readonly shard: number;
  /** Annoy-format forest, relative to the version folder. */
  readonly file: string;
  /** External ids, one UTF-8 id per line, line n = item n. Relative to the version folder. */
  readonly idsFile: string;
  readonly items: number;
  readonly fileBytes: number;
  readonly fileSha256: string;
  readonly idsBytes: number;
  readonly idsSha256: string;
  readonly buildSeconds: number;
  /**
   * Files derived from `file` that make its searches cheaper (docs/sidecar-format.md), at most one of
   * each kind. Absent in manifests written before sidecars existed: such a shard searches exactly.
   */
  readonly sidecars?: readonly SidecarEntry[];
}

/** `codes`: compact codes and splits (`.codes`); `graph`: a neighbour graph over the items (`.graph`). */
export const SIDECAR_KINDS = ['codes', 'graph'] as const;
export type SidecarKind = (typeof SIDECAR_KINDS)[number];

export interface SidecarEntry {
  readonly kind: SidecarKind;
  /** Relative to the version folder, like `file`. */
  readonly file: string;
  readonly bytes: number;
  readonly sha256: string;
}

/** A sidecar's file name: the forest's with its extension replaced by the kind (`shard-0003.ann` -> `shard-0003.codes`). */
export function sidecarFileOf(forestFile: string, kind: SidecarKind): string {
  return forestFile.replace(/\.ann$/, '') + `.${kind}`;
}

export interface Manifest {
  readonly formatVersion: number;
  readonly index: string;
  readonly version: string;
  readonly metric: Metric;
  readonly dim: number;
  readonly nTrees: number;
  readonly seed: number;
  /** How ids map to shards: see `src/format/partition.ts`. */
  readonly partitioner: string;
  readonly shardCount: number;
  readonly createdAt: string;
  readonly shards: readonly ShardEntry[];
}

/** A manifest that failed to parse or validate; the message names the field and the file. */
export class ManifestError extends Error {
  override readonly name = 'ManifestError';
}

const SHA256_PATTERN = /^[0-9a-f]{64}$/;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Index and version names end up in file names and etcd keys: keep them plain. */
export function checkName(kind: string, value: unknown): string {
  if (typeof value !== 'string' || !NAME_PATTERN.test(value)) {
    throw new ManifestError(
      `${kind} must be 1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit; got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** Parses and validates manifest JSON text. `source` names the file in error messages. */
export function parseManifest(text: string, source: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ManifestError(`${source}: not valid JSON (${(err as Error).message})`);
  }
  const fail = (msg: string): never => {
    throw new ManifestError(`${source}: ${msg}`);
  };
  if (typeof raw !== 'object' || raw === null) fail('must be a JSON object');
  const m = raw as Record<string, unknown>;
  if (m.formatVersion !== MANIFEST_FORMAT_VERSION) {
    fail(`formatVersion ${JSON.stringify(m.formatVersion)} is not supported (expected ${MANIFEST_FORMAT_VERSION})`);
  }
  try {
    checkName('index', m.index);
    checkName('version', m.version);
  } catch (err) {
    fail((err as Error).message);
  }
  if (!METRICS.includes(m.metric as Metric)) fail(`metric must be one of ${METRICS.join(', ')}`);
  const positiveInt = (name: string, v: unknown): number =>
    Number.isSafeInteger(v) && (v as number) > 0 ? (v as number) : fail(`${name} must be a positive integer`);
  const nonNegativeInt = (name: string, v: unknown): number =>
    Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : fail(`${name} must be a non-negative integer`);
  positiveInt('dim', m.dim);
  nonNegativeInt('nTrees', m.nTrees);
  nonNegativeInt('seed', m.seed);
  const shardCount = positiveInt('shardCount', m.shardCount);
  if (typeof m.partitioner !== 'string') fail('partitioner must be a string');
  if (typeof m.createdAt !== 'string') fail('createdAt must be a string');
  if (!Array.isArray(m.shards) || m.shards.length !== shardCount) {
    fail(`shards must be an array of shardCount (${shardCount}) entries`);
  }
  (m.shards as unknown[]).forEach((entry, i) => {
    const s = entry as Record<string, unknown>;
    const where = `shards[${i}]`;
    if (typeof s !== 'object' || s === null) fail(`${where} must be an object`);
    if (s.shard !== i) fail(`${where}.shard must be ${i}`);
    for (const key of ['file', 'idsFile'] as const) checkRelativePath(`${where}.${key}`, s[key], fail);
    nonNegativeInt(`${where}.items`, s.items);
    positiveInt(`${where}.fileBytes`, s.fileBytes);
    nonNegativeInt(`${where}.idsBytes`, s.idsBytes);
    for (const key of ['fileSha256', 'idsSha256'] as const) {
      if (typeof s[key] !== 'string' || !SHA256_PATTERN.test(s[key] as string)) fail(`${where}.${key} must be a hex sha256`);
    }
    if (typeof s.buildSeconds !== 'number' || !(s.buildSeconds >= 0)) fail(`${where}.buildSeconds must be a number >= 0`);
    if (s.sidecars !== undefined) checkSidecars(`${where}.sidecars`, s.sidecars, fail);
  });
  return m as unknown as Manifest;
}

function checkSidecars(where: string, value: unknown, fail: (msg: string) => never): void {
  if (!Array.isArray(value)) fail(`${where} must be an array`);
  const seen = new Set<unknown>();
  (value as unknown[]).forEach((entry, i) => {
    const s = entry as Record<string, unknown>;
    const at = `${where}[${i}]`;
    if (typeof s !== 'object' || s === null) fail(`${at} must be an object`);
    if (!SIDECAR_KINDS.includes(s.kind as SidecarKind)) fail(`${at}.kind must be one of ${SIDECAR_KINDS.join(', ')}`);
    if (seen.has(s.kind)) fail(`${at}.kind ${JSON.stringify(s.kind)} appears twice`);
    seen.add(s.kind);
    checkRelativePath(`${at}.file`, s.file, fail);
    if (!Number.isSafeInteger(s.bytes) || (s.bytes as number) <= 0) fail(`${at}.bytes must be a positive integer`);
    if (typeof s.sha256 !== 'string' || !SHA256_PATTERN.test(s.sha256)) fail(`${at}.sha256 must be a hex sha256`);
  });
}

/** A manifest path must name a plain file inside the version folder: no absolute paths, no `..`. */
function checkRelativePath(field: string, value: unknown, fail: (msg: string) => never): void {
  if (typeof value !== 'string' || value.length === 0) fail(`${field} must be a non-empty string`);
  const p = value as string;
  if (path.isAbsolute(p) || p.includes('\\') || p.split('/').some((part) => part === '..' || part === '' || part === '.')) {
    fail(`${field} ${JSON.stringify(p)} must be a relative path inside the version folder`);
  }
}

/** Reads and validates `<dir>/manifest.json`. */
export async function readManifest(dir: string): Promise<Manifest> {
  const file = path.join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ManifestError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseManifest(text, file);
}

/**
 * Resolves a manifest-relative path to an absolute one, refusing symlinks that
 * lead outside the version folder.
 */
export async function resolveInside(dir: string, relative: string): Promise<string> {
  const root = await realpath(dir);
  const joined = path.join(root, relative);
  let real: string;
  try {
    real = await realpath(joined);
  } catch (err) {
    throw new ManifestError(`${joined}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (real !== root && !real.startsWith(root + path.sep)) {
    throw new ManifestError(`${relative} resolves to ${real}, outside the version folder ${root}`);
  }
  if (!(await lstat(real)).isFile()) throw new ManifestError(`${real} is not a regular file`);
  return real;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface VerifiedShard {
  readonly entry: ShardEntry;
  /** Absolute paths, checked to lie inside the version folder. */
  readonly file: string;
  readonly idsFile: string;
}

/**
 * Checks one shard's files against the manifest: inside the folder, sizes,
 * and (unless `checksums` is false) sha256. Throws ManifestError naming the
 * file and what differs.
 */
export async function verifyShard(dir: string, manifest: Manifest, shard: number, checksums = true): Promise<VerifiedShard> {
  const entry = manifest.shards[shard];
  if (entry === undefined) {
    throw new ManifestError(`shard ${shard} is not in ${manifest.index}/${manifest.version} (it has ${manifest.shardCount} shards)`);
  }
  const file = await verifyFile(dir, { file: entry.file, bytes: entry.fileBytes, sha256: entry.fileSha256 }, checksums);
  const idsFile = await verifyFile(dir, { file: entry.idsFile, bytes: entry.idsBytes, sha256: entry.idsSha256 }, checksums);
  return { entry, file, idsFile };
}

/** One file the manifest lists, as it lists it. */
export interface ListedFile {
  readonly file: string;
  readonly bytes: number;
  readonly sha256: string;
}

/** Every file of a shard: forest, ids, then its sidecars. */
export function filesOfShard(entry: ShardEntry): ListedFile[] {
  return [
    { file: entry.file, bytes: entry.fileBytes, sha256: entry.fileSha256 },
    { file: entry.idsFile, bytes: entry.idsBytes, sha256: entry.idsSha256 },
    ...(entry.sidecars ?? []),
  ];
}

/** Whether two shard entries list the same bytes (forest, ids and sidecars, by sha256). */
export function sameShardFiles(a: ShardEntry | undefined, b: ShardEntry | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  const fingerprint = (entry: ShardEntry): string => filesOfShard(entry).map((f) => `${f.file}:${f.sha256}`).join(',');
  return fingerprint(a) === fingerprint(b);
}

/**
 * Checks one listed file: inside the folder, its size, and (unless `checksums`
 * is false) its sha256. Returns its absolute path; throws ManifestError naming
 * the file and what differs.
 */
export async function verifyFile(dir: string, listed: ListedFile, checksums = true): Promise<string> {
  const p = await resolveInside(dir, listed.file);
  const size = (await stat(p)).size;
  if (size !== listed.bytes) throw new ManifestError(`${p}: size is ${size} bytes, manifest says ${listed.bytes}`);
  if (checksums) {
    const actual = await sha256File(p);
    if (actual !== listed.sha256) throw new ManifestError(`${p}: sha256 is ${actual}, manifest says ${listed.sha256}`);
  }
  return p;
}
