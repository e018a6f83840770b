// Runs a python3 script with one JSON request on stdin and parses the JSON it
// prints: how tests talk to the real Python `annoy`.
import { spawnSync } from 'node:child_process';

export interface PythonRunOptions {
  /** Killed after this long; the error then says so. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 120_000;
const MAX_OUTPUT_BYTES = 256 * 1024 * 1024;

export function runPythonJson<T>(scriptPath: string, request: unknown, opts: PythonRunOptions = {}): T {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const child = spawnSync('python3', [scriptPath], {
    input: JSON.stringify(request),
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: MAX_OUTPUT_BYTES,
  });
  if (child.error) {
    throw new Error(`python3 ${scriptPath} could not run: ${child.error.message}`, { cause: child.error });
  }
  if (child.status !== 0) {
    const why = child.signal ? `killed by ${child.signal} (timeout ${timeoutMs} ms?)` : `exited ${child.status}`;
    throw new Error(`python3 ${scriptPath} ${why}:\n${child.stderr}`);
  }
  return JSON.parse(child.stdout) as T;
}
