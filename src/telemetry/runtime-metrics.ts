// Process and Node.js runtime metrics, and canopy_build_info, under the names
// Prometheus client libraries use (process_cpu_seconds_total,
// process_resident_memory_bytes, nodejs_heap_size_used_bytes, ...), so the
// usual dashboards and alerts work on a Canopy process as on any other.
// Registered when metrics are on; everything but GC pauses is read at
// collection time, so a process pays nothing between scrapes but the event
// loop delay sampler (one timer) and one callback per garbage collection.
import { readdirSync } from 'node:fs';
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

import type { Histogram, Meter } from '@opentelemetry/api';

import { declareZeroHistogram, type HistogramShape } from './zero-series';

/** Histogram, s, {kind}: garbage collection pauses, by kind (minor, major, incremental, weakcb). */
export const METRIC_GC_DURATION = 'nodejs.gc.duration_seconds';

const GC_KINDS = new Map<number, string>([
  [constants.NODE_PERFORMANCE_GC_MINOR, 'minor'],
  [constants.NODE_PERFORMANCE_GC_MAJOR, 'major'],
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL, 'incremental'],
  [constants.NODE_PERFORMANCE_GC_WEAKCB, 'weakcb'],
]);

const GC_DURATION: HistogramShape = {
  name: METRIC_GC_DURATION,
  unit: 's',
  description: 'Garbage collection pauses, by kind',
  boundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
};

/** How often the event loop delay sampler fires, in ms: fine enough for a p99, cheap enough to leave on. */
const EVENT_LOOP_SAMPLE_MS = 20;

export interface BuildInfo {
  readonly version: string;
  /** The process's role, e.g. canopy-router, canopy-shard. */
  readonly service: string;
}

/** Registers the observers; the returned function stops the sampler and the GC observer. */
export function observeProcessAndRuntime(meter: Meter, build: BuildInfo): () => void {
  const buildInfo = meter.createObservableGauge('canopy.build.info', { description: 'Always 1; the labels say which Canopy and Node.js this process runs' });
  const buildLabels = { version: build.version, nodejs_version: process.versions.node, service: build.service };
  buildInfo.addCallback((result) => result.observe(1, buildLabels));

  const cpu = meter.createObservableCounter('process.cpu_seconds', { unit: 's', description: 'User and system CPU time spent' });
  cpu.addCallback((result) => {
    const usage = process.cpuUsage();
    result.observe((usage.user + usage.system) / 1e6);
  });
  const startTime = meter.createObservableGauge('process.start_time_seconds', { unit: 's', description: 'Start time of the process since the Unix epoch' });
  const startedAt = Date.now() / 1000 - process.uptime();
  startTime.addCallback((result) => result.observe(startedAt));
  const openFds = meter.createObservableGauge('process.open_fds', { unit: '{fd}', description: 'Open file descriptors' });
  openFds.addCallback((result) => {
    const count = openFileDescriptors();
    if (count !== undefined) result.observe(count);
  });

  const rss = meter.createObservableGauge('process.resident_memory_bytes', { unit: 'By', description: 'Resident memory size' });
  const heapUsed = meter.createObservableGauge('nodejs.heap_size_used_bytes', { unit: 'By', description: 'V8 heap in use' });
  const heapTotal = meter.createObservableGauge('nodejs.heap_size_total_bytes', { unit: 'By', description: 'V8 heap reserved' });
  const external = meter.createObservableGauge('nodejs.external_memory_bytes', { unit: 'By', description: 'Memory of C++ objects bound to JavaScript (Buffers included)' });
  meter.addBatchObservableCallback((batch) => {
    const memory = process.memoryUsage();
    batch.observe(rss, memory.rss);
    batch.observe(heapUsed, memory.heapUsed);
    batch.observe(heapTotal, memory.heapTotal);
    batch.observe(external, memory.external);
  }, [rss, heapUsed, heapTotal, external]);

  const delay = monitorEventLoopDelay({ resolution: EVENT_LOOP_SAMPLE_MS });
  delay.enable();
  const lagP99 = meter.createObservableGauge('nodejs.eventloop_lag_p99_seconds', { unit: 's', description: 'Event loop delay, 99th percentile since the previous collection' });
  const lagMax = meter.createObservableGauge('nodejs.eventloop_lag_max_seconds', { unit: 's', description: 'Event loop delay, largest since the previous collection' });
  meter.addBatchObservableCallback((batch) => {
    // The sampler's own resolution is counted as delay; nothing sampled yet reads as 0.
    const sampled = delay.count > 0;
    batch.observe(lagP99, sampled ? Math.max(0, delay.percentile(99) / 1e9 - EVENT_LOOP_SAMPLE_MS / 1e3) : 0);
    batch.observe(lagMax, sampled ? Math.max(0, delay.max / 1e9 - EVENT_LOOP_SAMPLE_MS / 1e3) : 0);
    delay.reset();
  }, [lagP99, lagMax]);

  const gc = meter.createHistogram(GC_DURATION.name, { unit: GC_DURATION.unit, description: GC_DURATION.description, advice: { explicitBucketBoundaries: [...GC_DURATION.boundaries] } });
  for (const kind of GC_KINDS.values()) declareZeroHistogram(GC_DURATION, { kind });
  const observer = observeGc(gc);
  return () => {
    delay.disable();
    observer.disconnect();
  };
}

function observeGc(gc: Histogram): PerformanceObserver {
  const byKind = new Map([...GC_KINDS].map(([code, kind]) => [code, { kind }]));
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = byKind.get((entry as { detail?: { kind?: number } }).detail?.kind ?? -1);
      if (kind !== undefined) gc.record(entry.duration / 1000, kind);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return observer;
}

/** Open descriptors of this process (Linux: /proc/self/fd, less the one reading it); undefined elsewhere. */
function openFileDescriptors(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return undefined;
  }
}
