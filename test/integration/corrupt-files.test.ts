// Version folders that must never be served: manifest paths that leave the
// folder (`..`, absolute, a symlink pointing out), a truncated forest, a
// forest whose size and checksum match a manifest written for it but whose
// node references point past its end, and bytes that no longer match their
// sha256. Each is refused, with the reason, by `canopy inspect` (exit 1) and
// by `canopy serve shard --manifest` (exits non-zero instead of serving). A
// symlink that stays inside the folder is fine for both.
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCanopy } from '../support/cli';
import { freePort } from '../support/free-port';
import { buildFixture } from '../support/serving/fixture';
import { ProcessGroup, waitServing } from '../support/serving/processes';
import { gaussianVectors } from '../support/vectors';

const DIM = 6;
/** Angular nodes: n_descendants (int32), children[2] (int32), then dim floats. */
const ANGULAR_CHILDREN_OFFSET = 4;
const ANGULAR_NODE_BYTES = 4 + 8 + 4 * DIM;
const SHARD_FILE = 'shard-0000.ann';
/** A shard node that loads must not be mistaken for one that refused: it would run until killed. */
const SERVE_TIMEOUT_MS = 20_000;

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

describe('corrupt and escaping index files', () => {
  const group = new ProcessGroup();
  const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-corrupt-'));
  let sound: string;
  let counter = 0;

  beforeAll(async () => {
    const opts = { metric: 'angular', shards: 1, trees: 3, index: 'vectors', version: 'v1' } as const;
    sound = (await buildFixture(workDir, gaussianVectors(300, DIM, 9), opts)).dir;
  }, 60_000);

  afterAll(async () => {
    await group.killAll();
    rmSync(workDir, { recursive: true, force: true });
  });

  /** A copy of the sound version in a folder of its own (named v1, as its manifest says). */
  function copyOfSound(): string {
    const dir = path.join(workDir, `case-${counter++}`, 'v1');
    cpSync(sound, dir, { recursive: true });
    return dir;
  }

  function editManifest(dir: string, edit: (shard: Record<string, unknown>) => void): void {
    const file = path.join(dir, 'manifest.json');
    const manifest = JSON.parse(readFileSync(file, 'utf8'));
    edit(manifest.shards[0]);
    writeFileSync(file, JSON.stringify(manifest, null, 2));
  }

  /** Rewrites the forest and makes the manifest agree with the new bytes (size and sha256). */
  function replaceForest(dir: string, bytes: Buffer): void {
    writeFileSync(path.join(dir, SHARD_FILE), bytes);
    editManifest(dir, (s) => {
      s.fileBytes = bytes.length;
      s.fileSha256 = sha256(bytes);
    });
  }

  /** Both commands refuse `dir`, each naming the reason. */
  async function expectRefused(dir: string, reason: RegExp): Promise<void> {
    const inspected = await runCanopy(['inspect', dir]);
    expect(inspected.code, `inspect: ${inspected.stderr}`).toBe(1);
    expect(inspected.stderr).toMatch(reason);

    const listen = `127.0.0.1:${await freePort()}`;
    const served = await runCanopy(['serve', 'shard', '--manifest', dir, '--shard', '0', '--listen', listen], SERVE_TIMEOUT_MS);
    expect(served.code, `serve shard should exit non-zero: ${served.stderr}`).not.toBe(0);
    expect(served.code, 'serve shard was killed instead of refusing').not.toBeNull();
    expect(served.stderr).toMatch(reason);
    expect(served.stderr).not.toMatch(/\n\s+at /);
  }

  it('refuses a manifest path with ..', async () => {
    const dir = copyOfSound();
    cpSync(path.join(dir, SHARD_FILE), path.join(dir, '..', 'x.ann'));
    editManifest(dir, (s) => (s.file = '../x.ann'));
    await expectRefused(dir, /shards\[0\]\.file "\.\.\/x\.ann" must be a relative path inside the version folder/);
  });

  it('refuses an absolute manifest path', async () => {
    const dir = copyOfSound();
    editManifest(dir, (s) => (s.file = path.join(dir, SHARD_FILE)));
    await expectRefused(dir, /shards\[0\]\.file ".*shard-0000\.ann" must be a relative path inside the version folder/);
  });

  it('refuses a symlink that points outside the folder, even to identical bytes', async () => {
    const dir = copyOfSound();
    const outside = path.join(dir, '..', 'outside.ann');
    renameSync(path.join(dir, SHARD_FILE), outside);
    symlinkSync(outside, path.join(dir, SHARD_FILE));
    await expectRefused(dir, /shard-0000\.ann resolves to .*outside\.ann, outside the version folder/);
  });

  it('serves through a symlink that stays inside the folder', async () => {
    const dir = copyOfSound();
    mkdirSync(path.join(dir, 'data'));
    renameSync(path.join(dir, SHARD_FILE), path.join(dir, 'data', 'forest.ann'));
    symlinkSync(path.join('data', 'forest.ann'), path.join(dir, SHARD_FILE));
    const inspected = await runCanopy(['inspect', dir]);
    expect(inspected.stderr).toBe('');
    expect(inspected.code).toBe(0);
    const listen = `127.0.0.1:${await freePort()}`;
    const shard = group.start('shard via inner symlink', listen, ['serve', 'shard', '--manifest', dir, '--shard', '0', '--listen', listen]);
    await waitServing(shard);
    await shard.kill();
  });

  it('refuses a truncated forest (manifest untouched: the size differs)', async () => {
    const dir = copyOfSound();
    const bytes = readFileSync(path.join(dir, SHARD_FILE));
    writeFileSync(path.join(dir, SHARD_FILE), bytes.subarray(0, bytes.length - 100));
    await expectRefused(dir, /shard-0000\.ann: size is \d+ bytes, manifest says \d+/);
  });

  it('refuses a truncated forest even when the manifest was written for it', async () => {
    const dir = copyOfSound();
    const bytes = readFileSync(path.join(dir, SHARD_FILE));
    replaceForest(dir, bytes.subarray(0, bytes.length - 10));
    await expectRefused(dir, /shard-0000\.ann.* has size \d+ bytes, not a multiple of the node size/);
  });

  it('refuses a forest whose node references point past its end (size and sha256 match)', async () => {
    const dir = copyOfSound();
    const bytes = Buffer.from(readFileSync(path.join(dir, SHARD_FILE)));
    expect(bytes.length % ANGULAR_NODE_BYTES).toBe(0);
    // The last node is a root copy, a split node: send its first child far past the end.
    const lastNode = bytes.length - ANGULAR_NODE_BYTES;
    bytes.writeInt32LE(1_000_000, lastNode + ANGULAR_CHILDREN_OFFSET);
    replaceForest(dir, bytes);
    await expectRefused(dir, /shard-0000\.ann.* is corrupt: node \d+ has child 1000000 outside 0\.\.\d+/);
  });

  it('refuses a forest whose bytes no longer match their sha256', async () => {
    const dir = copyOfSound();
    const file = path.join(dir, SHARD_FILE);
    const bytes = Buffer.from(readFileSync(file));
    bytes[bytes.length - 3] ^= 0x40;
    writeFileSync(file, bytes);
    await expectRefused(dir, /shard-0000\.ann: sha256 is [0-9a-f]{64}, manifest says [0-9a-f]{64}/);
  });
});
