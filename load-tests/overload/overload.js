'use strict';
// Overload on one shard node: measures its unloaded p99 (one call at a time)
// and its saturation rate (closed loop, many calls in flight), then offers
// twice the saturation rate (open loop) and reports how the node sheds: the
// answered calls' p99 against the unloaded p99 (target: at most 3x), the share
// refused with RESOURCE_EXHAUSTED, and the process's peak resident memory
// (VmHWM) against its idle size. Queries use an explicit search_k so the
// engine, whose queue is bounded (--max-queued-searches), is the bottleneck.
//
//   node load-tests/overload/overload.js [--items 20000] [--dim 64] [--trees 10] [--search-k 4000] [--seconds 5]
//       [--overload-factor 2] [--concurrency 200] [--connections 4] [--shard-flags "--max-queued-searches 32"] [--ghz PATH]
//
// Needs dist/ (`npm run prepare`); ghz is installed when missing (load-tests/install-ghz.sh).
const { spawn } = require('node:child_process');
const { mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { parseFlags } = require('../flags');
const { findGhz, runGhz, waitAnswering } = require('../ghz');

const ROOT = path.resolve(__dirname, '..', '..');
const CANOPY = path.join(ROOT, 'bin', 'canopy.js');
const K = 10;
const QUERY_COUNT = 200;
const UNLOADED_CALLS = 1000;
const WARMUP_CALLS = 2000;
const SATURATION_CONCURRENCY = 16;
const TARGET_P99_RATIO = 3;

const DEFAULTS = {
  items: 20000,
  dim: 64,
  trees: 10,
  searchK: 4000,
  seconds: 5,
  overloadFactor: 2,
  concurrency: 200,
  connections: 4,
  shardFlags: '',
  ghz: '',
};

/** Seeded floats in [-1, 1) (64-bit LCG): the same index and queries on every run. */
function seededFloats(count, seed) {
  let state = BigInt(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    state = (state * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    out[i] = Number(state >> 40n) / 2 ** 23 - 1;
  }
  return out;
}

async function buildIndex(workDir, opts) {
  const data = seededFloats(opts.items * opts.dim, 1);
  const input = path.join(workDir, 'items.jsonl');
  const lines = Array.from({ length: opts.items }, (_, r) => JSON.stringify({ id: `item-${r}`, vector: Array.from(data.subarray(r * opts.dim, (r + 1) * opts.dim)) }));
  writeFileSync(input, `${lines.join('\n')}\n`);
  const { buildVersion } = require(path.join(ROOT, 'dist', 'build', 'builder.js'));
  const { Index } = require(path.join(ROOT, 'dist', 'engine', 'engine-index.js'));
  const built = await buildVersion({
    input, format: 'jsonl', metric: 'euclidean', outDir: path.join(workDir, 'versions'),
    createForest: (o) => new Index(o), nTrees: opts.trees, shardCount: 1, index: 'overload', version: 'v1', seed: 1,
  });
  return built.dir;
}

/** Starts the shard on a port the kernel picks; resolves with the process and HOST:PORT from its log. */
function startShard(dir, extraArgs) {
  const args = [CANOPY, 'serve', 'shard', '--manifest', dir, '--shard', '0', '--listen', '127.0.0.1:0', '--log-level', 'info', ...extraArgs];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  return new Promise((resolve, reject) => {
    let log = '';
    child.on('exit', (code) => reject(new Error(`shard exited (${code}):\n${log}`)));
    child.stderr.on('data', (chunk) => {
      log += chunk;
      const port = /"port":(\d+),"msg":"shard node listening"/.exec(log);
      if (port) resolve({ child, target: `127.0.0.1:${port[1]}` });
    });
  });
}

/** A /proc/<pid>/status field in bytes (VmRSS: now, VmHWM: peak). */
function memoryBytes(pid, field) {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match[1]) * 1024;
}

const mib = (bytes) => (bytes / 2 ** 20).toFixed(1);
const ms = (x) => (x === undefined ? '-' : x.toFixed(2));

async function main() {
  const opts = parseFlags(process.argv.slice(2), DEFAULTS);
  const bin = findGhz(opts.ghz);
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'canopy-overload-'));
  let shard;
  try {
    const dir = await buildIndex(workDir, opts);
    const queries = seededFloats(QUERY_COUNT * opts.dim, 2);
    const dataFile = path.join(workDir, 'queries.json');
    writeFileSync(dataFile, JSON.stringify(Array.from({ length: QUERY_COUNT }, (_, q) => ({
      index: 'overload',
      vectorF32: Buffer.from(queries.buffer, q * opts.dim * 4, opts.dim * 4).toString('base64'),
      k: K,
      searchK: opts.searchK,
    }))));
    shard = await startShard(dir, opts.shardFlags.split(' ').filter((a) => a.length > 0));
    const { target } = shard;
    const pid = shard.child.pid;
    await waitAnswering(bin, { target, call: 'Search', dataFile });
    const run = (args) => runGhz(bin, { target, call: 'Search', dataFile, args });
    await run(['-n', String(WARMUP_CALLS), '-c', String(SATURATION_CONCURRENCY)]);
    const idleRss = memoryBytes(pid, 'VmRSS');

    const unloaded = await run(['-n', String(UNLOADED_CALLS), '-c', '1']);
    const saturated = await run(['-z', `${opts.seconds}s`, '-c', String(SATURATION_CONCURRENCY), '--connections', String(opts.connections)]);
    const offeredRps = Math.round(saturated.rps * opts.overloadFactor);
    // A call count, not a duration: a duration's end cancels the calls still in flight.
    const overloaded = await run([
      '-n', String(offeredRps * opts.seconds), '--rps', String(offeredRps), '-c', String(opts.concurrency), '--connections', String(opts.connections),
    ]);
    const peakRss = memoryBytes(pid, 'VmHWM');

    const exhausted = overloaded.statusCodes.ResourceExhausted || 0;
    const otherFailures = overloaded.nonOk - exhausted;
    const ratio = overloaded.okP99Ms / unloaded.okP99Ms;
    const lines = [
      `shard node: ${opts.items} items, dim ${opts.dim}, ${opts.trees} trees, search_k ${opts.searchK}, flags: ${opts.shardFlags || '(defaults)'}`,
      `unloaded (1 in flight):        p99 ${ms(unloaded.okP99Ms)} ms, ${Math.round(unloaded.rps)}/s`,
      `saturation (${SATURATION_CONCURRENCY} in flight):      ${Math.round(saturated.rps)}/s, p99 ${ms(saturated.okP99Ms)} ms`,
      `offered ${opts.overloadFactor}x saturation:       ${offeredRps}/s, ${overloaded.count} calls, up to ${opts.concurrency} in flight (achieved ${Math.round(overloaded.rps)}/s)`,
      `  answered:                    ${overloaded.ok}, p99 ${ms(overloaded.okP99Ms)} ms`,
      `  refused RESOURCE_EXHAUSTED:  ${exhausted} (${((100 * exhausted) / Math.max(1, overloaded.count)).toFixed(1)}%)`,
      `  other failures:              ${otherFailures} ${otherFailures > 0 ? JSON.stringify(overloaded.statusCodes) : ''}`,
      `answered p99 / unloaded p99:   ${ratio.toFixed(2)} (target <= ${TARGET_P99_RATIO}: ${ratio <= TARGET_P99_RATIO ? 'met' : 'MISSED'})`,
      `memory: idle RSS ${mib(idleRss)} MiB, peak (VmHWM) ${mib(peakRss)} MiB, ratio ${(peakRss / idleRss).toFixed(2)}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (otherFailures > 0) process.exitCode = 1;
  } finally {
    if (shard && shard.child.exitCode === null) shard.child.kill('SIGKILL');
    rmSync(workDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
