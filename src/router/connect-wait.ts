// Waiting for a replica's channel to connect, for calls that find none
// connected (a router started before its shards, or every replica restarted):
// dial now and give the dials a moment, rather than fail on channels that would
// wait out grpc-js's backoff.
import * as grpc from '@grpc/grpc-js';

import type { Replica } from './backend-pool';

export function isConnected(replica: Replica): boolean {
  return !replica.closed && replica.client.getChannel().getConnectivityState(false) === grpc.connectivityState.READY;
}

/**
 * Asks every replica's channel to connect (an idle one dials; one in backoff
 * dials when its backoff ends) and resolves once one is READY or at `untilMs`.
 */
export function awaitConnected(replicas: readonly Replica[], untilMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(finish, Math.max(0, untilMs - Date.now()));
    const watch = (channel: ReturnType<grpc.Client['getChannel']>): void => {
      if (done) return;
      const state = channel.getConnectivityState(true);
      if (state === grpc.connectivityState.READY) return finish();
      if (state === grpc.connectivityState.SHUTDOWN) return;
      channel.watchConnectivityState(state, untilMs, (err) => {
        if (err === undefined) watch(channel);
      });
    };
    for (const r of replicas) if (!r.closed) watch(r.client.getChannel());
  });
}
