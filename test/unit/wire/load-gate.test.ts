// The admission gate with its lag source injected: refuses new queries with
// RESOURCE_EXHAUSTED naming the lag or the in-flight bound, before the
// handler runs, and admits again once the load is gone.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';

import { EventLoopLagProbe, type LagSource, LoadGate } from '../../../src/wire/load-gate';
import { unaryHandler } from '../../../src/wire/search-server';

class FixedLag implements LagSource {
  constructor(public ms: number) {}
  lagMs(): number {
    return this.ms;
  }
  stop(): void {}
}

describe('LoadGate', () => {
  it('refuses while the lag is over the bound, naming both, and admits once it is back under', () => {
    const lag = new FixedLag(3);
    const gate = new LoadGate({ maxEventLoopLagMs: 10 }, lag);
    expect(gate.admit(1)).toBeUndefined();
    lag.ms = 10;
    expect(gate.admit(1)).toBeUndefined();
    lag.ms = 37.4;
    const refusal = gate.admit(1);
    expect(refusal?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(refusal?.retryable).toBe(true);
    expect(refusal?.message).toBe('overloaded: event loop lag 37 ms over 10');
    expect(gate.inflightQueries).toBe(2);
    lag.ms = 0;
    expect(gate.admit(1)).toBeUndefined();
  });

  it('never refuses for lag when the bound is 0, nor calls without queries', () => {
    expect(new LoadGate({ maxEventLoopLagMs: 0 }, new FixedLag(1e6)).admit(5)).toBeUndefined();
    expect(new LoadGate({ maxEventLoopLagMs: 1 }, new FixedLag(1e6)).admit(0)).toBeUndefined();
  });

  it('bounds the queries in flight, counting a batch by its queries, and admits again after release', () => {
    const gate = new LoadGate({ maxEventLoopLagMs: 0, maxInflightQueries: 4 }, new FixedLag(0));
    expect(gate.admit(3)).toBeUndefined();
    expect(gate.admit(2)?.message).toBe('overloaded: 3 queries in flight, at most 4');
    expect(gate.admit(1)).toBeUndefined();
    expect(gate.admit(1)?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    gate.release(3);
    expect(gate.inflightQueries).toBe(1);
    expect(gate.admit(2)).toBeUndefined();
  });

  it('admits a batch larger than the bound when nothing else is in flight (else it could never run)', () => {
    const gate = new LoadGate({ maxEventLoopLagMs: 0, maxInflightQueries: 4 }, new FixedLag(0));
    expect(gate.admit(10)).toBeUndefined();
    expect(gate.admit(1)?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  });
});

describe('unaryHandler with a gate', () => {
  it('answers a refused call with the refusal without running the handler, and releases admitted calls', async () => {
    const lag = new FixedLag(50);
    const gate = new LoadGate({ maxEventLoopLagMs: 10 }, lag);
    let ran = 0;
    const logged: string[] = [];
    const handler = unaryHandler(
      async (request: { n: number; index: string }) => {
        ran++;
        return { n: request.n };
      },
      (err) => logged.push(err.message),
      'Search',
      () => 1,
      gate,
    );
    const call = (n: number) =>
      new Promise<{ err: grpc.ServiceError | null; value: unknown }>((resolve) => {
        const fake = { request: { n, index: 'items' }, metadata: new grpc.Metadata() } as unknown as grpc.ServerUnaryCall<{ n: number; index: string }, { n: number }>;
        handler(fake, (err, value) => resolve({ err: err as grpc.ServiceError | null, value }));
      });

    const refused = await call(1);
    expect(ran).toBe(0);
    expect(refused.err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(refused.err?.details).toBe('overloaded: event loop lag 50 ms over 10');
    expect(logged).toEqual(['overloaded: event loop lag 50 ms over 10']);

    lag.ms = 0;
    expect(await call(2)).toEqual({ err: null, value: { n: 2 } });
    expect(ran).toBe(1);
    expect(gate.inflightQueries).toBe(0);
  });
});

describe('EventLoopLagProbe', () => {
  let probe: EventLoopLagProbe | undefined;
  afterEach(() => probe?.stop());

  it('reports a loop blocked longer than its interval as lag at once, before its timer can run', () => {
    probe = new EventLoopLagProbe(5);
    const until = performance.now() + 60;
    while (performance.now() < until) {
      // Blocks the loop, as a long run of I/O callbacks would.
    }
    expect(probe.lagMs()).toBeGreaterThanOrEqual(50);
  });

  it('reports the last tick\'s lateness once the timer runs again', async () => {
    probe = new EventLoopLagProbe(5);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const until = performance.now() + 60;
    while (performance.now() < until) {
      // Blocks the loop.
    }
    // A timer due after the probe's: the probe's late tick runs first, and this one finds it just ran.
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(probe.lagMs()).toBeGreaterThanOrEqual(50);
  });
});
