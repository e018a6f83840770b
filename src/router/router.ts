// A router: a `canopy.v1.Search` server whose backends are shard nodes. With
// static backends it serves one index and learns it (name, active version,
// metric, dim, shard count) from the backends' DescribeIndex before it
// reports SERVING. With a registry it serves every index that has an active
// version in etcd, follows membership and versions as they change, and runs
// the version controller.
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';

import type { CanopyError } from '../wire/canopy-error';
import type { QueryLimitsOptions } from '../wire/query';
import { resolveQueryLimits } from '../wire/query';
import { LoadGate, type LoadGateOptions } from '../wire/load-gate';
import type { SearchServerOptions } from '../wire/search-server';
import { SearchServer } from '../wire/search-server';
import { channelCredentials, type TlsFiles } from '../wire/tls';
import { ClusterView, type WatchState } from '../registry/cluster-view';
import type { ClusterKeys } from '../registry/keys';
import { VersionController } from '../registry/version-controller';
import { declareRouterIndex } from '../telemetry/instruments';
import type { LogTraceFields } from '../telemetry/log-trace-context';
import { IndexRoute, type IndexRouteOptions } from './index-route';
import { viewFromBackends } from './index-view';
import { applySnapshot } from './registry-routes';
import { routerDeadlines } from './router-defaults';
import { RouterService } from './router-service';

export const DEFAULT_REPLY_MARGIN_MS = 20;
export const DEFAULT_DISCOVERY_INTERVAL_MS = 500;
const DISCOVERY_CALL_TIMEOUT_MS = 2_000;

export interface RouterRegistryOptions {
  readonly etcd: Etcd3;
  readonly keys: ClusterKeys;
  /** Run the version controller here (safe in every router at once); default true. */
  readonly controller?: boolean;
  /** Ready replicas every shard needs before the controller flips; default 1. */
  readonly minReadyReplicas?: number;
}

export interface RouterOptions extends SearchServerOptions, QueryLimitsOptions, IndexRouteOptions, LoadGateOptions {
  /** Static mode: shard number -> replica addresses (HOST:PORT) of the one index. */
  readonly backends?: ReadonlyMap<number, readonly string[]>;
  /** Registry mode. Exactly one of `backends` and `registry`. */
  readonly registry?: RouterRegistryOptions;
  readonly defaultDeadlineMs?: number;
  readonly maxDeadlineMs?: number;
  readonly replyMarginMs?: number;
  /**
   * Dial shard nodes with TLS: `caFile` verifies them, and `certFile`/`keyFile`
   * are presented as this router's client certificate (shards that require
   * one accept it when their CA signed it). Omitted: plaintext.
   */
  readonly backendTls?: TlsFiles;
  /** Static mode: pause between attempts to learn the index from the backends. */
  readonly discoveryIntervalMs?: number;
  /**
   * Static mode: called once, and discovery stops, when the backends answer
   * but do not form one index's shard set (mis-numbered, another index, too
   * few shards): waiting cannot fix a configuration. Unset: logged, retried.
   */
  readonly onBackendsUnfit?: (err: Error) => void;
}

export class Router {
  private readonly routes = new Map<string, IndexRoute>();
  private readonly server: SearchServer;
  private readonly service: RouterService;
  private readonly gate: LoadGate;
  private readonly discoveryIntervalMs: number;
  /** What every index route is built with: `options` plus the shard credentials, read once. */
  private readonly routeOptions: IndexRouteOptions;
  private discoveryTimer: NodeJS.Timeout | undefined;
  /** Static mode: the one route, kept here too while the index is not yet learned. */
  private staticRoute: IndexRoute | undefined;
  private clusterView: ClusterView | undefined;
  private controller: VersionController | undefined;
  private closed = false;

  constructor(
    private readonly options: RouterOptions,
    private readonly log: Logger,
  ) {
    if ((options.backends === undefined) === (options.registry === undefined)) {
      throw new Error('a router uses either static backends (--backend) or etcd (--etcd), not both or neither');
    }
    this.discoveryIntervalMs = options.discoveryIntervalMs ?? DEFAULT_DISCOVERY_INTERVAL_MS;
    this.routeOptions = { ...options, backendCredentials: channelCredentials(options.backendTls) };
    const { defaultDeadlineMs, maxDeadlineMs } = routerDeadlines(options.defaultDeadlineMs, options.maxDeadlineMs);
    this.gate = new LoadGate(options);
    this.service = new RouterService(
      this.routes,
      resolveQueryLimits(options),
      {
        defaultDeadlineMs,
        maxDeadlineMs,
        replyMarginMs: options.replyMarginMs ?? DEFAULT_REPLY_MARGIN_MS,
      },
      (err, method, trace) => this.logError(err, method, trace),
      this.gate,
    );
    this.server = new SearchServer(this.service.handlers(), options);
  }

  /** Listens, then learns its indexes; resolves with the bound port. SERVING once an index is known. */
  async start(): Promise<number> {
    const port = await this.server.start();
    this.log.info({ listen: this.options.listen, port }, 'router listening');
    if (this.options.registry !== undefined) this.follow(this.options.registry);
    else void this.discover((this.staticRoute = routeOver(this.options.backends!, this.routeOptions, this.log)));
    return port;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.discoveryTimer !== undefined) clearTimeout(this.discoveryTimer);
    this.controller?.stop();
    await this.clusterView?.close();
    this.service.drain.endAll();
    await this.server.close();
    this.gate.stop();
    for (const route of this.routes.values()) route.close();
    this.staticRoute?.close();
    this.routes.clear();
    this.log.info('router closed');
  }

  /** Registry mode: whether the watch on the cluster in etcd is live (undefined in static mode). */
  get etcdWatchState(): WatchState | undefined {
    return this.clusterView?.watchState;
  }

  private follow(registry: RouterRegistryOptions): void {
    const view = new ClusterView({ etcd: registry.etcd, keys: registry.keys });
    this.clusterView = view;
    view.on('change', (snapshot) => {
      applySnapshot(this.routes, snapshot, this.routeOptions, this.log);
      this.server.setServing(this.routes.size > 0);
    });
    view.on('invalid', (key, reason) => this.log.warn({ key, reason }, 'ignoring an unreadable etcd value'));
    if (registry.controller ?? true) {
      this.controller = new VersionController({
        etcd: registry.etcd,
        keys: registry.keys,
        view,
        minReadyReplicas: registry.minReadyReplicas,
        onFlip: (index, version) => this.log.info({ index, version }, 'flipped active version'),
        onError: (err) => this.log.warn({ err: err.message }, 'version flip failed; will retry on the next change'),
      });
      this.controller.start();
    }
    void view.start();
  }

  /** Asks every replica for DescribeIndex until one answers and they agree. */
  private async discover(route: IndexRoute): Promise<void> {
    if (this.closed) return;
    const deadlineMs = Date.now() + DISCOVERY_CALL_TIMEOUT_MS;
    const replicas = route.pool.shardNumbers().flatMap((s) => route.pool.replicasOf(s));
    const answers = await Promise.allSettled(
      replicas.map(async (r) => ({ address: r.address, shard: r.shard, info: await route.caller.callReplica(r, 'DescribeIndex', { index: '' }, deadlineMs) })),
    );
    const infos = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
    try {
      if (infos.length > 0) {
        const view = viewFromBackends(infos);
        const configured = route.pool.shardNumbers();
        if (configured.length !== view.shardCount) {
          throw new Error(`index ${view.index} has ${view.shardCount} shards, but --backend names shard(s) ${configured.join(', ')}`);
        }
        route.view = view;
        this.routes.set(route.view.index, route);
        declareRouterIndex(route.view.index, route.view.shardCount);
        this.server.setServing(true);
        this.log.info({ index: route.view.index, version: route.view.version, shards: route.view.shardCount }, 'index view');
        return;
      }
      this.log.warn({ backends: replicas.length }, 'no backend answered DescribeIndex yet');
    } catch (err) {
      if (this.options.onBackendsUnfit !== undefined) {
        this.options.onBackendsUnfit(err as Error);
        return;
      }
      this.log.error({ err }, 'cannot serve: backends do not fit together');
    }
    if (this.closed) return;
    this.discoveryTimer = setTimeout(() => void this.discover(route), this.discoveryIntervalMs);
    this.discoveryTimer.unref();
  }

  private logError(err: CanopyError, method: string, trace: LogTraceFields): void {
    if (err.codeName === 'INTERNAL') this.log.error({ err, method, ...trace }, 'request failed');
    else this.log.debug({ code: err.codeName, method, message: err.message, ...trace }, 'request refused');
  }
}

function routeOver(backends: ReadonlyMap<number, readonly string[]>, options: IndexRouteOptions, log: Logger): IndexRoute {
  const route = new IndexRoute(options, log);
  for (const [shard, addresses] of backends) route.pool.setReplicas(shard, addresses);
  return route;
}
