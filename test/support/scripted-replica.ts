// A Search server on loopback whose BatchSearch (unary or stream) answers as a
// test scripts it: with its own name as the only neighbour, a failure, a
// refusal, or never. For router tests without the engine.
import * as grpc from '@grpc/grpc-js';

import { CanopyError } from '../../src/wire/canopy-error';
import type { BatchSearchRequest, BatchSearchResponse, SearchServiceHandlers } from '../../src/wire/contract';
import { batchStreamHandler, SearchServer, StreamDrain } from '../../src/wire/search-server';

export type Behaviour = 'answer' | 'unavailable' | 'refuse' | 'invalid' | 'hang';

/** A Search server whose BatchSearch answers with its own name, fails, or never answers. */
export class ScriptedReplica {
  behaviour: Behaviour = 'answer';
  /** How long each call waits before its scripted outcome. */
  delayMs = 0;
  calls = 0;
  readonly server: SearchServer;
  port = 0;
  readonly drain = new StreamDrain();

  /** `listen`: HOST:PORT, by default a free loopback port chosen at `start()`. */
  constructor(
    readonly name: string,
    listen = '127.0.0.1:0',
  ) {
    const refuse = (_: unknown, cb: grpc.sendUnaryData<never>) => cb({ code: grpc.status.UNIMPLEMENTED });
    const handlers: SearchServiceHandlers = {
      search: refuse,
      searchByItem: refuse,
      getItem: refuse,
      describeIndex: refuse,
      batchSearch: (call: grpc.ServerUnaryCall<BatchSearchRequest, BatchSearchResponse>, cb) => {
        this.answer(call.request).then(
          (response) => cb(null, response),
          (err: CanopyError) => cb({ code: err.code, details: err.message }),
        );
      },
      batchSearchStream: batchStreamHandler((batch) => this.answer(batch), () => undefined, this.drain),
    };
    this.server = new SearchServer(handlers, { listen, shutdownGraceMs: 0 });
  }

  /** The scripted outcome of one BatchSearch, whichever transport carried it, after `delayMs`. */
  private async answer(batch: BatchSearchRequest): Promise<BatchSearchResponse> {
    this.calls++;
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    return this.outcome(batch);
  }

  private outcome(batch: BatchSearchRequest): Promise<BatchSearchResponse> {
    switch (this.behaviour) {
      case 'hang':
        return new Promise(() => undefined);
      case 'unavailable':
        return Promise.reject(new CanopyError(grpc.status.UNAVAILABLE, `${this.name} is down`));
      case 'refuse':
        return Promise.reject(new CanopyError(grpc.status.RESOURCE_EXHAUSTED, `${this.name} is full`));
      case 'invalid':
        return Promise.reject(CanopyError.invalidArgument('bad query'));
      case 'answer':
        return Promise.resolve({
          results: batch.queries.map(() => ({ neighbors: [{ id: this.name, distance: 0 }], indexVersion: 'v', shardsTotal: 1, shardsAnswered: 1, shardsMissing: [] })),
          indexVersion: 'v',
          shardsTotal: 1,
          shardsAnswered: 1,
          shardsMissing: [],
        });
    }
  }

  async start(): Promise<string> {
    this.port = await this.server.start();
    return `127.0.0.1:${this.port}`;
  }
}
