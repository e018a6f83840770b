// `canopy publish`: make a built version folder the cluster's target.
import path from 'node:path';

import type { Command } from 'commander';

import { readManifest, verifyShard } from '../format/manifest';
import { publishVersion } from '../registry/versions';
import { addEtcdFlags, type EtcdFlags, withRegistry } from './etcd-flags';

interface PublishFlags extends EtcdFlags {
  readonly manifest: string;
  readonly index?: string;
  readonly version?: string;
}

export function registerPublishCommand(program: Command): void {
  addEtcdFlags(
    program
      .command('publish')
      .description('verify a version folder and set it as the target of its index; shard nodes load it, then it becomes active')
      .requiredOption('--manifest <dir>', 'the version folder (holding manifest.json), as the shard nodes see it')
      .option('--index <name>', 'expected index name (checked against the manifest)')
      .option('--version <v>', 'expected version (checked against the manifest)'),
  ).action(async (flags: PublishFlags) => {
    const dir = path.resolve(flags.manifest);
    const manifest = await readManifest(dir);
    for (const [flag, expected, actual] of [['--index', flags.index, manifest.index], ['--version', flags.version, manifest.version]] as const) {
      if (expected !== undefined && expected !== actual) {
        throw new Error(`${flag} ${expected} does not match the manifest in ${dir}, which says ${actual}`);
      }
    }
    for (let shard = 0; shard < manifest.shardCount; shard++) await verifyShard(dir, manifest, shard);
    await withRegistry(flags, (etcd, keys) => publishVersion(etcd, keys, dir, manifest));
    process.stdout.write(
      `published ${manifest.index}/${manifest.version} (${manifest.shardCount} shards) from ${dir}; it is the target now, ` +
        `and becomes active once every shard has a ready replica\n`,
    );
  });
}
