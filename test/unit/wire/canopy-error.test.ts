// Refusals are answers a shard gives thousands of times a second under overload: they carry no stack
// trace (its capture was a noticeable share of a loaded event loop), while real faults keep theirs.
import * as grpc from '@grpc/grpc-js';
import { expect, test } from 'vitest';

import { CanopyError } from '../../../src/wire/canopy-error';

const FRAME = /\n\s+at /;

test('a RESOURCE_EXHAUSTED error has no stack frames; other codes keep them', () => {
  const limit = Error.stackTraceLimit;
  const refusal = new CanopyError(grpc.status.RESOURCE_EXHAUSTED, 'search queue is full');
  expect(refusal.stack).toMatch(/^CanopyError: search queue is full/);
  expect(refusal.stack).not.toMatch(FRAME);
  expect(refusal.retryable).toBe(true);
  expect(Error.stackTraceLimit).toBe(limit);
  expect(new CanopyError(grpc.status.INTERNAL, 'boom').stack).toMatch(FRAME);
  expect(CanopyError.from(new Error('plain')).stack).toMatch(FRAME);
});
