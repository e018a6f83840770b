// One child process of a local cluster: spawned in its own process group (so a
// terminal's Ctrl-C reaches only the launcher, which then stops children in
// order), its stdout and stderr appended to a log file, and stopped with
// SIGTERM, then SIGKILL once a grace period has passed.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';

const LOG_TAIL_BYTES = 4_000;
/**
 * util-linux's setpriv, where present: `--pdeathsig TERM` has the kernel send
 * the child SIGTERM when the launcher dies, even by SIGKILL, which no handler
 * of the launcher's own can do; the child then stops as on Ctrl-C.
 */
const SETPRIV = '/usr/bin/setpriv';

/** `command args`, wrapped so that the child is stopped when this process dies (where setpriv exists). */
function stoppedWithLauncher(command: string, args: readonly string[]): [string, string[]] {
  return existsSync(SETPRIV) ? [SETPRIV, ['--pdeathsig', 'TERM', '--', command, ...args]] : [command, [...args]];
}

export type ProcessState =
  | { readonly kind: 'running' }
  | { readonly kind: 'exited'; readonly code: number | null; readonly signal: NodeJS.Signals | null };

export class ManagedProcess {
  private stateValue: ProcessState = { kind: 'running' };
  /** Settles when the process has exited, however it ended. */
  readonly exited: Promise<ProcessState>;

  private constructor(
    /** What it is, for messages: "etcd", "shard 0 replica 1", "router". */
    readonly name: string,
    /** HOST:PORT it serves on (etcd: its client URL's host:port). */
    readonly address: string,
    readonly logFile: string,
    private readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.stateValue = { kind: 'exited', code, signal };
        resolve(this.stateValue);
      });
    });
  }

  /** Spawns `command args`; throws when it cannot be started at all (e.g. not found). */
  static start(opts: { name: string; address: string; command: string; args: readonly string[]; logFile: string }): ManagedProcess {
    const fd = openSync(opts.logFile, 'a');
    try {
      const [command, args] = stoppedWithLauncher(opts.command, opts.args);
      const child = spawn(command, args, { stdio: ['ignore', fd, fd], detached: true });
      if (child.pid === undefined) throw new Error(`${opts.name}: could not start ${opts.command}`);
      return new ManagedProcess(opts.name, opts.address, opts.logFile, child);
    } finally {
      closeSync(fd); // the child holds its own copy
    }
  }

  get pid(): number {
    return this.child.pid!;
  }

  get state(): ProcessState {
    return this.stateValue;
  }

  /** The last lines it logged, for error messages. */
  logTail(): string {
    try {
      const text = readFileSync(this.logFile, 'utf8');
      return text.slice(-LOG_TAIL_BYTES).trimEnd();
    } catch {
      return '';
    }
  }

  /** SIGTERM (a graceful stop), then SIGKILL if it is still running after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    if (this.stateValue.kind === 'exited') return;
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), graceMs)));
    const outcome = await Promise.race([this.exited, timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }

  /** SIGKILL at once, synchronously: for a launcher that is exiting without a chance to wait. */
  killNow(): void {
    if (this.stateValue.kind === 'running') this.child.kill('SIGKILL');
  }
}
