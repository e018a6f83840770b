'use strict';
// `npm run load`: ghz scenarios against a whole local cluster (the one `canopy
// up` starts: etcd, 2 shards x 2 replicas, a router, the MNIST demo index),
// called through server reflection, no proto file. Bounded in time (about
// 90 s with the defaults). Writes load-tests/reports/load-<time>.md and
// load-tests/reports/latest.md; exits 1 when any scenario but saturation had
// a non-OK answer, or the rolling publish did not become active.
//
//   node load-tests/run.js [--saturation-seconds 10] [--steady-seconds 15] [--batch-seconds 10]
//       [--by-item-seconds 10] [--rolling-seconds 25] [--steady-fraction 0.5] [--batch-size 10]
//       [--shards 2] [--replicas 2] [--ghz PATH] [--report-dir load-tests/reports]
//
// Needs dist/ (`npm run prepare`), etcd on PATH (rolling publish), and ghz
// (installed by load-tests/install-ghz.sh when missing).
//
// Scenarios, in order:
//   saturation   Search k=10, no rate limit: 32 streams over 4 connections (sets the steady rate)
//   steady       Search k=10 paced at --steady-fraction of the saturation rate
//   batch        BatchSearch of --batch-size queries, paced at the steady query rate
//   by item      SearchByItem k=10, paced at the steady rate
//   rolling      steady Search while a second version is built, published with `canopy publish`,
//                loaded by every shard node and made active
const { spawn } = require('node:child_process');
const { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { parseFlags } = require('./flags');
const { findGhz, runGhz, waitAnswering } = require('./ghz');
const { machineLine } = require('./report');

const ROOT = path.resolve(__dirname, '..');
const DIST = path.join(ROOT, 'dist');
const CANOPY = path.join(ROOT, 'bin', 'canopy.js');
const K = 10;
const QUERY_COUNT = 100;
const WARMUP_REQUESTS = 300;
const SATURATION_STREAMS = 32;
const SATURATION_CONNECTIONS = 4;
const PACED_STREAMS = 16;
/** A paced call that takes longer than this counts as non-OK. */
const PACED_CALL_TIMEOUT = '5s';
const ROLLING_PUBLISH_AFTER_MS = 3_000;
const ACTIVE_POLL_MS = 200;
/** A paced scenario that reaches less than this share of its rate is called out under the table. */
const KEPT_UP_FRACTION = 0.9;

const DEFAULTS = {
  saturationSeconds: 10,
  steadySeconds: 15,
  batchSeconds: 10,
  byItemSeconds: 10,
  rollingSeconds: 25,
  steadyFraction: 0.5,
  batchSize: 10,
  shards: 2,
  replicas: 2,
  ghz: '',
  reportDir: path.join(ROOT, 'load-tests', 'reports'),
};

/** The query rows: every 100th line of the index's input (the demo input is sorted by digit, so all ten appear). */
function sampleRows(input, count) {
  const lines = readFileSync(input, 'utf8').split('\n').filter((l) => l.trim().length > 0);
  const step = Math.max(1, Math.floor(lines.length / count));
  return Array.from({ length: Math.min(count, lines.length) }, (_, i) => JSON.parse(lines[i * step]));
}

function writeJson(dir, name, value) {
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify(value));
  return file;
}

function runCanopy(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CANOPY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout.trim()) : reject(new Error(`canopy ${args.join(' ')} failed:\n${stderr}`))));
  });
}

/**
 * Builds a second version of the index (another seed, so other trees), publishes it
 * with `canopy publish`, and resolves once the router serves it.
 */
async function rollNewVersion(info, client, timeoutMs) {
  const version = `rolled-${Date.now()}`;
  const startedMs = Date.now();
  const dir = await runCanopy(['build', '--input', info.input, '--format', info.format, '--metric', info.metric,
    '--shards', String(info.shards), '--index', info.index, '--version', version, '--seed', '7', '--threads', '1',
    '--out', path.dirname(info.versionDir)]);
  const builtMs = Date.now();
  await runCanopy(['publish', '--etcd', info.etcdUrl, '--cluster', info.clusterName, '--manifest', dir]);
  const publishedMs = Date.now();
  while ((await client.describeIndex(info.index)).activeVersion !== version) {
    if (Date.now() - publishedMs > timeoutMs) throw new Error(`${version} was published but not active after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, ACTIVE_POLL_MS));
  }
  return { version, buildMs: builtMs - startedMs, activeAfterPublishMs: Date.now() - publishedMs };
}

const fmt = (x, digits = 2) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(digits));
const int = (x) => Math.round(x).toLocaleString('en-US');

function nonOkDetail(result) {
  const codes = Object.entries(result.statusCodes).filter(([code]) => code !== 'OK');
  return codes.length === 0 ? '0' : `${result.nonOk} (${codes.map(([c, n]) => `${c} ${n}`).join(', ')})`;
}

function report({ opts, info, rows, roll, steadyRps }) {
  const lines = [
    '# Load test: a local cluster under ghz',
    '',
    // Other work on the host moves every figure here: say how busy it was.
    `${machineLine(__filename)} · 1-minute load average after: ${os.loadavg()[0].toFixed(2)}`,
    '',
    `Cluster: etcd + ${info.shards} shards x ${info.replicas} replicas + 1 router on this machine (\`LocalCluster\`, as \`canopy up\`).`,
    `Index: ${info.index}, ${int(info.items)} items (the MNIST digits), ${info.metric}. Queries: ${QUERY_COUNT} images sent round-robin as vector_f32 (SearchByItem: their ids), k = ${K}.`,
    `ghz through server reflection. Saturation: ${SATURATION_STREAMS} streams over ${SATURATION_CONNECTIONS} connections, no rate limit;`,
    `the paced scenarios run at ${opts.steadyFraction} x the saturation rate (${int(steadyRps)} calls/s; BatchSearch: that many queries/s in batches of ${opts.batchSize})`,
    `over ${PACED_STREAMS} streams, each call failing after ${PACED_CALL_TIMEOUT}. ghz, etcd, the router and the shard nodes share the same cores.`,
    '',
    '| scenario | call | load | calls | rate (calls/s) | p50 ms | p95 ms | p99 ms | non-OK |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(({ name, call, load, r }) =>
      `| ${name} | ${call} | ${load} | ${int(r.count)} | ${int(r.rps)} | ${fmt(r.p50Ms)} | ${fmt(r.p95Ms)} | ${fmt(r.p99Ms)} | ${nonOkDetail(r)} |`),
    '',
    ...rows.filter(({ r, targetRps }) => targetRps !== undefined && r.rps < KEPT_UP_FRACTION * targetRps).map(({ name, r, targetRps }) =>
      `- ${name}: ${int(r.rps)} of the ${int(targetRps)} calls/s asked for: with ${PACED_STREAMS} streams the cluster could not keep up at this rate`),
    ...rows.flatMap(({ name, r }) =>
      Object.entries(r.errors).slice(0, 3).map(([message, n]) => `- ${name}: ${n} x \`${message.slice(0, 200)}\``)),
  ];
  if (lines[lines.length - 1] !== '') lines.push('');
  if (roll.error) {
    lines.push(`Rolling publish FAILED: ${roll.error}`);
  } else {
    lines.push(`Rolling publish: \`canopy build\` of ${roll.version} took ${fmt(roll.buildMs / 1_000, 1)} s under load; after \`canopy publish\`,`,
      `every shard node loaded it and the router served it as active ${fmt(roll.activeAfterPublishMs / 1_000, 1)} s later, while the steady load ran on.`);
  }
  lines.push('', 'Every scenario but saturation must answer every call OK; saturation may shed load (its non-OK count is reported, not gated).', '');
  return lines.join('\n');
}

async function main() {
  const opts = parseFlags(process.argv.slice(2), DEFAULTS);
  const { LocalCluster } = require(path.join(DIST, 'cluster', 'local-cluster.js'));
  const { etcdOnPath } = require(path.join(DIST, 'cluster', 'local-etcd.js'));
  const { CanopyClient } = require(path.join(DIST, 'client', 'canopy-client.js'));
  if (!etcdOnPath()) throw new Error('npm run load needs the etcd binary on PATH: the rolling publish scenario rolls a version through etcd');
  const bin = findGhz(opts.ghz);
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'canopy-load-'));
  const say = (line) => process.stderr.write(`load: ${line}\n`);
  const cluster = new LocalCluster({
    shards: opts.shards, replicas: opts.replicas, routerPort: 0, useEtcd: true, serveFlags: ['--log-level', 'warn'], say,
  });
  const stopOnSignal = () => void cluster.stop().then(() => process.exit(130));
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  let client;
  try {
    const info = await cluster.start();
    client = new CanopyClient({ target: info.routerAddress });
    const target = info.routerAddress;
    const rows = sampleRows(info.input, QUERY_COUNT);
    const vectorF32 = (row) => Buffer.from(new Float32Array(row.vector).buffer).toString('base64');
    const searchFile = writeJson(dataDir, 'search.json', rows.map((row) => ({ index: info.index, vectorF32: vectorF32(row), k: K })));
    const byItemFile = writeJson(dataDir, 'by-item.json', rows.map((row) => ({ index: info.index, id: row.id, k: K })));
    const batches = [];
    for (let i = 0; i < rows.length; i += opts.batchSize) {
      batches.push({ index: info.index, queries: rows.slice(i, i + opts.batchSize).map((row) => ({ vectorF32: vectorF32(row), k: K })) });
    }
    const batchFile = writeJson(dataDir, 'batch.json', batches);

    await waitAnswering(bin, { target, call: 'Search', dataFile: searchFile });
    await runGhz(bin, { target, call: 'Search', dataFile: searchFile, args: ['-n', String(WARMUP_REQUESTS), '-c', '8'] });
    const results = [];
    const measure = async (name, call, load, dataFile, args, targetRps) => {
      say(`${name}: ${call}, ${load}`);
      const r = await runGhz(bin, { target, call, dataFile, args });
      results.push({ name, call, load, r, targetRps });
      return r;
    };
    // 'wait': calls in flight when the time is up finish and count (ghz otherwise cuts them and reports Unavailable).
    const paced = (rps, seconds) => ['--rps', String(rps), '-c', String(PACED_STREAMS), '-z', `${seconds}s`, '--duration-stop', 'wait', '-t', PACED_CALL_TIMEOUT];

    const saturation = await measure('saturation', 'Search', `unlimited, ${opts.saturationSeconds} s`, searchFile, [
      '-z', `${opts.saturationSeconds}s`, '--duration-stop', 'wait', '-c', String(SATURATION_STREAMS),
      '--connections', String(SATURATION_CONNECTIONS), '-t', '10s',
    ]);
    const steadyRps = Math.max(1, Math.round(saturation.rps * opts.steadyFraction));
    await measure('steady', 'Search', `${int(steadyRps)}/s, ${opts.steadySeconds} s`, searchFile, paced(steadyRps, opts.steadySeconds), steadyRps);
    const batchRps = Math.max(1, Math.round(steadyRps / opts.batchSize));
    await measure('batch', 'BatchSearch', `${int(batchRps)}/s x ${opts.batchSize} queries, ${opts.batchSeconds} s`, batchFile,
      paced(batchRps, opts.batchSeconds), batchRps);
    await measure('by item', 'SearchByItem', `${int(steadyRps)}/s, ${opts.byItemSeconds} s`, byItemFile, paced(steadyRps, opts.byItemSeconds), steadyRps);

    const rollingLoad = measure('rolling publish', 'Search', `${int(steadyRps)}/s, ${opts.rollingSeconds} s, new version published at ${ROLLING_PUBLISH_AFTER_MS / 1_000} s`,
      searchFile, paced(steadyRps, opts.rollingSeconds), steadyRps);
    await new Promise((r) => setTimeout(r, ROLLING_PUBLISH_AFTER_MS));
    const roll = await rollNewVersion(info, client, opts.rollingSeconds * 1_000).catch((err) => ({ error: err.message }));
    await rollingLoad;

    const text = report({ opts, info, rows: results, roll, steadyRps });
    process.stdout.write(text);
    mkdirSync(opts.reportDir, { recursive: true });
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    const file = path.join(opts.reportDir, `load-${stamp}.md`);
    writeFileSync(file, text);
    writeFileSync(path.join(opts.reportDir, 'latest.md'), text);
    say(`report written to ${path.relative(process.cwd(), file)} and latest.md`);
    const failed = results.filter(({ name, r }) => name !== 'saturation' && r.nonOk > 0).map(({ name }) => name);
    if (roll.error) failed.push('rolling publish (no cutover)');
    if (failed.length > 0) {
      say(`FAILED: non-OK answers or no cutover in: ${failed.join(', ')}`);
      process.exitCode = 1;
    }
  } finally {
    client?.close();
    await cluster.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exitCode = 1;
});
