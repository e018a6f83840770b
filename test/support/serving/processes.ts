// Real `canopy serve ...` processes for integration tests: spawned from the
// built CLI (dist/ must be built: `npm run prepare`), awaited through the
// grpc.health.v1 service, and always killed, even when a test fails.
import { type ChildProcess, spawn } from 'node:child_process';

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as HEALTH_PROTO } from 'grpc-health-check';

import { CANOPY_BIN } from '../cli';

const STDERR_TAIL_CHARS = 4_000;
const HEALTH_POLL_MS = 100;

export class ServingProcess {
  stderrTail = '';
  exited = false;

  constructor(
    readonly name: string,
    readonly address: string,
    readonly child: ChildProcess,
  ) {
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-STDERR_TAIL_CHARS);
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

let healthConstructor: grpc.ServiceClientConstructor | undefined;

function healthClient(address: string): grpc.Client {
  if (healthConstructor === undefined) {
    const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(HEALTH_PROTO, { enums: String })) as unknown as {
      grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
    };
    healthConstructor = pkg.grpc.health.v1.Health;
  }
  return new healthConstructor(address, grpc.credentials.createInsecure());
}

/** The health status of `service` ('' = the server), or the error code when the call fails. */
export function healthStatus(address: string, service = '', deadlineMs = 1_000): Promise<string> {
  const client = healthClient(address);
  return new Promise<string>((resolve) => {
    (client as unknown as { check: (req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void) => void }).check(
      { service },
      { deadline: Date.now() + deadlineMs },
      (err, res) => {
        client.close();
        resolve(err ? grpc.status[err.code]! : res!.status);
      },
    );
  });
}

/**
 * Polls health until SERVING; throws with the process's stderr when it exits
 * or time runs out. `service` 'canopy.v1.Search' (the default) means it can
 * answer queries; '' means the process is up.
 */
export async function waitServing(proc: ServingProcess, timeoutMs = 20_000, service = 'canopy.v1.Search'): Promise<void> {
  const endMs = Date.now() + timeoutMs;
  while (Date.now() < endMs) {
    if (proc.exited) throw new Error(`${proc.name} exited before serving:\n${proc.stderrTail}`);
    if ((await healthStatus(proc.address, service, 500)) === 'SERVING') return;
    await new Promise((r) => setTimeout(r, HEALTH_POLL_MS));
  }
  throw new Error(`${proc.name} did not report SERVING within ${timeoutMs} ms:\n${proc.stderrTail}`);
}
