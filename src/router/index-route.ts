// Everything a router needs to answer for one index: the shard replicas (a
// pool with its own channels), the caller that retries and hedges over them,
// the fan-out that coalesces and merges, and the view requests are pinned to.
import type { Logger } from 'pino';

import type { BackendPoolOptions } from './backend-pool';
import { BackendPool } from './backend-pool';
import type { FanOutOptions } from './fan-out';
import { FanOut } from './fan-out';
import type { IndexView } from './index-view';
import type { ShardCallerOptions } from './shard-caller';
import { ShardCaller } from './shard-caller';

export type IndexRouteOptions = BackendPoolOptions & ShardCallerOptions & FanOutOptions;

export class IndexRoute {
  readonly pool: BackendPool;
  readonly caller: ShardCaller;
  readonly fanOut: FanOut;
  /** Set once the index is known; replaced (never mutated) when the active version moves. */
  view: IndexView | undefined;

  constructor(options: IndexRouteOptions, log: Logger) {
    this.pool = new BackendPool(options, log);
    this.caller = new ShardCaller(this.pool, options);
    this.fanOut = new FanOut(this.pool, this.caller, options);
  }

  close(): void {
    this.pool.close();
  }
}
