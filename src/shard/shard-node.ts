// A shard node: loads its shard of a version, then serves it over gRPC.
import type { Logger } from 'pino';

import type { CanopyError } from '../client/canopy-error';
import type { QueryLimitsOptions } from '../client/query';
import { resolveQueryLimits } from '../client/query';
import type { SearchServerOptions } from '../client/search-server';
import { SearchServer } from '../client/search-server';
import { LoadedVersion } from './loaded-version';
import { ShardCatalog } from './shard-catalog';
import type { ForestLoader } from './shard-forest';
import { ShardService } from './shard-service';

export const DEFAULT_VERIFY_CHECKSUMS = true;
export const DEFAULT_PREFAULT = true;

export interface ShardNodeOptions extends SearchServerOptions, QueryLimitsOptions {
  /** Folder of one index version (holds manifest.json). */
  readonly manifestDir: string;
  readonly shard: number;
  readonly verifyChecksums?: boolean;
  readonly prefault?: boolean;
}

export class ShardNode {
  private readonly catalog = new ShardCatalog();
  private readonly server: SearchServer;
  private readonly service: ShardService;
  private port: number | undefined;

  constructor(
    private readonly options: ShardNodeOptions,
    private readonly loadForest: ForestLoader,
    private readonly log: Logger,
  ) {
    this.service = new ShardService(this.catalog, resolveQueryLimits(options), (err, method) => this.logError(err, method));
    this.server = new SearchServer(this.service.handlers(), options);
  }

  /** Loads the shard, then listens; resolves with the bound port once serving. */
  async start(): Promise<number> {
    const { manifestDir, shard } = this.options;
    const loaded = await LoadedVersion.load(manifestDir, shard, this.loadForest, {
      verifyChecksums: this.options.verifyChecksums ?? DEFAULT_VERIFY_CHECKSUMS,
      prefault: this.options.prefault ?? DEFAULT_PREFAULT,
    });
    this.catalog.add(loaded, true);
    this.log.info({ index: loaded.index, version: loaded.version, shard, items: loaded.nItems }, 'version loaded');
    this.port = await this.server.start();
    this.server.setServing(true);
    this.log.info({ listen: this.options.listen, port: this.port }, 'shard node serving');
    return this.port;
  }

  async close(): Promise<void> {
    this.service.drain.endAll();
    await this.server.close();
    this.catalog.releaseAll();
    this.log.info('shard node closed');
  }

  private logError(err: CanopyError, method: string): void {
    if (err.codeName === 'INTERNAL') this.log.error({ err, method }, 'request failed');
    else this.log.debug({ code: err.codeName, method, message: err.message }, 'request refused');
  }
}
