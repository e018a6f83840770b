// --health-listen beside mutual TLS, with real processes on loopback and
// certificates from a throwaway CA: the plaintext health-only port reports
// what the TLS port's health service would ('' and canopy.v1.Search), serves
// nothing else (Search is UNIMPLEMENTED there), the TLS port still refuses a
// plaintext client, and after SIGTERM the health port stops saying SERVING.
// The same for a router with --workers 2, whose workers share the health port.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CanopyClient } from '../../src/client/canopy-client';
import type { CanopyError } from '../../src/wire/canopy-error';
import type { TlsFiles } from '../../src/wire/tls';
import { healthStatus, SEARCH_HEALTH_SERVICE } from '../../src/cluster/health-probe';
import { bruteForceTopK } from '../support/brute-force';
import { runCanopy } from '../support/cli';
import { freePort } from '../support/free-port';
import { row } from '../support/matrix';
import { buildFixture, type Fixture, idOfRow } from '../support/serving/fixture';
import { ProcessGroup, type ServingProcess, waitEveryWorkerServing, waitServing } from '../support/serving/processes';
import { type CertFiles, TestCa, tlsFlags } from '../support/test-certs';
import { gaussianVectors } from '../support/vectors';

const ITEMS = 200;
const DIM = 8;
const K = 5;
const EXHAUSTIVE_SEARCH_K = 1_000_000;
const CALL_DEADLINE_MS = 3_000;
const STOP_TIMEOUT_MS = 15_000;
const POLL_MS = 100;
const WHOLE_SERVER = '';

const mtlsFlags = (c: CertFiles): string[] => [...tlsFlags(c), '--tls-require-client-cert'];

describe('--health-listen: plaintext health beside mutual TLS', () => {
  const group = new ProcessGroup();
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-health-listen-'));
  const clients: CanopyClient[] = [];
  let ca: TestCa;
  let fixture: Fixture;
  let shardCert: CertFiles;
  let routerCert: CertFiles;
  let clientCert: CertFiles;
  let shardListen: string;
  let shardHealth: string;
  let shard: ServingProcess;

  const address = async (): Promise<string> => `127.0.0.1:${await freePort()}`;
  const query = (): Float32Array => row(gaussianVectors(1, DIM, 77), 0);
  const exact = (): string[] => Array.from(bruteForceTopK(fixture.base, query(), K, fixture.metric).ids, idOfRow);

  function client(target: string, tls: TlsFiles | undefined): CanopyClient {
    const c = new CanopyClient({ target, tls, deadlineMs: CALL_DEADLINE_MS });
    clients.push(c);
    return c;
  }

  /** The search's ids, or the gRPC status name it failed with. */
  async function searchOutcome(c: CanopyClient): Promise<string[] | string> {
    try {
      const answer = await c.search(fixture.index, query(), { k: K, searchK: EXHAUSTIVE_SEARCH_K });
      return answer.neighbors.map((n) => n.id);
    } catch (err) {
      return grpc.status[(err as CanopyError).code]!;
    }
  }

  /** What a plaintext probe sees on each port of a serving process whose Search is up. */
  async function expectHealthOnlyPort(listen: string, health: string): Promise<void> {
    expect(await healthStatus(health, WHOLE_SERVER)).toBe('SERVING');
    expect(await healthStatus(health, SEARCH_HEALTH_SERVICE)).toBe('SERVING');
    expect(await healthStatus(health, 'no.such.Service')).toBe('NOT_FOUND');
    // The health port carries nothing but health.
    expect(await searchOutcome(client(health, undefined))).toBe('UNIMPLEMENTED');
    // The TLS port still refuses plaintext, health and Search alike: the reason for the health port.
    expect(await healthStatus(listen, WHOLE_SERVER)).toBe('UNAVAILABLE');
    expect(await searchOutcome(client(listen, undefined))).toBe('UNAVAILABLE');
    // And answers a client with a certificate.
    expect(await searchOutcome(client(listen, clientCert))).toEqual(exact());
  }

  /** Sends SIGTERM; polls the health port until it stops saying SERVING, then waits for a clean exit. */
  async function expectStopsServing(proc: ServingProcess, health: string): Promise<void> {
    proc.signal('SIGTERM');
    const endMs = Date.now() + STOP_TIMEOUT_MS;
    let last = 'SERVING';
    while (last === 'SERVING' && Date.now() < endMs) {
      last = await healthStatus(health, SEARCH_HEALTH_SERVICE);
      if (last === 'SERVING') await new Promise((r) => setTimeout(r, POLL_MS));
    }
    // NOT_SERVING while draining, UNAVAILABLE once the port is closed.
    expect(['NOT_SERVING', 'UNAVAILABLE']).toContain(last);
    while (!proc.exited && Date.now() < endMs) await new Promise((r) => setTimeout(r, POLL_MS));
    expect(proc.child.exitCode, proc.stderrTail).toBe(0);
    expect(await healthStatus(health, WHOLE_SERVER)).toBe('UNAVAILABLE');
  }

  beforeAll(async () => {
    ca = TestCa.create('canopy');
    shardCert = ca.issue('shard');
    routerCert = ca.issue('router');
    clientCert = ca.issue('client');
    fixture = await buildFixture(workDir, gaussianVectors(ITEMS, DIM, 5), { metric: 'euclidean', shards: 1, trees: 4, index: 'vectors', version: 'v1' });
    shardListen = await address();
    shardHealth = await address();
    // The process's probe address is its health port: waitServing asks there, in plaintext.
    shard = group.start('mtls shard', shardHealth, ['serve', 'shard', '--manifest', fixture.dir, '--shard', '0', '--listen', shardListen, '--health-listen', shardHealth, ...mtlsFlags(shardCert)]);
    await waitServing(shard);
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await group.killAll();
    ca?.remove();
    rmSync(workDir, { recursive: true, force: true });
  });

  it('refuses a --health-listen on the --listen address, naming both flags', async () => {
    for (const role of [['shard', '--manifest', fixture.dir, '--shard', '0'], ['router', '--backend', `0=${shardListen}`]]) {
      const result = await runCanopy(['serve', ...role, '--listen', '0.0.0.0:7311', '--health-listen', '127.0.0.1:7311']);
      expect(result.code, role[0]).not.toBe(0);
      expect(result.stderr).toMatch(/--health-listen 127\.0\.0\.1:7311 must differ from --listen 0\.0\.0\.0:7311/);
    }
  });

  it('a router with --workers 2 serves health on a shared health port; both stop serving it on SIGTERM', async () => {
    const listen = await address();
    const health = await address();
    const router = group.start('mtls router x2', health, ['serve', 'router', '--workers', '2', '--listen', listen, '--health-listen', health, '--backend', `0=${shardListen}`, ...mtlsFlags(routerCert)]);
    await waitEveryWorkerServing(router, 2);
    // Several connections, so more than one worker is asked; each must say the same.
    for (let i = 0; i < 4; i++) await expectHealthOnlyPort(listen, health);
    await expectStopsServing(router, health);
  }, 60_000);

  it('shard and router over mTLS: health SERVING on the plaintext port, Search only on the TLS port; SIGTERM stops both', async () => {
    const listen = await address();
    const health = await address();
    const router = group.start('mtls router', health, ['serve', 'router', '--listen', listen, '--health-listen', health, '--backend', `0=${shardListen}`, ...mtlsFlags(routerCert)]);
    await waitServing(router);
    await expectHealthOnlyPort(shardListen, shardHealth);
    await expectHealthOnlyPort(listen, health);
    await expectStopsServing(router, health);
    await expectStopsServing(shard, shardHealth);
  }, 60_000);
});
