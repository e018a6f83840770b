// `canopy serve shard`: serves one shard of one index version.
import type { Command } from 'commander';

import { Index } from '../engine/engine-index';
import { ShardNode } from '../shard/shard-node';
import { createLogger, positiveInt, stopOnSignals } from './serve-process';

interface ShardFlags {
  readonly manifest: string;
  readonly shard: number;
  readonly listen: string;
  readonly maxK?: number;
  readonly maxBatchQueries?: number;
  readonly verify: boolean;
  readonly prefault: boolean;
  readonly logLevel: string;
}

export function registerServeShardCommand(serve: Command): void {
  serve
    .command('shard')
    .description('serve one shard of an index version')
    .requiredOption('--manifest <dir>', 'version folder (holds manifest.json)')
    .requiredOption('--shard <n>', 'shard number (0-based)', nonNegativeInt('--shard'))
    .requiredOption('--listen <host:port>', 'address to listen on')
    .option('--max-k <n>', 'largest k accepted', positiveInt('--max-k'))
    .option('--max-batch-queries <n>', 'most queries in one BatchSearch', positiveInt('--max-batch-queries'))
    .option('--no-verify', 'skip the sha256 check of the shard files at load')
    .option('--no-prefault', 'do not read the forest into memory at load')
    .option('--log-level <level>', 'pino log level', 'info')
    .action(async (flags: ShardFlags) => {
      const log = createLogger('shard', flags.logLevel);
      const node = new ShardNode(
        {
          manifestDir: flags.manifest,
          shard: flags.shard,
          listen: flags.listen,
          maxK: flags.maxK,
          maxBatchQueries: flags.maxBatchQueries,
          verifyChecksums: flags.verify,
          prefault: flags.prefault,
        },
        (file, opts) => Index.load(file, opts),
        log,
      );
      stopOnSignals(() => node.close(), log);
      await node.start();
    });
}

function nonNegativeInt(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${flag} must be a non-negative integer, got ${JSON.stringify(value)}`);
    return n;
  };
}
