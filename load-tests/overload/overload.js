'use strict';
// Overload on one shard node, two configurations compared in the same run:
// `--shard-flags` (the baseline: by default the event-loop-lag gate off) and
// `--gated-flags` (admission control on), started in turn, interleaved over
// `--rounds` (order alternating). For each: the unloaded p99 (one call at a
// time), then twice the saturation rate offered open loop (the first baseline
// run's rate, measured closed loop, offered to every run). Reports the answered calls' p99 against
// the unloaded p99 (target: at most 3x), the share refused with
// RESOURCE_EXHAUSTED, the accepted calls' throughput, and the peak resident
// memory (VmHWM) against the idle size. ghz shares the machine's cores with
// the shard: the achieved rate says whether it could offer the load.
//
//   node load-tests/overload/overload.js [--items 20000] [--dim 64] [--trees 10] [--search-k 4000] [--seconds 5]
//       [--overload-factor 2] [--concurrency 200] [--connections 4] [--rounds 2]
//       [--shard-flags "--max-event-loop-lag-ms 0"] [--gated-flags "--max-event-loop-lag-ms 2 --max-inflight-queries 4"] [--ghz PATH]
//
// Needs dist/ (`npm run prepare`); ghz is installed when missing (load-tests/install-ghz.sh).
const { spawn } = require('node:child_process');
const { mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { buildSeededVersion, seededFloats } = require('../fixtures');
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
  rounds: 2,
  shardFlags: '--max-event-loop-lag-ms 0',
  gatedFlags: '--max-event-loop-lag-ms 2 --max-inflight-queries 4',
  ghz: '',
};

/** Seeded floats in [-1, 1) (64-bit LCG): the same index and queries on every run. */
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

/** One shard run of `flags`: idle RSS, unloaded p99, then `offeredRps` open loop (saturation first when `offeredRps` is 0). */
async function measure(bin, dir, dataFile, flags, opts, offeredRps) {
  const shard = await startShard(dir, flags.split(' ').filter((a) => a.length > 0));
  try {
    const { target } = shard;
    const pid = shard.child.pid;
    await waitAnswering(bin, { target, call: 'Search', dataFile });
    const run = (args) => runGhz(bin, { target, call: 'Search', dataFile, args });
    await run(['-n', String(WARMUP_CALLS), '-c', String(SATURATION_CONCURRENCY)]);
    const idleRss = memoryBytes(pid, 'VmRSS');
    const unloaded = await run(['-n', String(UNLOADED_CALLS), '-c', '1']);
    let saturated;
    if (offeredRps === 0) {
      saturated = await run(['-z', `${opts.seconds}s`, '-c', String(SATURATION_CONCURRENCY), '--connections', String(opts.connections)]);
      offeredRps = Math.round(saturated.rps * opts.overloadFactor);
    }
    // A call count, not a duration: a duration's end cancels the calls still in flight.
    const overloaded = await run([
      '-n', String(offeredRps * opts.seconds), '--rps', String(offeredRps), '-c', String(opts.concurrency), '--connections', String(opts.connections),
    ]);
    const peakRss = memoryBytes(pid, 'VmHWM');
    return { flags, unloaded, saturated, offeredRps, overloaded, idleRss, peakRss };
  } finally {
    if (shard.child.exitCode === null) shard.child.kill('SIGKILL');
  }
}

function report(label, m) {
  const o = m.overloaded;
  const exhausted = o.statusCodes.ResourceExhausted || 0;
  const ratio = o.okP99Ms / m.unloaded.okP99Ms;
  const seconds = o.count / o.rps;
  return {
    ratio,
    otherFailures: o.nonOk - exhausted,
    lines: [
      `${label} (${m.flags || 'defaults'}):`,
      `  unloaded p99 ${ms(m.unloaded.okP99Ms)} ms; offered ${m.offeredRps}/s, ghz achieved ${Math.round(o.rps)}/s`,
      `  answered ${o.ok} (${Math.round(o.ok / seconds)}/s), p99 ${ms(o.okP99Ms)} ms = ${ratio.toFixed(2)}x unloaded (target <= ${TARGET_P99_RATIO}: ${ratio <= TARGET_P99_RATIO ? 'met' : 'MISSED'})`,
      `  refused RESOURCE_EXHAUSTED ${exhausted} (${((100 * exhausted) / Math.max(1, o.count)).toFixed(1)}%), other failures ${o.nonOk - exhausted}${o.nonOk > exhausted ? ` ${JSON.stringify(o.statusCodes)}` : ''}`,
      `  memory: idle RSS ${mib(m.idleRss)} MiB, peak (VmHWM) ${mib(m.peakRss)} MiB (${(m.peakRss / m.idleRss).toFixed(2)}x)`,
    ],
  };
}

async function main() {
  const opts = parseFlags(process.argv.slice(2), DEFAULTS);
  const bin = findGhz(opts.ghz);
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'canopy-overload-'));
  try {
    const dir = await buildSeededVersion(workDir, { items: opts.items, dim: opts.dim, trees: opts.trees, index: 'overload' });
    const queries = seededFloats(QUERY_COUNT * opts.dim, 2);
    const dataFile = path.join(workDir, 'queries.json');
    writeFileSync(dataFile, JSON.stringify(Array.from({ length: QUERY_COUNT }, (_, q) => ({
      index: 'overload',
      vectorF32: Buffer.from(queries.buffer, q * opts.dim * 4, opts.dim * 4).toString('base64'),
      k: K,
      searchK: opts.searchK,
    }))));
    process.stdout.write(`shard node: ${opts.items} items, dim ${opts.dim}, ${opts.trees} trees, search_k ${opts.searchK}; ` +
      `${opts.overloadFactor}x the baseline's saturation, up to ${opts.concurrency} calls in flight over ${opts.connections} connections; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
    let failed = false;
    let offeredRps = 0; // set by the first baseline run's saturation, then offered to every run
    for (let round = 1; round <= opts.rounds; round++) {
      // Odd rounds run the baseline first, even rounds the gated shard: drift in the machine's load hits both.
      const variants = [['baseline', opts.shardFlags], ['gated', opts.gatedFlags]];
      if (round % 2 === 0) variants.reverse();
      for (const [label, flags] of variants) {
        const m = await measure(bin, dir, dataFile, flags, opts, offeredRps);
        if (m.saturated) {
          offeredRps = m.offeredRps;
          process.stdout.write(`saturation (${SATURATION_CONCURRENCY} in flight, baseline): ${Math.round(m.saturated.rps)}/s, p99 ${ms(m.saturated.okP99Ms)} ms\n`);
        }
        const r = report(`round ${round} ${label}`, m);
        process.stdout.write(`${r.lines.join('\n')}\n`);
        failed ||= r.otherFailures > 0;
      }
    }
    process.stdout.write(`load average after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
    if (failed) process.exitCode = 1;
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
