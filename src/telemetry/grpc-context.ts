// Trace context over gRPC: W3C `traceparent` / `tracestate` (and `baggage`)
// travel as grpc-js Metadata entries, so a router's client span and a shard's
// server span land in one trace across processes. Plus the two wrappers every
// RPC site uses: a server span around a handler, a client span around a call.
import {
  type Attributes,
  type Context,
  context,
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
import { canopyTracer, isTracingEnabled, markFailed, NOOP_SPAN, runInSpan, type SpanFailure } from './spans';

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

/** Writes the trace context of `ctx` (default: the active one) into `metadata`. No-op while tracing is off. */
export function injectTraceContext(metadata: Metadata, ctx: Context = context.active()): void {
  propagation.inject(ctx, metadata, metadataSetter);
}

/** The context a caller sent in `metadata` (ROOT_CONTEXT plus the remote span, if any). */
export function extractTraceContext(metadata: Metadata): Context {
  return propagation.extract(ROOT_CONTEXT, metadata, metadataGetter);
}

/**
 * Runs a server handler body in a SERVER span whose parent is the caller's
 * context from `metadata`. `name` is the RPC path, `canopy.v1.Search/Search`
 * (a leading `/`, as grpc-js `call.getPath()` gives it, is dropped); it also
 * sets `rpc.service` and `rpc.method`. The outcome sets `rpc.grpc.status_code`:
 * 0 on success, else the thrown error's numeric `code` (UNKNOWN when it has
 * none), so throw the status you answer with (a CanopyError). Only server-side
 * faults (see SERVER_FAULT_CODES) mark the span as an error.
 */
export function withServerSpan<T>(name: string, metadata: Metadata, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> {
  if (!isTracingEnabled()) return fn(NOOP_SPAN);
  const spanName = rpcSpanName(name);
  return runInSpan(spanName, SpanKind.SERVER, { ...rpcAttributes(spanName), ...attributes }, extractTraceContext(metadata), fn, settleServer);
}

/**
 * Runs one outgoing call in a CLIENT span, child of the active span. `fn` gets
 * fresh Metadata carrying this span as the remote parent: pass it to the call.
 * Any non-OK outcome marks the span as an error. Mark retries and hedges with
 * `canopy.attempt` (ATTR_ATTEMPT) in `attributes`.
 */
export function withClientSpan<T>(name: string, attributes: Attributes, fn: (metadata: Metadata, span: Span) => Promise<T>): Promise<T> {
  if (!isTracingEnabled()) return fn(new Metadata(), NOOP_SPAN);
  const spanName = rpcSpanName(name);
  return runInSpan(spanName, SpanKind.CLIENT, { ...rpcAttributes(spanName), ...attributes }, context.active(), (span) => {
    const metadata = new Metadata();
    injectTraceContext(metadata);
    return fn(metadata, span);
  }, settleClient);
}

/** A client span for callback-style calls; end it exactly once, with the call's error if it failed. */
export interface ClientSpan {
  readonly span: Span;
  end(error?: unknown): void;
}

/**
 * Starts a CLIENT span, child of the active span, and injects it into
 * `metadata`. For calls that cannot be wrapped in a promise (a hedged call
 * that may be cancelled from outside): the span is not made active.
 */
export function startClientSpan(name: string, attributes: Attributes, metadata: Metadata): ClientSpan {
  if (!isTracingEnabled()) return { span: NOOP_SPAN, end: () => undefined };
  const spanName = rpcSpanName(name);
  const parent = context.active();
  const span = canopyTracer().startSpan(spanName, { kind: SpanKind.CLIENT, attributes: { ...rpcAttributes(spanName), ...attributes } }, parent);
  injectTraceContext(metadata, trace.setSpan(parent, span));
  return {
    span,
    end: (error?: unknown) => {
      settleClient(span, error === undefined ? undefined : { error });
      span.end();
    },
  };
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

function rpcAttributes(spanName: string): Attributes {
  const slash = spanName.lastIndexOf('/');
  return slash < 0
    ? { [ATTR_RPC_SYSTEM]: RPC_SYSTEM_GRPC, [ATTR_RPC_METHOD]: spanName }
    : { [ATTR_RPC_SYSTEM]: RPC_SYSTEM_GRPC, [ATTR_RPC_SERVICE]: spanName.slice(0, slash), [ATTR_RPC_METHOD]: spanName.slice(slash + 1) };
}
