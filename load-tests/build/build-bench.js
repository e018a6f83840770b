'use strict';
// Build benchmark: `canopy build` of a rows x dim float32 .npy, against Python
// annoy building the same data the same way (on-disk build, same trees, same
// threads) in the same run.
//
//   node load-tests/build/build-bench.js [--rows 1000000] [--dim 128] [--trees 10]
//       [--shards 1] [--threads 2] [--metric angular] [--peer annoy|none]
//
// Each side runs as its own child process, measured by ./measure.js. The input
// .npy is generated into a temporary folder under /tmp with numpy and removed
// with it at the end.
const { mkdtempSync, readFileSync, rmSync, statSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseFlags } = require('../flags');
const { CANOPY, makeInput, measure, mb } = require('./measure');

const DEFAULTS = { rows: 1_000_000, dim: 128, trees: 10, shards: 1, threads: 2, metric: 'angular', peer: 'annoy' };

const PEER_SCRIPT = `
import sys, numpy as np
from annoy import AnnoyIndex
data, out, metric, trees, threads, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
a = np.load(data, mmap_mode='r')
index = AnnoyIndex(a.shape[1], metric)
index.set_seed(seed)
index.on_disk_build(out)
for i in range(a.shape[0]):
    index.add_item(i, a[i])
index.build(trees, n_jobs=threads)
index.unload()
`;

async function main() {
  const opts = parseFlags(process.argv.slice(2), DEFAULTS);
  const work = mkdtempSync(path.join(os.tmpdir(), 'canopy-build-bench-'));
  try {
    const input = path.join(work, `vectors-${opts.rows}x${opts.dim}.npy`);
    makeInput(input, opts);
    const inputBytes = opts.rows * opts.dim * 4;
    const args = [
      process.execPath, CANOPY, 'build', '--input', input, '--format', 'npy', '--metric', opts.metric,
      '--trees', String(opts.trees), '--shards', String(opts.shards), '--threads', String(opts.threads),
      '--out', path.join(work, 'out'), '--version', 'bench',
    ];
    console.log(`input: ${opts.rows} x ${opts.dim} float32 (${mb(inputBytes)}), ${opts.metric}, ${opts.trees} trees, ${opts.threads} threads, ${os.cpus().length} cores`);
    console.log(`$ ${args.slice(1).join(' ')}`);
    const canopy = await measure(args);
    report(`canopy build (${opts.shards} shard${opts.shards > 1 ? 's' : ''})`, canopy, opts.rows, inputBytes);
    const manifest = JSON.parse(readFileSync(path.join(work, 'out', 'bench', 'manifest.json'), 'utf8'));
    const forestBytes = manifest.shards.reduce((sum, s) => sum + s.fileBytes, 0);
    console.log(`  forest files: ${mb(forestBytes)}`);
    if (opts.peer === 'annoy') {
      const peerOut = path.join(work, 'annoy.ann');
      const peer = await measure(['python3', '-c', PEER_SCRIPT, input, peerOut, opts.metric, String(opts.trees), String(opts.threads), '42']);
      report('python annoy (on_disk_build, 1 index)', peer, opts.rows, inputBytes);
      console.log(`  forest file: ${mb(statSync(peerOut).size)}`);
      console.log(`ratio canopy/annoy: build speed ${(peer.seconds / canopy.seconds).toFixed(2)}x, peak RSS ${(canopy.maxRss / peer.maxRss).toFixed(2)}x`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function report(name, m, rows, inputBytes) {
  console.log(
    `${name}: ${m.seconds.toFixed(1)} s, ${Math.round(rows / m.seconds)} items/s; peak RSS ${mb(m.maxRss)} ` +
      `(${(m.maxRss / inputBytes).toFixed(2)}x the input), of which sampled peaks: anonymous ${mb(m.peakAnon)}, file-backed ${mb(m.peakFile)}`,
  );
}

main().catch((err) => {
  console.error(err.message);
  process.exitCode = 1;
});
