'use strict';
// Serving benchmark: one shard node called directly against a router over 3
// shard nodes, the router with and without coalescing, all in one run on this
// machine, driven by ghz through server reflection.
//
//   node load-tests/serving/router-bench.js [--items 30000] [--dim 32] [--trees 10] [--search-k 0]
//       [--real-items 200000] [--real-dim 128] [--real-trees 20] [--real-search-k 0] [--real-rounds 3]
//       [--low-rps 100] [--low-requests 200] [--saturated-seconds 3] [--rounds 5] [--concurrency 32]
//       [--connections 4] [--ghz PATH] [--router-flags "--flag value ..."] [--report load-tests/reports/router.md]
//
// Two workloads, one after the other: "tiny" (--items x --dim euclidean gaussian, where a shard search
// takes tens of µs, so the fixed cost of a gRPC hop dominates) and "realistic" (--real-items x --real-dim
// angular, clustered like embeddings, search_k per shard chosen here as the smallest of a ladder whose
// recall@10 against brute force reaches 0.9, or --real-search-k; --real-items 0 skips it).
//
// Needs dist/ (`npm run prepare`); ghz is installed when missing (load-tests/install-ghz.sh).
//
// Scenarios, for each workload, against its 3-shard index (one replica per shard):
//   direct    ghz -> a shard node of a 1-shard index of a third of the items (one shard's size)
//   router    ghz -> router -> 3 shard nodes, coalescing into BatchSearch (default)
//   uncoal.   ghz -> router --no-coalesce -> one call per query per shard
//   one hop   ghz -> router over that 1-shard index: the extra hop alone
// Each is measured at low load (paced at --low-rps, one stream) and saturated
// (--concurrency streams over --connections connections for --saturated-seconds), in
// --rounds (realistic: --real-rounds) interleaved rounds; the table shows the median of each figure over
// the rounds. Queries are 100 seeded vectors drawn like the items, sent round-robin as vector_f32 bytes,
// k = 10. Every process shares the same 2 cores: figures are ratios. Shard nodes queue rather than shed
// (SHARD_QUEUE_FLAGS): saturated rows measure throughput; shedding is load-tests/overload/'s subject.
const { mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { parseFlags } = require('../flags');
const { freePort, npyHeader } = require('../fixtures');
const { CanopyProcesses, runScript } = require('../canopy-processes');
const { findGhz, runGhz, waitAnswering } = require('../ghz');
const { machineLine, median, writeReport } = require('../report');

const ROOT = path.resolve(__dirname, '..', '..');
/** A closed loop of --concurrency calls queues at the shards instead of being shed by admission's latency bound. */
const SHARD_QUEUE_FLAGS = ['--max-queue-wait-ms', '0'];
const SHARDS = 3;
const K = 10;
const QUERY_COUNT = 100;
const WARMUP_REQUESTS = 300;
const TARGET_RECALL = 0.9;
const SEARCH_K_LADDER = [1000, 2000, 4000, 8000, 12000, 16000, 24000, 32000, 48000, 64000];
const CLUSTERS = 256;
const CLUSTER_NOISE = 2; // clusters that overlap: recall 0.9 needs a search_k of tens of thousands, as on glove-100

const DEFAULTS = {
  items: 30000,
  dim: 32,
  trees: 10,
  searchK: 0,
  realItems: 200000,
  realDim: 128,
  realTrees: 20,
  realSearchK: 0,
  realRounds: 3,
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

/** Gaussian rows, or (clustered) rows scattered around CLUSTERS gaussian centres, as embeddings are. */
function vectors(rows, dim, seed, clustered) {
  const data = gaussians(rows * dim, seed);
  if (!clustered) return data;
  const centres = gaussians(CLUSTERS * dim, 99);
  for (let r = 0; r < rows; r++) {
    const c = (Math.imul(r + seed, 2654435761) >>> 0) % CLUSTERS;
    for (let d = 0; d < dim; d++) data[r * dim + d] = centres[c * dim + d] + CLUSTER_NOISE * data[r * dim + d];
  }
  return data;
}

/** Writes rows as a float32 .npy (ids are row numbers) and builds a 3-shard version from it. */
async function buildIndex(workDir, w, data, { index, shards }) {
  const rows = data.length / w.dim;
  const input = path.join(workDir, `${w.name}-${index}.npy`);
  writeFileSync(input, Buffer.concat([npyHeader(rows, w.dim), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
  const { buildVersion } = require(path.join(ROOT, 'dist', 'indexer', 'builder.js'));
  const { Index } = require(path.join(ROOT, 'dist', 'engine', 'engine-index.js'));
  const built = await buildVersion({
    input, format: 'npy', metric: w.metric, outDir: path.join(workDir, w.name, index),
    createForest: (o) => new Index(o), nTrees: w.trees, shardCount: shards, index, version: 'v1', seed: 1,
  });
  rmSync(input);
  return built.dir;
}

/** Brute-force top-k rows of each query by cosine (angular order). */
function exactTopK(data, dim, queries, k) {
  const rows = data.length / dim;
  const norms = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let n = 0;
    for (let d = 0; d < dim; d++) n += data[r * dim + d] ** 2;
    norms[r] = Math.sqrt(n) || 1;
  }
  const out = [];
  for (let q = 0; q < queries.length / dim; q++) {
    const best = []; // [cos, row], kept sorted descending, length <= k
    for (let r = 0; r < rows; r++) {
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += data[r * dim + d] * queries[q * dim + d];
      const cos = dot / norms[r];
      if (best.length < k || cos > best[best.length - 1][0]) {
        best.push([cos, r]);
        best.sort((a, b) => b[0] - a[0]);
        if (best.length > k) best.pop();
      }
    }
    out.push(new Set(best.map(([, r]) => String(r))));
  }
  return out;
}

/**
 * The smallest search_k of the ladder whose recall@k over all shards (each
 * searched with it, merged by distance) reaches TARGET_RECALL; with its recall.
 */
function calibrateSearchK(dir, w, data, queries) {
  const { Index } = require(path.join(ROOT, 'dist', 'engine', 'engine-index.js'));
  const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const shards = manifest.shards.map((sh) => ({
    index: Index.load(path.join(dir, sh.file), { dim: w.dim, metric: w.metric }),
    ids: readFileSync(path.join(dir, sh.idsFile), 'utf8').split('\n'),
  }));
  const truth = exactTopK(data, w.dim, queries, K);
  let chosen;
  for (const searchK of SEARCH_K_LADDER) {
    let hits = 0;
    for (let q = 0; q < truth.length; q++) {
      const vector = queries.subarray(q * w.dim, (q + 1) * w.dim);
      const found = shards.flatMap(({ index, ids }) => {
        const r = index.searchSync(vector, K, { searchK });
        return Array.from(r.ids, (item, i) => [r.distances[i], ids[item]]);
      }).sort((a, b) => a[0] - b[0]).slice(0, K);
      for (const [, id] of found) if (truth[q].has(id)) hits++;
    }
    chosen = { searchK, recall: hits / (truth.length * K) };
    if (chosen.recall >= TARGET_RECALL) break;
  }
  for (const { index } of shards) index.unload();
  return chosen;
}

const processes = new CanopyProcesses();
const startProcess = (args) => processes.start(args);
const killAll = () => processes.killAll();


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
async function measureAll(bin, scenarios, opts, rounds) {
  const ghz = (target, dataFile, args) => runGhz(bin, { target, call: 'Search', dataFile, args });
  for (const { target, dataFile } of scenarios) await ghz(target, dataFile, ['-n', String(WARMUP_REQUESTS), '-c', '8']);
  const low = scenarios.map(() => []);
  const saturated = scenarios.map(() => []);
  for (let round = 0; round < rounds; round++) {
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

/** Builds the workload's index, starts 3 shard nodes and 3 routers, measures every scenario, stops them. */
async function runWorkload(bin, workDir, w, opts) {
  const data = vectors(w.items, w.dim, 1, w.clustered);
  const queries = vectors(QUERY_COUNT, w.dim, 2, w.clustered);
  const dir = await buildIndex(workDir, w, data, { index: 'bench', shards: SHARDS });
  // A router must be given every shard of an index, so the extra hop is measured on an index of its
  // own: one shard holding a third of the items, the size of one of the 3 shards above.
  const thirdDir = await buildIndex(workDir, w, data.subarray(0, Math.floor(w.items / SHARDS) * w.dim), { index: 'third', shards: 1 });
  const calibrated = w.searchK === 0 && w.calibrate ? calibrateSearchK(dir, w, data, queries) : undefined;
  const searchK = calibrated?.searchK ?? w.searchK;
  const writeQueries = (file, extra) => {
    writeFileSync(file, JSON.stringify(Array.from({ length: QUERY_COUNT }, (_, q) => ({
      index: 'bench',
      vectorF32: Buffer.from(queries.buffer, q * w.dim * 4, w.dim * 4).toString('base64'),
      k: K,
      searchK,
      ...extra,
    }))));
    return file;
  };
  const dataFile = writeQueries(path.join(workDir, `${w.name}-queries.json`), {});
  const thirdFile = writeQueries(path.join(workDir, `${w.name}-queries-third.json`), { index: 'third' });
  try {
    const shardAddrs = [];
    for (let s = 0; s < SHARDS; s++) {
      const addr = `127.0.0.1:${await freePort()}`;
      startProcess(['serve', 'shard', '--manifest', dir, '--shard', String(s), '--listen', addr, ...SHARD_QUEUE_FLAGS]);
      shardAddrs.push(addr);
    }
    for (const a of shardAddrs) await waitAnswering(bin, { target: a, call: 'Search', dataFile });
    const backends = shardAddrs.flatMap((a, s) => ['--backend', `${s}=${a}`]);
    const routerAddr = `127.0.0.1:${await freePort()}`;
    startProcess(['serve', 'router', '--listen', routerAddr, ...backends, ...opts.routerFlags.split(' ').filter(Boolean)]);
    const uncoalescedAddr = `127.0.0.1:${await freePort()}`;
    startProcess(['serve', 'router', '--listen', uncoalescedAddr, '--no-coalesce', ...backends]);
    const thirdAddr = `127.0.0.1:${await freePort()}`;
    startProcess(['serve', 'shard', '--manifest', thirdDir, '--shard', '0', '--listen', thirdAddr, ...SHARD_QUEUE_FLAGS]);
    await waitAnswering(bin, { target: thirdAddr, call: 'Search', dataFile: thirdFile });
    const oneHopAddr = `127.0.0.1:${await freePort()}`;
    startProcess(['serve', 'router', '--listen', oneHopAddr, '--backend', `0=${thirdAddr}`]);
    for (const a of [routerAddr, uncoalescedAddr]) await waitAnswering(bin, { target: a, call: 'Search', dataFile });
    await waitAnswering(bin, { target: oneHopAddr, call: 'Search', dataFile: thirdFile });

    const scenarios = [
      { name: 'one shard direct (1/3 of the items)', target: thirdAddr, dataFile: thirdFile },
      { name: 'router over that shard (the extra hop)', target: oneHopAddr, dataFile: thirdFile },
      { name: 'router, 3 shards, coalescing', target: routerAddr, dataFile },
      { name: 'router, 3 shards, one call per query per shard', target: uncoalescedAddr, dataFile },
    ];
    const measured = await measureAll(bin, scenarios, opts, w.rounds);
    const results = new Map(scenarios.map((sc, i) => [sc.name, measured[i]]));
    const [direct, oneHop, router, uncoalesced] = [...results.values()];
    return {
      searchK, calibrated, results,
      overhead: router.low.p50Ms / direct.low.p50Ms,
      hop: oneHop.low.p50Ms / direct.low.p50Ms,
      gain: router.saturated.rps / uncoalesced.saturated.rps,
    };
  } finally {
    killAll();
    for (const d of [dir, thirdDir]) rmSync(d, { recursive: true, force: true });
  }
}

function workloadSection(w, r) {
  const searchK = r.calibrated
    ? `${r.searchK} per shard (smallest of ${SEARCH_K_LADDER.join(', ')} reaching recall@${K} ≥ ${TARGET_RECALL}: measured ${fmt(r.calibrated.recall, 3)} over the ${QUERY_COUNT} queries, all shards merged, against brute force)`
    : r.searchK ? String(r.searchK) : `default (${w.trees * K})`;
  return [
    `## ${w.title}`,
    '',
    `Index: ${int(w.items)} x ${w.dim} ${w.metric}${w.clustered ? ` (${CLUSTERS} gaussian clusters)` : ' (gaussian)'}, ${w.trees} trees, ${SHARDS} shards (one replica each), k = ${K}, search_k ${searchK}.`,
    `${w.rounds} interleaved rounds; each figure is the median over the rounds.`,
    '',
    table(r.results),
    '',
    `- Router p50 at low load / direct shard p50: **${fmt(r.overhead)}x** (target ≤ 1.30)`,
    `- Router over the 1-shard index, p50 at low load / direct shard p50: **${fmt(r.hop)}x** (the cost of the extra hop alone)`,
    `- Router saturated q/s, coalescing / one call per query per shard: **${fmt(r.gain)}x** (target ≥ 2)`,
    '',
  ].join('\n');
}

async function main() {
  const opts = parseFlags(process.argv.slice(2), DEFAULTS);
  const bin = findGhz(opts.ghz);
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'canopy-router-bench-'));
  const workloads = [
    { name: 'tiny', title: 'Tiny index: a shard search takes tens of µs', items: opts.items, dim: opts.dim, trees: opts.trees,
      searchK: opts.searchK, metric: 'euclidean', clustered: false, calibrate: false, rounds: opts.rounds },
    { name: 'realistic', title: 'Recommender-scale index: about a millisecond per shard search', items: opts.realItems, dim: opts.realDim,
      trees: opts.realTrees, searchK: opts.realSearchK, metric: 'angular', clustered: true, calibrate: true, rounds: opts.realRounds },
  ].filter((w) => w.items > 0);
  try {
    const sections = [];
    const load = [];
    for (const w of workloads) {
      const r = await runWorkload(bin, workDir, w, opts);
      load.push(`${w.name} ${os.loadavg()[0].toFixed(2)}`);
      sections.push(workloadSection(w, r));
      process.stderr.write(`${w.name}: router/direct p50 ${fmt(r.overhead)}x, hop ${fmt(r.hop)}x, coalescing ${fmt(r.gain)}x\n`);
    }
    const cpu = os.cpus();
    const report = [
      '# Serving benchmark: router over 3 shards',
      '',
      machineLine(__filename),
      `· 1-minute load average after each workload: ${load.join(', ')}`,
      '',
      `Load: ghz over server reflection, ${QUERY_COUNT} query vectors round-robin as vector_f32. Low load: one stream paced at ${opts.lowRps} q/s,`,
      `${opts.lowRequests} requests. Saturated: ${opts.concurrency} streams over ${opts.connections} connections for ${opts.saturatedSeconds} s.`,
      'Scenarios run in interleaved rounds (A B C D, A B C D, ...).',
      `Protection turned off: shard nodes run with \`${SHARD_QUEUE_FLAGS.join(' ')}\` (the latency bound of admission off, the count`,
      'bound kept), so saturated rows measure throughput rather than shedding (load-tests/overload/ measures shedding).',
      'ghz, the shard nodes and the routers all share the same cores, so read the ratios, not the absolute figures.',
      '',
      ...sections,
      'Coalescing router: concurrent queries bound for a shard leave as one BatchSearch, sent as a message on a',
      'long-lived BatchSearchStream to the replica. The comparison router sends one unary BatchSearch per query per shard.',
      'At low load the direct shard pays one gRPC call and one search; the router adds a hop (its own unary call',
      'handling, a stream message to the shard and back, the merge: the "extra hop" row) and, over 3 shards, three',
      `searches that share this machine's ${cpu.length} cores with each other, ghz and the router (on separate hosts they run side by side).`,
      'The hop is grpc-js work, not ours: `node load-tests/serving/hop-cost.js` (CPU per query by process and thread) and',
      '`hop-timeline.js` (a per-query syscall timeline) put our own code at ~40 us of it; grpc-js and Node\'s HTTP/2 take',
      '~126 us before the router\'s handler runs, ~80 us to send to the shard stream and read the reply, ~46 us to answer,',
      'and a bare grpc-js proxy with no checks, merge or timers measured the same p50 as the router. On the',
      'recommender-scale index the 3-shard router also waits for three ~1 ms searches that cannot all run at once on',
      `${cpu.length} cores (their CPU alone needs ~1.5x a direct search's wall time); coalescing saves router RPCs, not shard search time.`,
      '',
    ].join('\n');
    writeReport(opts.report, report);
  } finally {
    killAll();
    rmSync(workDir, { recursive: true, force: true });
  }
}

runScript(main, processes);
