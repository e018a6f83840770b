// Admission control for a server process: refuses a new call at once with
// RESOURCE_EXHAUSTED while the event loop lags or too many queries are in
// flight. A grpc-js server decodes and handles every call on its one event
// loop; when that loop is the bottleneck, calls wait in socket buffers before
// any handler runs, where no engine queue bound can see them. The loop's lag
// is what those calls wait, so refusing while it is high keeps the accepted
// calls' wait short (measured in load-tests/overload/overload.js).
import * as grpc from '@grpc/grpc-js';

import { CanopyError } from './canopy-error';
import { DEFAULT_MAX_EVENT_LOOP_LAG_MS, DEFAULT_MAX_INFLIGHT_QUERIES } from './server-limits';

/** How often the probe's timer asks to run; its drift beyond this is the lag. */
export const LAG_PROBE_INTERVAL_MS = 5;

export interface LoadGateOptions {
  /** Refuse while the event loop lags more than this (ms); 0: never for lag. */
  readonly maxEventLoopLagMs?: number;
  /** Refuse while this many queries are in flight; 0: no bound. */
  readonly maxInflightQueries?: number;
}

/** Where the gate reads the event loop's lag (ms); injected in tests. */
export interface LagSource {
  lagMs(): number;
  stop(): void;
}

/**
 * The event loop's lag from a repeating unref'd timer: how late its last tick
 * ran, or, while it has not run for longer than that, how late its next tick
 * already is (a loop busy with a long run of I/O callbacks shows at once).
 */
export class EventLoopLagProbe implements LagSource {
  private lastTickMs = performance.now();
  private lastLagMs = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly intervalMs: number = LAG_PROBE_INTERVAL_MS) {
    this.timer = setInterval(() => {
      const now = performance.now();
      this.lastLagMs = Math.max(0, now - this.lastTickMs - this.intervalMs);
      this.lastTickMs = now;
    }, intervalMs);
    this.timer.unref();
  }

  lagMs(): number {
    const overdueMs = performance.now() - this.lastTickMs - this.intervalMs;
    return Math.max(this.lastLagMs, overdueMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

const NO_LAG: LagSource = { lagMs: () => 0, stop: () => {} };

export class LoadGate {
  private readonly maxLagMs: number;
  private readonly maxInflight: number;
  private readonly lag: LagSource;
  private inflight = 0;

  constructor(options: LoadGateOptions = {}, lagSource?: LagSource) {
    this.maxLagMs = options.maxEventLoopLagMs ?? DEFAULT_MAX_EVENT_LOOP_LAG_MS;
    this.maxInflight = options.maxInflightQueries ?? DEFAULT_MAX_INFLIGHT_QUERIES;
    this.lag = lagSource ?? (this.maxLagMs > 0 ? new EventLoopLagProbe() : NO_LAG);
  }

  /**
   * Admits a call of `queries` queries (counted until `release`), or returns
   * the RESOURCE_EXHAUSTED to answer it with. Calls without queries (GetItem,
   * DescribeIndex) are cheap and never refused.
   */
  admit(queries: number): CanopyError | undefined {
    if (queries === 0) return undefined;
    if (this.maxLagMs > 0) {
      const lagMs = this.lag.lagMs();
      if (lagMs > this.maxLagMs) {
        return new CanopyError(grpc.status.RESOURCE_EXHAUSTED, `overloaded: event loop lag ${Math.round(lagMs)} ms over ${this.maxLagMs}`);
      }
    }
    if (this.maxInflight > 0 && this.inflight + queries > this.maxInflight && this.inflight > 0) {
      return new CanopyError(grpc.status.RESOURCE_EXHAUSTED, `overloaded: ${this.inflight} queries in flight, at most ${this.maxInflight}`);
    }
    this.inflight += queries;
    return undefined;
  }

  /** Ends an admitted call of `queries` queries. */
  release(queries: number): void {
    this.inflight -= queries;
  }

  /** Queries admitted and not yet released. */
  get inflightQueries(): number {
    return this.inflight;
  }

  stop(): void {
    this.lag.stop();
  }
}
