import { describe, expect, it } from 'vitest';

import { StandingQueue } from '../../../src/router/standing-queue';

const BOUNDS = { targetMs: 10, intervalMs: 100 };

describe('StandingQueue', () => {
  it('admits a burst whose oldest wait drops under the target within an interval, however long it was', () => {
    const q = new StandingQueue(BOUNDS);
    q.observe(0, 500);
    q.observe(99, 600);
    q.observe(100, 5); // drained under the target before an interval passed
    q.observe(150, 700);
    q.observe(249, 700);
    expect(q.shedding).toBe(false);
    expect(q.admits(700)).toBe(true);
  });

  it('refuses while the oldest waits over the target once it stood there an interval', () => {
    const q = new StandingQueue(BOUNDS);
    q.observe(0, 11);
    q.observe(100, 50);
    expect(q.shedding).toBe(true);
    expect(q.admits(50)).toBe(false);
    expect(q.admits(10)).toBe(true); // the queue is shedding, but this moment's wait is within the target
  });

  it('admits everything again only after an interval with no wait over the target', () => {
    const q = new StandingQueue(BOUNDS);
    q.observe(0, 20);
    q.observe(100, 20); // shedding, last seen over at 100
    q.observe(150, 0);
    q.observe(199, 0);
    expect(q.shedding).toBe(true);
    q.observe(200, 0);
    expect(q.shedding).toBe(false);
    q.observe(210, 500); // over again: a new interval must pass before refusing
    expect(q.admits(500)).toBe(true);
  });
});
