// A process that cannot reach etcd says so in its log every few seconds, and
// once when it reaches etcd again: a shard node without its session, a router
// without its watch. Their metrics and health already showed it; the log was
// silent, which is where an operator looks first.
import type { Logger } from 'pino';

/** How often a process that cannot reach etcd says so (what it waits for keeps retrying meanwhile). */
export const ETCD_WAIT_WARN_MS = 3_000;

export interface EtcdWaitMessages {
  /** Warned every ETCD_WAIT_WARN_MS while etcd is out of reach. */
  readonly waiting: string;
  /** Said once when etcd is reached after a warning. */
  readonly reached: string;
}

/**
 * Checks `reached()` every ETCD_WAIT_WARN_MS for as long as the process runs,
 * warning while it is false and saying once when it turns true. Returns the
 * function that stops checking (call it before closing what `reached` reads).
 */
export function warnWhileEtcdUnreached(reached: () => boolean, etcd: string, messages: EtcdWaitMessages, log: Logger): () => void {
  let warned = false;
  const timer = setInterval(() => {
    if (!reached()) {
      warned = true;
      log.warn({ etcd }, messages.waiting);
    } else if (warned) {
      warned = false;
      log.info({ etcd }, messages.reached);
    }
  }, ETCD_WAIT_WARN_MS);
  timer.unref();
  return () => clearInterval(timer);
}
