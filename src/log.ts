// Logging: pino JSON lines on stdout (journald), pretty-printed when a person is watching.
// Call-related lines go through child loggers that carry the call's ids (`callLogger`).

import pinoPretty from 'pino-pretty';
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

export interface LoggerOptions {
  /** pino level: fatal, error, warn, info, debug, trace or silent. */
  level: string;
  /**
   * Pretty (human) output instead of JSON lines. Default: when writing to stdout and stdout is a
   * terminal, unless LOG_FORMAT=json. LOG_FORMAT=pretty forces it. NO_COLOR removes colours.
   */
  pretty?: boolean;
  /** Where lines go; default stdout. */
  destination?: NodeJS.WritableStream;
  /** Bindings on every line (for example `{ node: 'psap-1' }`). */
  base?: Record<string, unknown>;
}

/** Whether output should be pretty-printed when the caller did not say. */
export function defaultPretty(env: NodeJS.ProcessEnv = process.env, isTTY = process.stdout.isTTY === true): boolean {
  const format = env.LOG_FORMAT?.toLowerCase();
  if (format === 'json') return false;
  if (format === 'pretty') return true;
  return isTTY;
}

export function createLogger(opts: LoggerOptions): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level,
    base: opts.base ?? {},
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  const pretty = opts.pretty ?? (opts.destination === undefined && defaultPretty());
  if (pretty) {
    // Synchronous, in-thread pretty stream: no worker transport, nothing lost at exit.
    const colorize = process.env.NO_COLOR === undefined || process.env.NO_COLOR === '' ? opts.destination === undefined && process.stdout.isTTY === true : false;
    const stream = pinoPretty({
      colorize,
      sync: true,
      destination: opts.destination ?? 1,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,node',
    });
    return pino(options, stream);
  }
  return pino(options, opts.destination ?? pino.destination({ dest: 1, sync: true }));
}

/**
 * A child logger for one call (or request/attempt): `callLogger(log, { callId, requestId })`.
 * Undefined ids are left out, so optional ids can be passed as they are.
 */
export function callLogger(log: Logger, ids: Record<string, string | undefined>): Logger {
  const bindings: Record<string, string> = {};
  for (const [k, v] of Object.entries(ids)) if (v !== undefined) bindings[k] = v;
  return log.child(bindings);
}
