// Trace context across real gRPC hops on loopback: a caller, a front server
// that calls a back server (the router -> shard shape), and an engine-like
// span inside the back server must form ONE trace with the right parents,
// passed explicitly (no span is ever made active).
import * as grpc from '@grpc/grpc-js';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { ATTR_ATTEMPT, ATTR_K, ATTR_RPC_GRPC_STATUS_CODE, ATTR_RPC_METHOD, ATTR_RPC_SERVICE } from '../../../src/telemetry/attributes';
import {
  callParentOf,
  endClientCallSpan,
  endServerSpan,
  extractTraceContext,
  injectTraceCarrier,
  injectTraceContext,
  sharedCallParent,
  type CallParent,
  startClientCallSpan,
  startServerSpan,
} from '../../../src/telemetry/grpc-context';
import { endSpan, startChildSpan } from '../../../src/telemetry/spans';
import { startTelemetry, type Telemetry } from '../../../src/telemetry/telemetry';
import { EchoClient, startEchoServer } from '../../support/echo-service';

const exporter = new InMemorySpanExporter();
const ECHO = 'canopy.test.Echo/Echo';

function byName(spans: readonly ReadableSpan[], name: string, kind: SpanKind): ReadableSpan {
  const found = spans.filter((span) => span.name === name && span.kind === kind);
  expect(found, `one ${SpanKind[kind]} span named ${name}`).toHaveLength(1);
  return found[0]!;
}

/** Serves `handle` inside a SERVER span from the call's metadata, as search-server.ts does. */
function servedEcho(handle: (call: grpc.ServerUnaryCall<Buffer, Buffer>, parent: CallParent | undefined) => Promise<Buffer>) {
  return startEchoServer(async (call) => {
    const scope = startServerSpan(call.getPath(), call.metadata, {});
    try {
      const reply = await handle(call, callParentOf(scope?.context));
      endServerSpan(scope);
      return reply;
    } catch (err) {
      endServerSpan(scope, err);
      throw err;
    }
  });
}

/** One call in a CLIENT span under `parent`, as shard-caller.ts makes them. */
async function tracedEcho(client: EchoClient, parent: CallParent | undefined, attributes = {}): Promise<Buffer> {
  const scope = startClientCallSpan(ECHO, attributes, parent);
  const metadata = new grpc.Metadata();
  if (scope !== undefined) injectTraceContext(metadata, scope.context);
  try {
    const reply = await client.echo(Buffer.from('q'), metadata);
    endClientCallSpan(scope, {});
    return reply;
  } catch (error) {
    endClientCallSpan(scope, { error });
    throw error;
  }
}

describe('with tracing on', () => {
  let telemetry: Telemetry;
  const closers: Array<() => void> = [];

  beforeAll(async () => {
    telemetry = await startTelemetry({ serviceName: 'telemetry-test', testSpanExporter: exporter });
  });
  afterAll(() => telemetry.shutdown());
  afterEach(async () => {
    await telemetry.forceFlush();
    exporter.reset();
    for (const close of closers.splice(0)) close();
  });

  it('round-trips a span through grpc-js Metadata as a W3C traceparent, and through a stream message carrier', () => {
    const scope = startClientCallSpan(ECHO, {}, undefined)!;
    const metadata = new grpc.Metadata();
    injectTraceContext(metadata, scope.context);
    const [traceparent] = metadata.get('traceparent');
    const { traceId, spanId } = scope.span.spanContext();
    expect(traceparent).toBe(`00-${traceId}-${spanId}-01`);
    expect(trace.getSpanContext(extractTraceContext(metadata))).toMatchObject({ traceId, spanId, isRemote: true });

    const carrier = injectTraceCarrier(scope);
    expect(carrier).toEqual({ traceparent: `00-${traceId}-${spanId}-01` });
    const served = startServerSpan('/canopy.v1.Search/BatchSearchStream', carrier, {})!;
    expect(served.span.spanContext().traceId).toBe(traceId);
    endServerSpan(served);
    endClientCallSpan(scope, {});
  });

  it('joins client, servers and engine spans of a two-hop call into one trace', async () => {
    const back = await servedEcho(async (call, parent) => {
      const engine = startChildSpan('engine.search', { [ATTR_K]: 10 }, parent?.context);
      endSpan(engine);
      return Buffer.from(`back saw ${call.request.toString()}`);
    });
    closers.push(back.close);
    const toBack = new EchoClient(back.address);
    closers.push(() => toBack.close());
    const front = await servedEcho((_call, parent) => tracedEcho(toBack, parent, { [ATTR_ATTEMPT]: 'hedge' }));
    closers.push(front.close);
    const toFront = new EchoClient(front.address);
    closers.push(() => toFront.close());

    const reply = await tracedEcho(toFront, undefined, { [ATTR_ATTEMPT]: 'first' });
    expect(reply.toString()).toBe('back saw q');

    await telemetry.forceFlush();
    const spans = exporter.getFinishedSpans();
    expect(spans).toHaveLength(5);
    expect(new Set(spans.map((span) => span.spanContext().traceId)).size).toBe(1);
    const clients = spans.filter((span) => span.kind === SpanKind.CLIENT);
    const caller = clients.find((span) => span.attributes[ATTR_ATTEMPT] === 'first')!;
    const hedge = clients.find((span) => span.attributes[ATTR_ATTEMPT] === 'hedge')!;
    const servers = spans.filter((span) => span.kind === SpanKind.SERVER);
    const frontServer = servers.find((span) => span.parentSpanContext?.spanId === caller.spanContext().spanId);
    const backServer = servers.find((span) => span.parentSpanContext?.spanId === hedge.spanContext().spanId);
    const engine = byName(spans, 'engine.search', SpanKind.INTERNAL);

    expect(caller.parentSpanContext).toBeUndefined();
    expect(frontServer).toBeDefined();
    expect(hedge.parentSpanContext?.spanId).toBe(frontServer!.spanContext().spanId);
    expect(backServer).toBeDefined();
    expect(engine.parentSpanContext?.spanId).toBe(backServer!.spanContext().spanId);
    expect(engine.attributes[ATTR_K]).toBe(10);
    expect(backServer!.name).toBe(ECHO);
    expect(backServer!.attributes).toMatchObject({ [ATTR_RPC_SERVICE]: 'canopy.test.Echo', [ATTR_RPC_METHOD]: 'Echo', [ATTR_RPC_GRPC_STATUS_CODE]: 0 });
    expect(backServer!.resource.attributes['service.name']).toBe('telemetry-test');
  });

  it('parents a shared call on the first traced request and links each other request once', () => {
    const a = startChildSpan('request.a', {}, ROOT_CONTEXT)!;
    const b = startChildSpan('request.b', {}, ROOT_CONTEXT)!;
    const [ctxA, ctxB] = [trace.setSpan(ROOT_CONTEXT, a), trace.setSpan(ROOT_CONTEXT, b)];
    const shared = sharedCallParent([undefined, ctxA, ctxA, ctxB, ctxB]);
    expect(shared?.context).toBe(ctxA);
    expect(shared?.links.map((link) => link.context.spanId)).toEqual([b.spanContext().spanId]);
    expect(sharedCallParent([undefined, undefined])).toBeUndefined();
    endSpan(a);
    endSpan(b);
  });

  it('starts no span under a caller the sampler dropped, and passes its unsampled context on', async () => {
    const dropped = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';
    const incoming = new grpc.Metadata();
    incoming.set('traceparent', dropped);
    const served = startServerSpan('/canopy.v1.Search/Search', incoming, {})!;
    expect(served.span.isRecording()).toBe(false);
    expect(startChildSpan('engine.search', {}, served.context)).toBeUndefined();
    const call = startClientCallSpan(ECHO, { [ATTR_ATTEMPT]: 'first' }, callParentOf(served.context))!;
    expect(injectTraceCarrier(call)).toEqual({ traceparent: dropped });
    endClientCallSpan(call, {});
    endServerSpan(served);
    await telemetry.forceFlush();
    expect(exporter.getFinishedSpans()).toHaveLength(0);
  });

  it('ends a cancelled attempt as CANCELLED without marking it an error', async () => {
    const scope = startClientCallSpan(ECHO, { [ATTR_ATTEMPT]: 'first' }, undefined);
    endClientCallSpan(scope, { cancelled: true });
    await telemetry.forceFlush();
    const span = byName(exporter.getFinishedSpans(), ECHO, SpanKind.CLIENT);
    expect(span.attributes[ATTR_RPC_GRPC_STATUS_CODE]).toBe(grpc.status.CANCELLED);
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('marks a caller error on the client span only, and a server fault on both', async () => {
    let answer: { code: grpc.status; message: string } = { code: grpc.status.INVALID_ARGUMENT, message: 'k must be positive' };
    const server = await servedEcho(async () => {
      throw Object.assign(new Error(answer.message), { code: answer.code });
    });
    closers.push(server.close);
    const client = new EchoClient(server.address);
    closers.push(() => client.close());
    const callOnce = () => tracedEcho(client, undefined);

    await expect(callOnce()).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await telemetry.forceFlush();
    let spans = exporter.getFinishedSpans();
    expect(byName(spans, ECHO, SpanKind.SERVER).status.code).toBe(SpanStatusCode.UNSET);
    expect(byName(spans, ECHO, SpanKind.SERVER).attributes[ATTR_RPC_GRPC_STATUS_CODE]).toBe(grpc.status.INVALID_ARGUMENT);
    expect(byName(spans, ECHO, SpanKind.CLIENT).status).toEqual({ code: SpanStatusCode.ERROR, message: '3 INVALID_ARGUMENT: k must be positive' });
    exporter.reset();
    answer = { code: grpc.status.INTERNAL, message: 'index file is corrupt' };
    await expect(callOnce()).rejects.toMatchObject({ code: grpc.status.INTERNAL });
    await telemetry.forceFlush();
    spans = exporter.getFinishedSpans();
    expect(byName(spans, ECHO, SpanKind.SERVER).status).toEqual({ code: SpanStatusCode.ERROR, message: 'index file is corrupt' });
    expect(byName(spans, ECHO, SpanKind.CLIENT).attributes[ATTR_RPC_GRPC_STATUS_CODE]).toBe(grpc.status.INTERNAL);
  });
});

describe('with telemetry off', () => {
  it('starts no span and propagates nothing', async () => {
    const telemetry = await startTelemetry({ serviceName: 'telemetry-test' });
    expect(telemetry.tracing).toBe(false);
    const server = await servedEcho(async (call, parent) => {
      expect(parent).toBeUndefined();
      return Buffer.from(call.metadata.get('traceparent').length === 0 ? 'no traceparent' : 'traceparent sent');
    });
    const client = new EchoClient(server.address);
    try {
      expect(startClientCallSpan(ECHO, {}, undefined)).toBeUndefined();
      const reply = await tracedEcho(client, undefined);
      expect(reply.toString()).toBe('no traceparent');
      expect(exporter.getFinishedSpans()).toHaveLength(0);
    } finally {
      client.close();
      server.close();
      await telemetry.shutdown();
    }
  });
});
