// What `canopy serve router` does once its flags are parsed: start a router
// (or, with --workers N, the primary that forks N of them) with telemetry,
// logs and a graceful stop. Imported by the command's action only, so gRPC,
// etcd3 and OpenTelemetry are loaded by the processes that serve.
import cluster from 'node:cluster';

import type { Command } from 'commander';
import type { Logger } from 'pino';

import { createEtcdClient } from '../registry/etcd-client';
import { type EtcdWaitMessages, warnWhileEtcdUnreached } from '../registry/etcd-wait-warning';
import { ClusterKeys } from '../registry/keys';
import { Router, type RouterRegistryOptions } from '../router/router';
import { observeEtcdWatch } from '../telemetry/instruments';
import { type HealthListenFlags, healthListenFromFlags } from './health-flags';
import { type ServerLimitFlags, serverLimitsFromFlags } from './limit-flags';
import { createLogger, serveUntilSignalled, startProcessTelemetry } from './serve-process';
import { type EtcdSecurityFlags, etcdSecurityFromFlags, serverTlsFromFlags, type TlsFlags } from './tls-flags';
import { checkArguments } from './usage-error';
import { routerDeadlines } from '../router/router-defaults';

export interface RouterFlags extends ServerLimitFlags, TlsFlags, EtcdSecurityFlags, HealthListenFlags {
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
  readonly maxRouterQueueWaitMs?: number;
  readonly hedging: boolean;
  readonly initialHedgeDelayMs?: number;
  readonly logLevel?: string;
  readonly metricsListen?: string;
}

/** service.name of a router's telemetry, unless OTEL_SERVICE_NAME says otherwise. */
export const ROUTER_SERVICE_NAME = 'canopy-router';

const MIN_WORKER_LIFETIME_MS = 2_000;

/** Starts the router the flags describe (or its workers); resolves once it serves, and stops on SIGTERM/SIGINT. */
export async function serveRouter(flags: RouterFlags, self: Command): Promise<void> {
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
      maxRouterQueueWaitMs: flags.maxRouterQueueWaitMs,
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
  await serveUntilSignalled(router, telemetry, log, { healthListen, beforeClose: stopEtcdWarning });
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
  routerDeadlines(flags.defaultDeadlineMs, flags.maxDeadlineMs);
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
