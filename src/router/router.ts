// A router: a `canopy.v1.Search` server whose backends are shard nodes. With
// static backends it learns the index (name, active version, metric, dim,
// shard count) from the backends' DescribeIndex before it reports SERVING.
import type { Logger } from 'pino';

import type { CanopyError } from '../client/canopy-error';
import type { QueryLimitsOptions } from '../client/query';
import { resolveQueryLimits } from '../client/query';
import type { SearchServerOptions } from '../client/search-server';
import { SearchServer } from '../client/search-server';
import type { BackendPoolOptions } from './backend-pool';
import { BackendPool } from './backend-pool';
import type { FanOutOptions } from './fan-out';
import { FanOut } from './fan-out';
import type { IndexView } from './index-view';
import { viewFromBackends } from './index-view';
import { RouterService } from './router-service';
import type { ShardCallerOptions } from './shard-caller';
import { ShardCaller } from './shard-caller';

export const DEFAULT_DEADLINE_MS = 2_000;
export const DEFAULT_REPLY_MARGIN_MS = 20;
export const DEFAULT_DISCOVERY_INTERVAL_MS = 500;
const DISCOVERY_CALL_TIMEOUT_MS = 2_000;

export interface RouterOptions extends SearchServerOptions, QueryLimitsOptions, BackendPoolOptions, ShardCallerOptions, FanOutOptions {
  /** Shard number -> replica addresses (HOST:PORT). */
  readonly backends: ReadonlyMap<number, readonly string[]>;
  readonly defaultDeadlineMs?: number;
  readonly replyMarginMs?: number;
  /** Pause between attempts to learn the index from the backends. */
  readonly discoveryIntervalMs?: number;
}

export class Router {
  readonly pool: BackendPool;
  readonly caller: ShardCaller;
  private readonly server: SearchServer;
  private readonly service: RouterService;
  private readonly discoveryIntervalMs: number;
  private view: IndexView | undefined;
  private discoveryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly options: RouterOptions,
    private readonly log: Logger,
  ) {
    this.discoveryIntervalMs = options.discoveryIntervalMs ?? DEFAULT_DISCOVERY_INTERVAL_MS;
    this.pool = new BackendPool(options, log);
    this.caller = new ShardCaller(this.pool, options);
    const fanOut = new FanOut(this.pool, this.caller, options);
    this.service = new RouterService(
      () => this.view,
      this.pool,
      this.caller,
      fanOut,
      resolveQueryLimits(options),
      {
        defaultDeadlineMs: options.defaultDeadlineMs ?? DEFAULT_DEADLINE_MS,
        replyMarginMs: options.replyMarginMs ?? DEFAULT_REPLY_MARGIN_MS,
      },
      (err, method) => this.logError(err, method),
    );
    this.server = new SearchServer(this.service.handlers(), options);
  }

  /** Connects to the backends and listens; resolves with the bound port. SERVING once the index is learned. */
  async start(): Promise<number> {
    for (const [shard, addresses] of this.options.backends) this.pool.setReplicas(shard, addresses);
    const port = await this.server.start();
    this.log.info({ listen: this.options.listen, port }, 'router listening');
    void this.discover();
    return port;
  }

  /** Replaces the view requests are pinned to (a membership watcher will call this). */
  setView(view: IndexView): void {
    const before = this.view;
    this.view = view;
    this.server.setServing(true);
    this.log.info({ from: before?.version, to: view.version, index: view.index, shards: view.shardCount }, 'index view');
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.discoveryTimer !== undefined) clearTimeout(this.discoveryTimer);
    this.service.drain.endAll();
    await this.server.close();
    this.pool.close();
    this.log.info('router closed');
  }

  /** Asks every replica for DescribeIndex until one answers and they agree. */
  private async discover(): Promise<void> {
    if (this.closed) return;
    const deadlineMs = Date.now() + DISCOVERY_CALL_TIMEOUT_MS;
    const replicas = this.pool.shardNumbers().flatMap((s) => this.pool.replicasOf(s));
    const answers = await Promise.allSettled(
      replicas.map(async (r) => ({ address: r.address, shard: r.shard, info: await this.caller.callReplica(r, 'DescribeIndex', { index: '' }, deadlineMs) })),
    );
    const infos = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
    try {
      if (infos.length > 0) {
        this.setView(viewFromBackends(infos));
        return;
      }
      this.log.warn({ backends: replicas.length }, 'no backend answered DescribeIndex yet');
    } catch (err) {
      this.log.error({ err }, 'cannot serve: backends do not fit together');
    }
    if (this.closed) return;
    this.discoveryTimer = setTimeout(() => void this.discover(), this.discoveryIntervalMs);
    this.discoveryTimer.unref();
  }

  private logError(err: CanopyError, method: string): void {
    if (err.codeName === 'INTERNAL') this.log.error({ err, method }, 'request failed');
    else this.log.debug({ code: err.codeName, method, message: err.message }, 'request refused');
  }
}
