// `canopy serve shard`: serves one shard of an index, either of one version
// folder (--manifest) or of the versions etcd makes active and target (--etcd).
// This file holds the flags; the work is in serve-shard-action.ts, imported
// when the command runs.
import type { Command } from 'commander';

import { DEFAULT_MAX_QUEUE_WAIT_MS, DEFAULT_QUEUED_SEARCHES_PER_THREAD } from '../shard/shard-defaults';
import { DEFAULT_CACHE_MAX_MB } from '../shard/version-cache';
import { clusterOption } from './etcd-flags';
import { addHealthListenFlag } from './health-flags';
import { listenAddress } from './host-port';
import { nonNegativeInt, positiveInt } from './integer-flags';
import { addServerLimitFlags } from './limit-flags';
import { addS3Flags } from './s3-flags';
import type { ShardFlags } from './serve-shard-action';
import { addEtcdSecurityFlags, addServerTlsFlags } from './tls-flags';

export function registerServeShardCommand(serve: Command): void {
  const command = serve
    .command('shard')
    .description('serve one shard of an index: of a version folder (--manifest), or of what etcd targets (--etcd)')
    .option('--manifest <location>', 'static mode: the version folder (holds manifest.json), or its s3:// URL')
    .option('--etcd <urls>', 'registry mode: etcd client URLs, comma-separated')
    .addOption(clusterOption('registry mode: cluster name (/canopy/<name>/ in etcd)'))
    .option('--index <name>', 'registry mode: the index this node serves')
    .option('--node-id <id>', 'registry mode: this node\'s key under nodes/ (default: <hostname>-<pid>)')
    .option('--advertise <host:port>', 'registry mode: the address routers call (default: --listen, unless it is 0.0.0.0)')
    .requiredOption('--shard <n>', 'shard number (0-based)', nonNegativeInt('--shard'))
    .requiredOption('--listen <host:port>', 'address to listen on', listenAddress('--listen'))
    .option('--search-threads <n>', 'engine search threads (default: the number of cores)', positiveInt('--search-threads'))
    .option(
      '--max-queued-searches <n>',
      `searches waiting for an engine thread beyond which calls are refused at once with RESOURCE_EXHAUSTED (default ${DEFAULT_QUEUED_SEARCHES_PER_THREAD} x search threads)`,
      positiveInt('--max-queued-searches'),
    )
    .option(
      '--max-queue-wait-ms <ms>',
      `once the search queue stands over this, refuse calls at once with RESOURCE_EXHAUSTED while the queued searches would take longer than this to start; 0: no bound (default ${DEFAULT_MAX_QUEUE_WAIT_MS})`,
      nonNegativeInt('--max-queue-wait-ms'),
    )
    .option('--no-verify', 'skip the sha256 check of the shard files at load')
    .option('--no-prefault', 'do not read the forest into memory at load')
    .option('--drain-timeout-ms <ms>', 'on SIGTERM, how long in-flight queries may take to finish', positiveInt('--drain-timeout-ms'))
    .option('--unload-grace-ms <ms>', 'how long a version that is neither active nor target stays loaded', nonNegativeInt('--unload-grace-ms'))
    .option('--lease-ttl-seconds <s>', 'how long etcd keeps this node\'s key after it stops renewing', positiveInt('--lease-ttl-seconds'))
    .option('--log-level <level>', 'pino log level (default: $CANOPY_LOG_LEVEL, else info)')
    .option('--metrics-listen <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics', listenAddress('--metrics-listen'));
  addServerLimitFlags(command);
  command
    .option('--cache-dir <dir>', 'versions published at s3:// locations are downloaded here (default: <temp>/canopy-cache)')
    .option('--cache-max-mb <n>', 'the download cache\'s size; versions no longer held are evicted, least recently used first', positiveInt('--cache-max-mb'), DEFAULT_CACHE_MAX_MB);
  addS3Flags(command);
  addHealthListenFlag(command);
  addServerTlsFlags(command);
  addEtcdSecurityFlags(command);
  command.action(async (flags: ShardFlags, self: Command) => {
    const { serveShard } = await import('./serve-shard-action.js');
    await serveShard(flags, self);
  });
}
