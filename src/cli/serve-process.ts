// What every long-running `canopy serve ...` process shares: a JSON logger on
// stderr, and a graceful stop on SIGTERM/SIGINT (a second signal exits at once).
import pino, { type Logger } from 'pino';

export const DEFAULT_LOG_LEVEL = 'info';

export function createLogger(name: string, level: string = DEFAULT_LOG_LEVEL): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination(2));
}

/** Runs `stop` on the first SIGTERM or SIGINT, then exits; exits at once on a second one. */
export function stopOnSignals(stop: () => Promise<void>, log: Logger): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, 'stopping');
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/** Parses a positive integer flag, naming the flag when it is not one. */
export function positiveInt(flag: string): (value: string) => number {
  return integerAtLeast(1, flag);
}

/** Parses a non-negative integer flag, naming the flag when it is not one. */
export function nonNegativeInt(flag: string): (value: string) => number {
  return integerAtLeast(0, flag);
}

function integerAtLeast(min: number, flag: string): (value: string) => number {
  const what = min === 0 ? 'a non-negative integer' : 'a positive integer';
  return (value) => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min) throw new Error(`${flag} must be ${what}, got ${JSON.stringify(value)}`);
    return n;
  };
}
