// Histogram series shown at zero on the scrape endpoint until their first
// recording. The SDK holds a histogram's series only once something was
// recorded in it, and recording is the only way to make one; but an alert or a
// `rate()` over a series that does not exist yet says nothing. Counters need no
// help (`add(0)` creates a series); histograms are declared here and added,
// empty, to each collection that lacks them, just before it is rendered.
import { type Attributes, ValueType } from '@opentelemetry/api';
import { AggregationTemporality, DataPointType, type HistogramMetricData, type MetricData, type ResourceMetrics } from '@opentelemetry/sdk-metrics';

/** What an empty series of a histogram needs: the instrument's name, unit, description and bucket bounds. */
export interface HistogramShape {
  readonly name: string;
  readonly unit: string;
  readonly description: string;
  readonly boundaries: readonly number[];
}

interface Declared {
  readonly shape: HistogramShape;
  /** Attribute sets by their canonical key (sorted entries). */
  readonly series: Map<string, Attributes>;
}

const declared = new Map<string, Declared>();

export function declareZeroHistogram(shape: HistogramShape, attributes: Attributes): void {
  let entry = declared.get(shape.name);
  if (entry === undefined) {
    entry = { shape, series: new Map() };
    declared.set(shape.name, entry);
  }
  entry.series.set(attributesKey(attributes), attributes);
}

/** Forgets every declaration (telemetry shutdown: a later start declares its own). */
export function clearZeroHistograms(): void {
  declared.clear();
}

/**
 * `collected` with an empty data point for every declared series it lacks (in
 * the scope named `scopeName`, where the instruments live), the histogram
 * added when it has no data point at all yet.
 */
export function withZeroHistograms(collected: ResourceMetrics, scopeName: string): ResourceMetrics {
  if (declared.size === 0) return collected;
  const scope = collected.scopeMetrics.find((s) => s.scope.name === scopeName);
  const metrics: MetricData[] = scope === undefined ? [] : [...scope.metrics];
  for (const { shape, series } of declared.values()) {
    const index = metrics.findIndex((m) => m.descriptor.name === shape.name);
    const present = index < 0 ? undefined : (metrics[index] as HistogramMetricData);
    const seen = new Set(present?.dataPoints.map((p) => attributesKey(p.attributes)) ?? []);
    const now = present?.dataPoints[0]?.endTime ?? hrNow();
    const zeros = [...series].filter(([key]) => !seen.has(key)).map(([, attributes]) => emptyPoint(shape, attributes, now));
    if (zeros.length === 0) continue;
    const merged: HistogramMetricData = present === undefined
      ? {
          descriptor: { name: shape.name, unit: shape.unit, description: shape.description, valueType: ValueType.DOUBLE },
          dataPointType: DataPointType.HISTOGRAM,
          aggregationTemporality: AggregationTemporality.CUMULATIVE,
          dataPoints: zeros,
        }
      : { ...present, dataPoints: [...present.dataPoints, ...zeros] };
    if (index < 0) metrics.push(merged);
    else metrics[index] = merged;
  }
  const others = collected.scopeMetrics.filter((s) => s !== scope);
  return { ...collected, scopeMetrics: [...others, { scope: scope?.scope ?? { name: scopeName }, metrics }] };
}

function emptyPoint(shape: HistogramShape, attributes: Attributes, time: [number, number]): HistogramMetricData['dataPoints'][number] {
  return {
    attributes,
    startTime: time,
    endTime: time,
    value: { buckets: { boundaries: [...shape.boundaries], counts: new Array<number>(shape.boundaries.length + 1).fill(0) }, sum: 0, count: 0 },
  };
}

function attributesKey(attributes: Attributes): string {
  return JSON.stringify(Object.entries(attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function hrNow(): [number, number] {
  const ms = Date.now();
  return [Math.floor(ms / 1000), (ms % 1000) * 1e6];
}
