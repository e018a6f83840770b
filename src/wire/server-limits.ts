// The defaults of the limits every Canopy server (shard node or router)
// enforces on what it accepts. Constants only, importing nothing: the CLI
// shows them in `--help` without loading gRPC.

/** Largest `k` accepted. */
export const DEFAULT_MAX_K = 1000;
/** Most queries in one BatchSearch. */
export const DEFAULT_MAX_BATCH_QUERIES = 1024;
/** Most `exclude_ids` in one query. */
export const DEFAULT_MAX_EXCLUDE_IDS = 10_000;
/** Largest `search_k` accepted: bounds the work one query may ask of each shard. */
export const DEFAULT_MAX_SEARCH_K = 1_000_000;
/** Largest `rerank` accepted: each re-ranked candidate reads a full row from the forest. */
export const DEFAULT_MAX_RERANK = 100_000;
/** Largest `ef` accepted: the graph search keeps and scores `ef` items per query. */
export const DEFAULT_MAX_EF = 100_000;

/** Largest request message accepted (gRPC's receive limit). */
export const DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 16 * 1024 * 1024;
/** HTTP/2 streams (calls) one connection may have open at once; a router's coalesced streams need few. */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 1_000;

/**
 * Lag (ms) beyond which calls are refused; 0: off by default. On, it also
 * refuses the calls that arrive just after a one-off stall (a version load, a
 * descheduled process: a lone call met "lag 788 ms over 50" on a loaded test
 * machine), and the setting that kept latency down under a flood was tight
 * (2 ms with --max-inflight-queries 4, load-tests/overload): an operator
 * sets it for the deployment.
 */
export const DEFAULT_MAX_EVENT_LOOP_LAG_MS = 0;
/** Queries admitted and not answered beyond which calls are refused; 0: no bound. */
export const DEFAULT_MAX_INFLIGHT_QUERIES = 0;
