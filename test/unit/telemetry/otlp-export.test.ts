// OTLP export configured only by OTEL_* variables, into a real HTTP collector
// stand-in on loopback: the SDK picks exporter, protocol and sampler; Canopy
// only decides that an endpoint means "on".
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import { type Attributes, ROOT_CONTEXT } from '@opentelemetry/api';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';

import { ATTR_SHARD } from '../../../src/telemetry/attributes';
import { canopyInstruments } from '../../../src/telemetry/instruments';
import { endSpan, startChildSpan } from '../../../src/telemetry/spans';
import { startTelemetry } from '../../../src/telemetry/telemetry';

interface Received {
  readonly path: string;
  readonly body: string;
}

const received: Received[] = [];
const collector = http.createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    received.push({ path: request.url ?? '', body: Buffer.concat(chunks).toString('utf8') });
    response.setHeader('content-type', 'application/json');
    response.end('{}');
  });
});
const savedEnv = { ...process.env };

beforeAll(async () => {
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
});
afterAll(() => new Promise<void>((resolve) => collector.close(() => resolve())));
afterEach(() => {
  process.env = { ...savedEnv };
  received.length = 0;
});

/** Records one root span named `name`; whether it was sampled. */
function recordSpan(name: string, attributes: Attributes = {}): boolean {
  const span = startChildSpan(name, attributes, ROOT_CONTEXT);
  const recording = span?.isRecording() ?? false;
  endSpan(span);
  return recording;
}

function useCollector(extra: Record<string, string> = {}): void {
  const { port } = collector.address() as AddressInfo;
  Object.assign(process.env, {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_SERVICE_NAME: 'canopy-shard-test',
    ...extra,
  });
}

it('exports spans and metrics over OTLP/HTTP JSON when only an endpoint is set', async () => {
  useCollector();
  const telemetry = await startTelemetry({ serviceName: 'overridden-by-OTEL_SERVICE_NAME' });
  expect(telemetry.tracing).toBe(true);
  recordSpan('engine.search', { 'canopy.k': 10 });
  canopyInstruments().retries.add(2, { [ATTR_SHARD]: 3 });
  await telemetry.shutdown();

  const traces = received.filter((r) => r.path === '/v1/traces').map((r) => r.body).join('\n');
  expect(traces).toContain('"engine.search"');
  expect(traces).toContain('"canopy-shard-test"');
  const exportedMetrics = received.filter((r) => r.path === '/v1/metrics').map((r) => r.body).join('\n');
  expect(exportedMetrics).toContain('"canopy.router.retries"');
});

it('leaves sampling to OTEL_TRACES_SAMPLER', async () => {
  useCollector({ OTEL_TRACES_SAMPLER: 'always_off', OTEL_METRICS_EXPORTER: 'none' });
  const telemetry = await startTelemetry({ serviceName: 'sampler-test' });
  expect(recordSpan('engine.search')).toBe(false);
  await telemetry.shutdown();
  expect(received.filter((r) => r.path === '/v1/traces')).toEqual([]);
  expect(received.filter((r) => r.path === '/v1/metrics')).toEqual([]);
});

it('bounds shutdown when the collector is unreachable, rejecting with what failed', async () => {
  // A port nothing listens on: the exporter retries with backoff for seconds.
  const dead = http.createServer();
  await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
  const { port } = dead.address() as AddressInfo;
  await new Promise<void>((resolve) => dead.close(() => resolve()));
  Object.assign(process.env, { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' });

  const telemetry = await startTelemetry({ serviceName: 'dead-collector', shutdownTimeoutMs: 300 });
  recordSpan('engine.search');
  await expect(telemetry.shutdown()).rejects.toThrow(/^telemetry shutdown: /);
  // Stopped and unregistered all the same: a new start works.
  useCollector({ OTEL_METRICS_EXPORTER: 'none' });
  const next = await startTelemetry({ serviceName: 'after' });
  recordSpan('after.shutdown');
  await next.shutdown();
  expect(received.map((r) => r.body).join('\n')).toContain('"after.shutdown"');
});
