// `canopy build`: a file of vectors in, a sharded version folder out (or an
// object-storage prefix: built in a staging folder, then uploaded). The addon
// is imported by the action, the AWS SDK only for an s3:// --out.
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';

import { Option, type Command } from 'commander';
import { nonNegativeInt, positiveInt } from './integer-flags';

import type { Manifest } from '../format/manifest';
import { type BuildOptions, buildVersion, checkBuildOptions, DEFAULT_SEED, DEFAULT_SHARDS, DEFAULT_TREES, GRAPH_METRICS } from '../indexer/builder';
import { objectVersionTaken, uploadVersion } from '../indexer/upload-version';
import { VersionExistsError } from '../indexer/version-folder';
import type { ObjectStore } from '../storage/object-store';
import { isObjectUrl, joinObjectUrl, parseObjectUrl } from '../storage/object-url';
import { addS3Flags, lazyObjectStore, type S3Flags } from './s3-flags';
import { checkArguments } from './usage-error';
import { createProgressReporter } from '../indexer/progress';
import { INPUT_FORMATS, type InputFormat } from '../indexer/readers';
import { DEFAULT_ID_COLUMN, DEFAULT_VECTOR_COLUMN } from '../indexer/readers/parquet-reader';
import type { ForestFactory } from '../indexer/builder';
import { METRICS, type Metric } from '../format/metric';

interface BuildFlags extends S3Flags {
  readonly input: string;
  readonly format: InputFormat;
  readonly metric: Metric;
  readonly out: string;
  readonly trees: number;
  readonly shards: number;
  readonly index?: string;
  readonly version?: string;
  readonly seed: number;
  readonly threads: number;
  readonly dim?: number;
  readonly ids?: string;
  readonly idsFromRow?: boolean;
  readonly idColumn: string;
  readonly vectorColumn: string;
  readonly stagingDir?: string;
  readonly codes: boolean;
  readonly graph?: boolean;
  readonly graphWidth?: number;
}

export function registerBuildCommand(program: Command): void {
  const command = program
    .command('build')
    .description('build a sharded, versioned index folder (<out>/<version>) from a file of vectors')
    .requiredOption('--input <file>', 'the vectors')
    .addOption(new Option('--format <format>', 'input format').choices(INPUT_FORMATS).makeOptionMandatory())
    .addOption(new Option('--metric <metric>', 'distance metric').choices(METRICS).makeOptionMandatory())
    .requiredOption('--out <dir>', 'parent folder of the version folder, or an s3://bucket/prefix to upload it under')
    .option('--trees <n>', 'trees per shard', positiveInt('--trees'), DEFAULT_TREES)
    .option('--shards <n>', 'shards; items are split by a stable hash of their id', positiveInt('--shards'), DEFAULT_SHARDS)
    .option('--index <name>', 'index name (default: the input file name)')
    .option('--version <v>', 'version name (default: the UTC start time, e.g. 20261126T140102Z)')
    .option('--seed <n>', 'random seed of the tree builder, recorded in the manifest', nonNegativeInt('--seed'), DEFAULT_SEED)
    .addOption(new Option('--threads <n>', 'build threads in total').argParser(positiveInt('--threads')).default(availableParallelism(), 'the number of cores'))
    .option('--dim <d>', 'vector length: required for --format ann, checked otherwise', positiveInt('--dim'))
    .option('--ids <file>', 'ids of an input without its own (npy, fvecs, bvecs): one per line, or a .npy array of strings')
    .option('--ids-from-row', 'rows without an id (jsonl, parquet) get their row number instead of being refused')
    .option('--id-column <name>', 'parquet: the id column (strings or integers)', DEFAULT_ID_COLUMN)
    .option('--vector-column <name>', 'parquet: the vector column (list or fixed-size list of float/double)', DEFAULT_VECTOR_COLUMN)
    .option('--no-codes', 'skip the sidecar of compact codes each shard gets by default (searches stay exact)')
    .option('--graph', `build each shard's neighbour graph into a .graph sidecar, searched with --ef (default for ${GRAPH_METRICS.join(', ')})`)
    .option('--no-graph', 'skip the neighbour graph')
    .option('--graph-width <n>', 'neighbours per item of the graph, a multiple of 8 in 16..256 (default: chosen by the build, 16..48)', positiveInt('--graph-width'))
    .option('--staging-dir <dir>', 'with --out s3://...: where the version is built before upload (default: the system temp folder)')
    .action(async (flags: BuildFlags, self: Command) => {
      const { Index } = await import('../engine/engine-index.js');
      const createForest: ForestFactory = (opts) => new Index(opts);
      await checkArguments(self, () => checkBuildOptions(buildOptions(flags, path.resolve(flags.out), createForest)));
      const startedMs = performance.now();
      const store = lazyObjectStore(flags);
      try {
        const { location, manifest } = isObjectUrl(flags.out)
          ? await buildToObjectStore(flags, await store.get(), createForest)
          : await buildLocally(flags, path.resolve(flags.out), createForest);
        report(manifest, startedMs);
        process.stdout.write(`${location}\n`);
      } finally {
        store.close();
      }
    });
  addS3Flags(command);
}

function buildOptions(flags: BuildFlags, outDir: string, createForest: ForestFactory): BuildOptions {
  return {
    input: flags.input,
    format: flags.format,
    metric: flags.metric,
    outDir,
    createForest,
    nTrees: flags.trees,
    shardCount: flags.shards,
    index: flags.index,
    version: flags.version,
    seed: flags.seed,
    threads: flags.threads,
    dim: flags.dim,
    idsFile: flags.ids,
    idsFromRow: flags.idsFromRow,
    idColumn: flags.idColumn,
    vectorColumn: flags.vectorColumn,
    codes: flags.codes,
    graph: flags.graph,
    graphWidth: flags.graphWidth,
    progress: createProgressReporter(process.stderr, { tty: process.stderr.isTTY === true }),
  };
}

async function buildLocally(flags: BuildFlags, outDir: string, createForest: ForestFactory): Promise<{ location: string; manifest: Manifest }> {
  const { dir, manifest } = await buildVersion(buildOptions(flags, outDir, createForest));
  return { location: dir, manifest };
}

/** Builds in a staging folder, uploads, and removes the staging folder whatever happens. */
async function buildToObjectStore(flags: BuildFlags, store: ObjectStore, createForest: ForestFactory): Promise<{ location: string; manifest: Manifest }> {
  parseObjectUrl(flags.out);
  if (flags.version !== undefined && (await objectVersionTaken(store, flags.out, flags.version))) {
    throw new VersionExistsError(`${joinObjectUrl(flags.out, flags.version)} exists already; versions are never overwritten (pick another --version)`);
  }
  const staging = await mkdtemp(path.join(flags.stagingDir ?? tmpdir(), 'canopy-build-'));
  try {
    const { dir, manifest } = await buildVersion({ ...buildOptions(flags, staging, createForest), versionTaken: (version) => objectVersionTaken(store, flags.out, version) });
    process.stderr.write(`canopy build: uploading ${manifest.index}/${manifest.version} to ${joinObjectUrl(flags.out, manifest.version)}\n`);
    return { location: await uploadVersion(store, dir, manifest, flags.out), manifest };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

function report(manifest: Manifest, startedMs: number): void {
  const items = manifest.shards.reduce((sum, s) => sum + s.items, 0);
  const seconds = (performance.now() - startedMs) / 1_000;
  process.stderr.write(
    `canopy build: ${manifest.index}/${manifest.version}: ${items} items, dim ${manifest.dim}, ${manifest.shardCount} shards x ${manifest.nTrees} trees ` +
      `in ${seconds.toFixed(1)} s (${Math.round(items / seconds)} items/s)\n`,
  );
}
