// Trace context over gRPC: W3C `traceparent` / `tracestate` travel as grpc-js
// Metadata entries (or, on a BatchSearchStream, in each message's
// `trace_context` map), so a router's client span and a shard's server span
// land in one trace across processes. Plus the spans every RPC site starts: a
// SERVER span per served call, a CLIENT span per call attempt. Parents are
// passed explicitly (see spans.ts).
import {
  type Attributes,
  type Context,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  type TextMapGetter,
  type TextMapSetter,
  trace,
} from '@opentelemetry/api';
import { Metadata, status as GrpcStatus } from '@grpc/grpc-js';

import { ATTR_RPC_GRPC_STATUS_CODE, ATTR_RPC_METHOD, ATTR_RPC_SERVICE, ATTR_RPC_SYSTEM, RPC_SYSTEM_GRPC } from './attributes';
import { canopyTracer, isTracingEnabled, markFailed, mayRecordUnder, type SpanFailure } from './spans';

const metadataGetter: TextMapGetter<Metadata> = {
  keys: (metadata) => Object.keys(metadata.getMap()),
  get: (metadata, key) => {
    // Text entries only: trace headers are never `-bin` keys.
    const values = metadata.get(key).filter((value): value is string => typeof value === 'string');
    return values.length === 0 ? undefined : values;
  },
};

const metadataSetter: TextMapSetter<Metadata> = {
  set: (metadata, key, value) => metadata.set(key, value),
};

/** Writes the trace context of `ctx` into `metadata`. No-op while tracing is off. */
export function injectTraceContext(metadata: Metadata, ctx: Context): void {
  propagation.inject(ctx, metadata, metadataSetter);
}

/** The context a caller sent in `metadata` (ROOT_CONTEXT plus the remote span, if any). */
export function extractTraceContext(metadata: Metadata): Context {
  return propagation.extract(ROOT_CONTEXT, metadata, metadataGetter);
}

/** A started span and the context that makes it a parent of others. */
export interface SpanScope {
  readonly span: Span;
  readonly context: Context;
}

/** Trace context as a plain string map: the `trace_context` of a BatchSearchEnvelope. */
export type TraceCarrier = Record<string, string>;

/**
 * Starts a SERVER span for one served call (or one stream message), parented
 * on the caller's context in `carrier`; undefined while tracing is off. `path`
 * is the RPC path, `canopy.v1.Search/Search` (a leading `/`, as grpc-js
 * `call.getPath()` gives it, is dropped); it also sets `rpc.service` and
 * `rpc.method`. End it with `endServerSpan`: the outcome sets
 * `rpc.grpc.status_code` (0 on success, else the error's numeric `code`,
 * UNKNOWN when it has none); only server-side faults (SERVER_FAULT_CODES)
 * mark the span as an error.
 */
export function startServerSpan(path: string, carrier: Metadata | TraceCarrier | undefined, attributes: Attributes): SpanScope | undefined {
  if (!isTracingEnabled()) return undefined;
  const parent = carrier === undefined
    ? ROOT_CONTEXT
    : carrier instanceof Metadata ? extractTraceContext(carrier) : propagation.extract(ROOT_CONTEXT, carrier);
  // The caller's span was dropped by its sampler: so is this one. Its context
  // is passed on as is, so the calls this one makes stay unsampled too.
  if (!mayRecordUnder(parent)) return unrecorded(parent);
  const spanName = rpcSpanName(path);
  const span = canopyTracer().startSpan(spanName, { kind: SpanKind.SERVER, attributes: { ...rpcAttributes(spanName), ...attributes } }, parent);
  return { span, context: trace.setSpan(parent, span) };
}

/** Ends a span from `startServerSpan` with the call's outcome (`error` unset: OK). */
export function endServerSpan(scope: SpanScope | undefined, error?: unknown): void {
  if (scope === undefined) return;
  settleServer(scope.span, error === undefined ? undefined : { error });
  scope.span.end();
}

/**
 * Where an outgoing call sits in a trace: under `context`, and linked to
 * `links` (a coalesced shard call serves several queries, each with its own
 * trace: it is parented on one of them and linked to the others).
 */
export interface CallParent {
  readonly context: Context;
  readonly links: readonly Link[];
}

/** A CallParent of one request's context; undefined while tracing is off. */
export function callParentOf(parent: Context | undefined): CallParent | undefined {
  return parent === undefined ? undefined : { context: parent, links: [] };
}

/**
 * The CallParent of a call made for several requests: the first traced one is
 * the parent, the others become span links (OpenTelemetry's way to tie one
 * operation to several traces). undefined when none is traced.
 */
export function sharedCallParent(parents: readonly (Context | undefined)[]): CallParent | undefined {
  let context: Context | undefined;
  const links: Link[] = [];
  // Queries of one BatchSearch share their request's context: link each trace once.
  const seen = new Set<Context>();
  for (const parent of parents) {
    if (parent === undefined || seen.has(parent)) continue;
    seen.add(parent);
    if (context === undefined) {
      context = parent;
      continue;
    }
    const spanContext = trace.getSpanContext(parent);
    if (spanContext !== undefined) links.push({ context: spanContext });
  }
  return context === undefined ? undefined : { context, links };
}

/**
 * Starts a CLIENT span for one outgoing call attempt under `parent` (a root
 * span when the call serves no request, e.g. discovery); undefined while
 * tracing is off. Mark retries and hedges with `canopy.attempt` in
 * `attributes`. Inject `context` into the call's Metadata or carrier, and end
 * it with `endClientCallSpan`: any non-OK outcome but `cancelled` marks it as
 * an error.
 */
export function startClientCallSpan(path: string, attributes: Attributes, parent: CallParent | undefined): SpanScope | undefined {
  if (!isTracingEnabled()) return undefined;
  const parentContext = parent?.context ?? ROOT_CONTEXT;
  // Under a dropped span: no span, but its (unsampled) context still travels with the call.
  if (!mayRecordUnder(parentContext)) return unrecorded(parentContext);
  const spanName = rpcSpanName(path);
  const span = canopyTracer().startSpan(
    spanName,
    { kind: SpanKind.CLIENT, attributes: { ...rpcAttributes(spanName), ...attributes }, links: parent?.links.length ? [...parent.links] : undefined },
    parentContext,
  );
  return { span, context: trace.setSpan(parentContext, span) };
}

/** A scope standing for a span that is not recorded: the dropped parent's own. */
function unrecorded(parent: Context): SpanScope {
  return { span: trace.getSpan(parent)!, context: parent };
}

/** Writes the trace context of `scope` into a plain map (a stream message's `trace_context`). */
export function injectTraceCarrier(scope: SpanScope): TraceCarrier {
  const carrier: TraceCarrier = {};
  propagation.inject(scope.context, carrier);
  return carrier;
}

/**
 * Ends a client attempt span: OK, failed with `error`, or `cancelled` (the
 * other attempt of a hedged call won: not an error, status code CANCELLED).
 */
export function endClientCallSpan(scope: SpanScope | undefined, outcome: { readonly error?: unknown; readonly cancelled?: boolean }): void {
  if (scope === undefined) return;
  if (outcome.cancelled) scope.span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, GrpcStatus.CANCELLED);
  else settleClient(scope.span, outcome.error === undefined ? undefined : { error: outcome.error });
  scope.span.end();
}

/** The gRPC status a thrown value stands for: its numeric `code`, else UNKNOWN. */
export function grpcStatusOf(error: unknown): GrpcStatus {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' && code in GrpcStatus ? (code as GrpcStatus) : GrpcStatus.UNKNOWN;
}

/**
 * Codes that mean the server failed, per the OpenTelemetry gRPC conventions;
 * the others (INVALID_ARGUMENT, NOT_FOUND, ...) are the caller's problem and
 * leave a server span's status unset.
 */
const SERVER_FAULT_CODES: ReadonlySet<GrpcStatus> = new Set([
  GrpcStatus.UNKNOWN,
  GrpcStatus.DEADLINE_EXCEEDED,
  GrpcStatus.UNIMPLEMENTED,
  GrpcStatus.INTERNAL,
  GrpcStatus.UNAVAILABLE,
  GrpcStatus.DATA_LOSS,
]);

function settleServer(span: Span, failure?: SpanFailure): void {
  const code = failure === undefined ? GrpcStatus.OK : grpcStatusOf(failure.error);
  span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, code);
  if (failure === undefined) return;
  if (SERVER_FAULT_CODES.has(code)) markFailed(span, failure.error);
  else span.recordException(failure.error instanceof Error ? failure.error : String(failure.error));
}

function settleClient(span: Span, failure?: SpanFailure): void {
  span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, failure === undefined ? GrpcStatus.OK : grpcStatusOf(failure.error));
  if (failure !== undefined) markFailed(span, failure.error);
}

function rpcSpanName(path: string): string {
  return path.startsWith('/') ? path.slice(1) : path;
}

// Made once per span name: a served or sent call copies them, never rebuilds them.
const rpcAttributesByName = new Map<string, Attributes>();

function rpcAttributes(spanName: string): Attributes {
  let attributes = rpcAttributesByName.get(spanName);
  if (attributes === undefined) {
    const slash = spanName.lastIndexOf('/');
    attributes = slash < 0
      ? { [ATTR_RPC_SYSTEM]: RPC_SYSTEM_GRPC, [ATTR_RPC_METHOD]: spanName }
      : { [ATTR_RPC_SYSTEM]: RPC_SYSTEM_GRPC, [ATTR_RPC_SERVICE]: spanName.slice(0, slash), [ATTR_RPC_METHOD]: spanName.slice(slash + 1) };
    rpcAttributesByName.set(spanName, attributes);
  }
  return attributes;
}
