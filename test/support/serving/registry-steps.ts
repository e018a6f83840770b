// Steps registry-mode cluster tests share: publishing a version with the CLI,
// and waiting (bounded) until the cluster in etcd shows something.
import type { Etcd3 } from 'etcd3';
import { expect } from 'vitest';

import { readCluster, type ClusterSnapshot } from '../../../src/registry/cluster-view';
import type { ClusterKeys } from '../../../src/registry/keys';
import { runCanopy } from '../cli';
import type { Fixture } from './fixture';

/** `canopy publish` of `fixture`; it must succeed silently. */
export async function publishFixture(etcdFlags: readonly string[], fixture: Fixture): Promise<void> {
  const result = await runCanopy(['publish', ...etcdFlags, '--manifest', fixture.dir]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
}

/** Polls the cluster in etcd every 100 ms until `test` holds; throws naming `what` after `timeoutMs`. */
export async function untilCluster(
  etcd: Etcd3,
  keys: ClusterKeys,
  what: string,
  test: (s: ClusterSnapshot) => boolean,
  timeoutMs = 20_000,
): Promise<ClusterSnapshot> {
  const endMs = Date.now() + timeoutMs;
  for (;;) {
    const snapshot = await readCluster(etcd, keys);
    if (test(snapshot)) return snapshot;
    if (Date.now() > endMs) throw new Error(`timed out waiting for: ${what}\n${JSON.stringify([...snapshot.nodes])}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
