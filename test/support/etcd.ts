// A real etcd for tests: the Debian `etcd` binary on a free loopback port with
// its own temporary data dir. Stop it to simulate an outage, start it again on
// the same port and data dir to bring the cluster back.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { freePort } from './free-port';

const START_TIMEOUT_MS = 15_000;

export class EtcdServer {
  private process: ChildProcess | undefined;
  private readonly dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-etcd-'));

  private constructor(
    readonly clientPort: number,
    private readonly peerPort: number,
  ) {}

  static async start(): Promise<EtcdServer> {
    const server = new EtcdServer(await freePort(), await freePort());
    await server.resume();
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  /** Starts (again) on the same ports and data dir; resolves once etcd serves clients. */
  async resume(): Promise<void> {
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const child = spawn(
      'etcd',
      [
        '--name', 'test',
        '--data-dir', this.dataDir,
        '--listen-client-urls', this.url,
        '--advertise-client-urls', this.url,
        '--listen-peer-urls', peer,
        '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `test=${peer}`,
        '--log-level', 'error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.process = child;
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await this.healthy())) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`etcd did not start on ${this.url}: ${stderr.slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops the process (SIGKILL, like a crash); data dir is kept for `resume()`. */
  async pause(): Promise<void> {
    const child = this.process;
    this.process = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    await this.pause();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  private async healthy(): Promise<boolean> {
    try {
      const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(500) });
      return res.ok;
    } catch {
      return false;
    }
  }
}
