// The Prometheus scrape endpoint over real HTTP on loopback: the named
// instruments appear, move when recorded, declared series show at zero, and
// observations follow callbacks.
import net from 'node:net';

import { afterEach, describe, expect, it } from 'vitest';

import { version } from '../../../package.json';
import { ATTR_INDEX, ATTR_RPC_GRPC_STATUS_CODE, ATTR_RPC_METHOD, ATTR_SHARD } from '../../../src/telemetry/attributes';
import {
  canopyInstruments,
  declareRouterIndex,
  type IndexVersionReading,
  inflightQueriesOf,
  observeIndexVersions,
  observeSearchQueueDepth,
} from '../../../src/telemetry/instruments';
import { startTelemetry, type Telemetry } from '../../../src/telemetry/telemetry';
import { sampleValue, scrape } from '../../support/prometheus-text';

let telemetry: Telemetry | undefined;

afterEach(async () => {
  await telemetry?.shutdown();
  telemetry = undefined;
});

async function startWithEndpoint(): Promise<number> {
  telemetry = await startTelemetry({ serviceName: 'metrics-test', metricsListen: '127.0.0.1:0' });
  expect(telemetry.tracing).toBe(false);
  return telemetry.metricsAddress!.port;
}

describe('Prometheus scrape endpoint', () => {
  it('shows recorded RPC durations in seconds and router counters move, with no scope or resource labels', async () => {
    const port = await startWithEndpoint();
    const search = { [ATTR_RPC_METHOD]: 'Search', [ATTR_RPC_GRPC_STATUS_CODE]: 0, [ATTR_INDEX]: 'songs' };
    const instruments = canopyInstruments();
    instruments.rpcServerDuration.record(0.0004, search);
    let samples = await scrape(port);
    expect(sampleValue(samples, 'canopy_rpc_server_duration_seconds_count', { rpc_method: 'Search', rpc_grpc_status_code: '0', canopy_index: 'songs' })).toBe(1);
    expect(sampleValue(samples, 'canopy_router_retries_total')).toBeUndefined();

    instruments.rpcServerDuration.record(0.0008, search);
    instruments.rpcServerDuration.record(0.03, search);
    instruments.retries.add(1, { [ATTR_INDEX]: 'songs', [ATTR_SHARD]: 2 });
    const inflight = inflightQueriesOf('Search');
    inflight.count += 3;
    inflight.count -= 1;
    samples = await scrape(port);
    expect(sampleValue(samples, 'canopy_rpc_server_duration_seconds_count', { rpc_method: 'Search' })).toBe(3);
    expect(sampleValue(samples, 'canopy_rpc_server_duration_seconds_sum', { rpc_method: 'Search' })).toBeCloseTo(0.0312);
    // Sub-millisecond buckets exist (the SDK's default bounds would start at 5).
    expect(sampleValue(samples, 'canopy_rpc_server_duration_seconds_bucket', { rpc_method: 'Search', le: '0.0005' })).toBe(1);
    expect(sampleValue(samples, 'canopy_rpc_server_duration_seconds_bucket', { rpc_method: 'Search', le: '0.001' })).toBe(2);
    expect(sampleValue(samples, 'canopy_router_retries_total', { canopy_index: 'songs', canopy_shard: '2' })).toBe(1);
    expect(sampleValue(samples, 'canopy_inflight_queries', { rpc_method: 'Search' })).toBe(2);
    // Series carry their own labels only; the resource is in target_info, without the command line.
    const foreign = samples.filter((s) => s.name !== 'target_info' && Object.keys(s.labels).some((l) => l.startsWith('otel_') || l === 'service_name'));
    expect(foreign).toEqual([]);
    const target = samples.find((s) => s.name === 'target_info');
    expect(target?.labels['service_name']).toBe('metrics-test');
    expect(Object.keys(target?.labels ?? {}).filter((l) => l.startsWith('process_'))).toEqual([]);
  });

  it('shows the counters and histograms of a router index at zero before anything happened', async () => {
    const port = await startWithEndpoint();
    declareRouterIndex('songs', 2);
    const samples = await scrape(port);
    for (const shard of ['0', '1']) {
      const labels = { canopy_index: 'songs', canopy_shard: shard };
      expect(sampleValue(samples, 'canopy_router_retries_total', labels)).toBe(0);
      expect(sampleValue(samples, 'canopy_router_hedges_total', labels)).toBe(0);
      expect(sampleValue(samples, 'canopy_router_shard_call_duration_seconds_count', { ...labels, canopy_outcome: 'ok', canopy_attempt: 'first' })).toBe(0);
      expect(sampleValue(samples, 'canopy_router_shard_call_duration_seconds_bucket', { ...labels, canopy_outcome: 'ok', le: '+Inf' })).toBe(0);
    }
    for (const method of ['Search', 'BatchSearch', 'SearchByItem', 'BatchSearchStream']) {
      expect(sampleValue(samples, 'canopy_router_partial_answers_total', { canopy_index: 'songs', rpc_method: method })).toBe(0);
      expect(sampleValue(samples, 'canopy_rpc_server_duration_seconds_count', { canopy_index: 'songs', rpc_method: method, rpc_grpc_status_code: '0' })).toBe(0);
    }
    // A recording replaces the empty series instead of adding a second one.
    canopyInstruments().rpcServerDuration.record(0.002, { [ATTR_RPC_METHOD]: 'Search', [ATTR_RPC_GRPC_STATUS_CODE]: 0, [ATTR_INDEX]: 'songs' });
    const after = await scrape(port);
    expect(sampleValue(after, 'canopy_rpc_server_duration_seconds_count', { canopy_index: 'songs', rpc_method: 'Search' })).toBe(1);
  });

  it('shows build info, process and Node.js runtime metrics', async () => {
    const port = await startWithEndpoint();
    const samples = await scrape(port);
    expect(sampleValue(samples, 'canopy_build_info', { version, service: 'metrics-test', nodejs_version: process.versions.node })).toBe(1);
    expect(sampleValue(samples, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(sampleValue(samples, 'process_resident_memory_bytes')).toBeGreaterThan(10_000_000);
    expect(sampleValue(samples, 'process_start_time_seconds')).toBeCloseTo(Date.now() / 1000 - process.uptime(), 0);
    expect(sampleValue(samples, 'process_open_fds')).toBeGreaterThan(2);
    expect(sampleValue(samples, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(sampleValue(samples, 'nodejs_eventloop_lag_max_seconds')).toBeGreaterThanOrEqual(0);
    for (const kind of ['minor', 'major', 'incremental', 'weakcb']) {
      expect(sampleValue(samples, 'nodejs_gc_duration_seconds_count', { kind })).toBeGreaterThanOrEqual(0);
    }
  });

  it('reports what the registered callbacks read at each scrape; an unloaded version drops to 0', async () => {
    const port = await startWithEndpoint();
    let queued = 3;
    observeSearchQueueDepth(() => queued);
    const versions: IndexVersionReading[] = [{ index: 'songs', version: 'v2', shard: 1, state: 'loading' }];
    observeIndexVersions(() => versions);

    let samples = await scrape(port);
    const v2 = { canopy_index: 'songs', canopy_index_version: 'v2', canopy_shard: '1' };
    expect(sampleValue(samples, 'canopy_engine_search_queue_depth')).toBe(3);
    expect(sampleValue(samples, 'canopy_index_version_state', { ...v2, canopy_state: 'loading' })).toBe(1);
    expect(sampleValue(samples, 'canopy_index_version_state', { ...v2, canopy_state: 'ready' })).toBe(0);
    expect(sampleValue(samples, 'canopy_index_items', v2)).toBeUndefined();

    queued = 7;
    versions[0] = { index: 'songs', version: 'v2', shard: 1, state: 'ready', items: 5_000, loadDurationSeconds: 0.85 };
    samples = await scrape(port);
    expect(sampleValue(samples, 'canopy_engine_search_queue_depth')).toBe(7);
    expect(sampleValue(samples, 'canopy_index_version_state', { ...v2, canopy_state: 'loading' })).toBe(0);
    expect(sampleValue(samples, 'canopy_index_version_state', { ...v2, canopy_state: 'ready' })).toBe(1);
    expect(sampleValue(samples, 'canopy_index_items', v2)).toBe(5_000);
    expect(sampleValue(samples, 'canopy_index_load_duration_seconds', v2)).toBe(0.85);

    versions[0] = { index: 'songs', version: 'v3', shard: 1, state: 'ready', items: 5_100 };
    samples = await scrape(port);
    const v3 = { canopy_index: 'songs', canopy_index_version: 'v3', canopy_shard: '1' };
    expect(sampleValue(samples, 'canopy_index_version_state', { ...v3, canopy_state: 'ready' })).toBe(1);
    for (const state of ['loading', 'ready', 'failed']) {
      expect(sampleValue(samples, 'canopy_index_version_state', { ...v2, canopy_state: state })).toBe(0);
    }
    expect(sampleValue(samples, 'canopy_index_items', v2)).toBe(0);
  });

  it('answers 404 off /metrics', async () => {
    const port = await startWithEndpoint();
    const response = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5_000) });
    expect(response.status).toBe(404);
  });

  it('rejects a taken port or a malformed address, naming the flag', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as net.AddressInfo).port;
      await expect(startTelemetry({ serviceName: 'metrics-test', metricsListen: `127.0.0.1:${port}` })).rejects.toThrow(
        `--metrics-listen: cannot listen on 127.0.0.1:${port}`,
      );
    } finally {
      taken.close();
    }
    await expect(startTelemetry({ serviceName: 'metrics-test', metricsListen: 'localhost' })).rejects.toThrow(
      '--metrics-listen "localhost" must look like HOST:PORT',
    );
    // A failed start leaves nothing registered: the next one works.
    expect((await scrape(await startWithEndpoint())).length).toBeGreaterThan(0);
  });
});
