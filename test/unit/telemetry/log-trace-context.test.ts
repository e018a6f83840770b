// Log lines written inside a span carry its trace and span ids; outside, none.
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import pino from 'pino';
import { afterEach, expect, it } from 'vitest';

import { logTraceContext } from '../../../src/telemetry/log-trace-context';
import { withSpan } from '../../../src/telemetry/spans';
import { startTelemetry, type Telemetry } from '../../../src/telemetry/telemetry';

let telemetry: Telemetry | undefined;

afterEach(async () => {
  await telemetry?.shutdown();
  telemetry = undefined;
});

function capturingLogger(): { log: pino.Logger; lines: () => Array<Record<string, unknown>> } {
  const written: string[] = [];
  const log = pino({ level: 'info', mixin: logTraceContext }, { write: (line: string) => written.push(line) });
  return { log, lines: () => written.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

it('adds trace_id and span_id of the active span, and nothing outside spans', async () => {
  telemetry = await startTelemetry({ serviceName: 'log-test', testSpanExporter: new InMemorySpanExporter() });
  const { log, lines } = capturingLogger();
  log.info('before');
  let ids: { traceId: string; spanId: string } | undefined;
  await withSpan('work', {}, async (span) => {
    ids = span.spanContext();
    await new Promise((resolve) => setImmediate(resolve));
    log.info({ shard: 1 }, 'inside');
  });
  log.info('after');

  const [before, inside, after] = lines();
  expect(before).not.toHaveProperty('trace_id');
  expect(inside).toMatchObject({ msg: 'inside', shard: 1, level: 30, trace_id: ids!.traceId, span_id: ids!.spanId });
  expect(inside!['trace_id']).toMatch(/^[0-9a-f]{32}$/);
  expect(after).not.toHaveProperty('trace_id');
  expect(after).not.toHaveProperty('span_id');
});

it('adds nothing while tracing is off', async () => {
  telemetry = await startTelemetry({ serviceName: 'log-test' });
  const { log, lines } = capturingLogger();
  await withSpan('work', {}, async () => log.info('inside'));
  expect(lines()[0]).not.toHaveProperty('trace_id');
});

it('keeps each line to its own fields (pino merges a line into what the mixin returns)', async () => {
  telemetry = await startTelemetry({ serviceName: 'log-test' });
  const { log, lines } = capturingLogger();
  log.info({ shard: 1 }, 'first');
  log.info('second');
  expect(lines()[1]).not.toHaveProperty('shard');
});
