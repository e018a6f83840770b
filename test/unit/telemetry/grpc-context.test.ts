// Trace context across real gRPC hops on loopback: a caller, a front server
// that calls a back server (the router -> shard shape), and an engine-like
// span inside the back server must form ONE trace with the right parents.
import * as grpc from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { ATTR_ATTEMPT, ATTR_K, ATTR_RPC_GRPC_STATUS_CODE, ATTR_RPC_METHOD, ATTR_RPC_SERVICE } from '../../../src/telemetry/attributes';
import { extractTraceContext, injectTraceContext, startClientSpan, withClientSpan, withServerSpan } from '../../../src/telemetry/grpc-context';
import { withSpan } from '../../../src/telemetry/spans';
import { startTelemetry, type Telemetry } from '../../../src/telemetry/telemetry';
import { EchoClient, startEchoServer } from './echo-service';

const exporter = new InMemorySpanExporter();

function byName(spans: readonly ReadableSpan[], name: string, kind: SpanKind): ReadableSpan {
  const found = spans.filter((span) => span.name === name && span.kind === kind);
  expect(found, `one ${SpanKind[kind]} span named ${name}`).toHaveLength(1);
  return found[0]!;
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

  it('round-trips the active span through grpc-js Metadata as a W3C traceparent', async () => {
    await withSpan('outer', {}, async (span) => {
      const metadata = new grpc.Metadata();
      injectTraceContext(metadata);
      const [traceparent] = metadata.get('traceparent');
      const { traceId, spanId } = span.spanContext();
      expect(traceparent).toBe(`00-${traceId}-${spanId}-01`);

      const remote = trace.getSpanContext(extractTraceContext(metadata));
      expect(remote).toMatchObject({ traceId, spanId, isRemote: true });
    });
  });

  it('joins client, servers and engine spans of a two-hop call into one trace', async () => {
    const back = await startEchoServer((call) =>
      withServerSpan(call.getPath(), call.metadata, {}, () =>
        withSpan('engine.search', { [ATTR_K]: 10 }, async () => Buffer.from(`back saw ${call.request.toString()}`)),
      ),
    );
    closers.push(back.close);
    const toBack = new EchoClient(back.address);
    closers.push(() => toBack.close());
    const front = await startEchoServer((call) =>
      withServerSpan(call.getPath(), call.metadata, {}, () =>
        withClientSpan('canopy.test.Echo/Echo', { [ATTR_ATTEMPT]: 'hedge' }, (metadata) => toBack.echo(call.request, metadata)),
      ),
    );
    closers.push(front.close);
    const toFront = new EchoClient(front.address);
    closers.push(() => toFront.close());

    const reply = await withClientSpan('canopy.test.Echo/Echo', { [ATTR_ATTEMPT]: 'first' }, (metadata) => toFront.echo(Buffer.from('q'), metadata));
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
    expect(backServer!.name).toBe('canopy.test.Echo/Echo');
    expect(backServer!.attributes).toMatchObject({ [ATTR_RPC_SERVICE]: 'canopy.test.Echo', [ATTR_RPC_METHOD]: 'Echo', [ATTR_RPC_GRPC_STATUS_CODE]: 0 });
    expect(backServer!.resource.attributes['service.name']).toBe('telemetry-test');
  });

  it('parents the server span on a callback-style client span, ended with the call', async () => {
    const server = await startEchoServer((call) => withServerSpan(call.getPath(), call.metadata, {}, async () => call.request));
    closers.push(server.close);
    const client = new EchoClient(server.address);
    closers.push(() => client.close());

    await withSpan('router.query', {}, async () => {
      const metadata = new grpc.Metadata();
      const clientSpan = startClientSpan('canopy.test.Echo/Echo', { [ATTR_ATTEMPT]: 'retry' }, metadata);
      await client.echo(Buffer.from('q'), metadata).then(
        () => clientSpan.end(),
        (err: unknown) => clientSpan.end(err),
      );
    });
    await telemetry.forceFlush();
    const spans = exporter.getFinishedSpans();
    const query = byName(spans, 'router.query', SpanKind.INTERNAL);
    const call = byName(spans, 'canopy.test.Echo/Echo', SpanKind.CLIENT);
    const served = byName(spans, 'canopy.test.Echo/Echo', SpanKind.SERVER);
    expect(call.parentSpanContext?.spanId).toBe(query.spanContext().spanId);
    expect(served.parentSpanContext?.spanId).toBe(call.spanContext().spanId);
    expect(call.attributes).toMatchObject({ [ATTR_ATTEMPT]: 'retry', [ATTR_RPC_GRPC_STATUS_CODE]: 0 });
  });

  it('marks a caller error on the client span only, and a server fault on both', async () => {
    let answer: { code: grpc.status; message: string } = { code: grpc.status.INVALID_ARGUMENT, message: 'k must be positive' };
    const server = await startEchoServer((call) =>
      withServerSpan(call.getPath(), call.metadata, {}, async () => {
        throw Object.assign(new Error(answer.message), { code: answer.code });
      }),
    );
    closers.push(server.close);
    const client = new EchoClient(server.address);
    closers.push(() => client.close());
    const callOnce = () => withClientSpan('canopy.test.Echo/Echo', {}, (metadata) => client.echo(Buffer.from('q'), metadata));

    await expect(callOnce()).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await telemetry.forceFlush();
    let spans = exporter.getFinishedSpans();
    expect(byName(spans, 'canopy.test.Echo/Echo', SpanKind.SERVER).status.code).toBe(SpanStatusCode.UNSET);
    expect(byName(spans, 'canopy.test.Echo/Echo', SpanKind.SERVER).attributes[ATTR_RPC_GRPC_STATUS_CODE]).toBe(grpc.status.INVALID_ARGUMENT);
    expect(byName(spans, 'canopy.test.Echo/Echo', SpanKind.CLIENT).status).toEqual({ code: SpanStatusCode.ERROR, message: '3 INVALID_ARGUMENT: k must be positive' });
    exporter.reset();
    answer = { code: grpc.status.INTERNAL, message: 'index file is corrupt' };
    await expect(callOnce()).rejects.toMatchObject({ code: grpc.status.INTERNAL });
    await telemetry.forceFlush();
    spans = exporter.getFinishedSpans();
    expect(byName(spans, 'canopy.test.Echo/Echo', SpanKind.SERVER).status).toEqual({ code: SpanStatusCode.ERROR, message: 'index file is corrupt' });
    expect(byName(spans, 'canopy.test.Echo/Echo', SpanKind.CLIENT).attributes[ATTR_RPC_GRPC_STATUS_CODE]).toBe(grpc.status.INTERNAL);
  });
});

describe('with telemetry off', () => {
  it('runs the wrapped functions with a non-recording span and propagates nothing', async () => {
    const telemetry = await startTelemetry({ serviceName: 'telemetry-test' });
    expect(telemetry.tracing).toBe(false);
    const server = await startEchoServer((call) =>
      withServerSpan(call.getPath(), call.metadata, {}, async (span) => {
        expect(span.isRecording()).toBe(false);
        return Buffer.from(call.metadata.get('traceparent').length === 0 ? 'no traceparent' : 'traceparent sent');
      }),
    );
    const client = new EchoClient(server.address);
    try {
      const reply = await withClientSpan('canopy.test.Echo/Echo', {}, (metadata) => client.echo(Buffer.from('q'), metadata));
      expect(reply.toString()).toBe('no traceparent');
      expect(exporter.getFinishedSpans()).toHaveLength(0);
    } finally {
      client.close();
      server.close();
      await telemetry.shutdown();
    }
  });
});
