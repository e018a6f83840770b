// `canopy rollback`: target the version that was active before the current one.
import type { Command } from 'commander';

import { readCluster } from '../registry/cluster-view';
import { previousVersion, retarget } from '../registry/versions';
import { addEtcdFlags, type EtcdFlags, withRegistry } from './etcd-flags';

interface RollbackFlags extends EtcdFlags {
  readonly index: string;
  readonly to?: string;
}

export function registerRollbackCommand(program: Command): void {
  addEtcdFlags(
    program
      .command('rollback')
      .description('target the previous version of an index (or --to a given one); it becomes active once loaded')
      .requiredOption('--index <name>', 'the index to roll back')
      .option('--to <version>', 'the version to go back to (default: the one published before the active one)'),
  ).action(async (flags: RollbackFlags) => {
    const version = await withRegistry(flags, async (etcd, keys) => {
      const index = (await readCluster(etcd, keys)).indexes.get(flags.index);
      if (!index) throw new Error(`index ${flags.index} is not published in cluster ${flags.cluster}`);
      const to = flags.to ?? previousVersion(index);
      if (to === undefined) throw new Error(`index ${flags.index} has no version older than the active one (${index.active ?? 'none'})`);
      await retarget(etcd, keys, flags.index, to);
      return to;
    });
    process.stdout.write(`index ${flags.index} now targets ${version}; it becomes active once every shard has a ready replica\n`);
  });
}
