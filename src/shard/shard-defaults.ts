// A shard node's search queue defaults. Constants only, importing nothing:
// the CLI shows them in `canopy serve shard --help` without loading the addon.

/**
 * Tasks the engine holds waiting per search thread (a batch counts one per
 * slice, at most one slice per thread) before it refuses more at once with
 * RESOURCE_EXHAUSTED: a bound on memory, room for a client with ~100 calls in
 * flight on a 2-core node or the coalesced calls of 8 routers (8 in flight each).
 */
export const DEFAULT_QUEUED_SEARCHES_PER_THREAD = 64;

/**
 * The latency bound: once the queue stands (its oldest search waited over this,
 * or a task's run time if longer, for an interval), a call is refused while the
 * searches queued ahead of it would take longer than this to start (their
 * count x the recent mean run time / threads). Cheap searches may queue deep,
 * costly ones hardly at all, so an accepted call waits about the same either
 * way; a queue that drains now and then refuses nothing. Measured in
 * load-tests/overload/overload.js; a router retries a refused call on another
 * replica.
 */
export const DEFAULT_MAX_QUEUE_WAIT_MS = 2;
