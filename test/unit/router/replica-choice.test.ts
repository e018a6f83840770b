import { describe, expect, it } from 'vitest';

import { chooseReplica, type ReplicaHealth } from '../../../src/router/replica-choice';

interface R {
  name: string;
  outstanding: number;
  health: ReplicaHealth;
}
const r = (name: string, outstanding: number, health: ReplicaHealth = 'healthy'): R => ({ name, outstanding, health });

/** A fixed sequence of "random" numbers, to pick given pairs. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

describe('chooseReplica', () => {
  it('takes the less loaded of the two sampled replicas', () => {
    const replicas = [r('a', 5), r('b', 1), r('c', 0)];
    // first pick index 0 (a); second draws 0 of the remaining two, i.e. b.
    expect(chooseReplica(replicas, new Set(), sequence(0, 0))?.name).toBe('b');
    // a against c (second draw 0.99 -> index 1 of [b, c] after skipping a).
    expect(chooseReplica(replicas, new Set(), sequence(0, 0.99))?.name).toBe('c');
  });

  it('spreads load: over many picks the busiest replica is chosen least', () => {
    const replicas = [r('a', 10), r('b', 0), r('c', 0)];
    const counts = new Map<string, number>();
    for (let i = 0; i < 600; i++) {
      const chosen = chooseReplica(replicas)!;
      counts.set(chosen.name, (counts.get(chosen.name) ?? 0) + 1);
    }
    expect(counts.get('a') ?? 0).toBe(0);
    expect(counts.get('b')).toBeGreaterThan(100);
    expect(counts.get('c')).toBeGreaterThan(100);
  });

  it('prefers healthy replicas, then ejected ones, and a dead one only when every one is dead', () => {
    const replicas = [r('a', 0, 'ejected'), r('b', 50), r('c', 0, 'dead')];
    for (let i = 0; i < 20; i++) expect(chooseReplica(replicas)?.name).toBe('b');
    for (let i = 0; i < 20; i++) expect(chooseReplica([r('a', 9, 'ejected'), r('c', 0, 'dead')])?.name).toBe('a');
    expect(chooseReplica([r('x', 0, 'dead')])?.name).toBe('x');
  });

  it('avoids the given replicas and returns undefined when nothing is left', () => {
    const a = r('a', 0);
    const b = r('b', 9);
    expect(chooseReplica([a, b], new Set([a]))?.name).toBe('b');
    expect(chooseReplica([a], new Set([a]))).toBeUndefined();
    expect(chooseReplica([])).toBeUndefined();
  });
});
