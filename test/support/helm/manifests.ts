// The parts of rendered Kubernetes objects the chart tests read, and finders
// over a render. Only the fields the tests assert on are typed; the schema
// check (validate_manifests.py) already guarantees the rest is well formed.

export type Labels = Record<string, string>;

export interface Manifest {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly labels?: Labels; readonly annotations?: Labels };
  readonly spec?: unknown;
}

export interface Probe {
  readonly grpc?: { readonly port: number; readonly service?: string };
  readonly tcpSocket?: { readonly port: number | string };
  readonly httpGet?: { readonly path: string; readonly port: number | string };
  readonly periodSeconds?: number;
  readonly failureThreshold?: number;
}

export interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: {
    readonly fieldRef?: { readonly fieldPath: string };
    readonly secretKeyRef?: { readonly name: string; readonly key: string };
  };
}

export interface VolumeMount {
  readonly name: string;
  readonly mountPath: string;
  readonly readOnly?: boolean;
}

export interface Container {
  readonly name: string;
  readonly image: string;
  readonly command?: readonly string[];
  readonly args?: readonly string[];
  readonly env?: readonly EnvVar[];
  readonly envFrom?: readonly { readonly secretRef?: { readonly name: string } }[];
  readonly ports?: readonly { readonly name: string; readonly containerPort: number }[];
  readonly startupProbe?: Probe;
  readonly readinessProbe?: Probe;
  readonly livenessProbe?: Probe;
  readonly volumeMounts?: readonly VolumeMount[];
  readonly securityContext?: { readonly readOnlyRootFilesystem?: boolean; readonly allowPrivilegeEscalation?: boolean };
}

export interface Volume {
  readonly name: string;
  readonly persistentVolumeClaim?: { readonly claimName: string; readonly readOnly?: boolean };
  readonly hostPath?: { readonly path: string };
  readonly emptyDir?: { readonly sizeLimit?: string };
  readonly secret?: { readonly secretName: string };
}

export interface AffinityTerm {
  readonly topologyKey: string;
  readonly labelSelector: { readonly matchLabels: Labels };
}

export interface SpreadConstraint {
  readonly maxSkew: number;
  readonly topologyKey: string;
  readonly whenUnsatisfiable: string;
  readonly labelSelector?: { readonly matchLabels: Labels };
}

export interface PodSpec {
  readonly containers: readonly Container[];
  readonly priorityClassName?: string;
  readonly topologySpreadConstraints?: readonly SpreadConstraint[];
  readonly initContainers?: readonly Container[];
  readonly volumes?: readonly Volume[];
  readonly terminationGracePeriodSeconds?: number;
  readonly securityContext?: { readonly runAsNonRoot?: boolean };
  readonly affinity?: {
    readonly podAntiAffinity?: {
      readonly requiredDuringSchedulingIgnoredDuringExecution?: readonly AffinityTerm[];
      readonly preferredDuringSchedulingIgnoredDuringExecution?: readonly { readonly weight: number; readonly podAffinityTerm: AffinityTerm }[];
    };
  };
}

export interface PodTemplate {
  readonly metadata: { readonly labels: Labels; readonly annotations?: Labels };
  readonly spec: PodSpec;
}

/** A Deployment or StatefulSet. */
export interface Workload extends Manifest {
  readonly spec: {
    readonly replicas?: number;
    readonly serviceName?: string;
    readonly selector: { readonly matchLabels: Labels };
    readonly template: PodTemplate;
  };
}

export interface Service extends Manifest {
  readonly spec: {
    readonly clusterIP?: string;
    readonly selector: Labels;
    readonly ports: readonly { readonly name: string; readonly port: number; readonly targetPort: number | string }[];
  };
}

export interface DisruptionBudget extends Manifest {
  readonly spec: { readonly maxUnavailable?: number; readonly minAvailable?: number; readonly selector: { readonly matchLabels: Labels } };
}

export interface Autoscaler extends Manifest {
  readonly spec: {
    readonly scaleTargetRef: { readonly kind: string; readonly name: string };
    readonly minReplicas: number;
    readonly maxReplicas: number;
    readonly metrics: readonly { readonly resource: { readonly name: string; readonly target: { readonly averageUtilization: number } } }[];
  };
}

/** A Prometheus Operator ServiceMonitor or PodMonitor. */
export interface Monitor extends Manifest {
  readonly spec: {
    readonly selector: { readonly matchLabels: Labels };
    readonly endpoints?: readonly { readonly port: string; readonly interval?: string }[];
    readonly podMetricsEndpoints?: readonly { readonly port: string; readonly interval?: string }[];
  };
}

export interface PrometheusRule extends Manifest {
  readonly spec: { readonly groups: readonly { readonly name: string; readonly rules: readonly { readonly alert: string; readonly expr: string }[] }[] };
}

export interface KindMap {
  Deployment: Workload;
  StatefulSet: Workload;
  Service: Service;
  PodDisruptionBudget: DisruptionBudget;
  HorizontalPodAutoscaler: Autoscaler;
  ServiceMonitor: Monitor;
  PodMonitor: Monitor;
  PrometheusRule: PrometheusRule;
}

export function ofKind<K extends keyof KindMap>(manifests: readonly Manifest[], kind: K, component?: string): KindMap[K][] {
  return manifests.filter(
    (m) => m.kind === kind && (component === undefined || m.metadata.labels?.['app.kubernetes.io/component'] === component),
  ) as KindMap[K][];
}

export function named<K extends keyof KindMap>(manifests: readonly Manifest[], kind: K, name: string): KindMap[K] {
  const found = ofKind(manifests, kind).find((m) => m.metadata.name === name);
  if (!found) throw new Error(`no ${kind} named ${name} in the render (have: ${manifests.map((m) => `${m.kind}/${m.metadata.name}`).join(', ')})`);
  return found;
}

/** True when every label of the selector is on the labelled object. */
export function selects(selector: Labels, labels: Labels): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** The value of `--flag=value` in args, or undefined when absent; throws if the flag is given twice. */
export function flagValue(args: readonly string[], flag: string): string | undefined {
  const hits = args.filter((a) => a.startsWith(`${flag}=`));
  if (hits.length > 1) throw new Error(`${flag} given ${hits.length} times: ${hits.join(' ')}`);
  return hits[0]?.slice(flag.length + 1);
}

export function envNamed(container: Container, name: string): EnvVar | undefined {
  return container.env?.find((e) => e.name === name);
}
