// The `canopy.v1` gRPC contract as TypeScript: where the proto lives, how it
// is loaded, and the shapes of its messages as grpc-js hands them over
// (proto-loader with camelCase fields, defaults filled, uint64 as number).
import path from 'node:path';

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** `proto/` at the package root; the same relative path from `src/client` and `dist/client`. */
export const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');
export const CANOPY_PROTO_FILE = 'canopy/v1/canopy.proto';
export const SEARCH_SERVICE_NAME = 'canopy.v1.Search';

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  arrays: true,
  includeDirs: [PROTO_ROOT],
};

let cachedDefinition: protoLoader.PackageDefinition | undefined;

/** The loaded package definition (parsed once per process); reflection serves it as is. */
export function canopyPackageDefinition(): protoLoader.PackageDefinition {
  cachedDefinition ??= protoLoader.loadSync(CANOPY_PROTO_FILE, LOADER_OPTIONS);
  return cachedDefinition;
}

export function searchServiceDefinition(): grpc.ServiceDefinition {
  return canopyPackageDefinition()[SEARCH_SERVICE_NAME] as grpc.ServiceDefinition;
}

/** A generic grpc-js client constructor for `canopy.v1.Search`. */
export function searchClientConstructor(): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(searchServiceDefinition(), 'Search');
}

export interface SearchRequest {
  index: string;
  vector: number[];
  vectorF32: Buffer;
  k: number;
  searchK: number;
  excludeIds: string[];
  minShards: number;
  version: string;
}

export interface Neighbor {
  id: string;
  distance: number;
}

export interface SearchResponse {
  neighbors: Neighbor[];
  indexVersion: string;
  shardsTotal: number;
  shardsAnswered: number;
  shardsMissing: number[];
}

export interface BatchSearchRequest {
  index: string;
  queries: SearchRequest[];
  minShards: number;
  version: string;
}

export interface BatchSearchResponse {
  results: SearchResponse[];
  indexVersion: string;
  shardsTotal: number;
  shardsAnswered: number;
  shardsMissing: number[];
}

export interface SearchByItemRequest {
  index: string;
  id: string;
  k: number;
  searchK: number;
  excludeIds: string[];
  minShards: number;
  version: string;
}

export interface GetItemRequest {
  index: string;
  id: string;
  version: string;
}

export interface GetItemResponse {
  id: string;
  vector: number[];
  vectorF32: Buffer;
  indexVersion: string;
  shard: number;
}

export interface DescribeIndexRequest {
  index: string;
}

export interface ShardInfo {
  shard: number;
  items: number;
  replicasTotal: number;
  replicasAnswered: number;
}

export interface IndexInfo {
  index: string;
  metric: string;
  dim: number;
  items: number;
  nTrees: number;
  shardCount: number;
  activeVersion: string;
  shards: ShardInfo[];
  versions: string[];
  partitioner: string;
}

export interface BatchSearchEnvelope {
  id: number;
  batch: BatchSearchRequest | null;
  timeoutMs: number;
  /** W3C trace context (`traceparent`, `tracestate`); `{}` when the caller does not trace. */
  traceContext?: Record<string, string>;
}

export interface BatchSearchReply {
  id: number;
  batch: BatchSearchResponse | null;
  code: number;
  message: string;
}

/** The server side of `canopy.v1.Search`, as grpc-js handlers. */
export interface SearchServiceHandlers extends grpc.UntypedServiceImplementation {
  search: grpc.handleUnaryCall<SearchRequest, SearchResponse>;
  batchSearch: grpc.handleUnaryCall<BatchSearchRequest, BatchSearchResponse>;
  searchByItem: grpc.handleUnaryCall<SearchByItemRequest, SearchResponse>;
  getItem: grpc.handleUnaryCall<GetItemRequest, GetItemResponse>;
  describeIndex: grpc.handleUnaryCall<DescribeIndexRequest, IndexInfo>;
  batchSearchStream: grpc.handleBidiStreamingCall<BatchSearchEnvelope, BatchSearchReply>;
}
