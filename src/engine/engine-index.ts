// The engine's Index: an Annoy-compatible forest built here or mapped from a file, searched on native threads.
import { availableParallelism } from 'node:os';

import type { SidecarKind } from '../format/manifest';
import type { Metric } from '../format/metric';
import { addon, type NativeIndex, type NativeSearchOptions, type SearchResult, type Vector } from './native-addon';

export interface IndexOptions {
  dim: number;
  metric: Metric;
  /** Build seed; default Annoy's (1234567890987654321). Thread t of a build uses seed + t, as Annoy. */
  seed?: number;
}

export interface BuildOptions {
  /** Number of trees; default -1: Annoy's rule, trees until the forest has 2x as many nodes as items. */
  nTrees?: number;
  /** Threads building trees at once; default: the number of cores. */
  threads?: number;
}

export interface LoadOptions {
  dim: number;
  metric: Metric;
  /** Read the whole file into the page cache while loading (MAP_POPULATE); default false. */
  prefault?: boolean;
}

export interface SearchOptions {
  /** Candidates to collect, counted as Annoy counts them; <= 0 or undefined: nTrees * k. With `ef`
   * and a graph, the candidates of the forest search that finds the graph search's entry points;
   * <= 0 or undefined there: ef (at least one leaf). */
  searchK?: number;
  /** Beam width of a search over the neighbour graph (raised to k if below); 0 or undefined: the
   * forest alone, Annoy's search. Ignored when the index has no graph. */
  ef?: number;
  /** Search the forest only, as Annoy does (same answers as Annoy), even when codes are loaded. Default false. */
  exact?: boolean;
  /**
   * With codes: how many of the best candidates by code estimate are re-ranked with exact distances;
   * default 2 * k, at least 10. Ignored by exact searches and by graph searches (`ef`), which score
   * on exact distances throughout.
   */
  rerank?: number;
}

export interface CodesOptions {
  /** Seed of the codes' random rotation; default a fixed one, so the same forest gives the same sidecar. */
  seed?: number;
}

export interface GraphBuildOptions {
  /** Threads building at once; default: the number of cores. The graph is the same for any count. */
  threads?: number;
  /**
   * Neighbours kept per item, a multiple of 8 in 16..256; default: chosen by the build, the least
   * multiple of 8 in 16..48 that holds 95% of the pruned neighbour lists whole (native/src/graph_build.h).
   */
  width?: number;
}

const DEFAULT_N_TREES = -1;

/**
 * An Annoy-compatible index. Life cycle as Annoy: addItem... then build, then save/search; or load.
 * Sync methods run on the calling thread; build() and the async searches run on native threads and
 * leave the event loop free. Searches are safe to run concurrently; unload() while searches are in
 * flight is safe (the mapping goes when the last one finishes). Result arrays are owned by the caller.
 *
 * A loaded file that shrinks on disk while mapped (truncated, or rewritten in place by `cp`) does not
 * bring the process down (native/src/mapping_guard.h): from the first read that finds pages gone, every
 * search and read of this index fails with BAD_FILE naming the file. Unload it and load the file again.
 */
export class Index {
  readonly dim: number;
  readonly metric: Metric;
  private readonly native: NativeIndex;

  constructor(opts: IndexOptions);
  /** @internal wraps a loaded native index */
  constructor(opts: IndexOptions, loaded: NativeIndex);
  constructor(opts: IndexOptions, loaded?: NativeIndex) {
    this.dim = opts.dim;
    this.metric = opts.metric;
    this.native = loaded ?? new addon.NativeIndex(opts.metric, opts.dim, opts.seed);
  }

  /** Maps an Annoy file read-only. Throws EngineError BAD_FILE (size/structure) or IO_ERROR (open/mmap). */
  static load(path: string, opts: LoadOptions): Index {
    const native = addon.NativeIndex.load(path, opts.metric, opts.dim, opts.prefault ?? false);
    return new Index({ dim: opts.dim, metric: opts.metric }, native);
  }

  /** Builds straight into `path` instead of memory (for indexes larger than RAM); call before addItem. */
  onDiskBuild(path: string): void {
    this.native.onDiskBuild(path);
  }

  /** Ids need not be dense: gaps are holes, as in Annoy (they cost a node each). */
  addItem(i: number, vector: Vector): void {
    this.native.addItem(i, vector);
  }

  /** Builds on native threads; poll treesBuilt for progress. Other calls fail with BAD_STATE meanwhile. */
  build(opts: BuildOptions = {}): Promise<void> {
    const { nTrees, threads } = resolveBuild(opts);
    return rejectingAsync(() => this.native.build(nTrees, threads));
  }

  buildSync(opts: BuildOptions = {}): void {
    const { nTrees, threads } = resolveBuild(opts);
    this.native.buildSync(nTrees, threads);
  }

  get treesBuilt(): number {
    return this.native.treesBuilt();
  }

  /**
   * Builds the neighbour graph over the built or loaded forest (native/src/graph_build.h), on a
   * native thread; searches go on meanwhile and use it (with `ef`) once the promise resolves.
   * Angular, euclidean and manhattan only (INVALID_ARGUMENT otherwise).
   */
  buildGraph(opts: GraphBuildOptions = {}): Promise<void> {
    return rejectingAsync(() => this.native.buildGraph(opts.threads ?? availableParallelism(), opts.width));
  }

  buildGraphSync(opts: GraphBuildOptions = {}): void {
    this.native.buildGraphSync(opts.threads ?? availableParallelism(), opts.width);
  }

  get hasGraph(): boolean {
    return this.native.hasGraph();
  }

  /** Writes the graph to a sidecar file (docs/sidecar-format.md, section kind 5) tied to this forest. */
  saveGraph(path: string): void {
    this.native.saveGraph(path);
  }

  /**
   * Maps a sidecar written by saveGraph for this forest and searches with its graph. Throws BAD_FILE
   * naming the file when it belongs to another forest, is damaged, or holds no valid graph.
   */
  loadGraph(path: string, opts: { prefault?: boolean } = {}): void {
    this.native.loadGraph(path, opts.prefault ?? false);
  }

  /** Writes Annoy's file layout, then serves from that file (as Annoy does). */
  save(path: string): void {
    this.native.save(path);
  }

  /**
   * Writes a sidecar of compact codes for this forest (docs/sidecar-format.md; by convention beside the
   * forest, `x.ann` -> `x.codes`), then searches through it: candidates are scored on the codes and
   * the best `rerank` re-ranked exactly, so returned distances stay exact. Hamming has no codes (its
   * sidecar is empty and searches stay exact). Call after save(): saving drops codes made before.
   */
  saveCodes(path: string, opts: CodesOptions = {}): void {
    this.native.saveCodes(path, opts.seed);
  }

  /**
   * Maps a sidecar of codes written for this forest and searches through it from now on. Throws
   * EngineError BAD_FILE naming the file when it is stale (the forest changed), foreign, truncated or
   * corrupt; the index keeps searching as before.
   */
  loadCodes(path: string, opts: { prefault?: boolean } = {}): void {
    this.native.loadCodes(path, opts.prefault ?? false);
  }

  /** loadCodes or loadGraph, as `kind` says (the kinds of a manifest's sidecars). */
  loadSidecar(kind: SidecarKind, path: string, opts: { prefault?: boolean } = {}): void {
    if (kind === 'codes') this.loadCodes(path, opts);
    else this.loadGraph(path, opts);
  }

  /** True while searches go through codes (unless a search asks for `exact`). */
  get hasCodes(): boolean {
    return this.native.hasCodes();
  }

  search(vector: Vector, k: number, opts: SearchOptions = {}): Promise<SearchResult> {
    return rejectingAsync(() => this.native.search(vector, k, ...nativeOptions(opts)));
  }

  searchSync(vector: Vector, k: number, opts: SearchOptions = {}): SearchResult {
    return this.native.searchSync(vector, k, ...nativeOptions(opts));
  }

  searchByItem(item: number, k: number, opts: SearchOptions = {}): Promise<SearchResult> {
    return rejectingAsync(() => this.native.searchByItem(item, k, ...nativeOptions(opts)));
  }

  searchByItemSync(item: number, k: number, opts: SearchOptions = {}): SearchResult {
    return this.native.searchByItemSync(item, k, ...nativeOptions(opts));
  }

  /** Many queries in one crossing, spread over the search pool; results in query order. */
  searchBatch(vectors: Float32Array | readonly Vector[], k: number, opts: SearchOptions = {}): Promise<SearchResult[]> {
    return rejectingAsync(() => this.native.searchBatch(vectors, k, ...nativeOptions(opts)));
  }

  getItemVector(i: number): Float32Array {
    return this.native.getItemVector(i);
  }

  /** The distance Annoy's get_distance returns (dot: the inner product). */
  getDistance(i: number, j: number): number {
    return this.native.getDistance(i, j);
  }

  get nItems(): number {
    return this.native.nItems();
  }

  get nTrees(): number {
    return this.native.nTrees();
  }

  /** Releases the forest; in-flight searches finish first. Any later call fails with BAD_STATE. */
  unload(): void {
    this.native.unload();
  }
}

/** Bad arguments and QUEUE_FULL surface as a rejected promise (settled at once), never as a throw. */
function nativeOptions(opts: SearchOptions): NativeSearchOptions {
  return [opts.searchK, opts.ef, opts.exact, opts.rerank];
}

function rejectingAsync<T>(start: () => Promise<T>): Promise<T> {
  try {
    return start();
  } catch (e) {
    return Promise.reject(e);
  }
}

function resolveBuild(opts: BuildOptions): { nTrees: number; threads: number } {
  return { nTrees: opts.nTrees ?? DEFAULT_N_TREES, threads: opts.threads ?? availableParallelism() };
}
