import { describe, expect, it } from 'vitest';

import { InFlight } from '../../../src/router/in-flight';

describe('InFlight', () => {
  it('counts calls until they end, oldest first', () => {
    const f = new InFlight();
    const a = f.begin(100);
    f.begin(200);
    expect(f.count(300)).toBe(2);
    expect(f.oldestSentMs(300)).toBe(100);
    f.end(a);
    expect(f.oldestSentMs(300)).toBe(200);
  });

  it('keeps a given-up call counted until its deadline, not as if it had answered', () => {
    const f = new InFlight();
    const a = f.begin(100);
    f.abandon(a, 1_000);
    expect(f.count(999)).toBe(1);
    expect(f.oldestSentMs(999)).toBe(100);
    expect(f.count(1_000)).toBe(0);
  });

  it('drops given-up calls once the replica answers something', () => {
    const f = new InFlight();
    const a = f.begin(100);
    const b = f.begin(150);
    f.abandon(a, 5_000);
    f.end(b);
    expect(f.count(200)).toBe(1);
    f.releaseAbandoned();
    expect(f.count(200)).toBe(0);
  });
});
