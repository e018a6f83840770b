// Typed view of build/Release/canopy.node (native/binding/). Only src/engine uses it.
import path from 'node:path';

import { EngineError } from './engine-error';
import type { Metric } from '../format/metric';

/** A query or item vector: read in place when it is a Float32Array. */
export type Vector = Float32Array | readonly number[];

/** Neighbours best first; for dot, distances are inner products (largest first). */
export interface SearchResult {
  ids: Int32Array;
  distances: Float32Array;
}

/** A search's options, positional after (query, k). */
export type NativeSearchOptions = [
  searchK: number | undefined,
  ef: number | undefined,
  exact: boolean | undefined,
  rerank: number | undefined,
];

export interface NativeIndex {
  onDiskBuild(path: string): void;
  addItem(item: number, vector: Vector): void;
  buildSync(nTrees: number, threads: number): void;
  build(nTrees: number, threads: number): Promise<void>;
  treesBuilt(): number;
  save(path: string): void;
  buildGraphSync(threads: number, width: number | undefined): void;
  buildGraph(threads: number, width: number | undefined): Promise<void>;
  hasGraph(): boolean;
  saveGraph(path: string): void;
  loadGraph(path: string, prefault: boolean): void;
  saveCodes(path: string, seed: number | undefined): void;
  loadCodes(path: string, prefault: boolean): void;
  hasCodes(): boolean;
  searchSync(vector: Vector, k: number, ...opts: NativeSearchOptions): SearchResult;
  search(vector: Vector, k: number, ...opts: NativeSearchOptions): Promise<SearchResult>;
  searchByItemSync(item: number, k: number, ...opts: NativeSearchOptions): SearchResult;
  searchByItem(item: number, k: number, ...opts: NativeSearchOptions): Promise<SearchResult>;
  searchBatch(vectors: Float32Array | readonly Vector[], k: number, ...opts: NativeSearchOptions): Promise<SearchResult[]>;
  getItemVector(item: number): Float32Array;
  getDistance(i: number, j: number): number;
  nItems(): number;
  nTrees(): number;
  unload(): void;
}

interface NativeIndexClass {
  new (metric: Metric, dim: number, seed?: number | bigint): NativeIndex;
  load(path: string, metric: Metric, dim: number, prefault: boolean): NativeIndex;
}

export interface SearchPoolStats {
  threads: number;
  queued: number;
  running: number;
  maxQueue: number;
  /** The wait bound (0: off), the recent mean time of one search, and the estimated wait of the queue now. */
  maxQueueWaitMs: number;
  meanSearchMs: number;
  queuedWaitMs: number;
}

interface Addon {
  NativeIndex: NativeIndexClass;
  setErrorClass(ctor: typeof EngineError): void;
  configureSearchPool(threads: number | undefined, maxQueue: number | undefined, maxQueueWaitMs: number | undefined): void;
  searchPoolStats(): SearchPoolStats;
  /** The distance kernels chosen for this CPU: 'avx512', 'avx2' or 'scalar'. */
  simdLevel: string;
}

// Same relative path from src/engine (tests) and dist/engine (compiled).
const ADDON_PATH = path.join(__dirname, '..', '..', 'build', 'Release', 'canopy.node');

function loadAddon(): Addon {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const addon = require(ADDON_PATH) as Addon;
  addon.setErrorClass(EngineError);
  return addon;
}

export const addon: Addon = loadAddon();
