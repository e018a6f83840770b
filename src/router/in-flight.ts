// The calls a replica was sent and has not answered, with when each left: its
// load for replica choice, and, by the oldest, a sign that it stopped answering.
// A call the router gave up on (cancelled because another replica answered
// first) stays counted until the replica answers anything or the call's
// deadline passes: the replica may still be working on it, or be hung, and
// forgetting it would make a hung replica look idle.
export class InFlight {
  private readonly sentMs = new Map<number, number>();
  /** Given-up calls and the deadline after which they stop counting. */
  private readonly abandonedUntilMs = new Map<number, number>();
  private nextId = 1;

  /** Counts a call sent now; returns its ticket. */
  begin(nowMs: number): number {
    const id = this.nextId++;
    this.sentMs.set(id, nowMs);
    return id;
  }

  /** The replica answered or failed this call. */
  end(id: number): void {
    this.sentMs.delete(id);
    this.abandonedUntilMs.delete(id);
  }

  /** The router no longer waits for this call; it counts until `untilMs` or until the replica answers something. */
  abandon(id: number, untilMs: number): void {
    if (this.sentMs.has(id)) this.abandonedUntilMs.set(id, untilMs);
  }

  /** The replica answered a call: it is working through what it was sent, so given-up calls stop counting. */
  releaseAbandoned(): void {
    for (const id of this.abandonedUntilMs.keys()) this.sentMs.delete(id);
    this.abandonedUntilMs.clear();
  }

  count(nowMs: number): number {
    this.dropExpired(nowMs);
    return this.sentMs.size;
  }

  /** When the oldest call still counted was sent, or undefined when none is. */
  oldestSentMs(nowMs: number): number | undefined {
    this.dropExpired(nowMs);
    for (const sent of this.sentMs.values()) return sent; // a Map iterates in insertion order: oldest first
    return undefined;
  }

  private dropExpired(nowMs: number): void {
    if (this.abandonedUntilMs.size === 0) return;
    for (const [id, untilMs] of this.abandonedUntilMs) {
      if (untilMs > nowMs) continue;
      this.abandonedUntilMs.delete(id);
      this.sentMs.delete(id);
    }
  }
}
