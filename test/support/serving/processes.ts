// Real `canopy serve ...` processes for integration tests: spawned from the
// built CLI (dist/ must be built: `npm run prepare`), awaited through the
// grpc.health.v1 service, and always killed, even when a test fails.
import { type ChildProcess, spawn } from 'node:child_process';

import { healthStatus, SEARCH_HEALTH_SERVICE, waitForServing } from '../../../src/cluster/health-probe';
import { CANOPY_BIN } from '../cli';

const STDERR_TAIL_CHARS = 4_000;

export class ServingProcess {
  stderrTail = '';
  exited = false;
  /** Log lines saying a server (a shard node, a router or one of its workers) listens. */
  listeningLines = 0;
  private partialLine = '';

  constructor(
    readonly name: string,
    readonly address: string,
    readonly child: ChildProcess,
  ) {
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-STDERR_TAIL_CHARS);
      const lines = (this.partialLine + chunk.toString()).split('\n');
      this.partialLine = lines.pop()!;
      this.listeningLines += lines.filter((line) => /"msg":"[^"]* listening"/.test(line)).length;
    });
    child.on('exit', () => (this.exited = true));
  }

  get pid(): number {
    return this.child.pid!;
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.exited) this.child.kill(signal);
  }

  /** Sends SIGKILL and waits for the exit. */
  async kill(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGCONT');
    this.child.kill('SIGKILL');
    await exited;
  }
}

/** Every process a test file starts; `killAll()` in afterAll (and it is safe to call twice). */
export class ProcessGroup {
  private readonly processes: ServingProcess[] = [];

  start(name: string, address: string, args: readonly string[]): ServingProcess {
    const child = spawn(process.execPath, [CANOPY_BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    const proc = new ServingProcess(name, address, child);
    this.processes.push(proc);
    return proc;
  }

  async killAll(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.kill()));
  }
}

/**
 * Polls health until SERVING; throws with the process's stderr when it exits
 * or time runs out. `service` 'canopy.v1.Search' (the default) means it can
 * answer queries; '' means the process is up.
 */
export async function waitServing(proc: ServingProcess, timeoutMs = 20_000, service = SEARCH_HEALTH_SERVICE): Promise<void> {
  const gaveUp = (): string | undefined => (proc.exited ? `${proc.name} exited before serving:\n${proc.stderrTail}` : undefined);
  try {
    await waitForServing(proc.address, service, { timeoutMs, gaveUp });
  } catch (err) {
    if (proc.exited) throw err;
    throw new Error(`${proc.name}: ${(err as Error).message}\n${proc.stderrTail}`, { cause: err });
  }
}

const WORKER_POLL_MS = 100;

/**
 * For a process of `workers` node:cluster workers sharing one port: each worker
 * reports its own health (one may still be starting while another serves), so
 * once every worker has logged that it listens (node:cluster hands connections
 * only to workers that listen), this polls with a fresh connection per check,
 * which node:cluster hands to the workers in turn, until 2 x `workers` checks in
 * a row say SERVING.
 */
export async function waitEveryWorkerServing(proc: ServingProcess, workers: number, timeoutMs = 20_000): Promise<void> {
  const endMs = Date.now() + timeoutMs;
  while (proc.listeningLines < workers) {
    if (proc.exited || Date.now() > endMs) throw new Error(`${proc.name}: not every worker listens on ${proc.address}:\n${proc.stderrTail}`);
    await new Promise((r) => setTimeout(r, WORKER_POLL_MS));
  }
  let inARow = 0;
  while (inARow < 2 * workers) {
    if (proc.exited || Date.now() > endMs) throw new Error(`${proc.name}: the workers did not all report SERVING on ${proc.address}:\n${proc.stderrTail}`);
    inARow = (await healthStatus(proc.address, SEARCH_HEALTH_SERVICE)) === 'SERVING' ? inARow + 1 : 0;
    if (inARow === 0) await new Promise((r) => setTimeout(r, WORKER_POLL_MS));
  }
}
