// Picking a replica: the less loaded of two picked at random ("power of two
// choices"), which spreads load nearly as well as asking every replica while
// never herding all routers onto the same one.

export interface ReplicaLoad {
  /** Calls sent to it and not yet settled. */
  readonly outstanding: number;
  /** False while it is known to be failing (ejected or disconnected). */
  readonly healthy: boolean;
}

/**
 * The replica to call, or undefined when `replicas` (minus `avoid`) is empty.
 * Healthy replicas are preferred; when none is healthy, any is tried, since
 * a failing replica may have come back. `random` returns [0, 1).
 */
export function chooseReplica<R extends ReplicaLoad>(
  replicas: readonly R[],
  avoid: ReadonlySet<R> = new Set(),
  random: () => number = Math.random,
): R | undefined {
  const open = replicas.filter((r) => !avoid.has(r));
  const healthy = open.filter((r) => r.healthy);
  const pool = healthy.length > 0 ? healthy : open;
  if (pool.length <= 1) return pool[0];
  const a = Math.floor(random() * pool.length);
  let b = Math.floor(random() * (pool.length - 1));
  if (b >= a) b++;
  return pool[b]!.outstanding < pool[a]!.outstanding ? pool[b] : pool[a];
}
