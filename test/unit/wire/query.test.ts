import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';

import { CanopyError } from '../../../src/wire/canopy-error';
import type { SearchRequest } from '../../../src/wire/contract';
import { decodeVector, encodeVector, parseQuery, resolveQueryLimits, viewFloat32 } from '../../../src/wire/query';

const limits = resolveQueryLimits();

function request(fields: Partial<SearchRequest>): SearchRequest {
  return { index: 'i', vector: [], vectorF32: Buffer.alloc(0), k: 10, searchK: 0, excludeIds: [], minShards: 0, version: '', exact: false, rerank: 0, ef: 0, ...fields };
}

function refusal(fn: () => unknown): CanopyError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CanopyError);
    return err as CanopyError;
  }
  throw new Error('expected a refusal');
}

describe('query checks', () => {
  it('reads floats and float32 bytes alike', () => {
    const v = new Float32Array([1.5, -2, 3.25]);
    expect(Array.from(parseQuery(request({ vector: [1.5, -2, 3.25] }), 3, limits).vector)).toEqual([1.5, -2, 3.25]);
    expect(Array.from(parseQuery(request({ vectorF32: encodeVector(v) }), 3, limits).vector)).toEqual([1.5, -2, 3.25]);
  });

  it('copies unaligned bytes and views aligned ones', () => {
    const backing = Buffer.alloc(13);
    const unaligned = backing.subarray(1);
    encodeVector(new Float32Array([1, 2, 3])).copy(unaligned);
    const copied = viewFloat32(unaligned);
    expect(Array.from(copied)).toEqual([1, 2, 3]);
    expect(copied.buffer).not.toBe(backing.buffer);
    const aligned = Buffer.from(new Float32Array([4, 5]).buffer);
    expect(viewFloat32(aligned).buffer).toBe(aligned.buffer);
  });

  it('refuses a wrong dimension, non-finite values, both or neither vector forms, ragged bytes', () => {
    const cases: [Partial<SearchRequest>, RegExp][] = [
      [{ vector: [1, 2] }, /dimension 2, the index has 3/],
      [{ vector: [1, Number.NaN, 3] }, /vector\[1\] is NaN/],
      [{ vectorF32: encodeVector(new Float32Array([1, Infinity, 0])) }, /vector\[1\] is Infinity/],
      [{ vector: [1, 2, 3], vectorF32: encodeVector(new Float32Array(3)) }, /not both/],
      [{}, /required/],
      [{ vectorF32: Buffer.alloc(7) }, /not a multiple of 4/],
    ];
    for (const [fields, message] of cases) {
      const err = refusal(() => parseQuery(request(fields), 3, limits));
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.message).toMatch(message);
    }
  });

  it('refuses k = 0, k above the maximum, search_k below -1, too many exclusions', () => {
    const small = resolveQueryLimits({ maxK: 5, maxExcludeIds: 1 });
    const cases: [Partial<SearchRequest>, RegExp][] = [
      [{ k: 0 }, /k must be between 1 and 5/],
      [{ k: 6 }, /k must be between 1 and 5/],
      [{ k: 3, searchK: -2 }, /search_k/],
      [{ k: 3, excludeIds: ['a', 'b'] }, /at most 1 exclude_ids/],
    ];
    for (const [fields, message] of cases) {
      const err = refusal(() => parseQuery(request({ vector: [0, 0, 0], ...fields }), 3, small));
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.message).toMatch(message);
    }
  });

  it('refuses a negative or too large rerank or ef, naming the field and the bound', () => {
    const small = resolveQueryLimits({ maxRerank: 50, maxEf: 60 });
    const cases: [Partial<SearchRequest>, RegExp][] = [
      [{ rerank: -1 }, /^query: rerank must be 0 \(default\) or positive, got -1$/],
      [{ rerank: 51 }, /^query: rerank must be at most 50 \(max rerank\), got 51$/],
      [{ ef: -3 }, /^query: ef must be 0 \(default\) or positive, got -3$/],
      [{ ef: 2_000_000_000 }, /^query: ef must be at most 60 \(max ef\), got 2000000000$/],
    ];
    for (const [fields, message] of cases) {
      const err = refusal(() => parseQuery(request({ vector: [0, 0, 0], ...fields }), 3, small));
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.message).toMatch(message);
    }
  });

  it('maps rerank and ef 0 to the engine default and keeps exact', () => {
    expect(parseQuery(request({ vector: [0] }), 1, limits)).toMatchObject({ exact: false, rerank: undefined, ef: undefined });
    expect(parseQuery(request({ vector: [0], exact: true, rerank: 30, ef: 40 }), 1, limits)).toMatchObject({ exact: true, rerank: 30, ef: 40 });
  });

  it('maps search_k 0 and -1 to the engine default', () => {
    expect(parseQuery(request({ vector: [0], searchK: -1 }), 1, limits).searchK).toBeUndefined();
    expect(parseQuery(request({ vector: [0], searchK: 0 }), 1, limits).searchK).toBeUndefined();
    expect(parseQuery(request({ vector: [0], searchK: 77 }), 1, limits).searchK).toBe(77);
  });

  it('names the query in a batch', () => {
    expect(refusal(() => decodeVector({ vector: [1], vectorF32: Buffer.alloc(0) }, 2, 'queries[3]')).message).toMatch(/^queries\[3\]:/);
  });
});

describe('CanopyError.from', () => {
  it('keeps a gRPC status, maps engine codes, and marks retryable statuses', () => {
    const engine = Object.assign(new Error('queue full'), { code: 'QUEUE_FULL' });
    expect(CanopyError.from(engine)).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, retryable: true });
    const badFile = Object.assign(new Error('bad'), { code: 'BAD_FILE' });
    expect(CanopyError.from(badFile)).toMatchObject({ code: grpc.status.INTERNAL, retryable: false });
    const wire = Object.assign(new Error('14 UNAVAILABLE: gone'), { code: 14, details: 'gone', metadata: new grpc.Metadata() });
    expect(CanopyError.from(wire)).toMatchObject({ code: grpc.status.UNAVAILABLE, message: 'gone', retryable: true });
    expect(CanopyError.from('weird')).toMatchObject({ code: grpc.status.INTERNAL });
    expect(CanopyError.from(CanopyError.notFound('x')).retryable).toBe(false);
  });
});
