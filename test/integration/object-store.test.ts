// The storage layer against a real S3 API (moto's server): multipart upload
// and streamed download of a file larger than one part, sizes and sha256
// checked on the way down, and a folder cache that never shows a half entry
// and evicts the least recently used entries that are not pinned.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { CacheFullError, FolderCache } from '../../src/storage/folder-cache';
import { ObjectIntegrityError } from '../../src/storage/object-integrity-error';
import { ObjectStore } from '../../src/storage/object-store';
import { MotoServer } from '../support/moto';

const BUCKET = 'canopy-store-test';
let moto: MotoServer;
let store: ObjectStore;
const dir = mkdtempSync(path.join(tmpdir(), 'canopy-store-'));
const savedEnv = { ...process.env };

beforeAll(async () => {
  moto = await MotoServer.start();
  Object.assign(process.env, moto.env);
  await moto.createBucket(BUCKET);
  store = ObjectStore.create({ endpoint: moto.endpoint });
});

afterAll(async () => {
  store?.close();
  await moto?.stop();
  process.env = savedEnv;
  rmSync(dir, { recursive: true, force: true });
});

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

describe('ObjectStore', () => {
  test('a file larger than one multipart part goes up and comes back byte for byte', async () => {
    const bytes = randomBytes(20 * 1024 * 1024 + 12_345);
    const source = path.join(dir, 'big.bin');
    writeFileSync(source, bytes);
    await store.uploadFile(source, `s3://${BUCKET}/v1/big.bin`);
    expect(await store.sizeOf(`s3://${BUCKET}/v1/big.bin`)).toBe(bytes.length);

    const copy = path.join(dir, 'big.copy');
    await store.downloadFile(`s3://${BUCKET}/v1/big.bin`, copy, { bytes: bytes.length, sha256: sha256(bytes) });
    expect(readFileSync(copy).equals(bytes)).toBe(true);
  });

  test('a download whose bytes differ from what is expected is refused and leaves no file', async () => {
    await moto.putObject(BUCKET, 'v1/small.txt', 'hello world\n');
    const target = path.join(dir, 'small.txt');
    const good = Buffer.from('hello world\n');
    await expect(store.downloadFile(`s3://${BUCKET}/v1/small.txt`, target, { bytes: good.length, sha256: sha256(Buffer.from('hello WORLD\n')) })).rejects.toThrow(
      /sha256 is [0-9a-f]{64}, the manifest says/,
    );
    expect(existsSync(target)).toBe(false);
    await expect(store.downloadFile(`s3://${BUCKET}/v1/small.txt`, target, { bytes: 5, sha256: sha256(good) })).rejects.toThrow(
      /larger than the 5 bytes the manifest says/,
    );
    await expect(store.downloadFile(`s3://${BUCKET}/v1/small.txt`, target, { bytes: 100, sha256: sha256(good) })).rejects.toThrow(
      /is 12 bytes, the manifest says 100/,
    );
    await expect(store.downloadFile(`s3://${BUCKET}/v1/missing`, target, { bytes: 1, sha256: sha256(good) })).rejects.toBeInstanceOf(ObjectIntegrityError);
    expect(existsSync(target)).toBe(false);
    expect(await store.sizeOf(`s3://${BUCKET}/v1/missing`)).toBeUndefined();
    expect(await store.readText(`s3://${BUCKET}/v1/small.txt`, 1_000)).toBe('hello world\n');
    await expect(store.readText(`s3://${BUCKET}/v1/small.txt`, 4)).rejects.toThrow(/larger than 4 bytes/);
  });
});

describe('FolderCache', () => {
  const fillWith = (bytes: number) => async (tempDir: string) => writeFileSync(path.join(tempDir, 'data'), Buffer.alloc(bytes));

  test('a fill that fails leaves nothing; leftovers of a killed process go when the cache opens', async () => {
    const root = path.join(dir, 'cache-fail');
    await mkdir(path.join(root, '.partial-v0-999-dead'), { recursive: true });
    const cache = new FolderCache({ root, maxBytes: 1_000 });
    await expect(
      cache.get('v1', 100, new Set(), async (tempDir) => {
        writeFileSync(path.join(tempDir, 'half'), 'x');
        throw new Error('connection reset');
      }),
    ).rejects.toThrow('connection reset');
    expect(readdirSync(root)).toEqual([]);
  });

  test('evicts the least recently used unpinned entries to make room, and refuses what cannot fit', async () => {
    const evicted: string[] = [];
    const cache = new FolderCache({ root: path.join(dir, 'cache-lru'), maxBytes: 1_000, onEvict: (name) => evicted.push(name) });
    await cache.get('v1', 400, new Set(), fillWith(400));
    await new Promise((r) => setTimeout(r, 20));
    await cache.get('v2', 400, new Set(), fillWith(400));
    await new Promise((r) => setTimeout(r, 20));
    // v1 used again: v2 is now the least recently used.
    let filled = false;
    await cache.get('v1', 400, new Set(), async () => void (filled = true));
    expect(filled).toBe(false);
    await cache.get('v3', 400, new Set(['v1']), fillWith(400));
    expect(evicted).toEqual(['v2']);
    await expect(cache.get('v4', 400, new Set(['v1', 'v3']), fillWith(400))).rejects.toBeInstanceOf(CacheFullError);
    await expect(cache.get('v5', 2_000, new Set(), fillWith(1))).rejects.toThrow(/does not fit a cache of 1000 bytes/);
  });
});
