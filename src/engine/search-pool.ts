// The engine's process-wide search threads and their bounded queue.
import { addon, type SearchPoolStats } from './native-addon';

export interface SearchPoolOptions {
  /** Search threads; default: the number of cores. */
  threads?: number;
  /** Pending tasks (batch slices count one each) beyond which calls fail with QUEUE_FULL; default 1024. */
  maxQueue?: number;
  /**
   * Once the queue stands (its oldest waited over this for an interval), refuse (QUEUE_FULL) while the
   * queued searches would take longer than this to start, estimated from the recent mean run time over
   * the threads; an empty queue always admits. 0 (default): off.
   */
  maxQueueWaitMs?: number;
}

/** Must run before the first async search; afterwards it throws EngineError BAD_STATE. */
export function configureSearchPool(opts: SearchPoolOptions): void {
  addon.configureSearchPool(opts.threads, opts.maxQueue, opts.maxQueueWaitMs);
}

export function searchPoolStats(): SearchPoolStats {
  return addon.searchPoolStats();
}

/** The distance kernels chosen for this CPU: 'avx512', 'avx2' or 'scalar'. */
export function engineSimdLevel(): string {
  return addon.simdLevel;
}
