// A shard node: serves one shard of an index over gRPC. Either of one version
// folder given on the command line (static), or of whatever the cluster in
// etcd makes active and target for its index (registry): then it registers
// under a lease, follows the versions, and on stop announces `stopping` so
// routers turn away before it drains.
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';

import type { CanopyError } from '../wire/canopy-error';
import { declareServedIndex, type IndexVersionReading } from '../telemetry/instruments';
import type { LogTraceFields } from '../telemetry/log-trace-context';
import type { SessionState } from '../registry/node-session';
import type { QueryLimitsOptions } from '../wire/query';
import { resolveQueryLimits } from '../wire/query';
import { LoadGate, type LoadGateOptions } from '../wire/load-gate';
import type { SearchServerOptions } from '../wire/search-server';
import { SearchServer } from '../wire/search-server';
import { ClusterView } from '../registry/cluster-view';
import type { ClusterKeys } from '../registry/keys';
import { NodeSession } from '../registry/node-session';
import { readManifest } from '../format/manifest';
import { isObjectUrl } from '../storage/object-url';
import { LoadedVersion } from './loaded-version';
import { ShardCatalog } from './shard-catalog';
import type { ForestLoader } from './shard-forest';
import { ShardService } from './shard-service';
import { VersionFollower } from './version-follower';
import { entryName, type VersionCache } from './version-cache';

export const DEFAULT_VERIFY_CHECKSUMS = true;
export const DEFAULT_PREFAULT = true;
/** Time between announcing `stopping` and closing: routers see the change in a few ms; this leaves margin. */
export const DEFAULT_STOPPING_NOTICE_MS = 1_000;

export interface ShardRegistryOptions {
  readonly etcd: Etcd3;
  readonly keys: ClusterKeys;
  readonly nodeId: string;
  readonly index: string;
  /** host:port routers should call (the listen address is often 0.0.0.0). */
  readonly advertise: string;
  readonly leaseTtlSeconds?: number;
  readonly unloadGraceMs?: number;
  readonly stoppingNoticeMs?: number;
}

export interface ShardNodeOptions extends SearchServerOptions, QueryLimitsOptions, LoadGateOptions {
  /** Static mode: the folder of one index version (holds manifest.json). */
  readonly manifestDir?: string;
  /** Registry mode: follow the cluster in etcd. Exactly one of `manifestDir` and `registry`. */
  readonly registry?: ShardRegistryOptions;
  readonly shard: number;
  readonly verifyChecksums?: boolean;
  readonly prefault?: boolean;
  /** Where versions published at s3:// locations are downloaded to; without it such versions fail to load. */
  readonly versionCache?: VersionCache;
}

interface RegistryParts {
  readonly session: NodeSession;
  readonly view: ClusterView;
  readonly follower: VersionFollower;
  readonly stoppingNoticeMs: number;
}

export class ShardNode {
  private readonly catalog = new ShardCatalog();
  private readonly server: SearchServer;
  private readonly service: ShardService;
  private readonly gate: LoadGate;
  private registry: RegistryParts | undefined;

  constructor(
    private readonly options: ShardNodeOptions,
    private readonly loadForest: ForestLoader,
    private readonly log: Logger,
  ) {
    if ((options.manifestDir === undefined) === (options.registry === undefined)) {
      throw new Error('a shard node serves either a version folder (--manifest) or what etcd says (--etcd), not both or neither');
    }
    this.gate = new LoadGate(options);
    this.service = new ShardService(this.catalog, resolveQueryLimits(options), (err, method, trace) => this.logError(err, method, trace), this.gate);
    this.server = new SearchServer(this.service.handlers(), options);
  }

  /**
   * Listens, then loads (static) or starts following (registry); resolves
   * with the bound port once a static version is loaded. The ports come
   * first: a taken port fails in a moment instead of after a long load, and
   * probes find the process (Search NOT_SERVING) while it loads.
   */
  async start(): Promise<number> {
    const port = await this.server.start();
    this.log.info({ listen: this.options.listen, port }, 'shard node listening');
    if (this.options.manifestDir !== undefined) {
      let loaded: LoadedVersion;
      try {
        loaded = await this.loadVersion(this.options.manifestDir);
      } catch (err) {
        await this.server.close();
        throw err;
      }
      this.catalog.add(loaded, true);
      this.log.info({ index: loaded.index, version: loaded.version, shard: this.options.shard, items: loaded.nItems }, 'version loaded');
      declareServedIndex(loaded.index);
      this.server.setServing(true);
    }
    if (this.options.registry !== undefined) {
      declareServedIndex(this.options.registry.index);
      this.registry = this.follow(this.options.registry, port);
    }
    return port;
  }

  /** Announces `stopping` (registry), finishes in-flight queries, then releases everything. */
  async close(): Promise<void> {
    const registry = this.registry;
    if (registry) {
      await withTimeout(registry.session.update((r) => ({ ...r, stopping: true })), registry.stoppingNoticeMs);
      await new Promise((resolve) => setTimeout(resolve, registry.stoppingNoticeMs));
      registry.follower.stop();
      await registry.view.close();
    }
    this.service.drain.endAll();
    await this.server.close();
    this.gate.stop();
    await registry?.session.close();
    this.catalog.releaseAll();
    this.log.info('shard node closed');
  }

  /** The versions this node holds, loads or failed to load, for the index metrics. */
  *versionReadings(): IterableIterator<IndexVersionReading> {
    const shard = this.options.shard;
    for (const loaded of this.catalog.loaded()) {
      yield {
        index: loaded.index,
        version: loaded.version,
        shard,
        state: 'ready',
        items: loaded.nItems,
        loadDurationSeconds: loaded.loadDurationMs / 1000,
        sidecars: loaded.sidecars,
      };
    }
    const follower = this.registry?.follower;
    const index = this.options.registry?.index;
    if (follower === undefined || index === undefined) return;
    for (const { version, state } of follower.notLoaded()) yield { index, version, shard, state };
  }

  /** The etcd session's state; undefined in static mode or before `start()`. */
  get etcdSessionState(): SessionState | undefined {
    return this.registry?.session.state;
  }

  private follow(options: ShardRegistryOptions, port: number): RegistryParts {
    const { etcd, keys, nodeId, index } = options;
    const advertise = options.advertise.replace(/:0$/, `:${port}`);
    const session = new NodeSession(
      { etcd, keys, nodeId, leaseTtlSeconds: options.leaseTtlSeconds },
      { addr: advertise, index, shard: this.options.shard, versions: {}, stopping: false },
    );
    session.on('state', (state, cause) => this.log.info({ state, cause: cause?.message }, 'etcd session'));
    const view = new ClusterView({ etcd, keys });
    const follower = new VersionFollower({
      index,
      shard: this.options.shard,
      view,
      session,
      catalog: this.catalog,
      load: (location) => this.loadVersion(location),
      unloadGraceMs: options.unloadGraceMs,
      onServing: (serving) => this.server.setServing(serving),
      log: this.log,
    });
    void session.start();
    void view.start().then(() => follower.start());
    return { session, view, follower, stoppingNoticeMs: options.stoppingNoticeMs ?? DEFAULT_STOPPING_NOTICE_MS };
  }

  /** Loads a version folder, or this node's shard of a version in object storage (downloaded to the cache first). */
  private async loadVersion(location: string): Promise<LoadedVersion> {
    if (!isObjectUrl(location)) return this.loadFolder(location);
    const cache = this.options.versionCache;
    if (cache === undefined) throw new Error(`${location} is in object storage, and this node has no --cache-dir to download it to`);
    const inUse = new Set([...this.catalog.loaded()].map((loaded) => entryName(loaded.index, loaded.version)));
    const dir = await cache.fetch(location, inUse);
    try {
      return await this.loadFolder(dir);
    } catch (err) {
      const manifest = await readManifest(dir).catch(() => undefined);
      if (manifest !== undefined) await cache.forget(manifest.index, manifest.version);
      throw err;
    }
  }

  private async loadFolder(dir: string): Promise<LoadedVersion> {
    const loaded = await LoadedVersion.load(dir, this.options.shard, this.loadForest, {
      verifyChecksums: this.options.verifyChecksums ?? DEFAULT_VERIFY_CHECKSUMS,
      prefault: this.options.prefault ?? DEFAULT_PREFAULT,
      onFileChanged: (loaded, err) => this.log.error({ index: loaded.index, version: loaded.version, shard: loaded.shard, err }, 'index file changed on disk while served'),
    });
    for (const { kind, state, reason } of loaded.sidecars) {
      if (state !== 'missing' && state !== 'refused') continue;
      const without = kind === 'codes' ? 'searching the forest alone (exact)' : 'ignoring ef (no graph)';
      this.log.warn({ index: loaded.index, version: loaded.version, shard: loaded.shard, sidecar: kind, state, reason }, `sidecar ${state}: ${without}`);
    }
    return loaded;
  }

  private logError(err: CanopyError, method: string, trace: LogTraceFields): void {
    if (err.codeName === 'INTERNAL') this.log.error({ err, method, ...trace }, 'request failed');
    else this.log.debug({ code: err.codeName, method, message: err.message, ...trace }, 'request refused');
  }
}

/** Waits for `promise`, but no longer than `ms` (etcd may be unreachable while stopping). */
function withTimeout(promise: Promise<unknown>, ms: number): Promise<unknown> {
  return Promise.race([promise, new Promise((resolve) => setTimeout(resolve, ms).unref())]);
}
