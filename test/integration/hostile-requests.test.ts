// Hostile clients against a real shard node and a real router (`canopy serve
// shard|router`, static mode, loopback): undecodable and malformed protobuf,
// random bytes on every method, messages over the receive limit, out-of-range
// fields, thousands of cancelled calls and streams, expired deadlines. Every
// bad call must end with a deliberate status (never UNKNOWN, never an
// "internal error" from a handler, never a stack trace), and after each
// barrage both processes must still answer exactly and stay within a memory
// bound over their warmed-up size.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CanopyClient } from '../../src/client/canopy-client';
import { type BatchSearchReply, searchClientConstructor, searchServiceDefinition } from '../../src/wire/contract';
import { bruteForceTopK } from '../support/brute-force';
import { freePort } from '../support/free-port';
import { row } from '../support/matrix';
import { buildFixture, type Fixture, idOfRow } from '../support/serving/fixture';
import { ProcessGroup, type ServingProcess, waitServing } from '../support/serving/processes';
import { gaussianVectors, SeededRandom } from '../support/vectors';

const ITEMS = 400;
const DIM = 8;
const K = 5;
/** More nodes than the index has: the answer is exact (and within the default max search_k). */
const EXHAUSTIVE_SEARCH_K = 100_000;
/** The servers' default receive limit (search-server.ts) plus a margin. */
const OVERSIZED_BYTES = 17 * 1024 * 1024;
const CANCELLED_CALLS = 2_000;
const CONCURRENCY = 100;
/** How far a process's resident set may grow over its warmed-up size through all barrages. */
const RSS_GROWTH_BOUND_BYTES = 64 * 1024 * 1024;
const CALL_DEADLINE_MS = 10_000;

const UNARY_METHODS = ['Search', 'BatchSearch', 'SearchByItem', 'GetItem', 'DescribeIndex'] as const;

/** A client that sends and receives raw bytes: whatever we write is the message. */
type RawClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

function rawClient(address: string): RawClient {
  const identity = (b: Buffer): Buffer => b;
  const method = (name: string, stream: boolean): grpc.MethodDefinition<Buffer, Buffer> => ({
    path: `/canopy.v1.Search/${name}`,
    requestStream: stream,
    responseStream: stream,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  });
  const definition: grpc.ServiceDefinition = {
    BatchSearchStream: method('BatchSearchStream', true),
    ...Object.fromEntries(UNARY_METHODS.map((name) => [name, method(name, false)])),
  };
  const Ctor = grpc.makeGenericClientConstructor(definition, 'RawSearch');
  return new Ctor(address, grpc.credentials.createInsecure()) as unknown as RawClient;
}

/** The contract's own client, without the CanopyClient's checks: it sends what it is given. */
function protoClient(address: string): RawClient {
  const Ctor = searchClientConstructor();
  return new Ctor(address, grpc.credentials.createInsecure()) as unknown as RawClient;
}

const decodeReply = (bytes: Buffer): BatchSearchReply =>
  (searchServiceDefinition().BatchSearchStream!.responseDeserialize as (b: Buffer) => BatchSearchReply)(bytes);

interface Outcome {
  readonly code: grpc.status;
  readonly details: string;
}

function unary(client: RawClient, method: string, request: unknown, deadlineMs = CALL_DEADLINE_MS): Promise<Outcome> {
  return new Promise((resolve) => {
    client[method]!(request, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null) =>
      resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '' }),
    );
  });
}

/** Writes messages on one BatchSearchStream and resolves with how the call ended and the replies it got. */
function streamOutcome(client: RawClient, messages: unknown[]): Promise<Outcome & { replies: unknown[] }> {
  return new Promise((resolve) => {
    const replies: unknown[] = [];
    const call = client.BatchSearchStream!({ deadline: Date.now() + CALL_DEADLINE_MS }) as grpc.ClientDuplexStream<unknown, unknown>;
    call.on('data', (reply: unknown) => replies.push(reply));
    call.on('error', (err: grpc.ServiceError) => resolve({ code: err.code, details: err.details, replies }));
    call.on('status', (s: grpc.StatusObject) => {
      if (s.code === grpc.status.OK) resolve({ code: s.code, details: s.details, replies });
    });
    for (const m of messages) call.write(m);
    call.end();
  });
}

/** Runs `n` tasks, `CONCURRENCY` at a time. */
async function bounded(n: number, task: (i: number) => Promise<void>): Promise<void> {
  for (let start = 0; start < n; start += CONCURRENCY) {
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, n - start) }, (_, j) => task(start + j)));
  }
}

/**
 * A refusal worth having: a status the server chose, or grpc-js's own fixed
 * INTERNAL for a payload that does not decode. UNKNOWN (a handler threw
 * something unmapped), "internal error: ..." (CanopyError.from of a bug) and
 * stack frames are failures.
 */
function expectDeliberate(o: Outcome, allowed: readonly grpc.status[], what: string): void {
  const label = `${what}: ${grpc.status[o.code]} "${o.details}"`;
  expect(o.details, label).not.toMatch(/\n\s+at |internal error/);
  if (o.code === grpc.status.INTERNAL) {
    expect(o.details, label).toBe('Error deserializing request');
    return;
  }
  expect(allowed, label).toContain(o.code);
}

function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** Protobuf wire bytes that no decoder can accept (truncated, overlong, bad wire types). */
const MALFORMED_PROTOBUF: readonly Buffer[] = [
  Buffer.from([0x0a]), // field 1, length-delimited, length missing
  Buffer.from([0x0a, 0x05, 0x61]), // length 5, one byte follows
  Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), // length 4 GiB
  Buffer.from([0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // varint of 11 bytes
  Buffer.from([0x0f]), // wire type 7 (does not exist)
  Buffer.from([0x0b, 0x0a, 0x00]), // start group never ended
  Buffer.from([0x00, 0x01]), // field number 0
  Buffer.from([0x1d, 0x00, 0x00]), // fixed32 cut short
  Buffer.from([0x12, 0x03, 0x0a, 0xff, 0x01]), // nested message whose field runs past its end
];

describe('hostile requests against a shard node and a router', () => {
  const group = new ProcessGroup();
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-hostile-'));
  let fixture: Fixture;
  let shard: ServingProcess;
  let router: ServingProcess;
  let targets: { name: string; proc: ServingProcess; raw: RawClient; proto: RawClient; client: CanopyClient }[] = [];
  const baselineRss = new Map<string, number>();

  const query = (seed: number): Float32Array => row(gaussianVectors(1, DIM, seed), 0);

  /** Both processes are up and answer an exact query exactly. */
  async function expectHealthy(): Promise<void> {
    for (const t of targets) {
      expect(t.proc.exited, `${t.name} exited:\n${t.proc.stderrTail}`).toBe(false);
      for (const seed of [101, 102]) {
        const q = query(seed);
        const answer = await t.client.search(fixture.index, q, { k: K, searchK: EXHAUSTIVE_SEARCH_K });
        const want = Array.from(bruteForceTopK(fixture.base, q, K, fixture.metric).ids, idOfRow);
        expect(answer.neighbors.map((n) => n.id), t.name).toEqual(want);
      }
    }
  }

  const validRequest = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
    index: fixture.index,
    vector: Array.from(query(7)),
    k: K,
    ...overrides,
  });

  beforeAll(async () => {
    fixture = await buildFixture(workDir, gaussianVectors(ITEMS, DIM, 3), {
      metric: 'euclidean',
      shards: 1,
      trees: 4,
      index: 'vectors',
      version: 'v1',
    });
    const shardAddress = `127.0.0.1:${await freePort()}`;
    shard = group.start('shard', shardAddress, ['serve', 'shard', '--manifest', fixture.dir, '--shard', '0', '--listen', shardAddress]);
    await waitServing(shard);
    const routerAddress = `127.0.0.1:${await freePort()}`;
    router = group.start('router', routerAddress, ['serve', 'router', '--listen', routerAddress, '--backend', `0=${shardAddress}`]);
    await waitServing(router);
    targets = [shard, router].map((proc) => ({
      name: proc.name,
      proc,
      raw: rawClient(proc.address),
      proto: protoClient(proc.address),
      client: new CanopyClient({ target: proc.address, deadlineMs: CALL_DEADLINE_MS }),
    }));
    // Warm up (JIT, pools, scratch) before taking the memory baseline.
    for (const t of targets) await bounded(400, async (i) => void (await t.client.search(fixture.index, query(i), { k: K })));
    for (const t of targets) baselineRss.set(t.name, rssBytes(t.proc.pid));
  }, 60_000);

  afterAll(async () => {
    for (const t of targets) {
      t.raw.close();
      t.proto.close();
      t.client.close();
    }
    await group.killAll();
    rmSync(workDir, { recursive: true, force: true });
  });

  it('refuses malformed protobuf on every method and keeps answering', async () => {
    // protobufjs reads some truncated fields leniently (0a 05 61 decodes as index "a"): such requests are
    // then refused by the handler, or answered (a DescribeIndex that decodes as empty).
    const lenient = [grpc.status.OK, grpc.status.INVALID_ARGUMENT, grpc.status.NOT_FOUND];
    for (const t of targets) {
      for (const method of UNARY_METHODS) {
        for (const bytes of MALFORMED_PROTOBUF) {
          expectDeliberate(await unary(t.raw, method, bytes), lenient, `${t.name} ${method} ${bytes.toString('hex')}`);
        }
      }
      for (const bytes of MALFORMED_PROTOBUF) {
        expectDeliberate(await streamOutcome(t.raw, [bytes]), lenient, `${t.name} BatchSearchStream ${bytes.toString('hex')}`);
      }
    }
    await expectHealthy();
  });

  it('gives random bytes on every method a deliberate status and keeps answering', async () => {
    const rng = new SeededRandom(17);
    const randomBytes = (maxBytes = 200): Buffer => Buffer.from(Array.from({ length: 1 + rng.below(maxBytes) }, () => rng.below(256)));
    // A well-formed envelope (id 1) whose batch names the served index and holds one query of random
    // bytes: gets past decoding and index lookup more often than plain random bytes, so the handler
    // sees odd queries. Lengths stay below 128 (one-byte varints).
    const envelopeOfRandomQuery = (): Buffer => {
      const query = randomBytes(100);
      const index = Buffer.from(fixture.index);
      const batch = Buffer.concat([Buffer.from([0x0a, index.length]), index, Buffer.from([0x12, query.length]), query]);
      return Buffer.concat([Buffer.from([0x08, 0x01, 0x12, batch.length]), batch]);
    };
    // Random bytes that happen to decode are requests with odd fields: refused, or (rarely) answered.
    const allowed = [grpc.status.OK, grpc.status.INVALID_ARGUMENT, grpc.status.NOT_FOUND, grpc.status.OUT_OF_RANGE, grpc.status.FAILED_PRECONDITION];
    for (const t of targets) {
      for (const method of UNARY_METHODS) {
        await bounded(200, async () => expectDeliberate(await unary(t.raw, method, randomBytes()), allowed, `${t.name} ${method}`));
      }
      await bounded(200, async (i) => {
        const o = await streamOutcome(t.raw, i % 2 === 0 ? [randomBytes(), randomBytes()] : [envelopeOfRandomQuery(), envelopeOfRandomQuery()]);
        expectDeliberate(o, allowed, `${t.name} BatchSearchStream`);
        // Envelopes that decoded were answered on the stream: each reply must carry a deliberate status too.
        for (const bytes of o.replies) {
          const reply = decodeReply(bytes as Buffer);
          expectDeliberate({ code: reply.code, details: reply.message }, allowed, `${t.name} BatchSearchStream reply`);
        }
      });
    }
    await expectHealthy();
  });

  it('refuses messages over the receive limit with RESOURCE_EXHAUSTED', async () => {
    const huge = Buffer.alloc(OVERSIZED_BYTES, 0x41);
    for (const t of targets) {
      for (const method of ['Search', 'BatchSearch']) {
        const o = await unary(t.raw, method, huge);
        expectDeliberate(o, [grpc.status.RESOURCE_EXHAUSTED], `${t.name} ${method} oversized`);
        expect(o.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      }
      const o = await streamOutcome(t.raw, [huge]);
      expect(o.code, `${t.name} stream oversized: ${o.details}`).toBe(grpc.status.RESOURCE_EXHAUSTED);
    }
    await expectHealthy();
  });

  it('refuses out-of-range fields with INVALID_ARGUMENT (or NOT_FOUND for unknown names)', async () => {
    const nanBytes = Buffer.from(new Float32Array(DIM).fill(Number.NaN).buffer);
    const cases: [string, string, Record<string, unknown>][] = [
      ['k = 2^32-1', 'Search', validRequest({ k: 2 ** 32 - 1 })],
      ['k = 0', 'Search', validRequest({ k: 0 })],
      ['search_k = -2^31', 'Search', validRequest({ searchK: -(2 ** 31) })],
      ['search_k = -5', 'Search', validRequest({ searchK: -5 })],
      ['vector too short', 'Search', validRequest({ vector: [1, 2, 3] })],
      ['vector too long', 'Search', validRequest({ vector: Array.from({ length: 10_000 }, () => 1) })],
      ['NaN in vector', 'Search', validRequest({ vector: Array.from({ length: DIM }, (_, i) => (i === 3 ? Number.NaN : 1)) })],
      ['Infinity in vector', 'Search', validRequest({ vector: Array.from({ length: DIM }, () => Number.POSITIVE_INFINITY) })],
      ['NaN vector_f32', 'Search', validRequest({ vector: [], vectorF32: nanBytes })],
      ['vector_f32 of 3 bytes', 'Search', validRequest({ vector: [], vectorF32: Buffer.from([1, 2, 3]) })],
      ['both vector kinds', 'Search', validRequest({ vectorF32: Buffer.from(query(7).buffer) })],
      ['no vector', 'Search', validRequest({ vector: [] })],
      ['unknown index', 'Search', validRequest({ index: 'x'.repeat(100_000) })],
      ['unknown version', 'Search', validRequest({ version: 'v999' })],
      ['too many exclude_ids', 'Search', validRequest({ excludeIds: Array.from({ length: 20_000 }, (_, i) => `e${i}`) })],
      ['huge batch', 'BatchSearch', { index: fixture.index, queries: Array.from({ length: 5_000 }, () => validRequest()) }],
      ['batch with one bad query', 'BatchSearch', { index: fixture.index, queries: [validRequest(), validRequest({ k: 2 ** 32 - 1 })] }],
      ['batch naming another index', 'BatchSearch', { index: fixture.index, queries: [validRequest({ index: 'other' })] }],
      ['by item: huge k', 'SearchByItem', { index: fixture.index, id: idOfRow(1), k: 2 ** 32 - 1 }],
      ['by item: unknown id', 'SearchByItem', { index: fixture.index, id: 'no-such-id', k: K }],
      ['by item: empty id', 'SearchByItem', { index: fixture.index, id: '', k: K }],
      ['get item: unknown id', 'GetItem', { index: fixture.index, id: '\u0000'.repeat(1000) }],
      ['describe: unknown index', 'DescribeIndex', { index: 'nope' }],
    ];
    const refused = [grpc.status.INVALID_ARGUMENT, grpc.status.NOT_FOUND, grpc.status.RESOURCE_EXHAUSTED, grpc.status.OUT_OF_RANGE];
    for (const t of targets) {
      for (const [what, method, request] of cases) {
        const o = await unary(t.proto, method, request);
        expectDeliberate(o, refused, `${t.name} ${what}`);
      }
      const o = await streamOutcome(t.proto, [
        { id: 1, batch: { index: fixture.index, queries: [validRequest({ k: 2 ** 32 - 1 })] }, timeoutMs: 0 },
      ]);
      expect(o.code, `${t.name} stream with a bad batch ends cleanly`).toBe(grpc.status.OK);
      expect(o.replies, t.name).toEqual([
        expect.objectContaining({ id: 1, code: grpc.status.INVALID_ARGUMENT, message: expect.stringMatching(/k must be between 1 and \d+.*got 4294967295/) }),
      ]);
    }
    await expectHealthy();
  });

  it('answers search_k = 2^31-1 (every node) or refuses it by a configured limit', async () => {
    for (const t of targets) {
      const o = await unary(t.proto, 'Search', validRequest({ searchK: 2 ** 31 - 1 }));
      expectDeliberate(o, [grpc.status.OK, grpc.status.INVALID_ARGUMENT], t.name);
      if (o.code === grpc.status.INVALID_ARGUMENT) expect(o.details).toMatch(/search_k must be at most \d+/);
    }
  });

  it('survives thousands of cancelled calls and streams and expired deadlines', async () => {
    const heavyBatch = { index: fixture.index, queries: Array.from({ length: 200 }, () => validRequest({ searchK: EXHAUSTIVE_SEARCH_K })) };
    for (const t of targets) {
      // Unary calls cancelled right after they start (most are mid-flight on the server).
      await bounded(CANCELLED_CALLS, async (i) => {
        const done = new Promise<Outcome>((resolve) => {
          const call = t.proto[i % 2 === 0 ? 'Search' : 'BatchSearch']!(
            i % 2 === 0 ? validRequest() : heavyBatch,
            { deadline: Date.now() + CALL_DEADLINE_MS },
            (err: grpc.ServiceError | null) => resolve(err ? { code: err.code, details: err.details } : { code: 0, details: '' }),
          ) as grpc.ClientUnaryCall;
          setImmediate(() => call.cancel());
        });
        const o = await done;
        // Node's HTTP/2 guards against rapid reset (CVE-2023-44487): past a burst of RST_STREAMs it ends
        // the abusive connection with GOAWAY(INTERNAL_ERROR), which this client reports on its calls.
        if (o.code === grpc.status.INTERNAL && /Session closed with error code 2$/.test(o.details)) return;
        expectDeliberate(o, [grpc.status.OK, grpc.status.CANCELLED], `${t.name} cancelled unary`);
      });
      // Streams opened, given a batch, and cancelled without waiting for the reply.
      await bounded(CANCELLED_CALLS, async (i) => {
        const call = t.proto.BatchSearchStream!({ deadline: Date.now() + CALL_DEADLINE_MS }) as grpc.ClientDuplexStream<unknown, unknown>;
        const ended = new Promise<void>((resolve) => call.on('status', () => resolve()));
        call.on('error', () => {});
        call.on('data', () => {});
        call.write({ id: i, batch: heavyBatch, timeoutMs: 0 });
        setImmediate(() => call.cancel());
        await ended;
      });
      // Deadlines already past, or shorter than the work.
      await bounded(200, async (i) => {
        const deadlineMs = i % 2 === 0 ? -1_000 : 1;
        expectDeliberate(await unary(t.proto, 'BatchSearch', heavyBatch, deadlineMs), [grpc.status.OK, grpc.status.DEADLINE_EXCEEDED], `${t.name} expired deadline`);
      });
    }
    await expectHealthy();
  }, 120_000);

  it('keeps both processes within the memory bound after the barrages', async () => {
    await expectHealthy();
    for (const t of targets) {
      const grownBytes = rssBytes(t.proc.pid) - baselineRss.get(t.name)!;
      expect(grownBytes, `${t.name} grew by ${(grownBytes / 2 ** 20).toFixed(1)} MiB`).toBeLessThan(RSS_GROWTH_BOUND_BYTES);
    }
  });
});
