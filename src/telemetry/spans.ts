// Span plumbing shared by the gRPC helpers and the engine span: one switch that
// makes every helper a plain call when tracing is off, and spans started under
// explicit parents. No span is ever made active: Canopy registers no context
// manager (see sdk-setup.ts), so parents travel as arguments.
import {
  type Attributes,
  type Context,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Tracer,
} from '@opentelemetry/api';

/** Instrumentation scope of every Canopy span. */
export const TRACER_NAME = 'canopy';

/**
 * Looked up per span, not cached: after a shutdown the API hands out a new
 * proxy provider, and a cached tracer would keep the old one.
 */
export function canopyTracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

// Set iff startTelemetry registered a tracer provider. While false the helpers
// skip the API entirely (no span object, no attributes, no carrier), which is
// what "off costs nothing" rests on.
let tracingEnabled = false;

/** Called by startTelemetry / its shutdown only. */
export function setTracingEnabled(enabled: boolean): void {
  tracingEnabled = enabled;
}

export function isTracingEnabled(): boolean {
  return tracingEnabled;
}

/** What a traced operation threw (possibly not an Error). */
export interface SpanFailure {
  readonly error: unknown;
}

/**
 * Whether a span started under `parent` may be recorded: tracing is on, there
 * is a parent, and it is not a span the sampler dropped. Under the
 * parent-based samplers Canopy documents (the SDK's default, and the chart's
 * parentbased_traceidratio) a child of a dropped span is dropped too, so the
 * helpers skip it entirely: no span object, no attributes, no ids. Test it
 * before building a span's attributes.
 */
export function mayRecordUnder(parent: Context | undefined): parent is Context {
  if (!tracingEnabled || parent === undefined) return false;
  const spanContext = trace.getSpanContext(parent);
  return spanContext === undefined || (spanContext.traceFlags & TraceFlags.SAMPLED) !== 0;
}

/**
 * Starts an INTERNAL span under `parent` (ROOT_CONTEXT: a root span).
 * undefined unless `mayRecordUnder(parent)`; end it with `endSpan`.
 */
export function startChildSpan(name: string, attributes: Attributes, parent: Context | undefined): Span | undefined {
  if (!mayRecordUnder(parent)) return undefined;
  return canopyTracer().startSpan(name, { kind: SpanKind.INTERNAL, attributes }, parent);
}

/** Ends a span from `startChildSpan`, marking it failed when `failure` is set. */
export function endSpan(span: Span | undefined, failure?: SpanFailure): void {
  if (span === undefined) return;
  settleInternal(span, failure);
  span.end();
}

function settleInternal(span: Span, failure?: SpanFailure): void {
  if (failure !== undefined) markFailed(span, failure.error);
}

/** Records `error` on the span as an exception event and sets status ERROR with its message. */
export function markFailed(span: Span, error: unknown): void {
  const exception = error instanceof Error ? error : new Error(String(error));
  span.recordException(exception);
  span.setStatus({ code: SpanStatusCode.ERROR, message: exception.message });
}
