// `canopy get-item` and `canopy describe`: a stored item, and what an index is
// (version, metric, dim, shards), from a router or shard node, as JSON.
import type { Command } from 'commander';

import { addTargetFlags, printJson, type TargetFlags, withClient } from './target-flags';

interface GetItemFlags extends TargetFlags {
  readonly index: string;
  readonly version?: string;
}

interface DescribeFlags extends TargetFlags {
  readonly index?: string;
}

export function registerItemCommands(program: Command): void {
  const getItem = program
    .command('get-item')
    .description("print a stored item's vector as JSON")
    .argument('<id>', 'the item id')
    .requiredOption('--index <name>', 'index name')
    .option('--version <v>', 'a version still loaded (default: the active one)');
  addTargetFlags(getItem).action(async (id: string, flags: GetItemFlags) => {
    const item = await withClient(flags, (client) => client.getItem(flags.index, id, { version: flags.version, deadlineMs: flags.deadlineMs }));
    // The float32 bytes repeat `vector` for programs; JSON readers want the numbers once.
    const { vectorF32: _bytes, ...shown } = item;
    printJson(shown);
  });

  const describe = program
    .command('describe')
    .description('print what an index is (active version, metric, dim, shards and their items) as JSON')
    .option('--index <name>', 'index name (default: the one index the target serves)');
  addTargetFlags(describe).action(async (flags: DescribeFlags) => {
    printJson(await withClient(flags, (client) => client.describeIndex(flags.index ?? '', { deadlineMs: flags.deadlineMs })));
  });
}
