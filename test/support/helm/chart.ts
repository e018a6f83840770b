// Renders the Helm chart with the real `helm` binary and validates every
// manifest offline against the Kubernetes JSON schemas shipped in the PyPI
// package kubernetes-validate. Both tools come from helm/check-tools.sh.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { runPythonJson } from '../python';
import type { Manifest } from './manifests';

export const CHART_DIR = path.resolve(__dirname, '../../../helm/canopy');
const VALIDATOR_SCRIPT = path.join(__dirname, 'validate_manifests.py');
const INSTALL_HINT = 'run `bash helm/check-tools.sh` (it installs helm v3.22.0 and kubernetes-validate 1.37.0)';
const HELM_TIMEOUT_MS = 30_000;

/** The chart's lowest supported Kubernetes (Chart.yaml kubeVersion) and the newest the validator ships. */
export const KUBERNETES_VERSIONS = ['1.27.0', '1.37.0'] as const;
/** What `helm template` assumes: a `go install`ed helm otherwise defaults to 1.20, below the chart's floor. */
const RENDER_KUBE_VERSION = KUBERNETES_VERSIONS[0];

export interface HelmResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RenderOptions {
  /** Values files, relative to the chart folder (e.g. `ci/x-values.yaml`). */
  readonly valuesFiles?: readonly string[];
  /** `--set` expressions. */
  readonly set?: readonly string[];
}

export interface ValidatedRender {
  readonly manifests: readonly Manifest[];
  /** Schema violations, one line each; empty when every manifest is valid. */
  readonly problems: readonly string[];
}

/** The helm binary: $HELM, else the one check-tools.sh builds into $GOPATH/bin, else helm on PATH. */
export function findHelm(): string {
  const candidates = [process.env.HELM, path.join(goBinDir(), 'helm')].filter((c): c is string => !!c);
  const found = candidates.find((c) => existsSync(c));
  if (found) return found;
  const onPath = spawnSync('helm', ['version', '--short'], { encoding: 'utf8' });
  if (onPath.status === 0) return 'helm';
  throw new Error(`helm is not installed (looked at ${candidates.join(', ')} and PATH): ${INSTALL_HINT}`);
}

/** Throws, naming the fix, when python3 cannot import kubernetes_validate. */
export function requireValidator(): void {
  const probe = spawnSync('python3', ['-c', 'import kubernetes_validate, yaml'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    throw new Error(`the Python package kubernetes-validate is not installed: ${INSTALL_HINT}\n${probe.stderr ?? ''}`);
  }
}

export function runHelm(helm: string, args: readonly string[]): HelmResult {
  const child = spawnSync(helm, args, { encoding: 'utf8', timeout: HELM_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 });
  if (child.error) throw new Error(`${helm} ${args.join(' ')} could not run: ${child.error.message}`, { cause: child.error });
  return { status: child.status, stdout: child.stdout, stderr: child.stderr };
}

export function valuesArgs(opts: RenderOptions): string[] {
  return [...(opts.valuesFiles ?? []).flatMap((f) => ['-f', path.join(CHART_DIR, f)]), ...(opts.set ?? []).flatMap((s) => ['--set', s])];
}

/** `helm template` as release `rel` in namespace `search`; the result (failures included) as helm gave it. */
export function templateChart(helm: string, opts: RenderOptions = {}): HelmResult {
  return runHelm(helm, ['template', 'rel', CHART_DIR, '--namespace', 'search', '--kube-version', RENDER_KUBE_VERSION, ...valuesArgs(opts)]);
}

/** Renders (throwing with helm's message on failure), parses and schema-validates the manifests. */
export function renderChart(helm: string, opts: RenderOptions = {}): ValidatedRender {
  const rendered = templateChart(helm, opts);
  if (rendered.status !== 0) throw new Error(`helm template failed:\n${rendered.stderr}`);
  const reply = runPythonJson<{ documents: Manifest[]; problems: string[] }>(
    VALIDATOR_SCRIPT,
    { yaml: rendered.stdout, kubernetesVersions: KUBERNETES_VERSIONS },
    { timeoutMs: 30_000 },
  );
  return { manifests: reply.documents, problems: reply.problems };
}

/** Where `go install` puts binaries (helm, promtool). */
export function goBinDir(): string {
  if (process.env.GOBIN) return process.env.GOBIN;
  const gopath = spawnSync('go', ['env', 'GOPATH'], { encoding: 'utf8' });
  const dir = gopath.status === 0 ? gopath.stdout.trim().split(path.delimiter)[0] : path.join(os.homedir(), 'go');
  return path.join(dir, 'bin');
}
