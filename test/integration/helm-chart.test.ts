// The Helm chart, checked offline: `helm lint --strict`, `helm template` with the
// default values and every helm/canopy/ci/*.yaml, each manifest validated against
// the Kubernetes JSON schemas, then the wiring asserted on the parsed objects.
// Tools: `bash helm/check-tools.sh`; without them this file fails, it never skips.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { CHART_DIR, findHelm, KUBERNETES_VERSIONS, renderChart, requireValidator, runHelm, templateChart, valuesArgs } from '../support/helm/chart';
import {
  type Container,
  envNamed,
  flagValue,
  type Manifest,
  named,
  ofKind,
  type PodSpec,
  type Probe,
  selects,
  type Workload,
} from '../support/helm/manifests';
import { checkRules, findPromtool } from '../support/promtool';

const FULLNAME = 'rel-canopy';
const NAMESPACE = 'search';
const MIN_STARTUP_BUDGET_S = 600;

interface Expectations {
  readonly cluster: string;
  readonly index: string;
  readonly shards: number;
  readonly replicasPerShard: number;
  readonly image: string;
  readonly indexVolume: { readonly type: 'pvc' | 'hostPath' | 'url' | 's3'; readonly mountPath: string; readonly source: string };
  readonly antiAffinity: 'preferred' | 'required';
  readonly etcd: { readonly bundledMembers: number } | { readonly endpoints: readonly string[] };
  readonly router: { readonly autoscale: { min: number; max: number; cpu: number } } | { readonly replicas: number };
  readonly routerWorkers?: number;
  readonly drainTimeoutMs: number;
  readonly graceSeconds: number;
  readonly tls: boolean;
  /** With tls: the plaintext health-only ports (--health-listen) the probes ask. */
  readonly healthPorts?: { readonly router: number; readonly shard: number };
  readonly etcdTls: boolean;
  readonly etcdUser?: string;
  readonly metricsPort?: number;
  readonly otelEndpoint?: string;
}

interface Scenario {
  readonly title: string;
  /** Relative to the chart folder; empty for the defaults. */
  readonly valuesFile?: string;
  readonly expect: Expectations;
}

// What each values set must produce, written out here independently of the values files.
const SCENARIOS: readonly Scenario[] = [
  {
    title: 'default values',
    expect: {
      cluster: 'default',
      index: 'default',
      shards: 2,
      replicasPerShard: 2,
      image: 'canopy:0.1.0',
      indexVolume: { type: 'pvc', mountPath: '/var/lib/canopy/index', source: 'canopy-index' },
      antiAffinity: 'preferred',
      etcd: { bundledMembers: 3 },
      router: { autoscale: { min: 2, max: 10, cpu: 70 } },
      drainTimeoutMs: 10_000,
      graceSeconds: 30,
      tls: false,
      etcdTls: false,
    },
  },
  {
    title: 'bundled etcd, hostPath index, 4 shards x 3 replicas',
    valuesFile: 'ci/bundled-etcd-hostpath-4x3-values.yaml',
    expect: {
      cluster: 'prod',
      index: 'products',
      shards: 4,
      replicasPerShard: 3,
      image: 'canopy:0.1.0',
      indexVolume: { type: 'hostPath', mountPath: '/srv/canopy', source: '/data/canopy/index' },
      antiAffinity: 'required',
      etcd: { bundledMembers: 3 },
      router: { replicas: 3 },
      routerWorkers: 4,
      drainTimeoutMs: 10_000,
      graceSeconds: 30,
      tls: false,
      etcdTls: false,
    },
  },
  {
    title: 'external etcd with TLS and auth, URL index, gRPC TLS, metrics and OTLP',
    valuesFile: 'ci/external-etcd-url-tls-metrics-values.yaml',
    expect: {
      cluster: 'default',
      index: 'items',
      shards: 3,
      replicasPerShard: 2,
      image: 'registry.example.com/ml/canopy:2026.11.26',
      indexVolume: {
        type: 'url',
        mountPath: '/var/lib/canopy/index',
        source: 'https://artifacts.example.com/canopy/items-2026-11-26.tar.gz',
      },
      antiAffinity: 'preferred',
      etcd: { endpoints: ['https://etcd-0.etcd.infra.svc:2379', 'https://etcd-1.etcd.infra.svc:2379', 'https://etcd-2.etcd.infra.svc:2379'] },
      router: { autoscale: { min: 3, max: 12, cpu: 60 } },
      drainTimeoutMs: 20_000,
      graceSeconds: 45,
      tls: true,
      healthPorts: { router: 8091, shard: 8081 },
      etcdTls: true,
      etcdUser: 'canopy',
      metricsPort: 9464,
      otelEndpoint: 'http://otel-collector.observability.svc:4317',
    },
  },
  {
    title: 'index versions in object storage (s3), no shared volume',
    valuesFile: 'ci/s3-index-values.yaml',
    expect: {
      cluster: 'default',
      index: 'tracks',
      shards: 2,
      replicasPerShard: 2,
      image: 'canopy:0.1.0',
      indexVolume: { type: 's3', mountPath: '/var/cache/canopy', source: 'http://minio.storage.svc:9000' },
      antiAffinity: 'preferred',
      etcd: { bundledMembers: 3 },
      router: { autoscale: { min: 2, max: 10, cpu: 70 } },
      drainTimeoutMs: 10_000,
      graceSeconds: 30,
      tls: false,
      etcdTls: false,
    },
  },
];

// The command-line contract of `canopy serve`: the only flags the chart may pass.
const COMMON_FLAGS = [
  '--etcd',
  '--cluster',
  '--listen',
  '--health-listen',
  '--metrics-listen',
  '--tls-cert',
  '--tls-key',
  '--tls-ca',
  '--tls-require-client-cert',
  '--etcd-tls-cert',
  '--etcd-tls-key',
  '--etcd-tls-ca',
  '--etcd-user',
];
const CONTRACT_FLAGS = {
  shard: new Set([...COMMON_FLAGS, '--index', '--shard', '--node-id', '--advertise', '--drain-timeout-ms', '--cache-dir', '--cache-max-mb', '--s3-endpoint']),
  router: new Set([...COMMON_FLAGS, '--workers', '--min-ready']),
};

let helm = '';

beforeAll(() => {
  helm = findHelm();
  requireValidator();
});

describe('helm chart: lint', () => {
  it('covers every ci values file with a scenario', () => {
    const ciFiles = readdirSync(path.join(CHART_DIR, 'ci')).filter((f) => f.endsWith('.yaml')).map((f) => `ci/${f}`);
    expect(ciFiles.sort()).toEqual(SCENARIOS.flatMap((s) => (s.valuesFile ? [s.valuesFile] : [])).sort());
  });

  it('documents every value of values.schema.json in the README table', () => {
    const schema = JSON.parse(readFileSync(path.join(CHART_DIR, 'values.schema.json'), 'utf8')) as JsonSchema;
    const readme = readFileSync(path.join(CHART_DIR, 'README.md'), 'utf8');
    const valuesSection = readme.split(/^## /m).find((section) => section.startsWith('Values\n')) ?? '';
    const documented = new Set([...valuesSection.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]));
    const leaves = valuePaths(schema, schema);
    expect(leaves.length).toBeGreaterThan(50);
    expect(leaves.filter((p) => !documented.has(p))).toEqual([]);
    expect([...documented].filter((p) => !leaves.includes(p))).toEqual([]);
  });

  it.each(SCENARIOS)('helm lint --strict is clean: $title', ({ valuesFile }) => {
    const opts = { valuesFiles: valuesFile ? [valuesFile] : [] };
    const lint = runHelm(helm, ['lint', '--strict', '--kube-version', KUBERNETES_VERSIONS[0], CHART_DIR, ...valuesArgs(opts)]);
    expect(lint.stdout + lint.stderr).toContain('0 chart(s) failed');
    expect(lint.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
    expect(lint.status).toBe(0);
  });
});

describe.each(SCENARIOS)('helm chart: $title', ({ valuesFile, expect: want }) => {
  let manifests: readonly Manifest[] = [];
  let shardSets: Workload[] = [];
  let router: Workload;

  beforeAll(() => {
    const render = renderChart(helm, { valuesFiles: valuesFile ? [valuesFile] : [] });
    expect(render.problems).toEqual([]);
    manifests = render.manifests;
    shardSets = ofKind(manifests, 'StatefulSet', 'shard');
    router = named(manifests, 'Deployment', `${FULLNAME}-router`);
  });

  it('renders manifests that pass the Kubernetes schemas of 1.27 and 1.37 (strict)', () => {
    // beforeAll already failed on any schema problem; this pins what was rendered.
    const kinds = new Set(manifests.map((m) => m.kind));
    expect([...kinds].sort()).toEqual(
      ['Deployment', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Service', 'ServiceAccount', 'StatefulSet'].filter(
        (k) => k !== 'HorizontalPodAutoscaler' || 'autoscale' in want.router,
      ),
    );
  });

  it('runs one StatefulSet per shard, each passing its own --shard and the replica count', () => {
    expect(shardSets.map((s) => s.metadata.name).sort()).toEqual(range(want.shards).map((i) => `${FULLNAME}-shard-${i}`).sort());
    for (const i of range(want.shards)) {
      const set = named(manifests, 'StatefulSet', `${FULLNAME}-shard-${i}`);
      const args = canopyContainer(set.spec.template.spec, 'shard').args ?? [];
      expect(args.slice(0, 2)).toEqual(['serve', 'shard']);
      expect(flagValue(args, '--shard')).toBe(String(i));
      expect(flagValue(args, '--index')).toBe(want.index);
      expect(flagValue(args, '--cluster')).toBe(want.cluster);
      expect(set.spec.replicas).toBe(want.replicasPerShard);
      expect(selects(set.spec.selector.matchLabels, set.spec.template.metadata.labels)).toBe(true);
      // The selector must not also catch another shard's pods.
      for (const other of shardSets.filter((s) => s !== set)) {
        expect(selects(set.spec.selector.matchLabels, other.spec.template.metadata.labels)).toBe(false);
      }
      const headless = named(manifests, 'Service', set.spec.serviceName ?? '');
      expect(headless.spec.clusterIP).toBe('None');
      expect(headless.spec.selector).toEqual(set.spec.selector.matchLabels);
    }
  });

  it('gives every shard a PodDisruptionBudget of maxUnavailable 1 over exactly its own pods', () => {
    const budgets = ofKind(manifests, 'PodDisruptionBudget', 'shard');
    expect(budgets).toHaveLength(want.shards);
    for (const set of shardSets) {
      const covering = budgets.filter((b) => selects(b.spec.selector.matchLabels, set.spec.template.metadata.labels));
      expect(covering).toHaveLength(1);
      expect(covering[0].spec.maxUnavailable).toBe(1);
      expect(covering[0].spec.minAvailable).toBeUndefined();
    }
  });

  it(`spreads the replicas of one shard over nodes (${want.antiAffinity} anti-affinity)`, () => {
    for (const set of shardSets) {
      const anti = set.spec.template.spec.affinity?.podAntiAffinity;
      const required = anti?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
      const preferred = (anti?.preferredDuringSchedulingIgnoredDuringExecution ?? []).map((p) => p.podAffinityTerm);
      const terms = want.antiAffinity === 'required' ? required : preferred;
      expect(want.antiAffinity === 'required' ? preferred : required).toEqual([]);
      expect(terms).toHaveLength(1);
      expect(terms[0].topologyKey).toBe('kubernetes.io/hostname');
      expect(terms[0].labelSelector.matchLabels).toEqual(set.spec.selector.matchLabels);
    }
  });

  it(`probes grpc.health.v1 natively on ${want.tls ? 'the plaintext health-only port (--health-listen: kubelet gRPC probes cannot do TLS)' : 'the serving port'}, with a startup budget of at least 10 minutes`, () => {
    for (const set of shardSets) {
      const shard = canopyContainer(set.spec.template.spec, 'shard');
      const port = probedPort(shard, want.healthPorts?.shard);
      expectServingProbe(shard.startupProbe, port, '');
      expectServingProbe(shard.readinessProbe, port, 'canopy.v1.Search');
      expectServingProbe(shard.livenessProbe, port, '');
      const startup = shard.startupProbe ?? {};
      expect((startup.periodSeconds ?? 0) * (startup.failureThreshold ?? 0)).toBeGreaterThanOrEqual(MIN_STARTUP_BUDGET_S);
    }
    const routerContainer = canopyContainer(router.spec.template.spec, 'router');
    const routerPort = probedPort(routerContainer, want.healthPorts?.router);
    expectServingProbe(routerContainer.readinessProbe, routerPort, 'canopy.v1.Search');
    expectServingProbe(routerContainer.livenessProbe, routerPort, '');
    // The health-only port is for the kubelet: no Service sends traffic to it.
    const healthPorts = Object.values(want.healthPorts ?? {});
    for (const service of ofKind(manifests, 'Service')) {
      for (const port of service.spec.ports) {
        expect(port.targetPort).not.toBe('health');
        expect(healthPorts).not.toContain(port.targetPort);
      }
    }
  });

  it(`mounts the ${want.indexVolume.type} index volume ${want.indexVolume.type === 's3' ? 'as the download cache' : 'read-only'} in every shard container`, () => {
    for (const set of shardSets) {
      const pod = set.spec.template.spec;
      const shard = canopyContainer(pod, 'shard');
      const mount = shard.volumeMounts?.find((m) => m.mountPath === want.indexVolume.mountPath);
      expect(mount?.readOnly).toBe(want.indexVolume.type !== 's3');
      const volume = pod.volumes?.find((v) => v.name === mount?.name);
      switch (want.indexVolume.type) {
        case 'pvc':
          expect(volume?.persistentVolumeClaim).toEqual({ claimName: want.indexVolume.source, readOnly: true });
          break;
        case 'hostPath':
          expect(volume?.hostPath?.path).toBe(want.indexVolume.source);
          break;
        case 'url': {
          expect(volume?.emptyDir).toBeDefined();
          const fetcher = pod.initContainers?.find((c) => c.volumeMounts?.some((m) => m.name === mount?.name));
          expect(envNamed(fetcher!, 'INDEX_URL')?.value).toBe(want.indexVolume.source);
          expect(envNamed(fetcher!, 'INDEX_DIR')?.value).toBe(want.indexVolume.mountPath);
          expect(fetcher!.volumeMounts?.find((m) => m.name === mount?.name)?.readOnly).not.toBe(true);
          break;
        }
        case 's3':
          expect(volume?.emptyDir?.sizeLimit).toBe('9216Mi');
          expect(flagValue(shard.args ?? [], '--cache-dir')).toBe(want.indexVolume.mountPath);
          expect(flagValue(shard.args ?? [], '--cache-max-mb')).toBe('8192');
          expect(flagValue(shard.args ?? [], '--s3-endpoint')).toBe(want.indexVolume.source);
          expect(envNamed(shard, 'AWS_REGION')?.value).toBe('eu-west-1');
          expect(shard.envFrom).toEqual([{ secretRef: { name: 'canopy-s3' } }]);
          break;
      }
      if (want.indexVolume.type !== 's3') expect(flagValue(shard.args ?? [], '--cache-dir')).toBeUndefined();
      if (want.indexVolume.type !== 'url') expect(pod.initContainers ?? []).toEqual([]);
    }
  });

  it('names each shard node after its pod and advertises the pod IP (downward API)', () => {
    for (const set of shardSets) {
      const shard = canopyContainer(set.spec.template.spec, 'shard');
      const port = flagValue(shard.args ?? [], '--listen')?.split(':')[1];
      expect(envNamed(shard, 'POD_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
      expect(envNamed(shard, 'POD_IP')?.valueFrom?.fieldRef?.fieldPath).toBe('status.podIP');
      expect(flagValue(shard.args ?? [], '--node-id')).toBe('$(POD_NAME)');
      expect(flagValue(shard.args ?? [], '--advertise')).toBe(`$(POD_IP):${port}`);
      expect(shard.image).toBe(want.image);
    }
  });

  it('gives shard pods a termination grace period longer than the drain timeout', () => {
    for (const set of shardSets) {
      const pod = set.spec.template.spec;
      const drainMs = Number(flagValue(canopyContainer(pod, 'shard').args ?? [], '--drain-timeout-ms'));
      expect(drainMs).toBe(want.drainTimeoutMs);
      expect(pod.terminationGracePeriodSeconds).toBe(want.graceSeconds);
      expect((pod.terminationGracePeriodSeconds ?? 0) * 1000).toBeGreaterThan(drainMs);
    }
  });

  it('runs routers as a Deployment behind a Service, scaled by an HPA or a fixed count, with a PDB', () => {
    const container = canopyContainer(router.spec.template.spec, 'router');
    const args = container.args ?? [];
    expect(args.slice(0, 2)).toEqual(['serve', 'router']);
    expect(flagValue(args, '--cluster')).toBe(want.cluster);
    expect(flagValue(args, '--workers')).toBe(want.routerWorkers === undefined ? undefined : String(want.routerWorkers));
    const service = named(manifests, 'Service', `${FULLNAME}-router`);
    expect(selects(service.spec.selector, router.spec.template.metadata.labels)).toBe(true);
    expect(shardSets.some((s) => selects(service.spec.selector, s.spec.template.metadata.labels))).toBe(false);
    expect(container.ports?.map((p) => p.name)).toContain(service.spec.ports[0].targetPort);
    const autoscalers = ofKind(manifests, 'HorizontalPodAutoscaler');
    if ('autoscale' in want.router) {
      expect(router.spec.replicas).toBeUndefined(); // the HPA owns the count
      expect(autoscalers).toHaveLength(1);
      const hpa = autoscalers[0];
      expect(hpa.apiVersion).toBe('autoscaling/v2');
      expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: router.metadata.name });
      expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).toEqual([want.router.autoscale.min, want.router.autoscale.max]);
      expect(hpa.spec.metrics[0].resource).toMatchObject({ name: 'cpu', target: { averageUtilization: want.router.autoscale.cpu } });
    } else {
      expect(router.spec.replicas).toBe(want.router.replicas);
      expect(autoscalers).toEqual([]);
    }
    const budgets = ofKind(manifests, 'PodDisruptionBudget', 'router');
    expect(budgets).toHaveLength(1);
    expect(selects(budgets[0].spec.selector.matchLabels, router.spec.template.metadata.labels)).toBe(true);
    expect(budgets[0].spec.minAvailable).toBe(1);
  });

  it('points routers and shard nodes at the same etcd', () => {
    const etcdSets = ofKind(manifests, 'StatefulSet', 'etcd');
    let expected: string;
    if ('bundledMembers' in want.etcd) {
      expect(etcdSets).toHaveLength(1);
      const etcd = etcdSets[0];
      expect(etcd.spec.replicas).toBe(want.etcd.bundledMembers);
      const headless = named(manifests, 'Service', etcd.spec.serviceName ?? '');
      expect(headless.spec.clusterIP).toBe('None');
      expect(selects(headless.spec.selector, etcd.spec.template.metadata.labels)).toBe(true);
      const domain = `${etcd.spec.serviceName}.${NAMESPACE}.svc`;
      expected = range(want.etcd.bundledMembers)
        .map((i) => `http://${etcd.metadata.name}-${i}.${domain}:2379`)
        .join(',');
      const peers = flagValue(etcd.spec.template.spec.containers[0].args ?? [], '--initial-cluster');
      expect(peers?.split(',')).toHaveLength(want.etcd.bundledMembers);
      expect(etcd.spec.template.spec.containers[0].image).toMatch(/^quay\.io\/coreos\/etcd:v3\.5\./);
    } else {
      expect(etcdSets).toEqual([]);
      expected = want.etcd.endpoints.join(',');
    }
    for (const [pod, name] of canopyPods(router, shardSets)) expect(flagValue(canopyContainer(pod, name).args ?? [], '--etcd')).toBe(expected);
  });

  it('passes only contract flags, and TLS, etcd auth, metrics and OTLP only when switched on', () => {
    for (const [pod, role] of canopyPods(router, shardSets)) {
      const container = canopyContainer(pod, role);
      expect(container.command).toBeUndefined();
      const flags = (container.args ?? []).slice(2).map((a) => a.split('=')[0]);
      expect(flags.filter((f) => !CONTRACT_FLAGS[role].has(f))).toEqual([]);
      const args = container.args ?? [];
      expect(flagValue(args, '--tls-cert') !== undefined).toBe(want.tls);
      expect(flagValue(args, '--etcd-tls-ca') !== undefined).toBe(want.etcdTls);
      expect(flagValue(args, '--etcd-user')).toBe(want.etcdUser);
      expect(envNamed(container, 'ETCD_PASSWORD')?.valueFrom?.secretKeyRef !== undefined).toBe(want.etcdUser !== undefined);
      expect(flagValue(args, '--metrics-listen')).toBe(want.metricsPort === undefined ? undefined : `0.0.0.0:${want.metricsPort}`);
      expect(container.ports?.some((p) => p.name === 'metrics')).toBe(want.metricsPort !== undefined);
      expect(envNamed(container, 'OTEL_SERVICE_NAME')?.value).toBe(`canopy-${role}`);
      expect(envNamed(container, 'OTEL_EXPORTER_OTLP_ENDPOINT')?.value).toBe(want.otelEndpoint);
      if (want.otelEndpoint) {
        for (const name of ['OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_TRACES_SAMPLER', 'OTEL_TRACES_SAMPLER_ARG']) expect(envNamed(container, name)?.value).toBeTruthy();
      }
      // Every file a flag names lives on a mounted secret.
      for (const file of args.filter((a) => a.startsWith('--') && a.includes('=/etc/canopy/')).map((a) => a.split('=')[1])) {
        expect(container.volumeMounts?.some((m) => file.startsWith(`${m.mountPath}/`) && m.readOnly)).toBe(true);
      }
    }
  });

  it('runs every pod as non-root with a read-only root filesystem, every mount backed by a volume', () => {
    for (const set of [...ofKind(manifests, 'StatefulSet'), ...ofKind(manifests, 'Deployment')]) {
      const pod = set.spec.template.spec;
      expect(pod.securityContext?.runAsNonRoot).toBe(true);
      for (const container of [...pod.containers, ...(pod.initContainers ?? [])]) {
        expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
        const claimTemplates = ((set.spec as { volumeClaimTemplates?: { metadata: { name: string } }[] }).volumeClaimTemplates ?? []).map((t) => t.metadata.name);
        for (const mount of container.volumeMounts ?? []) {
          expect([...(pod.volumes ?? []).map((v) => v.name), ...claimTemplates]).toContain(mount.name);
        }
      }
    }
  });
});

describe('helm chart: values it refuses', () => {
  it.each([
    { why: 'an unknown key (schema: additionalProperties)', set: ['index.replicas=3'], message: "additional properties 'replicas' not allowed" },
    { why: 'zero shards (schema: minimum)', set: ['index.shards=0'], message: '/index/shards' },
    { why: 'an unknown index volume type (schema: enum)', set: ['indexVolume.type=nfs'], message: '/indexVolume/type' },
    { why: 'a grace period that does not cover the drain', set: ['shard.drainTimeoutMs=30000'], message: 'must exceed shard.drainTimeoutMs' },
    { why: 'both an external and the bundled etcd', set: ['etcd.endpoints={http://etcd:2379}'], message: 'not both' },
    { why: 'no etcd at all', set: ['etcd.bundled.enabled=false'], message: 'set etcd.endpoints' },
    { why: 'a URL index volume without a URL', set: ['indexVolume.type=url'], message: 'indexVolume.url.source' },
    { why: 'TLS without a secret', set: ['tls.enabled=true'], message: 'tls.secretName' },
    {
      why: 'a health port on the serving port (TLS)',
      set: ['tls.enabled=true', 'tls.secretName=grpc-tls', 'shard.healthPort=50051'],
      message: 'shard.healthPort (50051) must differ',
    },
    {
      why: 'a health port on the metrics port (TLS)',
      set: ['tls.enabled=true', 'tls.secretName=grpc-tls', 'metrics.enabled=true', 'router.healthPort=9464'],
      message: 'router.healthPort (9464) must differ',
    },
  ])('refuses $why', ({ set, message }) => {
    const result = templateChart(helm, { set });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(message);
  });
});

interface JsonSchema {
  readonly $ref?: string;
  readonly properties?: Record<string, JsonSchema>;
}

/** Dotted paths of the schema's leaf values (a leaf: a value with no declared sub-properties). */
function valuePaths(node: JsonSchema, root: JsonSchema, prefix = ''): string[] {
  const resolved = node.$ref ? resolveRef(root, node.$ref) : node;
  if (!resolved.properties) return [prefix];
  return Object.entries(resolved.properties).flatMap(([key, child]) => valuePaths(child, root, prefix ? `${prefix}.${key}` : key));
}

function resolveRef(root: JsonSchema, ref: string): JsonSchema {
  const steps = ref.replace(/^#\//, '').split('/');
  return steps.reduce<unknown>((at, step) => (at as Record<string, unknown>)[step], root) as JsonSchema;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function canopyContainer(pod: PodSpec, name: 'shard' | 'router'): Container {
  const container = pod.containers.find((c) => c.name === name);
  if (!container) throw new Error(`no ${name} container in pod (have ${pod.containers.map((c) => c.name).join(', ')})`);
  return container;
}

function canopyPods(router: Workload, shardSets: readonly Workload[]): [PodSpec, 'shard' | 'router'][] {
  return [[router.spec.template.spec, 'router'], ...shardSets.map((s): [PodSpec, 'shard'] => [s.spec.template.spec, 'shard'])];
}

/**
 * The port the probes must ask: the serving port (--listen, container port
 * grpc) without TLS; with TLS the --health-listen port, declared as container
 * port health. Checks the flags and ports that go with either.
 */
function probedPort(container: Container, healthPort: number | undefined): number {
  const args = container.args ?? [];
  const servingPort = Number(flagValue(args, '--listen')?.split(':')[1]);
  expect(container.ports?.find((p) => p.name === 'grpc')?.containerPort).toBe(servingPort);
  expect(flagValue(args, '--health-listen')).toBe(healthPort === undefined ? undefined : `0.0.0.0:${healthPort}`);
  expect(container.ports?.find((p) => p.name === 'health')?.containerPort).toBe(healthPort);
  if (healthPort === undefined) return servingPort;
  expect(healthPort).not.toBe(servingPort);
  return healthPort;
}

/** A native gRPC probe of `port` asking `service` ('' is the whole server: the kubelet's default when none is named). */
function expectServingProbe(probe: Probe | undefined, port: number, service: string): void {
  expect(probe).toBeDefined();
  expect(probe?.tcpSocket).toBeUndefined();
  expect(probe?.grpc?.port).toBe(port);
  expect(probe?.grpc?.service ?? '').toBe(service);
}

describe('helm chart: monitoring and scheduling values', () => {
  const METRICS_ON = ['metrics.enabled=true'];

  it('renders with `helm template` alone, no --kube-version', () => {
    const result = runHelm(helm, ['template', 'rel', CHART_DIR]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('renders no monitor and no rule by default', () => {
    const { manifests } = renderChart(helm);
    expect(manifests.filter((m) => m.apiVersion.startsWith('monitoring.coreos.com/'))).toEqual([]);
  });

  it('metrics.serviceMonitor: a ServiceMonitor per component selecting Services that gained the metrics port', () => {
    const { manifests, problems } = renderChart(helm, { set: [...METRICS_ON, 'metrics.serviceMonitor.enabled=true', 'metrics.serviceMonitor.interval=15s', 'metrics.serviceMonitor.labels.release=kps'] });
    expect(problems).toEqual([]);
    const monitors = ofKind(manifests, 'ServiceMonitor');
    expect(monitors.map((m) => m.metadata.name).sort()).toEqual(['rel-canopy-router', 'rel-canopy-shard']);
    for (const monitor of monitors) {
      expect(monitor.metadata.labels?.['release']).toBe('kps');
      expect(monitor.spec.endpoints).toEqual([{ port: 'metrics', path: '/metrics', interval: '15s' }]);
      const services = ofKind(manifests, 'Service').filter((s) => selects(monitor.spec.selector.matchLabels, s.metadata.labels ?? {}));
      expect(services.length).toBeGreaterThan(0);
      for (const service of services) expect(service.spec.ports.find((p) => p.name === 'metrics')).toMatchObject({ port: 9464, targetPort: 'metrics' });
    }
    // One per shard headless Service, and the router's.
    expect(ofKind(manifests, 'Service').filter((s) => s.spec.ports.some((p) => p.name === 'metrics'))).toHaveLength(3);
  });

  it('metrics.podMonitor: a PodMonitor per component selecting exactly that component\'s pods', () => {
    const { manifests, problems } = renderChart(helm, { set: [...METRICS_ON, 'metrics.podMonitor.enabled=true'] });
    expect(problems).toEqual([]);
    const workloads = [...ofKind(manifests, 'Deployment'), ...ofKind(manifests, 'StatefulSet')];
    for (const component of ['router', 'shard']) {
      const monitor = named(manifests, 'PodMonitor', `rel-canopy-${component}`);
      expect(monitor.spec.podMetricsEndpoints).toEqual([{ port: 'metrics', path: '/metrics' }]);
      const scraped = workloads.filter((w) => selects(monitor.spec.selector.matchLabels, w.spec.template.metadata.labels));
      expect(scraped.map((w) => w.spec.template.metadata.labels['app.kubernetes.io/component'])).toEqual(scraped.map(() => component));
      expect(scraped.length).toBe(component === 'router' ? 1 : 2);
      for (const workload of scraped) expect(workload.spec.template.spec.containers[0]!.ports?.some((p) => p.name === 'metrics')).toBe(true);
    }
  });

  it('metrics.prometheusRule: five alerts whose rules pass promtool check rules', () => {
    const { manifests, problems } = renderChart(helm, {
      set: [...METRICS_ON, 'metrics.podMonitor.enabled=true', 'metrics.prometheusRule.enabled=true', 'metrics.prometheusRule.p99Seconds=1'],
    });
    expect(problems).toEqual([]);
    const rule = named(manifests, 'PrometheusRule', 'rel-canopy');
    const rules = rule.spec.groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.alert)).toEqual(['CanopyShardNodeNotReady', 'CanopyVersionStuckLoading', 'CanopySidecarNotLoaded', 'CanopyQueriesRefused', 'CanopyQueryLatencyHigh']);
    expect(rules.find((r) => r.alert === 'CanopyQueryLatencyHigh')?.expr).toMatch(/> 1\s*$/);
    const lint = checkRules(findPromtool(), JSON.stringify({ groups: rule.spec.groups }));
    expect(lint.output).toMatch(/SUCCESS: 5 rules found/);
    expect(lint.code).toBe(0);
  });

  it('podLabels, podAnnotations, priorityClassName and topologySpreadConstraints per component', () => {
    const spread = (component: string) => [
      `${component}.topologySpreadConstraints[0].maxSkew=1`,
      `${component}.topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone`,
      `${component}.topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway`,
    ];
    const { manifests, problems } = renderChart(helm, {
      set: [
        'router.podLabels.team=search', 'shard.podLabels.tier=data', 'router.podAnnotations.owner=search', 'shard.podAnnotations.backup=skip',
        'router.priorityClassName=canopy-router', 'shard.priorityClassName=canopy-shard', ...spread('router'), ...spread('shard'),
      ],
    });
    expect(problems).toEqual([]);
    const router = named(manifests, 'Deployment', 'rel-canopy-router');
    const shards = ofKind(manifests, 'StatefulSet', 'shard');
    expect(router.spec.template.metadata.labels).toMatchObject({ team: 'search' });
    expect(router.spec.template.metadata.labels['tier']).toBeUndefined();
    expect(router.spec.template.metadata.annotations).toEqual({ owner: 'search' });
    expect(router.spec.template.spec.priorityClassName).toBe('canopy-router');
    for (const workload of [router, ...shards]) {
      const [constraint, ...others] = workload.spec.template.spec.topologySpreadConstraints ?? [];
      expect(others).toEqual([]);
      expect(constraint).toMatchObject({ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway' });
      // Filled in with the workload's own selector: a shard's constraint spreads that shard's replicas.
      expect(constraint!.labelSelector?.matchLabels).toEqual(workload.spec.selector.matchLabels);
    }
    for (const shard of shards) {
      expect(shard.spec.template.metadata.labels).toMatchObject({ tier: 'data' });
      expect(shard.spec.template.metadata.annotations).toEqual({ backup: 'skip' });
      expect(shard.spec.template.spec.priorityClassName).toBe('canopy-shard');
    }
  });

  it.each([
    { why: 'a monitor without metrics', set: ['metrics.podMonitor.enabled=true'], message: 'need metrics.enabled=true' },
    { why: 'alerts without metrics', set: ['metrics.prometheusRule.enabled=true'], message: 'need metrics.enabled=true' },
    { why: 'both monitors', set: [...METRICS_ON, 'metrics.podMonitor.enabled=true', 'metrics.serviceMonitor.enabled=true'], message: 'not both' },
    { why: 'a malformed scrape interval (schema)', set: [...METRICS_ON, 'metrics.podMonitor.interval=soon'], message: '/metrics/podMonitor/interval' },
    { why: 'an unknown whenUnsatisfiable (schema)', set: ['shard.topologySpreadConstraints[0].maxSkew=1', 'shard.topologySpreadConstraints[0].topologyKey=zone', 'shard.topologySpreadConstraints[0].whenUnsatisfiable=Maybe'], message: 'whenUnsatisfiable' },
  ])('refuses $why', ({ set, message }) => {
    const result = templateChart(helm, { set });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(message);
  });
});
