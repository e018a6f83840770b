// One call a router or shard node serves (a unary RPC, or one message of a
// BatchSearchStream), as telemetry sees it: its SERVER span, its duration in
// canopy.rpc.server.duration_seconds by method, status and index, and the queries it holds in
// canopy.inflight_queries. With telemetry off `startServedCall` returns
// undefined, so a handler pays one flag test and allocates nothing.
import type { Metadata } from '@grpc/grpc-js';
import type { Attributes, Context } from '@opentelemetry/api';

import { ATTR_BATCH_QUERIES, ATTR_INDEX, ATTR_RPC_GRPC_STATUS_CODE, ATTR_RPC_METHOD } from './attributes';
import { endServerSpan, grpcStatusOf, type SpanScope, startServerSpan, type TraceCarrier } from './grpc-context';
import { canopyInstruments, type InflightCell, inflightQueriesOf, isMetricsEnabled } from './instruments';
import { type LogTraceFields, traceFieldsOf } from './log-trace-context';
import { isTracingEnabled } from './spans';

export interface ServedCall {
  /** Parent of the spans the handler starts (pass it down); undefined while tracing is off. */
  readonly parent: Context | undefined;
  /** Trace and span ids for a log line about this call. */
  logFields(): LogTraceFields;
  /** Records the outcome (`error` unset: OK); call exactly once. */
  end(error?: unknown): void;
}

/**
 * Starts recording a served call of `service`/`method` on `index` whose
 * caller's trace context is in `carrier`. `queries` is how many queries it
 * carries (0 for GetItem and DescribeIndex). undefined while telemetry is off.
 */
export function startServedCall(
  service: string,
  method: string,
  index: string,
  carrier: Metadata | TraceCarrier | undefined,
  queries: number,
): ServedCall | undefined {
  const metrics = isMetricsEnabled();
  if (!metrics && !isTracingEnabled()) return undefined;
  const scope = startServerSpan(`${service}/${method}`, carrier, queries > 1 ? { [ATTR_BATCH_QUERIES]: queries } : {});
  return new RecordedCall(method, index, scope, metrics && queries > 0 ? inflightQueriesOf(method) : undefined, queries, metrics ? performance.now() : undefined);
}

class RecordedCall implements ServedCall {
  readonly parent: Context | undefined;

  constructor(
    private readonly method: string,
    private readonly index: string,
    private readonly scope: SpanScope | undefined,
    /** Where the call's queries are counted in flight; undefined while metrics are off. */
    private readonly inflight: InflightCell | undefined,
    private readonly queries: number,
    /** performance.now() at start; undefined while metrics are off. */
    private readonly startedMs: number | undefined,
  ) {
    this.parent = scope?.context;
    if (inflight !== undefined) inflight.count += queries;
  }

  logFields(): LogTraceFields {
    return traceFieldsOf(this.scope?.span);
  }

  end(error?: unknown): void {
    endServerSpan(this.scope, error);
    if (this.startedMs === undefined) return;
    if (this.inflight !== undefined) this.inflight.count -= this.queries;
    const code = error === undefined ? 0 : grpcStatusOf(error);
    canopyInstruments().rpcServerDuration.record((performance.now() - this.startedMs) / 1000, statusAttributes(this.method, code, this.index));
  }
}

// Attribute sets are made once per method, index and status and reused:
// recording then allocates nothing of its own.
const byMethodIndex = new Map<string, Attributes[]>();

function statusAttributes(method: string, code: number, index: string): Attributes {
  const key = `${method}\0${index}`;
  let perCode = byMethodIndex.get(key);
  if (perCode === undefined) {
    perCode = [];
    byMethodIndex.set(key, perCode);
  }
  return (perCode[code] ??= { [ATTR_RPC_METHOD]: method, [ATTR_RPC_GRPC_STATUS_CODE]: code, [ATTR_INDEX]: index });
}
