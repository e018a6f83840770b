// Sequential buffered reads over a file handle, for the binary formats. The
// buffer grows only to the largest single read asked for, so memory stays
// bounded by the batch size whatever the file size.
import { open, type FileHandle } from 'node:fs/promises';

const MIN_CHUNK_BYTES = 1 << 20;

export class ByteReader {
  private buffer = Buffer.alloc(MIN_CHUNK_BYTES);
  /** Unread bytes are buffer[start, end). */
  private start = 0;
  private end = 0;
  /** File offset of buffer[end]. */
  private filePosition = 0;

  private constructor(
    private readonly handle: FileHandle,
    readonly size: number,
  ) {}

  static async open(file: string): Promise<ByteReader> {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      return new ByteReader(handle, size);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** File offset of the next unread byte. */
  get position(): number {
    return this.filePosition - (this.end - this.start);
  }

  /**
   * Reads up to `n` bytes; fewer only at end of file. The returned view is
   * valid until the next call.
   */
  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    const take = Math.min(n, this.end - this.start);
    const view = this.buffer.subarray(this.start, this.start + take);
    this.start += take;
    return view;
  }

  /**
   * Reads up to (not including) `delimiter`, which is consumed. Returns null at
   * end of file with nothing read; throws if no delimiter is found within
   * `maxBytes`. The view is valid until the next call.
   */
  async readUntil(delimiter: number, maxBytes: number): Promise<Buffer | null> {
    let scanned = 0;
    for (;;) {
      const at = this.buffer.indexOf(delimiter, this.start + scanned);
      if (at !== -1 && at < this.end) {
        const view = this.buffer.subarray(this.start, at);
        this.start = at + 1;
        return view;
      }
      scanned = this.end - this.start;
      if (scanned > maxBytes) throw new RangeError(`no delimiter within ${maxBytes} bytes`);
      const before = scanned;
      await this.fill(scanned + MIN_CHUNK_BYTES);
      if (this.end - this.start === before) {
        if (before === 0) return null;
        const view = this.buffer.subarray(this.start, this.end);
        this.start = this.end;
        return view;
      }
    }
  }

  /** Up to `n` next bytes without consuming them; fewer only at end of file. Valid until the next call. */
  async peek(n: number): Promise<Buffer> {
    await this.fill(n);
    return this.buffer.subarray(this.start, Math.min(this.start + n, this.end));
  }

  /** Reads up to `n` bytes at `position` into a fresh buffer, leaving the sequential position alone. */
  async readAt(position: number, n: number): Promise<Buffer> {
    const out = Buffer.alloc(n);
    const { bytesRead } = await this.handle.read(out, 0, n, position);
    return out.subarray(0, bytesRead);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  /** Makes at least `n` unread bytes available, unless the file ends first. */
  private async fill(n: number): Promise<void> {
    if (this.end - this.start >= n) return;
    if (this.buffer.length - this.start < n) {
      const grown = Buffer.alloc(Math.max(n, MIN_CHUNK_BYTES, this.buffer.length));
      this.buffer.copy(grown, 0, this.start, this.end);
      this.buffer = grown;
    } else {
      this.buffer.copy(this.buffer, 0, this.start, this.end);
    }
    this.end -= this.start;
    this.start = 0;
    while (this.end < n) {
      const { bytesRead } = await this.handle.read(this.buffer, this.end, this.buffer.length - this.end, this.filePosition);
      if (bytesRead === 0) return;
      this.end += bytesRead;
      this.filePosition += bytesRead;
    }
  }
}

// Every format Canopy reads stores little-endian numbers; a typed-array copy is
// only a correct decode on a little-endian host.
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Copies little-endian float32 bytes into a fresh (aligned) Float32Array. */
export function float32FromLE(bytes: Uint8Array): Float32Array {
  assertLittleEndianHost();
  const out = new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** Copies little-endian float64 bytes and narrows them to float32 (out-of-range values become ±Infinity). */
export function float32FromFloat64LE(bytes: Uint8Array): Float32Array {
  assertLittleEndianHost();
  const wide = new Float64Array(bytes.length / 8);
  new Uint8Array(wide.buffer).set(bytes);
  return Float32Array.from(wide);
}

function assertLittleEndianHost(): void {
  if (!LITTLE_ENDIAN_HOST) throw new Error('canopy build reads little-endian files and needs a little-endian host');
}
