// `canopy build`: stream a file of vectors into S Annoy forests (one per shard,
// items assigned by the partitioner), build the shards' trees in parallel, and
// write one immutable version folder with its manifest.
//
// Memory stays bounded by the shape of the work: rows stream through in
// batches and go straight into the engine, whose forests are built on disk
// (mmap'd files in the temporary version folder, so the page cache, not the
// heap, holds them); JS keeps only the ids.
import { availableParallelism } from 'node:os';
import { statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';

import type { Metric } from '../format/metric';
import { syncPath, writeNewFile } from './durable-files';
import { idProblem, writeIdsFile } from '../format/ids-file';
import { InputError } from './input-error';
import {
  checkName,
  MANIFEST_FILE,
  MANIFEST_FORMAT_VERSION,
  parseManifest,
  sha256File,
  sidecarFileOf,
  type Manifest,
  type ShardEntry,
  type SidecarEntry,
  type SidecarKind,
} from '../format/manifest';
import { PARTITIONER, shardOfId } from '../format/partition';
import type { ProgressReporter, ProgressSnapshot, ShardProgress } from './progress';
import { FORMATS_WITH_IDS, openReader, type InputFormat, type ReaderOptions, type Row, type VectorReader } from './readers';
import { readIdsList, withIdsList } from './readers/ids-list';
import { pathExists, writeVersionFolder } from './version-folder';

/** What the builder needs from the engine's `Index` (which satisfies it). */
export interface BuildableForest {
  /** Before any addItem: the forest's nodes live in `file` (mmap'd) while it is built. */
  onDiskBuild(file: string): void;
  addItem(item: number, vector: Float32Array): void;
  build(opts: { nTrees: number; threads: number }): Promise<void>;
  /** Trees finished so far, readable while build() runs. */
  readonly treesBuilt: number;
  /** After build: writes the sidecar of compact codes (docs/sidecar-format.md). */
  saveCodes(file: string): void;
  /** After build: builds the neighbour graph, then saveGraph writes it to its own sidecar. */
  buildGraph(opts: { threads: number; width?: number }): Promise<void>;
  saveGraph(file: string): void;
  unload(): void;
}

export type ForestFactory = (opts: { dim: number; metric: Metric; seed: number }) => BuildableForest;

export const DEFAULT_TREES = 50;
export const DEFAULT_SHARDS = 1;
export const DEFAULT_SEED = 42;
/** Metrics the engine builds a neighbour graph for (its pruning needs the triangle inequality). */
export const GRAPH_METRICS: readonly Metric[] = ['angular', 'euclidean', 'manhattan'];
/** Graph rows are whole 32-byte halves of a line, 8 ids each, 16 to 256 ids (native/src/graph.h). */
const GRAPH_WIDTH_STEP = 8;
const MIN_GRAPH_WIDTH = 16;
const MAX_GRAPH_WIDTH = 256;
const PROGRESS_POLL_MS = 200;

export interface BuildOptions {
  readonly input: string;
  readonly format: InputFormat;
  readonly metric: Metric;
  /** Parent folder: the version is written to `<outDir>/<version>`. */
  readonly outDir: string;
  readonly createForest: ForestFactory;
  readonly nTrees?: number;
  readonly shardCount?: number;
  /** Default: the input file's base name, sanitised. */
  readonly index?: string;
  /**
   * Default: the UTC start time, like 20261126T140102Z, with a suffix (-2,
   * -3, ...) when `versionTaken` says that name is taken.
   */
  readonly version?: string;
  /** Whether a default version name is taken already. Default: a folder of that name exists in `outDir`. */
  readonly versionTaken?: (version: string) => Promise<boolean>;
  readonly seed?: number;
  /** Engine threads in total, shared among shards built at once. Default: the number of cores. */
  readonly threads?: number;
  /** Required for `.ann` input; checked against the file otherwise. */
  readonly dim?: number;
  /** `--ids`: ids of an input without its own (.npy, .fvecs, .bvecs), in row order. */
  readonly idsFile?: string;
  /** How readers find ids and vectors: `--ids-from-row`, Parquet's column names. */
  readonly idsFromRow?: boolean;
  readonly idColumn?: string;
  readonly vectorColumn?: string;
  readonly progress?: ProgressReporter;
  /** Write each shard's sidecar of compact codes; default true. Hamming has no codes: never written for it. */
  readonly codes?: boolean;
  /**
   * Build each shard's neighbour graph into a `.graph` sidecar (searched with `ef`); default true for
   * the metrics that have one (angular, euclidean, manhattan); true with another metric is refused.
   */
  readonly graph?: boolean;
  /** With `graph`: neighbours per item, a multiple of 8 in 16..256; default: chosen by the build (16..48). */
  readonly graphWidth?: number;
}

interface ResolvedBuild {
  readonly input: string;
  readonly format: InputFormat;
  readonly metric: Metric;
  readonly outDir: string;
  readonly createForest: ForestFactory;
  readonly nTrees: number;
  readonly shardCount: number;
  readonly index: string;
  readonly version: string;
  readonly seed: number;
  readonly threads: number;
  readonly dim: number | undefined;
  readonly idsFile: string | undefined;
  readonly readerOptions: Pick<ReaderOptions, 'idsFromRow' | 'idColumn' | 'vectorColumn'>;
  readonly progress: ProgressReporter | undefined;
  readonly sidecars: readonly SidecarKind[];
  readonly graphWidth: number | undefined;
  readonly startedAt: Date;
}

export interface BuildResult {
  /** The version folder. */
  readonly dir: string;
  readonly manifest: Manifest;
}

export async function buildVersion(options: BuildOptions): Promise<BuildResult> {
  const resolved = resolve(options);
  const build = options.version === undefined ? { ...resolved, version: await freeVersionName(resolved.version, options) } : resolved;
  let manifest: Manifest | undefined;
  const dir = await writeVersionFolder(build.outDir, build.version, async (tempDir) => {
    manifest = await buildInto(tempDir, build);
  });
  return { dir, manifest: manifest! };
}

/**
 * What a build can tell is wrong before reading a row: bad numbers or names,
 * flags that do not go together, input files that are not there. Throws
 * naming the option; `canopy build` reports it as a usage error.
 */
export function checkBuildOptions(options: BuildOptions): void {
  resolve(options);
  if (options.format === 'ann' && options.dim === undefined) throw new RangeError('--format ann needs --dim: an Annoy file has no header');
  requireFile('--input', options.input);
  if (options.idsFile !== undefined) requireFile('--ids', options.idsFile);
}

function requireFile(flag: string, file: string): void {
  const kind = statSync(file, { throwIfNoEntry: false });
  if (kind === undefined) throw new RangeError(`${flag} ${file}: no such file`);
  if (!kind.isFile()) throw new RangeError(`${flag} ${file}: not a file`);
}

function resolve(options: BuildOptions): ResolvedBuild {
  const startedAt = new Date();
  const positive = (name: string, value: number): number => {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
    return value;
  };
  const seed = options.seed ?? DEFAULT_SEED;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
  return {
    input: options.input,
    format: options.format,
    metric: options.metric,
    outDir: options.outDir,
    createForest: options.createForest,
    nTrees: positive('trees', options.nTrees ?? DEFAULT_TREES),
    shardCount: positive('shards', options.shardCount ?? DEFAULT_SHARDS),
    index: checkName('index', options.index ?? indexNameOf(options.input)),
    version: checkName('version', options.version ?? versionStampOf(startedAt)),
    seed,
    threads: positive('threads', options.threads ?? availableParallelism()),
    dim: options.dim === undefined ? undefined : positive('dim', options.dim),
    idsFile: idsFileFor(options),
    readerOptions: { idsFromRow: options.idsFromRow, idColumn: options.idColumn, vectorColumn: options.vectorColumn },
    progress: options.progress,
    sidecars: sidecarsFor(options),
    graphWidth: graphWidthOf(options),
    startedAt,
  };
}

/** The sidecar kinds each shard gets, in manifest order. */
function sidecarsFor(options: BuildOptions): SidecarKind[] {
  if (options.graph === true && !GRAPH_METRICS.includes(options.metric)) {
    throw new RangeError(`--graph needs a metric with a true distance (${GRAPH_METRICS.join(', ')}); ${options.metric} has none`);
  }
  const codes = (options.codes ?? true) && options.metric !== 'hamming';
  return [...(codes ? (['codes'] as const) : []), ...(graphBuilt(options) ? (['graph'] as const) : [])];
}

/** A graph unless turned off, for the metrics that have one. */
function graphBuilt(options: BuildOptions): boolean {
  return options.graph ?? GRAPH_METRICS.includes(options.metric);
}

/** An asked graph width, checked before any shard is built (the engine would refuse it after). */
function graphWidthOf(options: BuildOptions): number | undefined {
  const width = options.graphWidth;
  if (width === undefined) return undefined;
  if (!graphBuilt(options)) throw new RangeError('--graph-width needs a graph (not --no-graph; angular, euclidean or manhattan)');
  if (!Number.isInteger(width) || width < MIN_GRAPH_WIDTH || width > MAX_GRAPH_WIDTH || width % GRAPH_WIDTH_STEP !== 0) {
    throw new RangeError(`--graph-width must be a multiple of ${GRAPH_WIDTH_STEP} in ${MIN_GRAPH_WIDTH}..${MAX_GRAPH_WIDTH}, got ${width}`);
  }
  return width;
}

/** `--ids` gives ids to formats that have none; a format with ids of its own refuses it. */
function idsFileFor(options: BuildOptions): string | undefined {
  if (options.idsFile !== undefined && FORMATS_WITH_IDS.includes(options.format)) {
    throw new RangeError(`--ids is for inputs without ids of their own; ${options.format} rows carry their ids`);
  }
  return options.idsFile;
}

/** The input's base name without extension, reduced to the characters a name allows. */
export function indexNameOf(input: string): string {
  const base = path.basename(input).replace(/\.[^.]*$/, '');
  const cleaned = base
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .slice(0, 128)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  return cleaned.length > 0 ? cleaned : 'index';
}

/** `stamp`, or the first of `stamp-2`, `stamp-3`, ... not taken: builds started in the same second get distinct names. */
async function freeVersionName(stamp: string, options: BuildOptions): Promise<string> {
  const taken = options.versionTaken ?? ((version: string) => pathExists(path.join(options.outDir, version)));
  let name = stamp;
  for (let n = 2; await taken(name); n++) name = `${stamp}-${n}`;
  return name;
}

/** 2026-11-26T14:01:02.345Z -> 20261126T140102Z */
export function versionStampOf(time: Date): string {
  return time.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

const shardFileOf = (shard: number): string => `shard-${String(shard).padStart(4, '0')}.ann`;
const idsFileOf = (shard: number): string => `shard-${String(shard).padStart(4, '0')}.ids`;

/** One shard while it is being built. */
interface ShardWork {
  readonly shard: number;
  readonly forest: BuildableForest;
  /** External id of item n at position n. */
  readonly ids: string[];
  state: ShardProgress['state'];
  treesBuilt: number;
  buildSeconds: number;
}

async function buildInto(tempDir: string, build: ResolvedBuild): Promise<Manifest> {
  const opened: BuildableForest[] = [];
  try {
    return await readAndBuild(tempDir, build, opened);
  } catch (err) {
    // Release the mappings of forests that never finished; the folder goes next.
    for (const forest of opened) forest.unload();
    throw err;
  }
}

async function readAndBuild(tempDir: string, build: ResolvedBuild, opened: BuildableForest[]): Promise<Manifest> {
  const reader = await openInput(build);
  let shards: ShardWork[];
  let dim: number;
  try {
    ({ shards, dim } = await readShards(reader, tempDir, build, opened));
  } finally {
    await reader.close();
  }
  // Ids go to disk now so the heap can let go of them before the long part.
  await Promise.all(shards.map((work, shard) => writeIdsFile(path.join(tempDir, idsFileOf(shard)), work.ids)));
  const itemCounts = shards.map((work) => work.ids.length);
  shards.forEach((work) => (work.ids.length = 0));

  const snapshot = (): ProgressSnapshot => ({
    rowsRead: itemCounts.reduce((a, b) => a + b, 0),
    rowsTotal: undefined,
    bytesRead: reader.totalBytes,
    bytesTotal: reader.totalBytes,
    readingDone: true,
    shards: shards.map((work, shard) => ({ items: itemCounts[shard]!, treesBuilt: work.treesBuilt, treesTotal: build.nTrees, state: work.state })),
  });
  await buildShards(tempDir, shards, build, () => build.progress?.update(snapshot()));
  build.progress?.finish(snapshot());

  const entries: ShardEntry[] = [];
  for (const [shard, work] of shards.entries()) {
    entries.push(await describeShard(tempDir, shard, itemCounts[shard]!, work.buildSeconds, build.sidecars));
  }
  const manifest: Manifest = {
    formatVersion: MANIFEST_FORMAT_VERSION,
    index: build.index,
    version: build.version,
    metric: build.metric,
    dim,
    nTrees: build.nTrees,
    seed: build.seed,
    partitioner: PARTITIONER,
    shardCount: build.shardCount,
    createdAt: build.startedAt.toISOString(),
    shards: entries,
  };
  const file = path.join(tempDir, MANIFEST_FILE);
  const text = JSON.stringify(manifest, null, 2) + '\n';
  // What we write must be what every reader accepts.
  parseManifest(text, file);
  await writeNewFile(file, text);
  return manifest;
}

async function readIdsFile(file: string): Promise<string[]> {
  try {
    return await readIdsList(file);
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError({ file }, `cannot read the --ids file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

async function openInput(build: ResolvedBuild): Promise<VectorReader> {
  const ids = build.idsFile === undefined ? undefined : await readIdsFile(build.idsFile);
  const reader = await openReader(build.format, build.input, { dim: build.dim, metric: build.metric, ...build.readerOptions });
  if (ids === undefined) return reader;
  try {
    return withIdsList(reader, ids, build.idsFile!);
  } catch (err) {
    await reader.close();
    throw err;
  }
}

/** Streams every row into its shard's forest; returns the shards and the dimension. */
async function readShards(
  reader: VectorReader,
  tempDir: string,
  build: ResolvedBuild,
  opened: BuildableForest[],
): Promise<{ shards: ShardWork[]; dim: number }> {
  const file = build.input;
  if (build.dim !== undefined && reader.dim !== undefined && build.dim !== reader.dim) {
    throw new InputError({ file }, `the file's vectors have dim ${reader.dim}, --dim says ${build.dim}`);
  }
  let dim = build.dim ?? reader.dim;
  let shards: ShardWork[] | undefined;
  const rowOfId = new Map<string, number>();
  let rowsRead = 0;
  const snapshot = (): ProgressSnapshot => ({
    rowsRead,
    rowsTotal: reader.rowCount,
    bytesRead: reader.bytesRead,
    bytesTotal: reader.totalBytes,
    readingDone: false,
    shards: (shards ?? []).map((work) => ({ items: work.ids.length, treesBuilt: 0, treesTotal: build.nTrees, state: work.state })),
  });

  for await (const batch of reader.batches()) {
    for (const row of batch) {
      dim ??= row.vector.length;
      const id = checkRow(row, file, dim, rowOfId);
      shards ??= openShards(tempDir, build, dim, opened);
      const work = shards[shardOfId(id, build.shardCount)]!;
      work.forest.addItem(work.ids.length, row.vector);
      work.ids.push(id);
      rowsRead++;
    }
    build.progress?.update(snapshot());
  }
  if (shards === undefined || dim === undefined) throw new InputError({ file }, 'the input holds no rows');
  const empty = shards.findIndex((work) => work.ids.length === 0);
  if (empty !== -1) {
    throw new InputError({ file }, `shard ${empty} would hold no items (${rowsRead} items over ${build.shardCount} shards): use fewer --shards`);
  }
  return { shards, dim };
}

/** Checks what every format shares; returns the row's id. Records the id to catch duplicates. */
function checkRow(row: Row, file: string, dim: number, rowOfId: Map<string, number>): string {
  const where = { file, row: row.row, ...(row.line === undefined ? {} : { line: row.line }) };
  const id = row.id ?? String(row.row);
  const problem = idProblem(id);
  if (problem !== undefined) throw new InputError(where, problem);
  const earlier = rowOfId.get(id);
  if (earlier !== undefined) throw new InputError(where, `duplicate id ${JSON.stringify(id)} (first seen at row ${earlier})`);
  rowOfId.set(id, row.row);
  if (row.vector.length !== dim) throw new InputError(where, `vector has ${row.vector.length} values, expected ${dim}`);
  for (let i = 0; i < dim; i++) {
    const value = row.vector[i]!;
    if (!Number.isFinite(value)) {
      throw new InputError(where, `value ${i} is ${value}: every value must be finite (and within float32 range)`);
    }
  }
  return id;
}

function openShards(tempDir: string, build: ResolvedBuild, dim: number, opened: BuildableForest[]): ShardWork[] {
  return Array.from({ length: build.shardCount }, (_, shard) => {
    const forest = build.createForest({ dim, metric: build.metric, seed: build.seed });
    opened.push(forest);
    forest.onDiskBuild(path.join(tempDir, shardFileOf(shard)));
    return { shard, forest, ids: [], state: 'waiting', treesBuilt: 0, buildSeconds: 0 };
  });
}

/**
 * Builds up to `threads` shards at once, splitting the threads evenly among
 * them: one shard gets them all; S >= threads shards get one each.
 */
async function buildShards(tempDir: string, shards: ShardWork[], build: ResolvedBuild, onProgress: () => void): Promise<void> {
  const concurrent = Math.min(shards.length, build.threads);
  const threadsPerShard = Math.max(1, Math.floor(build.threads / concurrent));
  const poll = setInterval(() => {
    for (const work of shards) if (work.state === 'building') work.treesBuilt = work.forest.treesBuilt;
    onProgress();
  }, PROGRESS_POLL_MS);
  poll.unref();
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < shards.length) {
      const work = shards[next++]!;
      const startedMs = performance.now();
      work.state = 'building';
      try {
        await work.forest.build({ nTrees: build.nTrees, threads: threadsPerShard });
      } catch (err) {
        failed = true;
        throw err;
      }
      await writeSidecars(work.forest, path.join(tempDir, shardFileOf(work.shard)), build, threadsPerShard);
      work.forest.unload();
      work.buildSeconds = (performance.now() - startedMs) / 1_000;
      work.treesBuilt = build.nTrees;
      work.state = 'done';
      onProgress();
    }
  };
  try {
    // Settle every build in flight before reporting a failure: a forest cannot be unloaded while it builds.
    const outcomes = await Promise.allSettled(Array.from({ length: concurrent }, worker));
    const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failure !== undefined) throw failure.reason;
  } finally {
    clearInterval(poll);
  }
}

/** Writes a built forest's sidecars beside its file (`forestFile`): the codes at once, the graph on `threads` native threads. */
async function writeSidecars(forest: BuildableForest, forestFile: string, build: ResolvedBuild, threads: number): Promise<void> {
  for (const kind of build.sidecars) {
    const file = sidecarFileOf(forestFile, kind);
    if (kind === 'codes') {
      forest.saveCodes(file);
    } else {
      await forest.buildGraph({ threads, width: build.graphWidth });
      forest.saveGraph(file);
    }
  }
}

async function describeShard(dir: string, shard: number, items: number, buildSeconds: number, kinds: readonly SidecarKind[]): Promise<ShardEntry> {
  const file = shardFileOf(shard);
  const idsFile = idsFileOf(shard);
  // The engine wrote the forest through a mapping: make it durable before the folder is renamed into place.
  await syncPath(path.join(dir, file));
  const [fileBytes, fileSha256, idsBytes, idsSha256] = await Promise.all([
    stat(path.join(dir, file)).then((s) => s.size),
    sha256File(path.join(dir, file)),
    stat(path.join(dir, idsFile)).then((s) => s.size),
    sha256File(path.join(dir, idsFile)),
  ]);
  const sidecars = await Promise.all(kinds.map((kind) => describeSidecar(dir, sidecarFileOf(file, kind), kind)));
  return {
    shard,
    file,
    idsFile,
    items,
    fileBytes,
    fileSha256,
    idsBytes,
    idsSha256,
    buildSeconds: Math.round(buildSeconds * 1_000) / 1_000,
    ...(sidecars.length > 0 ? { sidecars } : {}),
  };
}

/** A sidecar's manifest entry, once it is durable on disk. */
async function describeSidecar(dir: string, file: string, kind: SidecarKind): Promise<SidecarEntry> {
  const full = path.join(dir, file);
  await syncPath(full);
  const [bytes, sha256] = await Promise.all([stat(full).then((s) => s.size), sha256File(full)]);
  return { kind, file, bytes, sha256 };
}
