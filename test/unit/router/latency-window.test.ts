import { describe, expect, it } from 'vitest';

import { LatencyWindow } from '../../../src/router/latency-window';

describe('LatencyWindow', () => {
  it('is undefined until it has enough samples', () => {
    const w = new LatencyWindow(0.95, 100, 10);
    for (let i = 0; i < 9; i++) w.record(1);
    expect(w.valueMs()).toBeUndefined();
    w.record(1);
    expect(w.valueMs()).toBe(1);
  });

  it('gives the quantile of the samples', () => {
    const w = new LatencyWindow(0.95, 100, 10);
    for (let i = 1; i <= 100; i++) w.record(i);
    expect(w.valueMs()).toBe(96);
  });

  it('forgets samples older than its capacity', () => {
    const w = new LatencyWindow(0.5, 32, 8);
    for (let i = 0; i < 32; i++) w.record(100);
    for (let i = 0; i < 32; i++) w.record(1);
    expect(w.valueMs()).toBe(1);
  });
});
