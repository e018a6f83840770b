// `canopy publish`: make a built version (a folder, or an s3:// prefix) the
// cluster's target, unless it would break serving; with --wait, follow it until
// it is active, failed on a node, or the deadline passes. etcd3 is loaded when
// the action dials etcd, the AWS SDK only for a version in object storage.
import os from 'node:os';

import { InvalidArgumentError, type Command } from 'commander';

import { type ClusterSnapshot, ClusterView, readCluster } from '../registry/cluster-view';
import { type ActiveVersion, DEFAULT_MAX_ITEM_DROP, DEFAULT_MIN_ID_OVERLAP, publishRefusals } from '../registry/publish-checks';
import { type PublishOutcome, waitForOutcome } from '../registry/publish-wait';
import { publishVersion } from '../registry/versions';
import { versionSource } from '../registry/version-source';
import type { ObjectStore } from '../storage/object-store';
import { addEtcdFlags, type EtcdFlags, withRegistry } from './etcd-flags';
import { addS3Flags, lazyObjectStore, type S3Flags } from './s3-flags';

interface PublishFlags extends EtcdFlags, S3Flags {
  readonly manifest: string;
  readonly index?: string;
  readonly version?: string;
  readonly force?: boolean;
  readonly forcedBy: string;
  readonly maxItemDrop: number;
  readonly minIdOverlap: number;
  readonly wait?: boolean;
  readonly timeout: number;
}

/** Exit status of `--wait` when the version failed on a node or was replaced as the target. */
export const EXIT_FAILED = 1;
/** Exit status of `--wait` when the deadline passed first. */
export const EXIT_TIMED_OUT = 2;
const DEFAULT_WAIT_TIMEOUT_SECONDS = 600;

type StoreOf = () => Promise<ObjectStore>;

function fraction(text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !(value >= 0 && value <= 1)) throw new InvalidArgumentError(`expected a fraction from 0 to 1, got ${JSON.stringify(text)}`);
  return value;
}

function seconds(text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !(value > 0)) throw new InvalidArgumentError(`expected seconds > 0, got ${JSON.stringify(text)}`);
  return value;
}

export function registerPublishCommand(program: Command): void {
  addS3Flags(
    addEtcdFlags(
      program
        .command('publish')
        .description('check a built version and set it as the target of its index; shard nodes load it, then it becomes active')
        .requiredOption('--manifest <location>', 'the version folder (holding manifest.json) as the shard nodes see it, or its s3://bucket/prefix/<version>')
        .option('--index <name>', 'expected index name (checked against the manifest)')
        .option('--version <v>', 'expected version (checked against the manifest)')
        .option('--max-item-drop <fraction>', 'refuse a version with this much fewer items than the active one', fraction, DEFAULT_MAX_ITEM_DROP)
        .option('--min-id-overlap <fraction>', 'refuse a version holding less of the active one\'s ids (sampled)', fraction, DEFAULT_MIN_ID_OVERLAP)
        .option('--force', 'publish even when a check refuses; the version record names who and what was overridden')
        .option('--forced-by <name>', 'who forces, recorded with --force', `${os.userInfo().username}@${os.hostname()}`)
        .option('--wait', `block until the version is active (exit 0), failed on a node or replaced (exit ${EXIT_FAILED}), or --timeout (exit ${EXIT_TIMED_OUT})`)
        .option('--timeout <seconds>', 'how long --wait waits', seconds, DEFAULT_WAIT_TIMEOUT_SECONDS),
    ),
  ).action(async (flags: PublishFlags) => {
    const store = lazyObjectStore(flags);
    try {
      await publish(flags, store.get);
    } finally {
      store.close();
    }
  });
}

async function publish(flags: PublishFlags, store: StoreOf): Promise<void> {
  const source = versionSource(flags.manifest, store);
  const manifest = await source.readManifest();
  for (const [flag, expected, actual] of [['--index', flags.index, manifest.index], ['--version', flags.version, manifest.version]] as const) {
    if (expected !== undefined && expected !== actual) {
      throw new Error(`${flag} ${expected} does not match the manifest in ${source.location}, which says ${actual}`);
    }
  }
  await source.verify(manifest);
  const outcome = await withRegistry(flags, async (etcd, keys) => {
    const snapshot = await readCluster(etcd, keys);
    const refusals = await publishRefusals(snapshot, manifest, source, activeVersion(snapshot, manifest.index, store), flags);
    if (refusals.length > 0 && flags.force !== true) {
      throw new Error(`refused ${manifest.index}/${manifest.version}: ${refusals.join('; ')} (--force publishes anyway)`);
    }
    const forced = refusals.length > 0 ? { by: flags.forcedBy, overrode: refusals } : undefined;
    await publishVersion(etcd, keys, source.location, manifest, forced);
    process.stdout.write(
      `published ${manifest.index}/${manifest.version} (${manifest.shardCount} shards) from ${source.location}` +
        `${forced === undefined ? '' : `, forced by ${forced.by} over: ${refusals.join('; ')}`}; it is the target now, ` +
        `and becomes active once every shard has a ready replica\n`,
    );
    if (flags.wait !== true) return undefined;
    const view = new ClusterView({ etcd, keys });
    await view.start();
    try {
      return await waitForOutcome(view, manifest.index, manifest.version, flags.timeout * 1_000);
    } finally {
      await view.close();
    }
  });
  if (outcome !== undefined) report(outcome, `${manifest.index}/${manifest.version}`);
}

function activeVersion(snapshot: ClusterSnapshot, index: string, store: StoreOf): ActiveVersion | undefined {
  const view = snapshot.indexes.get(index);
  const record = view?.active === undefined ? undefined : view.versions.get(view.active);
  if (record === undefined) return undefined;
  return { version: view!.active!, manifest: record.manifest, source: versionSource(record.location, store) };
}

function report(outcome: PublishOutcome, name: string): void {
  switch (outcome.kind) {
    case 'active':
      process.stdout.write(`${name} is active\n`);
      return;
    case 'failed':
      process.stderr.write(`canopy: ${name} failed on node ${outcome.node} (${outcome.addr}): ${outcome.reason}\n`);
      process.exitCode = EXIT_FAILED;
      return;
    case 'superseded':
      process.stderr.write(`canopy: ${name} is no longer the target (now ${outcome.target ?? 'none'}); it will not become active\n`);
      process.exitCode = EXIT_FAILED;
      return;
    case 'timed-out':
      process.stderr.write(`canopy: ${name} was not active after ${outcome.waitedMs / 1_000} s (--timeout); see canopy status\n`);
      process.exitCode = EXIT_TIMED_OUT;
  }
}
