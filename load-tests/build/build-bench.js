'use strict';
// Build benchmark: `canopy build` of a rows x dim float32 .npy, against Python
// annoy building the same data the same way (on-disk build, same trees, same
// threads) in the same run.
//
//   node load-tests/build/build-bench.js [--rows 1000000] [--dim 128] [--trees 10]
//       [--shards 1] [--threads 2] [--metric angular] [--peer annoy|none]
//
// Each side runs as its own child process under /usr/bin/time -v, which gives
// the exact peak RSS (VmHWM). While it runs, /proc/<pid>/status is sampled to
// split resident memory into anonymous (heap: what the process holds) and
// file-backed (pages of the mmap'd forest file, which the kernel can write back
// and drop under pressure). The input .npy is generated into a temporary
// folder under /tmp with numpy and removed with it at the end.
const { spawn, spawnSync } = require('node:child_process');
const { mkdtempSync, readFileSync, rmSync, statSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseFlags } = require('../flags');

const CANOPY = path.resolve(__dirname, '../../bin/canopy.js');
const SAMPLE_MS = 100;
const DEFAULTS = { rows: 1_000_000, dim: 128, trees: 10, shards: 1, threads: 2, metric: 'angular', peer: 'annoy' };

function python(code) {
  const child = spawnSync('python3', ['-c', code], { encoding: 'utf8', stdio: ['ignore', 'inherit', 'pipe'] });
  if (child.status !== 0) throw new Error(`python3 failed: ${child.stderr}`);
}

/** Gaussian float32 rows, written by numpy 1M rows at a time so the generator stays small too. */
function makeInput(file, { rows, dim }) {
  python(`
import numpy as np
rng = np.random.default_rng(1)
out = np.lib.format.open_memmap(${JSON.stringify(file)}, mode='w+', dtype='<f4', shape=(${rows}, ${dim}))
for start in range(0, ${rows}, 1_000_000):
    stop = min(${rows}, start + 1_000_000)
    out[start:stop] = rng.standard_normal((stop - start, ${dim}), dtype=np.float32)
out.flush()
`);
}

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

function readStatus(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
    return { anon: kb('RssAnon'), file: kb('RssFile') };
  } catch {
    return undefined;
  }
}

/** The process /usr/bin/time started (its only child). */
function childOf(pid) {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0]) || undefined;
  } catch {
    return undefined;
  }
}

/** Runs argv under /usr/bin/time -v; resolves wall seconds, peak RSS and sampled peaks of anon and file RSS. */
function measure(argv) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('/usr/bin/time', ['-v', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    child.stdout.resume();
    const peaks = { anon: 0, file: 0 };
    const timer = setInterval(() => {
      const pid = childOf(child.pid);
      const status = pid === undefined ? undefined : readStatus(pid);
      if (status) {
        peaks.anon = Math.max(peaks.anon, status.anon);
        peaks.file = Math.max(peaks.file, status.file);
      }
    }, SAMPLE_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(timer);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code !== 0) return reject(new Error(`${argv.join(' ')} exited ${code}:\n${stderr.slice(-2000)}`));
      const maxRss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(stderr)?.[1]) * 1024;
      resolve({ seconds, maxRss, peakAnon: peaks.anon, peakFile: peaks.file });
    });
  });
}

const mb = (bytes) => `${Math.round(bytes / 2 ** 20)} MB`;

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
