// What a shard node needs from the engine. `Index` in src/engine satisfies it;
// naming the need here keeps the shard node's dependency on the engine to
// these few calls.
import type { SidecarKind } from '../format/manifest';
import type { Metric } from '../format/metric';

export interface SearchResult {
  /** Item numbers within this shard, closest first. */
  readonly ids: Int32Array;
  readonly distances: Float32Array;
}

/** The engine's per-search options (src/engine/engine-index.ts SearchOptions); unset ones take the engine's defaults. */
export interface EngineSearchOptions {
  searchK?: number;
  exact?: boolean;
  rerank?: number;
  ef?: number;
}

export interface ShardForest {
  readonly nItems: number;
  readonly nTrees: number;
  readonly dim: number;
  readonly metric: Metric;
  /** Runs on the engine's own threads; the event loop only waits. */
  search(vector: Float32Array, k: number, opts?: EngineSearchOptions): Promise<SearchResult>;
  searchBatch(vectors: readonly Float32Array[], k: number, opts?: EngineSearchOptions): Promise<SearchResult[]>;
  getItemVector(item: number): Float32Array;
  /** Maps a sidecar of this forest; throws (BAD_FILE, naming the file and why) when the engine refuses it. */
  loadSidecar(kind: SidecarKind, file: string, opts: { prefault?: boolean }): void;
  /** Deferred by the engine until in-flight searches finish. */
  unload(): void;
}

export type ForestLoader = (file: string, opts: { dim: number; metric: Metric; prefault?: boolean }) => ShardForest;
