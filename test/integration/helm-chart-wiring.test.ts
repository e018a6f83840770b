// The chart's wiring, run for real: render it (external etcd = a real local
// etcd, metrics on), take the shard StatefulSets' and the router Deployment's
// container command, args and env as rendered, stand in for the kubelet
// (POD_NAME, POD_IP = 127.0.0.1, container ports -> free loopback ports, the
// index volume -> a local folder holding a real built version, `canopy` ->
// bin/canopy.js), run them as local processes, wait on the probes' own health
// services at the probes' own ports, publish the way NOTES.txt says, and query
// the router. Then again with tls.enabled and client certificates (the TLS
// secret -> a folder of certificates from a throwaway CA), where the probes
// ask the plaintext --health-listen port. A flag the chart passes that the CLI
// refuses makes a process exit, and this test fail.
// Tools: `bash helm/check-tools.sh`; without them this file fails, it never skips.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CanopyClient } from '../../src/client/canopy-client';
import type { CanopyError } from '../../src/wire/canopy-error';
import type { TlsFiles } from '../../src/wire/tls';
import { healthStatus } from '../../src/cluster/health-probe';
import { bruteForceTopK } from '../support/brute-force';
import { CANOPY_BIN, runCanopy } from '../support/cli';
import { EtcdServer } from '../support/etcd';
import { freePort } from '../support/free-port';
import { findHelm, renderChart } from '../support/helm/chart';
import { type Container, type EnvVar, flagValue, named, ofKind, type Workload } from '../support/helm/manifests';
import { row } from '../support/matrix';
import { buildFixture, type Fixture, idOfRow } from '../support/serving/fixture';
import { ServingProcess, waitServing } from '../support/serving/processes';
import { TestCa } from '../support/test-certs';
import { gaussianVectors } from '../support/vectors';

const FULLNAME = 'rel-canopy';
const INDEX = 'wiring';
const CLUSTER = 'wired';
const SHARDS = 2;
const REPLICAS = 2;
const POD_IP = '127.0.0.1';
const EXHAUSTIVE_SEARCH_K = 1_000_000;

/** One container as the kubelet would run it here: argv and environment resolved. */
interface LocalPod {
  readonly name: string;
  readonly args: string[];
  readonly env: Record<string, string>;
  /** The gRPC address clients use (container port grpc). */
  readonly address: string;
  /** The address the probes ask (their own port: grpc, or health with TLS). */
  readonly probeAddress: string;
  readonly metricsAddress: string;
  readonly container: Container;
}

/** Kubernetes expands $(VAR) in args from the container's env; unknown references stay as written. */
function expand(arg: string, env: Record<string, string>): string {
  return arg.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => env[name] ?? whole);
}

function envOf(container: Container, podName: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const variable of container.env ?? []) env[variable.name] = valueOf(variable, podName);
  return env;
}

function valueOf(variable: EnvVar, podName: string): string {
  if (variable.value !== undefined) return variable.value;
  const field = variable.valueFrom?.fieldRef?.fieldPath;
  if (field === 'metadata.name') return podName;
  if (field === 'status.podIP') return POD_IP;
  throw new Error(`env ${variable.name}: this test cannot stand in for ${JSON.stringify(variable.valueFrom)}`);
}

/**
 * The container's args with every container port (grpc, health, metrics) on a
 * free loopback port instead, and files under a mounted secret read from the
 * local folder standing in for it (`mounts`: mountPath -> folder).
 */
async function localPod(name: string, container: Container, mounts: ReadonlyMap<string, string> = new Map()): Promise<LocalPod> {
  // No command: the image's entrypoint (tini, then canopy) runs the args.
  expect(container.command).toBeUndefined();
  const env = envOf(container, name);
  const ports = new Map<number, number>();
  for (const port of container.ports ?? []) ports.set(port.containerPort, await freePort());
  const portOf = (portName: string): number => {
    const declared = container.ports?.find((p) => p.name === portName)?.containerPort;
    if (declared === undefined) throw new Error(`${name}: no container port named ${portName}`);
    return ports.get(declared)!;
  };
  const args = (container.args ?? []).map((raw) =>
    expand(raw, env).replace(/(=|^)(0\.0\.0\.0|127\.0\.0\.1):(\d+)$/, (_whole, lead: string, _host: string, port: string) => {
      const local = ports.get(Number(port));
      if (local === undefined) throw new Error(`${name}: ${raw} names port ${port}, which the container does not declare`);
      return `${lead}${POD_IP}:${local}`;
    }),
  ).map((arg) => [...mounts].reduce((at, [mountPath, dir]) => at.replace(`=${mountPath}/`, `=${dir}/`), arg));
  const probePort = container.livenessProbe?.grpc?.port;
  if (probePort === undefined || !ports.has(probePort)) throw new Error(`${name}: the liveness probe asks port ${probePort}, which the container does not declare`);
  return {
    name,
    args,
    env,
    address: `${POD_IP}:${portOf('grpc')}`,
    probeAddress: `${POD_IP}:${ports.get(probePort)}`,
    metricsAddress: `${POD_IP}:${portOf('metrics')}`,
    container,
  };
}

function probeService(container: Container, probe: 'startupProbe' | 'readinessProbe' | 'livenessProbe'): string {
  const action = container[probe]?.grpc;
  if (action === undefined) throw new Error(`${container.name}: ${probe} is not a gRPC probe`);
  return action.service ?? ''; // the kubelet asks for '' (the whole server) when the probe names no service
}

/**
 * Runs the pod's container: `canopy` is bin/canopy.js, the environment is the
 * kubelet's on top of ours (PATH...). The process's address is the probes'
 * (every probe of a container asks the same port), so waitServing asks there.
 */
function run(pod: LocalPod): ServingProcess {
  for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe'] as const) {
    const port = pod.container[probe]?.grpc?.port;
    if (port !== undefined) expect(port, `${pod.name}: ${probe}`).toBe(pod.container.livenessProbe?.grpc?.port);
  }
  const child = spawn(process.execPath, [CANOPY_BIN, ...pod.args], { env: { ...process.env, ...pod.env }, stdio: ['ignore', 'ignore', 'pipe'] });
  return new ServingProcess(pod.name, pod.probeAddress, child);
}

/** `--set` values that point the chart at this machine: a hostPath index folder, an outside etcd, one router. */
function localChartValues(volumeDir: string, etcdUrl: string, shards: number, replicas: number): string[] {
  return [
    `cluster.name=${CLUSTER}`,
    `index.name=${INDEX}`,
    `index.shards=${shards}`,
    `index.replicasPerShard=${replicas}`,
    'indexVolume.type=hostPath',
    `indexVolume.hostPath.path=${volumeDir}`,
    'etcd.bundled.enabled=false',
    `etcd.endpoints={${etcdUrl}}`,
    'metrics.enabled=true',
    'router.autoscaling.enabled=false',
    'router.replicas=1',
  ];
}

describe('the chart, run as local processes', () => {
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-chart-wiring-'));
  /** Stands in for the index volume: version folders live here. */
  const volumeDir = path.join(workDir, 'versions');
  let etcd: EtcdServer;
  let fixture: Fixture;
  let shardWorkloads: Workload[];
  let routerWorkload: Workload;
  let mountPath: string;
  const pods: { pod: LocalPod; proc: ServingProcess }[] = [];

  beforeAll(async () => {
    const helm = findHelm();
    etcd = await EtcdServer.start();
    fixture = await buildFixture(workDir, gaussianVectors(600, 8, 5), { metric: 'euclidean', shards: SHARDS, trees: 4, index: INDEX, version: 'w1' });
    const { manifests, problems } = renderChart(helm, {
      set: [
        ...localChartValues(volumeDir, etcd.url, SHARDS, REPLICAS),
        // Limit flags through extraArgs: the CLI must accept them as the chart passes them.
        'shard.extraArgs={--max-queued-searches=64,--max-search-k=2000000,--max-concurrent-streams=500}',
        'router.extraArgs={--max-deadline-ms=20000,--max-k=500,--max-message-bytes=8388608}',
      ],
    });
    expect(problems).toEqual([]);
    shardWorkloads = ofKind(manifests, 'StatefulSet', 'shard');
    routerWorkload = named(manifests, 'Deployment', `${FULLNAME}-router`);
    const shardContainer = shardWorkloads[0]!.spec.template.spec.containers.find((c) => c.name === 'shard')!;
    mountPath = shardContainer.volumeMounts!.find((m) => m.name === 'index')!.mountPath;
  }, 120_000);

  afterAll(async () => {
    await Promise.all(pods.map(({ proc }) => proc.kill()));
    await etcd?.stop();
    rmSync(workDir, { recursive: true, force: true });
  });

  it('renders one StatefulSet per shard and a router pointed at the external etcd', () => {
    expect(shardWorkloads.map((w) => [w.metadata.name, w.spec.replicas])).toEqual([
      [`${FULLNAME}-shard-0`, REPLICAS],
      [`${FULLNAME}-shard-1`, REPLICAS],
    ]);
    const routerArgs = routerWorkload.spec.template.spec.containers[0]!.args!;
    expect(flagValue(routerArgs, '--etcd')).toBe(etcd.url);
    expect(flagValue(routerArgs, '--cluster')).toBe(CLUSTER);
  });

  it('starts every shard pod and the router from their rendered command, args and env; each passes its probes', async () => {
    for (const workload of shardWorkloads) {
      const container = workload.spec.template.spec.containers.find((c) => c.name === 'shard')!;
      for (let ordinal = 0; ordinal < workload.spec.replicas!; ordinal++) {
        const pod = await localPod(`${workload.metadata.name}-${ordinal}`, container);
        pods.push({ pod, proc: run(pod) });
      }
    }
    // Shard nodes are up (startup and liveness probes) before any version is published...
    for (const { pod, proc } of pods) {
      await waitServing(proc, 30_000, probeService(pod.container, 'startupProbe'));
      await waitServing(proc, 30_000, probeService(pod.container, 'livenessProbe'));
    }
    const routerContainer = routerWorkload.spec.template.spec.containers.find((c) => c.name === 'router')!;
    const router = await localPod(`${FULLNAME}-router-0`, routerContainer);
    pods.push({ pod: router, proc: run(router) });
    await waitServing(pods.at(-1)!.proc, 30_000, probeService(routerContainer, 'livenessProbe'));

    // ...and ready once it is active: publish as NOTES.txt says, with the volume's path as the pods see it.
    const manifestAsPodsSeeIt = path.posix.join(mountPath, fixture.version);
    expect(manifestAsPodsSeeIt).toBe(`${mountPath}/w1`);
    const published = await runCanopy([
      'publish',
      '--etcd', flagValue(routerContainer.args!, '--etcd')!,
      '--cluster', flagValue(routerContainer.args!, '--cluster')!,
      '--manifest', manifestAsPodsSeeIt.replace(mountPath, volumeDir),
    ]);
    expect(published.stderr).toBe('');
    expect(published.code).toBe(0);
    for (const { pod, proc } of pods) await waitServing(proc, 30_000, probeService(pod.container, 'readinessProbe'));
    expect(pods.filter(({ proc }) => proc.exited).map(({ pod }) => pod.name)).toEqual([]);
  }, 120_000);

  it('answers through the router with every shard, exactly', async () => {
    const router = pods.at(-1)!.pod;
    const client = new CanopyClient({ target: router.address });
    try {
      for (const q of [0, 17, 333]) {
        const query = row(fixture.base, q);
        const answer = await client.search(INDEX, query, { k: 5, searchK: EXHAUSTIVE_SEARCH_K });
        expect(answer.indexVersion).toBe('w1');
        expect(answer.shardsAnswered).toBe(SHARDS);
        expect(answer.neighbors.map((n) => n.id)).toEqual(Array.from(bruteForceTopK(fixture.base, query, 5, 'euclidean').ids, idOfRow));
      }
    } finally {
      client.close();
    }
  });

  it('registers each shard pod under its POD_NAME and POD_IP, and serves metrics on the metrics port', async () => {
    const status = await runCanopy(['status', '--etcd', etcd.url, '--cluster', CLUSTER]);
    expect(status.code).toBe(0);
    for (const { pod } of pods.filter(({ pod }) => pod.name.includes('-shard-'))) {
      expect(status.stdout).toContain(`${pod.name} ${pod.address}`);
    }
    for (const { pod } of pods) {
      const res = await fetch(`http://${pod.metricsAddress}/metrics`, { signal: AbortSignal.timeout(5_000) });
      expect(res.status).toBe(200);
      expect(await res.text()).toContain(`service_name="${pod.env.OTEL_SERVICE_NAME}"`);
    }
  });
});

describe('the chart with tls.enabled and client certificates, run as local processes', () => {
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-chart-tls-'));
  const volumeDir = path.join(workDir, 'versions');
  /** Stands in for the TLS Secret: tls.crt, tls.key, ca.crt (the cert-manager layout). */
  const secretDir = path.join(workDir, 'grpc-tls');
  const pods: { pod: LocalPod; proc: ServingProcess }[] = [];
  const clients: CanopyClient[] = [];
  let ca: TestCa;
  let clientTls: TlsFiles;
  let etcd: EtcdServer;
  let fixture: Fixture;
  let shardContainer: Container;
  let routerContainer: Container;

  beforeAll(async () => {
    const helm = findHelm();
    ca = TestCa.create('chart');
    const podCert = ca.issue('pod');
    mkdirSync(secretDir);
    copyFileSync(podCert.certFile, path.join(secretDir, 'tls.crt'));
    copyFileSync(podCert.keyFile, path.join(secretDir, 'tls.key'));
    copyFileSync(podCert.caFile, path.join(secretDir, 'ca.crt'));
    clientTls = ca.issue('client');
    etcd = await EtcdServer.start();
    fixture = await buildFixture(workDir, gaussianVectors(300, 8, 9), { metric: 'euclidean', shards: 1, trees: 4, index: INDEX, version: 't1' });
    const { manifests, problems } = renderChart(helm, {
      set: [
        ...localChartValues(volumeDir, etcd.url, 1, 1),
        'tls.enabled=true',
        'tls.secretName=canopy-grpc-tls',
        'tls.requireClientCert=true',
      ],
    });
    expect(problems).toEqual([]);
    shardContainer = ofKind(manifests, 'StatefulSet', 'shard')[0]!.spec.template.spec.containers.find((c) => c.name === 'shard')!;
    routerContainer = named(manifests, 'Deployment', `${FULLNAME}-router`).spec.template.spec.containers.find((c) => c.name === 'router')!;
  }, 120_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all(pods.map(({ proc }) => proc.kill()));
    await etcd?.stop();
    ca?.remove();
    rmSync(workDir, { recursive: true, force: true });
  });

  async function startPod(name: string, container: Container): Promise<{ pod: LocalPod; proc: ServingProcess }> {
    const tlsMount = container.volumeMounts?.find((m) => m.name === 'tls');
    if (tlsMount === undefined) throw new Error(`${name}: no tls volume mounted`);
    const pod = await localPod(name, container, new Map([[tlsMount.mountPath, secretDir]]));
    const started = { pod, proc: run(pod) };
    pods.push(started);
    return started;
  }

  it('probes ask the plaintext health port, which reports startup, liveness and readiness as the TLS port would; Search stays mTLS-only', async () => {
    const shard = await startPod(`${FULLNAME}-shard-0-0`, shardContainer);
    const router = await startPod(`${FULLNAME}-router-0`, routerContainer);
    expect(shard.pod.probeAddress).not.toBe(shard.pod.address);
    expect(router.pod.probeAddress).not.toBe(router.pod.address);
    await waitServing(shard.proc, 30_000, probeService(shardContainer, 'startupProbe'));
    for (const { pod, proc } of [shard, router]) await waitServing(proc, 30_000, probeService(pod.container, 'livenessProbe'));
    // Nothing active yet: live, not ready.
    expect(await healthStatus(shard.pod.probeAddress, probeService(shardContainer, 'readinessProbe'))).toBe('NOT_SERVING');
    // What the probes would get on the serving port: a plaintext call to a TLS server fails.
    expect(await healthStatus(shard.pod.address, probeService(shardContainer, 'livenessProbe'))).toBe('UNAVAILABLE');

    const published = await runCanopy([
      'publish',
      '--etcd', flagValue(routerContainer.args!, '--etcd')!,
      '--cluster', flagValue(routerContainer.args!, '--cluster')!,
      '--manifest', fixture.dir,
    ]);
    expect(published.code, published.stderr).toBe(0);
    for (const { pod, proc } of [shard, router]) await waitServing(proc, 30_000, probeService(pod.container, 'readinessProbe'));

    const query = row(fixture.base, 42);
    const exact = Array.from(bruteForceTopK(fixture.base, query, 5, 'euclidean').ids, idOfRow);
    const client = (target: string, tls?: TlsFiles): CanopyClient => {
      const c = new CanopyClient({ target, tls });
      clients.push(c);
      return c;
    };
    const answer = await client(router.pod.address, clientTls).search(INDEX, query, { k: 5, searchK: EXHAUSTIVE_SEARCH_K });
    expect(answer.neighbors.map((n) => n.id)).toEqual(exact);
    // The health port answers health only; the serving port refuses a client without a certificate.
    for (const [target, tls, code] of [
      [router.pod.probeAddress, undefined, grpc.status.UNIMPLEMENTED],
      [router.pod.address, undefined, grpc.status.UNAVAILABLE],
      [router.pod.address, { caFile: clientTls.caFile }, grpc.status.UNAVAILABLE],
    ] as const) {
      const err = await client(target, tls).search(INDEX, query, { k: 5 }).then(
        () => undefined,
        (e: unknown) => e as CanopyError,
      );
      expect(err?.code, target).toBe(code);
    }
    expect(pods.filter(({ proc }) => proc.exited).map(({ pod }) => pod.name)).toEqual([]);
  }, 120_000);
});
