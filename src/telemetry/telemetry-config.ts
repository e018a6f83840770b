// Which telemetry signals a process turns on, decided once from its options and
// the standard OTEL_* environment variables. Pure (the environment is a
// parameter) so the rules can be tested without touching process.env.
//
// What is on by default — nothing:
// - Traces are on only when OTEL_TRACES_EXPORTER names an exporter (not
//   `none`), or an OTLP endpoint is configured (OTEL_EXPORTER_OTLP_ENDPOINT or
//   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). The spec's default would be OTLP to
//   localhost:4318; Canopy departs from it so that a node with no collector
//   registers no tracer provider at all and every span call is the API's no-op.
//   Once on, the SDK itself reads the rest: exporter list (default otlp),
//   OTEL_EXPORTER_OTLP_*PROTOCOL (default http/protobuf), OTEL_TRACES_SAMPLER
//   and _ARG (default parentbased_always_on), span limits, batch processor.
// - Metrics are on when there is somewhere to read them: the Prometheus scrape
//   endpoint (`--metrics-listen`, or OTEL_METRICS_EXPORTER=prometheus with
//   OTEL_EXPORTER_PROMETHEUS_HOST/PORT, default localhost:9464), and/or OTLP push
//   (OTEL_METRICS_EXPORTER=otlp, or it unset with an OTLP endpoint configured).
//   With neither, no meter provider is registered and instruments are no-ops.
// - The OpenTelemetry logs signal is never used: logs are pino JSON on stderr.
// - OTEL_SDK_DISABLED=true turns everything off, the scrape endpoint included.

/** A TCP listen address; port 0 asks the OS for a free port. */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export type TracesMode =
  | 'off'
  /** The SDK builds exporters, sampler and processors from OTEL_* variables. */
  | 'env'
  /** A caller-supplied exporter behind a simple (one span at a time) processor. */
  | 'test';

export type OtlpProtocol = 'grpc' | 'http/json' | 'http/protobuf';

/**
 * OTLP metric push. The exporter reads its endpoint, headers, compression and
 * temporality from OTEL_EXPORTER_OTLP_* itself; Canopy only picks the class.
 */
export interface OtlpMetricsPlan {
  /** OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf. */
  readonly protocol: OtlpProtocol;
  /** OTEL_METRIC_EXPORT_INTERVAL; unset leaves the reader's default (60 s). */
  readonly exportIntervalMs?: number;
  /** OTEL_METRIC_EXPORT_TIMEOUT; unset leaves the reader's default (30 s). */
  readonly exportTimeoutMs?: number;
}

export interface TelemetryPlan {
  readonly traces: TracesMode;
  /** Set iff a Prometheus scrape endpoint is to be served. */
  readonly prometheusListen?: ListenAddress;
  /** Set iff metrics are pushed over OTLP. */
  readonly otlpMetrics?: OtlpMetricsPlan;
}

export interface TelemetryPlanInput {
  readonly metricsListen?: string;
  readonly hasTestSpanExporter: boolean;
}

const METRICS_EXPORTERS = new Set(['otlp', 'prometheus', 'none']);
const OTLP_PROTOCOLS: ReadonlySet<string> = new Set<OtlpProtocol>(['grpc', 'http/json', 'http/protobuf']);
const DEFAULT_OTLP_PROTOCOL: OtlpProtocol = 'http/protobuf';
/** The Prometheus exporter's own defaults, used when OTEL_METRICS_EXPORTER=prometheus. */
const DEFAULT_PROMETHEUS_HOST = 'localhost';
const DEFAULT_PROMETHEUS_PORT = 9464;

export const TELEMETRY_OFF: TelemetryPlan = { traces: 'off' };

/** Throws naming the variable or flag when a value cannot be used. */
export function planTelemetry(input: TelemetryPlanInput, env: NodeJS.ProcessEnv): TelemetryPlan {
  if (envBoolean(env, 'OTEL_SDK_DISABLED')) return TELEMETRY_OFF;
  const metricsExporters = envList(env, 'OTEL_METRICS_EXPORTER');
  for (const name of metricsExporters ?? []) {
    if (!METRICS_EXPORTERS.has(name)) {
      throw new Error(`OTEL_METRICS_EXPORTER: unsupported exporter ${JSON.stringify(name)} (supported: otlp, prometheus, none)`);
    }
  }
  const prometheusListen = input.metricsListen !== undefined
    ? parseListenAddress(input.metricsListen, '--metrics-listen')
    : metricsExporters?.includes('prometheus') ? prometheusFromEnv(env) : undefined;
  const otlpMetricsOn = metricsExporters === undefined
    ? hasOtlpEndpoint(env, 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT')
    : metricsExporters.includes('otlp');
  return {
    traces: input.hasTestSpanExporter ? 'test' : tracesFromEnv(env),
    ...(prometheusListen === undefined ? {} : { prometheusListen }),
    ...(otlpMetricsOn ? { otlpMetrics: otlpMetricsFromEnv(env) } : {}),
  };
}

function otlpMetricsFromEnv(env: NodeJS.ProcessEnv): OtlpMetricsPlan {
  const variable = envString(env, 'OTEL_EXPORTER_OTLP_METRICS_PROTOCOL') !== undefined
    ? 'OTEL_EXPORTER_OTLP_METRICS_PROTOCOL'
    : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = envString(env, variable)?.trim() ?? DEFAULT_OTLP_PROTOCOL;
  if (!OTLP_PROTOCOLS.has(protocol)) {
    throw new Error(`${variable}: unsupported protocol ${JSON.stringify(protocol)} (supported: grpc, http/json, http/protobuf)`);
  }
  const exportIntervalMs = envMilliseconds(env, 'OTEL_METRIC_EXPORT_INTERVAL');
  const exportTimeoutMs = envMilliseconds(env, 'OTEL_METRIC_EXPORT_TIMEOUT');
  return {
    protocol: protocol as OtlpProtocol,
    ...(exportIntervalMs === undefined ? {} : { exportIntervalMs }),
    ...(exportTimeoutMs === undefined ? {} : { exportTimeoutMs }),
  };
}

function tracesFromEnv(env: NodeJS.ProcessEnv): TracesMode {
  const exporters = envList(env, 'OTEL_TRACES_EXPORTER');
  if (exporters === undefined) return hasOtlpEndpoint(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') ? 'env' : 'off';
  // Same reading as the SDK: `none` alone turns traces off; `none` beside others is ignored there.
  return exporters.length === 1 && exporters[0] === 'none' ? 'off' : 'env';
}

function hasOtlpEndpoint(env: NodeJS.ProcessEnv, signalVariable: string): boolean {
  return envString(env, 'OTEL_EXPORTER_OTLP_ENDPOINT') !== undefined || envString(env, signalVariable) !== undefined;
}

function prometheusFromEnv(env: NodeJS.ProcessEnv): ListenAddress {
  const host = envString(env, 'OTEL_EXPORTER_PROMETHEUS_HOST') ?? DEFAULT_PROMETHEUS_HOST;
  const rawPort = envString(env, 'OTEL_EXPORTER_PROMETHEUS_PORT');
  const port = rawPort === undefined ? DEFAULT_PROMETHEUS_PORT : Number(rawPort.trim());
  if (!isPort(port)) throw new Error(`OTEL_EXPORTER_PROMETHEUS_PORT must be a port number, got ${JSON.stringify(rawPort)}`);
  return { host, port };
}

/** Parses `HOST:PORT` (`[v6]:PORT` for IPv6 literals); `source` names the flag in errors. */
export function parseListenAddress(value: string, source: string): ListenAddress {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(value.trim());
  if (match === null) throw new Error(`${source} ${JSON.stringify(value)} must look like HOST:PORT, e.g. 0.0.0.0:9464`);
  const port = Number(match[3]);
  if (!isPort(port)) throw new Error(`${source} ${JSON.stringify(value)}: port ${match[3]} is out of range (0-65535)`);
  return { host: match[1] ?? match[2]!, port };
}

function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 65_535;
}

// The three readers below follow @opentelemetry/core's env helpers: blank
// counts as unset, lists are comma-separated and trimmed, booleans are
// case-insensitive `true`.
function envString(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw.trim() === '' ? undefined : raw;
}

function envList(env: NodeJS.ProcessEnv, name: string): string[] | undefined {
  return envString(env, name)
    ?.split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function envMilliseconds(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = envString(env, name);
  if (raw === undefined) return undefined;
  const ms = Number(raw.trim());
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`${name} must be a positive number of milliseconds, got ${JSON.stringify(raw)}`);
  return ms;
}

function envBoolean(env: NodeJS.ProcessEnv, name: string): boolean {
  return env[name]?.trim().toLowerCase() === 'true';
}
