// `canopy query`: one search, or a batch, against a router or a shard node,
// printed as JSON. The query comes from --vector (JSON, @FILE or - for stdin),
// --item (a stored item's vector) or --batch (a .npy matrix, one query per row).
// Problems with the arguments are found before any call, and exit 2 with usage.
import { readFile } from 'node:fs/promises';

import type { Command } from 'commander';

import { openNpy } from '../indexer/readers/npy-reader';
import { positiveInt } from './integer-flags';
import { addTargetFlags, printJson, type TargetFlags, withClient } from './target-flags';
import { checkArguments } from './usage-error';

interface QueryFlags extends TargetFlags {
  readonly index: string;
  readonly vector?: string;
  readonly item?: string;
  readonly batch?: string;
  readonly k: number;
  readonly searchK?: number;
  readonly exclude: string[];
  readonly minShards?: number;
  readonly exact?: boolean;
  readonly rerank?: number;
  readonly ef?: number;
}

const DEFAULT_QUERY_K = 10;

/** What to search by, read and checked before the call. */
type Query = { readonly kind: 'vector'; readonly vector: number[] } | { readonly kind: 'item'; readonly id: string } | { readonly kind: 'batch'; readonly vectors: Float32Array[] };

export function registerQueryCommand(program: Command): void {
  const command = program
    .command('query')
    .description('search a router or shard node and print the answer as JSON')
    .requiredOption('--index <name>', 'index name')
    .option('--vector <json|@file|->', 'query vector as a JSON array of numbers; @FILE reads it from FILE, - from stdin')
    .option('--item <id>', 'search by the stored vector of this id')
    .option('--batch <file.npy>', 'one query per row of a float32/float64 .npy matrix, sent as one BatchSearch')
    .option('--k <n>', 'neighbours to return', positiveInt('--k'), DEFAULT_QUERY_K)
    .option('--search-k <n>', 'nodes to inspect per shard (default n_trees * k)', positiveInt('--search-k'))
    .option('--exclude <id...>', 'ids to leave out of the answer', [])
    .option('--min-shards <n>', 'shards that must answer (default all)', positiveInt('--min-shards'))
    .option('--exact', "search each shard's forest alone, as Annoy, even where it has codes")
    .option('--rerank <n>', 'with codes: candidates re-ranked with exact distances (default 2k, at least 10)', positiveInt('--rerank'))
    .option('--ef <n>', "beam width of a search over each shard's neighbour graph (default: the forest alone)", positiveInt('--ef'));
  addTargetFlags(command);
  command.action(async (flags: QueryFlags, self: Command) => {
    const query = await checkArguments(self, () => readQuery(flags));
    const options = {
      k: flags.k,
      searchK: flags.searchK,
      excludeIds: flags.exclude,
      minShards: flags.minShards,
      deadlineMs: flags.deadlineMs,
      exact: flags.exact,
      rerank: flags.rerank,
      ef: flags.ef,
    };
    const answer = await withClient(flags, (client): Promise<unknown> => {
      if (query.kind === 'item') return client.searchByItem(flags.index, query.id, options);
      if (query.kind === 'batch') return client.batchSearch(flags.index, query.vectors, options);
      return client.search(flags.index, query.vector, options);
    });
    printJson(answer);
  });
}

async function readQuery(flags: QueryFlags): Promise<Query> {
  const given = [flags.vector, flags.item, flags.batch].filter((v) => v !== undefined).length;
  if (given !== 1) throw new Error('give exactly one of --vector, --item and --batch');
  if (flags.item !== undefined) return { kind: 'item', id: flags.item };
  if (flags.batch !== undefined) return { kind: 'batch', vectors: await readNpyRows(flags.batch) };
  return { kind: 'vector', vector: parseVector(await vectorText(flags.vector!)) };
}

/** The JSON text --vector names: itself, the contents of @FILE, or stdin for `-`. */
async function vectorText(value: string): Promise<string> {
  if (value === '-') return readStdin();
  if (!value.startsWith('@')) return value;
  const file = value.slice(1);
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`--vector @${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`, { cause: err });
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseVector(json: string): number[] {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new Error(`--vector must be a JSON array of numbers, got ${JSON.stringify(json.trim().slice(0, 80))}`);
  }
  if (!Array.isArray(value) || value.length === 0 || !value.every((x) => typeof x === 'number')) {
    throw new Error('--vector must be a non-empty JSON array of numbers');
  }
  return value as number[];
}

async function readNpyRows(file: string): Promise<Float32Array[]> {
  const reader = await openNpy(file).catch((err: Error) => {
    throw new Error(`--batch ${file}: ${err.message}`, { cause: err });
  });
  try {
    const vectors: Float32Array[] = [];
    for await (const rows of reader.batches()) for (const row of rows) vectors.push(row.vector);
    if (vectors.length === 0) throw new Error(`--batch ${file}: the matrix has no rows`);
    return vectors;
  } finally {
    await reader.close();
  }
}
