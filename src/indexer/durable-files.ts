// fsync helpers: a version folder is renamed into place only once every byte
// in it, and its directory entry, is on disk.
import { open } from 'node:fs/promises';

/** fsyncs a file or a directory by path (Linux allows fsync on a read-only descriptor). */
export async function syncPath(p: string): Promise<void> {
  const handle = await open(p, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes a file that must not exist yet, and fsyncs it. */
export async function writeNewFile(file: string, text: string): Promise<void> {
  const handle = await open(file, 'wx');
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
