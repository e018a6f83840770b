'use strict';
// Where a router's extra hop goes at low load: one shard node and a router
// over it, each called by ghz one query at a time (paced), with the CPU time
// (utime + stime from /proc/<pid>/stat) each process spends per query and
// the p50 latency of each target.
//
//   node load-tests/serving/hop-cost.js [--items 10000] [--dim 32] [--trees 10] [--rps 200] [--requests 1000]
//       [--rounds 3] [--router-node-flags "--cpu-prof --cpu-prof-dir DIR"] [--ghz PATH]
//
// --router-node-flags are given to node for the router process (e.g. a CPU profile, written when it stops).
// Needs dist/ (`npm run prepare`); Linux (/proc). Run under the bench lock.
const { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { parseFlags } = require('../flags');
const { buildSeededVersion, freePort, seededFloats } = require('../fixtures');
const { CanopyProcesses, runScript } = require('../canopy-processes');
const { findGhz, runGhz, waitAnswering } = require('../ghz');
const { median } = require('../report');

const INDEX = 'hop';
const QUERY_COUNT = 100;
const WARMUP_REQUESTS = 500;
const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ on Linux
const IDLE_MS = 3000;

const DEFAULTS = { items: 10000, dim: 32, trees: 10, rps: 200, requests: 1000, rounds: 3, routerNodeFlags: '', ghz: '' };

/** utime + stime in ms of a /proc stat line, and the thread's name. */
function parseStat(stat) {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), ms: ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND };
}

/** utime + stime of `pid` in ms. */
function cpuMs(pid) {
  return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).ms;
}

/** CPU ms of `pid` by thread name (the main thread is "node"; libuv, V8 and engine threads have their own). */
function cpuByThread(pid) {
  const out = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const { name, ms } = parseStat(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
      out[name] = (out[name] ?? 0) + ms;
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** Per-query CPU µs by thread name between two cpuByThread readings. */
function threadDelta(before, after, count) {
  return Object.entries(after).map(([name, ms]) => [name, ((ms - (before[name] ?? 0)) * 1000) / count])
    .filter(([, us]) => us >= 1).map(([name, us]) => `${name} ${us.toFixed(0)}`).join(', ');
}

const processes = new CanopyProcesses();
const start = (nodeFlags, args) => processes.start(args, { nodeFlags });
const stopAll = () => processes.stopAll();


/** Writes QUERY_COUNT seeded queries (vector_f32, k 10) as a ghz data file; returns its path. */
function writeQueries(workDir, dim) {
  const queries = seededFloats(QUERY_COUNT * dim, 2);
  const file = path.join(workDir, 'queries.json');
  writeFileSync(file, JSON.stringify(Array.from({ length: QUERY_COUNT }, (_, q) => ({
    index: INDEX, vectorF32: Buffer.from(queries.buffer, q * dim * 4, dim * 4).toString('base64'), k: 10,
  }))));
  return file;
}

/** CPU per second of each process while nothing calls it (timers, probes): what the per-query figures include. */
async function idleCpu(pids) {
  const before = pids.map(cpuMs);
  await new Promise((r) => setTimeout(r, IDLE_MS));
  return pids.map((pid, j) => ((cpuMs(pid) - before[j]) * 1000) / IDLE_MS);
}

/** One paced run against `addr`: p50, and CPU µs per query of each of `pids` (in total and by thread when `byThread`). */
async function pacedRun(bin, addr, dataFile, pids, opts, byThread) {
  const threadsBefore = byThread ? pids.map(cpuByThread) : [];
  const before = pids.map(cpuMs);
  const r = await runGhz(bin, { target: addr, call: 'Search', dataFile, args: ['-n', String(opts.requests), '-c', '1', '--rps', String(opts.rps)] });
  const cpuUs = pids.map((pid, j) => ((cpuMs(pid) - before[j]) * 1000) / r.count);
  const threads = byThread ? pids.map((pid, j) => threadDelta(threadsBefore[j], cpuByThread(pid), r.count)) : [];
  return { p50Ms: r.p50Ms, cpuUs, threads, errors: r.count - r.ok };
}

function printResults(opts, targets, runs, idle) {
  console.log(`${opts.items} x ${opts.dim}, ${opts.trees} trees, k 10; ${opts.rounds} rounds of ${opts.requests} queries at ${opts.rps}/s; medians`);
  console.log('target           | p50 ms | shard CPU µs/query | router CPU µs/query | errors');
  for (const [i, t] of targets.entries()) {
    const p50 = median(runs[i].map((r) => r.p50Ms));
    const cpu = [0, 1].map((j) => median(runs[i].map((r) => r.cpuUs[j])).toFixed(0));
    const errors = runs[i].reduce((n, r) => n + r.errors, 0);
    console.log(`${t.name.padEnd(16)} | ${p50.toFixed(3)} | ${cpu[0].padStart(18)} | ${cpu[1].padStart(19)} | ${errors}`);
  }
  for (const [i, t] of targets.entries()) {
    const [shardThreads, routerThreads] = runs[i][runs[i].length - 1].threads;
    console.log(`${t.name}, last round, CPU µs/query by thread (those alive at both readings): shard {${shardThreads}}; router {${routerThreads}}`);
  }
  console.log(`idle CPU: shard ${idle[0].toFixed(0)} ms/s, router ${idle[1].toFixed(0)} ms/s`);
  const p50 = runs.map((rs) => median(rs.map((r) => r.p50Ms)));
  console.log(`router p50 / direct p50: ${(p50[1] / p50[0]).toFixed(2)}x`);
}

async function main() {
  const opts = parseFlags(process.argv.slice(2), DEFAULTS);
  const bin = findGhz(opts.ghz);
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'canopy-hop-cost-'));
  try {
    const dir = await buildSeededVersion(workDir, { items: opts.items, dim: opts.dim, trees: opts.trees, index: INDEX });
    const dataFile = writeQueries(workDir, opts.dim);
    const shardAddr = `127.0.0.1:${await freePort()}`;
    const shard = start([], ['serve', 'shard', '--manifest', dir, '--shard', '0', '--listen', shardAddr]);
    const routerAddr = `127.0.0.1:${await freePort()}`;
    const router = start(opts.routerNodeFlags.split(' ').filter(Boolean), ['serve', 'router', '--listen', routerAddr, '--backend', `0=${shardAddr}`]);
    for (const target of [shardAddr, routerAddr]) {
      await waitAnswering(bin, { target, call: 'Search', dataFile });
      await runGhz(bin, { target, call: 'Search', dataFile, args: ['-n', String(WARMUP_REQUESTS), '-c', '1'] });
    }
    const pids = [shard.pid, router.pid];
    const idle = await idleCpu(pids);
    const targets = [{ name: 'shard direct', addr: shardAddr }, { name: 'router -> shard', addr: routerAddr }];
    const runs = targets.map(() => []);
    for (let round = 0; round < opts.rounds; round++) {
      for (const [i, t] of targets.entries()) runs[i].push(await pacedRun(bin, t.addr, dataFile, pids, opts, round === opts.rounds - 1));
    }
    printResults(opts, targets, runs, idle);
  } finally {
    await stopAll();
    rmSync(workDir, { recursive: true, force: true });
  }
}

runScript(main, processes);
