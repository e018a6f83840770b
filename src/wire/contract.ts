// The `canopy.v1` gRPC contract as TypeScript: where the proto lives, how it
// is loaded, and the shapes of its messages as grpc-js hands them over
// (proto-loader with camelCase fields, defaults filled, uint64 as number).
// The loader options here and the generator's flags in package.json
// (`proto:types`) must agree: both say camelCase, defaults, longs as Number.
import path from 'node:path';

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

import type { SearchRequest__Output } from './generated/canopy/v1/SearchRequest';
import type { Neighbor__Output } from './generated/canopy/v1/Neighbor';
import type { SearchResponse__Output } from './generated/canopy/v1/SearchResponse';
import type { BatchSearchRequest__Output } from './generated/canopy/v1/BatchSearchRequest';
import type { BatchSearchResponse__Output } from './generated/canopy/v1/BatchSearchResponse';
import type { SearchByItemRequest__Output } from './generated/canopy/v1/SearchByItemRequest';
import type { GetItemRequest__Output } from './generated/canopy/v1/GetItemRequest';
import type { GetItemResponse__Output } from './generated/canopy/v1/GetItemResponse';
import type { DescribeIndexRequest__Output } from './generated/canopy/v1/DescribeIndexRequest';
import type { ShardInfo__Output } from './generated/canopy/v1/ShardInfo';
import type { IndexInfo__Output } from './generated/canopy/v1/IndexInfo';
import type { BatchSearchReply__Output } from './generated/canopy/v1/BatchSearchReply';
import type { BatchSearchEnvelope__Output } from './generated/canopy/v1/BatchSearchEnvelope';

/** `proto/` at the package root; the same relative path from `src/wire` and `dist/wire`. */
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

// The message shapes are generated from the proto at build time
// (`npm run proto:types`, into `src/wire/generated/`), so the proto is their one
// source. Canopy's code sees messages as grpc-js hands them over (the generated
// `__Output` shapes: every field present, defaults filled) and builds its
// replies in the same full shape.
export type SearchRequest = SearchRequest__Output;
export type Neighbor = Neighbor__Output;
export type SearchResponse = SearchResponse__Output;
export type BatchSearchRequest = BatchSearchRequest__Output;
export type BatchSearchResponse = BatchSearchResponse__Output;
export type SearchByItemRequest = SearchByItemRequest__Output;
export type GetItemRequest = GetItemRequest__Output;
export type GetItemResponse = GetItemResponse__Output;
export type DescribeIndexRequest = DescribeIndexRequest__Output;
export type ShardInfo = ShardInfo__Output;
export type IndexInfo = IndexInfo__Output;
export type BatchSearchReply = BatchSearchReply__Output;

/** A stream message; `traceContext` (W3C `traceparent`, `tracestate`) is left out when the caller does not trace. */
export type BatchSearchEnvelope = Omit<BatchSearchEnvelope__Output, 'traceContext'> & Partial<Pick<BatchSearchEnvelope__Output, 'traceContext'>>;

/** The server side of `canopy.v1.Search`, as grpc-js handlers. */
export interface SearchServiceHandlers extends grpc.UntypedServiceImplementation {
  search: grpc.handleUnaryCall<SearchRequest, SearchResponse>;
  batchSearch: grpc.handleUnaryCall<BatchSearchRequest, BatchSearchResponse>;
  searchByItem: grpc.handleUnaryCall<SearchByItemRequest, SearchResponse>;
  getItem: grpc.handleUnaryCall<GetItemRequest, GetItemResponse>;
  describeIndex: grpc.handleUnaryCall<DescribeIndexRequest, IndexInfo>;
  batchSearchStream: grpc.handleBidiStreamingCall<BatchSearchEnvelope, BatchSearchReply>;
}
