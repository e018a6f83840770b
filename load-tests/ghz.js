'use strict';
// ghz, the gRPC load generator, as the load scripts drive it: found (or
// installed by install-ghz.sh), run over server reflection (no proto file),
// and its JSON report reduced to the figures our reports show.
const { spawn, spawnSync } = require('node:child_process');
const path = require('node:path');

const INSTALL_SCRIPT = path.join(__dirname, 'install-ghz.sh');
const DEFAULT_RUN_TIMEOUT_MS = 300_000;
const ANSWER_POLL_MS = 300;

/** The ghz binary: `explicit` if given (and it runs), else the pinned one install-ghz.sh finds or installs. */
function findGhz(explicit) {
  if (explicit) {
    if (spawnSync(explicit, ['--version']).status !== 0) throw new Error(`--ghz ${explicit} does not run`);
    return explicit;
  }
  const run = spawnSync('bash', [INSTALL_SCRIPT], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (run.status !== 0) throw new Error(`ghz is missing and ${path.relative(process.cwd(), INSTALL_SCRIPT)} could not install it (it needs go)`);
  return run.stdout.trim();
}

/** `command args` confined to the CPU list `cpus` (taskset syntax, e.g. "1-3"); unchanged when `cpus` is empty. */
function onCpus(cpus, command, args) {
  return cpus ? ['taskset', ['--cpu-list', cpus, command, ...args]] : [command, args];
}

/**
 * One ghz run of canopy.v1.Search/<call> against `target` with the messages
 * in `dataFile` (a JSON array, sent round-robin), plus ghz flags in `args`,
 * on the CPUs `cpus` when given.
 * Resolves with the summary; rejects when ghz fails without a report.
 */
function runGhz(bin, { target, call, dataFile, args = [], cpus, timeoutMs = DEFAULT_RUN_TIMEOUT_MS }) {
  const argv = ['--insecure', '--call', `canopy.v1.Search.${call}`, '--data-file', dataFile, '--format', 'json',
    '--skipFirst', '0', ...args, target];
  return new Promise((resolve, reject) => {
    const [command, commandArgs] = onCpus(cpus, bin, argv);
    const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0 && !stdout) return reject(new Error(`ghz ${argv.join(' ')} failed (exit ${code}):\n${stderr}`));
      try {
        resolve(summarize(JSON.parse(stdout)));
      } catch (err) {
        reject(new Error(`ghz printed no JSON report: ${err.message}\n${stderr}`));
      }
    });
  });
}

/** rps, latency percentiles in ms, and how many answers were OK and not. */
function summarize(report) {
  const pct = (p) => {
    const hit = (report.latencyDistribution || []).find((d) => d.percentage === p);
    return hit === undefined ? undefined : hit.latency / 1e6;
  };
  const count = report.count || 0;
  const ok = (report.statusCodeDistribution || {}).OK || 0;
  return {
    rps: report.rps,
    count,
    ok,
    nonOk: count - ok,
    p50Ms: pct(50),
    p95Ms: pct(95),
    p99Ms: pct(99),
    // ghz's percentiles mix refusals in; overload runs need the answered calls' own tail.
    okP99Ms: statusPercentileMs(report.details, 'OK', 99),
    // Refusals at the door cost the server a few tens of µs: their tail is what the client and transport
    // add. Searches a shard dropped after queueing ("this search waited N ms") are refused late: left out.
    refusedAtOnceP99Ms: percentileMs((report.details || []).filter((d) => d.status === 'ResourceExhausted' && !/this search waited/.test(d.error || '')), 99),
    statusCodes: report.statusCodeDistribution || {},
    errors: report.errorDistribution || {},
  };
}

/** The p-th percentile latency (ms) of the calls with `status` in ghz's per-call details; undefined without them. */
function statusPercentileMs(details, status, p) {
  return percentileMs((details || []).filter((d) => d.status === status), p);
}

/** The p-th percentile latency (ms) of these calls of ghz's per-call details; undefined when there are none. */
function percentileMs(calls, p) {
  const ms = calls.map((d) => d.latency / 1e6).sort((a, b) => a - b);
  return ms.length === 0 ? undefined : ms[Math.min(ms.length - 1, Math.floor((p / 100) * ms.length))];
}

/** Resolves once one call answers OK; rejects after `timeoutMs`. */
async function waitAnswering(bin, { target, call, dataFile, timeoutMs = 60_000 }) {
  const endMs = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < endMs) {
    try {
      if ((await runGhz(bin, { target, call, dataFile, args: ['-n', '1', '-c', '1', '-t', '2s'] })).ok === 1) return;
    } catch (err) {
      last = err.message; // not up yet
    }
    await new Promise((r) => setTimeout(r, ANSWER_POLL_MS));
  }
  throw new Error(`${target} did not answer ${call} within ${timeoutMs} ms; last: ${last}`);
}

module.exports = { findGhz, onCpus, runGhz, summarize, waitAnswering };
