// The chart's wiring, run for real: render it (external etcd = a real local
// etcd, metrics on), take the shard StatefulSets' and the router Deployment's
// container command, args and env as rendered, stand in for the kubelet
// (POD_NAME, POD_IP = 127.0.0.1, container ports -> free loopback ports, the
// index volume -> a local folder holding a real built version, `canopy` ->
// bin/canopy.js), run them as local processes, wait on the probes' own health
// services, publish the way NOTES.txt says, and query the router. A flag the
// chart passes that the CLI refuses makes a process exit, and this test fail.
// Tools: `bash helm/check-tools.sh`; without them this file fails, it never skips.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CanopyClient } from '../../src/client/canopy-client';
import { bruteForceTopK } from '../support/brute-force';
import { CANOPY_BIN, runCanopy } from '../support/cli';
import { EtcdServer } from '../support/etcd';
import { freePort } from '../support/free-port';
import { findHelm, renderChart } from '../support/helm/chart';
import { type Container, type EnvVar, flagValue, named, ofKind, type Workload } from '../support/helm/manifests';
import { row } from '../support/matrix';
import { buildFixture, type Fixture, idOfRow } from '../support/serving/fixture';
import { ServingProcess, waitServing } from '../support/serving/processes';
import { gaussianVectors } from '../support/vectors';

const FULLNAME = 'rel-canopy';
const INDEX = 'wiring';
const CLUSTER = 'wired';
const SHARDS = 2;
const REPLICAS = 2;
const CHART_CANOPY = '/usr/local/bin/canopy';
const POD_IP = '127.0.0.1';
const EXHAUSTIVE_SEARCH_K = 1_000_000;

/** One container as the kubelet would run it here: argv and environment resolved. */
interface LocalPod {
  readonly name: string;
  readonly args: string[];
  readonly env: Record<string, string>;
  /** The gRPC address the probes and clients use. */
  readonly address: string;
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

/** The container's args with every container port (grpc, metrics) on a free loopback port instead. */
async function localPod(name: string, container: Container): Promise<LocalPod> {
  expect(container.command).toEqual([CHART_CANOPY]);
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
  );
  return {
    name,
    args,
    env,
    address: `${POD_IP}:${portOf('grpc')}`,
    metricsAddress: `${POD_IP}:${portOf('metrics')}`,
    container,
  };
}

function probeService(container: Container, probe: 'startupProbe' | 'readinessProbe' | 'livenessProbe'): string {
  const grpc = container[probe]?.grpc;
  if (grpc === undefined) throw new Error(`${container.name}: ${probe} is not a gRPC probe`);
  return grpc.service ?? ''; // the kubelet asks for '' (the whole server) when the probe names no service
}

/** Runs the pod's container: `canopy` is bin/canopy.js, the environment is the kubelet's on top of ours (PATH...). */
function run(pod: LocalPod): ServingProcess {
  const child = spawn(process.execPath, [CANOPY_BIN, ...pod.args], { env: { ...process.env, ...pod.env }, stdio: ['ignore', 'ignore', 'pipe'] });
  return new ServingProcess(pod.name, pod.address, child);
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
        `cluster.name=${CLUSTER}`,
        `index.name=${INDEX}`,
        `index.shards=${SHARDS}`,
        `index.replicasPerShard=${REPLICAS}`,
        'indexVolume.type=hostPath',
        `indexVolume.hostPath.path=${volumeDir}`,
        'etcd.bundled.enabled=false',
        `etcd.endpoints={${etcd.url}}`,
        'metrics.enabled=true',
        'router.autoscaling.enabled=false',
        'router.replicas=1',
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
