#!/usr/bin/env node
// amk-bridge command line: `run`, `check-config`, `print-schema`, `incident`, `outbox`,
// `lamp-test`. Commands are loaded when used, so a quick command does not pay for the
// native modules (SQLite, serial ports) of the others.

import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { configJsonSchemaText } from '../config/json-schema.js';
import { formatConfigErrors, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { createLogger, type Logger } from '../log.js';
import { SystemdNotifier } from '../systemd/notify.js';
import { VERSION } from '../version.js';
import { checkConfigCommand, type CliIO } from './check-config.js';

export type { CliIO } from './check-config.js';

export const USAGE = `Usage: amk-bridge <command> [options]

Commands:
  run --config FILE       Start the bridge with the configuration in FILE.
  check-config FILE...    Validate configuration files (like nginx -t): prints
                          "FILE: ok", or every error as "FILE: KEY: reason" and
                          exits 1.
  print-schema            Print the configuration JSON Schema (draft-07).
  incident ID             The whole story of a conference-in request from the journal:
                          request, attempts, messages (--json for JSON).
  outbox list|retry       List the messages that still need attention; set failed
                          messages for retry (works while the daemon runs).
  stats                   Statistics by the national counting method from the journal
                          (table, JSON, CSV; daily per-region export; chart).
  lamp-test               Cycle every configured lamp through its states (daemon stopped).
  demo [--calls N]        The whole flow on loopback with simulated peers (needs sipp).

Options:
  -h, --help              Show help; "amk-bridge COMMAND --help" for a command.
  -V, --version           Show the version.
`;

export const RUN_USAGE = `Usage: amk-bridge run --config FILE [--log-level LEVEL]

Starts the bridge. SIGINT/SIGTERM drain and stop it (a second signal exits at once).
Configuration errors are printed like check-config and exit 1; a start failure
(for example a SIP port already in use) is logged and exits 1.

Options:
  -c, --config FILE       Configuration file (YAML).
  --log-level LEVEL       Override log.level (fatal, error, warn, info, debug, trace, silent);
                          the LOG_LEVEL environment variable does the same.
  -h, --help              Show this help.

Environment: LOG_FORMAT=json|pretty chooses the log format (default: pretty on a
terminal, JSON otherwise); NO_COLOR turns colours off.
`;

export const PRINT_SCHEMA_USAGE = `Usage: amk-bridge print-schema

Prints the JSON Schema (draft-07) of the configuration file to stdout. The
repository keeps it in config/amk-bridge.schema.json for editors.
`;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** The running bridge, as returned by `startBridge` in ../app.ts. */
interface BridgeHandle {
  stop(opts?: { drain?: boolean }): Promise<void>;
  /** Apply a new, already validated config to new calls. */
  reload?: (config: Config) => void | Promise<void>;
  /** A reload was refused (invalid file): raise the fault lamp and an alarm. */
  reloadRefused?: (reason: string) => void;
  /** Calls in progress, for systemd's STATUS= line. */
  b2bua?: { readonly activeCalls: number };
}

/** How often STATUS= (calls in progress) is refreshed for `systemctl status`. */
const STATUS_INTERVAL_MS = 5_000;
interface AppModule {
  startBridge(config: Config, opts: { logger: Logger; configPath?: string }): Promise<BridgeHandle>;
}


const defaultIO: CliIO = { stdout: process.stdout, stderr: process.stderr };

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function runCli(argv: readonly string[], io: CliIO = defaultIO): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'check-config':
      return checkConfigCommand(rest, io);
    case 'print-schema':
      if (rest.includes('--help') || rest.includes('-h')) {
        io.stdout.write(PRINT_SCHEMA_USAGE);
        return 0;
      }
      if (rest.length > 0) {
        io.stderr.write(`amk-bridge print-schema: unexpected argument "${rest[0]}"\n\n${PRINT_SCHEMA_USAGE}`);
        return 2;
      }
      io.stdout.write(configJsonSchemaText());
      return 0;
    case 'run':
      return runCommand(rest, io);
    case 'incident':
      return (await import('./incident.js')).incidentCommand(rest, io);
    case 'demo':
      return (await import('./demo.js')).demoCommand(rest, io);
    case 'lamp-test':
      return (await import('./lamp-test.js')).lampTestCommand(rest, io);
    case 'outbox':
      return (await import('./outbox.js')).outboxCommand(rest, io);
    case 'stats':
      return (await import('./stats.js')).statsCommand(rest, io);
    case '-h':
    case '--help':
    case 'help':
      io.stdout.write(USAGE);
      return 0;
    case '-V':
    case '--version':
      io.stdout.write(`amk-bridge ${VERSION}\n`);
      return 0;
    case undefined:
      io.stderr.write(`amk-bridge: no command given\n\n${USAGE}`);
      return 2;
    default:
      io.stderr.write(`amk-bridge: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

/** Clear text for a start failure (bind errors name the socket). */
export function describeStartError(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  const where = e.address !== undefined ? ` ${e.address}${e.port !== undefined ? `:${e.port}` : ''}` : '';
  switch (e?.code) {
    case 'EADDRINUSE':
      return `cannot listen on${where}: address already in use (another SIP server or bridge running?)`;
    case 'EADDRNOTAVAIL':
      return `cannot listen on${where}: address not available on this host (check sip.listen)`;
    case 'EACCES':
      return `cannot listen on${where}: permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)`;
    case 'ERR_MODULE_NOT_FOUND':
      return `application module missing (incomplete build?): ${e.message}`;
    default:
      return e instanceof Error ? e.message : String(err);
  }
}

async function runCommand(argv: readonly string[], io: CliIO): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: false,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    io.stderr.write(`amk-bridge run: ${(err as Error).message}\n\n${RUN_USAGE}`);
    return 2;
  }
  if (parsed.values.help === true) {
    io.stdout.write(RUN_USAGE);
    return 0;
  }
  const configPath = parsed.values.config;
  if (configPath === undefined) {
    io.stderr.write(`amk-bridge run: --config FILE is required\n\n${RUN_USAGE}`);
    return 2;
  }
  const level = parsed.values['log-level'] ?? (process.env.LOG_LEVEL || undefined);
  if (level !== undefined && !LOG_LEVELS.includes(level)) {
    io.stderr.write(`amk-bridge run: invalid log level "${level}" (one of ${LOG_LEVELS.join(', ')})\n`);
    return 2;
  }

  const loaded = await loadConfig(configPath);
  if (!loaded.ok) {
    io.stderr.write(`${formatConfigErrors(configPath, loaded.errors)}\n`);
    return 1;
  }
  const config = loaded.config;
  const logger = createLogger({ level: level ?? config.log.level, base: { node: config.node } });

  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception; exiting');
    process.exit(1);
  });
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: reason }, 'unhandled promise rejection; exiting');
    process.exit(1);
  });

  logger.info({ version: VERSION, configPath: resolve(configPath), pid: process.pid }, 'amk-bridge starting');
  let handle: BridgeHandle;
  try {
    const app = (await import(new URL('../app.js', import.meta.url).href)) as Partial<AppModule>;
    if (typeof app.startBridge !== 'function') throw new Error('../app.js does not export startBridge()');
    handle = await app.startBridge(config, { logger, configPath: resolve(configPath) });
  } catch (err) {
    logger.fatal({ err }, `amk-bridge failed to start: ${describeStartError(err)}`);
    return 1;
  }

  // systemd (Type=notify): startBridge resolved, so SIP listens and the journal is open.
  const notifier = SystemdNotifier.fromEnv(process.env, { logger });
  const callsText = (): string => {
    const n = handle.b2bua?.activeCalls;
    return n === undefined ? '' : `; ${n} call${n === 1 ? '' : 's'}`;
  };
  notifier.ready();
  notifier.status(`listening${callsText()}`);
  notifier.startWatchdog();
  const statusTimer = setInterval(() => notifier.status(`listening${callsText()}`), STATUS_INTERVAL_MS);
  statusTimer.unref();

  return new Promise<number>((done) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn({ signal }, 'second signal while stopping: exiting without finishing the drain');
        done(1);
        return;
      }
      stopping = true;
      clearInterval(statusTimer);
      notifier.stopping();
      notifier.status(`stopping: draining${callsText()}`);
      logger.info({ signal }, 'stopping: draining calls');
      handle.stop({ drain: true }).then(
        () => {
          logger.info('amk-bridge stopped');
          notifier.close();
          done(0);
        },
        (err: unknown) => {
          logger.error({ err }, 'error while stopping');
          notifier.close();
          done(1);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // SIGHUP (systemctl reload): re-read and validate; apply only a valid file. Handling the
    // signal at all matters: by default SIGHUP would kill the process and every anchored call.
    const reloader = configReloader(resolve(configPath), handle, logger, config, level !== undefined, {
      // systemd 252 (Debian 12) has no Type=notify-reload: say RELOADING=1 / READY=1 ourselves.
      before: () => notifier.reloading(),
      after: () => {
        notifier.ready();
        notifier.status(`listening${callsText()}`);
      },
    });
    process.on('SIGHUP', () => {
      if (!stopping) reloader();
    });
  });
}

/**
 * Returns a function that re-reads the config file and hands a valid one to the bridge. Reloads
 * never overlap: a SIGHUP during a reload runs one more reload afterwards.
 */
function configReloader(
  configPath: string,
  handle: BridgeHandle,
  logger: Logger,
  initial: Config,
  levelPinned: boolean,
  hooks: { before?: () => void; after?: () => void } = {},
): () => void {
  let current = initial;
  let running = false;
  let again = false;
  const once = async (): Promise<void> => {
    logger.info({ configPath }, 'SIGHUP: reloading configuration');
    const loaded = await loadConfig(configPath);
    if (!loaded.ok) {
      for (const line of formatConfigErrors(configPath, loaded.errors).split('\n')) logger.error(line);
      logger.error({ configPath, errors: loaded.errors.length }, 'reload refused: configuration invalid; keeping the running configuration');
      handle.reloadRefused?.(formatConfigErrors(configPath, loaded.errors));
      return;
    }
    const next = loaded.config;
    if (!handle.reload) {
      logger.warn('reload is not supported by this build; keeping the running configuration');
      return;
    }
    for (const key of ['listen', 'timers'] as const) {
      if (JSON.stringify(next.sip[key]) !== JSON.stringify(current.sip[key])) logger.warn({ key: `sip.${key}` }, `sip.${key} changed: applies after a restart`);
    }
    await handle.reload(next);
    if (!levelPinned && next.log.level !== logger.level) logger.level = next.log.level;
    current = next;
  };
  const run = (): void => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    hooks.before?.();
    once()
      .catch((err: unknown) => logger.error({ err }, 'reload failed; keeping the running configuration'))
      .finally(() => {
        running = false;
        hooks.after?.();
        if (again) {
          again = false;
          run();
        }
      });
  };
  return run;
}

function isMain(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const command = process.argv[2];
  runCli(process.argv.slice(2)).then(
    (code) => {
      // `run` may leave handles (sockets, timers) behind after stop(): exit explicitly.
      if (command === 'run') process.exit(code);
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`amk-bridge: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
