// What `canopy serve shard` does once its flags are parsed: start a shard node
// with telemetry, logs and a graceful stop. Imported by the command's action
// only, so loading the addon, gRPC, etcd3 and OpenTelemetry is paid by the
// processes that serve, not by `--help` or the other commands.
import os from 'node:os';
import path from 'node:path';

import type { Command } from 'commander';

import { Index } from '../engine/engine-index';
import { configureSearchPool, searchPoolStats } from '../engine/search-pool';
import { createEtcdClient } from '../registry/etcd-client';
import { type EtcdWaitMessages, warnWhileEtcdUnreached } from '../registry/etcd-wait-warning';
import { ClusterKeys } from '../registry/keys';
import { DEFAULT_MAX_QUEUE_WAIT_MS, DEFAULT_QUEUED_SEARCHES_PER_THREAD } from '../shard/shard-defaults';
import { ShardNode } from '../shard/shard-node';
import { VersionCache } from '../shard/version-cache';
import { observeEtcdSession, observeIndexVersions, observeSearchQueueDepth } from '../telemetry/instruments';
import { advertisedAddress, isWildcardAddress } from './advertise-address';
import { type HealthListenFlags, healthListenFromFlags } from './health-flags';
import { type ServerLimitFlags, serverLimitsFromFlags } from './limit-flags';
import { lazyObjectStore, type S3Flags } from './s3-flags';
import { createLogger, serveUntilSignalled, startProcessTelemetry } from './serve-process';
import { type EtcdSecurityFlags, etcdSecurityFromFlags, serverTlsFromFlags, type TlsFlags } from './tls-flags';
import { checkArguments } from './usage-error';

export interface ShardFlags extends ServerLimitFlags, TlsFlags, EtcdSecurityFlags, HealthListenFlags, S3Flags {
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

/** Starts the shard node the flags describe; resolves once it serves, and stops it on SIGTERM/SIGINT. */
export async function serveShard(flags: ShardFlags, self: Command): Promise<void> {
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
  await serveUntilSignalled(node, telemetry, log, { healthListen, beforeClose: stopEtcdWarning });
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
