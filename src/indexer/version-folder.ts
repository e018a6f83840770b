// A version folder appears whole or not at all: it is written under a hidden
// temporary name beside its final place (same file system, so the rename is
// atomic) and renamed once complete. On failure, or when the process is
// interrupted, the temporary folder is removed.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';

import { syncPath } from './durable-files';

const INTERRUPTS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
/** Exit status of a process killed by a signal, as shells report it. */
const SIGNAL_EXIT_BASE = 128;
const SIGNAL_NUMBERS: Record<(typeof INTERRUPTS)[number], number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

/** Thrown when the target folder exists already: versions are immutable. */
export class VersionExistsError extends Error {
  override readonly name = 'VersionExistsError';
}

/**
 * Runs `fill(tempDir)` and renames `tempDir` to `<parentDir>/<version>` when
 * it resolves. Returns the final folder's path.
 */
export async function writeVersionFolder(parentDir: string, version: string, fill: (tempDir: string) => Promise<void>): Promise<string> {
  const finalDir = path.join(parentDir, version);
  await refuseExisting(finalDir);
  await mkdir(parentDir, { recursive: true });
  const tempDir = path.join(parentDir, `.${version}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tempDir);
  const onInterrupt = (signal: (typeof INTERRUPTS)[number]): void => {
    rmSync(tempDir, { recursive: true, force: true });
    process.exit(SIGNAL_EXIT_BASE + SIGNAL_NUMBERS[signal]);
  };
  for (const signal of INTERRUPTS) process.once(signal, onInterrupt);
  try {
    await fill(tempDir);
    await refuseExisting(finalDir);
    await rename(tempDir, finalDir);
    // The rename is durable once the parent directory's entry is on disk.
    await syncPath(parentDir);
    return finalDir;
  } catch (err) {
    await rm(tempDir, { recursive: true, force: true });
    throw err;
  } finally {
    for (const signal of INTERRUPTS) process.removeListener(signal, onInterrupt);
  }
}

/** Whether anything exists at `p`; errors other than "no such file" are thrown. */
export async function pathExists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? false : Promise.reject(err)),
  );
}

async function refuseExisting(dir: string): Promise<void> {
  if (await pathExists(dir)) throw new VersionExistsError(`${dir} exists already; versions are never overwritten (pick another --version)`);
}
