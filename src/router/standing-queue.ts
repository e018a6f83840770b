// The router's test of a standing queue, the rule a shard's search queue applies
// (native/src/queue_admission.h, CoDel's): a queue that empties now and then is
// absorbing bursts and refuses nothing, however long it grew for a moment. Once
// its oldest entry has waited over the target for a whole interval, arrivals are
// refused while the oldest waits over the target, and everything is admitted
// again after an interval with none over it.

/** Where the queue is. */
type StandingState =
  /** No entry over the target: everything is admitted. */
  | 'open'
  /** The oldest entry has waited over the target since `sinceMs`; still admitting, a burst may drain. */
  | 'over'
  /** The queue stood over the target an interval; refusing while it is over. `sinceMs`: last seen over. */
  | 'shedding';

export interface StandingBounds {
  /** A wait (ms) the queue may have for a moment. */
  readonly targetMs: number;
  /** How long (ms) a wait over the target must last to count as standing. */
  readonly intervalMs: number;
}

export class StandingQueue {
  private state: StandingState = 'open';
  private sinceMs = 0;

  constructor(private readonly bounds: StandingBounds) {}

  /** One observation at `nowMs` (a monotonic clock): how long the oldest entry has waited (0: queue empty). */
  observe(nowMs: number, oldestWaitMs: number): void {
    const over = oldestWaitMs > this.bounds.targetMs;
    switch (this.state) {
      case 'open':
        if (over) this.enter('over', nowMs);
        break;
      case 'over':
        if (!over) this.enter('open', nowMs);
        else if (nowMs - this.sinceMs >= this.bounds.intervalMs) this.enter('shedding', nowMs);
        break;
      case 'shedding':
        if (over) this.sinceMs = nowMs;
        else if (nowMs - this.sinceMs >= this.bounds.intervalMs) this.enter('open', nowMs);
        break;
    }
  }

  /** Whether an arrival (after observe) may join the queue. */
  admits(oldestWaitMs: number): boolean {
    return this.state !== 'shedding' || oldestWaitMs <= this.bounds.targetMs;
  }

  get shedding(): boolean {
    return this.state === 'shedding';
  }

  private enter(next: StandingState, nowMs: number): void {
    this.state = next;
    this.sinceMs = nowMs;
  }
}
