// What a fresh shard node and router expose on /metrics before any query:
// Prometheus's own linter (`promtool check metrics`) finds nothing, the metric
// families are exactly the expected ones, durations are in seconds, and the
// series an alert or a rate() needs exist already, at zero.
// Tools: promtool (`bash .ci/install-deps.sh`); without it this file fails, it never skips.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { distinctPorts } from '../support/free-port';
import { checkMetrics, findPromtool } from '../support/promtool';
import { buildFixture } from '../support/serving/fixture';
import { ProcessGroup, waitServing } from '../support/serving/processes';
import { gaussianVectors } from '../support/vectors';
import { parseSamples, type Sample, sampleValue } from '../support/prometheus-text';

const SHARDS = 2;
const INDEX = 'scraped';
const QUERY_METHODS = ['Search', 'BatchSearch', 'SearchByItem', 'BatchSearchStream'];

/** Every process, router or shard node. */
const PROCESS_FAMILIES = [
  'target_info',
  'canopy_build_info',
  'process_cpu_seconds_total',
  'process_start_time_seconds',
  'process_open_fds',
  'process_resident_memory_bytes',
  'nodejs_heap_size_used_bytes',
  'nodejs_heap_size_total_bytes',
  'nodejs_external_memory_bytes',
  'nodejs_eventloop_lag_p99_seconds',
  'nodejs_eventloop_lag_max_seconds',
  'nodejs_gc_duration_seconds',
  'canopy_rpc_server_duration_seconds',
  'canopy_inflight_queries',
];
const SHARD_FAMILIES = [...PROCESS_FAMILIES, 'canopy_engine_search_queue_depth', 'canopy_index_items', 'canopy_index_load_duration_seconds', 'canopy_index_version_state', 'canopy_index_sidecar_state'];
const ROUTER_FAMILIES = [...PROCESS_FAMILIES, 'canopy_router_shard_call_duration_seconds', 'canopy_router_retries_total', 'canopy_router_hedges_total', 'canopy_router_partial_answers_total'];

function families(exposition: string): string[] {
  return [...exposition.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!).sort();
}

async function scrapeText(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5_000) });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
}

describe('/metrics of a fresh shard node and router', () => {
  const promtool = findPromtool();
  const group = new ProcessGroup();
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-metrics-scrape-'));
  let shardText: string;
  let routerText: string;

  beforeAll(async () => {
    const fixture = await buildFixture(workDir, gaussianVectors(400, 8, 5), { metric: 'angular', shards: SHARDS, trees: 2, index: INDEX, version: 'v1' });
    const ports = await distinctPorts(2 * SHARDS + 2);
    const shards = Array.from({ length: SHARDS }, (_, shard) => {
      const address = `127.0.0.1:${ports.pop()!}`;
      const metricsPort = ports.pop()!;
      const args = ['serve', 'shard', '--manifest', fixture.dir, '--shard', String(shard), '--listen', address, '--metrics-listen', `127.0.0.1:${metricsPort}`, '--log-level', 'warn'];
      return { proc: group.start(`shard ${shard}`, address, args), metricsPort };
    });
    await Promise.all(shards.map((s) => waitServing(s.proc)));
    const address = `127.0.0.1:${ports.pop()!}`;
    const routerMetricsPort = ports.pop()!;
    const backends = shards.flatMap((s, shard) => ['--backend', `${shard}=${s.proc.address}`]);
    await waitServing(group.start('router', address, ['serve', 'router', '--listen', address, ...backends, '--metrics-listen', `127.0.0.1:${routerMetricsPort}`, '--log-level', 'warn']));
    shardText = await scrapeText(shards[0]!.metricsPort);
    routerText = await scrapeText(routerMetricsPort);
  });

  afterAll(async () => {
    await group.killAll();
    rmSync(workDir, { recursive: true, force: true });
  });

  it('passes promtool check metrics', () => {
    expect(checkMetrics(promtool, shardText)).toEqual({ code: 0, output: '' });
    expect(checkMetrics(promtool, routerText)).toEqual({ code: 0, output: '' });
  });

  it('exposes exactly the expected metric families', () => {
    expect(families(shardText)).toEqual([...SHARD_FAMILIES].sort());
    expect(families(routerText)).toEqual([...ROUTER_FAMILIES].sort());
  });

  it('states durations in seconds, and no series carries scope or resource labels', () => {
    for (const text of [shardText, routerText]) {
      const inSeconds = (name: string): boolean => /_seconds(_total)?$/.test(name);
      expect(families(text).filter((name) => /duration|_time|lag|cpu/.test(name) && !inSeconds(name))).toEqual([]);
      expect([...text.matchAll(/^# UNIT (\S+) (\S+)$/gm)].filter(([, name, unit]) => unit === 's' && !inSeconds(name!)).map(([line]) => line)).toEqual([]);
      const foreign = parseSamples(text).filter((s) => s.name !== 'target_info' && Object.keys(s.labels).some((l) => l.startsWith('otel_') || l.startsWith('service_')));
      expect(foreign).toEqual([]);
      const target = parseSamples(text).find((s) => s.name === 'target_info')!;
      expect(Object.keys(target.labels).filter((l) => l.startsWith('process_'))).toEqual([]);
    }
  });

  it('shows the series of the served index at zero before any query', () => {
    const zero = (samples: Sample[], name: string, labels: Record<string, string>) => expect(sampleValue(samples, name, labels), `${name} ${JSON.stringify(labels)}`).toBe(0);
    const shard = parseSamples(shardText);
    const router = parseSamples(routerText);
    for (const method of QUERY_METHODS) {
      for (const samples of [shard, router]) {
        zero(samples, 'canopy_rpc_server_duration_seconds_count', { canopy_index: INDEX, rpc_method: method, rpc_grpc_status_code: '0' });
        zero(samples, 'canopy_inflight_queries', { rpc_method: method });
      }
      zero(router, 'canopy_router_partial_answers_total', { canopy_index: INDEX, rpc_method: method });
    }
    for (let s = 0; s < SHARDS; s++) {
      const labels = { canopy_index: INDEX, canopy_shard: String(s) };
      zero(router, 'canopy_router_retries_total', labels);
      zero(router, 'canopy_router_hedges_total', labels);
      zero(router, 'canopy_router_shard_call_duration_seconds_count', { ...labels, canopy_outcome: 'ok', canopy_attempt: 'first' });
    }
    for (const kind of ['minor', 'major', 'incremental', 'weakcb']) expect(sampleValue(shard, 'nodejs_gc_duration_seconds_count', { kind })).toBeGreaterThanOrEqual(0);
    expect(sampleValue(shard, 'canopy_build_info', { service: 'canopy-shard' })).toBe(1);
    expect(sampleValue(router, 'canopy_build_info', { service: 'canopy-router' })).toBe(1);
  });
});
