// Attribute keys shared by spans and metrics, in one place so a dashboard
// query, a span search and the code that records them agree. Prometheus
// exposes each key with dots turned into underscores (`canopy.shard` ->
// `canopy_shard`).

/** OpenTelemetry RPC semantic conventions (the subset Canopy records). */
export const ATTR_RPC_SYSTEM = 'rpc.system';
export const ATTR_RPC_SERVICE = 'rpc.service';
/** The method name alone, e.g. `Search` (not the full `/pkg.Service/Method` path). */
export const ATTR_RPC_METHOD = 'rpc.method';
/** The gRPC status code as a number (0 = OK). */
export const ATTR_RPC_GRPC_STATUS_CODE = 'rpc.grpc.status_code';
export const RPC_SYSTEM_GRPC = 'grpc';

/** Shard number (integer) a router call or a shard node serves. */
export const ATTR_SHARD = 'canopy.shard';
/** Why a router sent this shard call: first try, retry after a retryable failure, or hedge. */
export const ATTR_ATTEMPT = 'canopy.attempt';
export type AttemptKind = 'first' | 'retry' | 'hedge';
/** How a shard call ended, as the router saw it: `ok`, or the lower-case gRPC status name. */
export const ATTR_OUTCOME = 'canopy.outcome';
/** Replica address (HOST:PORT) a router call went to. */
export const ATTR_REPLICA = 'canopy.replica';

export const ATTR_INDEX = 'canopy.index';
export const ATTR_INDEX_VERSION = 'canopy.index.version';
/** A sidecar's kind (`codes`, `graph`) on the sidecar state metric. */
export const ATTR_SIDECAR = 'canopy.sidecar';
/** A lifecycle state (index version: loading|ready|failed; sidecar: loaded|absent|missing|refused; etcd session or watch: their states). */
export const ATTR_STATE = 'canopy.state';

/**
 * Engine span: the k asked of the engine (the query's k plus its exclusions),
 * the effective per-shard search_k, and the items returned. The engine does
 * not count the candidates a search inspects; search_k is the budget Annoy's
 * search collects candidates up to, so it stands in for that count.
 */
export const ATTR_K = 'canopy.k';
export const ATTR_SEARCH_K = 'canopy.search_k';
export const ATTR_ITEMS_RETURNED = 'canopy.items_returned';
/** Queries in one batched call (BatchSearch, or a coalesced shard call). */
export const ATTR_BATCH_QUERIES = 'canopy.batch_queries';
