// A timer that fires at most once per start and can be stopped: the hedge of a
// shard call. Unref'd, so a pending one never keeps the process alive.
export class OneShotTimer {
  private timer: NodeJS.Timeout | undefined;

  /** Fires `fire` after `delayMs` unless stopped first; a running timer is replaced. */
  start(delayMs: number, fire: () => void): void {
    this.stop();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      fire();
    }, delayMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
