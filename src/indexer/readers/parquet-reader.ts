// Apache Parquet, as pyarrow and pandas write it: an id column (string or
// integer) and a vector column, a list or fixed-size list of float or double.
// Read with hyparquet (pure JavaScript; Apache Arrow's JavaScript package reads
// only Arrow IPC, not Parquet), one row group at a time and only those two
// columns, so memory is bounded by the largest row group, not the file.
// A null id, a null vector or a null value in a vector is an error.
import { stat } from 'node:fs/promises';

import { InputError } from '../input-error';
import { ROWS_PER_BATCH, type ReaderOptions, type Row, type VectorReader } from './vector-reader';

export const DEFAULT_ID_COLUMN = 'id';
export const DEFAULT_VECTOR_COLUMN = 'vector';

type Hyparquet = typeof import('hyparquet', { with: { 'resolution-mode': 'import' } });
type FileMetaData = Awaited<ReturnType<Hyparquet['parquetMetadataAsync']>>;

export async function openParquet(file: string, options: ReaderOptions): Promise<VectorReader> {
  // hyparquet is an ES module; Node 20 loads it from CommonJS through import().
  const hyparquet: Hyparquet = await import('hyparquet');
  const { size } = await stat(file);
  const source = await hyparquet.asyncBufferFromFile(file);
  let metadata: FileMetaData;
  try {
    metadata = await hyparquet.parquetMetadataAsync(source);
  } catch (err) {
    throw new InputError({ file }, `not a readable Parquet file: ${(err as Error).message}`, { cause: err });
  }
  const idColumn = options.idColumn ?? DEFAULT_ID_COLUMN;
  const vectorColumn = options.vectorColumn ?? DEFAULT_VECTOR_COLUMN;
  const columns = checkColumns(file, metadata, hyparquet, { idColumn, vectorColumn, idsFromRow: options.idsFromRow === true });
  const groups = metadata.row_groups.map((group) => ({ rows: Number(group.num_rows), bytes: Number(group.total_byte_size) }));
  let bytesRead = 0;
  return {
    file,
    dim: undefined,
    rowCount: Number(metadata.num_rows),
    totalBytes: size,
    get bytesRead() {
      return bytesRead;
    },
    async *batches() {
      let groupStart = 0;
      for (const group of groups) {
        const values = await hyparquet.parquetReadObjects({
          file: source,
          metadata,
          columns,
          rowStart: groupStart,
          rowEnd: groupStart + group.rows,
        });
        for (let first = 0; first < values.length; first += ROWS_PER_BATCH) {
          const slice = values.slice(first, first + ROWS_PER_BATCH);
          yield slice.map((value, i) => toRow(file, groupStart + first + i, value, idColumn, vectorColumn));
        }
        groupStart += group.rows;
        bytesRead = Math.min(size, bytesRead + group.bytes);
      }
    },
    close: async () => {},
  };
}

/** The columns to read; refuses a file without them, naming the columns it has. */
function checkColumns(
  file: string,
  metadata: FileMetaData,
  hyparquet: Hyparquet,
  { idColumn, vectorColumn, idsFromRow }: { idColumn: string; vectorColumn: string; idsFromRow: boolean },
): string[] {
  const top = hyparquet.parquetSchema(metadata).children;
  const names = top.map((c) => c.element.name);
  const available = `the file's columns: ${names.join(', ')}`;
  const vector = top.find((c) => c.element.name === vectorColumn);
  if (vector === undefined) throw new InputError({ file }, `no vector column ${JSON.stringify(vectorColumn)} (--vector-column); ${available}`);
  if (vector.children.length === 0) {
    throw new InputError({ file }, `column ${JSON.stringify(vectorColumn)} is not a list of numbers (a list or fixed-size list of float or double)`);
  }
  if (names.includes(idColumn)) return [idColumn, vectorColumn];
  if (idsFromRow) return [vectorColumn];
  throw new InputError({ file }, `no id column ${JSON.stringify(idColumn)} (--id-column, or --ids-from-row to use row numbers); ${available}`);
}

function toRow(file: string, row: number, value: Record<string, unknown>, idColumn: string, vectorColumn: string): Row {
  const fail = (problem: string): never => {
    throw new InputError({ file, row }, problem);
  };
  const list = value[vectorColumn];
  if (!Array.isArray(list) && !ArrayBuffer.isView(list)) fail(`${vectorColumn} is ${list === null || list === undefined ? 'null' : typeof list}, not a list of numbers`);
  const numbers = list as ArrayLike<unknown>;
  const vector = new Float32Array(numbers.length);
  for (let i = 0; i < numbers.length; i++) {
    const v = numbers[i];
    if (typeof v !== 'number') fail(`${vectorColumn}[${i}] is ${v === null || v === undefined ? 'null' : JSON.stringify(String(v))}, not a number`);
    vector[i] = v as number;
  }
  if (!(idColumn in value)) return { row, vector };
  const id = value[idColumn];
  if (typeof id === 'string') return { row, id, vector };
  if (typeof id === 'bigint' || Number.isSafeInteger(id)) return { row, id: String(id), vector };
  return fail(`${idColumn} is ${id === null || id === undefined ? 'null' : JSON.stringify(id)}; ids must be strings or integers`);
}
