'use strict';
// What the build benchmarks share: numpy-written inputs, and running a build as
// a child process under /usr/bin/time -v, which gives the exact peak RSS
// (VmHWM), while /proc/<pid>/status is sampled to split resident memory into
// anonymous (heap: what the process holds) and file-backed (pages of the
// mmap'd forest file, which the kernel can write back and drop under pressure).
const { spawn, spawnSync } = require('node:child_process');
const { readFileSync } = require('node:fs');
const path = require('node:path');

const CANOPY = path.resolve(__dirname, '../../bin/canopy.js');
const SAMPLE_MS = 100;

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

module.exports = { CANOPY, python, makeInput, measure, mb };
