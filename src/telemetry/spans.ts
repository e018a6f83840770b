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
 * Starts an INTERNAL span under `parent` (ROOT_CONTEXT: a root span).
 * undefined while tracing is off or without a parent; end it with `endSpan`.
 */
export function startChildSpan(name: string, attributes: Attributes, parent: Context | undefined): Span | undefined {
  if (!tracingEnabled || parent === undefined) return undefined;
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
