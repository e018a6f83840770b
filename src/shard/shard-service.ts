// The `canopy.v1.Search` service of a shard node: answers from the versions in
// its catalog. Searches run on the engine's threads; the handlers only check
// input, translate ids and build responses.
import type * as grpc from '@grpc/grpc-js';
import type { Context } from '@opentelemetry/api';

import { CanopyError } from '../wire/canopy-error';
import type {
  BatchSearchRequest,
  BatchSearchResponse,
  DescribeIndexRequest,
  GetItemRequest,
  GetItemResponse,
  IndexInfo,
  Neighbor,
  SearchByItemRequest,
  SearchRequest,
  SearchResponse,
  SearchServiceHandlers,
} from '../wire/contract';
import type { LoadGate } from '../wire/load-gate';
import type { QueryLimits } from '../wire/query';
import { encodeVector, parseBatch, parseQuery, parseShape } from '../wire/query';
import { batchQueries, batchStreamHandler, type CallErrorLogger, oneQuery, type QueryCounter, StreamDrain, unaryHandler } from '../wire/search-server';
import type { LoadedVersion } from './loaded-version';
import type { ShardCatalog } from './shard-catalog';

export class ShardService {
  /** Open BatchSearchStream calls, ended on close. */
  readonly drain = new StreamDrain();

  constructor(
    private readonly catalog: ShardCatalog,
    private readonly limits: QueryLimits,
    private readonly onError: CallErrorLogger,
    /** Refuses searches while the process is overloaded. */
    private readonly gate?: LoadGate,
  ) {}

  handlers(): SearchServiceHandlers {
    const wrap = <Req extends { readonly index: string }, Res>(
      method: string,
      fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>, parent: Context | undefined) => Promise<Res>,
      queriesOf?: QueryCounter<Req>,
    ) => unaryHandler(fn.bind(this), this.onError, method, queriesOf, this.gate);
    return {
      search: wrap('Search', this.search, oneQuery),
      batchSearch: wrap('BatchSearch', (req: BatchSearchRequest, _call, parent) => this.batchSearch(req, parent), batchQueries),
      searchByItem: wrap('SearchByItem', this.searchByItem, oneQuery),
      getItem: wrap('GetItem', this.getItem),
      describeIndex: wrap('DescribeIndex', this.describeIndex),
      // The engine cannot stop a search midway, so the stream's deadline is not used here.
      batchSearchStream: batchStreamHandler((batch, _deadlineMs, parent) => this.batchSearch(batch, parent), this.onError, this.drain, this.gate),
    };
  }

  private async search(req: SearchRequest, _call: unknown, parent: Context | undefined): Promise<SearchResponse> {
    const loaded = this.catalog.resolve(req.index, req.version);
    const query = parseQuery(req, loaded.dim, this.limits);
    const [neighbors] = await loaded.search([query], parent);
    return answer(loaded, neighbors!);
  }

  private async batchSearch(req: BatchSearchRequest, parent: Context | undefined): Promise<BatchSearchResponse> {
    const loaded = this.catalog.resolve(req.index, req.version);
    const queries = parseBatch(req, loaded.dim, this.limits);
    const answers = await loaded.search(queries, parent);
    return {
      results: answers.map((neighbors) => answer(loaded, neighbors)),
      indexVersion: loaded.version,
      shardsTotal: 1,
      shardsAnswered: 1,
      shardsMissing: [],
    };
  }

  private async searchByItem(req: SearchByItemRequest, _call: unknown, parent: Context | undefined): Promise<SearchResponse> {
    const loaded = this.catalog.resolve(req.index, req.version);
    const shape = parseShape(req, this.limits);
    const vector = loaded.vectorOf(itemOf(loaded, req.id));
    const [neighbors] = await loaded.search([{ ...shape, vector }], parent);
    return answer(loaded, neighbors!);
  }

  private async getItem(req: GetItemRequest): Promise<GetItemResponse> {
    const loaded = this.catalog.resolve(req.index, req.version);
    const vector = loaded.vectorOf(itemOf(loaded, req.id));
    return {
      id: req.id,
      vector: Array.from(vector),
      vectorF32: encodeVector(vector),
      indexVersion: loaded.version,
      shard: loaded.shard,
    };
  }

  private async describeIndex(req: DescribeIndexRequest): Promise<IndexInfo> {
    const loaded = this.catalog.resolveCurrent(req.index);
    const m = loaded.manifest;
    return {
      index: m.index,
      metric: m.metric,
      dim: m.dim,
      items: loaded.nItems,
      nTrees: loaded.nTrees,
      shardCount: m.shardCount,
      activeVersion: loaded.version,
      shards: [
        {
          shard: loaded.shard,
          items: loaded.nItems,
          replicasTotal: 1,
          replicasAnswered: 1,
          sidecars: loaded.sidecars.map(({ kind, state, reason }) => ({ kind, state, reason: reason ?? '', replica: '' })),
        },
      ],
      versions: this.catalog.versionsOf(m.index),
      partitioner: m.partitioner,
    };
  }
}

function itemOf(loaded: LoadedVersion, id: string): number {
  if (id === '') throw CanopyError.invalidArgument('id is required');
  const item = loaded.itemOf(id);
  if (item === undefined) {
    throw CanopyError.notFound(`id ${JSON.stringify(id)} is not in shard ${loaded.shard} of ${loaded.index}/${loaded.version}`);
  }
  return item;
}

function answer(loaded: LoadedVersion, neighbors: Neighbor[]): SearchResponse {
  return { neighbors, indexVersion: loaded.version, shardsTotal: 1, shardsAnswered: 1, shardsMissing: [] };
}
