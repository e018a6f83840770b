// Build progress on stderr: a redrawn bar per phase and per shard when stderr
// is a terminal, plain log lines (at most one per interval, plus one per
// finished step) when it is not.

export interface ShardProgress {
  readonly items: number;
  readonly treesBuilt: number;
  readonly treesTotal: number;
  readonly state: 'waiting' | 'building' | 'done';
}

export interface ProgressSnapshot {
  readonly rowsRead: number;
  /** Known for formats with a header. */
  readonly rowsTotal: number | undefined;
  readonly bytesRead: number;
  readonly bytesTotal: number;
  readonly readingDone: boolean;
  readonly shards: readonly ShardProgress[];
}

export interface ProgressReporter {
  /** Cheap to call often: output is throttled. */
  update(snapshot: ProgressSnapshot): void;
  /** Draws the final state. */
  finish(snapshot: ProgressSnapshot): void;
}

export interface ProgressOptions {
  readonly tty: boolean;
  /** Log-line mode: at most one routine line per this interval. */
  readonly logIntervalMs?: number;
  readonly now?: () => number;
}

const TTY_REDRAW_MS = 100;
const DEFAULT_LOG_INTERVAL_MS = 5_000;
const BAR_WIDTH = 24;

interface Fraction {
  readonly done: number;
  readonly total: number;
}

interface Step {
  readonly key: string;
  readonly label: string;
  readonly fraction: Fraction;
  /** Set by the builder, not derived from the fraction: bytes can all be read before the last row is handled. */
  readonly finished: boolean;
  readonly detail: string;
}

/** 0..1, and below 1 until the step is finished. */
function ratioOf({ fraction, finished }: Step): number {
  if (finished) return 1;
  return fraction.total > 0 ? Math.min(0.99, fraction.done / fraction.total) : 0;
}

export function createProgressReporter(out: { write(text: string): unknown }, options: ProgressOptions): ProgressReporter {
  const now = options.now ?? Date.now;
  const startedAt = new Map<string, number>();
  /** Elapsed-rate ETA; each step's clock starts the first time it shows progress. */
  const eta = (key: string, { done, total }: Fraction): string => {
    if (done <= 0 || done >= total) return '';
    const start = startedAt.get(key) ?? startedAt.set(key, now()).get(key)!;
    const elapsedMs = now() - start;
    return elapsedMs < 1_000 ? '' : ` eta ${formatSeconds(((total - done) * elapsedMs) / done / 1_000)}`;
  };
  const steps = (s: ProgressSnapshot): Step[] => {
    const reading = s.rowsTotal !== undefined ? { done: s.rowsRead, total: s.rowsTotal } : { done: s.bytesRead, total: s.bytesTotal };
    const readTotal = s.rowsTotal === undefined ? '' : `/${s.rowsTotal}`;
    return [
      { key: 'read', label: 'read', fraction: reading, finished: s.readingDone, detail: `${s.rowsRead}${readTotal} items` },
      ...s.shards.map((shard, i) => ({
        key: `shard ${i}`,
        label: `shard ${i}`,
        fraction: { done: shard.treesBuilt, total: shard.treesTotal },
        finished: shard.state === 'done',
        detail: `${shard.treesBuilt}/${shard.treesTotal} trees, ${shard.items} items${shard.state === 'done' ? ', done' : ''}`,
      })),
    ];
  };
  // Start each clock as soon as the step is first seen moving.
  const touch = (s: ProgressSnapshot): void => {
    for (const step of steps(s)) if (step.fraction.done > 0 && !startedAt.has(step.key)) startedAt.set(step.key, now());
  };

  if (options.tty) {
    let drawnLines = 0;
    let lastDraw = -Infinity;
    const draw = (s: ProgressSnapshot): void => {
      const lines = steps(s).map((step) => {
        const { key, label, fraction, detail } = step;
        const ratio = ratioOf(step);
        const filled = Math.round(ratio * BAR_WIDTH);
        return `${label.padEnd(9)}[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${String(Math.floor(ratio * 100)).padStart(3)}% ${detail}${eta(key, fraction)}`;
      });
      const up = drawnLines > 0 ? `\x1b[${drawnLines}A` : '';
      out.write(up + lines.map((l) => `\x1b[2K${l}\n`).join(''));
      drawnLines = lines.length;
      lastDraw = now();
    };
    return {
      update(s) {
        touch(s);
        if (now() - lastDraw >= TTY_REDRAW_MS) draw(s);
      },
      finish: draw,
    };
  }

  const intervalMs = options.logIntervalMs ?? DEFAULT_LOG_INTERVAL_MS;
  let lastLog = -Infinity;
  const reported = new Set<string>();
  const log = (s: ProgressSnapshot): void => {
    const due = now() - lastLog >= intervalMs;
    for (const step of steps(s)) {
      const { key, label, fraction, finished, detail } = step;
      if (finished && !reported.has(key)) {
        reported.add(key);
        out.write(`canopy build: ${label}: ${detail}\n`);
      } else if (!finished && fraction.done > 0 && due) {
        const percent = Math.floor(100 * ratioOf(step));
        out.write(`canopy build: ${label}: ${detail} (${percent}%)${eta(key, fraction)}\n`);
      }
    }
    if (due) lastLog = now();
  };
  return {
    update(s) {
      touch(s);
      log(s);
    },
    finish: log,
  };
}

function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `${minutes}m${String(Math.ceil(seconds % 60)).padStart(2, '0')}s` : `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}
