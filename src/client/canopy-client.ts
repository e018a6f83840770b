// A small typed client of `canopy.v1.Search` for TypeScript callers: promise
// methods, vectors sent as float32 bytes, a deadline on every call, and
// failures as CanopyError (with the gRPC status code).
import * as grpc from '@grpc/grpc-js';

import { CanopyError } from '../wire/canopy-error';
import type {
  BatchSearchResponse,
  GetItemResponse,
  IndexInfo,
  SearchRequest,
  SearchResponse,
} from '../wire/contract';
import { searchClientConstructor } from '../wire/contract';
import { encodeVector } from '../wire/query';
import { channelCredentials, type TlsFiles } from '../wire/tls';

export const DEFAULT_CLIENT_DEADLINE_MS = 5_000;
export const DEFAULT_CLIENT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export interface CanopyClientOptions {
  /** HOST:PORT of a router or a shard node. */
  readonly target: string;
  /** Deadline of each call unless the call sets its own. */
  readonly deadlineMs?: number;
  readonly maxMessageBytes?: number;
  /** Dial with TLS: `caFile` verifies the server; `certFile`/`keyFile` are presented for mutual TLS. Omitted: plaintext. */
  readonly tls?: TlsFiles;
}

export interface QueryOptions {
  readonly k?: number;
  /** Nodes to inspect per shard; omitted: n_trees * k. */
  readonly searchK?: number;
  readonly excludeIds?: readonly string[];
  /** Shards that must answer; omitted: all. */
  readonly minShards?: number;
  /** Version to pin; omitted: the active one. */
  readonly version?: string;
  readonly deadlineMs?: number;
  /** Search each shard's forest alone, as Annoy (the same answers), even where it has codes. Default false. */
  readonly exact?: boolean;
  /** With codes: candidates re-ranked with exact distances; omitted: 2k, at least 10. */
  readonly rerank?: number;
  /** Beam width of a graph search, where a shard has a graph; omitted: the forest alone. */
  readonly ef?: number;
}

export const DEFAULT_K = 10;

type Callback<Res> = (err: grpc.ServiceError | null, res?: Res) => void;
type Unary = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: Callback<unknown>) => grpc.ClientUnaryCall;

export class CanopyClient {
  private readonly client: grpc.Client;
  private readonly deadlineMs: number;

  constructor(options: CanopyClientOptions) {
    const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_CLIENT_MAX_MESSAGE_BYTES;
    this.deadlineMs = options.deadlineMs ?? DEFAULT_CLIENT_DEADLINE_MS;
    const Client = searchClientConstructor();
    this.client = new Client(options.target, channelCredentials(options.tls), {
      'grpc.enable_channelz': 0,
      // Each client its own connection, as a user expects of `new CanopyClient`: several
      // clients then spread over the workers of a --workers router.
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': maxMessageBytes,
      'grpc.max_send_message_length': maxMessageBytes,
    });
  }

  search(index: string, vector: Float32Array | readonly number[], options: QueryOptions = {}): Promise<SearchResponse> {
    return this.unary('Search', toRequest(index, vector, options), options.deadlineMs);
  }

  /** Several queries in one call; `options` apply to each (minShards, version to the batch). */
  batchSearch(index: string, vectors: readonly (Float32Array | readonly number[])[], options: QueryOptions = {}): Promise<BatchSearchResponse> {
    return this.unary(
      'BatchSearch',
      {
        index,
        queries: vectors.map((v) => toRequest('', v, { ...options, minShards: 0, version: '' })),
        minShards: options.minShards ?? 0,
        version: options.version ?? '',
      },
      options.deadlineMs,
    );
  }

  searchByItem(index: string, id: string, options: QueryOptions = {}): Promise<SearchResponse> {
    return this.unary(
      'SearchByItem',
      {
        index,
        id,
        ...shapeOf(options),
        minShards: options.minShards ?? 0,
        version: options.version ?? '',
      },
      options.deadlineMs,
    );
  }

  getItem(index: string, id: string, options: { version?: string; deadlineMs?: number } = {}): Promise<GetItemResponse> {
    return this.unary('GetItem', { index, id, version: options.version ?? '' }, options.deadlineMs);
  }

  /** `index` may be empty when the target serves exactly one index. */
  describeIndex(index = '', options: { deadlineMs?: number } = {}): Promise<IndexInfo> {
    return this.unary('DescribeIndex', { index }, options.deadlineMs);
  }

  close(): void {
    this.client.close();
  }

  private unary<Res>(method: string, request: unknown, deadlineMs = this.deadlineMs): Promise<Res> {
    const fn = (this.client as unknown as Record<string, Unary>)[method]!;
    return new Promise<Res>((resolve, reject) => {
      fn.call(this.client, request, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => {
        if (err) reject(CanopyError.from(err));
        else resolve(res as Res);
      });
    });
  }
}

function toRequest(index: string, vector: Float32Array | readonly number[], options: QueryOptions): SearchRequest {
  const floats = vector instanceof Float32Array ? vector : Float32Array.from(vector);
  return {
    index,
    vector: [],
    vectorF32: encodeVector(floats),
    ...shapeOf(options),
    minShards: options.minShards ?? 0,
    version: options.version ?? '',
  };
}

/** The per-query fields of a request, each 0 / empty / false when the option is omitted. */
function shapeOf(options: QueryOptions) {
  return {
    k: options.k ?? DEFAULT_K,
    searchK: options.searchK ?? 0,
    excludeIds: [...(options.excludeIds ?? [])],
    exact: options.exact ?? false,
    rerank: options.rerank ?? 0,
    ef: options.ef ?? 0,
  };
}
