// NumPy `.npy`: magic, version, a Python-dict header, then the raw array. We
// accept 2-D little-endian float32/float64 arrays in C order, which is what
// `np.save` writes for embedding matrices.
import { InputError } from '../input-error';
import { ByteReader, float32FromFloat64LE, float32FromLE } from './byte-reader';
import { ROWS_PER_BATCH, type Row, type VectorReader } from './vector-reader';

export const NPY_MAGIC = Buffer.from('\x93NUMPY', 'latin1');
const ITEM_BYTES: Readonly<Record<string, number>> = { '<f4': 4, '<f8': 8 };

/** What an `.npy` header says; each reader checks the dtype and shape it accepts. */
export interface NpyHeader {
  readonly descr: string;
  readonly fortranOrder: boolean;
  readonly shape: readonly number[];
}

interface MatrixHeader {
  readonly descr: string;
  readonly rows: number;
  readonly dim: number;
}

export async function openNpy(file: string): Promise<VectorReader> {
  const bytes = await ByteReader.open(file);
  try {
    const header = await readMatrixHeader(bytes, file);
    const itemBytes = ITEM_BYTES[header.descr]!;
    const rowBytes = header.dim * itemBytes;
    const expected = bytes.position + header.rows * rowBytes;
    if (bytes.size !== expected) {
      throw new InputError({ file }, `file is ${bytes.size} bytes, but a ${header.rows} x ${header.dim} ${header.descr} array needs ${expected}`);
    }
    const decode = itemBytes === 4 ? float32FromLE : float32FromFloat64LE;
    return {
      file,
      dim: header.dim,
      rowCount: header.rows,
      totalBytes: bytes.size,
      get bytesRead() {
        return bytes.position;
      },
      async *batches() {
        for (let first = 0; first < header.rows; first += ROWS_PER_BATCH) {
          const count = Math.min(ROWS_PER_BATCH, header.rows - first);
          const flat = decode(await bytes.read(count * rowBytes));
          const rows: Row[] = [];
          for (let i = 0; i < count; i++) {
            rows.push({ row: first + i, vector: flat.subarray(i * header.dim, (i + 1) * header.dim) });
          }
          yield rows;
        }
      },
      close: () => bytes.close(),
    };
  } catch (err) {
    await bytes.close();
    throw err;
  }
}

async function readMatrixHeader(bytes: ByteReader, file: string): Promise<MatrixHeader> {
  const fail = (problem: string): never => {
    throw new InputError({ file }, `not a readable .npy file: ${problem}`);
  };
  const { descr, fortranOrder, shape } = await readNpyHeader(bytes, file);
  if (ITEM_BYTES[descr] === undefined) {
    fail(`dtype ${descr} is not supported (use little-endian float32 '<f4' or float64 '<f8')`);
  }
  if (fortranOrder) fail('the array is in Fortran order; save it in C order (np.ascontiguousarray)');
  if (shape.length !== 2) fail(`shape (${shape.join(', ')}) must be 2-D: (rows, dim)`);
  if (shape[1] === 0) fail('dim (shape[1]) is 0');
  return { descr, rows: shape[0]!, dim: shape[1]! };
}

/** Reads the magic, version and header dict; leaves `bytes` at the first byte of the array. */
export async function readNpyHeader(bytes: ByteReader, file: string): Promise<NpyHeader> {
  const fail = (problem: string): never => {
    throw new InputError({ file }, `not a readable .npy file: ${problem}`);
  };
  const prefix = Buffer.from(await bytes.read(8));
  if (prefix.length < 8 || !prefix.subarray(0, 6).equals(NPY_MAGIC)) fail('missing the \\x93NUMPY magic');
  const major = prefix[6]!;
  if (major < 1 || major > 3) fail(`format version ${major}.${prefix[7]} is not supported`);
  const lengthBytes = Buffer.from(await bytes.read(major === 1 ? 2 : 4));
  if (lengthBytes.length < (major === 1 ? 2 : 4)) fail('truncated header');
  const headerLength = major === 1 ? lengthBytes.readUInt16LE(0) : lengthBytes.readUInt32LE(0);
  const raw = await bytes.read(headerLength);
  if (raw.length < headerLength) fail('truncated header');
  const text = raw.toString(major === 3 ? 'utf8' : 'latin1');

  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text)?.[1] ?? fail(`no 'descr' in header ${text.trim()}`);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1] ?? fail(`no 'fortran_order' in header ${text.trim()}`);
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1] ?? fail(`no 'shape' in header ${text.trim()}`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  if (!shape.every((n) => Number.isSafeInteger(n) && n >= 0)) fail(`shape (${shapeText}) is not a list of sizes`);
  return { descr, fortranOrder: fortran === 'True', shape };
}
