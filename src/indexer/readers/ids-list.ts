// `--ids FILE`: the ids of a vectors file that has none of its own (.npy,
// .fvecs, .bvecs), in row order. Either text, one id per line (a last "\n" is
// optional), or a 1-D NumPy array of strings: `np.save(f, np.array(ids))`
// writes dtype '<U<n>' (UTF-32, n characters, short ids padded with NULs);
// '|S<n>' (bytes, read as UTF-8) works too. Object arrays ('|O') are pickled
// Python objects, which we do not read: save them with `.astype(str)`.
// The builder keeps every id in memory anyway, so the list is read whole.
import { readFile } from 'node:fs/promises';

import { InputError } from '../input-error';
import { ByteReader } from './byte-reader';
import { NPY_MAGIC, readNpyHeader } from './npy-reader';
import type { Row, VectorReader } from './vector-reader';

const TRAILING_NULS = /\0+$/;

/** Reads the ids of `file`, a text list or a `.npy` array of strings. */
export async function readIdsList(file: string): Promise<string[]> {
  const bytes = await ByteReader.open(file);
  try {
    const head = await bytes.peek(NPY_MAGIC.length);
    return head.equals(NPY_MAGIC) ? await readNpyIds(bytes, file) : await readTextIds(file);
  } finally {
    await bytes.close();
  }
}

async function readTextIds(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8');
  const lines = text.split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

async function readNpyIds(bytes: ByteReader, file: string): Promise<string[]> {
  const fail = (problem: string): never => {
    throw new InputError({ file }, `not a .npy array of ids: ${problem}`);
  };
  const { descr, shape } = await readNpyHeader(bytes, file);
  if (shape.length !== 1) fail(`shape (${shape.join(', ')}) must be 1-D: one id per row`);
  const kind = /^([<>|=])([US])(\d+)$/.exec(descr);
  if (kind === null) fail(`dtype ${descr} is not a string dtype (save the ids with np.array(ids).astype(str))`);
  const [, order, letter, width] = kind!;
  const unicode = letter === 'U';
  if (unicode && order === '>') fail(`dtype ${descr} is big-endian; save it little-endian`);
  const itemBytes = Number(width) * (unicode ? 4 : 1);
  const rows = shape[0]!;
  const data = Buffer.from(await bytes.read(rows * itemBytes));
  if (data.length !== rows * itemBytes) fail(`holds ${data.length} bytes of data, ${rows} ids of ${itemBytes} bytes need ${rows * itemBytes}`);
  const ids = new Array<string>(rows);
  for (let i = 0; i < rows; i++) {
    const item = data.subarray(i * itemBytes, (i + 1) * itemBytes);
    ids[i] = (unicode ? decodeUtf32LE(item) : item.toString('utf8')).replace(TRAILING_NULS, '');
  }
  return ids;
}

function decodeUtf32LE(bytes: Buffer): string {
  let text = '';
  for (let at = 0; at < bytes.length; at += 4) {
    const code = bytes.readUInt32LE(at);
    if (code === 0) break;
    text += String.fromCodePoint(code);
  }
  return text;
}

/**
 * The reader's rows with ids from `ids` (id n for row n). A list shorter or
 * longer than the rows is an InputError naming both files.
 */
export function withIdsList(reader: VectorReader, ids: readonly string[], idsFile: string): VectorReader {
  const mismatch = (rows: number): InputError =>
    new InputError({ file: idsFile }, `holds ${ids.length} ids, but ${reader.file} has ${rows} rows`);
  if (reader.rowCount !== undefined && reader.rowCount !== ids.length) throw mismatch(reader.rowCount);
  return {
    file: reader.file,
    dim: reader.dim,
    rowCount: reader.rowCount,
    totalBytes: reader.totalBytes,
    get bytesRead() {
      return reader.bytesRead;
    },
    async *batches() {
      let rows = 0;
      for await (const batch of reader.batches()) {
        const last = batch.at(-1);
        if (last !== undefined && last.row >= ids.length) throw mismatch(last.row + 1);
        yield batch.map((row): Row => ({ ...row, id: ids[row.row]! }));
        rows += batch.length;
      }
      if (rows !== ids.length) throw mismatch(rows);
    },
    close: () => reader.close(),
  };
}
