// What the journal commands (`incident`, `outbox`) share: finding and opening the journal file
// named by --journal or by a configuration, and plain-text tables.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { formatConfigErrors, loadConfig } from '../config/load.js';
import { Journal } from '../journal/journal.js';
import type { CliIO } from './check-config.js';

export const DEFAULT_CONFIG_PATH = '/etc/amk-bridge/amk-bridge.yaml';

/** parseArgs options every journal command takes. */
export const JOURNAL_OPTIONS = {
  config: { type: 'string', short: 'c' },
  journal: { type: 'string' },
} as const;

export const JOURNAL_OPTIONS_HELP = `  -c, --config FILE   Take the journal location (journal.path) from this configuration
                      (default ${DEFAULT_CONFIG_PATH}).
  --journal FILE      The journal file itself; wins over --config.`;

/**
 * Opens the existing journal: --journal FILE, else journal.path of the configuration (relative
 * paths from the working directory, as the daemon reads them). Never creates a journal: a missing
 * file means a wrong path, and an empty journal would hide that. Errors are written to stderr;
 * null then means "exit 1".
 */
export async function openJournal(opts: { config?: string | undefined; journal?: string | undefined }, io: CliIO, command: string): Promise<Journal | null> {
  let file: string;
  let from: string;
  // Request contexts are sealed; without a readable key (not the daemon's user) they show as none.
  let contextKeyFile: string;
  if (opts.journal !== undefined) {
    file = resolve(opts.journal);
    from = '--journal';
    contextKeyFile = `${file}.key`;
  } else {
    const configPath = opts.config ?? DEFAULT_CONFIG_PATH;
    const loaded = await loadConfig(configPath);
    if (!loaded.ok) {
      io.stderr.write(`${formatConfigErrors(configPath, loaded.errors)}\n`);
      if (opts.config === undefined) io.stderr.write(`amk-bridge ${command}: name the configuration with --config FILE or the journal with --journal FILE\n`);
      return null;
    }
    file = resolve(loaded.config.journal.path);
    from = `journal.path in ${configPath}`;
    contextKeyFile = resolve(loaded.config.journal.contextKeyFile);
  }
  if (!existsSync(file)) {
    io.stderr.write(`amk-bridge ${command}: journal ${file} (${from}) does not exist; the daemon creates it when it first starts\n`);
    return null;
  }
  try {
    return Journal.open(file, {
      create: false,
      contextKeyFile,
      warn: (obj, msg) => {
        const o = obj as { requestId?: string; error?: string };
        io.stderr.write(`amk-bridge ${command}: ${msg}${o.requestId ? ` (request ${o.requestId})` : ''}${o.error ? `: ${o.error}` : ''}\n`);
      },
    });
  } catch (err) {
    io.stderr.write(`amk-bridge ${command}: cannot open journal ${file}: ${(err as Error).message}\n`);
    return null;
  }
}

/** ISO 8601 UTC, or '-' for no time. */
export function iso(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString();
}

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[], indent = ''): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all
    .map((r) => `${indent}${r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ')}`.trimEnd())
    .join('\n');
}
