// --target (or $CANOPY_TARGET), TLS and --deadline-ms of the commands that call
// a router or shard node, and a helper that opens, reports and closes the
// client. gRPC is loaded by that helper, when a command runs.
import { type Command, Option } from 'commander';

import type { CanopyClient } from '../client/canopy-client';
import { positiveInt } from './integer-flags';
import { addClientTlsFlags, clientTlsFromFlags, type TlsFlags } from './tls-flags';
import { checkArguments } from './usage-error';

export const TARGET_ENV = 'CANOPY_TARGET';

export interface TargetFlags extends TlsFlags {
  readonly target: string;
  readonly deadlineMs?: number;
}

export function addTargetFlags(command: Command): Command {
  command
    .addOption(new Option('--target <host:port>', 'router or shard node address').env(TARGET_ENV).makeOptionMandatory())
    .option('--deadline-ms <ms>', 'deadline of the call', positiveInt('--deadline-ms'))
    .hook('preAction', async (self) => void (await checkArguments(self, () => clientTlsFromFlags(self.opts<TlsFlags>()))));
  return addClientTlsFlags(command);
}

/** Runs `work` with a client of --target; a gRPC failure becomes an error naming its status. */
export async function withClient<T>(flags: TargetFlags, work: (client: CanopyClient) => Promise<T>): Promise<T> {
  const [{ CanopyClient }, { CanopyError }] = await Promise.all([import('../client/canopy-client.js'), import('../wire/canopy-error.js')]);
  const client = new CanopyClient({ target: flags.target, tls: clientTlsFromFlags(flags) });
  try {
    return await work(client);
  } catch (err) {
    const error = CanopyError.from(err);
    throw new Error(`${error.codeName}: ${error.message}`, { cause: err });
  } finally {
    client.close();
  }
}

/** Prints `value` as indented JSON on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
