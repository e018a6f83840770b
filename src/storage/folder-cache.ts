// A local folder of downloaded entries (one subfolder each), bounded in bytes.
// An entry appears whole or not at all: it is filled under a hidden partial
// name and renamed into place, and partial folders left by a killed process are
// removed when the cache opens. To make room, the least recently used entries
// go first (by the folder's modification time, touched on every use), never a
// pinned one (a version being served).
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import path from 'node:path';

const PARTIAL_PREFIX = '.partial-';

export interface FolderCacheOptions {
  readonly root: string;
  /** Total bytes of the entries' files the cache may hold. */
  readonly maxBytes: number;
  /** Told of each entry evicted. */
  readonly onEvict?: (name: string, bytes: number) => void;
}

/** The cache cannot make room for an entry. */
export class CacheFullError extends Error {
  override readonly name = 'CacheFullError';
}

interface Entry {
  readonly name: string;
  readonly bytes: number;
  readonly usedMs: number;
}

export class FolderCache {
  private opened = false;
  /** Entries being filled now: one fill per name at a time. */
  private readonly filling = new Map<string, Promise<string>>();

  constructor(private readonly options: FolderCacheOptions) {}

  /**
   * The folder of entry `name`, filled by `fill(tempDir)` first if it is not
   * cached. `bytes` is what the entry will hold; room is made by evicting
   * entries not in `pinned`. Throws CacheFullError when that is not enough.
   */
  async get(name: string, bytes: number, pinned: ReadonlySet<string>, fill: (tempDir: string) => Promise<void>): Promise<string> {
    const running = this.filling.get(name);
    if (running !== undefined) return running;
    const done = this.getOrFill(name, bytes, pinned, fill).finally(() => this.filling.delete(name));
    this.filling.set(name, done);
    return done;
  }

  /** Removes an entry (one that turned out bad). */
  async remove(name: string): Promise<void> {
    await rm(path.join(this.options.root, name), { recursive: true, force: true });
  }

  private async getOrFill(name: string, bytes: number, pinned: ReadonlySet<string>, fill: (tempDir: string) => Promise<void>): Promise<string> {
    await this.open();
    const dir = path.join(this.options.root, name);
    if (await isDirectory(dir)) {
      const now = new Date();
      await utimes(dir, now, now);
      return dir;
    }
    await this.makeRoom(bytes, new Set([...pinned, name]));
    const tempDir = path.join(this.options.root, `${PARTIAL_PREFIX}${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(tempDir);
    try {
      await fill(tempDir);
      await rename(tempDir, dir);
    } catch (err) {
      await rm(tempDir, { recursive: true, force: true });
      // Another process sharing the folder filled the same entry first: use its copy.
      if ((err as NodeJS.ErrnoException).code === 'ENOTEMPTY' || (err as NodeJS.ErrnoException).code === 'EEXIST') return dir;
      throw err;
    }
    return dir;
  }

  /** Creates the root, and removes partial folders a killed process left behind. */
  private async open(): Promise<void> {
    if (this.opened) return;
    await mkdir(this.options.root, { recursive: true });
    for (const name of await readdir(this.options.root)) {
      if (name.startsWith(PARTIAL_PREFIX)) await rm(path.join(this.options.root, name), { recursive: true, force: true });
    }
    this.opened = true;
  }

  private async makeRoom(bytes: number, pinned: ReadonlySet<string>): Promise<void> {
    const { maxBytes, onEvict } = this.options;
    if (bytes > maxBytes) throw new CacheFullError(`an entry of ${bytes} bytes does not fit a cache of ${maxBytes} bytes`);
    const entries = await this.entries();
    let used = entries.reduce((sum, e) => sum + e.bytes, 0);
    const evictable = entries.filter((e) => !pinned.has(e.name)).sort((a, b) => a.usedMs - b.usedMs);
    for (const entry of evictable) {
      if (used + bytes <= maxBytes) break;
      await this.remove(entry.name);
      used -= entry.bytes;
      onEvict?.(entry.name, entry.bytes);
    }
    if (used + bytes > maxBytes) {
      throw new CacheFullError(
        `${this.options.root} holds ${used} bytes in entries in use; ${bytes} more exceed its ${maxBytes} bytes (raise the cache size)`,
      );
    }
  }

  private async entries(): Promise<Entry[]> {
    const entries: Entry[] = [];
    for (const name of await readdir(this.options.root)) {
      const dir = path.join(this.options.root, name);
      if (name.startsWith(PARTIAL_PREFIX) || !(await isDirectory(dir))) continue;
      entries.push({ name, bytes: await folderBytes(dir), usedMs: (await stat(dir)).mtimeMs });
    }
    return entries;
  }
}

async function isDirectory(p: string): Promise<boolean> {
  return lstat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    total += entry.isDirectory() ? await folderBytes(p) : (await lstat(p)).size;
  }
  return total;
}
