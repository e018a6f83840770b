// `canopy publish` refuses what would break serving, as a real process against
// a real etcd: versions built by `canopy build` that differ from the active one
// in metric, dimension, shard layout, item count or ids are refused with the
// reason, the target does not move, and --force publishes anyway and records
// who overrode what. `--wait` exits 0 once the version is active, 1 when a node
// reports it failed (naming node and reason), 2 on --timeout. Version names
// of builds started in the same second do not collide.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { versionStampOf } from '../../src/indexer/builder';
import { ClusterKeys } from '../../src/registry/keys';
import type { VersionRecord } from '../../src/registry/records';
import { flipActive } from '../../src/registry/versions';
import { runCanopy } from '../support/cli';
import { EtcdServer } from '../support/etcd';
import { gaussianVectors } from '../support/vectors';
import { row } from '../support/matrix';

let etcd: EtcdServer;
let client: Etcd3;
const keys = new ClusterKeys('guards');
const scratch = mkdtempSync(path.join(tmpdir(), 'canopy-guards-'));

beforeAll(async () => {
  etcd = await EtcdServer.start();
  client = new Etcd3({ hosts: etcd.url });
});

afterAll(async () => {
  client?.close();
  await etcd?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

const flags = (): string[] => ['--etcd', etcd.url, '--cluster', 'guards'];

/** Builds version `version` of index tracks from `count` rows with ids `<prefix><first + n>`. */
async function build(version: string, { count = 200, first = 0, dim = 4, metric = 'euclidean', shards = 1, prefix = 't' } = {}): Promise<string> {
  const input = path.join(scratch, `${version}.jsonl`);
  const m = gaussianVectors(count, dim, 1);
  writeFileSync(input, Array.from({ length: count }, (_, i) => JSON.stringify({ id: `${prefix}${first + i}`, vector: Array.from(row(m, i)) })).join('\n') + '\n');
  const result = await runCanopy([
    'build', '--input', input, '--format', 'jsonl', '--metric', metric, '--trees', '2', '--shards', String(shards),
    '--index', 'tracks', '--version', version, '--out', path.join(scratch, 'versions'),
  ]);
  expect(result.code).toBe(0);
  return result.stdout.trim();
}

const target = (): Promise<string | null> => client.get(keys.target('tracks')).string();

async function registerNode(versions: Record<string, unknown> = {}): Promise<void> {
  await client.put(keys.node('node-a')).value(JSON.stringify({ addr: '127.0.0.1:7001', index: 'tracks', shard: 0, stopping: false, versions }));
}

describe('publish guards', () => {
  it('refuse, naming the reason, what differs from the active version; --force publishes and is recorded', async () => {
    // Nothing is active yet: nothing to break, so nothing is checked.
    expect((await runCanopy(['publish', ...flags(), '--manifest', await build('v1')])).code).toBe(0);
    expect(await flipActive(client, keys, 'tracks', 'v1')).toBe(true);
    await registerNode();

    const refusals: Array<[string, Promise<string>, RegExp]> = [
      ['dim', build('d8', { dim: 8 }), /dimension 8 differs from the active version v1's 4: every query would be refused/],
      ['metric', build('ang', { metric: 'angular' }), /metric angular differs from the active version v1's euclidean/],
      ['shards', build('two', { shards: 2 }), /2 shards, but no live node serves shard 1 of index tracks/],
      ['items', build('few', { count: 80 }), /80 items, 60% fewer than the active version v1's 200 \(--max-item-drop 0\.5\)/],
      ['ids', build('other', { prefix: 'u' }), /only 0\.0% of \d+ ids sampled from the active version v1 are in other \(--min-id-overlap 0\.5\)/],
    ];
    for (const [, built, reason] of refusals) {
      const result = await runCanopy(['publish', ...flags(), '--manifest', await built]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^canopy: refused tracks\/\w+: /);
      expect(result.stderr).toMatch(reason);
      expect(result.stderr).toMatch(/\(--force publishes anyway\)\n$/);
      expect(await target()).toBe('v1');
    }

    // Limits are flags: a 60% drop (keeping 40% of the ids) passes looser bounds.
    const loose = ['--max-item-drop', '0.7', '--min-id-overlap', '0.3'];
    expect((await runCanopy(['publish', ...flags(), '--manifest', path.join(scratch, 'versions', 'few'), ...loose])).code).toBe(0);
    expect(await target()).toBe('few');

    const forced = await runCanopy(['publish', ...flags(), '--manifest', path.join(scratch, 'versions', 'other'), '--force', '--forced-by', 'alice']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(/forced by alice over: only 0\.0% of/);
    expect(await target()).toBe('other');
    const record = JSON.parse((await client.get(keys.version('tracks', 'other')).string())!) as VersionRecord;
    expect(record.forced).toEqual({ by: 'alice', overrode: [expect.stringMatching(/^only 0\.0% of \d+ ids sampled/)] });
    const status = await runCanopy(['status', ...flags()]);
    expect(status.stdout).toMatch(/version other \(target\).*\n {4}forced by alice over: only 0\.0% of/);
  });

  it('the id overlap is measured, not guessed: 75% passes a 0.7 bound and fails a 0.8 one', async () => {
    // t50..t299: 150 of v1's 200 ids (t0..t199), and 100 new ones.
    const dir = await build('mixed', { count: 250, first: 50 });
    const strict = await runCanopy(['publish', ...flags(), '--manifest', dir, '--min-id-overlap', '0.8']);
    expect(strict.stderr).toMatch(/only 75\.0% of \d+ ids sampled from the active version v1 are in mixed \(--min-id-overlap 0\.8\)/);
    expect((await runCanopy(['publish', ...flags(), '--manifest', dir, '--min-id-overlap', '0.7'])).code).toBe(0);
  });
});

describe('publish --wait', () => {
  it('exits 0 once active, 1 naming the node that failed it, 2 on --timeout', async () => {
    await flipActive(client, keys, 'tracks', 'mixed');
    const ok = runCanopy(['publish', ...flags(), '--manifest', await build('w1', { count: 250 }), '--wait', '--timeout', '30']);
    while ((await target()) !== 'w1') await new Promise((r) => setTimeout(r, 50));
    await registerNode({ w1: { state: 'ready' } });
    expect(await flipActive(client, keys, 'tracks', 'w1')).toBe(true);
    const okResult = await ok;
    expect(okResult.stdout).toMatch(/tracks\/w1 is active\n$/);
    expect(okResult.code).toBe(0);

    const failing = runCanopy(['publish', ...flags(), '--manifest', await build('w2', { count: 250 }), '--wait', '--timeout', '30']);
    while ((await target()) !== 'w2') await new Promise((r) => setTimeout(r, 50));
    await registerNode({ w1: { state: 'ready' }, w2: { state: 'failed', reason: 'shard-0000.ann: sha256 mismatch' } });
    const failed = await failing;
    expect(failed.stderr).toBe('canopy: tracks/w2 failed on node node-a (127.0.0.1:7001): shard-0000.ann: sha256 mismatch\n');
    expect(failed.code).toBe(1);

    await registerNode({ w1: { state: 'ready' } });
    const slow = await runCanopy(['publish', ...flags(), '--manifest', await build('w3', { count: 250 }), '--wait', '--timeout', '1']);
    expect(slow.stderr).toBe('canopy: tracks/w3 was not active after 1 s (--timeout); see canopy status\n');
    expect(slow.code).toBe(2);
  });
});

describe('default version names', () => {
  it('two builds in the same second get distinct names', async () => {
    const out = path.join(scratch, 'stamps');
    // Every name the next seconds could give is taken: the build must add a suffix.
    const now = Date.now();
    for (let s = 0; s < 30; s++) mkdirSync(path.join(out, versionStampOf(new Date(now + s * 1_000))), { recursive: true });
    const input = path.join(scratch, 'v1.jsonl');
    const result = await runCanopy(['build', '--input', input, '--format', 'jsonl', '--metric', 'euclidean', '--trees', '1', '--out', out]);
    expect(result.code).toBe(0);
    expect(path.basename(result.stdout.trim())).toMatch(/^\d{8}T\d{6}Z-2$/);
    const again = await runCanopy(['build', '--input', input, '--format', 'jsonl', '--metric', 'euclidean', '--trees', '1', '--out', out]);
    expect(path.basename(again.stdout.trim())).toMatch(/^\d{8}T\d{6}Z-[23]$/);
    expect(readdirSync(out).filter((name) => name.includes('-')).length).toBe(2);
  });
});
