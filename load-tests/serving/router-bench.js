'use strict';
// Serving benchmark: one shard node called directly against a router over 3
// shard nodes, the router with and without coalescing, all in one run on this
// machine, driven by ghz through server reflection.
//
//   node load-tests/serving/router-bench.js [--items 30000] [--dim 32] [--trees 10] [--search-k 0]
//       [--low-rps 100] [--low-requests 200] [--saturated-seconds 3] [--rounds 5] [--concurrency 32]
//       [--connections 4] [--ghz PATH] [--router-flags "--flag value ..."] [--report load-tests/reports/router.md]
//
// Needs dist/ (`npm run prepare`); ghz is installed when missing (load-tests/install-ghz.sh).
//
// Scenarios, each against the same 3-shard index (one replica per shard):
//   direct    ghz -> shard node 0 (a third of the items)
//   router    ghz -> router -> 3 shard nodes, coalescing into BatchSearch (default)
//   uncoal.   ghz -> router --no-coalesce -> one call per query per shard
//   one hop   ghz -> router that knows only shard 0 (min_shards 1): the extra hop alone
// Each is measured at low load (paced at --low-rps, one stream) and saturated
// (--concurrency streams over --connections connections for --saturated-seconds), in
// --rounds interleaved rounds; the table shows the median of each figure over the rounds.
// Queries are 100 seeded gaussian vectors sent round-robin as vector_f32 bytes, k = 10,
// search_k per shard as given (0: n_trees * k). Every process shares the same 2 cores: figures are ratios.
const { spawn } = require('node:child_process');
const { mkdtempSync, rmSync, writeFileSync, mkdirSync } = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const { parseFlags } = require('../flags');
const { findGhz, runGhz, waitAnswering } = require('../ghz');

const ROOT = path.resolve(__dirname, '..', '..');
const CANOPY = path.join(ROOT, 'bin', 'canopy.js');
const SHARDS = 3;
const K = 10;
const QUERY_COUNT = 100;
const WARMUP_REQUESTS = 300;

const DEFAULTS = {
  items: 30000,
  dim: 32,
  trees: 10,
  searchK: 0,
  lowRps: 100,
  lowRequests: 200,
  saturatedSeconds: 3,
  rounds: 5,
  concurrency: 32,
  connections: 4,
  ghz: '',
  routerFlags: '',
  report: path.join(ROOT, 'load-tests', 'reports', 'router.md'),
};

/** mulberry32 + Box-Muller: the same numbers on every run. */
function gaussians(count, seed) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  return out;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function buildIndex(workDir, opts) {
  const data = gaussians(opts.items * opts.dim, 1);
  const lines = [];
  for (let r = 0; r < opts.items; r++) {
    lines.push(JSON.stringify({ id: `item-${r}`, vector: Array.from(data.subarray(r * opts.dim, (r + 1) * opts.dim)) }));
  }
  const input = path.join(workDir, 'bench.jsonl');
  writeFileSync(input, `${lines.join('\n')}\n`);
  const { buildVersion } = require(path.join(ROOT, 'dist', 'build', 'builder.js'));
  const { Index } = require(path.join(ROOT, 'dist', 'engine', 'engine-index.js'));
  const built = await buildVersion({
    input, format: 'jsonl', metric: 'euclidean', outDir: path.join(workDir, 'versions'),
    createForest: (o) => new Index(o), nTrees: opts.trees, shardCount: SHARDS, index: 'bench', version: 'v1', seed: 1,
  });
  return built.dir;
}

const children = [];

function startProcess(args) {
  const child = spawn(process.execPath, [CANOPY, ...args, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  return child;
}

function killAll() {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The median of each figure over rounds; counts and errors are summed. */
function combine(runs) {
  return {
    rps: median(runs.map((r) => r.rps)),
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    count: runs.reduce((n, r) => n + r.count, 0),
    ok: runs.reduce((n, r) => n + r.ok, 0),
  };
}

/**
 * Measures every scenario in interleaved rounds (A B C D, A B C D, ...) and
 * keeps the median of each figure, so that other work on the machine weighs
 * on all scenarios alike instead of on whichever ran at a bad moment.
 */
async function measureAll(bin, scenarios, opts) {
  const ghz = (target, dataFile, args) => runGhz(bin, { target, call: 'Search', dataFile, args });
  for (const { target, dataFile } of scenarios) await ghz(target, dataFile, ['-n', String(WARMUP_REQUESTS), '-c', '8']);
  const low = scenarios.map(() => []);
  const saturated = scenarios.map(() => []);
  for (let round = 0; round < opts.rounds; round++) {
    for (const [i, { target, dataFile }] of scenarios.entries()) {
      low[i].push(await ghz(target, dataFile, ['-n', String(opts.lowRequests), '-c', '1', '--rps', String(opts.lowRps)]));
    }
    for (const [i, { target, dataFile }] of scenarios.entries()) {
      // 'wait': calls in flight when the time is up finish and count, instead of being reported as cancelled.
      saturated[i].push(await ghz(target, dataFile, ['-z', `${opts.saturatedSeconds}s`, '--duration-stop', 'wait',
        '-c', String(opts.concurrency), '--connections', String(opts.connections), '-t', '10s']));
    }
  }
  return scenarios.map((_, i) => ({ low: combine(low[i]), saturated: combine(saturated[i]) }));
}

const fmt = (x, digits = 2) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(digits));
const int = (x) => Math.round(x).toLocaleString('en-US');

function table(results) {
  const rows = [
    '| scenario | low load p50 ms | low load p99 ms | saturated q/s | saturated p50 ms | saturated p99 ms | errors |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const [name, r] of results) {
    const errors = r.low.count - r.low.ok + r.saturated.count - r.saturated.ok;
    rows.push(`| ${name} | ${fmt(r.low.p50Ms)} | ${fmt(r.low.p99Ms)} | ${int(r.saturated.rps)} | ${fmt(r.saturated.p50Ms)} | ${fmt(r.saturated.p99Ms)} | ${errors} |`);
  }
  return rows.join('\n');
}

async function main() {
  const opts = parseFlags(process.argv.slice(2), DEFAULTS);
  const bin = findGhz(opts.ghz);
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'canopy-router-bench-'));
  try {
    const dir = await buildIndex(workDir, opts);
    const queries = gaussians(QUERY_COUNT * opts.dim, 2);
    const writeQueries = (file, extra) => {
      writeFileSync(file, JSON.stringify(Array.from({ length: QUERY_COUNT }, (_, q) => ({
        index: 'bench',
        vectorF32: Buffer.from(queries.buffer, q * opts.dim * 4, opts.dim * 4).toString('base64'),
        k: K,
        searchK: opts.searchK,
        ...extra,
      }))));
      return file;
    };
    const dataFile = writeQueries(path.join(workDir, 'queries.json'), {});
    // For the router that knows only shard 0: one shard must answer.
    const oneShardFile = writeQueries(path.join(workDir, 'queries-one-shard.json'), { minShards: 1 });

    const shardAddrs = [];
    for (let s = 0; s < SHARDS; s++) {
      const addr = `127.0.0.1:${await freePort()}`;
      startProcess(['serve', 'shard', '--manifest', dir, '--shard', String(s), '--listen', addr]);
      shardAddrs.push(addr);
    }
    for (const a of shardAddrs) await waitAnswering(bin, { target: a, call: 'Search', dataFile });
    const backends = shardAddrs.flatMap((a, s) => ['--backend', `${s}=${a}`]);
    const routerAddr = `127.0.0.1:${await freePort()}`;
    startProcess(['serve', 'router', '--listen', routerAddr, ...backends, ...opts.routerFlags.split(' ').filter(Boolean)]);
    const uncoalescedAddr = `127.0.0.1:${await freePort()}`;
    startProcess(['serve', 'router', '--listen', uncoalescedAddr, '--no-coalesce', ...backends]);
    const oneHopAddr = `127.0.0.1:${await freePort()}`;
    startProcess(['serve', 'router', '--listen', oneHopAddr, '--backend', `0=${shardAddrs[0]}`]);
    for (const a of [routerAddr, uncoalescedAddr]) await waitAnswering(bin, { target: a, call: 'Search', dataFile });
    await waitAnswering(bin, { target: oneHopAddr, call: 'Search', dataFile: oneShardFile });

    const scenarios = [
      { name: 'shard 0 direct (1/3 of the items)', target: shardAddrs[0], dataFile },
      { name: 'router over shard 0 only (the extra hop)', target: oneHopAddr, dataFile: oneShardFile },
      { name: 'router, 3 shards, coalescing', target: routerAddr, dataFile },
      { name: 'router, 3 shards, one call per query per shard', target: uncoalescedAddr, dataFile },
    ];
    const measured = await measureAll(bin, scenarios, opts);
    const results = new Map(scenarios.map((sc, i) => [sc.name, measured[i]]));
    const [direct, oneHop, router, uncoalesced] = [...results.values()];

    const overhead = router.low.p50Ms / direct.low.p50Ms;
    const hop = oneHop.low.p50Ms / direct.low.p50Ms;
    const gain = router.saturated.rps / uncoalesced.saturated.rps;
    const cpu = os.cpus();
    const command = `node load-tests/serving/router-bench.js ${process.argv.slice(2).join(' ')}`.trim();
    const report = [
      '# Serving benchmark: router over 3 shards',
      '',
      `${new Date().toISOString()} · ${cpu[0]?.model ?? 'cpu'} · ${cpu.length} cores · node ${process.version} · \`${command}\``,
      '',
      `Index: ${int(opts.items)} x ${opts.dim} euclidean, ${opts.trees} trees, ${SHARDS} shards (one replica each), k = ${K}, search_k ${opts.searchK || `default (${opts.trees * K})`}.`,
      `Load: ghz over server reflection, ${QUERY_COUNT} query vectors round-robin as vector_f32. Low load: one stream paced at ${opts.lowRps} q/s,`,
      `${opts.lowRequests} requests. Saturated: ${opts.concurrency} streams over ${opts.connections} connections for ${opts.saturatedSeconds} s.`,
      `Scenarios run in ${opts.rounds} interleaved rounds; each figure is the median over the rounds.`,
      'ghz, the shard nodes and the routers all share the same cores, so read the ratios, not the absolute figures.',
      '',
      table(results),
      '',
      `- Router p50 at low load / direct shard p50: **${fmt(overhead)}x** (target ≤ 1.30)`,
      `- Router over shard 0 only, p50 at low load / direct shard p50: **${fmt(hop)}x** (the cost of the extra hop alone)`,
      `- Router saturated q/s, coalescing / one call per query per shard: **${fmt(gain)}x** (target ≥ 2)`,
      '',
      'Coalescing router: concurrent queries bound for a shard leave as one BatchSearch, sent as a message on a',
      'long-lived BatchSearchStream to the replica. The comparison router sends one unary BatchSearch per query per shard.',
      'At low load the direct shard pays one gRPC call and one search; the router adds a hop (its own unary call',
      'handling, a stream message to the shard and back, the merge: the "extra hop" row) and, over 3 shards, three',
      `searches that share this machine's ${cpu.length} cores with each other, ghz and the router (on separate hosts they run side by side).`,
      '',
    ].join('\n');
    process.stdout.write(report);
    mkdirSync(path.dirname(opts.report), { recursive: true });
    writeFileSync(opts.report, report);
    process.stderr.write(`written to ${path.relative(ROOT, opts.report)}\n`);
  } finally {
    killAll();
    rmSync(workDir, { recursive: true, force: true });
  }
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}
main().catch((err) => {
  killAll();
  process.stderr.write(`${err.stack || err}\n`);
  process.exitCode = 1;
});
