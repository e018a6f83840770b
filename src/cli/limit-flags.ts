// The limits every Canopy server (shard node or router) enforces on the
// requests it accepts, as flags with their defaults in the help.
import type { Command } from 'commander';

import {
  DEFAULT_MAX_BATCH_QUERIES,
  DEFAULT_MAX_CONCURRENT_STREAMS,
  DEFAULT_MAX_EF,
  DEFAULT_MAX_EVENT_LOOP_LAG_MS,
  DEFAULT_MAX_INFLIGHT_QUERIES,
  DEFAULT_MAX_K,
  DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
  DEFAULT_MAX_RERANK,
  DEFAULT_MAX_SEARCH_K,
} from '../wire/server-limits';
import { nonNegativeInt, positiveInt } from './integer-flags';

export interface ServerLimitFlags {
  readonly maxK?: number;
  readonly maxBatchQueries?: number;
  readonly maxSearchK?: number;
  readonly maxRerank?: number;
  readonly maxEf?: number;
  readonly maxMessageBytes?: number;
  readonly maxConcurrentStreams?: number;
  readonly maxEventLoopLagMs?: number;
  readonly maxInflightQueries?: number;
}

export function addServerLimitFlags(command: Command): Command {
  return command
    .option('--max-k <n>', `largest k accepted (default ${DEFAULT_MAX_K})`, positiveInt('--max-k'))
    .option('--max-batch-queries <n>', `most queries in one BatchSearch (default ${DEFAULT_MAX_BATCH_QUERIES})`, positiveInt('--max-batch-queries'))
    .option('--max-search-k <n>', `largest search_k accepted (default ${DEFAULT_MAX_SEARCH_K})`, positiveInt('--max-search-k'))
    .option('--max-rerank <n>', `largest rerank accepted (default ${DEFAULT_MAX_RERANK})`, positiveInt('--max-rerank'))
    .option('--max-ef <n>', `largest ef accepted (default ${DEFAULT_MAX_EF})`, positiveInt('--max-ef'))
    .option('--max-message-bytes <n>', `largest request message accepted (default ${DEFAULT_MAX_RECEIVE_MESSAGE_BYTES})`, positiveInt('--max-message-bytes'))
    .option('--max-concurrent-streams <n>', `calls one connection may have open at once (default ${DEFAULT_MAX_CONCURRENT_STREAMS})`, positiveInt('--max-concurrent-streams'))
    .option(
      '--max-event-loop-lag-ms <ms>',
      `refuse queries at once with RESOURCE_EXHAUSTED while the event loop lags more than this; 0: off (default ${DEFAULT_MAX_EVENT_LOOP_LAG_MS})`,
      nonNegativeInt('--max-event-loop-lag-ms'),
    )
    .option(
      '--max-inflight-queries <n>',
      `refuse queries at once with RESOURCE_EXHAUSTED while this many are in flight; 0: no bound (default ${DEFAULT_MAX_INFLIGHT_QUERIES})`,
      nonNegativeInt('--max-inflight-queries'),
    );
}

/** The limit flags as the server options they set (the flag says "message bytes", the option "receive"). */
export function serverLimitsFromFlags(flags: ServerLimitFlags) {
  return {
    maxK: flags.maxK,
    maxBatchQueries: flags.maxBatchQueries,
    maxSearchK: flags.maxSearchK,
    maxRerank: flags.maxRerank,
    maxEf: flags.maxEf,
    maxReceiveMessageBytes: flags.maxMessageBytes,
    maxConcurrentStreams: flags.maxConcurrentStreams,
    maxEventLoopLagMs: flags.maxEventLoopLagMs,
    maxInflightQueries: flags.maxInflightQueries,
  };
}
