// An action's own checks of its arguments (what commander cannot check alone:
// flags that go together, files that must exist) end like commander's: the
// message, the sub-command's usage, exit status 2 (main.ts), before any work.
import type { Command } from 'commander';

/** Runs `check`; whatever it throws is reported as a usage error of `command`. */
export async function checkArguments<T>(command: Command, check: () => T | Promise<T>): Promise<T> {
  try {
    return await check();
  } catch (err) {
    command.error(`error: ${(err as Error).message}`);
  }
}
