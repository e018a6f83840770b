// `canopy serve shard`: serves one shard of an index, either of one version
// folder (--manifest) or of the versions etcd makes active and target (--etcd).
import os from 'node:os';
import path from 'node:path';

import type { Command } from 'commander';

import { Index } from '../engine/engine-index';
import { configureSearchPool, searchPoolStats } from '../engine/search-pool';
import { createEtcdClient } from '../registry/etcd-client';
import { type EtcdWaitMessages, warnWhileEtcdUnreached } from '../registry/etcd-wait-warning';
import { ClusterKeys } from '../registry/keys';
import { ShardNode } from '../shard/shard-node';
import { DEFAULT_CACHE_MAX_MB, VersionCache } from '../shard/version-cache';
import { clusterOption } from './etcd-flags';
import { addS3Flags, lazyObjectStore, type S3Flags } from './s3-flags';
import { observeEtcdSession, observeIndexVersions, observeSearchQueueDepth } from '../telemetry/instruments';
import {
  createLogger,
  nonNegativeInt,
  positiveInt,
  startProcessTelemetry,
  stopOnSignals,
  stopTelemetry,
} from './serve-process';
import { advertisedAddress, isWildcardAddress } from './advertise-address';
import { listenAddress } from './host-port';
import { addHealthListenFlag, type HealthListenFlags, healthListenFromFlags } from './health-flags';
import { addServerLimitFlags, type ServerLimitFlags, serverLimitsFromFlags } from './limit-flags';
import { addEtcdSecurityFlags, addServerTlsFlags, type EtcdSecurityFlags, etcdSecurityFromFlags, serverTlsFromFlags, type TlsFlags } from './tls-flags';
import { checkArguments } from './usage-error';

interface ShardFlags extends ServerLimitFlags, TlsFlags, EtcdSecurityFlags, HealthListenFlags, S3Flags {
  readonly cacheDir?: string;
  readonly cacheMaxMb: number;
  readonly manifest?: string;
  readonly etcd?: string;
  readonly cluster: string;
  readonly index?: string;
  readonly nodeId?: string;
  readonly advertise?: string;
  readonly shard: number;
  readonly listen: string;
  readonly maxQueuedSearches?: number;
  readonly maxQueueWaitMs?: number;
  readonly searchThreads?: number;
  readonly verify: boolean;
  readonly prefault: boolean;
  readonly drainTimeoutMs?: number;
  readonly unloadGraceMs?: number;
  readonly leaseTtlSeconds?: number;
  readonly logLevel?: string;
  readonly metricsListen?: string;
}

/** service.name of a shard node's telemetry, unless OTEL_SERVICE_NAME says otherwise. */
export const SHARD_SERVICE_NAME = 'canopy-shard';

/**
 * Tasks the engine holds waiting per search thread (a batch counts one per
 * slice, at most one slice per thread) before it refuses more at once with
 * RESOURCE_EXHAUSTED: a bound on memory, room for a client with ~100 calls in
 * flight on a 2-core node or the coalesced calls of 8 routers (8 in flight each).
 */
export const DEFAULT_QUEUED_SEARCHES_PER_THREAD = 64;

/**
 * The latency bound: a call is refused while the searches queued ahead of it
 * would take longer than this to start (their count x the recent mean search
 * time / threads). Cheap searches may queue deep, costly ones hardly at all, so
 * an accepted call waits about the same either way. 2 ms keeps the answered
 * calls' p99 within 3x of the unloaded p99 at twice the saturation rate
 * (load-tests/overload/overload.js); a router retries a refused call on
 * another replica.
 */
export const DEFAULT_MAX_QUEUE_WAIT_MS = 2;

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
      `refuse calls at once with RESOURCE_EXHAUSTED while the queued searches would take longer than this to start; 0: no bound (default ${DEFAULT_MAX_QUEUE_WAIT_MS})`,
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
    const { log, healthListen, tls, registry } = await checkArguments(self, () => ({
      log: createLogger('shard', flags.logLevel),
      healthListen: healthListenFromFlags(flags),
      tls: serverTlsFromFlags(flags),
      registry: flags.etcd === undefined ? undefined : registryOptions(flags),
    }));
    const threads = flags.searchThreads ?? os.availableParallelism();
    configureSearchPool({
      threads,
      maxQueue: flags.maxQueuedSearches ?? DEFAULT_QUEUED_SEARCHES_PER_THREAD * threads,
      maxQueueWaitMs: flags.maxQueueWaitMs ?? DEFAULT_MAX_QUEUE_WAIT_MS,
    });
    const telemetry = await startProcessTelemetry(SHARD_SERVICE_NAME, flags.metricsListen, log);
    const node = new ShardNode(
      {
        manifestDir: flags.manifest,
        registry,
        shard: flags.shard,
        listen: flags.listen,
        ...serverLimitsFromFlags(flags),
        tls,
        healthListen,
        verifyChecksums: flags.verify,
        prefault: flags.prefault,
        versionCache: versionCacheFromFlags(flags, log),
        shutdownGraceMs: flags.drainTimeoutMs,
      },
      (file, opts) => Index.load(file, opts),
      log,
    );
    observeSearchQueueDepth(() => searchPoolStats().queued);
    observeIndexVersions(() => node.versionReadings());
    let stopEtcdWarning: (() => void) | undefined;
    if (flags.etcd !== undefined) {
      observeEtcdSession(() => node.etcdSessionState ?? 'unregistered');
      stopEtcdWarning = warnWhileEtcdUnreached(() => node.etcdSessionState === 'registered', flags.etcd, SESSION_WAIT_MESSAGES, log);
    }
    stopOnSignals(async () => {
      stopEtcdWarning?.();
      await node.close();
      await stopTelemetry(telemetry, log);
    }, log);
    await node.start();
    if (healthListen !== undefined) log.info({ healthListen }, 'serving plaintext health');
  });
}

/** What a shard node logs while it has no etcd session (etcd down or refusing) and when it registers again. */
const SESSION_WAIT_MESSAGES: EtcdWaitMessages = {
  waiting: 'no etcd session: etcd unreachable or refusing; still trying',
  reached: 'etcd reached; registered',
};

/** The download cache; its object store (the AWS SDK's client) is made only when a version is in object storage. */
function versionCacheFromFlags(flags: ShardFlags, log: ReturnType<typeof createLogger>): VersionCache {
  const store = lazyObjectStore(flags);
  return new VersionCache({
    store: store.get,
    dir: flags.cacheDir ?? path.join(os.tmpdir(), 'canopy-cache'),
    maxBytes: flags.cacheMaxMb * 1024 * 1024,
    shard: flags.shard,
    onEvict: (entry, bytes) => log.info({ entry, bytes }, 'evicted from the version cache'),
    onSidecarSkipped: (url, err) => log.warn({ url, err }, 'sidecar not downloaded: the shard serves without it'),
  });
}

function registryOptions(flags: ShardFlags) {
  if (flags.index === undefined) throw new Error('--index is required with --etcd: the index this node serves');
  const advertise = advertisedAddress(flags.advertise ?? flags.listen);
  if (isWildcardAddress(advertise)) {
    throw new Error(`--advertise is required when listening on ${flags.listen}: routers need an address they can call`);
  }
  return {
    etcd: createEtcdClient({ endpoints: flags.etcd!, ...etcdSecurityFromFlags(flags) }),
    keys: new ClusterKeys(flags.cluster),
    nodeId: flags.nodeId ?? `${os.hostname()}-${process.pid}`,
    index: flags.index,
    advertise,
    unloadGraceMs: flags.unloadGraceMs,
    leaseTtlSeconds: flags.leaseTtlSeconds,
  };
}
