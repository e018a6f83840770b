// The `canopy.v1.Search` service of a router: checks each request, pins it to
// the active version, fans it out to the shards and merges the answers. Ids
// are routed to the shard that holds them by the build's partitioner.
import type * as grpc from '@grpc/grpc-js';
import type { Context } from '@opentelemetry/api';

import { PARTITIONER, shardOfId } from '../format/partition';
import { CanopyError } from '../wire/canopy-error';
import type {
  BatchSearchRequest,
  BatchSearchResponse,
  DescribeIndexRequest,
  GetItemRequest,
  GetItemResponse,
  IndexInfo,
  SearchByItemRequest,
  SearchRequest,
  SearchResponse,
  SearchServiceHandlers,
  ShardInfo,
} from '../wire/contract';
import type { LoadGate } from '../wire/load-gate';
import type { QueryLimits, QueryShape } from '../wire/query';
import { decodeVector, encodeVector, parseBatch, parseQuery, parseShape, shapeFields } from '../wire/query';
import { batchQueries, batchStreamHandler, type CallErrorLogger, oneQuery, type QueryCounter, StreamDrain, unaryHandler } from '../wire/search-server';
import { ATTR_INDEX, ATTR_RPC_METHOD } from '../telemetry/attributes';
import { callParentOf } from '../telemetry/grpc-context';
import { canopyInstruments, isMetricsEnabled } from '../telemetry/instruments';
import type { FanOutAnswer, ShardQuery } from './fan-out';
import type { IndexRoute } from './index-route';
import type { IndexView } from './index-view';

export interface RouterServiceOptions {
  /** Deadline of a request that brings none. */
  readonly defaultDeadlineMs: number;
  /** Callers' deadlines further out are cut to this. */
  readonly maxDeadlineMs: number;
  /** Time kept back from the caller's deadline to send a (partial) answer in time (at most a tenth of it). */
  readonly replyMarginMs: number;
}

type Call<Req, Res> = grpc.ServerUnaryCall<Req, Res>;

export class RouterService {
  /** Open BatchSearchStream calls, ended on close. */
  readonly drain = new StreamDrain();

  constructor(
    /** The routes of the indexes this router knows, by name. */
    private readonly routes: ReadonlyMap<string, IndexRoute>,
    private readonly limits: QueryLimits,
    private readonly options: RouterServiceOptions,
    private readonly onError: CallErrorLogger,
    /** Refuses queries while the process is overloaded. */
    private readonly gate?: LoadGate,
  ) {}

  handlers(): SearchServiceHandlers {
    const wrap = <Req extends { readonly index: string }, Res>(method: string, fn: (req: Req, call: Call<Req, Res>, parent: Context | undefined) => Promise<Res>, queriesOf?: QueryCounter<Req>) =>
      unaryHandler(fn.bind(this), this.onError, method, queriesOf, this.gate);
    return {
      search: wrap('Search', this.search, oneQuery),
      batchSearch: wrap('BatchSearch', this.batchSearch, batchQueries),
      searchByItem: wrap('SearchByItem', this.searchByItem, oneQuery),
      getItem: wrap('GetItem', this.getItem),
      describeIndex: wrap('DescribeIndex', this.describeIndex),
      batchSearchStream: batchStreamHandler(
        (batch, deadlineMs, parent) => this.runBatch(batch, this.replyBy(Number.isFinite(deadlineMs) ? deadlineMs : undefined), parent, 'BatchSearchStream'),
        this.onError,
        this.drain,
        this.gate,
      ),
    };
  }

  private async search(req: SearchRequest, call: Call<SearchRequest, SearchResponse>, parent: Context | undefined): Promise<SearchResponse> {
    const { route, view } = this.pin(req.index, req.version);
    const query = parseQuery(req, view.dim, this.limits);
    const answer = await route.fanOut.search(view, [toShardQuery(query.vector, query)], this.deadlineOf(call), req.minShards, parent);
    countPartial(answer, view.index, 'Search');
    return withCoverage(answer.results[0]!, answer);
  }

  private batchSearch(req: BatchSearchRequest, call: Call<BatchSearchRequest, BatchSearchResponse>, parent: Context | undefined): Promise<BatchSearchResponse> {
    return this.runBatch(req, this.deadlineOf(call), parent, 'BatchSearch');
  }

  private async runBatch(req: BatchSearchRequest, deadlineMs: number, parent: Context | undefined, method: string): Promise<BatchSearchResponse> {
    const { route, view } = this.pin(req.index, req.version);
    const queries = parseBatch(req, view.dim, this.limits).map((parsed) => toShardQuery(parsed.vector, parsed));
    const answer = await route.fanOut.search(view, queries, deadlineMs, req.minShards, parent);
    countPartial(answer, view.index, method);
    return {
      results: answer.results.map((r) => withCoverage(r, answer)),
      indexVersion: view.version,
      shardsTotal: answer.shardsTotal,
      shardsAnswered: answer.shardsAnswered,
      shardsMissing: answer.shardsMissing,
    };
  }

  private async searchByItem(req: SearchByItemRequest, call: Call<SearchByItemRequest, SearchResponse>, parent: Context | undefined): Promise<SearchResponse> {
    const { route, view } = this.pin(req.index, req.version);
    const shape = parseShape(req, this.limits);
    const deadlineMs = this.deadlineOf(call);
    const item = await this.fetchItem(route, view, req.id, deadlineMs, parent);
    // GetItem carries the vector twice; the bytes are the cheap form.
    const vector = decodeVector({ vector: [], vectorF32: item.vectorF32 }, view.dim, `stored vector of ${JSON.stringify(req.id)}`);
    const answer = await route.fanOut.search(view, [toShardQuery(vector, shape)], deadlineMs, req.minShards, parent);
    countPartial(answer, view.index, 'SearchByItem');
    return withCoverage(answer.results[0]!, answer);
  }

  private async getItem(req: GetItemRequest, call: Call<GetItemRequest, GetItemResponse>, parent: Context | undefined): Promise<GetItemResponse> {
    const { route, view } = this.pin(req.index, req.version);
    return this.fetchItem(route, view, req.id, this.deadlineOf(call), parent);
  }

  /** Asks every replica of every shard, so the answer says how many replicas are reachable. */
  private async describeIndex(req: DescribeIndexRequest, call: Call<DescribeIndexRequest, IndexInfo>, parent: Context | undefined): Promise<IndexInfo> {
    const { route, view } = this.pin(req.index, '', true);
    const deadlineMs = this.deadlineOf(call);
    const callParent = callParentOf(parent);
    const shards: ShardInfo[] = await Promise.all(
      Array.from({ length: view.shardCount }, async (_, shard): Promise<ShardInfo> => {
        const replicas = route.pool.replicasOf(shard);
        const answers = await Promise.allSettled(
          replicas.map(async (r) => ({ replica: r.address, info: await route.caller.callReplica(r, 'DescribeIndex', { index: view.index }, deadlineMs, callParent) })),
        );
        const infos = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
        // Each replica's sidecars, named by replica: one replica may have refused a sidecar its peers use.
        const sidecars = infos.flatMap(({ replica, info }) => (info.shards[0]?.sidecars ?? []).map((s) => ({ ...s, replica })));
        return { shard, items: infos[0]?.info.items ?? 0, replicasTotal: replicas.length, replicasAnswered: infos.length, sidecars };
      }),
    );
    return {
      index: view.index,
      metric: view.metric,
      dim: view.dim,
      items: shards.reduce((sum, s) => sum + s.items, 0),
      nTrees: view.nTrees,
      shardCount: view.shardCount,
      activeVersion: view.version,
      shards,
      versions: [view.version],
      partitioner: PARTITIONER,
    };
  }

  /** GetItem on the shard that holds `id`. */
  private fetchItem(route: IndexRoute, view: IndexView, id: string, deadlineMs: number, parent: Context | undefined): Promise<GetItemResponse> {
    if (id === '') throw CanopyError.invalidArgument('id is required');
    const shard = shardOfId(id, view.shardCount);
    return route.caller.call(shard, 'GetItem', { index: view.index, id, version: view.version }, deadlineMs, 'unary', callParentOf(parent));
  }

  /**
   * The route and the view a request is pinned to: read once, so every shard
   * call of the request uses the same version even if the active one moves
   * meanwhile. NOT_FOUND for an unknown index or a version that is not
   * active; UNAVAILABLE while no index is known. An empty index name means
   * the only index, for DescribeIndex, when there is exactly one.
   */
  private pin(index: string, version: string, allowEmptyIndex = false): { route: IndexRoute; view: IndexView } {
    const name = index === '' && allowEmptyIndex ? this.onlyIndex() : index;
    if (name === '') throw CanopyError.invalidArgument('index is required');
    const route = this.routes.get(name);
    const view = route?.view;
    if (route === undefined || view === undefined) {
      const known = this.knownIndexes();
      if (known.length === 0) throw CanopyError.unavailable('the router does not know any index yet');
      throw CanopyError.notFound(`index ${JSON.stringify(name)} is not served here (serving: ${known.join(', ')})`);
    }
    if (version !== '' && version !== view.version) {
      throw CanopyError.notFound(`version ${JSON.stringify(version)} of ${view.index} is not active (active: ${view.version})`);
    }
    return { route, view };
  }

  private knownIndexes(): string[] {
    return [...this.routes].filter(([, r]) => r.view !== undefined).map(([name]) => name);
  }

  private onlyIndex(): string {
    const known = this.knownIndexes();
    return known.length === 1 ? known[0]! : '';
  }

  /** The deadline a unary call brings (see `replyBy`). */
  private deadlineOf(call: grpc.ServerUnaryCall<unknown, unknown>): number {
    const raw = call.getDeadline();
    const callerMs = raw instanceof Date ? raw.getTime() : Number.isFinite(raw) ? raw : undefined;
    return this.replyBy(callerMs);
  }

  /**
   * When the answer must be ready, as epoch ms: the caller's deadline (or the
   * default; at most the max deadline from now) less a margin to send it in, `replyMarginMs` or a tenth of the
   * time left if smaller.
   */
  private replyBy(callerMs: number | undefined): number {
    const nowMs = Date.now();
    const endMs = Math.min(callerMs ?? nowMs + this.options.defaultDeadlineMs, nowMs + this.options.maxDeadlineMs);
    return endMs - Math.min(this.options.replyMarginMs, Math.max(0, (endMs - nowMs) / 10));
  }
}

function toShardQuery(vector: Float32Array, shape: QueryShape): ShardQuery {
  return {
    // Every option of the query goes on unchanged: each shard applies them to its own search.
    request: { index: '', vector: [], vectorF32: encodeVector(vector), ...shapeFields(shape), minShards: 0, version: '' },
    k: shape.k,
    excluded: new Set(shape.excludeIds),
  };
}

/** Counts an answer that lacks shards in canopy.router.partial_answers. */
function countPartial(answer: FanOutAnswer, index: string, method: string): void {
  if (answer.shardsMissing.length > 0 && isMetricsEnabled()) canopyInstruments().partialAnswers.add(1, { [ATTR_INDEX]: index, [ATTR_RPC_METHOD]: method });
}

function withCoverage(result: SearchResponse, answer: FanOutAnswer): SearchResponse {
  return { ...result, shardsTotal: answer.shardsTotal, shardsAnswered: answer.shardsAnswered, shardsMissing: answer.shardsMissing };
}
