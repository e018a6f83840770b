// `canopy up` (what `npm start` runs) as a real process: it builds the MNIST
// demo, starts etcd + 2 shards x 2 replicas + a router, and prints a query
// example; the test runs that example exactly as printed, and `canopy status`
// without --cluster (the cluster name both default to), then sends SIGINT
// and checks that every process it started is gone and its folders removed;
// and that a SIGKILLed `up` leaves nothing running.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { CANOPY_BIN, runCanopy } from '../support/cli';

const REPO_ROOT = path.resolve(__dirname, '../..');
const UP_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 20_000;
/** How long the children of a SIGKILLed `up` may take to stop on the SIGTERM the kernel sends them. */
const ORPHAN_EXIT_MS = 15_000;

/** A running `canopy up`, its stdout as printed so far. */
class UpProcess {
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (c: Buffer) => (this.stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (this.stderr += c.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static start(args: readonly string[]): UpProcess {
    return new UpProcess(spawn(process.execPath, [CANOPY_BIN, 'up', ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  /** Resolves once the "Ctrl-C stops ..." line is out; throws with the output if `up` exits first. */
  async ready(): Promise<void> {
    const endMs = Date.now() + UP_TIMEOUT_MS;
    while (!/^Ctrl-C stops .*$/m.test(this.stdout)) {
      if (this.child.exitCode !== null || Date.now() > endMs) {
        throw new Error(`canopy up is not up (exit ${this.child.exitCode}):\n${this.stdout}\n${this.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The indented line that runs `canopy query`. */
  get queryExample(): string {
    const line = this.stdout.split('\n').find((l) => / query --target /.test(l));
    if (line === undefined) throw new Error(`no query example in:\n${this.stdout}`);
    return line.trim();
  }

  /** The pids `up` printed for what it started. */
  get printedPids(): number[] {
    return [...this.stdout.matchAll(/\(pid (\d+)\)/g)].map((m) => Number(m[1]));
  }

  line(pattern: RegExp): RegExpMatchArray {
    const match = pattern.exec(this.stdout);
    if (match === null) throw new Error(`no line matching ${pattern} in:\n${this.stdout}`);
    return match;
  }

  /**
   * For afterAll: a graceful stop (SIGTERM: `up` stops what it started), SIGKILL if that
   * takes too long, then SIGKILL for anything it printed that still runs (a child that
   * ignored the SIGTERM its killed `up` left it).
   */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), STOP_TIMEOUT_MS));
      if ((await Promise.race([this.exited, timeout])) === 'timeout') this.child.kill('SIGKILL');
    }
    for (const pid of this.printedPids.filter(alive)) process.kill(pid, 'SIGKILL');
  }
}

/** Pids whose parent is `pid`, from /proc. */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        // Field 4 (ppid) follows the parenthesised command, which may contain spaces.
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false; // exited while we looked
      }
    })
    .map(Number);
}

function alive(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return state.slice(state.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function runShell(command: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', command], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

interface Answer {
  neighbors: { id: string; distance: number }[];
  indexVersion: string;
  shardsTotal: number;
  shardsAnswered: number;
}

describe('canopy up', () => {
  const started: UpProcess[] = [];
  const scratch = mkdtempSync(path.join(tmpdir(), 'canopy-up-test-'));

  afterAll(async () => {
    await Promise.all(started.map((up) => up.stop()));
    rmSync(scratch, { recursive: true, force: true });
  });

  it('serves MNIST over etcd + 2 shards x 2 replicas; the printed query works; Ctrl-C stops every process and removes its folders', async () => {
    const up = UpProcess.start(['--port', '0']);
    started.push(up);
    await up.ready();
    expect(up.stdout).toMatch(/2 shards x 2 replicas, membership in etcd http:\/\/127\.0\.0\.1:\d+/);

    const example = up.queryExample;
    expect(example).toMatch(/^node bin\/canopy\.js query --target 127\.0\.0\.1:\d+ --index mnist --item digit-7-0 --k 5$/);
    const result = await runShell(example);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const answer = JSON.parse(result.stdout) as Answer;
    expect(answer.neighbors).toHaveLength(5);
    expect(answer.neighbors[0]).toEqual({ id: 'digit-7-0', distance: 0 });
    // Real data: the nearest images of a 7 are mostly 7s.
    expect(answer.neighbors.filter((n) => n.id.startsWith('digit-7-')).length).toBeGreaterThanOrEqual(4);
    expect(answer.shardsAnswered).toBe(2);

    // `canopy status` without --cluster reads the cluster `up` runs.
    const etcdUrl = up.line(/membership in etcd (http:\/\/127\.0\.0\.1:\d+)/)[1]!;
    const status = await runCanopy(['status', '--etcd', etcdUrl, '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ indexes: { mnist: { active: expect.any(String) } } });

    // etcd + 4 shard nodes + 1 router, and nothing else running under `up`.
    const pids = up.printedPids;
    expect(pids).toHaveLength(6);
    expect(childrenOf(up.child.pid!).sort()).toEqual([...pids].sort());
    const workDir = up.line(/^Logs: (.+)\/logs$/m)[1]!;
    const etcdDataDir = up.line(/, data in (\S+)$/m)[1]!;
    expect(existsSync(workDir) && existsSync(etcdDataDir)).toBe(true);

    up.child.kill('SIGINT');
    expect(await up.exited).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
    expect(existsSync(workDir)).toBe(false);
    expect(existsSync(etcdDataDir)).toBe(false);
  }, 120_000);

  it('serves a file of your own with static membership (--no-etcd) and keeps a --work-dir', async () => {
    const input = path.join(scratch, 'points.jsonl');
    const lines = Array.from({ length: 200 }, (_, i) => JSON.stringify({ id: `p${i}`, vector: [i, i % 7, (i * 13) % 11] }));
    writeFileSync(input, `${lines.join('\n')}\n`);
    const workDir = path.join(scratch, 'work');
    const up = UpProcess.start([
      '--no-etcd', '--data', input, '--format', 'jsonl', '--metric', 'euclidean', '--index', 'points',
      '--shards', '3', '--replicas', '1', '--port', '0', '--work-dir', workDir,
    ]);
    started.push(up);
    await up.ready();
    expect(up.stdout).toMatch(/static membership \(--no-etcd\)/);
    expect(up.stdout).toMatch(/3 shards x 1 replicas, static membership/);
    expect(up.stdout).not.toMatch(/ publish /);

    const result = await runShell(up.queryExample);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const answer = JSON.parse(result.stdout) as Answer;
    const [item] = up.queryExample.match(/--item (\S+)/)!.slice(1);
    expect(answer.neighbors[0]).toEqual({ id: item, distance: 0 });
    expect(answer.shardsAnswered).toBe(3);

    const pids = up.printedPids;
    expect(pids).toHaveLength(4);
    up.child.kill('SIGTERM');
    expect(await up.exited).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
    expect(readdirSync(path.join(workDir, 'logs')).sort()).toEqual(['router.log', 'shard-0-0.log', 'shard-1-0.log', 'shard-2-0.log']);
  }, 120_000);

  it('a SIGKILLed `up` takes what it started with it', async () => {
    const input = path.join(scratch, 'killed.jsonl');
    writeFileSync(input, `${Array.from({ length: 50 }, (_, i) => JSON.stringify({ id: `k${i}`, vector: [i, i % 3] })).join('\n')}\n`);
    const up = UpProcess.start([
      '--no-etcd', '--data', input, '--format', 'jsonl', '--metric', 'euclidean', '--index', 'killed',
      '--shards', '1', '--replicas', '1', '--port', '0', '--work-dir', path.join(scratch, 'killed-work'),
    ]);
    started.push(up);
    await up.ready();
    const pids = up.printedPids;
    expect(pids).toHaveLength(2);
    up.child.kill('SIGKILL');
    await up.exited;
    const deadlineMs = Date.now() + ORPHAN_EXIT_MS;
    while (pids.some(alive) && Date.now() < deadlineMs) await new Promise((r) => setTimeout(r, 100));
    expect(pids.filter(alive)).toEqual([]);
  }, 60_000);
});
