// Every metric Canopy records, with its name, unit and attributes, defined in
// one place. Names are stable and follow Prometheus's conventions as the
// scrape endpoint exposes them: dots become underscores, counters get
// `_total`, histograms `_bucket`/`_sum`/`_count`; durations are in seconds and
// their names end in `_seconds` already (the exporter adds no unit suffix):
// canopy.rpc.server.duration_seconds ->
// canopy_rpc_server_duration_seconds_bucket{rpc_method,rpc_grpc_status_code,canopy_index,le};
// see helm/canopy/dashboards/ and helm/canopy/templates/prometheus-rule.yaml.
//
// Instruments come from the global MeterProvider. The API has no proxy for
// meters, so an instrument made before startTelemetry registers the SDK's
// provider would be a no-op forever: `canopyInstruments()` builds them on first
// use and again whenever the global provider changes. With metrics off it hands
// out the API's no-op instruments, and recording costs one empty call.
import {
  type Attributes,
  type BatchObservableResult,
  type Counter,
  type Histogram,
  type MeterProvider,
  metrics,
  type ObservableGauge,
  type ObservableResult,
  type ObservableUpDownCounter,
} from '@opentelemetry/api';

import {
  ATTR_ATTEMPT,
  ATTR_INDEX,
  ATTR_INDEX_VERSION,
  ATTR_OUTCOME,
  ATTR_RPC_GRPC_STATUS_CODE,
  ATTR_RPC_METHOD,
  ATTR_SHARD,
  ATTR_SIDECAR,
  ATTR_STATE,
} from './attributes';
import { declareZeroHistogram, type HistogramShape } from './zero-series';

export const METER_NAME = 'canopy';

/** Histogram, s, {rpc.method, rpc.grpc.status_code, canopy.index}: every RPC a router or shard node serves. */
export const METRIC_RPC_SERVER_DURATION = 'canopy.rpc.server.duration_seconds';
/** Histogram, s, {canopy.index, canopy.shard, canopy.outcome, canopy.attempt}: each router -> shard call, as the router saw it. */
export const METRIC_SHARD_CALL_DURATION = 'canopy.router.shard_call.duration_seconds';
/** Counter, {canopy.index, canopy.shard}: shard calls sent again after a retryable failure. */
export const METRIC_RETRIES = 'canopy.router.retries';
/** Counter, {canopy.index, canopy.shard}: hedged copies sent to a second replica. */
export const METRIC_HEDGES = 'canopy.router.hedges';
/** Counter, {canopy.index, rpc.method}: answers returned with fewer shards than the index has. */
export const METRIC_PARTIAL_ANSWERS = 'canopy.router.partial_answers';
/** Observable UpDownCounter, {rpc.method}: queries being served now (a batch counts its queries); see inflightQueriesOf. */
export const METRIC_INFLIGHT_QUERIES = 'canopy.inflight_queries';
/** Observable gauge: searches waiting in the native search pool's queue. */
export const METRIC_SEARCH_QUEUE_DEPTH = 'canopy.engine.search_queue.depth';
/** Observable gauge, {canopy.index, canopy.index.version, canopy.shard}: items in the node's shard of the version. */
export const METRIC_INDEX_ITEMS = 'canopy.index.items';
/** Observable gauge, s, {canopy.index, canopy.index.version, canopy.shard}: how long loading the version took. */
export const METRIC_INDEX_LOAD_DURATION = 'canopy.index.load.duration_seconds';
/** Observable gauge, {canopy.index, canopy.index.version, canopy.shard, canopy.state}: 1 for the version's state, 0 for the others. */
export const METRIC_INDEX_VERSION_STATE = 'canopy.index.version.state';
/**
 * Observable gauge, {canopy.index, canopy.index.version, canopy.shard, canopy.sidecar, canopy.state}: 1 for
 * the state of each of the version's sidecars on this node, 0 for the others (anything but `loaded`: the
 * shard searches without it).
 */
export const METRIC_INDEX_SIDECAR_STATE = 'canopy.index.sidecar.state';
/** Observable gauge, {canopy.state}: 1 for the etcd session's state, 0 for the others. */
export const METRIC_ETCD_SESSION_STATE = 'canopy.etcd.session.state';
/** Observable gauge, {canopy.state}: 1 for the state of a router's etcd watch, 0 for the other. */
export const METRIC_ETCD_WATCH_STATE = 'canopy.etcd.watch.state';

/**
 * Bucket bounds, in seconds, for latencies: a shard search takes 0.1-10 ms, a
 * routed query a few ms, a deadline seconds. The SDK's default bounds (meant
 * for milliseconds) would put every call in the first bucket.
 */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

const RPC_SERVER_DURATION: HistogramShape = {
  name: METRIC_RPC_SERVER_DURATION,
  unit: 's',
  description: 'Duration of RPCs served, by method, gRPC status and index',
  boundaries: LATENCY_BUCKETS_SECONDS,
};
const SHARD_CALL_DURATION: HistogramShape = {
  name: METRIC_SHARD_CALL_DURATION,
  unit: 's',
  description: 'Duration of router calls to shard nodes, by index, shard, outcome and attempt kind',
  boundaries: LATENCY_BUCKETS_SECONDS,
};

/** The methods a router or shard node serves that carry queries (partial answers, zero series). */
export const QUERY_METHODS = ['Search', 'BatchSearch', 'SearchByItem', 'BatchSearchStream'] as const;

/** States of a version on a node, as in the registry's node record (registry/records.ts). */
export const INDEX_VERSION_STATES = ['loading', 'ready', 'failed'] as const;
export type IndexVersionState = (typeof INDEX_VERSION_STATES)[number];

/**
 * States of a shard's sidecar: `loaded` (searches use it), `absent` (the version has none of that
 * kind), `missing` (listed, not on disk), `refused` (failed a check: size, sha256, or the engine's).
 */
export const SIDECAR_STATES = ['loaded', 'absent', 'missing', 'refused'] as const;
export type SidecarState = (typeof SIDECAR_STATES)[number];

/** States of a node's etcd session, as registry/node-session.ts names them. */
export const ETCD_SESSION_STATES = ['unregistered', 'registered', 'closed'] as const;
export type EtcdSessionState = (typeof ETCD_SESSION_STATES)[number];

/** States of a router's etcd watch, as registry/cluster-view.ts names them. */
export const ETCD_WATCH_STATES = ['watching', 'disconnected'] as const;
export type EtcdWatchState = (typeof ETCD_WATCH_STATES)[number];

/** One index version a shard node holds, as read at collection time. */
export interface IndexVersionReading {
  readonly index: string;
  readonly version: string;
  /** The shard this node holds of the version (lets a dashboard count each shard once over its replicas). */
  readonly shard: number;
  readonly state: IndexVersionState;
  /** Items in this node's shard of the version; omit while unknown. */
  readonly items?: number;
  /** Time the load took, in seconds; omit until it finished. */
  readonly loadDurationSeconds?: number;
  /** The state of each sidecar kind, once loaded. */
  readonly sidecars?: readonly { readonly kind: string; readonly state: SidecarState }[];
}

/** Synchronous instruments; record on them directly. */
export interface CanopyInstruments {
  readonly rpcServerDuration: Histogram;
  readonly shardCallDuration: Histogram;
  readonly retries: Counter;
  readonly hedges: Counter;
  readonly partialAnswers: Counter;
}

interface InstrumentSet extends CanopyInstruments {
  readonly provider: MeterProvider;
  readonly searchQueueDepth: ObservableGauge;
  readonly indexItems: ObservableGauge;
  readonly indexLoadDuration: ObservableGauge;
  readonly indexVersionState: ObservableGauge;
  readonly indexSidecarState: ObservableGauge;
  readonly etcdSessionState: ObservableGauge;
  readonly etcdWatchState: ObservableGauge;
  readonly inflightQueries: ObservableUpDownCounter;
}

let current: InstrumentSet | undefined;

// Set iff startTelemetry registered a meter provider. While false, hot paths
// skip reading clocks and building attributes for instruments that are no-ops.
let metricsEnabled = false;

/** Called by startTelemetry / its shutdown only. */
export function setMetricsEnabled(enabled: boolean): void {
  metricsEnabled = enabled;
}

export function isMetricsEnabled(): boolean {
  return metricsEnabled;
}

/** The instruments of the current global MeterProvider. Cheap: call it where you record. */
export function canopyInstruments(): CanopyInstruments {
  return instrumentSet();
}

/** Queries of one method being served now: add when a call starts, subtract when it ends. */
export interface InflightCell {
  count: number;
}

// Kept as plain numbers and observed at collection, so a served call pays an
// addition instead of two recordings; one cell per method, never removed.
const inflightByMethod = new Map<string, { readonly cell: InflightCell; readonly attributes: Attributes }>();

/** The in-flight count of `method` (canopy.inflight_queries); keep it and update it in place. */
export function inflightQueriesOf(method: string): InflightCell {
  let entry = inflightByMethod.get(method);
  if (entry === undefined) {
    entry = { cell: { count: 0 }, attributes: { [ATTR_RPC_METHOD]: method } };
    inflightByMethod.set(method, entry);
  }
  return entry.cell;
}

function observeInflight(result: ObservableResult): void {
  for (const { cell, attributes } of inflightByMethod.values()) result.observe(cell.count, attributes);
}

/**
 * Stops an observation registered below. The last observed values stay in
 * the exported data (opentelemetry-js#4096): unobserve at shutdown only.
 */
export type Unobserve = () => void;

/**
 * Reports `read()` as the search queue depth at each collection. Register after
 * startTelemetry; the callback must be cheap and must not throw.
 */
export function observeSearchQueueDepth(read: () => number): Unobserve {
  const gauge = instrumentSet().searchQueueDepth;
  const callback = (result: ObservableResult): void => result.observe(read());
  gauge.addCallback(callback);
  return () => gauge.removeCallback(callback);
}

/**
 * Reports items, load time, state and sidecar states of each version `read()` lists, at each
 * collection. The SDK keeps exporting an attribute set's last value after it
 * stops being observed (opentelemetry-js#4096), so a version that was listed
 * once and is gone (unloaded) is reported with 0 items and 0 in every state,
 * instead of lingering as "ready".
 */
export function observeIndexVersions(read: () => Iterable<IndexVersionReading>): Unobserve {
  const set = instrumentSet();
  const observables = [set.indexItems, set.indexLoadDuration, set.indexVersionState, set.indexSidecarState];
  const seen = new Map<string, Attributes>();
  /** Sidecar kinds observed per version key, to zero them with it. */
  const seenSidecars = new Map<string, Set<string>>();
  const callback = (batch: BatchObservableResult): void => {
    const listed = new Set<string>();
    for (const reading of read()) {
      const attributes = { [ATTR_INDEX]: reading.index, [ATTR_INDEX_VERSION]: reading.version, [ATTR_SHARD]: reading.shard };
      const key = JSON.stringify([reading.index, reading.version, reading.shard]);
      listed.add(key);
      seen.set(key, attributes);
      if (reading.items !== undefined) batch.observe(set.indexItems, reading.items, attributes);
      if (reading.loadDurationSeconds !== undefined) batch.observe(set.indexLoadDuration, reading.loadDurationSeconds, attributes);
      observeStateSet(batch, set.indexVersionState, INDEX_VERSION_STATES, reading.state, attributes);
      for (const { kind, state } of reading.sidecars ?? []) {
        seenSidecars.set(key, (seenSidecars.get(key) ?? new Set()).add(kind));
        observeStateSet(batch, set.indexSidecarState, SIDECAR_STATES, state, { ...attributes, [ATTR_SIDECAR]: kind });
      }
    }
    for (const [key, attributes] of seen) {
      if (listed.has(key)) continue;
      batch.observe(set.indexItems, 0, attributes);
      observeStateSet(batch, set.indexVersionState, INDEX_VERSION_STATES, undefined, attributes);
      for (const kind of seenSidecars.get(key) ?? []) observeStateSet(batch, set.indexSidecarState, SIDECAR_STATES, undefined, { ...attributes, [ATTR_SIDECAR]: kind });
    }
  };
  const meter = set.provider.getMeter(METER_NAME);
  meter.addBatchObservableCallback(callback, observables);
  return () => meter.removeBatchObservableCallback(callback, observables);
}

/** Reports the etcd session state `read()` returns, at each collection. */
export function observeEtcdSession(read: () => EtcdSessionState): Unobserve {
  return observeState(instrumentSet().etcdSessionState, ETCD_SESSION_STATES, read);
}

/** Reports the etcd watch state `read()` returns, at each collection. */
export function observeEtcdWatch(read: () => EtcdWatchState): Unobserve {
  return observeState(instrumentSet().etcdWatchState, ETCD_WATCH_STATES, read);
}

function observeState(gauge: ObservableGauge, states: readonly string[], read: () => string): Unobserve {
  const callback = (result: ObservableResult): void => {
    const state = read();
    for (const candidate of states) result.observe(candidate === state ? 1 : 0, { [ATTR_STATE]: candidate });
  };
  gauge.addCallback(callback);
  return () => gauge.removeCallback(callback);
}

/**
 * A state as a set of 0/1 series, one per possible state, so a state change
 * moves both series at once and `== 1` selects the current one in PromQL.
 */
function observeStateSet(
  batch: BatchObservableResult,
  gauge: ObservableGauge,
  states: readonly string[],
  state: string | undefined,
  attributes: Attributes,
): void {
  for (const candidate of states) batch.observe(gauge, candidate === state ? 1 : 0, { ...attributes, [ATTR_STATE]: candidate });
}

/**
 * Creates at zero the series a router records for `index` (of `shards`
 * shards) before anything happened, so `rate()` and alerts have a series from
 * the start: retries, hedges and partial answers (counters, exported by every
 * exporter), and successful served queries and first shard calls (histograms:
 * the SDK cannot hold an empty one, so only the scrape endpoint shows those).
 */
export function declareRouterIndex(index: string, shards: number): void {
  if (!metricsEnabled) return;
  const set = instrumentSet();
  for (let shard = 0; shard < shards; shard++) {
    const attributes = { [ATTR_INDEX]: index, [ATTR_SHARD]: shard };
    set.retries.add(0, attributes);
    set.hedges.add(0, attributes);
    declareZeroHistogram(SHARD_CALL_DURATION, { ...attributes, [ATTR_OUTCOME]: 'ok', [ATTR_ATTEMPT]: 'first' });
  }
  for (const method of QUERY_METHODS) set.partialAnswers.add(0, { [ATTR_INDEX]: index, [ATTR_RPC_METHOD]: method });
  declareServedIndex(index);
}

/** Creates at zero the served-query series of `index` (successful calls and in-flight queries of each query method); see declareRouterIndex. */
export function declareServedIndex(index: string): void {
  if (!metricsEnabled) return;
  for (const method of QUERY_METHODS) {
    inflightQueriesOf(method);
    declareZeroHistogram(RPC_SERVER_DURATION, { [ATTR_RPC_METHOD]: method, [ATTR_RPC_GRPC_STATUS_CODE]: 0, [ATTR_INDEX]: index });
  }
}

function instrumentSet(): InstrumentSet {
  const provider = metrics.getMeterProvider();
  if (current === undefined || current.provider !== provider) current = createInstruments(provider);
  return current;
}

function createInstruments(provider: MeterProvider): InstrumentSet {
  const meter = provider.getMeter(METER_NAME);
  const inflightQueries = meter.createObservableUpDownCounter(METRIC_INFLIGHT_QUERIES, { unit: '{query}', description: 'Queries being served' });
  inflightQueries.addCallback(observeInflight);
  const histogram = (shape: HistogramShape): Histogram =>
    meter.createHistogram(shape.name, { unit: shape.unit, description: shape.description, advice: { explicitBucketBoundaries: [...shape.boundaries] } });
  return {
    provider,
    rpcServerDuration: histogram(RPC_SERVER_DURATION),
    shardCallDuration: histogram(SHARD_CALL_DURATION),
    retries: meter.createCounter(METRIC_RETRIES, { unit: '{call}', description: 'Shard calls retried after a retryable failure' }),
    hedges: meter.createCounter(METRIC_HEDGES, { unit: '{call}', description: 'Hedged shard calls sent to a second replica' }),
    partialAnswers: meter.createCounter(METRIC_PARTIAL_ANSWERS, { unit: '{answer}', description: 'Answers missing one or more shards' }),
    searchQueueDepth: meter.createObservableGauge(METRIC_SEARCH_QUEUE_DEPTH, { unit: '{search}', description: 'Searches queued in the native search pool' }),
    indexItems: meter.createObservableGauge(METRIC_INDEX_ITEMS, { unit: '{item}', description: "Items in this node's shard of an index version" }),
    indexLoadDuration: meter.createObservableGauge(METRIC_INDEX_LOAD_DURATION, { unit: 's', description: 'Time loading an index version took' }),
    indexVersionState: meter.createObservableGauge(METRIC_INDEX_VERSION_STATE, { description: 'Index version state on this node (1 = current state)' }),
    indexSidecarState: meter.createObservableGauge(METRIC_INDEX_SIDECAR_STATE, {
      description: "State of a shard's sidecar on this node (1 = current state; not loaded: searched without it)",
    }),
    etcdSessionState: meter.createObservableGauge(METRIC_ETCD_SESSION_STATE, { description: 'etcd session state of this node (1 = current state)' }),
    etcdWatchState: meter.createObservableGauge(METRIC_ETCD_WATCH_STATE, { description: "etcd watch state of this router's cluster view (1 = current state)" }),
    inflightQueries,
  };
}
