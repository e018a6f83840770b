// TEXMEX `.fvecs` / `.bvecs` (the SIFT/GIST benchmark files): every row is a
// little-endian int32 dimension followed by that many float32 (fvecs) or
// uint8 (bvecs) values. Every row must repeat the first row's dimension.
import { InputError } from '../input-error';
import { ByteReader, float32FromLE } from './byte-reader';
import { ROWS_PER_BATCH, type Row, type VectorReader } from './vector-reader';

type ElementKind = 'float32' | 'uint8';

export const openFvecs = (file: string): Promise<VectorReader> => openVecs(file, 'float32');
export const openBvecs = (file: string): Promise<VectorReader> => openVecs(file, 'uint8');

async function openVecs(file: string, kind: ElementKind): Promise<VectorReader> {
  const bytes = await ByteReader.open(file);
  try {
    const elementBytes = kind === 'float32' ? 4 : 1;
    const first = await bytes.peek(4);
    if (first.length > 0 && first.length < 4) throw new InputError({ file, row: 0 }, 'truncated dimension field');
    const dim = first.length === 0 ? undefined : first.readInt32LE(0);
    if (dim !== undefined && !(dim > 0)) throw new InputError({ file, row: 0 }, `dimension field is ${dim}; expected a positive int32`);
    const rowBytes = dim === undefined ? 0 : 4 + dim * elementBytes;
    return {
      file,
      dim,
      rowCount: dim === undefined ? 0 : Math.ceil(bytes.size / rowBytes),
      totalBytes: bytes.size,
      get bytesRead() {
        return bytes.position;
      },
      async *batches() {
        if (dim === undefined) return;
        for (let firstRow = 0; bytes.position < bytes.size; firstRow += ROWS_PER_BATCH) {
          const chunk = await bytes.read(ROWS_PER_BATCH * rowBytes);
          yield decodeRows(chunk, { file, firstRow, dim, rowBytes, kind });
        }
      },
      close: () => bytes.close(),
    };
  } catch (err) {
    await bytes.close();
    throw err;
  }
}

interface DecodeContext {
  readonly file: string;
  readonly firstRow: number;
  readonly dim: number;
  readonly rowBytes: number;
  readonly kind: ElementKind;
}

function decodeRows(chunk: Buffer, { file, firstRow, dim, rowBytes, kind }: DecodeContext): Row[] {
  const rows: Row[] = [];
  for (let offset = 0; offset < chunk.length; offset += rowBytes) {
    const row = firstRow + offset / rowBytes;
    if (chunk.length - offset < rowBytes) {
      throw new InputError({ file, row }, `truncated: the row needs ${rowBytes} bytes, the file has ${chunk.length - offset} left`);
    }
    const declared = chunk.readInt32LE(offset);
    if (declared !== dim) {
      throw new InputError({ file, row }, `vector has ${declared} values, expected ${dim} (the first row's dimension)`);
    }
    const values = chunk.subarray(offset + 4, offset + rowBytes);
    rows.push({ row, vector: kind === 'float32' ? float32FromLE(values) : Float32Array.from(values) });
  }
  return rows;
}
