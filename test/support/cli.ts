// Runs the built `canopy` command as a real process (dist/ must be built: `npm run prepare`).
import { spawn } from 'node:child_process';
import path from 'node:path';

export const CANOPY_BIN = path.resolve(__dirname, '../../bin/canopy.js');

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliInput {
  /** Variables added to this process's environment. */
  readonly env?: Readonly<Record<string, string>>;
  /** Written to the command's stdin (closed at once otherwise). */
  readonly stdin?: string;
}

export function runCanopy(args: readonly string[], timeoutMs = 60_000, input: CliInput = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CANOPY_BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...input.env } });
    child.stdin.end(input.stdin ?? '');
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
