// `canopy serve router`: a router over static backends (--backend) or over
// the cluster in etcd (--etcd). With --workers N the
// primary process forks N workers that share the listening port, and the
// --health-listen port if any (node:cluster hands accepted connections to them
// in turn), and restarts one that dies. This file holds the flags; the work is
// in serve-router-action.ts, imported when the command runs.
import type { Command } from 'commander';

import { DEFAULT_DEADLINE_MS, DEFAULT_INITIAL_HEDGE_DELAY_MS, DEFAULT_MAX_DEADLINE_MS, DEFAULT_MAX_ROUTER_QUEUE_WAIT_MS } from '../router/router-defaults';
import { clusterOption } from './etcd-flags';
import { addHealthListenFlag } from './health-flags';
import { listenAddress } from './host-port';
import { nonNegativeInt, positiveInt } from './integer-flags';
import { addServerLimitFlags } from './limit-flags';
import type { RouterFlags } from './serve-router-action';
import { addEtcdSecurityFlags, addServerTlsFlags } from './tls-flags';

export const DEFAULT_ROUTER_WORKERS = 1;

export function registerServeRouterCommand(serve: Command): void {
  const command = serve
    .command('router')
    .description('serve a router that fans queries out to shard nodes and merges their answers')
    .requiredOption('--listen <host:port>', 'address to listen on', listenAddress('--listen'))
    .option('--backend <shard=host:port...>', 'static mode: a shard node; name a shard several times for replicas', collect, [])
    .option('--etcd <urls>', 'registry mode: etcd client URLs, comma-separated; serves every index active there')
    .addOption(clusterOption('registry mode: cluster name (/canopy/<name>/ in etcd)'))
    .option('--min-ready <n>', 'registry mode: ready replicas every shard needs before a new version becomes active', positiveInt('--min-ready'))
    .option('--no-controller', 'registry mode: leave flipping active versions to other routers')
    .option('--workers <n>', 'processes sharing the port', positiveInt('--workers'), DEFAULT_ROUTER_WORKERS)
    .option('--default-deadline-ms <ms>', `deadline of a request that brings none (default ${DEFAULT_DEADLINE_MS})`, positiveInt('--default-deadline-ms'))
    .option('--max-deadline-ms <ms>', `longer deadlines callers ask for are cut to this (default ${DEFAULT_MAX_DEADLINE_MS})`, positiveInt('--max-deadline-ms'))
    .option('--no-coalesce', 'send one call per query per shard instead of coalescing into BatchSearch')
    .option('--coalesce-max-batch-queries <n>', 'most queries in one coalesced shard call', positiveInt('--coalesce-max-batch-queries'))
    .option('--max-in-flight-batches-per-replica <n>', 'coalesced calls out at once per replica; more queries wait and join the next call', positiveInt('--max-in-flight-batches-per-replica'))
    .option(
      '--max-router-queue-wait-ms <ms>',
      `refuse queries (RESOURCE_EXHAUSTED) while those waiting in the router for a shard call stand over this; 0: never (default ${DEFAULT_MAX_ROUTER_QUEUE_WAIT_MS})`,
      nonNegativeInt('--max-router-queue-wait-ms'),
    )
    .option('--no-hedging', 'do not send hedged requests to a second replica')
    .option(
      '--initial-hedge-delay-ms <ms>',
      `hedge delay until a shard's latency p95 is known (default ${DEFAULT_INITIAL_HEDGE_DELAY_MS})`,
      positiveInt('--initial-hedge-delay-ms'),
    )
    .option('--log-level <level>', 'pino log level (default: $CANOPY_LOG_LEVEL, else info)')
    .option('--metrics-listen <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics (one worker only)', listenAddress('--metrics-listen'));
  addServerLimitFlags(command);
  addHealthListenFlag(command);
  addServerTlsFlags(command, true);
  addEtcdSecurityFlags(command);
  command.action(async (flags: RouterFlags, self: Command) => {
    const { serveRouter } = await import('./serve-router-action.js');
    await serveRouter(flags, self);
  });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
