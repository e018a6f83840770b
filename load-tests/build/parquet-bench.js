'use strict';
// Parquet against .npy in one run: `canopy build` of the same rows x dim
// float32 vectors with the same string ids (item-<n>), once from a Parquet file
// as pyarrow writes it (an id column and a fixed-size list<float> column, row
// groups of --row-group-rows) and once from a .npy with --ids (a numpy string
// array). Items/s and peak memory of both, and their ratios; the report goes to
// load-tests/reports/build-parquet.md.
//
//   node load-tests/build/parquet-bench.js [--rows 1000000] [--dim 128] [--trees 10]
//       [--threads 2] [--metric angular] [--row-group-rows 100000]
const { mkdtempSync, rmSync, statSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseFlags } = require('../flags');
const { machineLine, writeReport } = require('../report');
const { CANOPY, python, makeInput, measure, mb } = require('./measure');

const DEFAULTS = { rows: 1_000_000, dim: 128, trees: 10, threads: 2, metric: 'angular', rowGroupRows: 100_000 };
const REPORT = path.resolve(__dirname, '../reports/build-parquet.md');

/** ids.npy (dtype <U) and a Parquet copy of `npy`, written a row group at a time so the writer stays small. */
function makeParquetAndIds(npy, parquet, ids, { rows, dim, rowGroupRows }) {
  python(`
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
a = np.load(${JSON.stringify(npy)}, mmap_mode='r')
np.save(${JSON.stringify(ids)}, np.array([f'item-{i}' for i in range(${rows})]))
schema = pa.schema([('id', pa.string()), ('vector', pa.list_(pa.float32(), ${dim}))])
with pq.ParquetWriter(${JSON.stringify(parquet)}, schema) as writer:
    for start in range(0, ${rows}, ${rowGroupRows}):
        stop = min(${rows}, start + ${rowGroupRows})
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(a[start:stop]).ravel()), ${dim})
        writer.write_table(pa.table({'id': [f'item-{i}' for i in range(start, stop)], 'vector': vectors}, schema=schema), row_group_size=${rowGroupRows})
`);
}

async function main() {
  const opts = parseFlags(process.argv.slice(2), DEFAULTS);
  const work = mkdtempSync(path.join(os.tmpdir(), 'canopy-parquet-bench-'));
  try {
    const npy = path.join(work, 'vectors.npy');
    const parquet = path.join(work, 'vectors.parquet');
    const ids = path.join(work, 'ids.npy');
    makeInput(npy, opts);
    makeParquetAndIds(npy, parquet, ids, opts);
    const build = (input, format, extra, version) => [
      process.execPath, CANOPY, 'build', '--input', input, '--format', format, ...extra, '--metric', opts.metric,
      '--trees', String(opts.trees), '--threads', String(opts.threads), '--out', path.join(work, 'out'), '--version', version,
    ];
    const runs = [
      { name: '.npy + --ids (numpy string array)', file: npy, argv: build(npy, 'npy', ['--ids', ids], 'npy') },
      { name: `Parquet (pyarrow, row groups of ${opts.rowGroupRows.toLocaleString('en-US')})`, file: parquet, argv: build(parquet, 'parquet', [], 'parquet') },
    ];
    for (const run of runs) run.result = await measure(run.argv);
    writeReport(REPORT, render(opts, runs));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function render(opts, runs) {
  const [npy, parquet] = runs.map((r) => r.result);
  const itemsPerSecond = (m) => Math.round(opts.rows / m.seconds);
  const rowsOf = runs.map(({ name, file, result: m }) =>
    `| ${name} | ${mb(statSync(file).size)} | ${m.seconds.toFixed(1)} | ${itemsPerSecond(m).toLocaleString('en-US')} | ${mb(m.maxRss)} | ${mb(m.peakAnon)} | ${mb(m.peakFile)} |`,
  );
  return [
    `# Build from Parquet against .npy: ${opts.rows.toLocaleString('en-US')} x ${opts.dim} float32, string ids`,
    '',
    `${machineLine(__filename)} · 1-minute load average after: ${os.loadavg()[0].toFixed(2)}`,
    `· ${opts.metric}, ${opts.trees} trees, ${opts.threads} threads, 1 shard; each build a child process under /usr/bin/time -v`,
    '',
    '| input | file | seconds | items/s | peak RSS | sampled peak anonymous | sampled peak file-backed |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rowsOf,
    '',
    `Parquet / .npy: items/s **${(itemsPerSecond(parquet) / itemsPerSecond(npy)).toFixed(2)}x**, ` +
      `peak RSS **${(parquet.maxRss / npy.maxRss).toFixed(2)}x**, peak anonymous memory ${(parquet.peakAnon / npy.peakAnon).toFixed(2)}x.`,
    '',
    'Both builds hold every id in memory and write the forest through a mapping (the file-backed pages).',
    'The .npy path reads raw float32 in batches; the Parquet path decodes one row group at a time with',
    'hyparquet (values arrive as JavaScript arrays and are copied into float32), so its extra memory is',
    'about one decoded row group, and its extra time the decoding.',
    '',
  ].join('\n');
}

main().catch((err) => {
  console.error(err.message);
  process.exitCode = 1;
});
