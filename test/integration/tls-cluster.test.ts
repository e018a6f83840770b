// TLS on every hop, with real processes on loopback and certificates from a
// throwaway CA (openssl): a client without the CA, a plaintext client, a
// client without a certificate and one with a certificate from another CA
// are all refused; good certificates are answered, through a router that
// dials its shard over mutual TLS; and a shard node and a router register
// through an etcd that requires client certificates and a user/password.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CanopyClient } from '../../src/client/canopy-client';
import type { CanopyError } from '../../src/wire/canopy-error';
import type { TlsFiles } from '../../src/wire/tls';
import { bruteForceTopK } from '../support/brute-force';
import { runCanopy } from '../support/cli';
import { EtcdServer } from '../support/etcd';
import { freePort } from '../support/free-port';
import { row } from '../support/matrix';
import { buildFixture, type Fixture, idOfRow } from '../support/serving/fixture';
import { ProcessGroup, type ServingProcess } from '../support/serving/processes';
import { type CertFiles, TestCa, tlsFlags } from '../support/test-certs';
import { gaussianVectors } from '../support/vectors';

const ITEMS = 300;
const DIM = 8;
const K = 5;
const EXHAUSTIVE_SEARCH_K = 1_000_000;
const CALL_DEADLINE_MS = 3_000;
const START_TIMEOUT_MS = 20_000;
const POLL_MS = 100;
const ETCD_USER = { name: 'canopy', password: 'canopy-test-password', prefix: '/canopy/' };


describe('TLS and mutual TLS on every hop, etcd over TLS with auth', () => {
  const group = new ProcessGroup();
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-tls-'));
  const clients: CanopyClient[] = [];
  let ca: TestCa;
  let otherCa: TestCa;
  let fixture: Fixture;
  let shardCert: CertFiles;
  let routerCert: CertFiles;
  let clientCert: CertFiles;
  let strangerCert: CertFiles;
  let etcd: EtcdServer | undefined;

  const query = (): Float32Array => row(gaussianVectors(1, DIM, 77), 0);
  const exact = (): string[] => Array.from(bruteForceTopK(fixture.base, query(), K, fixture.metric).ids, idOfRow);

  function client(target: string, tls: TlsFiles | undefined): CanopyClient {
    const c = new CanopyClient({ target, tls, deadlineMs: CALL_DEADLINE_MS });
    clients.push(c);
    return c;
  }

  async function searchIds(c: CanopyClient): Promise<string[]> {
    const answer = await c.search(fixture.index, query(), { k: K, searchK: EXHAUSTIVE_SEARCH_K });
    return answer.neighbors.map((n) => n.id);
  }

  /** The call's failure; fails the test when it succeeds. */
  async function refusal(c: CanopyClient): Promise<CanopyError> {
    const err = await searchIds(c).then(
      () => undefined,
      (e: unknown) => e as CanopyError,
    );
    expect(err, 'the call was answered').toBeDefined();
    return err!;
  }

  /** Polls until `c` answers a search (health probes are plaintext; these servers are not). */
  async function waitAnswering(proc: ServingProcess, c: CanopyClient): Promise<void> {
    const endMs = Date.now() + START_TIMEOUT_MS;
    let last: unknown;
    while (Date.now() < endMs) {
      if (proc.exited) throw new Error(`${proc.name} exited:\n${proc.stderrTail}`);
      try {
        await searchIds(c);
        return;
      } catch (err) {
        last = err;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    throw new Error(`${proc.name} did not answer within ${START_TIMEOUT_MS} ms (${String(last)}):\n${proc.stderrTail}`);
  }

  const address = async (): Promise<string> => `127.0.0.1:${await freePort()}`;

  beforeAll(async () => {
    ca = TestCa.create('canopy');
    otherCa = TestCa.create('other');
    shardCert = ca.issue('shard');
    routerCert = ca.issue('router');
    clientCert = ca.issue('client');
    strangerCert = otherCa.issue('stranger');
    fixture = await buildFixture(workDir, gaussianVectors(ITEMS, DIM, 5), { metric: 'euclidean', shards: 1, trees: 4, index: 'vectors', version: 'v1' });
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await group.killAll();
    await etcd?.stop();
    delete process.env.ETCD_PASSWORD;
    ca?.remove();
    otherCa?.remove();
    rmSync(workDir, { recursive: true, force: true });
  });

  it('TLS: a client that trusts the CA is answered; a plaintext client and a client trusting another CA are refused', async () => {
    const listen = await address();
    const shard = group.start('tls shard', listen, ['serve', 'shard', '--manifest', fixture.dir, '--shard', '0', '--listen', listen, '--tls-cert', shardCert.certFile, '--tls-key', shardCert.keyFile]);
    await waitAnswering(shard, client(listen, { caFile: ca.caFile }));
    expect(await searchIds(client(listen, { caFile: ca.caFile }))).toEqual(exact());

    expect((await refusal(client(listen, undefined))).code).toBe(grpc.status.UNAVAILABLE);
    expect((await refusal(client(listen, { caFile: otherCa.caFile }))).code).toBe(grpc.status.UNAVAILABLE);
    expect(shard.exited).toBe(false);
  }, 60_000);

  it('mutual TLS: router -> shard over mTLS; clients without a certificate or with another CA\'s are refused', async () => {
    const shardListen = await address();
    const shard = group.start('mtls shard', shardListen, ['serve', 'shard', '--manifest', fixture.dir, '--shard', '0', '--listen', shardListen, ...tlsFlags(shardCert), '--tls-require-client-cert']);
    await waitAnswering(shard, client(shardListen, clientCert));
    const routerListen = await address();
    const router = group.start('mtls router', routerListen, ['serve', 'router', '--listen', routerListen, '--backend', `0=${shardListen}`, ...tlsFlags(routerCert), '--tls-require-client-cert']);
    await waitAnswering(router, client(routerListen, clientCert));

    expect(await searchIds(client(routerListen, clientCert))).toEqual(exact());
    for (const target of [shardListen, routerListen]) {
      expect((await refusal(client(target, { caFile: ca.caFile }))).code, `${target}: no client certificate`).toBe(grpc.status.UNAVAILABLE);
      expect((await refusal(client(target, { ...strangerCert, caFile: ca.caFile }))).code, `${target}: another CA's certificate`).toBe(grpc.status.UNAVAILABLE);
      expect((await refusal(client(target, undefined))).code, `${target}: plaintext`).toBe(grpc.status.UNAVAILABLE);
    }

    // `canopy query` speaks mutual TLS through its flags.
    const cli = await runCanopy(['query', '--target', routerListen, '--index', fixture.index, '--vector', JSON.stringify(Array.from(query())), '--k', String(K), '--search-k', String(EXHAUSTIVE_SEARCH_K), ...tlsFlags(clientCert)]);
    expect(cli.code, cli.stderr).toBe(0);
    expect((JSON.parse(cli.stdout) as { neighbors: { id: string }[] }).neighbors.map((n) => n.id)).toEqual(exact());
    const noCert = await runCanopy(['query', '--target', routerListen, '--index', fixture.index, '--vector', JSON.stringify(Array.from(query())), '--tls-ca', ca.caFile]);
    expect(noCert.code).not.toBe(0);
    expect(noCert.stderr).toMatch(/UNAVAILABLE/);
    expect(shard.exited || router.exited).toBe(false);
  }, 60_000);

  it('etcd over TLS with client certificates and user/password: a shard node and a router register and serve', async () => {
    etcd = await EtcdServer.start({ tls: ca.issue('etcd') });
    etcd.enableAuth('root-test-password', [ETCD_USER]);
    const etcdCert = ca.issue('etcd-client');
    const etcdFlags = ['--etcd', etcd.url, '--cluster', 'secure', '--etcd-tls-ca', etcdCert.caFile, '--etcd-tls-cert', etcdCert.certFile, '--etcd-tls-key', etcdCert.keyFile];
    const authFlags = ['--etcd-user', ETCD_USER.name];

    // Without the password etcd refuses the user; the command says why instead of hanging.
    const noPassword = await runCanopy(['status', ...etcdFlags, ...authFlags]);
    expect(noPassword.code).not.toBe(0);
    expect(noPassword.stderr).toMatch(/ETCD_PASSWORD/);

    process.env.ETCD_PASSWORD = ETCD_USER.password;
    const published = await runCanopy(['publish', ...etcdFlags, ...authFlags, '--manifest', fixture.dir]);
    expect(published.code, published.stderr).toBe(0);

    const shardListen = await address();
    const shard = group.start('etcd shard', shardListen, ['serve', 'shard', ...etcdFlags, ...authFlags, '--index', fixture.index, '--shard', '0', '--listen', shardListen, ...tlsFlags(shardCert), '--tls-require-client-cert']);
    const routerListen = await address();
    const router = group.start('etcd router', routerListen, ['serve', 'router', ...etcdFlags, ...authFlags, '--listen', routerListen, ...tlsFlags(routerCert), '--tls-require-client-cert']);
    await waitAnswering(router, client(routerListen, clientCert));
    expect(await searchIds(client(routerListen, clientCert))).toEqual(exact());
    expect(shard.exited).toBe(false);

    // A wrong password is refused by etcd.
    process.env.ETCD_PASSWORD = 'not-the-password';
    const wrong = await runCanopy(['status', ...etcdFlags, ...authFlags]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/auth|password|authentication/i);
  }, 90_000);
});
