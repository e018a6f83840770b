// The `canopy` command as an operator meets it, against real processes: usage
// errors (canopy up's and canopy serve's own checks too) exit 2 with the usage
// and never a gRPC status; a query vector from a file or stdin, a batch from a
// .npy; get-item and describe; CANOPY_TARGET, CANOPY_ETCD and CANOPY_CLUSTER;
// the cluster name `canopy up` and `status` share; an out-of-range port named
// as such; the health service listed by server reflection, as grpcurl asks for
// it; a shard node or router that cannot reach etcd says so, and says when it
// can again.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { healthStatus, SEARCH_HEALTH_SERVICE } from '../../src/cluster/health-probe';
import { LOCAL_CLUSTER_NAME } from '../../src/cluster/local-cluster';
import { ETCD_KEEPALIVE_TIME_MS, ETCD_KEEPALIVE_TIMEOUT_MS } from '../../src/registry/etcd-client';
import { ETCD_WAIT_WARN_MS } from '../../src/registry/etcd-wait-warning';
import { DEFAULT_CLUSTER_NAME } from '../../src/registry/keys';
import type { BatchSearchResponse, IndexInfo, SearchResponse } from '../../src/wire/contract';
import { runCanopy } from '../support/cli';
import { EtcdServer } from '../support/etcd';
import { distinctPorts } from '../support/free-port';
import { writeNpy } from '../support/input-files';
import { row } from '../support/matrix';
import { buildFixture, type Fixture, idOfRow } from '../support/serving/fixture';
import { ProcessGroup, type ServingProcess, waitServing } from '../support/serving/processes';
import { gaussianVectors } from '../support/vectors';

const DIM = 6;
const USAGE_EXIT = 2;

describe('canopy CLI against a static shard and router', () => {
  const group = new ProcessGroup();
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-cli-'));
  let fixture: Fixture;
  let target: string;
  let shardAddress: string;

  beforeAll(async () => {
    fixture = await buildFixture(workDir, gaussianVectors(300, DIM, 9), { metric: 'euclidean', shards: 1, trees: 4, index: 'cli', version: 'v1' });
    const [shardPort, routerPort] = await distinctPorts(2);
    const shard = group.start('shard', `127.0.0.1:${shardPort}`, ['serve', 'shard', '--manifest', fixture.dir, '--shard', '0', '--listen', `127.0.0.1:${shardPort}`, '--log-level', 'warn']);
    await waitServing(shard);
    target = `127.0.0.1:${routerPort}`;
    shardAddress = `127.0.0.1:${shardPort}`;
    await waitServing(group.start('router', target, ['serve', 'router', '--listen', target, '--backend', `0=127.0.0.1:${shardPort}`, '--log-level', 'warn']));
  });

  afterAll(async () => {
    await group.killAll();
    rmSync(workDir, { recursive: true, force: true });
  });

  it('exits 2 with the usage on a bad argument, before calling anything, never with a gRPC status', async () => {
    for (const args of [
      ['query', '--target', target, '--index', 'cli', '--vector', '[]'],
      ['query', '--target', target, '--index', 'cli', '--vector', 'not json'],
      ['query', '--target', target, '--index', 'cli', '--k', '0', '--item', 'x'],
      ['query', '--target', target, '--index', 'cli'],
      ['query', '--target', target, '--index', 'cli', '--vector', `@${path.join(workDir, 'absent.json')}`],
      ['query', '--target', target, '--index', 'cli', '--batch', path.join(workDir, 'absent.npy')],
      ['query', '--index', 'cli', '--item', 'x'],
    ]) {
      const result = await runCanopy(args);
      expect(result.code, args.join(' ')).toBe(USAGE_EXIT);
      expect(result.stderr).toMatch(/^error: /);
      expect(result.stderr).toContain('Usage: canopy query [options]');
      expect(result.stderr).not.toMatch(/INTERNAL|INVALID_ARGUMENT|UNAVAILABLE/);
    }
    // A refusal by the server is not a usage error: exit 1, naming the status.
    const remote = await runCanopy(['query', '--target', target, '--index', 'cli', '--vector', '[1, 2]']);
    expect(remote.code).toBe(1);
    expect(remote.stderr).toMatch(/INVALID_ARGUMENT: .*dimension 2/);
  });

  it('reads the query vector from @FILE and from stdin, and a batch from a .npy, with the answers of --vector', async () => {
    const q = Array.from(row(fixture.base, 17));
    const inline = await runCanopy(['query', '--target', target, '--index', 'cli', '--vector', JSON.stringify(q), '--k', '3']);
    expect(inline.code, inline.stderr).toBe(0);
    const expected = (JSON.parse(inline.stdout) as SearchResponse).neighbors;
    expect(expected[0]).toEqual({ id: idOfRow(17), distance: 0 });

    const file = path.join(workDir, 'q.json');
    writeFileSync(file, JSON.stringify(q));
    const fromFile = await runCanopy(['query', '--target', target, '--index', 'cli', '--vector', `@${file}`, '--k', '3']);
    expect((JSON.parse(fromFile.stdout) as SearchResponse).neighbors).toEqual(expected);
    const fromStdin = await runCanopy(['query', '--target', target, '--index', 'cli', '--vector', '-', '--k', '3'], 60_000, { stdin: JSON.stringify(q) });
    expect((JSON.parse(fromStdin.stdout) as SearchResponse).neighbors).toEqual(expected);

    const npy = path.join(workDir, 'batch.npy');
    writeNpy(npy, { rows: 3, dim: DIM, data: new Float32Array([...row(fixture.base, 17), ...row(fixture.base, 5), ...row(fixture.base, 250)]) });
    const batch = await runCanopy(['query', '--target', target, '--index', 'cli', '--batch', npy, '--k', '1']);
    expect(batch.code, batch.stderr).toBe(0);
    const answers = (JSON.parse(batch.stdout) as BatchSearchResponse).results.map((r) => r.neighbors[0]!.id);
    expect(answers).toEqual([idOfRow(17), idOfRow(5), idOfRow(250)]);
  });

  it('get-item prints the stored vector; describe the index', async () => {
    const item = await runCanopy(['get-item', idOfRow(5), '--target', target, '--index', 'cli']);
    expect(item.code, item.stderr).toBe(0);
    const parsed = JSON.parse(item.stdout) as { id: string; vector: number[]; indexVersion: string };
    expect(parsed.id).toBe(idOfRow(5));
    expect(parsed.vector.map((x) => Math.fround(x))).toEqual(Array.from(row(fixture.base, 5)));
    expect(parsed).not.toHaveProperty('vectorF32');
    const missing = await runCanopy(['get-item', 'nobody', '--target', target, '--index', 'cli']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/NOT_FOUND/);

    const described = await runCanopy(['describe', '--target', target]);
    expect(described.code, described.stderr).toBe(0);
    expect(JSON.parse(described.stdout) as IndexInfo).toMatchObject({ index: 'cli', dim: DIM, activeVersion: 'v1' });
  });

  it('lists grpc.health.v1.Health beside canopy.v1.Search in server reflection, and describes it', async () => {
    const listed = await reflect(target, { listServices: '' });
    expect(listed.listServicesResponse?.service.map((s) => s.name).sort()).toEqual(['canopy.v1.Search', 'grpc.health.v1.Health']);
    const health = await reflect(target, { fileContainingSymbol: 'grpc.health.v1.Health' });
    expect(health.fileDescriptorResponse?.fileDescriptorProto.length).toBeGreaterThan(0);
  });

  it('a static router whose backends do not form a shard set stops at start with one clear message', async () => {
    const [port] = await distinctPorts(1);
    const misnumbered = await runCanopy(['serve', 'router', '--listen', `127.0.0.1:${port}`, '--backend', `0=${shardAddress}`, '--backend', `2=${shardAddress}`]);
    // Seen in the flags alone: a usage error.
    expect(misnumbered.code).toBe(USAGE_EXIT);
    expect(misnumbered.stderr).toContain('--backend names shard(s) 0, 2: shards are numbered 0 to 1, none missing');
    // Seen only by asking the shard nodes: the router fails at start.
    // The shard node serves shard 0 of a one-shard index; calling it shard 1 too cannot work.
    const unfit = await runCanopy(['serve', 'router', '--listen', `127.0.0.1:${port}`, '--backend', `0=${shardAddress}`, '--backend', `1=${shardAddress}`], 30_000);
    expect(unfit.code).toBe(1);
    const lines = unfit.stderr.split('\n').filter((l) => l.includes('cannot serve'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`${shardAddress} is configured as shard 1 but serves shard(s) 0`);
    expect(unfit.stderr).not.toMatch(/\n\s+at /);
  });

  it('takes --target from CANOPY_TARGET, and a flag over the variable', async () => {
    const viaEnv = await runCanopy(['describe'], 60_000, { env: { CANOPY_TARGET: target } });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    const flagWins = await runCanopy(['describe', '--target', target], 60_000, { env: { CANOPY_TARGET: '127.0.0.1:9' } });
    expect(flagWins.code, flagWins.stderr).toBe(0);
  });
});

describe('canopy CLI and etcd', () => {
  let etcd: EtcdServer;

  beforeAll(async () => {
    etcd = await EtcdServer.start();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it('takes --etcd and --cluster from CANOPY_ETCD and CANOPY_CLUSTER, listed in --help', async () => {
    const status = await runCanopy(['status', '--json'], 60_000, { env: { CANOPY_ETCD: etcd.url, CANOPY_CLUSTER: 'envcluster' } });
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ indexes: {} });
    const unreachable = await runCanopy(['status'], 60_000, { env: { CANOPY_ETCD: 'http://127.0.0.1:9' } });
    expect(unreachable.stderr).toMatch(/etcd at http:\/\/127\.0\.0\.1:9 did not answer/);
    const help = await runCanopy(['--help']);
    for (const name of ['CANOPY_ETCD', 'CANOPY_CLUSTER', 'CANOPY_TARGET']) expect(help.stdout).toContain(name);
    expect((await runCanopy(['status', '--help'])).stdout).toMatch(/--cluster <name>.*\(default: "default", env: CANOPY_CLUSTER\)/s);
  });

  it('canopy up uses the cluster name status defaults to', () => {
    expect(LOCAL_CLUSTER_NAME).toBe(DEFAULT_CLUSTER_NAME);
  });
});

describe('shard nodes and routers that cannot reach etcd', () => {
  const group = new ProcessGroup();
  let etcd: EtcdServer;
  /** A warning is due every ETCD_WAIT_WARN_MS; the slack covers process start and etcd3 redialling. */
  const SAY_SO_WITHIN_MS = 3 * ETCD_WAIT_WARN_MS;
  /** A hung etcd shows when a keepalive ping goes unanswered; then the warning is due. */
  const HUNG_ETCD_NOTICED_MS = ETCD_KEEPALIVE_TIME_MS + ETCD_KEEPALIVE_TIMEOUT_MS + SAY_SO_WITHIN_MS;
  beforeAll(async () => {
    etcd = await EtcdServer.start();
  });
  afterAll(async () => {
    await group.killAll();
    await etcd?.stop();
  });

  function logLine(message: string): string {
    return `"etcd":"${etcd.url}","msg":"${message}"`;
  }

  async function stateMetric(metricsPort: number, family: string): Promise<string | undefined> {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    return new RegExp(`^${family}\\{canopy_state="(\\w+)"\\} 1$`, 'm').exec(text)?.[1];
  }

  it('say so within seconds while etcd is down (log, Search health, metric), keep retrying, and say once when it is back', async () => {
    const [shardPort, shardMetrics, routerPort, routerMetrics] = await distinctPorts(4);
    const shardAddress = `127.0.0.1:${shardPort}`;
    const routerAddress = `127.0.0.1:${routerPort}`;
    await etcd.pause();
    const shard = group.start('shard', shardAddress, [
      'serve', 'shard', '--etcd', etcd.url, '--index', 'x', '--shard', '0', '--listen', shardAddress, '--metrics-listen', `127.0.0.1:${shardMetrics}`,
    ]);
    const router = group.start('router', routerAddress, ['serve', 'router', '--etcd', etcd.url, '--listen', routerAddress, '--metrics-listen', `127.0.0.1:${routerMetrics}`]);
    const shardWaiting = logLine('no etcd session: etcd unreachable or refusing; still trying');
    const routerWaiting = logLine('no etcd watch: etcd unreachable or refusing; serving the cluster as last seen; still trying');
    await until('both warn', () => shard.stderrTail.includes(shardWaiting) && router.stderrTail.includes(routerWaiting), SAY_SO_WITHIN_MS);
    for (const [proc, metricsPort, family, state] of [
      [shard, shardMetrics, 'canopy_etcd_session_state', 'unregistered'],
      [router, routerMetrics, 'canopy_etcd_watch_state', 'disconnected'],
    ] as const) {
      expect(proc.exited).toBe(false);
      expect(await healthStatus(proc.address, '')).toBe('SERVING');
      expect(await healthStatus(proc.address, SEARCH_HEALTH_SERVICE)).toBe('NOT_SERVING');
      expect(await stateMetric(metricsPort, family)).toBe(state);
    }

    await etcd.resume();
    await until('both say etcd is back', () => shard.stderrTail.includes(logLine('etcd reached; registered')) && router.stderrTail.includes(logLine('etcd reached; watching the cluster')), SAY_SO_WITHIN_MS);
    expect(await stateMetric(shardMetrics, 'canopy_etcd_session_state')).toBe('registered');
    expect(await stateMetric(routerMetrics, 'canopy_etcd_watch_state')).toBe('watching');

    // etcd goes away under the running router: it says so again, and again once etcd is back.
    const routerBack = logLine('etcd reached; watching the cluster');
    await etcd.pause();
    await until('the router warns again', () => saidLastOf(router, routerWaiting, routerBack), SAY_SO_WITHIN_MS);
    expect(await stateMetric(routerMetrics, 'canopy_etcd_watch_state')).toBe('disconnected');
    await etcd.resume();
    await until('the router says etcd is back again', () => saidLastOf(router, routerBack, routerWaiting), SAY_SO_WITHIN_MS);
    expect(await stateMetric(routerMetrics, 'canopy_etcd_watch_state')).toBe('watching');
    expect(router.exited).toBe(false);
  }, 60_000);
  it('a router notices an etcd that hangs (stopped, its connections open and silent), and when it runs again', async () => {
    const [port, metricsPort] = await distinctPorts(2);
    const address = `127.0.0.1:${port}`;
    const router = group.start('router', address, ['serve', 'router', '--etcd', etcd.url, '--listen', address, '--metrics-listen', `127.0.0.1:${metricsPort}`]);
    await until('the router listens', () => router.stderrTail.includes('"msg":"router listening"'), SAY_SO_WITHIN_MS);
    await until('the router watches', async () => (await stateMetric(metricsPort, 'canopy_etcd_watch_state')) === 'watching', SAY_SO_WITHIN_MS);
    const waiting = logLine('no etcd watch: etcd unreachable or refusing; serving the cluster as last seen; still trying');
    const back = logLine('etcd reached; watching the cluster');
    etcd.freeze();
    try {
      await until('the router warns', () => router.stderrTail.includes(waiting), HUNG_ETCD_NOTICED_MS);
      expect(await stateMetric(metricsPort, 'canopy_etcd_watch_state')).toBe('disconnected');
    } finally {
      etcd.thaw();
    }
    await until('the router says etcd is back', () => saidLastOf(router, back, waiting), SAY_SO_WITHIN_MS);
  }, 60_000);
});

/** Whether `proc` logged `line` since it last logged `other` (and has logged `line` at all). */
function saidLastOf(proc: ServingProcess, line: string, other: string): boolean {
  return proc.stderrTail.lastIndexOf(line) > proc.stderrTail.lastIndexOf(other);
}

/** Polls `test` every 100 ms; throws naming `what` once `timeoutMs` passed without it holding. */
async function until(what: string, test: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const endMs = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > endMs) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('canopy up and canopy serve, checking their own arguments', () => {
  /** Runs `args`, which must fail its own checks: exit 2, `error: <message>` first, then the sub-command's usage, nothing on stdout. */
  async function expectUsageError(args: readonly string[], message: string, usage: string): Promise<void> {
    const result = await runCanopy(args, 60_000, { env: { ETCD_PASSWORD: '' } });
    expect(result.code, args.join(' ')).toBe(USAGE_EXIT);
    const [first] = result.stderr.split('\n');
    expect(first).toMatch(/^error: /);
    expect(first).toContain(message);
    expect(result.stderr).toContain(`Usage: ${usage} [options]`);
    expect(result.stdout).toBe('');
  }

  it('canopy up exits 2 with its usage, before starting anything', async () => {
    const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-cli-up-'));
    try {
      for (const [args, message] of [
        [['--format', 'npy'], '--format applies to --data; without --data the MNIST demo is served'],
        [['--data', path.join(workDir, 'v.npy')], '--data needs --format and --metric'],
        [['--data', path.join(workDir, 'absent.npy'), '--format', 'npy', '--metric', 'angular'], `--data ${path.join(workDir, 'absent.npy')}: no such file`],
        [['--data', workDir, '--format', 'npy', '--metric', 'angular'], `--data ${workDir}: not a file`],
        [['--port', '70000'], '--port must be a port (0..65535), got 70000'],
      ] as const) {
        await expectUsageError(['up', '--port', '0', ...args], message, 'canopy up');
      }
    } finally {
      rmSync(workDir, { recursive: true, force: true });
    }
  });

  it('canopy serve router, shard and controller, status, rollback and publish exit 2 with their usage, before serving or dialling anything', async () => {
    const listen = ['--listen', '127.0.0.1:0'];
    const router = ['serve', 'router', ...listen];
    const deadEtcd = ['--etcd', 'http://127.0.0.1:9'];
    for (const [args, message] of [
      [router, 'give either --backend (static shard nodes) or --etcd (the cluster in etcd)'],
      [[...router, '--backend', '0=127.0.0.1:1', '--workers', '2', '--metrics-listen', '127.0.0.1:0'], '--metrics-listen serves one process\'s metrics'],
      [[...router, '--backend', '0=127.0.0.1:1', '--tls-cert', 'cert.pem'], '--tls-cert and --tls-key go together'],
      [['serve', 'router', '--listen', '127.0.0.1:7000', '--health-listen', '127.0.0.1:7000', '--backend', '0=127.0.0.1:1'], '--health-listen 127.0.0.1:7000 must differ from --listen'],
      [[...router, ...deadEtcd, '--etcd-user', 'bob'], '--etcd-user bob needs the password in $ETCD_PASSWORD'],
      [[...router, '--backend', '0=127.0.0.1:1', '--default-deadline-ms', '5000', '--max-deadline-ms', '100'], 'the default deadline (5000 ms) exceeds the max deadline (100 ms)'],
      [[...router, '--backend', '0=127.0.0.1:1', '--tls-cert', 'absent-cert.pem', '--tls-key', 'absent-key.pem'], '--tls-cert absent-cert.pem: no such file'],
    ] as const) {
      await expectUsageError(args, message, 'canopy serve router');
    }
    await expectUsageError(['serve', 'shard', ...deadEtcd, '--shard', '0', ...listen], '--index is required with --etcd', 'canopy serve shard');
    await expectUsageError(['serve', 'shard', '--manifest', 'x', '--shard', '0', ...listen, '--log-level', 'loud'], '--log-level (or CANOPY_LOG_LEVEL) must be one of', 'canopy serve shard');
    await expectUsageError(['serve', 'shard', ...deadEtcd, '--index', 'x', '--shard', '0', ...listen, '--etcd-tls-ca', 'absent-ca.pem'], '--etcd-tls-ca absent-ca.pem: no such file', 'canopy serve shard');
    await expectUsageError(['query', '--target', '127.0.0.1:9', '--index', 'x', '--item', 'y', '--tls-ca', 'absent-ca.pem'], '--tls-ca absent-ca.pem: no such file', 'canopy query');
    await expectUsageError(['serve', 'controller', ...deadEtcd, '--log-level', 'loud'], '--log-level (or CANOPY_LOG_LEVEL) must be one of', 'canopy serve controller');
    for (const [command, usage] of [
      [['serve', 'controller'], 'canopy serve controller'],
      [['status'], 'canopy status'],
      [['rollback', '--index', 'x'], 'canopy rollback'],
      [['publish', '--manifest', 'x'], 'canopy publish'],
    ] as const) {
      await expectUsageError([...command, ...deadEtcd, '--etcd-user', 'bob'], '--etcd-user bob needs the password in $ETCD_PASSWORD', usage);
    }
  });
});

describe('canopy CLI listen addresses', () => {
  it('binds the port before loading the index: a taken port fails before any load', async () => {
    const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-cli-port-'));
    const taken = net.createServer();
    try {
      const fixture = await buildFixture(workDir, gaussianVectors(200, DIM, 3), { metric: 'angular', shards: 1, trees: 2, index: 'ports', version: 'v1' });
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
      const address = `127.0.0.1:${(taken.address() as net.AddressInfo).port}`;
      const result = await runCanopy(['serve', 'shard', '--manifest', fixture.dir, '--shard', '0', '--listen', address]);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain(`cannot listen on ${address}`);
      expect(result.stderr).not.toContain('version loaded');
    } finally {
      taken.close();
      rmSync(workDir, { recursive: true, force: true });
    }
  });

  it('says a port is out of range instead of asking for HOST:PORT, as a usage error', async () => {
    const router = ['serve', 'router', '--backend', '0=127.0.0.1:1'];
    for (const [args, flag, value] of [
      [[...router, '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:92100'], '--metrics-listen', '127.0.0.1:92100'],
      [[...router, '--listen', '127.0.0.1:99999'], '--listen', '127.0.0.1:99999'],
      [[...router, '--listen', '127.0.0.1:0', '--health-listen', '[::1]:70000'], '--health-listen', '[::1]:70000'],
      [['serve', 'shard', '--manifest', 'x', '--shard', '0', '--listen', 'fd00::7:65536'], '--listen', 'fd00::7:65536'],
    ] as const) {
      const result = await runCanopy(args);
      expect(result.code, args.join(' ')).toBe(USAGE_EXIT);
      const port = value.slice(value.lastIndexOf(':') + 1);
      expect(result.stderr).toContain(`${flag} "${value}": port ${port} is out of range (0-65535)`);
      expect(result.stderr).not.toContain('must look like HOST:PORT');
      expect(result.stderr).toContain(`Usage: canopy serve ${args[1]} [options]`);
    }
    const noPort = await runCanopy([...router, '--listen', '127.0.0.1']);
    expect(noPort.code).toBe(USAGE_EXIT);
    expect(noPort.stderr).toContain('--listen "127.0.0.1" must look like HOST:PORT');
  });
});

interface ReflectionReply {
  readonly listServicesResponse?: { readonly service: readonly { readonly name: string }[] };
  readonly fileDescriptorResponse?: { readonly fileDescriptorProto: readonly Buffer[] };
}

/** One grpc.reflection.v1 request, over the reflection proto @grpc/reflection ships, as grpcurl would send it. */
async function reflect(address: string, request: Record<string, string>): Promise<ReflectionReply> {
  const protoFile = path.join(path.dirname(require.resolve('@grpc/reflection/package.json')), 'build/proto/grpc/reflection/v1/reflection.proto');
  const loaded = grpc.loadPackageDefinition(protoLoader.loadSync(protoFile, { keepCase: false, oneofs: true }));
  const Reflection = (loaded.grpc as grpc.GrpcObject & { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } }).reflection.v1.ServerReflection;
  const client = new Reflection(address, grpc.credentials.createInsecure());
  try {
    return await new Promise<ReflectionReply>((resolve, reject) => {
      const call = (client as unknown as { serverReflectionInfo(): grpc.ClientDuplexStream<unknown, ReflectionReply> }).serverReflectionInfo();
      call.once('data', (reply: ReflectionReply) => {
        resolve(reply);
        call.end();
      });
      call.once('error', reject);
      call.write(request);
    });
  } finally {
    client.close();
  }
}
