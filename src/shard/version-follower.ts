// Makes a shard node hold what the cluster asks of it: for its index, the
// active version (what routers query) and the target (what comes next). It
// loads each beside what it serves, reports loading/ready/failed under its
// node key, makes the active version current, and unloads a version that is
// neither active nor target once a grace period has passed, so requests that
// a router pinned to it just before a flip still find it.
import type { Logger } from 'pino';

import { sameShardFiles, type Manifest } from '../format/manifest';
import type { ClusterSnapshot, ClusterView } from '../registry/cluster-view';
import type { NodeSession } from '../registry/node-session';
import type { VersionRecord, VersionState } from '../registry/records';
import type { LoadedVersion } from './loaded-version';
import type { ShardCatalog } from './shard-catalog';

export const DEFAULT_UNLOAD_GRACE_MS = 30_000;

export interface VersionFollowerOptions {
  readonly index: string;
  readonly shard: number;
  readonly view: ClusterView;
  readonly session: NodeSession;
  readonly catalog: ShardCatalog;
  /** Loads and checks this node's shard of the version folder at `location`. */
  readonly load: (location: string) => Promise<LoadedVersion>;
  /** How long a version that left active and target stays loaded; default 30 s. */
  readonly unloadGraceMs?: number;
  /** Told whether the active version is loaded here (the Search service's health). */
  readonly onServing: (serving: boolean) => void;
  readonly log: Logger;
}

export class VersionFollower {
  private readonly unloadGraceMs: number;
  private readonly loading = new Set<string>();
  /** Versions that failed, with the `publishedAt` of the record that failed: publishing again retries. */
  private readonly failed = new Map<string, string>();
  private readonly unloadTimers = new Map<string, NodeJS.Timeout>();
  private readonly listener = (snapshot: ClusterSnapshot) => this.reconcile(snapshot);
  private stopped = false;

  constructor(private readonly options: VersionFollowerOptions) {
    this.unloadGraceMs = options.unloadGraceMs ?? DEFAULT_UNLOAD_GRACE_MS;
  }

  start(): void {
    this.options.view.on('change', this.listener);
    this.reconcile(this.options.view.snapshot);
  }

  stop(): void {
    this.stopped = true;
    this.options.view.off('change', this.listener);
    for (const timer of this.unloadTimers.values()) clearTimeout(timer);
    this.unloadTimers.clear();
  }

  /** Versions that are loading or failed to load here (the loaded ones are in the catalog). */
  notLoaded(): Array<{ version: string; state: 'loading' | 'failed' }> {
    return [
      ...[...this.loading].map((version) => ({ version, state: 'loading' as const })),
      ...[...this.failed.keys()].map((version) => ({ version, state: 'failed' as const })),
    ];
  }

  private reconcile(snapshot: ClusterSnapshot): void {
    if (this.stopped) return;
    const { index, catalog } = this.options;
    const view = snapshot.indexes.get(index);
    const wanted = new Map<string, VersionRecord>();
    for (const version of [view?.active, view?.target]) {
      const record = version === undefined ? undefined : view?.versions.get(version);
      if (version !== undefined && record !== undefined) wanted.set(version, record);
    }
    for (const [version, record] of wanted) {
      if (catalog.has(index, version) || this.loading.has(version)) continue;
      if (this.failed.get(version) === record.publishedAt) continue;
      void this.load(version, record);
    }
    const active = view?.active;
    if (active !== undefined && catalog.has(index, active)) catalog.setCurrent(index, active);
    this.options.onServing(active !== undefined && catalog.has(index, active));
    for (const version of catalog.versionsOf(index)) {
      if (wanted.has(version)) this.cancelUnload(version);
      else this.scheduleUnload(version);
    }
    this.forgetFailures(wanted);
  }

  private async load(version: string, record: VersionRecord): Promise<void> {
    const { index, shard, log } = this.options;
    this.loading.add(version);
    this.failed.delete(version);
    void this.report(version, { state: 'loading' });
    const startedMs = Date.now();
    try {
      const loaded = await this.options.load(record.location);
      checkSameVersion(loaded.manifest, record.manifest, shard, record.location);
      if (this.stopped) {
        loaded.release();
        return;
      }
      this.options.catalog.add(loaded, false);
      log.info({ index, version, shard, items: loaded.nItems, loadMs: Date.now() - startedMs }, 'version ready');
      void this.report(version, { state: 'ready' });
    } catch (err) {
      const reason = (err as Error).message;
      this.failed.set(version, record.publishedAt);
      log.error({ index, version, shard, reason }, 'version failed to load');
      void this.report(version, { state: 'failed', reason });
    } finally {
      this.loading.delete(version);
    }
    this.reconcile(this.options.view.snapshot);
  }

  private scheduleUnload(version: string): void {
    if (this.unloadTimers.has(version)) return;
    const timer = setTimeout(() => {
      this.unloadTimers.delete(version);
      this.unload(version);
    }, this.unloadGraceMs);
    timer.unref();
    this.unloadTimers.set(version, timer);
  }

  private cancelUnload(version: string): void {
    const timer = this.unloadTimers.get(version);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.unloadTimers.delete(version);
  }

  private unload(version: string): void {
    const { index, catalog, log } = this.options;
    const others = catalog.versionsOf(index).filter((v) => v !== version);
    // A version still current is left alone while another could take over but has not yet.
    try {
      catalog.remove(index, version);
    } catch {
      return;
    }
    log.info({ index, version, remaining: others }, 'version unloaded');
    void this.report(version, undefined);
    this.reconcile(this.options.view.snapshot);
  }

  /** A failure stays reported while the version is wanted; once it is not, it leaves the record. */
  private forgetFailures(wanted: ReadonlyMap<string, VersionRecord>): void {
    for (const version of [...this.failed.keys()]) {
      if (wanted.has(version)) continue;
      this.failed.delete(version);
      void this.report(version, undefined);
    }
  }

  private report(version: string, state: VersionState | undefined): Promise<void> {
    return this.options.session.update((record) => {
      const versions = { ...record.versions };
      if (state === undefined) delete versions[version];
      else versions[version] = state;
      return { ...record, versions };
    });
  }
}

/** The folder must hold the files that were published under this version name. */
function checkSameVersion(onDisk: Manifest, published: Manifest, shard: number, location: string): void {
  if (onDisk.version !== published.version || onDisk.index !== published.index || !sameShardFiles(onDisk.shards[shard], published.shards[shard])) {
    throw new Error(`${location} holds ${onDisk.index}/${onDisk.version} with other files than the published ${published.index}/${published.version}`);
  }
}
