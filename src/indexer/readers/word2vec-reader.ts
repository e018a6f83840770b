// word2vec files (the C tool's output, GoogleNews vectors, fastText `.vec`):
// a header line "N D", then N rows, each a word (the row's id) and D values.
//   binary: word, one space, D little-endian float32, an optional "\n";
//   text:   word and D decimal values separated by spaces, one row per line.
// Both share the format name; the first row tells which one a file is.
import { InputError } from '../input-error';
import { ByteReader, float32FromLE } from './byte-reader';
import { ROWS_PER_BATCH, type Row, type VectorReader } from './vector-reader';

const NEWLINE = 0x0a;
const SPACE = 0x20;
/** Longest header, word or text line we look at before calling the file malformed. */
const MAX_WORD_BYTES = 1 << 16;
/** A text row is at most this many bytes per value (a float printed in full is ~15). */
const MAX_TEXT_BYTES_PER_VALUE = 64;

export async function openWord2vec(file: string): Promise<VectorReader> {
  const bytes = await ByteReader.open(file);
  try {
    const { rows, dim } = await readHeader(bytes, file);
    const text = await looksLikeText(bytes, dim);
    const maxLineBytes = MAX_WORD_BYTES + dim * MAX_TEXT_BYTES_PER_VALUE;
    return {
      file,
      dim,
      rowCount: rows,
      totalBytes: bytes.size,
      get bytesRead() {
        return bytes.position;
      },
      async *batches() {
        const readRow = text ? () => readTextRow(bytes, maxLineBytes) : () => readBinaryRow(bytes, dim);
        for (let first = 0; first < rows; first += ROWS_PER_BATCH) {
          const batch: Row[] = [];
          for (let row = first; row < Math.min(rows, first + ROWS_PER_BATCH); row++) {
            // Text rows are one per line after the header, so the line number is exact.
            const where = text ? { file, row, line: row + 2 } : { file, row };
            const found = await readRow().catch((err: unknown) => {
              throw new InputError(where, (err as Error).message);
            });
            if (found === null) throw new InputError(where, `file ends after ${row} rows; the header says ${rows}`);
            batch.push({ ...where, id: found.word, vector: found.vector });
          }
          yield batch;
        }
        if ((await bytes.peek(MAX_WORD_BYTES)).some((b) => !isWhitespace(b))) {
          throw new InputError({ file, row: rows }, `data after the ${rows} rows the header declares`);
        }
      },
      close: () => bytes.close(),
    };
  } catch (err) {
    await bytes.close();
    throw err;
  }
}

async function readHeader(bytes: ByteReader, file: string): Promise<{ rows: number; dim: number }> {
  const line = await bytes.readUntil(NEWLINE, MAX_WORD_BYTES).catch(() => null);
  const match = line === null ? null : /^\s*(\d+)\s+(\d+)\s*$/.exec(line.toString('latin1'));
  if (match === null) throw new InputError({ file, line: 1 }, 'not a word2vec file: the first line must be "<rows> <dim>"');
  const rows = Number(match[1]);
  const dim = Number(match[2]);
  if (!Number.isSafeInteger(rows) || !(dim > 0) || !Number.isSafeInteger(dim)) {
    throw new InputError({ file, line: 1 }, `header "${match[0].trim()}" needs a row count and a positive dim`);
  }
  return { rows, dim };
}

/**
 * A text file's first row is one line of a word and `dim` numbers; a binary
 * row's float bytes essentially never spell that.
 */
async function looksLikeText(bytes: ByteReader, dim: number): Promise<boolean> {
  const ahead = await bytes.peek(MAX_WORD_BYTES + dim * MAX_TEXT_BYTES_PER_VALUE);
  const end = ahead.indexOf(NEWLINE);
  const tokens = splitTokens(ahead.subarray(0, end === -1 ? ahead.length : end).toString('latin1'));
  return tokens.length === dim + 1 && tokens.slice(1).every((t) => parseDecimal(t) !== undefined);
}

interface WordRow {
  readonly word: string;
  readonly vector: Float32Array;
}

async function readBinaryRow(bytes: ByteReader, dim: number): Promise<WordRow | null> {
  // The "\n" after a row is optional, so it is skipped before the next word.
  while ((await bytes.peek(1))[0] === NEWLINE) await bytes.read(1);
  const word = await bytes.readUntil(SPACE, MAX_WORD_BYTES);
  if (word === null) return null;
  const wordText = word.toString('utf8');
  const values = await bytes.read(dim * 4);
  if (values.length < dim * 4) throw new Error(`truncated: the row's ${dim} float32 values need ${dim * 4} bytes, ${values.length} are left`);
  return { word: wordText, vector: float32FromLE(values) };
}

async function readTextRow(bytes: ByteReader, maxLineBytes: number): Promise<WordRow | null> {
  const line = await bytes.readUntil(NEWLINE, maxLineBytes);
  if (line === null) return null;
  const [word, ...tokens] = splitTokens(line.toString('utf8'));
  if (word === undefined) throw new Error('empty line');
  const vector = new Float32Array(tokens.length);
  tokens.forEach((token, i) => {
    const value = parseDecimal(token);
    if (value === undefined) throw new Error(`value ${JSON.stringify(token)} at column ${i} is not a number`);
    vector[i] = value;
  });
  return { word, vector };
}

function splitTokens(line: string): string[] {
  return line.split(/[ \t\r]+/).filter((t) => t.length > 0);
}

/** A decimal number, or inf/nan spelled as C's printf does (the builder rejects those as non-finite). */
function parseDecimal(token: string): number | undefined {
  if (/^[+-]?(inf|infinity)$/i.test(token)) return token.startsWith('-') ? -Infinity : Infinity;
  if (/^[+-]?nan$/i.test(token)) return NaN;
  const value = Number(token);
  return Number.isNaN(value) ? undefined : value;
}

function isWhitespace(byte: number): boolean {
  return byte === SPACE || byte === NEWLINE || byte === 0x0d || byte === 0x09;
}
