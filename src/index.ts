// Package entry: the public API of Canopy's engine (other parts add their exports here).
export { EngineError, type EngineErrorCode } from './engine/engine-error';
export { Index, type BuildOptions, type IndexOptions, type LoadOptions, type SearchOptions } from './engine/engine-index';
export type { Metric } from './engine/metric';
export type { SearchResult, SearchPoolStats, Vector } from './engine/native-addon';
export { configureSearchPool, engineSimdLevel, searchPoolStats, type SearchPoolOptions } from './engine/search-pool';
