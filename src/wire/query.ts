// Checking a query once, the same way on every hop: the router checks before
// it fans out (so one bad query never spoils a coalesced batch) and the shard
// node checks again (it may be called directly).
import type { BatchSearchRequest, SearchRequest } from './contract';
import { CanopyError } from './canopy-error';
import {
  DEFAULT_MAX_BATCH_QUERIES,
  DEFAULT_MAX_EF,
  DEFAULT_MAX_EXCLUDE_IDS,
  DEFAULT_MAX_K,
  DEFAULT_MAX_RERANK,
  DEFAULT_MAX_SEARCH_K,
} from './server-limits';

export interface QueryLimitsOptions {
  /** Largest `k` accepted. */
  readonly maxK?: number;
  /** Most queries in one BatchSearch. */
  readonly maxBatchQueries?: number;
  /** Most `exclude_ids` in one query. */
  readonly maxExcludeIds?: number;
  /** Largest `search_k` accepted. */
  readonly maxSearchK?: number;
  /** Largest `rerank` accepted. */
  readonly maxRerank?: number;
  /** Largest `ef` accepted. */
  readonly maxEf?: number;
}

export interface QueryLimits {
  readonly maxK: number;
  readonly maxBatchQueries: number;
  readonly maxExcludeIds: number;
  readonly maxSearchK: number;
  readonly maxRerank: number;
  readonly maxEf: number;
}

export function resolveQueryLimits(options: QueryLimitsOptions = {}): QueryLimits {
  return {
    maxK: options.maxK ?? DEFAULT_MAX_K,
    maxBatchQueries: options.maxBatchQueries ?? DEFAULT_MAX_BATCH_QUERIES,
    maxExcludeIds: options.maxExcludeIds ?? DEFAULT_MAX_EXCLUDE_IDS,
    maxSearchK: options.maxSearchK ?? DEFAULT_MAX_SEARCH_K,
    maxRerank: options.maxRerank ?? DEFAULT_MAX_RERANK,
    maxEf: options.maxEf ?? DEFAULT_MAX_EF,
  };
}

/** The query parts that do not depend on the vector (SearchByItem has no vector). */
export interface QueryShape {
  readonly k: number;
  /** Undefined: the engine's default (n_trees * k). */
  readonly searchK: number | undefined;
  readonly excludeIds: readonly string[];
  /** Search the forest alone, as Annoy, even with codes. */
  readonly exact: boolean;
  /** Undefined: the engine's default (2k, at least 10). */
  readonly rerank: number | undefined;
  /** Undefined: no graph search. */
  readonly ef: number | undefined;
}

/** A checked query. `vector` may view the request's bytes: it lives as long as the request. */
export interface ParsedQuery extends QueryShape {
  readonly vector: Float32Array;
}

/** What a request says of a query's shape, as the proto's fields decode. */
export interface ShapeFields {
  k: number;
  searchK: number;
  excludeIds: string[];
  exact: boolean;
  rerank: number;
  ef: number;
}

export function parseShape(req: ShapeFields, limits: QueryLimits, where = 'query'): QueryShape {
  if (!Number.isInteger(req.k) || req.k < 1 || req.k > limits.maxK) {
    throw CanopyError.invalidArgument(`${where}: k must be between 1 and ${limits.maxK} (max k), got ${req.k}`);
  }
  if (!Number.isInteger(req.searchK) || req.searchK < -1) {
    throw CanopyError.invalidArgument(`${where}: search_k must be -1, 0 (default) or positive, got ${req.searchK}`);
  }
  if (req.searchK > limits.maxSearchK) {
    throw CanopyError.invalidArgument(`${where}: search_k must be at most ${limits.maxSearchK} (max search_k), got ${req.searchK}`);
  }
  if (req.excludeIds.length > limits.maxExcludeIds) {
    throw CanopyError.invalidArgument(
      `${where}: at most ${limits.maxExcludeIds} exclude_ids are accepted, got ${req.excludeIds.length}`,
    );
  }
  const rerank = optionalCount(where, 'rerank', req.rerank, limits.maxRerank, 'max rerank');
  const ef = optionalCount(where, 'ef', req.ef, limits.maxEf, 'max ef');
  return { k: req.k, searchK: req.searchK > 0 ? req.searchK : undefined, excludeIds: req.excludeIds, exact: req.exact, rerank, ef };
}

/** `rerank` or `ef`: 0 (default, undefined) or a positive integer up to `max`. */
function optionalCount(where: string, field: string, value: number, max: number, limit: string): number | undefined {
  if (!Number.isInteger(value) || value < 0) throw CanopyError.invalidArgument(`${where}: ${field} must be 0 (default) or positive, got ${value}`);
  if (value > max) throw CanopyError.invalidArgument(`${where}: ${field} must be at most ${max} (${limit}), got ${value}`);
  return value > 0 ? value : undefined;
}

/** The fields that carry a checked shape on to a shard (the inverse of parseShape). */
export function shapeFields(shape: QueryShape): ShapeFields {
  return {
    k: shape.k,
    searchK: shape.searchK ?? 0,
    excludeIds: [...shape.excludeIds],
    exact: shape.exact,
    rerank: shape.rerank ?? 0,
    ef: shape.ef ?? 0,
  };
}

export function parseQuery(req: SearchRequest, dim: number, limits: QueryLimits, where = 'query'): ParsedQuery {
  const shape = parseShape(req, limits, where);
  return { ...shape, vector: decodeVector(req, dim, where) };
}

/**
 * Every query of a batch, checked: the batch is within `maxBatchQueries`, and
 * each query names the batch's index (or none) and is a valid query itself.
 */
export function parseBatch(req: BatchSearchRequest, dim: number, limits: QueryLimits): ParsedQuery[] {
  if (req.queries.length > limits.maxBatchQueries) {
    throw CanopyError.invalidArgument(`a batch holds at most ${limits.maxBatchQueries} queries, got ${req.queries.length}`);
  }
  return req.queries.map((q, i) => {
    const where = `queries[${i}]`;
    if (q.index !== '' && q.index !== req.index) {
      throw CanopyError.invalidArgument(`${where}: index ${JSON.stringify(q.index)} differs from the batch's ${JSON.stringify(req.index)}`);
    }
    return parseQuery(q, dim, limits, where);
  });
}

/**
 * The query vector from `vector` (floats) or `vector_f32` (little-endian
 * float32 bytes), checked for dimension and finiteness. Aligned bytes are
 * viewed in place; unaligned bytes (protobuf gives no alignment) are copied.
 */
export function decodeVector(req: { vector: number[]; vectorF32: Buffer }, dim: number, where = 'query'): Float32Array {
  const bytes = req.vectorF32;
  const hasBytes = bytes !== undefined && bytes.length > 0;
  const hasFloats = req.vector !== undefined && req.vector.length > 0;
  if (hasBytes && hasFloats) throw CanopyError.invalidArgument(`${where}: give vector or vector_f32, not both`);
  if (!hasBytes && !hasFloats) throw CanopyError.invalidArgument(`${where}: vector (or vector_f32) is required`);
  let vector: Float32Array;
  if (hasBytes) {
    if (bytes.length % 4 !== 0) {
      throw CanopyError.invalidArgument(`${where}: vector_f32 has ${bytes.length} bytes, not a multiple of 4`);
    }
    vector = viewFloat32(bytes);
  } else {
    vector = Float32Array.from(req.vector);
  }
  if (vector.length !== dim) {
    throw CanopyError.invalidArgument(`${where}: vector has dimension ${vector.length}, the index has ${dim}`);
  }
  for (let i = 0; i < vector.length; i++) {
    if (!Number.isFinite(vector[i])) {
      throw CanopyError.invalidArgument(`${where}: vector[${i}] is ${vector[i]}; values must be finite`);
    }
  }
  return vector;
}

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Little-endian float32 bytes as a Float32Array: a view when aligned, else a copy. */
export function viewFloat32(bytes: Uint8Array): Float32Array {
  const n = bytes.length >>> 2;
  if (HOST_IS_LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  const out = new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/** A Float32Array as little-endian bytes for `vector_f32`: no copy on little-endian hosts. */
export function encodeVector(vector: Float32Array): Buffer {
  if (HOST_IS_LITTLE_ENDIAN) return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength);
  const out = Buffer.allocUnsafe(vector.length * 4);
  for (let i = 0; i < vector.length; i++) out.writeFloatLE(vector[i]!, i * 4);
  return out;
}
