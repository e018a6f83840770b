'use strict';
// How long a `canopy` command takes from exec to exit: bare `node -e ""` (the
// peer every figure is a ratio to), `canopy --help`, `canopy query --help`,
// and `canopy publish` of a small version folder to a real etcd on loopback.
// All cases run in turn, --runs times, so a busy moment spreads over every
// case; the medians are printed. --before names another checkout's
// bin/canopy.js, measured beside this one under the same load.
//   node load-tests/cli/start-up.js [--runs 10] [--before ../old/bin/canopy.js]
const { execFileSync, spawn, spawnSync } = require('node:child_process');
const { mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const net = require('node:net');
const { tmpdir } = require('node:os');
const path = require('node:path');

const { parseFlags } = require('../flags');
const { machineLine, median } = require('../report');

const DEFAULTS = { runs: 10, canopy: path.resolve(__dirname, '../../bin/canopy.js'), before: '' };
const ETCD_START_TIMEOUT_MS = 10_000;

function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** etcd on loopback ports with its data in `dir`; resolves once it answers /health. */
async function startEtcd(dir) {
  const [client, peer] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const etcd = spawn('etcd', ['--name', 'bench', '--data-dir', path.join(dir, 'etcd'), '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `bench=${peerUrl}`, '--log-level', 'error'], { stdio: 'ignore' });
  const deadline = Date.now() + ETCD_START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await fetch(`${url}/health`).then((r) => r.ok, () => false)) return { url, etcd };
    await new Promise((r) => setTimeout(r, 50));
  }
  etcd.kill('SIGKILL');
  throw new Error('etcd did not start');
}

/** Milliseconds from spawn to exit of `node argv`; throws on a failed run. */
function timeOnce(argv) {
  const started = process.hrtime.bigint();
  const child = spawnSync(process.execPath, argv, { encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (child.status !== 0) throw new Error(`node ${argv.join(' ')} exited ${child.status}: ${child.stderr}`);
  return ms;
}

/** `runs` small version folders (200 items, dim 8), one per publish: a version is published once. */
function buildVersions(canopy, dir, name, runs) {
  const input = path.join(dir, 'vectors.jsonl');
  const rows = Array.from({ length: 200 }, (_, i) => JSON.stringify({ id: `item-${i}`, vector: Array.from({ length: 8 }, (_, j) => Math.sin(i * 8 + j)) }));
  writeFileSync(input, rows.join('\n'));
  return Array.from({ length: runs }, (_, i) => {
    const flags = ['--input', input, '--format', 'jsonl', '--metric', 'euclidean', '--out', path.join(dir, 'out'), '--index', 'bench', '--version', `${name}-${i}`, '--trees', '2'];
    return execFileSync(process.execPath, [canopy, 'build', ...flags], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  });
}

async function main() {
  const opts = parseFlags(process.argv.slice(2), DEFAULTS);
  const builds = [...(opts.before === '' ? [] : [['before', path.resolve(opts.before)]]), ['this', path.resolve(opts.canopy)]];
  const dir = mkdtempSync(path.join(tmpdir(), 'canopy-start-up-'));
  const { url, etcd } = await startEtcd(dir);
  try {
    const cases = [['node -e ""', () => ['-e', '']]];
    for (const [name, canopy] of builds) {
      const versions = buildVersions(builds[builds.length - 1][1], dir, name, opts.runs);
      cases.push(
        [`${name}: canopy --help`, () => [canopy, '--help']],
        [`${name}: canopy query --help`, () => [canopy, 'query', '--help']],
        [`${name}: canopy publish`, (i) => [canopy, 'publish', '--etcd', url, '--manifest', versions[i]]],
      );
    }
    const times = cases.map(() => []);
    for (let i = 0; i < opts.runs; i++) cases.forEach(([, argv], c) => times[c].push(timeOnce(argv(i))));
    const bare = median(times[0]);
    console.log(machineLine(__filename));
    for (const [name, canopy] of builds) console.log(`${name}: ${canopy}`);
    console.log(`median of ${opts.runs} runs, exec to exit:`);
    cases.forEach(([name], c) => console.log(`  ${name.padEnd(28)} ${median(times[c]).toFixed(0).padStart(5)} ms  ${(median(times[c]) / bare).toFixed(1)}x node`));
  } finally {
    etcd.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
