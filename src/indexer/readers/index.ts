// The input formats `canopy build` reads. Adding a format is one reader file
// and one line here.
import { InputError } from '../input-error';
import { openAnn } from './ann-reader';
import { openJsonl } from './jsonl-reader';
import { openNpy } from './npy-reader';
import { openParquet } from './parquet-reader';
import { openBvecs, openFvecs } from './vecs-reader';
import type { OpenReader, ReaderOptions, VectorReader } from './vector-reader';
import { openWord2vec } from './word2vec-reader';

export type { ReaderOptions, Row, VectorReader } from './vector-reader';

const READERS = {
  npy: openNpy,
  fvecs: openFvecs,
  bvecs: openBvecs,
  word2vec: openWord2vec,
  jsonl: openJsonl,
  parquet: openParquet,
  ann: openAnn,
} as const satisfies Record<string, OpenReader>;

export type InputFormat = keyof typeof READERS;
export const INPUT_FORMATS = Object.keys(READERS) as InputFormat[];
/** Formats whose rows carry their own ids; the others take `--ids FILE`, or use row numbers. */
export const FORMATS_WITH_IDS: readonly InputFormat[] = ['jsonl', 'parquet', 'word2vec'];

/** Opens `file` for streaming; a missing or unreadable file is an InputError naming it. */
export async function openReader(format: InputFormat, file: string, options: ReaderOptions): Promise<VectorReader> {
  try {
    return await READERS[format](file, options);
  } catch (err) {
    if (err instanceof InputError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError({ file }, `cannot read: ${code ?? (err as Error).message}`, { cause: err });
  }
}
