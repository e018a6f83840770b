// A single-member etcd for a local cluster: the `etcd` binary on PATH, on free
// loopback ports, with its own temporary data dir.
import { spawnSync } from 'node:child_process';

import { freeLoopbackPort } from './loopback-port';
import { ManagedProcess } from './managed-process';

const ETCD_BINARY = 'etcd';
const ETCD_HEALTH_POLL_MS = 100;
const ETCD_HEALTH_CALL_MS = 500;

/** True when `etcd --version` runs. */
export function etcdOnPath(): boolean {
  return spawnSync(ETCD_BINARY, ['--version'], { stdio: 'ignore' }).status === 0;
}

export interface LocalEtcd {
  readonly process: ManagedProcess;
  /** Its client URL, e.g. http://127.0.0.1:40123. */
  readonly url: string;
}

/** Starts etcd and resolves once its /health says so; rejects (after stopping it) otherwise. */
export async function startLocalEtcd(opts: { dataDir: string; logFile: string; timeoutMs: number }): Promise<LocalEtcd> {
  const clientPort = await freeLoopbackPort();
  const peer = `http://127.0.0.1:${await freeLoopbackPort()}`;
  const url = `http://127.0.0.1:${clientPort}`;
  const proc = ManagedProcess.start({
    name: 'etcd',
    address: `127.0.0.1:${clientPort}`,
    command: ETCD_BINARY,
    args: [
      '--name', 'canopy-local',
      '--data-dir', opts.dataDir,
      '--listen-client-urls', url,
      '--advertise-client-urls', url,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `canopy-local=${peer}`,
      '--log-level', 'error',
    ],
    logFile: opts.logFile,
  });
  const endMs = Date.now() + opts.timeoutMs;
  while (!(await healthy(url))) {
    if (proc.state.kind === 'exited' || Date.now() > endMs) {
      await proc.stop(0);
      throw new Error(`etcd did not start on ${url}:\n${proc.logTail()}`);
    }
    await new Promise((r) => setTimeout(r, ETCD_HEALTH_POLL_MS));
  }
  return { process: proc, url };
}

async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(ETCD_HEALTH_CALL_MS) });
    return res.ok;
  } catch {
    return false;
  }
}
