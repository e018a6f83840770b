// The Prometheus scrape endpoint over real HTTP on loopback: the named
// instruments appear, move when recorded, and observations follow callbacks.
import net from 'node:net';

import { afterEach, describe, expect, it } from 'vitest';

import { ATTR_RPC_GRPC_STATUS_CODE, ATTR_RPC_METHOD, ATTR_SHARD } from '../../../src/telemetry/attributes';
import {
  canopyInstruments,
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
  it('shows recorded RPC durations and router counters move', async () => {
    const port = await startWithEndpoint();
    const search = { [ATTR_RPC_METHOD]: 'Search', [ATTR_RPC_GRPC_STATUS_CODE]: 0 };
    const instruments = canopyInstruments();
    instruments.rpcServerDuration.record(0.4, search);
    let samples = await scrape(port);
    expect(sampleValue(samples, 'canopy_rpc_server_duration_count', { rpc_method: 'Search', rpc_grpc_status_code: '0' })).toBe(1);
    expect(sampleValue(samples, 'canopy_router_retries_total')).toBeUndefined();

    instruments.rpcServerDuration.record(0.8, search);
    instruments.rpcServerDuration.record(30, search);
    instruments.retries.add(1, { [ATTR_SHARD]: 2 });
    const inflight = inflightQueriesOf('Search');
    inflight.count += 3;
    inflight.count -= 1;
    samples = await scrape(port);
    expect(sampleValue(samples, 'canopy_rpc_server_duration_count', { rpc_method: 'Search' })).toBe(3);
    expect(sampleValue(samples, 'canopy_rpc_server_duration_sum', { rpc_method: 'Search' })).toBeCloseTo(31.2);
    // Sub-millisecond buckets exist (the SDK's default bounds would start at 5 ms).
    expect(sampleValue(samples, 'canopy_rpc_server_duration_bucket', { rpc_method: 'Search', le: '0.5' })).toBe(1);
    expect(sampleValue(samples, 'canopy_rpc_server_duration_bucket', { rpc_method: 'Search', le: '1' })).toBe(2);
    expect(sampleValue(samples, 'canopy_router_retries_total', { canopy_shard: '2' })).toBe(1);
    expect(sampleValue(samples, 'canopy_inflight_queries', { rpc_method: 'Search' })).toBe(2);
    // service_name on every series tells a router's from a shard node's.
    expect(sampleValue(samples, 'canopy_router_retries_total', { service_name: 'metrics-test' })).toBe(1);
    expect(sampleValue(samples, 'target_info', { service_name: 'metrics-test' })).toBe(1);
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
    versions[0] = { index: 'songs', version: 'v2', shard: 1, state: 'ready', items: 5_000, loadDurationMs: 850 };
    samples = await scrape(port);
    expect(sampleValue(samples, 'canopy_engine_search_queue_depth')).toBe(7);
    expect(sampleValue(samples, 'canopy_index_version_state', { ...v2, canopy_state: 'loading' })).toBe(0);
    expect(sampleValue(samples, 'canopy_index_version_state', { ...v2, canopy_state: 'ready' })).toBe(1);
    expect(sampleValue(samples, 'canopy_index_items', v2)).toBe(5_000);
    expect(sampleValue(samples, 'canopy_index_load_duration', v2)).toBe(850);

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
