// A real S3 API for tests: moto's server (pip `moto[server]`) on a free
// loopback port, in memory, started by the test and stopped after it. The
// environment it returns carries the fake credentials and the endpoint, so
// child `canopy` processes find it the way they would find AWS.
import { type ChildProcess, spawn } from 'node:child_process';

import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

import { freePort } from './free-port';

const START_TIMEOUT_MS = 20_000;

export class MotoServer {
  private constructor(
    private readonly child: ChildProcess,
    readonly endpoint: string,
  ) {}

  static async start(): Promise<MotoServer> {
    const port = await freePort();
    const child = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    const server = new MotoServer(child, `http://127.0.0.1:${port}`);
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await server.answers())) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`moto did not start on port ${port} (is pip moto[server] installed?): ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return server;
  }

  /** AWS's variables for a child process: fake credentials, a region. */
  get env(): Record<string, string> {
    return { AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_REGION: 'us-east-1' };
  }

  /** A client of this server, for the test's own checks. */
  client(): S3Client {
    return new S3Client({
      endpoint: this.endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
  }

  async createBucket(bucket: string): Promise<void> {
    const client = this.client();
    try {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
    } finally {
      client.destroy();
    }
  }

  /** Overwrites an object (to corrupt one on purpose). */
  async putObject(bucket: string, key: string, body: Uint8Array | string): Promise<void> {
    const client = this.client();
    try {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    } finally {
      client.destroy();
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await exited;
  }

  private async answers(): Promise<boolean> {
    try {
      await fetch(`${this.endpoint}/moto-api/`, { signal: AbortSignal.timeout(500) });
      return true;
    } catch {
      return false;
    }
  }
}
