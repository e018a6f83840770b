// The one interface every input format implements. A reader streams rows in
// batches and never holds the whole file: the builder hands each row to the
// engine and keeps only its id. Checks that apply to every format (vector
// length, finite values, id rules, duplicates) live in the builder, so a reader
// only reports what is wrong with its own file structure.

/** One input row. `vector` may be a view into a batch buffer: copy it to keep it past the batch. */
export interface Row {
  /** 0-based row number in the input; the id when `id` is absent. */
  readonly row: number;
  /** 1-based line in the file, for line-oriented text formats. */
  readonly line?: number;
  /** Explicit id from the file; absent when the format has none. */
  readonly id?: string;
  readonly vector: Float32Array;
}

export interface VectorReader {
  readonly file: string;
  /** Vector length declared by the file's header, if it has one. */
  readonly dim: number | undefined;
  /** Number of rows declared or implied by the header, if known before reading. */
  readonly rowCount: number | undefined;
  readonly totalBytes: number;
  /** Bytes consumed so far, for progress when `rowCount` is unknown. */
  readonly bytesRead: number;
  /** Yields rows in file order, in batches; throws InputError on malformed structure. */
  batches(): AsyncIterable<readonly Row[]>;
  close(): Promise<void>;
}

export interface ReaderOptions {
  /** `--dim`: required by formats without a header (Annoy `.ann`). */
  readonly dim: number | undefined;
  /** `--metric`: Annoy's node layout depends on it. */
  readonly metric: import('../../format/metric').Metric;
  /** `--ids-from-row`: a row without an id gets its row number; otherwise formats with ids refuse such a row. */
  readonly idsFromRow?: boolean;
  /** Parquet: `--id-column` (default "id") and `--vector-column` (default "vector"). */
  readonly idColumn?: string;
  readonly vectorColumn?: string;
}

export type OpenReader = (file: string, options: ReaderOptions) => Promise<VectorReader>;

/** Rows handed out per batch: large enough to amortise await, small enough to stay cache-sized. */
export const ROWS_PER_BATCH = 1024;
