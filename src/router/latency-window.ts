// Recent call latencies of one shard, for the hedging delay: a fixed ring of
// the last samples and a quantile recomputed every few samples, so the hot
// path costs one array store.

export const DEFAULT_LATENCY_WINDOW_SAMPLES = 256;
/** Below this many samples the quantile is unknown (a cold shard hedges after the initial delay). */
export const DEFAULT_LATENCY_MIN_SAMPLES = 32;
const RECOMPUTE_EVERY_SAMPLES = 16;

export class LatencyWindow {
  private readonly samplesMs: Float64Array;
  private count = 0;
  private next = 0;
  private sinceRecompute = 0;
  private cachedMs: number | undefined;

  constructor(
    private readonly quantile: number,
    capacity = DEFAULT_LATENCY_WINDOW_SAMPLES,
    private readonly minSamples = DEFAULT_LATENCY_MIN_SAMPLES,
  ) {
    this.samplesMs = new Float64Array(capacity);
  }

  record(latencyMs: number): void {
    this.samplesMs[this.next] = latencyMs;
    this.next = (this.next + 1) % this.samplesMs.length;
    this.count = Math.min(this.count + 1, this.samplesMs.length);
    if (++this.sinceRecompute >= RECOMPUTE_EVERY_SAMPLES) this.cachedMs = undefined;
  }

  /** The quantile of the recent samples, or undefined while there are too few. */
  valueMs(): number | undefined {
    if (this.count < this.minSamples) return undefined;
    if (this.cachedMs === undefined) {
      const sorted = this.samplesMs.slice(0, this.count).sort();
      this.cachedMs = sorted[Math.min(this.count - 1, Math.floor(this.quantile * this.count))]!;
      this.sinceRecompute = 0;
    }
    return this.cachedMs;
  }
}
