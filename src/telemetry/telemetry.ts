// The one entry point a serving process calls at start-up: turns on what the
// OTEL_* environment and `--metrics-listen` ask for (telemetry-config.ts states
// what is on by default: nothing) and hands back a handle to stop it.
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';

import type { RunningSdk } from './sdk-setup';
import { setMetricsEnabled } from './instruments';
import { setTracingEnabled } from './spans';
import type { ListenAddress } from './telemetry-config';
import { planTelemetry } from './telemetry-config';

export interface TelemetryOptions {
  /** `service.name` of this process's telemetry unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES set one. */
  readonly serviceName: string;
  /** HOST:PORT of the Prometheus scrape endpoint (GET /metrics); port 0 picks a free port. */
  readonly metricsListen?: string;
  /**
   * Tests only: traces on, every ended span handed at once to this exporter
   * (an InMemorySpanExporter), whatever OTEL_TRACES_EXPORTER says.
   */
  readonly testSpanExporter?: SpanExporter;
  /** How long `shutdown()` waits for the final export; default DEFAULT_TELEMETRY_SHUTDOWN_TIMEOUT_MS. */
  readonly shutdownTimeoutMs?: number;
}

/** Long enough for a reachable collector, short enough to fit a pod's termination grace period. */
export const DEFAULT_TELEMETRY_SHUTDOWN_TIMEOUT_MS = 5_000;

export interface Telemetry {
  /** Whether spans are recorded (false: every span helper is a plain call). */
  readonly tracing: boolean;
  /** Where the scrape endpoint listens (the real port), iff one was started. */
  readonly metricsAddress?: ListenAddress;
  /**
   * Waits until every span ended so far has reached its exporter (spans wait
   * for the resource's async attributes first, so an export can trail `end()`).
   */
  forceFlush(): Promise<void>;
  /**
   * Flushes and stops exporters and the scrape endpoint, at process stop; later
   * calls return the same promise. Rejects, after at most the shutdown timeout,
   * when the final export failed (collector unreachable): log it and go on
   * stopping, everything is stopped either way.
   */
  shutdown(): Promise<void>;
}

const NOTHING_STARTED: Telemetry = { tracing: false, forceFlush: () => Promise.resolve(), shutdown: () => Promise.resolve() };

let running = false;

/**
 * Starts telemetry for this process; at most one at a time. Rejects, naming
 * the variable or flag, when a setting is unusable or the endpoint cannot bind.
 */
export async function startTelemetry(options: TelemetryOptions): Promise<Telemetry> {
  if (running) throw new Error('telemetry is already started in this process; shut it down first');
  const plan = planTelemetry({ metricsListen: options.metricsListen, hasTestSpanExporter: options.testSpanExporter !== undefined }, process.env);
  if (plan.traces === 'off' && plan.prometheusListen === undefined && plan.otlpMetrics === undefined) return NOTHING_STARTED;

  // Loaded only now: a process with telemetry off never pays for the SDK.
  const { startSdk } = await import('./sdk-setup.js');
  running = true;
  try {
    const sdk = await startSdk(plan, options.serviceName, options.testSpanExporter);
    const tracing = plan.traces !== 'off';
    setTracingEnabled(tracing);
    setMetricsEnabled(plan.prometheusListen !== undefined || plan.otlpMetrics !== undefined);
    let stopped: Promise<void> | undefined;
    return {
      tracing,
      ...(sdk.metricsEndpoint === undefined ? {} : { metricsAddress: sdk.metricsEndpoint.address }),
      forceFlush: () => sdk.forceFlush(),
      shutdown: () => (stopped ??= stop(sdk, options.shutdownTimeoutMs ?? DEFAULT_TELEMETRY_SHUTDOWN_TIMEOUT_MS)),
    };
  } catch (err) {
    running = false;
    throw err;
  }
}

async function stop(sdk: RunningSdk, timeoutMs: number): Promise<void> {
  setTracingEnabled(false);
  setMetricsEnabled(false);
  try {
    await sdk.shutdown(timeoutMs);
  } finally {
    running = false;
  }
}
