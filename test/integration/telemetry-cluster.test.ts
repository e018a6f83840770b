// Telemetry of a routed query, end to end.
// Traces: a router and 3 shard nodes in this process (the span exporter is in
// memory, so they must share it), talking real gRPC over loopback: one query
// makes one connected trace; a hedged call shows both attempts; a coalesced
// call links the traces it serves. Metrics: real `canopy serve` processes with
// --metrics-listen, scraped over HTTP before and after queries.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CanopyClient } from '../../src/client/canopy-client';
import { Index } from '../../src/engine/engine-index';
import { Router } from '../../src/router/router';
import type { ShardForest } from '../../src/shard/shard-forest';
import { ShardNode } from '../../src/shard/shard-node';
import {
  ATTR_ATTEMPT,
  ATTR_BATCH_QUERIES,
  ATTR_INDEX_VERSION,
  ATTR_ITEMS_RETURNED,
  ATTR_K,
  ATTR_REPLICA,
  ATTR_RPC_GRPC_STATUS_CODE,
  ATTR_SEARCH_K,
  ATTR_SHARD,
} from '../../src/telemetry/attributes';
import { startTelemetry, type Telemetry } from '../../src/telemetry/telemetry';
import { distinctPorts } from '../support/free-port';
import { row } from '../support/matrix';
import { buildFixture, type Fixture } from '../support/serving/fixture';
import { ProcessGroup, type ServingProcess, waitServing } from '../support/serving/processes';
import { gaussianVectors } from '../support/vectors';
import { type Sample, sampleValue, scrape } from '../support/prometheus-text';

const SHARDS = 3;
const ITEMS = 600;
const DIM = 8;
const TREES = 4;
const K = 5;
const silent = pino({ level: 'silent' });

/** Wraps a forest so its searches can be made slow on demand: the test's stand-in for a slow replica. */
function slowable(forest: ShardForest, delay: { ms: number }): ShardForest {
  const pause = () => new Promise((resolve) => setTimeout(resolve, delay.ms));
  return {
    nItems: forest.nItems,
    nTrees: forest.nTrees,
    dim: forest.dim,
    metric: forest.metric,
    search: async (vector, k, opts) => {
      if (delay.ms > 0) await pause();
      return forest.search(vector, k, opts);
    },
    searchBatch: async (vectors, k, opts) => {
      if (delay.ms > 0) await pause();
      return forest.searchBatch(vectors, k, opts);
    },
    getItemVector: (item) => forest.getItemVector(item),
    loadSidecar: (kind, file, opts) => forest.loadSidecar(kind, file, opts),
    unload: () => forest.unload(),
  };
}

const queries = (n: number, seed: number): Float32Array[] => {
  const m = gaussianVectors(n, DIM, seed);
  return Array.from({ length: n }, (_, i) => row(m, i));
};

describe('traces of routed queries (router and 3 shard nodes in this process, real gRPC)', () => {
  const exporter = new InMemorySpanExporter();
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-telemetry-traces-'));
  const slowDelay = { ms: 0 };
  const nodes: ShardNode[] = [];
  let fixture: Fixture;
  let telemetry: Telemetry;
  let router: Router;
  let client: CanopyClient;
  let slowAddress: string;

  beforeAll(async () => {
    telemetry = await startTelemetry({ serviceName: 'telemetry-cluster-test', testSpanExporter: exporter });
    fixture = await buildFixture(workDir, gaussianVectors(ITEMS, DIM, 3), { metric: 'euclidean', shards: SHARDS, trees: TREES, index: 'vectors', version: 'v1' });
    const backends = new Map<number, string[]>();
    // Shard 0 has a second replica whose searches can be slowed (for hedging).
    const replicas: Array<{ shard: number; slow: boolean }> = [
      { shard: 0, slow: false },
      { shard: 0, slow: true },
      { shard: 1, slow: false },
      { shard: 2, slow: false },
    ];
    for (const { shard, slow } of replicas) {
      const node = new ShardNode(
        { manifestDir: fixture.dir, shard, listen: '127.0.0.1:0', shutdownGraceMs: 0 },
        (file, opts) => (slow ? slowable(Index.load(file, opts), slowDelay) : Index.load(file, opts)),
        silent,
      );
      nodes.push(node);
      const address = `127.0.0.1:${await node.start()}`;
      if (slow) slowAddress = address;
      backends.set(shard, [...(backends.get(shard) ?? []), address]);
    }
    router = new Router({ listen: '127.0.0.1:0', backends, hedgeMinDelayMs: 1, discoveryIntervalMs: 50 }, silent);
    client = new CanopyClient({ target: `127.0.0.1:${await router.start()}`, deadlineMs: 5_000 });
    // Bounded wait for the router to learn the index from its backends.
    for (let i = 0; i < 100; i++) {
      const ok = await client.describeIndex('vectors').then(() => true, () => false);
      if (ok) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await telemetry.forceFlush();
    exporter.reset();
  });

  afterAll(async () => {
    client?.close();
    await router?.close();
    for (const node of nodes) await node.close();
    await telemetry?.shutdown();
    rmSync(workDir, { recursive: true, force: true });
  });

  /** Spans of the trace whose root is the router's SERVER span of `method`, after a flush. */
  async function traceOf(method: string): Promise<ReadableSpan[]> {
    await telemetry.forceFlush();
    const roots = exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.SERVER && s.name === `canopy.v1.Search/${method}` && s.parentSpanContext === undefined);
    expect(roots, `one router ${method} span`).toHaveLength(1);
    const traceId = roots[0]!.spanContext().traceId;
    return exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
  }

  const children = (spans: readonly ReadableSpan[], parent: ReadableSpan) => spans.filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId);

  it('makes one connected trace of a query over 3 shards: router, 3 shard calls, 3 shard servers, 3 engine searches', async () => {
    // On a loaded machine a shard call can outlast the hedge delay and be hedged: this test is
    // about how one plain query's spans connect, so it takes the first trace with no hedge.
    let spans: ReadableSpan[] = [];
    for (const q of queries(20, 10)) {
      exporter.reset();
      const answer = await client.search('vectors', q, { k: K });
      expect(answer.shardsAnswered).toBe(SHARDS);
      spans = await traceOf('Search');
      if (spans.every((s) => s.kind !== SpanKind.CLIENT || s.attributes[ATTR_ATTEMPT] === 'first')) break;
    }
    const root = spans.find((s) => s.parentSpanContext === undefined)!;
    expect(root.attributes[ATTR_RPC_GRPC_STATUS_CODE]).toBe(0);
    const calls = children(spans, root);
    expect(calls.map((s) => [s.kind, s.name, s.attributes[ATTR_ATTEMPT]])).toEqual(
      Array(SHARDS).fill([SpanKind.CLIENT, 'canopy.v1.Search/BatchSearchStream', 'first']),
    );
    expect(calls.map((s) => s.attributes[ATTR_SHARD]).sort()).toEqual([0, 1, 2]);
    for (const call of calls) {
      const served = children(spans, call);
      expect(served.map((s) => [s.kind, s.name])).toEqual([[SpanKind.SERVER, 'canopy.v1.Search/BatchSearchStream']]);
      const engine = children(spans, served[0]!);
      expect(engine.map((s) => [s.kind, s.name])).toEqual([[SpanKind.INTERNAL, 'engine.search']]);
      expect(engine[0]!.attributes).toMatchObject({
        [ATTR_K]: K,
        [ATTR_SEARCH_K]: TREES * K,
        [ATTR_ITEMS_RETURNED]: K,
        [ATTR_INDEX_VERSION]: 'v1',
        [ATTR_SHARD]: call.attributes[ATTR_SHARD],
        [ATTR_BATCH_QUERIES]: 1,
      });
    }
    expect(spans).toHaveLength(1 + 3 * SHARDS);
    exporter.reset();
  });

  it('links a coalesced batch to every trace it serves', async () => {
    // A BatchSearch and a Search sent at once reach the coalescers in one turn
    // of the router's event loop often enough; retry a few times until they share a call.
    let linked: ReadableSpan | undefined;
    for (let attempt = 0; attempt < 20 && linked === undefined; attempt++) {
      const qs = queries(4, 20 + attempt);
      await Promise.all(qs.map((q) => client.search('vectors', q, { k: K })));
      await telemetry.forceFlush();
      linked = exporter.getFinishedSpans().find((s) => s.kind === SpanKind.CLIENT && s.links.length > 0);
      if (linked === undefined) exporter.reset();
    }
    expect(linked, 'a shard call that served several queries').toBeDefined();
    const spans = exporter.getFinishedSpans();
    const routerSpans = new Map(spans.filter((s) => s.name === 'canopy.v1.Search/Search').map((s) => [s.spanContext().spanId, s]));
    // Parent and links are router spans of different traces.
    const parent = routerSpans.get(linked!.parentSpanContext!.spanId)!;
    expect(parent).toBeDefined();
    for (const link of linked!.links) {
      const other = routerSpans.get(link.context.spanId)!;
      expect(other).toBeDefined();
      expect(other.spanContext().traceId).not.toBe(parent.spanContext().traceId);
    }
    exporter.reset();
  });

  it('shows both attempts of a hedged shard call in the trace', async () => {
    for (const q of queries(40, 30)) await client.search('vectors', q, { k: K }); // shard 0's p95, for the hedge delay
    exporter.reset();
    slowDelay.ms = 400;
    let hedged: ReadableSpan[] | undefined;
    try {
      for (const q of queries(30, 31)) {
        await client.search('vectors', q, { k: K });
        await telemetry.forceFlush();
        const spans = exporter.getFinishedSpans();
        // On a loaded machine the fast replica may be slow enough to be hedged too: wait for a
        // query whose first attempt went to the slow replica.
        const slowFirst = spans.find((s) => s.attributes[ATTR_ATTEMPT] === 'first' && s.attributes[ATTR_REPLICA] === slowAddress);
        const trace = slowFirst?.spanContext().traceId;
        if (trace !== undefined && spans.some((s) => s.spanContext().traceId === trace && s.attributes[ATTR_ATTEMPT] === 'hedge')) {
          hedged = spans.filter((s) => s.spanContext().traceId === trace);
          break;
        }
        exporter.reset();
      }
    } finally {
      slowDelay.ms = 0;
    }
    expect(hedged, 'a query whose shard 0 call went to the slow replica first').toBeDefined();
    const attempts = hedged!.filter((s) => s.kind === SpanKind.CLIENT && s.attributes[ATTR_SHARD] === 0);
    expect(attempts.map((s) => s.attributes[ATTR_ATTEMPT]).sort()).toEqual(['first', 'hedge']);
    expect(new Set(attempts.map((s) => s.parentSpanContext?.spanId)).size).toBe(1);
    const first = attempts.find((s) => s.attributes[ATTR_ATTEMPT] === 'first')!;
    const hedge = attempts.find((s) => s.attributes[ATTR_ATTEMPT] === 'hedge')!;
    expect(first.attributes[ATTR_REPLICA]).toBe(slowAddress);
    expect(first.attributes[ATTR_RPC_GRPC_STATUS_CODE]).toBe(1); // CANCELLED: the hedge won
    expect(hedge.attributes[ATTR_RPC_GRPC_STATUS_CODE]).toBe(0);
    expect(children(hedged!, hedge)).toHaveLength(1);
    // The slow replica still serves the first attempt; its span ends once its search does.
    let slowServed: ReadableSpan[] = [];
    for (let i = 0; i < 40 && slowServed.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      await telemetry.forceFlush();
      slowServed = exporter.getFinishedSpans().filter((s) => s.parentSpanContext?.spanId === first.spanContext().spanId);
    }
    expect(slowServed.map((s) => s.kind)).toEqual([SpanKind.SERVER]);
  });
});

describe('Prometheus metrics of real `canopy serve` processes (--metrics-listen)', () => {
  const group = new ProcessGroup();
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-telemetry-metrics-'));
  let fixture: Fixture;
  let shards: Array<{ proc: ServingProcess; metricsPort: number }> = [];
  let routerMetricsPort: number;
  let client: CanopyClient;

  beforeAll(async () => {
    fixture = await buildFixture(workDir, gaussianVectors(ITEMS, DIM, 4), { metric: 'euclidean', shards: SHARDS, trees: TREES, index: 'vectors', version: 'v1' });
    shards = [];
    // Every port is picked before any process binds one, so they must differ from each other.
    const ports = await distinctPorts(2 * SHARDS + 2);
    for (let shard = 0; shard < SHARDS; shard++) {
      const address = `127.0.0.1:${ports.pop()!}`;
      const metricsPort = ports.pop()!;
      const proc = group.start(`shard ${shard}`, address, [
        'serve', 'shard', '--manifest', fixture.dir, '--shard', String(shard), '--listen', address,
        '--metrics-listen', `127.0.0.1:${metricsPort}`, '--log-level', 'warn',
      ]);
      shards.push({ proc, metricsPort });
    }
    await Promise.all(shards.map((s) => waitServing(s.proc)));
    const address = `127.0.0.1:${ports.pop()!}`;
    routerMetricsPort = ports.pop()!;
    const backends = shards.flatMap((s, shard) => ['--backend', `${shard}=${s.proc.address}`]);
    const router = group.start('router', address, ['serve', 'router', '--listen', address, ...backends, '--metrics-listen', `127.0.0.1:${routerMetricsPort}`, '--log-level', 'warn']);
    await waitServing(router);
    client = new CanopyClient({ target: address, deadlineMs: 5_000 });
  });

  afterAll(async () => {
    client?.close();
    await group.killAll();
    rmSync(workDir, { recursive: true, force: true });
  });

  const count = (samples: readonly Sample[], name: string, labels: Record<string, string>) => sampleValue(samples, name, labels) ?? 0;

  it('moves RPC, fan-out and engine metrics with queries, and reports the loaded version', async () => {
    const searches = { rpc_method: 'Search', rpc_grpc_status_code: '0' };
    const routerBefore = await scrape(routerMetricsPort);
    const shardBefore = await scrape(shards[1]!.metricsPort);
    const qs = queries(10, 40);
    for (const q of qs) await client.search('vectors', q, { k: K });
    await client.batchSearch('vectors', qs.slice(0, 3), { k: K });

    const routerAfter = await scrape(routerMetricsPort);
    expect(count(routerAfter, 'canopy_rpc_server_duration_seconds_count', searches) - count(routerBefore, 'canopy_rpc_server_duration_seconds_count', searches)).toBe(qs.length);
    expect(count(routerAfter, 'canopy_rpc_server_duration_seconds_count', { rpc_method: 'BatchSearch', rpc_grpc_status_code: '0' })).toBe(1);
    expect(sampleValue(routerAfter, 'canopy_inflight_queries', { rpc_method: 'Search' })).toBe(0);
    const shard1Calls = { canopy_index: 'vectors', canopy_shard: '1', canopy_outcome: 'ok', canopy_attempt: 'first' };
    expect(count(routerAfter, 'canopy_router_shard_call_duration_seconds_count', shard1Calls) - count(routerBefore, 'canopy_router_shard_call_duration_seconds_count', shard1Calls)).toBeGreaterThanOrEqual(qs.length);
    expect(routerAfter.every((s) => s.name !== 'canopy_index_items')).toBe(true);

    const shardAfter = await scrape(shards[1]!.metricsPort);
    const streamed = { rpc_method: 'BatchSearchStream', rpc_grpc_status_code: '0' };
    expect(count(shardAfter, 'canopy_rpc_server_duration_seconds_count', streamed) - count(shardBefore, 'canopy_rpc_server_duration_seconds_count', streamed)).toBeGreaterThanOrEqual(qs.length);
    const version = { canopy_index: 'vectors', canopy_index_version: 'v1', canopy_shard: '1' };
    const manifestItems = (await client.describeIndex('vectors')).shards[1]!.items;
    expect(sampleValue(shardAfter, 'canopy_index_items', version)).toBe(manifestItems);
    expect(sampleValue(shardAfter, 'canopy_index_version_state', { ...version, canopy_state: 'ready' })).toBe(1);
    expect(sampleValue(shardAfter, 'canopy_index_version_state', { ...version, canopy_state: 'loading' })).toBe(0);
    expect(sampleValue(shardAfter, 'canopy_index_load_duration_seconds', version)).toBeGreaterThan(0);
    expect(sampleValue(shardAfter, 'canopy_engine_search_queue_depth')).toBe(0);
    expect(sampleValue(shardAfter, 'canopy_build_info', { service: 'canopy-shard' })).toBe(1);
    expect(sampleValue(shardAfter, 'canopy_rpc_server_duration_seconds_count', { ...streamed, canopy_index: 'vectors' })).toBeGreaterThanOrEqual(qs.length);
  });

  it('counts retries and partial answers when a shard is gone', async () => {
    const before = await scrape(routerMetricsPort);
    await shards[2]!.proc.kill();
    const answer = await client.search('vectors', queries(1, 50)[0]!, { k: K, minShards: 2 });
    expect(answer).toMatchObject({ shardsAnswered: 2, shardsMissing: [2] });
    const after = await scrape(routerMetricsPort);
    expect(count(after, 'canopy_router_partial_answers_total', { rpc_method: 'Search' }) - count(before, 'canopy_router_partial_answers_total', { rpc_method: 'Search' })).toBe(1);
    expect(count(after, 'canopy_router_retries_total', { canopy_shard: '2' }) - count(before, 'canopy_router_retries_total', { canopy_shard: '2' })).toBe(1);
    expect(count(after, 'canopy_router_shard_call_duration_seconds_count', { canopy_shard: '2', canopy_outcome: 'unavailable', canopy_attempt: 'retry' })).toBe(1);
  });
});
