// `canopy query`: one search against a router or a shard node, printed as JSON.
import type { Command } from 'commander';

import { CanopyClient } from '../client/canopy-client';
import { CanopyError } from '../wire/canopy-error';
import { positiveInt } from './serve-process';
import { addClientTlsFlags, clientTlsFromFlags, type TlsFlags } from './tls-flags';

interface QueryFlags extends TlsFlags {
  readonly target: string;
  readonly index: string;
  readonly vector?: string;
  readonly item?: string;
  readonly k: number;
  readonly searchK?: number;
  readonly exclude: string[];
  readonly minShards?: number;
  readonly deadlineMs?: number;
}

const DEFAULT_QUERY_K = 10;

export function registerQueryCommand(program: Command): void {
  const command = program
    .command('query')
    .description('search a router or shard node and print the answer as JSON')
    .requiredOption('--target <host:port>', 'router or shard node address')
    .requiredOption('--index <name>', 'index name')
    .option('--vector <json>', 'query vector as a JSON array of numbers')
    .option('--item <id>', 'search by the stored vector of this id')
    .option('--k <n>', 'neighbours to return', positiveInt('--k'), DEFAULT_QUERY_K)
    .option('--search-k <n>', 'nodes to inspect per shard (default n_trees * k)', positiveInt('--search-k'))
    .option('--exclude <id...>', 'ids to leave out of the answer', [])
    .option('--min-shards <n>', 'shards that must answer (default all)', positiveInt('--min-shards'))
    .option('--deadline-ms <ms>', 'deadline of the call', positiveInt('--deadline-ms'));
  addClientTlsFlags(command);
  command.action(async (flags: QueryFlags) => {
    if ((flags.vector === undefined) === (flags.item === undefined)) throw new Error('give exactly one of --vector and --item');
    const client = new CanopyClient({ target: flags.target, tls: clientTlsFromFlags(flags) });
    const options = {
      k: flags.k,
      searchK: flags.searchK,
      excludeIds: flags.exclude,
      minShards: flags.minShards,
      deadlineMs: flags.deadlineMs,
    };
    try {
      const answer =
        flags.item !== undefined
          ? await client.searchByItem(flags.index, flags.item, options)
          : await client.search(flags.index, parseVector(flags.vector!), options);
      process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
    } catch (err) {
      const error = CanopyError.from(err);
      throw new Error(`${error.codeName}: ${error.message}`, { cause: err });
    } finally {
      client.close();
    }
  });
}

function parseVector(json: string): number[] {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new Error(`--vector must be a JSON array of numbers, got ${JSON.stringify(json.slice(0, 80))}`);
  }
  if (!Array.isArray(value) || value.length === 0 || !value.every((x) => typeof x === 'number')) {
    throw new Error('--vector must be a non-empty JSON array of numbers');
  }
  return value as number[];
}
