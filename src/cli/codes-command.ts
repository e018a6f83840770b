// `canopy codes FILE.ann`: write the sidecars of an existing Annoy file (one
// built by pip annoy, say) beside it: `FILE.codes` by default, `FILE.graph`
// with --graph. A version folder's shards get theirs from `canopy build`.
// The addon is imported by the action, so `--help` does not load it.
import { availableParallelism } from 'node:os';

import { Option, type Command } from 'commander';

import { positiveInt } from './integer-flags';
import { sidecarFileOf } from '../format/manifest';
import { METRICS, type Metric } from '../format/metric';
import { GRAPH_METRICS } from '../indexer/builder';

interface CodesFlags {
  readonly dim: number;
  readonly metric: Metric;
  readonly codes: boolean;
  readonly graph?: boolean;
  readonly graphWidth?: number;
  readonly threads: number;
}

export function registerCodesCommand(program: Command): void {
  program
    .command('codes')
    .description('write the sidecars of an existing Annoy file beside it: FILE.codes (compact codes), and FILE.graph with --graph')
    .argument('<file>', 'the Annoy file (.ann)')
    .requiredOption('--dim <d>', 'vector length the file was built with', positiveInt('--dim'))
    .addOption(new Option('--metric <metric>', 'metric the file was built with').choices(METRICS).makeOptionMandatory())
    .option('--no-codes', 'skip the codes (with --graph: write the graph only)')
    .option('--graph', `also build the neighbour graph (${GRAPH_METRICS.join(', ')})`)
    .option('--graph-width <n>', 'with --graph: neighbours per item, a multiple of 8 in 16..256 (default: chosen by the build, 16..48)', positiveInt('--graph-width'))
    .addOption(new Option('--threads <n>', 'graph build threads').argParser(positiveInt('--threads')).default(availableParallelism(), 'the number of cores'))
    .action(async (file: string, flags: CodesFlags, command: Command) => {
      if (flags.graph === true && !GRAPH_METRICS.includes(flags.metric)) {
        command.error(`error: --graph needs a metric with a true distance (${GRAPH_METRICS.join(', ')}); ${flags.metric} has none`);
      }
      if (!flags.codes && flags.graph !== true) command.error('error: --no-codes without --graph writes nothing');
      if (flags.graphWidth !== undefined && flags.graph !== true) command.error('error: --graph-width needs --graph');
      const { Index } = await import('../engine/engine-index.js');
      const index = Index.load(file, { dim: flags.dim, metric: flags.metric });
      try {
        if (flags.codes) writeAndSay(sidecarFileOf(file, 'codes'), (out) => index.saveCodes(out));
        if (flags.graph === true) {
          await index.buildGraph({ threads: flags.threads, width: flags.graphWidth });
          writeAndSay(sidecarFileOf(file, 'graph'), (out) => index.saveGraph(out));
        }
      } finally {
        index.unload();
      }
    });
}

function writeAndSay(file: string, write: (file: string) => void): void {
  write(file);
  process.stdout.write(`${file}\n`);
}
