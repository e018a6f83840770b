// Picking a replica: among the best-off replicas, the less loaded of two
// picked at random ("power of two choices"), which spreads load nearly as
// well as asking every replica while never herding all routers onto the
// same one.

/**
 * How a replica looks to the router, best first: `healthy`; `ejected` (it failed, stopped answering or
 * lost hedges recently, and is probed back later); `dead` (removed, or its connection is failing).
 */
export type ReplicaHealth = 'healthy' | 'ejected' | 'dead';

export interface ReplicaLoad {
  /** Calls sent to it and not yet answered (given-up ones included, see in-flight.ts). */
  readonly outstanding: number;
  readonly health: ReplicaHealth;
}

const BEST_FIRST: readonly ReplicaHealth[] = ['healthy', 'ejected', 'dead'];

/**
 * The replica to call, or undefined when `replicas` (minus `avoid`) is empty.
 * Only the best health present competes: an ejected replica is chosen only when
 * none is healthy, a dead one only when every one is dead (it may have come back).
 * `random` returns [0, 1).
 */
export function chooseReplica<R extends ReplicaLoad>(
  replicas: readonly R[],
  avoid: ReadonlySet<R> = new Set(),
  random: () => number = Math.random,
): R | undefined {
  const open = replicas.filter((r) => !avoid.has(r));
  const withHealth = open.map((r) => ({ r, health: r.health }));
  const best = BEST_FIRST.find((h) => withHealth.some((c) => c.health === h));
  const pool = withHealth.filter((c) => c.health === best).map((c) => c.r);
  if (pool.length <= 1) return pool[0];
  const a = Math.floor(random() * pool.length);
  let b = Math.floor(random() * (pool.length - 1));
  if (b >= a) b++;
  return pool[b]!.outstanding < pool[a]!.outstanding ? pool[b] : pool[a];
}
