// One logical call to one shard, as a small state machine over its attempts.
//
// Rules: each replica is tried at most once per call (the only replica of a shard may be asked a second
// time after a failure that is not a refusal, say a broken stream). A retryable failure, including a
// refusal (RESOURCE_EXHAUSTED: another replica may have room), sends the call to another replica while
// time is left (after a failure that is not a refusal, to one whose channel is failing too, dialled
// first: it may have come back since its last dial); a hedge goes to another replica when the attempt
// out alone has not answered within the hedge delay; at most two attempts are out at once; the first
// answer wins and the other attempt is given up (its replica keeps it counted, see in-flight.ts). A
// replica that had an attempt out longer than the winner's lost a race (backend-pool.ts ejects one that
// keeps losing). The call fails with RESOURCE_EXHAUSTED only when every replica tried refused, and its
// message names what happened on each replica tried.
import * as grpc from '@grpc/grpc-js';

import { CanopyError } from '../wire/canopy-error';
import type { AttemptKind } from '../telemetry/attributes';
import type { Replica } from './backend-pool';
import { isConnected } from './connect-wait';
import { OneShotTimer } from './one-shot-timer';
import { chooseReplica } from './replica-choice';

/** Where a shard call is. */
export type ShardCallState =
  /** One attempt out; a hedge may still leave when the hedge timer fires. */
  | 'waiting'
  /** Two attempts out (a hedge beside the first or beside a retry): the first answer wins. */
  | 'racing'
  /** Every attempt so far failed; the next replica is dialling before the retry leaves. */
  | 'connecting'
  /** A replica answered; any other attempt was given up. */
  | 'answered'
  /** Nothing left to try, no time left, or a failure no other replica would cure. */
  | 'failed';

export interface Attempt<Res> {
  readonly replica: Replica;
  /** performance.now() when it left. */
  readonly startedMs: number;
  /** Settles with the replica's answer or its error (the replica's own CanopyError, unprefixed). */
  readonly promise: Promise<Res>;
  /** Stops waiting for it. */
  cancel(): void;
}

/** What a shard call needs from its caller: the replicas, the clock's limits, and how to send. */
export interface ShardCallPlan<Res> {
  readonly shard: number;
  readonly replicas: readonly Replica[];
  /** Epoch ms. */
  readonly deadlineMs: number;
  /** How long the attempt out alone may take before a hedge leaves; undefined: no hedge. */
  readonly hedgeDelayMs: number | undefined;
  send(replica: Replica, kind: AttemptKind): Attempt<Res>;
  /** Resolves once `replica` is connected or the connect wait is over. */
  connect(replica: Replica): Promise<void>;
  /** True when no replica was connected and the call already gave them all the connect wait before its first attempt. */
  readonly waitedForConnect: boolean;
  /** Told of each retry or hedge as it leaves. */
  onSecond(kind: 'retry' | 'hedge'): void;
  /** Told the winning attempt's latency. */
  onAnswer(latencyMs: number): void;
}

interface Failure {
  readonly replica: Replica;
  readonly error: CanopyError;
}

export class ShardCall<Res> {
  private state: ShardCallState = 'waiting';
  private readonly live = new Set<Attempt<Res>>();
  private readonly tried = new Set<Replica>();
  private readonly failures: Failure[] = [];
  private readonly hedgeTimer = new OneShotTimer();
  private hedged = false;
  private resolve: (response: Res) => void = () => undefined;
  private reject: (err: CanopyError) => void = () => undefined;

  constructor(private readonly plan: ShardCallPlan<Res>) {}

  get current(): ShardCallState {
    return this.state;
  }

  /** Sends the first attempt to `first`; settles with the first answer or the combined failure. */
  run(first: Replica): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      this.send(first, 'first');
    });
  }

  private send(replica: Replica, kind: AttemptKind): void {
    this.tried.add(replica);
    const attempt = this.plan.send(replica, kind);
    this.live.add(attempt);
    this.transition(this.live.size > 1 ? 'racing' : 'waiting');
    if (this.state === 'waiting') this.armHedge();
    attempt.promise.then(
      (response) => this.answered(attempt, response),
      (err: unknown) => this.failed(attempt, CanopyError.from(err)),
    );
  }

  /** One hedge per call, timed from the latest attempt that went out alone, and only if it can beat the deadline. */
  private armHedge(): void {
    const delayMs = this.plan.hedgeDelayMs;
    if (this.hedged || delayMs === undefined || Date.now() + delayMs >= this.plan.deadlineMs) return;
    this.hedgeTimer.start(delayMs, () => this.hedge());
  }

  /** A hedge goes only to a healthy replica: one that failed or stalls recently would rarely win the race. */
  private hedge(): void {
    if (this.state !== 'waiting') return;
    const replica = this.another(false);
    if (replica === undefined || replica.health !== 'healthy') return;
    this.hedged = true;
    this.plan.onSecond('hedge');
    this.send(replica, 'hedge');
  }

  private answered(winner: Attempt<Res>, response: Res): void {
    if (this.settled) return;
    this.live.delete(winner);
    for (const loser of this.live) {
      loser.cancel();
      if (loser.startedMs < winner.startedMs) loser.replica.lostRace();
    }
    this.live.clear();
    this.plan.onAnswer(performance.now() - winner.startedMs);
    this.transition('answered');
    this.resolve(response);
  }

  private failed(attempt: Attempt<Res>, error: CanopyError): void {
    if (this.settled || !this.live.delete(attempt)) return;
    this.failures.push({ replica: attempt.replica, error });
    if (!error.retryable) return this.fail(error.code);
    if (this.live.size > 0) return this.transition('waiting'); // the other attempt may still answer
    const next = this.retryTarget(error);
    if (next === undefined || Date.now() >= this.plan.deadlineMs) return this.fail(this.combinedCode());
    this.plan.onSecond('retry');
    if (isConnected(next)) return this.send(next, 'retry');
    this.transition('connecting');
    void this.plan.connect(next).then(() => {
      if (this.state === 'connecting') this.send(next, 'retry');
    });
  }

  /**
   * A replica not tried yet, or the only replica again after a failure that is not a refusal. After such a
   * failure (a dropped connection, say), a replica whose channel is failing qualifies too: its channel
   * dials a backoff apart, so it may serve again since its last dial, and the retry dials it before it
   * leaves (`connecting`). Not so when the call already waited for every replica to connect: one still
   * failing is down, and a second wait would only delay the shard's failure (and a partial answer). A
   * refusal goes only to a live replica: the shedding replica meant it to fail fast, not to wait for a dial.
   */
  private retryTarget(error: CanopyError): Replica | undefined {
    const refused = error.code === grpc.status.RESOURCE_EXHAUSTED;
    const other = this.another(!refused && !this.plan.waitedForConnect);
    if (other !== undefined) return other;
    const [only] = this.plan.replicas;
    const again = this.plan.replicas.length === 1 && this.failures.length === 1 && !refused;
    return again && !only!.closed ? only : undefined;
  }

  /** A replica not tried yet and not removed, best health first; one whose channel is failing only if `failingToo`. */
  private another(failingToo: boolean): Replica | undefined {
    const choice = chooseReplica(this.plan.replicas.filter((r) => !r.closed), this.tried);
    return choice?.health === 'dead' && !failingToo ? undefined : choice;
  }

  /** RESOURCE_EXHAUSTED only when every replica tried refused; otherwise the latest other failure's code. */
  private combinedCode(): grpc.status {
    const other = this.failures.filter((f) => f.error.code !== grpc.status.RESOURCE_EXHAUSTED).at(-1);
    return other === undefined ? grpc.status.RESOURCE_EXHAUSTED : other.error.code;
  }

  private fail(code: grpc.status): void {
    this.hedgeTimer.stop();
    for (const attempt of this.live) attempt.cancel();
    this.live.clear();
    this.transition('failed');
    const what = this.failures.map((f) => `shard ${this.plan.shard} (${f.replica.address}): ${f.error.message}`).join('; ');
    const last = this.failures.at(-1)!.error;
    this.reject(new CanopyError(code, what, { cause: last, retryable: last.retryable }));
  }

  private get settled(): boolean {
    return this.state === 'answered' || this.state === 'failed';
  }

  private transition(next: ShardCallState): void {
    this.state = next;
    if (this.settled || next !== 'waiting') this.hedgeTimer.stop();
  }
}
