// JSON Lines: one object per line, `{"id": "...", "vector": [...]}`. `id` is
// a string or an integer; a row without one is refused unless `--ids-from-row`
// says to use the row number. Blank lines are skipped; rows are counted over
// the non-blank lines.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';

import { InputError } from '../input-error';
import { ROWS_PER_BATCH, type ReaderOptions, type Row, type VectorReader } from './vector-reader';

export async function openJsonl(file: string, options: ReaderOptions): Promise<VectorReader> {
  const idsFromRow = options.idsFromRow === true;
  const { size } = await stat(file);
  const stream = createReadStream(file);
  return {
    file,
    dim: undefined,
    rowCount: undefined,
    totalBytes: size,
    get bytesRead() {
      return stream.bytesRead;
    },
    async *batches() {
      let batch: Row[] = [];
      let row = 0;
      let line = 0;
      for await (const text of createInterface({ input: stream, crlfDelay: Infinity })) {
        line++;
        if (text.trim().length === 0) continue;
        batch.push(parseRow(text, { file, row, line }, idsFromRow));
        row++;
        if (batch.length === ROWS_PER_BATCH) {
          yield batch;
          batch = [];
        }
      }
      if (batch.length > 0) yield batch;
    },
    close: async () => {
      stream.destroy();
    },
  };
}

function parseRow(text: string, where: { file: string; row: number; line: number }, idsFromRow: boolean): Row {
  const fail = (problem: string): never => {
    throw new InputError(where, problem);
  };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    fail(`not valid JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('expected a JSON object {"id": ..., "vector": [...]}');
  const { id, vector } = value as { id?: unknown; vector?: unknown };
  if (!Array.isArray(vector)) fail('"vector" must be an array of numbers');
  const values = new Float32Array((vector as unknown[]).length);
  (vector as unknown[]).forEach((v, i) => {
    if (typeof v !== 'number') fail(`vector[${i}] is ${JSON.stringify(v)}, not a number`);
    values[i] = v as number;
  });
  const row: Row = { row: where.row, line: where.line, vector: values };
  if (id === undefined) return idsFromRow ? row : fail('no "id" (every row needs one; --ids-from-row uses row numbers instead)');
  if (typeof id === 'string') return { ...row, id };
  if (Number.isSafeInteger(id)) return { ...row, id: String(id) };
  return fail(`"id" must be a string or an integer, got ${JSON.stringify(id)}`);
}
