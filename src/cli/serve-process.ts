// What every long-running `canopy serve ...` process shares: a JSON logger on
// stderr (lines about a traced request carry its trace_id and span_id), telemetry (OTEL_* variables and
// --metrics-listen), and a graceful stop on SIGTERM/SIGINT (a second signal
// exits at once).
import pino, { type Logger } from 'pino';

import { startTelemetry, type Telemetry } from '../telemetry/telemetry';

export const DEFAULT_LOG_LEVEL = 'info';
/** Sets the default of --log-level (the flag wins). */
export const LOG_LEVEL_ENV = 'CANOPY_LOG_LEVEL';

/** --log-level's default: CANOPY_LOG_LEVEL when set, else info. */
export function defaultLogLevel(env: NodeJS.ProcessEnv = process.env): string {
  return env[LOG_LEVEL_ENV]?.trim() || DEFAULT_LOG_LEVEL;
}

export function createLogger(name: string, level: string = defaultLogLevel()): Logger {
  if (!(level in pino.levels.values) && level !== 'silent') {
    throw new Error(`--log-level (or ${LOG_LEVEL_ENV}) must be one of ${Object.keys(pino.levels.values).join(', ')} or silent, got ${JSON.stringify(level)}`);
  }
  return pino({ name, level, base: { pid: process.pid } }, pino.destination(2));
}

/** Starts telemetry as OTEL_* and `metricsListen` ask, and logs what is on. */
export async function startProcessTelemetry(serviceName: string, metricsListen: string | undefined, log: Logger): Promise<Telemetry> {
  const telemetry = await startTelemetry({ serviceName, ...(metricsListen === undefined ? {} : { metricsListen }) });
  if (telemetry.tracing || telemetry.metricsAddress !== undefined) {
    log.info({ tracing: telemetry.tracing, metrics: telemetry.metricsAddress }, 'telemetry on');
  }
  return telemetry;
}

/**
 * Flushes and stops telemetry at the end of a stop. Never rejects: a final
 * export that fails or outlasts its timeout (collector down) is logged, and
 * the process goes on stopping.
 */
export async function stopTelemetry(telemetry: Telemetry, log: Logger): Promise<void> {
  try {
    await telemetry.shutdown();
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'telemetry did not flush');
  }
}

/** A shard node or router as a serve command runs it. */
export interface ServedProcess {
  start(): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * Starts `server`; on the first SIGTERM or SIGINT runs `beforeClose`, closes the server and flushes
 * telemetry, then exits (stopOnSignals).
 */
export async function serveUntilSignalled(
  server: ServedProcess,
  telemetry: Telemetry,
  log: Logger,
  opts: { readonly healthListen?: string; readonly beforeClose?: () => void },
): Promise<void> {
  stopOnSignals(async () => {
    opts.beforeClose?.();
    await server.close();
    await stopTelemetry(telemetry, log);
  }, log);
  await server.start();
  if (opts.healthListen !== undefined) log.info({ healthListen: opts.healthListen }, 'serving plaintext health');
}

/** Runs `stop` on the first SIGTERM or SIGINT, then exits; exits at once on a second one. */
export function stopOnSignals(stop: () => Promise<void>, log: Logger): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, 'stopping');
    stop().then(
      // process.exitCode stays what the process set (1 after a fatal problem), else 0.
      () => process.exit(),
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
