// A log line about a traced request carries its trace and span ids; untraced, none.
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import pino from 'pino';
import { afterEach, expect, it } from 'vitest';

import { traceFieldsOf } from '../../../src/telemetry/log-trace-context';
import { endSpan, startChildSpan } from '../../../src/telemetry/spans';
import { startTelemetry, type Telemetry } from '../../../src/telemetry/telemetry';

let telemetry: Telemetry | undefined;

afterEach(async () => {
  await telemetry?.shutdown();
  telemetry = undefined;
});

function capturingLogger(): { log: pino.Logger; lines: () => Array<Record<string, unknown>> } {
  const written: string[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => written.push(line) });
  return { log, lines: () => written.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

it('gives the trace_id and span_id of a recorded span', async () => {
  telemetry = await startTelemetry({ serviceName: 'log-test', testSpanExporter: new InMemorySpanExporter() });
  const { log, lines } = capturingLogger();
  const span = startChildSpan('work', {}, ROOT_CONTEXT);
  log.info({ shard: 1, ...traceFieldsOf(span) }, 'inside');
  log.info('after');
  endSpan(span);

  const [inside, after] = lines();
  const { traceId, spanId } = span!.spanContext();
  expect(inside).toMatchObject({ msg: 'inside', shard: 1, level: 30, trace_id: traceId, span_id: spanId });
  expect(inside!['trace_id']).toMatch(/^[0-9a-f]{32}$/);
  expect(after).not.toHaveProperty('trace_id');
});

it('gives nothing while tracing is off', async () => {
  telemetry = await startTelemetry({ serviceName: 'log-test' });
  const span = startChildSpan('work', {}, ROOT_CONTEXT);
  expect(span).toBeUndefined();
  expect(traceFieldsOf(span)).toEqual({});
});
