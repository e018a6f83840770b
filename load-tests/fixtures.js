'use strict';
// What the serving load scripts share: seeded vectors, a one-shard index
// version built from them with the real builder, and free loopback ports.
// Needs dist/ (`npm run prepare`).
const { writeFileSync } = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const { buildVersion } = require(path.join(ROOT, 'dist', 'indexer', 'builder.js'));
const { Index } = require(path.join(ROOT, 'dist', 'engine', 'engine-index.js'));
const { freeLoopbackPort } = require(path.join(ROOT, 'dist', 'cluster', 'loopback-port.js'));

/** `count` floats in [-1, 1) from a 64-bit LCG: the same for the same seed, in any process. */
function seededFloats(count, seed) {
  let state = BigInt(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    state = (state * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    out[i] = Number(state >> 40n) / 2 ** 23 - 1;
  }
  return out;
}

/** The header of a float32 .npy file of `rows` x `dim` (C order); the raw little-endian rows follow it. */
function npyHeader(rows, dim) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${dim}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n'; // the data starts on a 64-byte boundary
  const prefix = Buffer.alloc(10);
  Buffer.from([0x93, ...Buffer.from('NUMPY'), 1, 0]).copy(prefix);
  prefix.writeUInt16LE(header.length, 8);
  return Buffer.concat([prefix, Buffer.from(header, 'latin1')]);
}

/** Builds version v1 of `index`, one euclidean shard of `items` seeded vectors (ids item-<row>); resolves with its folder. */
async function buildSeededVersion(workDir, { items, dim, trees, index }) {
  const data = seededFloats(items * dim, 1);
  const lines = Array.from({ length: items }, (_, r) => JSON.stringify({ id: `item-${r}`, vector: Array.from(data.subarray(r * dim, (r + 1) * dim)) }));
  const input = path.join(workDir, 'items.jsonl');
  writeFileSync(input, `${lines.join('\n')}\n`);
  const built = await buildVersion({
    input, format: 'jsonl', metric: 'euclidean', outDir: path.join(workDir, 'versions'),
    createForest: (o) => new Index(o), nTrees: trees, shardCount: 1, index, version: 'v1', seed: 1,
  });
  return built.dir;
}

module.exports = { seededFloats, npyHeader, buildSeededVersion, freePort: freeLoopbackPort };
