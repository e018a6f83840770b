// A router's deadline, hedging and queue-wait defaults. Constants only, importing nothing:
// the CLI shows them in `canopy serve router --help` without loading gRPC.

/** Deadline of a request that brings none. */
export const DEFAULT_DEADLINE_MS = 2_000;
/** Longest deadline a caller may ask for; longer ones are cut to it, so no request holds resources for minutes. */
export const DEFAULT_MAX_DEADLINE_MS = 30_000;
/**
 * The hedge delay while a shard has too few latency samples for a quantile (a router just started, or a
 * shard just routed): a hung replica then costs a query at most this, not its deadline. Well above a
 * search on a busy shard (milliseconds), well below the 2 s default deadline.
 */
export const DEFAULT_INITIAL_HEDGE_DELAY_MS = 50;
/**
 * How long queries may stand waiting in the router for a call to a shard before new ones are refused
 * (coalescer.ts); 0: never refused. A router that keeps up sends everything waiting each time a call
 * returns, so its oldest query waits a fraction of one call.
 */
export const DEFAULT_MAX_ROUTER_QUEUE_WAIT_MS = 50;
/** How long that wait must stay over the target to count as standing (CoDel's 100 ms, doubled for a busy host). */
export const ROUTER_STANDING_INTERVAL_MS = 200;

/** The deadlines a router runs with; a default above the max would have every request cut, so it throws. */
export function routerDeadlines(defaultMs = DEFAULT_DEADLINE_MS, maxMs = DEFAULT_MAX_DEADLINE_MS): { defaultDeadlineMs: number; maxDeadlineMs: number } {
  if (defaultMs > maxMs) throw new Error(`the default deadline (${defaultMs} ms) exceeds the max deadline (${maxMs} ms)`);
  return { defaultDeadlineMs: defaultMs, maxDeadlineMs: maxMs };
}
