// An interrupted build (Ctrl-C, SIGTERM) leaves no half-written folder behind.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, expect, test } from 'vitest';

import { CANOPY_BIN } from '../support/cli';
import { gaussianVectors } from '../support/vectors';
import { writeNpy } from '../support/input-files';

const dir = mkdtempSync(join(tmpdir(), 'canopy-build-interrupt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const POLL_MS = 20;
const MAX_WAIT_MS = 30_000;

test.each(['SIGINT', 'SIGTERM'] as const)('%s during the build removes the temporary folder', async (signal) => {
  const input = join(dir, 'vectors.npy');
  if (!existsSync(input)) writeNpy(input, gaussianVectors(100_000, 32, 9));
  const out = join(dir, `out-${signal}`);
  const child = spawn(process.execPath, [CANOPY_BIN, 'build', '--input', input, '--format', 'npy', '--metric', 'angular', '--trees', '200', '--threads', '1', '--out', out, '--version', 'v1'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // Wait until the shard file is being written inside the temporary folder.
  const started = Date.now();
  const partial = (): string | undefined => (existsSync(out) ? readdirSync(out).find((name) => name.startsWith('.v1.partial-')) : undefined);
  while (!(partial() !== undefined && existsSync(join(out, partial()!, 'shard-0000.ann')))) {
    expect(child.exitCode, `the build ended before it could be interrupted: ${stderr}`).toBeNull();
    expect(Date.now() - started).toBeLessThan(MAX_WAIT_MS);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  child.kill(signal);
  expect(await exited).toBe(signal === 'SIGINT' ? 130 : 143);
  expect(readdirSync(out)).toEqual([]);
});
