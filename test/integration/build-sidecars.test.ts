// Sidecars from the command line, as real processes: `canopy build` writes each
// shard's codes and, for metrics that have one, its graph by default, lists them in the
// manifest, and `canopy inspect` and `canopy publish` check them; `canopy codes` writes them for an
// Annoy file pip annoy built. The engine loads every one it is given.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { Index } from '../../src';
import { parseManifest, type Manifest } from '../../src/format/manifest';
import { runCanopy } from '../support/cli';
import { writeAnn, writeJsonl } from '../support/input-files';
import { row } from '../support/matrix';
import { clusteredVectors } from '../support/vectors';

const dir = mkdtempSync(join(tmpdir(), 'canopy-build-sidecars-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const DIM = 16;
const data = clusteredVectors({ rows: 1_500, dim: DIM, clusters: 12, spread: 0.3, seed: 8 });
const input = join(dir, 'points.jsonl');
writeJsonl(input, data);

async function build(version: string, ...extra: string[]): Promise<{ folder: string; manifest: Manifest }> {
  const args = ['build', '--input', input, '--format', 'jsonl', '--ids-from-row', '--metric', 'euclidean', '--out', join(dir, 'out'), '--version', version];
  const result = await runCanopy([...args, '--shards', '2', '--trees', '4', '--threads', '2', ...extra]);
  expect(result.stderr).toMatch(/canopy build: points\//);
  expect(result.code).toBe(0);
  const folder = join(dir, 'out', version);
  return { folder, manifest: parseManifest(readFileSync(join(folder, 'manifest.json'), 'utf8'), folder) };
}

describe('canopy build', () => {
  test('writes and lists codes and a graph per shard by default; inspect loads them', async () => {
    const { folder, manifest } = await build('codes');
    expect(manifest.shards.map((s) => s.sidecars?.map((c) => [c.kind, c.file]))).toEqual([
      [['codes', 'shard-0000.codes'], ['graph', 'shard-0000.graph']],
      [['codes', 'shard-0001.codes'], ['graph', 'shard-0001.graph']],
    ]);
    expect(readdirSync(folder).sort()).toEqual([
      'manifest.json', 'shard-0000.ann', 'shard-0000.codes', 'shard-0000.graph', 'shard-0000.ids',
      'shard-0001.ann', 'shard-0001.codes', 'shard-0001.graph', 'shard-0001.ids',
    ]);
    const inspected = await runCanopy(['inspect', folder]);
    expect(inspected.code).toBe(0);
    expect(inspected.stdout).toContain('every forest and sidecar loads');
  });

  test('the engine loads the graph and searches it with ef; --no-graph skips it', async () => {
    const { folder, manifest } = await build('graph', '--graph');
    expect(manifest.shards[0]!.sidecars?.map((c) => c.kind)).toEqual(['codes', 'graph']);
    const without = await build('no-graph', '--no-graph');
    expect(without.manifest.shards.map((s) => s.sidecars?.map((c) => c.kind))).toEqual([['codes'], ['codes']]);
    expect(readdirSync(without.folder).filter((f) => f.endsWith('.graph'))).toEqual([]);
    expect((await runCanopy(['inspect', folder])).code).toBe(0);
    const index = Index.load(join(folder, 'shard-0000.ann'), { dim: DIM, metric: 'euclidean' });
    index.loadGraph(join(folder, 'shard-0000.graph'));
    expect(index.hasGraph).toBe(true);
    expect(index.searchSync(row(data, 0), 5, { ef: 20 }).ids).toHaveLength(5);
    index.unload();
  });

  test('the graph width is chosen by the build (a multiple of 8 in 16..48) unless --graph-width names one', async () => {
    // The graph sidecar's first section is the graph; its first parameter is the row width
    // (docs/sidecar-format.md: a 64-byte header, then 64-byte table entries with params at byte 32).
    const widthOf = (file: string): number => readFileSync(file).readUInt32LE(64 + 32);
    const chosen = await build('chosen-width');
    expect([16, 24, 32, 40, 48]).toContain(widthOf(join(chosen.folder, 'shard-0000.graph')));
    const asked = await build('asked-width', '--graph-width', '64');
    expect(widthOf(join(asked.folder, 'shard-0000.graph'))).toBe(64);
    const bad = await runCanopy(['build', '--input', input, '--format', 'jsonl', '--metric', 'euclidean', '--out', join(dir, 'out'), '--graph', '--graph-width', '20']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--graph-width must be a multiple of 8 in 16\.\.256, got 20/);
    const none = await runCanopy(['build', '--input', input, '--format', 'jsonl', '--metric', 'euclidean', '--out', join(dir, 'out'), '--no-graph', '--graph-width', '16']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--graph-width needs a graph/);
  });

  test('--no-codes --no-graph writes none and the manifest lists none', async () => {
    const { folder, manifest } = await build('plain', '--no-codes', '--no-graph');
    expect(manifest.shards.every((s) => s.sidecars === undefined)).toBe(true);
    expect(readdirSync(folder).filter((f) => f.endsWith('.codes'))).toEqual([]);
  });

  test('--graph with a metric that has no graph is refused before any work; by default it gets none', async () => {
    const result = await runCanopy(['build', '--input', input, '--format', 'jsonl', '--metric', 'dot', '--out', join(dir, 'out'), '--graph']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--graph needs a metric with a true distance \(angular, euclidean, manhattan\); dot has none/);
    const dot = await runCanopy(['build', '--input', input, '--format', 'jsonl', '--ids-from-row', '--metric', 'dot', '--out', join(dir, 'out'), '--version', 'dot', '--trees', '2', '--threads', '2']);
    expect(dot.code).toBe(0);
    const manifest = parseManifest(readFileSync(join(dir, 'out', 'dot', 'manifest.json'), 'utf8'), join(dir, 'out', 'dot'));
    expect(manifest.shards[0]!.sidecars?.map((c) => c.kind)).toEqual(['codes']);
  });

  test('inspect names a damaged sidecar and what the engine says of a stale one', async () => {
    const { folder } = await build('damaged');
    const codes = join(folder, 'shard-0001.codes');
    const bytes = readFileSync(codes);
    bytes[bytes.length - 8] ^= 0x10;
    writeFileSync(codes, bytes);
    const damaged = await runCanopy(['inspect', folder]);
    expect(damaged.code).toBe(1);
    expect(damaged.stderr).toMatch(/shard 1: .*shard-0001\.codes: sha256 is [0-9a-f]{64}, manifest says/);
    // publish checks every file the manifest lists before it calls etcd (here, none listens).
    const published = await runCanopy(['publish', '--etcd', 'http://127.0.0.1:1', '--manifest', folder]);
    expect(published.code).toBe(1);
    expect(published.stderr).toMatch(/shard-0001\.codes: sha256 is [0-9a-f]{64}, manifest says/);

    // A sidecar of another forest, listed with its own size and sha256: only the engine can tell.
    const manifestFile = join(folder, 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
    manifest.shards[1].sidecars[0] = { ...manifest.shards[0].sidecars[0] };
    writeFileSync(manifestFile, JSON.stringify(manifest));
    const foreign = await runCanopy(['inspect', folder]);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toMatch(/shard 1: .*shard-0000\.codes.*(stale|another forest)/);
  });
});

describe('canopy codes FILE.ann', () => {
  test('writes FILE.codes and, with --graph, FILE.graph for a pip annoy file; both load and search', async () => {
    const ann = join(dir, 'annoy.ann');
    writeAnn(ann, data, 'angular', Array.from({ length: data.rows }, (_, i) => i), 5);
    const result = await runCanopy(['codes', ann, '--dim', String(DIM), '--metric', 'angular', '--graph', '--threads', '2']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${join(dir, 'annoy.codes')}\n${join(dir, 'annoy.graph')}\n`);
    const index = Index.load(ann, { dim: DIM, metric: 'angular' });
    index.loadCodes(join(dir, 'annoy.codes'));
    index.loadGraph(join(dir, 'annoy.graph'));
    const exact = index.searchSync(row(data, 3), 10, { exact: true });
    expect(exact.ids[0]).toBe(3);
    expect(index.searchSync(row(data, 3), 10, { ef: 30 }).ids[0]).toBe(3);
    index.unload();
  });

  test('a build from --format ann (re-sharding an Annoy file) gets its sidecars like any build', async () => {
    const ann = join(dir, 'reshard.ann');
    writeAnn(ann, data, 'angular', Array.from({ length: data.rows }, (_, i) => i), 3);
    const out = join(dir, 'from-ann');
    const args = ['build', '--input', ann, '--format', 'ann', '--dim', String(DIM), '--metric', 'angular', '--out', out, '--version', 'a1'];
    const result = await runCanopy([...args, '--shards', '2', '--trees', '4', '--threads', '2']);
    expect(result.code).toBe(0);
    const manifest = parseManifest(readFileSync(join(out, 'a1', 'manifest.json'), 'utf8'), out);
    expect(manifest.shards.map((s) => s.sidecars?.map((c) => c.file))).toEqual([
      ['shard-0000.codes', 'shard-0000.graph'],
      ['shard-0001.codes', 'shard-0001.graph'],
    ]);
    expect((await runCanopy(['inspect', join(out, 'a1')])).code).toBe(0);
  });

  test('--graph with a metric that has none, or nothing to write, is a usage error (exit 2)', async () => {
    const ann = join(dir, 'annoy.ann');
    const dot = await runCanopy(['codes', ann, '--dim', String(DIM), '--metric', 'dot', '--graph']);
    expect(dot.code).toBe(2);
    expect(dot.stderr).toMatch(/--graph needs a metric with a true distance \(angular, euclidean, manhattan\); dot has none/);
    const nothing = await runCanopy(['codes', ann, '--dim', String(DIM), '--metric', 'angular', '--no-codes']);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toMatch(/--no-codes without --graph writes nothing/);
  });

  test('a file that is not an Annoy forest of that shape is refused, naming it', async () => {
    const bogus = join(dir, 'bogus.ann');
    writeFileSync(bogus, Buffer.alloc(100, 7));
    const result = await runCanopy(['codes', bogus, '--dim', String(DIM), '--metric', 'euclidean']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(bogus);
  });
});
