// Which signals the OTEL_* environment and --metrics-listen turn on.
import { describe, expect, it } from 'vitest';

import { parseListenAddress, planTelemetry, TELEMETRY_OFF } from '../../../src/telemetry/telemetry-config';

const none = { hasTestSpanExporter: false };

describe('planTelemetry', () => {
  it('turns nothing on by default, not even the OTLP exporters the spec would default to', () => {
    expect(planTelemetry(none, {})).toEqual(TELEMETRY_OFF);
    expect(planTelemetry(none, { OTEL_SERVICE_NAME: 'x', OTEL_TRACES_SAMPLER: 'always_on', OTEL_EXPORTER_OTLP_ENDPOINT: '  ' })).toEqual(TELEMETRY_OFF);
  });

  it('turns traces and OTLP metrics on with an OTLP endpoint, metrics using the protocol named', () => {
    expect(planTelemetry(none, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toEqual({
      traces: 'env',
      otlpMetrics: { protocol: 'grpc' },
    });
    expect(planTelemetry(none, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' })).toEqual({ traces: 'env' });
    expect(
      planTelemetry(none, {
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://collector:4318/v1/metrics',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/json',
        OTEL_METRIC_EXPORT_INTERVAL: '15000',
      }),
    ).toEqual({ traces: 'off', otlpMetrics: { protocol: 'http/json', exportIntervalMs: 15_000 } });
  });

  it('follows the exporter lists when they are set', () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' };
    expect(planTelemetry(none, { ...endpoint, OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none' })).toEqual(TELEMETRY_OFF);
    expect(planTelemetry(none, { OTEL_TRACES_EXPORTER: 'console' })).toEqual({ traces: 'env' });
    expect(planTelemetry(none, { OTEL_METRICS_EXPORTER: 'otlp, prometheus' })).toEqual({
      traces: 'off',
      prometheusListen: { host: 'localhost', port: 9464 },
      otlpMetrics: { protocol: 'http/protobuf' },
    });
    expect(planTelemetry(none, { OTEL_METRICS_EXPORTER: 'prometheus', OTEL_EXPORTER_PROMETHEUS_HOST: '0.0.0.0', OTEL_EXPORTER_PROMETHEUS_PORT: '9100' }))
      .toEqual({ traces: 'off', prometheusListen: { host: '0.0.0.0', port: 9100 } });
  });

  it('serves the scrape endpoint on --metrics-listen, which wins over the Prometheus variables', () => {
    expect(planTelemetry({ ...none, metricsListen: '[::1]:0' }, { OTEL_METRICS_EXPORTER: 'prometheus', OTEL_EXPORTER_PROMETHEUS_PORT: '9100' }))
      .toEqual({ traces: 'off', prometheusListen: { host: '::1', port: 0 } });
  });

  it('turns everything off with OTEL_SDK_DISABLED, the test exporter and the endpoint included', () => {
    const input = { hasTestSpanExporter: true, metricsListen: '127.0.0.1:9464' };
    expect(planTelemetry(input, { OTEL_SDK_DISABLED: ' TRUE ', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })).toEqual(TELEMETRY_OFF);
    expect(planTelemetry(input, { OTEL_SDK_DISABLED: 'false' })).toEqual({ traces: 'test', prometheusListen: { host: '127.0.0.1', port: 9464 } });
  });

  it('refuses values it cannot use, naming the variable', () => {
    expect(() => planTelemetry(none, { OTEL_METRICS_EXPORTER: 'otlp,statsd' })).toThrow('OTEL_METRICS_EXPORTER: unsupported exporter "statsd"');
    expect(() => planTelemetry(none, { OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'thrift' })).toThrow(
      'OTEL_EXPORTER_OTLP_PROTOCOL: unsupported protocol "thrift"',
    );
    expect(() => planTelemetry(none, { OTEL_METRICS_EXPORTER: 'prometheus', OTEL_EXPORTER_PROMETHEUS_PORT: '99999' })).toThrow(
      'OTEL_EXPORTER_PROMETHEUS_PORT must be a port number, got "99999"',
    );
    expect(() => planTelemetry(none, { OTEL_METRICS_EXPORTER: 'otlp', OTEL_METRIC_EXPORT_TIMEOUT: '-5' })).toThrow('OTEL_METRIC_EXPORT_TIMEOUT must be a positive number');
  });
});

describe('parseListenAddress', () => {
  it('reads host and port, IPv6 literals in brackets', () => {
    expect(parseListenAddress('0.0.0.0:9464', '--metrics-listen')).toEqual({ host: '0.0.0.0', port: 9464 });
    expect(parseListenAddress('metrics.local:80', '--metrics-listen')).toEqual({ host: 'metrics.local', port: 80 });
    expect(parseListenAddress('[::]:9464', '--metrics-listen')).toEqual({ host: '::', port: 9464 });
  });

  it.each([':9464', '9464', 'host:', '::1:9464', 'host:12ab'])('refuses %j naming the flag', (value) => {
    expect(() => parseListenAddress(value, '--metrics-listen')).toThrow(`--metrics-listen ${JSON.stringify(value)} must look like HOST:PORT`);
  });

  it('says a port is out of range rather than misshapen', () => {
    expect(() => parseListenAddress('127.0.0.1:92100', '--metrics-listen')).toThrow('--metrics-listen "127.0.0.1:92100": port 92100 is out of range (0-65535)');
  });
});
