// A real etcd for tests: the Debian `etcd` binary on a free loopback port with
// its own temporary data dir. Stop it to simulate an outage, start it again on
// the same port and data dir to bring the cluster back. With `tls` it serves
// https only and requires client certificates; `enableAuth` turns on etcd's
// user/password authentication.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { freePort } from './free-port';
import type { CertFiles } from './test-certs';

const START_TIMEOUT_MS = 15_000;

export interface EtcdServerOptions {
  /** Serve TLS with this certificate and require client certificates signed by its CA (--client-cert-auth). */
  readonly tls?: CertFiles;
}

/** A user etcd knows once auth is on: full read/write under `prefix`. */
export interface EtcdUser {
  readonly name: string;
  readonly password: string;
  readonly prefix: string;
}

export class EtcdServer {
  private process: ChildProcess | undefined;
  private readonly dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-etcd-'));

  private constructor(
    readonly clientPort: number,
    private readonly peerPort: number,
    private readonly options: EtcdServerOptions,
  ) {}

  static async start(options: EtcdServerOptions = {}): Promise<EtcdServer> {
    const server = new EtcdServer(await freePort(), await freePort(), options);
    await server.resume();
    return server;
  }

  get url(): string {
    return `${this.options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${this.clientPort}`;
  }

  /**
   * Creates a root user (etcd needs one) and `users`, each with a role that
   * may read and write its prefix, then turns authentication on.
   */
  enableAuth(rootPassword: string, users: readonly EtcdUser[]): void {
    this.etcdctl(['user', 'add', `root:${rootPassword}`]);
    this.etcdctl(['user', 'grant-role', 'root', 'root']);
    for (const user of users) {
      this.etcdctl(['user', 'add', `${user.name}:${user.password}`]);
      this.etcdctl(['role', 'add', user.name]);
      this.etcdctl(['role', 'grant-permission', user.name, '--prefix=true', 'readwrite', user.prefix]);
      this.etcdctl(['user', 'grant-role', user.name, user.name]);
    }
    this.etcdctl(['auth', 'enable']);
  }

  private etcdctl(args: readonly string[]): void {
    const tls = this.options.tls;
    const tlsArgs = tls === undefined ? [] : ['--cacert', tls.caFile, '--cert', tls.certFile, '--key', tls.keyFile];
    execFileSync('etcdctl', ['--endpoints', this.url, ...tlsArgs, ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
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
        ...this.tlsArgs(),
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

  /** Stops the process in place (SIGSTOP): its sockets stay open and silent, like a hung etcd or a partition. */
  freeze(): void {
    this.process?.kill('SIGSTOP');
  }

  /** Lets a frozen etcd run again (SIGCONT). */
  thaw(): void {
    this.process?.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    await this.pause();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  private tlsArgs(): string[] {
    const tls = this.options.tls;
    if (tls === undefined) return [];
    return ['--cert-file', tls.certFile, '--key-file', tls.keyFile, '--trusted-ca-file', tls.caFile, '--client-cert-auth'];
  }

  private async healthy(): Promise<boolean> {
    if (this.options.tls !== undefined) return this.healthyOverTls(this.options.tls);
    try {
      const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(500) });
      return res.ok;
    } catch {
      return false;
    }
  }

  private healthyOverTls(tls: CertFiles): Promise<boolean> {
    return new Promise((resolve) => {
      const req = https.get(
        `${this.url}/health`,
        { ca: readFileSync(tls.caFile), cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile), timeout: 500 },
        (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        },
      );
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
    });
  }
}
