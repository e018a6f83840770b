'use strict';
// Where the time of one query through a router goes, from the kernel's view:
// a shard node and a router over it, ghz calling the router one query at a
// time, and `perf record` of the read/write syscalls of every process. Per
// query, the segments between them (medians, µs):
//
//   ghz->router   ghz writes the request .. the router reads it (loopback and wake-up)
//   router in     the router reads the request .. writes to the shard (grpc-js server, our handler, grpc-js client)
//   router->shard .. the shard reads it
//   shard         the shard reads .. writes its reply (decode, search, encode)
//   shard->router .. the router reads the reply
//   router out    the router reads the reply .. writes the response (merge, grpc-js)
//   trailers      the response's data .. its trailers (grpc-js sends the status once the data is written)
//
// Needs perf with syscall tracepoints (root, or kernel.perf_event_paranoid <= -1) and dist/.
//   node load-tests/serving/hop-timeline.js [--items 10000] [--dim 32] [--trees 10] [--rps 200] [--requests 1000] [--ghz PATH]
// Run under the bench lock.
const { spawnSync } = require('node:child_process');
const { mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { parseFlags } = require('../flags');
const { buildSeededVersion, freePort, seededFloats } = require('../fixtures');
const { CanopyProcesses, runScript } = require('../canopy-processes');
const { findGhz, runGhz, waitAnswering } = require('../ghz');
const { median } = require('../report');

const INDEX = 'hop';
const QUERY_COUNT = 100;
const WARMUP_REQUESTS = 3000;
/** A Search request (HEADERS + DATA) read in one piece is at least this long; control frames are shorter. */
const MIN_REQUEST_BYTES = 150;
const EVENTS = ['sys_enter_read', 'sys_exit_read', 'sys_enter_write', 'sys_enter_writev'].map((e) => `syscalls:${e}`).join(',');
const SEGMENTS = ['ghz->router', 'router in', 'router->shard', 'shard', 'shard->router', 'router out', 'trailers'];

const DEFAULTS = { items: 10000, dim: 32, trees: 10, rps: 200, requests: 1000, ghz: '' };

const processes = new CanopyProcesses();
const start = (args) => processes.start(args);
const killAll = () => processes.killAll();

/** The traced syscalls as { t (s), who ('G' ghz, 'R' router, 'S' shard), kind ('read' | 'write'), fd, bytes }. */
function syscalls(dataFile, routerPid, shardPid) {
  const out = spawnSync('perf', ['script', '-i', dataFile, '-F', 'comm,tid,time,event,trace'], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (out.status !== 0) throw new Error(`perf script failed: ${out.stderr}`);
  const events = [];
  const readFd = new Map();
  for (const line of out.stdout.split('\n')) {
    const m = /^\s*(\S+)\s+(\d+)\s+([\d.]+):\s+syscalls:(\S+):\s*(.*)$/.exec(line);
    if (m === null) continue;
    const [, comm, tidText, time, event, rest] = m;
    const tid = Number(tidText);
    const who = tid === routerPid ? 'R' : tid === shardPid ? 'S' : comm === 'ghz' ? 'G' : undefined;
    if (who === undefined) continue;
    const fd = /fd: (0x[0-9a-f]+)/.exec(rest);
    if (event === 'sys_enter_read') readFd.set(tid, Number(fd[1]));
    else if (event === 'sys_exit_read') {
      const bytes = Number(BigInt.asIntN(64, BigInt(rest.trim())));
      if (bytes > 0) events.push({ t: Number(time), who, kind: 'read', fd: readFd.get(tid), bytes });
    } else {
      const count = /count: (0x[0-9a-f]+)/.exec(rest);
      events.push({ t: Number(time), who, kind: 'write', fd: Number(fd[1]), bytes: count ? Number(count[1]) : -1 });
    }
  }
  return events;
}

/** Per query, the segments above (s), found by walking the router's syscalls from each request it reads. */
function segments(events) {
  const r = events.filter((e) => e.who === 'R');
  const s = events.filter((e) => e.who === 'S');
  const ghzRequests = events.filter((e) => e.who === 'G' && e.kind === 'write' && e.bytes >= MIN_REQUEST_BYTES).map((e) => e.t);
  const last = (times, before) => times.filter((t) => t <= before).pop();
  const found = [];
  for (let i = 0; i < r.length; i++) {
    if (r[i].kind !== 'read' || r[i].bytes < MIN_REQUEST_BYTES) continue;
    const client = r[i].fd;
    const toShard = r.findIndex((e, j) => j > i && e.kind === 'write' && e.fd !== client);
    const fromShard = r.findIndex((e, j) => j > toShard && e.kind === 'read' && e.fd === r[toShard]?.fd);
    if (toShard < 0 || fromShard < 0) break;
    const replies = r.filter((e, j) => j > fromShard && j < fromShard + 12 && e.kind === 'write' && e.fd === client).slice(0, 2);
    const shardRead = s.find((e) => e.kind === 'read' && e.t >= r[toShard].t);
    const shardWrite = last(s.filter((e) => e.kind === 'write').map((e) => e.t), r[fromShard].t);
    const ghzWrite = last(ghzRequests, r[i].t);
    if (replies.length === 2 && shardRead && shardWrite !== undefined && ghzWrite !== undefined) {
      found.push([r[i].t - ghzWrite, r[toShard].t - r[i].t, shardRead.t - r[toShard].t, shardWrite - shardRead.t,
        r[fromShard].t - shardWrite, replies[0].t - r[fromShard].t, replies[1].t - replies[0].t]);
    }
    i = fromShard;
  }
  return found;
}


async function main() {
  const opts = parseFlags(process.argv.slice(2), DEFAULTS);
  const bin = findGhz(opts.ghz);
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'canopy-hop-timeline-'));
  try {
    const dir = await buildSeededVersion(workDir, { items: opts.items, dim: opts.dim, trees: opts.trees, index: INDEX });
    const queries = seededFloats(QUERY_COUNT * opts.dim, 2);
    const dataFile = path.join(workDir, 'queries.json');
    writeFileSync(dataFile, JSON.stringify(Array.from({ length: QUERY_COUNT }, (_, q) => ({
      index: INDEX, vectorF32: Buffer.from(queries.buffer, q * opts.dim * 4, opts.dim * 4).toString('base64'), k: 10,
    }))));
    const shardAddr = `127.0.0.1:${await freePort()}`;
    const shard = start(['serve', 'shard', '--manifest', dir, '--shard', '0', '--listen', shardAddr]);
    const routerAddr = `127.0.0.1:${await freePort()}`;
    const router = start(['serve', 'router', '--listen', routerAddr, '--backend', `0=${shardAddr}`]);
    await waitAnswering(bin, { target: routerAddr, call: 'Search', dataFile });
    await runGhz(bin, { target: routerAddr, call: 'Search', dataFile, args: ['-n', String(WARMUP_REQUESTS), '-c', '1'] });
    const perfData = path.join(workDir, 'perf.data');
    const ghzArgs = ['--insecure', '--call', 'canopy.v1.Search.Search', '--data-file', dataFile, '-n', String(opts.requests), '-c', '1',
      '--rps', String(opts.rps), routerAddr];
    const recorded = spawnSync('perf', ['record', '-q', '-a', '-e', EVENTS, '-o', perfData, '--', bin, ...ghzArgs], { encoding: 'utf8' });
    if (recorded.status !== 0) throw new Error(`perf record failed (root or kernel.perf_event_paranoid <= -1 needed): ${recorded.stderr}`);
    const found = segments(syscalls(perfData, router.pid, shard.pid));
    console.log(`${opts.items} x ${opts.dim}, ${opts.trees} trees, k 10; ${opts.requests} queries at ${opts.rps}/s, ${found.length} requests matched (ghz adds its reflection calls); medians (µs)`);
    for (const [j, name] of SEGMENTS.entries()) console.log(`${name.padEnd(14)} ${(median(found.map((f) => f[j])) * 1e6).toFixed(0).padStart(6)}`);
  } finally {
    killAll();
    rmSync(workDir, { recursive: true, force: true });
  }
}

runScript(main, processes);
