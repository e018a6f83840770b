// Moves each index's `active` version to its `target` once every shard has
// enough ready replicas. Stateless: it reacts to the cluster view, and the
// guarded transaction in flipActive makes concurrent controllers safe.
import type { Etcd3 } from 'etcd3';

import type { ClusterSnapshot, ClusterView } from './cluster-view';
import type { ClusterKeys } from './keys';
import { flipActive, flipsDue } from './versions';

export const DEFAULT_MIN_READY_REPLICAS = 1;

export interface VersionControllerOptions {
  readonly etcd: Etcd3;
  readonly keys: ClusterKeys;
  readonly view: ClusterView;
  /** Ready replicas every shard needs before the flip; default 1. */
  readonly minReadyReplicas?: number;
  /** Told of each flip (for logs and metrics). */
  readonly onFlip?: (index: string, version: string) => void;
  readonly onError?: (err: Error) => void;
}

export class VersionController {
  private readonly minReady: number;
  private readonly inFlight = new Set<string>();
  private readonly listener = (snapshot: ClusterSnapshot) => this.reconcile(snapshot);

  constructor(private readonly options: VersionControllerOptions) {
    this.minReady = options.minReadyReplicas ?? DEFAULT_MIN_READY_REPLICAS;
  }

  start(): void {
    this.options.view.on('change', this.listener);
    this.reconcile(this.options.view.snapshot);
  }

  stop(): void {
    this.options.view.off('change', this.listener);
  }

  private reconcile(snapshot: ClusterSnapshot): void {
    for (const { index, version } of flipsDue(snapshot, this.minReady)) {
      const key = `${index}@${version}`;
      if (this.inFlight.has(key)) continue;
      this.inFlight.add(key);
      flipActive(this.options.etcd, this.options.keys, index, version)
        .then((flipped) => {
          if (flipped) this.options.onFlip?.(index, version);
        })
        .catch((err: Error) => this.options.onError?.(err))
        .finally(() => this.inFlight.delete(key));
    }
  }
}
