// Issue #8: the forest file a running shard node maps is truncated on disk.
// Real `canopy serve shard` processes on loopback, one with --no-prefault and
// one with the default prefault (MAP_POPULATE does not keep pages past the new
// end). Every call that reads the forest then gets UNAVAILABLE naming the file
// (a router tries another replica), the process stays up, still answers health
// checks and DescribeIndex, and logs the change once at error level.
import { cpSync, mkdtempSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CanopyClient } from '../../src/client/canopy-client';
import { CanopyError } from '../../src/wire/canopy-error';
import { healthStatus, SEARCH_HEALTH_SERVICE } from '../../src/cluster/health-probe';
import { freePort } from '../support/free-port';
import { row } from '../support/matrix';
import { buildFixture, type Fixture, idOfRow } from '../support/serving/fixture';
import { ProcessGroup, type ServingProcess, waitServing } from '../support/serving/processes';
import { gaussianVectors } from '../support/vectors';

const ITEMS = 3_000;
const DIM = 8;
const SHARD_FILE = 'shard-0000.ann';
const CALL_DEADLINE_MS = 10_000;
const LOGGED_ONCE = /index file changed on disk while served/g;

async function statusOf(call: () => Promise<unknown>): Promise<CanopyError> {
  try {
    await call();
  } catch (err) {
    return CanopyError.from(err);
  }
  throw new Error('the call succeeded on a truncated file');
}

describe('a shard whose forest file is truncated while served', () => {
  const group = new ProcessGroup();
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-truncated-'));
  let fixture: Fixture;

  beforeAll(async () => {
    const opts = { metric: 'angular', shards: 1, trees: 4, index: 'vectors', version: 'v1' } as const;
    fixture = await buildFixture(workDir, gaussianVectors(ITEMS, DIM, 17), opts);
  }, 60_000);

  afterAll(async () => {
    await group.killAll();
    rmSync(workDir, { recursive: true, force: true });
  });

  it.each([
    ['--no-prefault', ['--no-prefault']],
    ['the default prefault', []],
  ])('answers UNAVAILABLE naming the file and stays up (%s)', async (name, flags) => {
    const dir = path.join(workDir, `copy-${flags.length}`, 'v1');
    cpSync(fixture.dir, dir, { recursive: true });
    const file = path.join(dir, SHARD_FILE);
    const listen = `127.0.0.1:${await freePort()}`;
    const shard: ServingProcess = group.start(`shard (${name})`, listen, ['serve', 'shard', '--manifest', dir, '--shard', '0', '--listen', listen, ...flags]);
    await waitServing(shard);
    const client = new CanopyClient({ target: listen, deadlineMs: CALL_DEADLINE_MS });
    try {
      const query = row(fixture.base, 11);
      expect((await client.search(fixture.index, query, { k: 5 })).neighbors[0]!.id).toBe(idOfRow(11));

      truncateSync(file, Math.floor(statSync(file).size / 2));
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['Search', () => client.search(fixture.index, query, { k: 5 })],
        ['BatchSearch', () => client.batchSearch(fixture.index, [query, row(fixture.base, 12)], { k: 5 })],
        ['SearchByItem', () => client.searchByItem(fixture.index, idOfRow(ITEMS - 1), { k: 5 })],
        ['GetItem', () => client.getItem(fixture.index, idOfRow(ITEMS - 1))],
        ['Search again', () => client.search(fixture.index, query, { k: 5 })],
      ];
      for (const [method, call] of calls) {
        const error = await statusOf(call);
        expect(error.code, `${method}: ${error.message}`).toBe(grpc.status.UNAVAILABLE);
        expect(error.retryable, method).toBe(true); // a router tries another replica
        expect(error.message, method).toContain(`'${file}' changed on disk while mapped (truncated?)`);
      }

      expect(shard.exited).toBe(false);
      expect(await healthStatus(listen, SEARCH_HEALTH_SERVICE)).toBe('SERVING');
      expect((await client.describeIndex(fixture.index)).items).toBe(ITEMS);
      expect(shard.stderrTail.match(LOGGED_ONCE)).toHaveLength(1);
      expect(shard.stderrTail).toMatch(/"level":50.*index file changed on disk while served/);
    } finally {
      client.close();
      await shard.kill();
    }
  }, 60_000);
});
