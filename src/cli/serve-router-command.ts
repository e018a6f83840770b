// `canopy serve router`: a router over static backends (--backend) or over
// the cluster in etcd (--etcd). With --workers N the
// primary process forks N workers that share the listening port, and the
// --health-listen port if any (node:cluster hands accepted connections to them
// in turn), and restarts one that dies.
import cluster from 'node:cluster';

import type { Command } from 'commander';
import type { Logger } from 'pino';

import { createEtcdClient } from '../registry/etcd-client';
import { type EtcdWaitMessages, warnWhileEtcdUnreached } from '../registry/etcd-wait-warning';
import { ClusterKeys } from '../registry/keys';
import { DEFAULT_DEADLINE_MS, DEFAULT_MAX_DEADLINE_MS, Router, type RouterRegistryOptions } from '../router/router';
import { DEFAULT_INITIAL_HEDGE_DELAY_MS } from '../router/shard-caller';
import { observeEtcdWatch } from '../telemetry/instruments';
import { clusterOption } from './etcd-flags';
import { createLogger, positiveInt, startProcessTelemetry, stopOnSignals, stopTelemetry } from './serve-process';
import { listenAddress } from './host-port';
import { addHealthListenFlag, type HealthListenFlags, healthListenFromFlags } from './health-flags';
import { addServerLimitFlags, type ServerLimitFlags, serverLimitsFromFlags } from './limit-flags';
import { addEtcdSecurityFlags, addServerTlsFlags, type EtcdSecurityFlags, etcdSecurityFromFlags, serverTlsFromFlags, type TlsFlags } from './tls-flags';
import { checkArguments } from './usage-error';

interface RouterFlags extends ServerLimitFlags, TlsFlags, EtcdSecurityFlags, HealthListenFlags {
  readonly listen: string;
  readonly backend: string[];
  readonly etcd?: string;
  readonly cluster: string;
  readonly minReady?: number;
  readonly controller: boolean;
  readonly workers: number;
  readonly defaultDeadlineMs?: number;
  readonly maxDeadlineMs?: number;
  readonly coalesce: boolean;
  readonly coalesceMaxBatchQueries?: number;
  readonly maxInFlightBatchesPerReplica?: number;
  readonly hedging: boolean;
  readonly initialHedgeDelayMs?: number;
  readonly logLevel?: string;
  readonly metricsListen?: string;
}

/** service.name of a router's telemetry, unless OTEL_SERVICE_NAME says otherwise. */
export const ROUTER_SERVICE_NAME = 'canopy-router';

export const DEFAULT_ROUTER_WORKERS = 1;
const MIN_WORKER_LIFETIME_MS = 2_000;

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
    const { backends, etcdSecurity, tls, healthListen, log } = await checkArguments(self, () => checkedFlags(flags));
    if (flags.workers > 1 && cluster.isPrimary) {
      superviseWorkers(flags.workers, log);
      return;
    }
    const telemetry = await startProcessTelemetry(ROUTER_SERVICE_NAME, flags.metricsListen, log);
    const router = new Router(
      {
        listen: flags.listen,
        backends,
        registry: flags.etcd === undefined ? undefined : registryOptions(flags.etcd, flags, etcdSecurity),
        defaultDeadlineMs: flags.defaultDeadlineMs,
        maxDeadlineMs: flags.maxDeadlineMs,
        ...serverLimitsFromFlags(flags),
        tls,
        healthListen,
        backendTls: tls,
        coalesce: flags.coalesce,
        coalesceMaxBatchQueries: flags.coalesceMaxBatchQueries,
        maxInFlightBatchesPerReplica: flags.maxInFlightBatchesPerReplica,
        hedging: flags.hedging,
        initialHedgeDelayMs: flags.initialHedgeDelayMs,
        onBackendsUnfit: (err) => {
          log.error({ reason: err.message }, 'cannot serve: the --backend shard nodes do not form one index; fix the flags');
          process.exitCode = 1;
          process.kill(process.pid, 'SIGTERM');
        },
      },
      log,
    );
    let stopEtcdWarning: (() => void) | undefined;
    if (flags.etcd !== undefined) {
      observeEtcdWatch(() => router.etcdWatchState ?? 'disconnected');
      stopEtcdWarning = warnWhileEtcdUnreached(() => router.etcdWatchState === 'watching', flags.etcd, WATCH_WAIT_MESSAGES, log);
    }
    stopOnSignals(async () => {
      stopEtcdWarning?.();
      await router.close();
      await stopTelemetry(telemetry, log);
    }, log);
    await router.start();
    if (healthListen !== undefined) log.info({ healthListen }, 'serving plaintext health');
  });
}

/** What the flags say, once checked together (each problem is a usage error). */
function checkedFlags(flags: RouterFlags) {
  if ((flags.backend.length > 0) === (flags.etcd !== undefined)) {
    throw new Error('give either --backend (static shard nodes) or --etcd (the cluster in etcd)');
  }
  // Workers would share the port and each scrape would see one worker's counters only.
  if (flags.metricsListen !== undefined && flags.workers > 1) {
    throw new Error('--metrics-listen serves one process\'s metrics: use it with --workers 1 (run more router replicas instead)');
  }
  return {
    backends: flags.etcd === undefined ? parseBackends(flags.backend) : undefined,
    etcdSecurity: flags.etcd === undefined ? undefined : etcdSecurityFromFlags(flags),
    tls: serverTlsFromFlags(flags),
    healthListen: healthListenFromFlags(flags),
    log: createLogger('router', flags.logLevel),
  };
}

/** What a registry-mode router logs while its etcd watch is down and when it is back. */
const WATCH_WAIT_MESSAGES: EtcdWaitMessages = {
  waiting: 'no etcd watch: etcd unreachable or refusing; serving the cluster as last seen; still trying',
  reached: 'etcd reached; watching the cluster',
};

function registryOptions(etcd: string, flags: RouterFlags, security: ReturnType<typeof etcdSecurityFromFlags> | undefined): RouterRegistryOptions {
  return {
    etcd: createEtcdClient({ endpoints: etcd, ...security }),
    keys: new ClusterKeys(flags.cluster),
    controller: flags.controller,
    minReadyReplicas: flags.minReady,
  };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `SHARD=HOST:PORT` flags to shard -> addresses; throws naming a malformed one. */
export function parseBackends(flags: readonly string[]): Map<number, string[]> {
  const backends = new Map<number, string[]>();
  for (const flag of flags) {
    const match = /^(\d+)=(.+:\d+)$/.exec(flag);
    if (match === null) throw new Error(`--backend ${JSON.stringify(flag)} must look like SHARD=HOST:PORT, e.g. 0=127.0.0.1:7001`);
    const shard = Number(match[1]);
    const list = backends.get(shard) ?? [];
    if (!list.includes(match[2]!)) list.push(match[2]!);
    backends.set(shard, list);
  }
  const shards = [...backends.keys()].sort((a, b) => a - b);
  if (shards.some((shard, i) => shard !== i)) {
    throw new Error(`--backend names shard(s) ${shards.join(', ')}: shards are numbered 0 to ${shards.length - 1}, none missing`);
  }
  return backends;
}

/** The cluster primary: forks workers, restarts any that dies, and stops them all on a signal. */
function superviseWorkers(count: number, log: Logger): void {
  let stopping = false;
  const startedAtMs = new Map<number, number>();
  const fork = (): void => {
    startedAtMs.set(cluster.fork().id, Date.now());
  };
  for (let i = 0; i < count; i++) fork();
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    // A worker that dies young (bad flags, port taken) would die again: stop instead of looping.
    if (Date.now() - (startedAtMs.get(worker.id) ?? 0) < MIN_WORKER_LIFETIME_MS) {
      log.error({ worker: worker.process.pid, code, signal }, 'router worker failed at start; stopping');
      process.exitCode = 1;
      stop();
      return;
    }
    log.warn({ worker: worker.process.pid, code, signal }, 'router worker exited; starting another');
    fork();
  });
  function stop(): void {
    if (stopping) process.exit(1);
    stopping = true;
    const workers = Object.values(cluster.workers ?? {});
    if (workers.length === 0) process.exit();
    for (const worker of workers) worker?.process.kill('SIGTERM');
  }
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
