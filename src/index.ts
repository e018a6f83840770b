// Package entry: the engine (build, save, load and search Annoy-compatible forests) and a client of
// a Canopy router or shard node.
export { EngineError, type EngineErrorCode } from './engine/engine-error';
export {
  Index,
  type BuildOptions,
  type GraphBuildOptions,
  type IndexOptions,
  type LoadOptions,
  type SearchOptions,
} from './engine/engine-index';
export type { Metric } from './format/metric';
export type { SearchResult, SearchPoolStats, Vector } from './engine/native-addon';
export { configureSearchPool, engineSimdLevel, searchPoolStats, type SearchPoolOptions } from './engine/search-pool';
export { CanopyClient, type CanopyClientOptions, type QueryOptions } from './client/canopy-client';
export { CanopyError } from './wire/canopy-error';
