// Builds and registers the OpenTelemetry SDK for a plan that turns something
// on. Kept apart from telemetry.ts because loading the SDK and its exporters
// takes ~0.2 s: a process with telemetry off never loads this file.
import { context, type ContextManager, metrics, propagation, type ProxyTracerProvider, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { OTLPMetricExporter as OtlpGrpcMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporter as OtlpHttpJsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as OtlpProtobufMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { type IMetricReader, PeriodicExportingMetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { NodeSDK, resources } from '@opentelemetry/sdk-node';
import { SimpleSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';

import { version } from '../../package.json';
import { METER_NAME } from './instruments';
import { MetricsEndpoint } from './metrics-endpoint';
import { observeProcessAndRuntime } from './runtime-metrics';
import type { OtlpMetricsPlan, TelemetryPlan } from './telemetry-config';
import { clearZeroHistograms } from './zero-series';

/**
 * Scraped series carry their own labels only: no otel_scope_* and no resource
 * attributes on each one (Prometheus adds job and instance; a router's series
 * and a shard node's are told apart by those). The resource is in target_info,
 * and holds what the environment detector (OTEL_RESOURCE_ATTRIBUTES,
 * OTEL_SERVICE_NAME) and the host detector find, never the command line.
 */
const SCRAPE_SERIALIZER = new PrometheusSerializer('', false, undefined, false, true);

/** A context manager that never holds a context: `with` only calls the function. */
const PASS_THROUGH_CONTEXT: ContextManager = {
  active: () => ROOT_CONTEXT,
  with: (_context, fn, thisArg, ...args) => fn.call(thisArg, ...args),
  bind: (_context, target) => target,
  enable() {
    return this;
  },
  disable() {
    return this;
  },
};

export interface RunningSdk {
  readonly metricsEndpoint?: MetricsEndpoint;
  /** Hands every span ended so far, and OTLP metrics, to the exporters. */
  forceFlush(): Promise<void>;
  /**
   * Flushes what is buffered, stops exporters and the scrape endpoint, and
   * unregisters the globals. Rejects when the final export fails or outlasts
   * `timeoutMs`; everything is stopped and unregistered either way.
   */
  shutdown(timeoutMs: number): Promise<void>;
}

export async function startSdk(plan: TelemetryPlan, serviceName: string, testSpanExporter?: SpanExporter): Promise<RunningSdk> {
  const readers: IMetricReader[] = [];
  if (plan.otlpMetrics !== undefined) readers.push(otlpMetricReader(plan.otlpMetrics));
  let metricsEndpoint: MetricsEndpoint | undefined;
  if (plan.prometheusListen !== undefined) {
    const prometheus = new PrometheusExporter({ preventServerStart: true });
    metricsEndpoint = await MetricsEndpoint.start(plan.prometheusListen, prometheus, SCRAPE_SERIALIZER);
    readers.push(prometheus);
  }

  const tracingOff = plan.traces === 'off';
  let sdk: NodeSDK;
  try {
    sdk = new NodeSDK({
      // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (the SDK's env detector,
      // merged over this) win over the name the process gives itself.
      resource: resources.defaultResource().merge(resources.resourceFromAttributes({ 'service.name': serviceName, 'service.version': version })),
      resourceDetectors: [resources.envDetector, resources.hostDetector],
      // No readers: the SDK registers no meter provider, instruments stay no-ops.
      metricReaders: readers,
      // `undefined` lets the SDK read OTEL_TRACES_EXPORTER & co; `[]` registers no tracer provider.
      spanProcessors: tracingOff ? [] : plan.traces === 'test' ? [testProcessor(testSpanExporter)] : undefined,
      // Without traces there is nothing to propagate: keep the API's no-op propagator.
      textMapPropagator: tracingOff ? null : undefined,
      // No context manager: spans are never made active, their parents are
      // passed as arguments (spans.ts). The SDK's default (AsyncLocalStorage)
      // would be entered by the batch span processor and periodic metric
      // reader on every export, which turns on async hooks for the whole
      // process in Node 20: a cost each promise pays from then on (measured:
      // load-tests/telemetry/overhead.md).
      contextManager: PASS_THROUGH_CONTEXT,
      // Logs go through pino; an OTel logger provider with no processors costs nothing.
      logRecordProcessors: [],
      instrumentations: [],
    });
    sdk.start();
  } catch (err) {
    await metricsEndpoint?.close();
    throw err;
  }
  const stopRuntimeMetrics = readers.length === 0 ? undefined : observeProcessAndRuntime(metrics.getMeter(METER_NAME), { version, service: serviceName });
  // NodeSDK keeps its providers private; the API hands out the registered ones.
  const providers: object[] = [(trace.getTracerProvider() as ProxyTracerProvider).getDelegate(), metrics.getMeterProvider()];
  const flushables = providers.filter(canFlush);

  return {
    ...(metricsEndpoint === undefined ? {} : { metricsEndpoint }),
    async forceFlush() {
      await Promise.all(flushables.map((provider) => provider.forceFlush()));
    },
    async shutdown(timeoutMs: number) {
      try {
        await withTimeout(sdk.shutdown(), timeoutMs);
      } catch (err) {
        throw new Error(`telemetry shutdown: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      } finally {
        stopRuntimeMetrics?.();
        clearZeroHistograms();
        await metricsEndpoint?.close();
        // NodeSDK.shutdown leaves its providers registered; unregister them so a
        // later start (tests start several in one process) can register anew.
        trace.disable();
        metrics.disable();
        propagation.disable();
        context.disable();
      }
    },
  };
}

/** `work`, or a rejection after `timeoutMs` (an exporter retrying an unreachable collector takes ~9 s). */
function withTimeout(work: Promise<void>, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`final export still running after ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
  });
  // The loser of the race must not surface as an unhandled rejection.
  work.catch(() => undefined);
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

function canFlush(provider: object): provider is { forceFlush(): Promise<void> } {
  return typeof (provider as { forceFlush?: unknown }).forceFlush === 'function';
}

function testProcessor(exporter: SpanExporter | undefined): SpanProcessor {
  if (exporter === undefined) throw new Error('traces mode "test" needs a testSpanExporter');
  return new SimpleSpanProcessor(exporter);
}

function otlpMetricReader(plan: OtlpMetricsPlan): PeriodicExportingMetricReader {
  return new PeriodicExportingMetricReader({
    exporter: otlpMetricExporter(plan),
    ...(plan.exportIntervalMs === undefined ? {} : { exportIntervalMillis: plan.exportIntervalMs }),
    ...(plan.exportTimeoutMs === undefined ? {} : { exportTimeoutMillis: plan.exportTimeoutMs }),
  });
}

function otlpMetricExporter(plan: OtlpMetricsPlan): PushMetricExporter {
  switch (plan.protocol) {
    case 'grpc':
      return new OtlpGrpcMetricExporter();
    case 'http/json':
      return new OtlpHttpJsonMetricExporter();
    case 'http/protobuf':
      return new OtlpProtobufMetricExporter();
  }
}
