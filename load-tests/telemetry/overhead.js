'use strict';
// What telemetry costs a shard node: its saturated throughput with telemetry
// off, with metrics on (Prometheus endpoint), with metrics and tracing on at
// 100% sampling, and with metrics and tracing at a 1% parent-based ratio
// sampler; traces go over OTLP (http/protobuf) to a sink in this script that
// accepts and discards them. All four nodes serve the same index version, are
// started side by side and measured in interleaved rounds; the table shows
// medians, and the ratios against "off" are the figures to read.
//
//   node load-tests/telemetry/overhead.js [--items 30000] [--dim 32] [--trees 10] [--seconds 3] [--rounds 5]
//       [--concurrency 32] [--connections 4] [--ratio 0.01] [--ghz PATH] [--report load-tests/telemetry/overhead.md]
//
// Needs dist/ (`npm run prepare`); ghz is installed when missing (load-tests/install-ghz.sh).
const { mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const { buildSeededVersion, freePort, seededFloats } = require('../fixtures');
const { CanopyProcesses, runScript } = require('../canopy-processes');
const { findGhz, runGhz, waitAnswering } = require('../ghz');
const { machineLine, median, writeReport } = require('../report');
const { parseFlags } = require('../flags');

const ROOT = path.resolve(__dirname, '..', '..');
const K = 10;
const QUERY_COUNT = 100;
const WARMUP_REQUESTS = 500;

const DEFAULTS = {
  items: 30000,
  dim: 32,
  trees: 10,
  seconds: 3,
  rounds: 5,
  concurrency: 32,
  connections: 4,
  ratio: 0.01,
  ghz: '',
  report: path.join(__dirname, 'overhead.md'),
};

/** Seeded uniform floats in [-1, 1): the same index and queries on every run. */
/** An OTLP/HTTP endpoint that reads each export, answers 200 and forgets it; counts requests and bytes. */
function startTraceSink() {
  const seen = { requests: 0, bytes: 0 };
  const server = http.createServer((request, response) => {
    request.on('data', (chunk) => (seen.bytes += chunk.length));
    request.on('end', () => {
      seen.requests++;
      response.writeHead(200, { 'content-type': 'application/x-protobuf' });
      response.end();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: server.address().port, seen })));
}

const processes = new CanopyProcesses();
const CLOCK_TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
function cpuSeconds(pid) {
  // Fields after the parenthesised command name; utime and stime are the 12th and 13th of them.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

function startShard(dir, address, extraArgs, env) {
  // No inherited OTEL_* variables: each node gets exactly the telemetry its row names.
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('OTEL_')));
  return processes.start(['serve', 'shard', '--manifest', dir, '--shard', '0', '--listen', address, ...extraArgs], { env: { ...base, ...env } });
}

const killAll = () => processes.killAll();

const MICRO_CALLS = 20000;
const MICRO_YIELD_EVERY = 32;

/**
 * The telemetry work of one served shard query, timed alone in this process:
 * the served call (server span, duration, in-flight) and the engine span, as
 * search-server.ts and loaded-version.ts make them, with the export of every
 * recorded span (flushed inside the timing). CPU µs per call, median of 3.
 */
async function perCallMicros(env) {
  const grpc = require(path.join(ROOT, 'node_modules', '@grpc', 'grpc-js'));
  const { startTelemetry } = require(path.join(ROOT, 'dist', 'telemetry', 'telemetry.js'));
  const { startServedCall } = require(path.join(ROOT, 'dist', 'telemetry', 'served-call.js'));
  const { endSpan, mayRecordUnder, startChildSpan } = require(path.join(ROOT, 'dist', 'telemetry', 'spans.js'));
  const saved = { ...process.env };
  Object.assign(process.env, env.vars);
  const telemetry = await startTelemetry({ serviceName: 'overhead-micro', ...(env.metrics ? { metricsListen: '127.0.0.1:0' } : {}) });
  const samples = [];
  try {
    for (let rep = 0; rep < 3; rep++) {
      const before = process.cpuUsage();
      for (let i = 0; i < MICRO_CALLS; i++) {
        const served = startServedCall('canopy.v1.Search', 'Search', new grpc.Metadata(), 1);
        const parent = served?.parent;
        const span = mayRecordUnder(parent)
          ? startChildSpan('engine.search', { 'canopy.index': 'bench', 'canopy.index.version': 'v1', 'canopy.shard': 0, 'canopy.k': 10, 'canopy.search_k': 100, 'canopy.batch_queries': 1 }, parent)
          : undefined;
        span?.setAttribute('canopy.items_returned', 10);
        endSpan(span);
        served?.end();
        // Let the span processor export as it goes, as a serving node's event loop does.
        if (i % MICRO_YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      await telemetry.forceFlush();
      const used = process.cpuUsage(before);
      samples.push((used.user + used.system) / MICRO_CALLS);
    }
  } finally {
    await telemetry.shutdown().catch(() => undefined);
    process.env = saved;
  }
  return median(samples);
}

const fmt = (x, digits = 2) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(digits));
const int = (x) => Math.round(x).toLocaleString('en-US');

async function main() {
  const opts = parseFlags(process.argv.slice(2), DEFAULTS);
  const bin = findGhz(opts.ghz);
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'canopy-telemetry-overhead-'));
  const sink = await startTraceSink();
  try {
    const dir = await buildSeededVersion(workDir, { items: opts.items, dim: opts.dim, trees: opts.trees, index: 'bench' });
    const queries = seededFloats(QUERY_COUNT * opts.dim, 2);
    const dataFile = path.join(workDir, 'queries.json');
    writeFileSync(dataFile, JSON.stringify(Array.from({ length: QUERY_COUNT }, (_, q) => ({
      index: 'bench',
      vectorF32: Buffer.from(queries.buffer, q * opts.dim * 4, opts.dim * 4).toString('base64'),
      k: K,
    }))));

    const otlp = {
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${sink.port}/v1/traces`,
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
    };
    const scenarios = [
      { name: 'telemetry off', env: {} },
      { name: 'metrics on (--metrics-listen)', metrics: true, env: {} },
      { name: 'metrics + tracing, 100% sampled', metrics: true, env: { ...otlp, OTEL_TRACES_SAMPLER: 'parentbased_always_on' } },
      {
        name: `metrics + tracing, parentbased_traceidratio ${opts.ratio}`,
        metrics: true,
        env: { ...otlp, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: String(opts.ratio) },
      },
    ];
    for (const sc of scenarios) {
      sc.target = `127.0.0.1:${await freePort()}`;
      sc.metricsPort = sc.metrics ? await freePort() : undefined;
      sc.pid = startShard(dir, sc.target, sc.metrics ? ['--metrics-listen', `127.0.0.1:${sc.metricsPort}`] : [], sc.env).pid;
    }
    for (const sc of scenarios) await waitAnswering(bin, { target: sc.target, call: 'Search', dataFile });
    for (const sc of scenarios) await runGhz(bin, { target: sc.target, call: 'Search', dataFile, args: ['-n', String(WARMUP_REQUESTS), '-c', '8'] });

    const runs = scenarios.map(() => []);
    for (let round = 0; round < opts.rounds; round++) {
      // Each round starts with another node, so none always follows the 100%-traced one
      // (whose exporter may still be busy for a moment after its run).
      for (let j = 0; j < scenarios.length; j++) {
        const i = (j + round) % scenarios.length;
        const sc = scenarios[i];
        const cpuBefore = cpuSeconds(sc.pid);
        const run = await runGhz(bin, {
          target: sc.target,
          call: 'Search',
          dataFile,
          args: ['-z', `${opts.seconds}s`, '--duration-stop', 'wait', '-c', String(opts.concurrency), '--connections', String(opts.connections), '-t', '10s'],
        });
        runs[i].push({ ...run, cpuUsPerQuery: ((cpuSeconds(sc.pid) - cpuBefore) / run.count) * 1e6 });
      }
    }
    // A scrape shows the metrics endpoint did its work during the runs.
    const scraped = await fetch(`http://127.0.0.1:${scenarios[1].metricsPort}/metrics`).then((r) => r.text());
    const served = /canopy_rpc_server_duration_seconds_count\{[^}]*rpc_method="Search"[^}]*\} (\d+)/.exec(scraped)?.[1];
    killAll();
    const micro = [];
    for (const sc of scenarios) micro.push(await perCallMicros({ metrics: sc.metrics, vars: sc.env }));

    // Ratios are taken within each round (against that round's "off" run, a few seconds
    // apart) and their median reported: drifts in the machine's load cancel out.
    const results = runs.map((list) => ({
      rps: median(list.map((r) => r.rps)),
      rpsRatio: median(list.map((r, round) => r.rps / runs[0][round].rps)),
      p50Ms: median(list.map((r) => r.p50Ms)),
      p99Ms: median(list.map((r) => r.p99Ms)),
      cpuUsPerQuery: median(list.map((r) => r.cpuUsPerQuery)),
      cpuRatio: median(list.map((r, round) => r.cpuUsPerQuery / runs[0][round].cpuUsPerQuery)),
      errors: list.reduce((n, r) => n + r.nonOk, 0),
    }));
    const rows = [
      '| shard node | saturated q/s | vs off | node CPU µs/query | vs off | p50 ms | p99 ms | errors | telemetry alone, µs/query | of off node CPU/query |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...scenarios.map((sc, i) => {
        const r = results[i];
        const cpu = `${int(r.cpuUsPerQuery)} | ${fmt(r.cpuRatio, 3)}`;
        const added = micro[i] - micro[0];
        const alone = i === 0 ? '0 | -' : `${fmt(added)} | ${fmt((added / results[0].cpuUsPerQuery) * 100, 1)}%`;
        return `| ${sc.name} | ${int(r.rps)} | ${fmt(r.rpsRatio, 3)} | ${cpu} | ${fmt(r.p50Ms)} | ${fmt(r.p99Ms)} | ${r.errors} | ${alone} |`;
      }),
    ];
    const cost = (i) => `${fmt((1 - results[i].rpsRatio) * 100, 1)}% of saturated throughput, ${fmt((results[i].cpuRatio - 1) * 100, 1)}% more node CPU per query`;
    const report = [
      '# Telemetry overhead on a shard node',
      '',
      machineLine(__filename),
      '',
      `Index: ${int(opts.items)} x ${opts.dim} euclidean, ${opts.trees} trees, one shard; k = ${K}, search_k default (${opts.trees * K}).`,
      `Load: ghz over server reflection straight to the shard node (canopy.v1.Search/Search), ${QUERY_COUNT} query vectors`,
      `round-robin, ${opts.concurrency} streams over ${opts.connections} connections for ${opts.seconds} s, ${opts.rounds} interleaved rounds.`,
      'Figures are medians over the rounds; "vs off" is the median of the per-round ratios to that round\'s "off" run.',
      'Traces go over OTLP http/protobuf to a sink in the script that reads and drops them',
      `(${int(sink.seen.requests)} exports, ${int(sink.seen.bytes / 1024)} KiB received); the metrics node served ${served ?? '?'} Search calls by its own count.`,
      'ghz, the four nodes and the sink share the same cores: read the ratios, not the absolute figures. "Node CPU µs/query"',
      "is the shard node process's own CPU time (all its threads, from /proc) over the queries it answered in the run:",
      'steadier than q/s when other work shares the machine. "Telemetry alone" times, in this script\'s process after the',
      `runs, only the telemetry calls one served query makes (served call, engine span, export of what is sampled; ${int(MICRO_CALLS)} calls,`,
      'median of 3), as CPU µs added to the same loop with telemetry off, and sets them against the "off" node\'s CPU per query.',
      '',
      ...rows,
      '',
      `- Metrics on: **${cost(1)}**`,
      `- Metrics and tracing, every request sampled: **${cost(2)}**`,
      `- Metrics and tracing, ${opts.ratio * 100}% of requests sampled (parent-based ratio): **${cost(3)}**`,
      '',
    ].join('\n');
    writeReport(opts.report, report);
  } finally {
    killAll();
    sink.server.close();
    rmSync(workDir, { recursive: true, force: true });
  }
}

runScript(main, processes);
