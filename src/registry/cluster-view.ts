// A process's view of one cluster in etcd: every node record, and per index
// its versions, target and active version. It lists the cluster prefix once,
// then watches from the listed revision, so no change between the two is
// missed. If the watch is cancelled (etcd compacted past it) the view lists
// again. While etcd is unreachable the view keeps what it last saw: routers
// go on serving from it; `watchState` says whether the watch is live.
import { EventEmitter } from 'node:events';

import type { Etcd3, IKeyValue, Watcher } from 'etcd3';

import { parseManifest } from '../format/manifest';
import type { ClusterKeys } from './keys';
import { type ForcedPublish, type NodeRecord, type VersionRecord, parseNodeRecord } from './records';

export const DEFAULT_RELIST_DELAY_MS = 500;

export interface IndexVersions {
  readonly versions: ReadonlyMap<string, VersionRecord>;
  readonly target?: string;
  readonly active?: string;
}

export interface ClusterSnapshot {
  /** etcd revision this snapshot reflects. */
  readonly revision: number;
  readonly nodes: ReadonlyMap<string, NodeRecord>;
  readonly indexes: ReadonlyMap<string, IndexVersions>;
}

/** `watching` while the watch is attached in etcd; `disconnected` before the first list, while etcd is out of reach, and while listing again. */
export type WatchState = 'watching' | 'disconnected';

export interface ClusterViewEvents {
  change: [snapshot: ClusterSnapshot];
  /** A value under the prefix that could not be read; it is left out of the snapshot. */
  invalid: [key: string, reason: string];
}

export interface ClusterViewOptions {
  readonly etcd: Etcd3;
  readonly keys: ClusterKeys;
  /** Pause before listing again after a failed list or a cancelled watch; default 500 ms. */
  readonly relistDelayMs?: number;
}

export class ClusterView extends EventEmitter<ClusterViewEvents> {
  private readonly values = new Map<string, string>();
  private revision = 0;
  private watcher: Watcher | undefined;
  private closed = false;
  private currentWatchState: WatchState = 'disconnected';
  private current: ClusterSnapshot = { revision: 0, nodes: new Map(), indexes: new Map() };

  constructor(private readonly options: ClusterViewOptions) {
    super();
  }

  get snapshot(): ClusterSnapshot {
    return this.current;
  }

  get watchState(): WatchState {
    return this.currentWatchState;
  }

  /** Lists and starts watching; resolves after the first successful list (retrying until then). */
  async start(): Promise<void> {
    while (!this.closed) {
      try {
        await this.listAndWatch();
        return;
      } catch {
        await this.pause();
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.currentWatchState = 'disconnected';
    const watcher = this.watcher;
    this.watcher = undefined;
    await watcher?.cancel().catch(() => undefined);
  }

  private async listAndWatch(): Promise<void> {
    const { root } = this.options.keys;
    const listed = await this.options.etcd.getAll().prefix(root).exec();
    this.values.clear();
    for (const kv of listed.kvs) this.values.set(kv.key.toString(), kv.value.toString());
    this.revision = Number(listed.header.revision);
    this.publish();

    const watcher = await this.options.etcd
      .watch()
      .prefix(root)
      .startRevision(String(this.revision + 1))
      .create();
    if (this.closed) {
      await watcher.cancel();
      return;
    }
    this.watcher = watcher;
    this.currentWatchState = 'watching';
    // etcd3 redials a broken watch stream by itself and resumes from the last revision seen.
    watcher.on('disconnected', () => (this.currentWatchState = 'disconnected'));
    watcher.on('connected', () => (this.currentWatchState = 'watching'));
    watcher.on('data', (res) => {
      for (const event of res.events) this.apply(event.type, event.kv);
      this.revision = Number(res.header.revision);
      this.publish();
    });
    watcher.on('error', () => void this.relist(watcher));
  }

  private apply(type: 'Put' | 'Delete', kv: IKeyValue): void {
    const key = kv.key.toString();
    if (type === 'Delete') this.values.delete(key);
    else this.values.set(key, kv.value.toString());
  }

  /** The watch was cancelled (for example by compaction): list again from scratch. */
  private async relist(failed: Watcher): Promise<void> {
    if (this.watcher !== failed) return;
    this.watcher = undefined;
    this.currentWatchState = 'disconnected';
    await failed.cancel().catch(() => undefined);
    await this.pause();
    await this.start();
  }

  private pause(): Promise<void> {
    const delayMs = this.options.relistDelayMs ?? DEFAULT_RELIST_DELAY_MS;
    return new Promise((resolve) => setTimeout(resolve, delayMs).unref());
  }

  private publish(): void {
    this.current = deriveSnapshot(this.options.keys, this.values, this.revision, (key, reason) => this.emit('invalid', key, reason));
    this.emit('change', this.current);
  }
}

/** Lists the cluster once, without watching: for commands that print or act on one snapshot. */
export async function readCluster(etcd: Etcd3, keys: ClusterKeys): Promise<ClusterSnapshot> {
  const listed = await etcd.getAll().prefix(keys.root).exec();
  const values = new Map(listed.kvs.map((kv) => [kv.key.toString(), kv.value.toString()] as const));
  return deriveSnapshot(keys, values, Number(listed.header.revision), () => undefined);
}

/** The snapshot that the key-value pairs under `keys.root` describe; a value of the wrong shape is reported through `onInvalid` and left out. */
export function deriveSnapshot(
  keys: ClusterKeys,
  values: ReadonlyMap<string, string>,
  revision: number,
  onInvalid: (key: string, reason: string) => void,
): ClusterSnapshot {
  const nodes = new Map<string, NodeRecord>();
  const indexes = new Map<string, { versions: Map<string, VersionRecord>; target?: string; active?: string }>();
  const indexOf = (name: string) => {
    let view = indexes.get(name);
    if (!view) indexes.set(name, (view = { versions: new Map() }));
    return view;
  };
  for (const [key, value] of values) {
    const parsed = keys.parse(key);
    try {
      switch (parsed?.kind) {
        case 'node':
          nodes.set(parsed.nodeId, parseNodeRecord(key, value));
          break;
        case 'version':
          indexOf(parsed.index).versions.set(parsed.version, parseVersionRecord(key, value));
          break;
        case 'target':
          indexOf(parsed.index).target = value;
          break;
        case 'active':
          indexOf(parsed.index).active = value;
          break;
        default:
          break;
      }
    } catch (err) {
      onInvalid(key, (err as Error).message);
    }
  }
  return { revision, nodes, indexes };
}

function parseVersionRecord(key: string, text: string): VersionRecord {
  const raw = JSON.parse(text) as { location?: unknown; manifest?: unknown; publishedAt?: unknown; forced?: ForcedPublish };
  if (typeof raw.location !== 'string' || typeof raw.publishedAt !== 'string') {
    throw new Error(`${key}: not a version record`);
  }
  const record = { location: raw.location, publishedAt: raw.publishedAt, manifest: parseManifest(JSON.stringify(raw.manifest), key) };
  return raw.forced === undefined ? record : { ...record, forced: raw.forced };
}
