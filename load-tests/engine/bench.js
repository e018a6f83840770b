'use strict';
// Engine benchmark: Canopy against Python annoy (same data, same n_trees, same
// seed, same file format) and against hnswlib-node, at equal recall@k.
//
//   npm run bench:engine -- [--dataset mnist|synthetic|mixture-100k|mixture-1m|all] [--queries 1000]
//       [--trees 50] [--engines codes,canopy,annoy,hnswlib] [--build-threads 1] [--repeats 3] [--rounds 2]
//       [--build-only yes]   (prepare the data and fill the cache of builds; no queries, no report)
//
// Engines: canopy (the forest), codes (canopy's forest searched through its sidecar of codes,
// docs/sidecar-format.md; its build and file are the sidecar's alone), graph (canopy's forest plus
// a neighbour graph sidecar, searched with ef on float rows; its build and file are the graph's alone;
// a run led by it writes engine-<dataset>-graph.md), annoy, hnswlib. Ratio columns compare the
// first engine listed with each other one.
//
// Data and every built index (with its build figures) are cached in load-tests/.cache/engine,
// named by dataset, queries, k and the build's parameters, so a re-run skips them (a 1M-item
// hnswlib build takes many minutes); delete the folder to rebuild. The report names cached builds.
//
// For each dataset: annoy_peer.py writes the base and query vectors and the
// exact top-k (numpy brute force); each engine builds in its own child process
// (so its peak RSS is its own); then each engine answers every query with one
// thread, sweeping search_k (hnswlib: ef); each block of 50 queries counts its
// fastest of --repeats passes, in CPU time (steadier than wall time on a shared
// machine; builds report both). The engines' sweeps take turns for --rounds
// rounds and each sweep point counts its fastest round: this host's speed drifts
// over minutes, and one engine's sweep run wholly after another's would carry the
// drift into their ratio. Queries/s at a recall level is
// interpolated linearly between the two sweep points around it.
//
// How each side is timed: a tight loop of one synchronous call per query, after
// 50 warm-up queries, in the same blocks on every side. Canopy: searchSync
// with a Float32Array view (no copy). Annoy: get_nns_by_vector in a Python loop
// over pre-built lists (includes the binding's list parsing, ~µs per call).
// hnswlib-node: searchKnn, which only takes a plain Array (pre-built; the
// binding still converts it per call).
const { spawnSync } = require('node:child_process');
const { closeSync, mkdirSync, openSync, readFileSync, readSync, realpathSync, rmSync, statSync, writeFileSync, existsSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseFlags } = require('../flags');

const PEER = path.join(__dirname, 'annoy_peer.py');
const REPORTS = path.join(__dirname, '..', 'reports');
const RECALL_LEVELS = [0.8, 0.9, 0.95, 0.99];
const WARMUP_QUERIES = 50;
const BLOCK_QUERIES = 50; // annoy_peer.py times in blocks of the same size
const CHILD_TIMEOUT_MS = 90 * 60_000; // a 1M-item hnswlib build on a shared 2-core machine
const CACHE = path.join(__dirname, '..', '.cache', 'engine');

const DEFAULTS = {
  dataset: 'all',
  queries: 1000,
  repeats: 3,
  rounds: 2,
  k: 10,
  trees: 50,
  seed: 1,
  buildThreads: 1,
  engines: 'codes,canopy,annoy,hnswlib',
  hnswM: 16,
  hnswEfConstruction: 200,
  buildOnly: 'no',
};

// Sweeps chosen so the recall curve crosses 0.8 .. 0.99 on each dataset at 50 trees.
const SEARCH_KS = {
  // MNIST leaves hold up to dim + 2 = 786 items, so any search_k below that reads one leaf per tree.
  mnist: [100, 500, 1000, 2000, 3000, 5000, 10000],
  synthetic: [200, 500, 1000, 2000, 5000, 10000, 20000],
  'mixture-100k': [200, 300, 500, 1000, 2000, 3000, 5000, 10000, 20000],
  'mixture-1m': [500, 1000, 2000, 3000, 5000, 10000, 20000],
};
const HNSW_EFS = [10, 20, 40, 80, 160, 320, 640];
// The graph engine (canopy's forest and a neighbour graph): ef, its entry search at its default (ef
// candidates), in rising recall.
const GRAPH_EFS = [10, 12, 16, 20, 24, 32, 48, 64, 96, 128];

// ---------- shared file helpers ----------

function readFloat32(file) {
  const buf = readFileSync(file);
  return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
}

function readInt32(file) {
  const buf = readFileSync(file);
  return new Int32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
}

function readMeta(dir) {
  return JSON.parse(readFileSync(path.join(dir, 'meta.json'), 'utf8'));
}

function rowView(data, dim, i) {
  return data.subarray(i * dim, (i + 1) * dim);
}

function runJson(command, args) {
  const child = spawnSync(command, args, { encoding: 'utf8', timeout: CHILD_TIMEOUT_MS, maxBuffer: 64 << 20 });
  if (child.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (${child.signal ?? child.status}):\n${child.stderr}`);
  }
  return JSON.parse(child.stdout);
}

// ---------- builds, each in a child process of its own ----------

// Two clocks: wall time, and CPU time of this process. On a machine shared with
// other work, CPU time of a single-threaded step is the steadier measure: being
// descheduled stretches the wall clock but not the CPU clock.
function clock() {
  const { user, system } = process.cpuUsage();
  return { wallNs: process.hrtime.bigint(), cpuUs: user + system };
}

function elapsed(from, to = clock()) {
  return { wall: Number(to.wallNs - from.wallNs) / 1e9, cpu: (to.cpuUs - from.cpuUs) / 1e6 };
}

/** `added` is null when adding and building are one step (hnswlib). */
function buildStats(started, added, dataRssBytes, out) {
  const build = elapsed(added ?? started);
  return {
    addCpuSeconds: added === null ? null : elapsed(started, added).cpu,
    buildCpuSeconds: build.cpu,
    buildWallSeconds: build.wall,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    dataRssBytes,
    fileBytes: statSync(out).size,
  };
}

function childCanopyBuild(opts) {
  const { Index } = require('../../dist');
  const meta = readMeta(opts.dir);
  const base = readFloat32(path.join(opts.dir, 'base.f32'));
  const dataRssBytes = process.memoryUsage().rss;
  const started = clock();
  const index = new Index({ dim: meta.dim, metric: meta.metric, seed: opts.seed });
  for (let i = 0; i < meta.rows; i++) index.addItem(i, rowView(base, meta.dim, i));
  const added = clock();
  index.buildSync({ nTrees: opts.trees, threads: opts.buildThreads });
  index.save(opts.out);
  return buildStats(started, added, dataRssBytes, opts.out);
}

// The neighbour graph of canopy's forest (built first), in a sidecar of its own: only the graph's
// build is timed.
function childGraphBuild(opts) {
  const { Index } = require('../../dist');
  const meta = readMeta(opts.dir);
  const index = Index.load(opts.forest, { dim: meta.dim, metric: meta.metric });
  const dataRssBytes = process.memoryUsage().rss;
  const started = clock();
  index.buildGraphSync({ threads: opts.buildThreads });
  index.saveGraph(opts.out);
  return buildStats(started, started, dataRssBytes, opts.out);
}

// The sidecar of codes for canopy's forest (built first): only the sidecar's build is timed.
function childCodesBuild(opts) {
  const { Index } = require('../../dist');
  const meta = readMeta(opts.dir);
  const index = Index.load(opts.forest, { dim: meta.dim, metric: meta.metric });
  const dataRssBytes = process.memoryUsage().rss;
  const started = clock();
  index.saveCodes(opts.out);
  return buildStats(started, started, dataRssBytes, opts.out);
}

function hnswSpace(metric) {
  return { euclidean: 'l2', angular: 'cosine' }[metric];
}

function childHnswBuild(opts) {
  const { HierarchicalNSW } = require('hnswlib-node');
  const meta = readMeta(opts.dir);
  const base = readFloat32(path.join(opts.dir, 'base.f32'));
  const dataRssBytes = process.memoryUsage().rss;
  const started = clock();
  const index = new HierarchicalNSW(hnswSpace(meta.metric), meta.dim);
  index.initIndex(meta.rows, opts.hnswM, opts.hnswEfConstruction, opts.seed);
  // hnswlib builds its graph while points are added: all of it counts as build.
  for (let i = 0; i < meta.rows; i++) index.addPoint(Array.from(rowView(base, meta.dim, i)), i);
  index.writeIndexSync(opts.out);
  return buildStats(started, null, dataRssBytes, opts.out);
}

const CHILDREN = {
  'canopy-build': childCanopyBuild,
  'graph-build': childGraphBuild,
  'codes-build': childCodesBuild,
  'hnswlib-build': childHnswBuild,
};

/** Where an engine's index of this data goes: named by everything its build depends on. */
function indexFile(engine, opts, dir) {
  const forest = `t${opts.trees}-s${opts.seed}-b${opts.buildThreads}`;
  return path.join(dir, {
    canopy: `canopy-${forest}.ann`,
    codes: `canopy-${forest}.codes`,
    graph: `canopy-${forest}.graph`,
    annoy: `annoy-${forest}.ann`,
    hnswlib: `hnswlib-M${opts.hnswM}-ef${opts.hnswEfConstruction}-s${opts.seed}.bin`,
  }[engine]);
}

/** The build figures of an index built by an earlier run, or a fresh build (recorded for next time). */
function cachedBuild(engine, opts, dir) {
  const out = indexFile(engine, opts, dir);
  const record = `${out}.build.json`;
  if (existsSync(out) && existsSync(record)) return { ...JSON.parse(readFileSync(record, 'utf8')), cached: true };
  if (engine === 'codes' || engine === 'graph') cachedBuild('canopy', opts, dir);  // the forest they describe
  const stats = buildInChild(engine, opts, dir, out);
  writeFileSync(record, JSON.stringify(stats));
  return stats;
}

function buildInChild(engine, opts, dir, out) {
  if (engine === 'annoy') {
    return runJson('python3', [PEER, 'build', '--dir', dir, '--trees', `${opts.trees}`, '--seed', `${opts.seed}`,
      '--jobs', `${opts.buildThreads}`, '--out', out]);
  }
  const flags = ['--dir', dir, '--out', out, '--forest', indexFile('canopy', opts, dir), '--trees', `${opts.trees}`, '--seed', `${opts.seed}`,
    '--build-threads', `${opts.buildThreads}`, '--hnsw-m', `${opts.hnswM}`,
    '--hnsw-ef-construction', `${opts.hnswEfConstruction}`];
  return runJson(process.execPath, [__filename, '--child', `${engine}-build`, ...flags]);
}

// ---------- query sweeps, one thread each ----------

/**
 * CPU seconds for all queries, taken block by block: each block of BLOCK_QUERIES
 * is timed `repeats` times and its fastest time counts. Other work on this shared
 * machine only ever slows a block down, and short blocks dodge most of it.
 */
function timeLoop(queryCount, repeats, searchOne) {
  for (let q = 0; q < Math.min(WARMUP_QUERIES, queryCount); q++) searchOne(q);
  const found = new Array(queryCount);
  let total = 0;
  for (let from = 0; from < queryCount; from += BLOCK_QUERIES) {
    const to = Math.min(from + BLOCK_QUERIES, queryCount);
    let best = Infinity;
    for (let pass = 0; pass < repeats; pass++) {
      const started = clock();
      for (let q = from; q < to; q++) found[q] = searchOne(q);
      best = Math.min(best, elapsed(started).cpu);
    }
    total += best;
  }
  return { seconds: total, found };
}

// Each sweep returns { points: [{ param, seconds, found }], callFloorSeconds }: the
// floor is one call on a one-item index, the fixed cost of crossing the binding.

// canopy: the forest's exact search; codes: the same forest searched through its sidecar.
function sweepCanopy(opts, meta, dir, file, queries) {
  const { Index } = require('../../dist');
  const views = Array.from({ length: meta.queries }, (_, q) => rowView(queries, meta.dim, q));
  const index = Index.load(indexFile('canopy', opts, dir), { dim: meta.dim, metric: meta.metric });
  if (file.endsWith('.codes')) index.loadCodes(file);
  const points = SEARCH_KS[meta.dataset].map((searchK) => {
    const run = timeLoop(meta.queries, opts.repeats, (q) => index.searchSync(views[q], meta.k, { searchK }).ids);
    return { param: searchK, ...run };
  });
  index.unload();
  const tiny = new Index({ dim: meta.dim, metric: meta.metric });
  tiny.addItem(0, views[0]);
  tiny.buildSync({ nTrees: 1 });
  // The codes' floor is taken through codes of their own (saveCodes attaches them).
  const tinyCodes = path.join(os.tmpdir(), `canopy-bench-floor-${process.pid}.codes`);
  if (file.endsWith('.codes')) tiny.saveCodes(tinyCodes);
  const floor = timeLoop(meta.queries, opts.repeats, (q) => tiny.searchSync(views[q], 1).ids);
  tiny.unload();
  rmSync(tinyCodes, { force: true });
  return { points, callFloorSeconds: floor.seconds / meta.queries };
}

/** Resident bytes of this process's mappings of each file (the pages a workload touched), from smaps. */
function residentOfFiles(files) {
  const resident = Object.fromEntries(files.map((f) => [realpathSync(f), 0])); // smaps names the real path
  let current = null;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const mapping = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s+(.*)$/.exec(line);
    if (mapping) current = mapping[1] in resident ? mapping[1] : null;
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && current) resident[current] += Number(rss[1]) * 1024;
  }
  return resident;
}

// Canopy's forest with its graph (file); the param is ef.
function sweepGraph(opts, meta, dir, file, queries) {
  const { Index } = require('../../dist');
  const views = Array.from({ length: meta.queries }, (_, q) => rowView(queries, meta.dim, q));
  const files = [indexFile('canopy', opts, dir), file];
  const index = Index.load(files[0], { dim: meta.dim, metric: meta.metric });
  index.loadGraph(file);
  const points = GRAPH_EFS.map((ef) => {
    const run = timeLoop(meta.queries, opts.repeats, (q) => index.searchSync(views[q], meta.k, { ef }).ids);
    return { param: ef, ...run };
  });
  const resident = residentOfFiles(files);
  index.unload();
  return {
    points,
    callFloorSeconds: null,
    residentBytes: Object.values(resident).reduce((a, b) => a + b, 0),
    residentParts: resident,
    steadyParts: graphSearchRegions(files[0], file, meta),
  };
}

const PAGE_BYTES = 4096;
const GRAPH_ENTRY_TREES = 10; // kGraphEntryTrees in native/src/graph_search.h

/**
 * What a graph search can ever read, in whole pages: the forest's item rows (exact distances), the
 * nodes of the trees its entry search walks, and the graph file. Over a long run of queries every
 * one of them is read, so this bounds what stays resident, however few pages one sweep touched.
 */
function graphSearchRegions(forestFile, graphFile, meta) {
  const headerBytes = meta.metric === 'angular' ? 12 : 16; // n_descendants, (euclidean: a), children[2]
  const childrenOffset = meta.metric === 'angular' ? 4 : 8;
  const nodeBytes = headerBytes + 4 * meta.dim;
  const maxBucket = (nodeBytes - childrenOffset) / 4;
  const fd = openSync(forestFile, 'r');
  const node = Buffer.alloc(nodeBytes);
  const read = (i) => readSync(fd, node, 0, nodeBytes, i * nodeBytes);
  try {
    const nNodes = statSync(forestFile).size / nodeBytes;
    read(nNodes - 1);
    const nItems = node.readInt32LE(0);
    const roots = [];
    for (let i = nNodes - 1; roots.length < GRAPH_ENTRY_TREES && i >= nItems; i--) {
      read(i);
      if (node.readInt32LE(0) !== nItems) break;
      roots.push(i);
    }
    const pages = new Set();
    const seen = new Set();
    const stack = [...roots];
    while (stack.length > 0) {
      const i = stack.pop();
      if (i < nItems || seen.has(i)) continue; // items are counted with the item rows
      seen.add(i);
      pages.add(Math.floor((i * nodeBytes) / PAGE_BYTES)).add(Math.floor(((i + 1) * nodeBytes - 1) / PAGE_BYTES));
      read(i);
      if (node.readInt32LE(0) > maxBucket) stack.push(node.readInt32LE(childrenOffset), node.readInt32LE(childrenOffset + 4));
    }
    return {
      'item rows': Math.ceil((nItems * nodeBytes) / PAGE_BYTES) * PAGE_BYTES,
      [`first ${roots.length} trees`]: pages.size * PAGE_BYTES,
      graph: statSync(graphFile).size,
    };
  } finally {
    closeSync(fd);
  }
}

function sweepAnnoy(opts, meta, dir, file) {
  const ks = SEARCH_KS[meta.dataset].join(',');
  const result = runJson('python3', [PEER, 'query', '--dir', dir, '--index', file, '--search-k', ks, '--repeats', `${opts.repeats}`]);
  const points = result.sweep.map(({ searchK, seconds }) => {
    const ids = readInt32(path.join(dir, `annoy-${searchK}.i32`));
    const found = Array.from({ length: meta.queries }, (_, q) => ids.subarray(q * meta.k, (q + 1) * meta.k));
    return { param: searchK, seconds, found };
  });
  return { points, callFloorSeconds: result.callFloorSeconds };
}

function sweepHnsw(opts, meta, dir, file, queries) {
  const { HierarchicalNSW } = require('hnswlib-node');
  const index = new HierarchicalNSW(hnswSpace(meta.metric), meta.dim);
  const rssBefore = process.memoryUsage().rss;
  index.readIndexSync(file);
  const residentBytes = process.memoryUsage().rss - rssBefore; // its index lives on the heap, all resident
  const arrays = Array.from({ length: meta.queries }, (_, q) => Array.from(rowView(queries, meta.dim, q)));
  const points = HNSW_EFS.filter((ef) => ef >= meta.k).map((ef) => {
    index.setEf(ef);
    return { param: ef, ...timeLoop(meta.queries, opts.repeats, (q) => index.searchKnn(arrays[q], meta.k).neighbors) };
  });
  const tiny = new HierarchicalNSW(hnswSpace(meta.metric), meta.dim);
  tiny.initIndex(1);
  tiny.addPoint(arrays[0], 0);
  const floor = timeLoop(meta.queries, opts.repeats, (q) => tiny.searchKnn(arrays[q], 1).neighbors);
  return { points, callFloorSeconds: floor.seconds / meta.queries, residentBytes };
}

const SWEEPS = { canopy: sweepCanopy, codes: sweepCanopy, graph: sweepGraph, annoy: sweepAnnoy, hnswlib: sweepHnsw };

/** Two rounds of one engine's sweep: each point and the floor at their fastest; the rest as the later round measured. */
function fastestRound(earlier, later) {
  const points = later.points.map((p, i) => (earlier.points[i].seconds < p.seconds ? earlier.points[i] : p));
  const floor = later.callFloorSeconds === null ? null : Math.min(earlier.callFloorSeconds, later.callFloorSeconds);
  return { ...later, points, callFloorSeconds: floor };
}

// ---------- recall and interpolation ----------

function recallAtK(found, truth, k) {
  let hits = 0;
  found.forEach((ids, q) => {
    const want = new Set(truth.subarray(q * k, (q + 1) * k));
    hits += Array.from(ids).slice(0, k).filter((id) => want.has(id)).length;
  });
  return hits / (k * found.length);
}

/**
 * Queries/s and sweep parameter at a recall level, linear between the last sweep
 * point below the level and the first at or above it. `atLeast` marks a level
 * already passed by the cheapest point (the figure is then a lower bound).
 */
function atRecall(points, level) {
  const i = points.findIndex((p) => p.recall >= level);
  if (i < 0) return null;
  if (i === 0) return { qps: points[0].qps, param: points[0].param, atLeast: true };
  const lo = points[i - 1];
  const hi = points[i];
  const t = (level - lo.recall) / (hi.recall - lo.recall);
  return { qps: lo.qps + t * (hi.qps - lo.qps), param: lo.param + t * (hi.param - lo.param), atLeast: false };
}

// ---------- report ----------

const fmt = (x, digits = 0) => x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const ratio = (a, b) => (a == null || b == null ? 'n/a' : `${fmt(a / b, 2)}x`);
const mb = (bytes) => bytes / 2 ** 20;

// Ratios compare the first engine listed with each other one.
function levelTable(engines, curves) {
  const [lead, ...others] = engines;
  const head = ['recall@k', ...engines.flatMap((e) => [`${e} param`, `${e} q/s`]), ...others.map((e) => `${lead}/${e}`)];
  const rows = RECALL_LEVELS.map((level) => {
    const at = Object.fromEntries(engines.map((e) => [e, atRecall(curves[e], level)]));
    const cells = engines.flatMap((e) => (at[e] ? [`${at[e].atLeast ? '≤' : '~'}${fmt(at[e].param)}`, fmt(at[e].qps)] : ['—', 'not reached']));
    cells.push(...others.map((e) => ratio(at[lead]?.qps, at[e]?.qps)));
    return [fmt(level, 2), ...cells];
  });
  return markdownTable(head, rows);
}

function sweepTable(engine, points, sameAsAnnoy) {
  const head = [{ hnswlib: 'ef', graph: 'ef' }[engine] ?? 'search_k', 'recall@k', 'q/s', 'µs/query'];
  if (sameAsAnnoy) head.push('ids identical to annoy');
  const rows = points.map((p, i) => {
    const cells = [fmt(p.param), fmt(p.recall, 4), fmt(p.qps), fmt(1e6 / p.qps, 1)];
    if (sameAsAnnoy) cells.push(`${fmt(100 * sameAsAnnoy[i], 1)}%`);
    return cells;
  });
  return markdownTable(head, rows);
}

function buildTable(engines, builds) {
  const [lead, ...others] = engines;
  const ratios = others.map((e) => `${lead}/${e}`);
  const line = (label, value) => [
    label,
    ...engines.map((e) => (value(builds[e]) == null ? '—' : fmt(value(builds[e]), 2))),
    ...others.map((e) => ratio(value(builds[lead]), value(builds[e]))),
  ];
  return markdownTable(['build', ...engines, ...ratios], [
    line('add items, CPU s', (b) => b.addCpuSeconds),
    line('build + save, CPU s (hnswlib: add + build + save)', (b) => b.buildCpuSeconds),
    line('build + save, wall s', (b) => b.buildWallSeconds),
    line('peak RSS of the build process, MiB', (b) => mb(b.peakRssBytes)),
    line('peak RSS minus RSS with the data read, MiB', (b) => mb(b.peakRssBytes - b.dataRssBytes)),
    line('index file, MiB (codes: its sidecar, beside canopy\'s forest)', (b) => mb(b.fileBytes)),
  ]);
}

/** The graph's costs against the issue's targets: build against the forest's and hnswlib's, resident memory. */
function graphLines(opts, builds, residents) {
  if (!builds.graph || !builds.canopy) return [];
  const forest = builds.canopy.addCpuSeconds + builds.canopy.buildCpuSeconds;
  const withGraph = forest + builds.graph.buildCpuSeconds;
  const withCodes = withGraph + (builds.codes?.buildCpuSeconds ?? 0);
  const ofHnsw = (cpu) => (builds.hnswlib ? `, ${fmt(cpu / builds.hnswlib.buildCpuSeconds, 2)}x hnswlib's build` : '');
  const lines = [
    '',
    `Graph: building it took ${fmt(builds.graph.buildCpuSeconds, 1)} CPU s over canopy's ${opts.trees}-tree forest ` +
      `(${fmt(forest, 1)} CPU s); forest + graph = ${fmt(withGraph / forest, 2)}x the forest alone${ofHnsw(withGraph)}; ` +
      `with the codes \`canopy build --graph\` also writes by default, ${fmt(withCodes / forest, 2)}x${ofHnsw(withCodes)}. ` +
      `The graph search scores on float rows and walks only the first ${GRAPH_ENTRY_TREES} trees for its entry points; ` +
      'the rest serve the forest\'s own search.',
  ];
  const hnsw = residents.hnswlib;
  const versus = (bytes) => (hnsw != null ? `: ${fmt(bytes / hnsw, 2)}x hnswlib's index (${fmt(mb(hnsw), 1)} MiB, RSS growth on loading it)` : '');
  const list = (parts) => Object.entries(parts).map(([name, b]) => `${name} ${fmt(mb(b), 1)}`).join(', ');
  if (residents.graph != null) {
    const files = Object.fromEntries(Object.entries(residents.graphParts).map(([f, b]) => [path.basename(f), b]));
    lines.push('', `Resident after the sweeps: ${fmt(mb(residents.graph), 1)} MiB of mapped pages (${list(files)})${versus(residents.graph)}.`);
  }
  if (residents.graphSteady != null) {
    const bound = Object.values(residents.graphSteady).reduce((a, b) => a + b, 0);
    lines.push('', `Steady-state bound, every page the graph search can read (${list(residents.graphSteady)}): ` +
      `${fmt(mb(bound), 1)} MiB${versus(bound)}.`);
  }
  return lines;
}

/** The codes' own costs against the issue's budget: sidecar build against forest build, bytes per item. */
function codesLines(meta, builds) {
  if (!builds.codes || !builds.canopy) return [];
  const share = builds.codes.buildCpuSeconds / (builds.canopy.addCpuSeconds + builds.canopy.buildCpuSeconds);
  return [
    '',
    `Codes: building the sidecar took ${fmt(100 * share, 1)}% of the forest's build CPU time; it holds ` +
      `${fmt(builds.codes.fileBytes / meta.rows, 1)} bytes per item (dim ${meta.dim}; budget about dim + dim/8 + 16 = ` +
      `${fmt(meta.dim + meta.dim / 8 + 16)} plus the compact splits). Serving with codes maps the forest and the sidecar.`,
  ];
}

function markdownTable(head, rows) {
  return [head, head.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

function sameIdsFraction(a, b) {
  return a.map((p, i) => p.found.filter((ids, q) => Array.from(ids).join() === Array.from(b[i].found[q]).join()).length / p.found.length);
}

function filesIdentical(a, b) {
  return readFileSync(a).equals(readFileSync(b));
}

function report(opts, meta, engines, { builds, curves, floors, residents }, dir) {
  const canopyVsAnnoy = engines.includes('canopy') && engines.includes('annoy');
  const parts = [
    `# Engine benchmark: ${meta.dataset}`,
    '',
    `${new Date().toISOString()} · ${os.cpus()[0].model}, ${os.cpus().length} cores · node ${process.version} · load average ${os.loadavg()[0].toFixed(1)} at the end`,
    '',
    `Command: \`${['node load-tests/engine/bench.js', ...process.argv.slice(2)].join(' ')}\` (npm run bench:engine)`,
    '',
    `Data: ${fmt(meta.rows)} x ${meta.dim} ${meta.metric}, ${fmt(meta.queries)} queries, recall@${meta.k} against numpy brute force.`,
    `Trees: ${opts.trees} (seed ${opts.seed}, ${opts.buildThreads} build thread(s)); hnswlib M=${opts.hnswM}, efConstruction=${opts.hnswEfConstruction}.`,
    `Queries: one thread, one synchronous call per query, in CPU seconds of the process; each block of ${BLOCK_QUERIES} queries counts its fastest of ${opts.repeats} passes; the engines' sweeps take turns for ${opts.rounds} round(s) and each point counts its fastest.`,
    'Canopy: searchSync on a Float32Array view; annoy: get_nns_by_vector from Python on pre-built lists; hnswlib-node: searchKnn on pre-built Arrays.',
    'param = search_k (Canopy, annoy) or ef (hnswlib) interpolated at the level; ≤ means the cheapest point already passed it.',
    '',
    '## Queries/s at equal recall',
    '',
    levelTable(engines, curves),
    '',
    `Per-call floor (one-item index, same query loop): ${engines.filter((e) => floors[e] != null).map((e) => `${e} ${fmt(floors[e] * 1e6, 1)} µs`).join(', ')}.`,
    '',
    '## Build',
    '',
    buildTable(engines, builds),
    ...codesLines(meta, builds),
    ...graphLines(opts, builds, residents),
    '',
    `Cached builds (figures from the run that built them): ${engines.filter((e) => builds[e].cached).join(', ') || 'none'}.`,
  ];
  if (canopyVsAnnoy) {
    const same = filesIdentical(indexFile('canopy', opts, dir), indexFile('annoy', opts, dir));
    const why = opts.buildThreads > 1 ? 'several build threads interleave node ids, in annoy too' : 'same seed, same trees, one thread';
    parts.push('', `Canopy's file is ${same ? '' : 'NOT '}byte-identical to annoy's (${why}).`);
  }
  for (const e of engines) {
    const same = e === 'canopy' && canopyVsAnnoy ? sameIdsFraction(curves.canopy, curves.annoy) : null;
    parts.push('', `## Sweep: ${e}`, '', sweepTable(e, curves[e], same));
  }
  return `${parts.join('\n')}\n`;
}

// ---------- one dataset ----------

function prepare(opts, dataset) {
  const dir = path.join(CACHE, `${dataset}-q${opts.queries}-k${opts.k}`);
  const metaFile = path.join(dir, 'meta.json');
  // The data depends only on (dataset, queries, k): reuse it across runs.
  if (!existsSync(metaFile) || readMeta(dir).k !== opts.k) {
    mkdirSync(dir, { recursive: true });
    runJson('python3', [PEER, 'prepare', '--dataset', dataset, '--queries', `${opts.queries}`, '--k', `${opts.k}`, '--dir', dir]);
  }
  return { dir, meta: readMeta(dir) };
}

function benchDataset(opts, dataset) {
  const { dir, meta } = prepare(opts, dataset);
  const engines = opts.engines.split(',');
  if (opts.buildOnly === 'yes') {
    for (const engine of engines) cachedBuild(engine, opts, dir);
    return;
  }
  const builds = {};
  const curves = {};
  const floors = {};
  const residents = {};
  const queries = readFloat32(path.join(dir, 'queries.f32'));
  const truth = readInt32(path.join(dir, 'truth.i32'));
  for (const engine of engines) {
    process.stderr.write(`${dataset}: building with ${engine}\n`);
    builds[engine] = cachedBuild(engine, opts, dir);
  }
  const sweeps = {};
  for (let round = 1; round <= opts.rounds; round++) {
    for (const engine of engines) {
      process.stderr.write(`${dataset}: querying ${engine}, round ${round} of ${opts.rounds}\n`);
      const sweep = SWEEPS[engine](opts, meta, dir, indexFile(engine, opts, dir), queries);
      sweeps[engine] = sweeps[engine] ? fastestRound(sweeps[engine], sweep) : sweep;
    }
  }
  for (const engine of engines) {
    const sweep = sweeps[engine];
    floors[engine] = sweep.callFloorSeconds;
    residents[engine] = sweep.residentBytes;
    if (sweep.residentParts) residents[`${engine}Parts`] = sweep.residentParts;
    if (sweep.steadyParts) residents[`${engine}Steady`] = sweep.steadyParts;
    curves[engine] = sweep.points.map((p) => ({
      ...p,
      qps: meta.queries / p.seconds,
      recall: recallAtK(p.found, truth, meta.k),
    }));
  }
  // The graph's build is measured against the forest's; `canopy build --graph` also writes codes by default.
  if (builds.graph && !builds.canopy) builds.canopy = cachedBuild('canopy', opts, dir);
  if (builds.graph && !builds.codes) builds.codes = cachedBuild('codes', opts, dir);
  const text = report(opts, meta, engines, { builds, curves, floors, residents }, dir);
  mkdirSync(REPORTS, { recursive: true });
  // A run led by the graph engine has a report of its own beside the codes' one.
  const name = engines[0] === 'graph' ? `${dataset}-graph` : dataset;
  writeFileSync(path.join(REPORTS, `engine-${name}.md`), text);
  process.stdout.write(`${text}\n`);
}

function main() {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    // A build child: prints its stats as JSON for the parent.
    const opts = parseFlags(argv.slice(2), { ...DEFAULTS, dir: '', out: '', forest: '' });
    process.stdout.write(JSON.stringify(CHILDREN[argv[1]](opts)));
    return;
  }
  const opts = parseFlags(argv, DEFAULTS);
  const datasets = opts.dataset === 'all' ? Object.keys(SEARCH_KS) : [opts.dataset];
  const unknown = [...datasets.filter((d) => !SEARCH_KS[d]), ...opts.engines.split(',').filter((e) => !SWEEPS[e])];
  if (unknown.length > 0) {
    throw new Error(`unknown ${unknown.join(', ')}; datasets: ${Object.keys(SEARCH_KS).join(', ')}, all; engines: ${Object.keys(SWEEPS).join(', ')}`);
  }
  for (const dataset of datasets) benchDataset(opts, dataset);
}

main();
