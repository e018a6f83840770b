// A small index version built by the real builder and engine from seeded
// vectors, with the vectors kept for brute-force answers. Ids are `item-<row>`.
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import type { Metric } from '../../../src/format/metric';
import { buildVersion } from '../../../src/indexer/builder';
import { Index } from '../../../src/engine/engine-index';
import { type Matrix, row } from '../matrix';

export interface Fixture {
  /** The version folder (holds manifest.json). */
  readonly dir: string;
  readonly index: string;
  readonly version: string;
  readonly base: Matrix;
  readonly metric: Metric;
}

export const idOfRow = (r: number): string => `item-${r}`;

export async function buildFixture(
  workDir: string,
  base: Matrix,
  opts: { metric: Metric; shards: number; trees: number; index: string; version: string; codes?: boolean; graph?: boolean },
): Promise<Fixture> {
  const input = path.join(workDir, `${opts.index}.jsonl`);
  const lines: string[] = [];
  for (let r = 0; r < base.rows; r++) lines.push(JSON.stringify({ id: idOfRow(r), vector: Array.from(row(base, r)) }));
  writeFileSync(input, `${lines.join('\n')}\n`);
  const built = await buildVersion({
    input,
    format: 'jsonl',
    metric: opts.metric,
    outDir: path.join(workDir, 'versions'),
    createForest: (o) => new Index(o),
    nTrees: opts.trees,
    shardCount: opts.shards,
    index: opts.index,
    version: opts.version,
    seed: 1,
    threads: 1,
    // Off unless asked: most tests check answers against brute force, which the exact path gives.
    codes: opts.codes ?? false,
    graph: opts.graph ?? false,
  });
  return { dir: built.dir, index: opts.index, version: opts.version, base, metric: opts.metric };
}
