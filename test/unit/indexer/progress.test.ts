import { expect, test } from 'vitest';

import { createProgressReporter, type ProgressSnapshot } from '../../../src/indexer/progress';

function recorder(): { write(text: string): void; text: string } {
  return {
    text: '',
    write(t: string) {
      this.text += t;
    },
  };
}

const snapshot = (over: Partial<ProgressSnapshot>): ProgressSnapshot => ({
  rowsRead: 0,
  rowsTotal: 1_000,
  bytesRead: 0,
  bytesTotal: 4_000,
  readingDone: false,
  shards: [
    { items: 0, treesBuilt: 0, treesTotal: 10, state: 'waiting' },
    { items: 0, treesBuilt: 0, treesTotal: 10, state: 'waiting' },
  ],
  ...over,
});

test('log lines when not a terminal: throttled progress with an ETA, one line per finished step', () => {
  let clock = 0;
  const out = recorder();
  const progress = createProgressReporter(out, { tty: false, logIntervalMs: 5_000, now: () => clock });
  progress.update(snapshot({ rowsRead: 100 }));
  clock = 2_000;
  progress.update(snapshot({ rowsRead: 200 })); // within the interval: silent
  clock = 10_000;
  progress.update(snapshot({ rowsRead: 500 }));
  clock = 20_000;
  const shards = snapshot({}).shards.map((s) => ({ ...s, items: 500, treesBuilt: 10, state: 'done' as const }));
  progress.finish(snapshot({ rowsRead: 1_000, readingDone: true, shards }));
  expect(out.text.split('\n')).toEqual([
    'canopy build: read: 100/1000 items (10%)',
    'canopy build: read: 500/1000 items (50%) eta 10s',
    'canopy build: read: 1000/1000 items',
    'canopy build: shard 0: 10/10 trees, 500 items, done',
    'canopy build: shard 1: 10/10 trees, 500 items, done',
    '',
  ]);
});

test('on a terminal: one bar per step, redrawn in place', () => {
  let clock = 0;
  const out = recorder();
  const progress = createProgressReporter(out, { tty: true, now: () => clock });
  progress.update(snapshot({ rowsRead: 250 }));
  clock = 1_000;
  const shards = snapshot({}).shards.map((s, i) => ({ ...s, items: 500, treesBuilt: i * 5, state: 'building' as const }));
  progress.update(snapshot({ rowsRead: 1_000, readingDone: true, shards }));
  const frames = out.text.split('\x1b[3A');
  expect(frames.length).toBe(2);
  expect(frames[0]).toContain('read     [######------------------]  25% 250/1000 items');
  expect(frames[1]).toContain('read     [########################] 100% 1000/1000 items');
  expect(frames[1]).toContain('shard 1  [############------------]  50% 5/10 trees, 500 items');
});
