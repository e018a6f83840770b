// Writers of real input files in every format `canopy build` reads, for the
// build tests. `.npy` and `.ann` are written by the real numpy and Python
// annoy; the others follow their published layouts byte by byte.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

import type { Metric } from '../../src/format/metric';
import { row, writeFloat32File, type Matrix } from './matrix';

function python(code: string): void {
  const child = spawnSync('python3', ['-c', code], { encoding: 'utf8', timeout: 120_000 });
  if (child.status !== 0) throw new Error(`python3 failed: ${child.error?.message ?? child.stderr}`);
}

/** `np.save` of the matrix as `dtype` ('<f4', '<f8', ...), in C or Fortran order. */
export function writeNpy(file: string, m: Matrix, { dtype = '<f4', fortran = false } = {}): void {
  const raw = `${file}.raw`;
  writeFloat32File(raw, m);
  const order = fortran ? 'F' : 'C';
  python(
    `import numpy as np, os
a = np.fromfile(${JSON.stringify(raw)}, dtype='<f4').reshape(${m.rows}, ${m.dim}).astype(${JSON.stringify(dtype)})
with open(${JSON.stringify(file)}, 'wb') as f:  # a file object: np.save would append .npy to a name
    np.save(f, np.asarray(a, order=${JSON.stringify(order)}))
os.remove(${JSON.stringify(raw)})`,
  );
}

/** TEXMEX layout: per row an int32 dimension, then float32 (fvecs) or uint8 (bvecs) values. */
export function writeVecs(file: string, m: Matrix, kind: 'fvecs' | 'bvecs'): void {
  const elementBytes = kind === 'fvecs' ? 4 : 1;
  const out = Buffer.alloc(m.rows * (4 + m.dim * elementBytes));
  let at = 0;
  for (let i = 0; i < m.rows; i++) {
    at = out.writeInt32LE(m.dim, at);
    for (const v of row(m, i)) at = kind === 'fvecs' ? out.writeFloatLE(v, at) : out.writeUInt8(v, at);
  }
  writeFileSync(file, out);
}

/** word2vec binary: "N D\n", then per row the word, a space, D float32 and (optionally) "\n". */
export function writeWord2vecBinary(file: string, words: readonly string[], m: Matrix, { newlineAfterRow = true } = {}): void {
  const parts: Buffer[] = [Buffer.from(`${m.rows} ${m.dim}\n`)];
  for (let i = 0; i < m.rows; i++) {
    const v = row(m, i);
    parts.push(Buffer.from(`${words[i]} `), Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    if (newlineAfterRow) parts.push(Buffer.from('\n'));
  }
  writeFileSync(file, Buffer.concat(parts));
}

/** word2vec text: "N D\n", then "word v1 ... vD" per line (trailing space as the C tool writes it). */
export function writeWord2vecText(file: string, words: readonly string[], m: Matrix): void {
  const lines = [`${m.rows} ${m.dim}`];
  for (let i = 0; i < m.rows; i++) lines.push(`${words[i]} ${Array.from(row(m, i)).join(' ')} `);
  writeFileSync(file, lines.join('\n') + '\n');
}

export function writeJsonl(file: string, m: Matrix, ids?: readonly (string | number)[]): void {
  const lines: string[] = [];
  for (let i = 0; i < m.rows; i++) {
    const vector = Array.from(row(m, i));
    lines.push(JSON.stringify(ids === undefined ? { vector } : { id: ids[i], vector }));
  }
  writeFileSync(file, lines.join('\n') + '\n');
}

/** An Annoy `.ann` built by Python annoy, with items at `itemIds` (others are holes). */
export function writeAnn(file: string, m: Matrix, metric: Metric, itemIds: readonly number[], nTrees = 5): void {
  const raw = `${file}.raw`;
  writeFloat32File(raw, m);
  python(
    `import numpy as np, os
from annoy import AnnoyIndex
a = np.fromfile(${JSON.stringify(raw)}, dtype='<f4').reshape(${m.rows}, ${m.dim})
index = AnnoyIndex(${m.dim}, ${JSON.stringify(metric)})
index.set_seed(7)
for item, v in zip(${JSON.stringify(itemIds)}, a):
    index.add_item(item, v.tolist())
index.build(${nTrees}, n_jobs=1)
index.save(${JSON.stringify(file)})
os.remove(${JSON.stringify(raw)})`,
  );
}

/** `count` distinct words, UTF-8 included, as word2vec vocabularies have. */
export function words(count: number): string[] {
  return Array.from({ length: count }, (_, i) => (i % 3 === 0 ? `wörd_${i}` : i % 3 === 1 ? `New_York_${i}` : `日本${i}`));
}

/**
 * Parquet as a Python job writes it. `pyarrow`: string ids and a fixed-size
 * list<float> column, in row groups of `rowGroupRows`; `pandas`: a DataFrame of
 * integer ids (or `ids`) and a column of float64 numpy rows (list<double>).
 */
export function writeParquet(
  file: string,
  m: Matrix,
  ids: readonly (string | number)[],
  { writer = 'pyarrow', idColumn = 'id', vectorColumn = 'vector', rowGroupRows = 700 }: { writer?: 'pyarrow' | 'pandas'; idColumn?: string; vectorColumn?: string; rowGroupRows?: number } = {},
): void {
  const raw = `${file}.raw`;
  writeFloat32File(raw, m);
  const idsJson = `${file}.ids.json`;
  writeFileSync(idsJson, JSON.stringify(ids));
  const body =
    writer === 'pyarrow'
      ? `table = pa.table({${JSON.stringify(idColumn)}: pa.array(ids), ${JSON.stringify(vectorColumn)}: pa.FixedSizeListArray.from_arrays(pa.array(a.ravel()), ${m.dim})})
pq.write_table(table, ${JSON.stringify(file)}, row_group_size=${rowGroupRows})`
      : `pd.DataFrame({${JSON.stringify(idColumn)}: ids, ${JSON.stringify(vectorColumn)}: list(a.astype(np.float64))}).to_parquet(${JSON.stringify(file)})`;
  python(
    `import json, os
import numpy as np, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
a = np.fromfile(${JSON.stringify(raw)}, dtype='<f4').reshape(${m.rows}, ${m.dim})
ids = json.load(open(${JSON.stringify(idsJson)}))
${body}
os.remove(${JSON.stringify(raw)}); os.remove(${JSON.stringify(idsJson)})`,
  );
}

/** `np.save` of the ids as a string array (dtype '<U<n>'), what `np.array(ids)` gives. */
export function writeIdsNpy(file: string, ids: readonly string[]): void {
  const idsJson = `${file}.json`;
  writeFileSync(idsJson, JSON.stringify(ids));
  python(
    `import json, os, numpy as np
with open(${JSON.stringify(file)}, 'wb') as f:
    np.save(f, np.array(json.load(open(${JSON.stringify(idsJson)}))))
os.remove(${JSON.stringify(idsJson)})`,
  );
}
