// `amk-bridge outbox list|retry`: the message outbox for the operator. Both only touch the
// journal file (SQLite WAL, busy timeout), so they work while the daemon runs and without MQTT;
// the daemon polls the outbox about every second and sends what `retry` made due.

import { parseArgs } from 'node:util';
import type { Journal } from '../journal/journal.js';
import { MESSAGE_ORDER, type OutboxRow } from '../journal/types.js';
import type { CliIO } from './check-config.js';
import { iso, JOURNAL_OPTIONS, JOURNAL_OPTIONS_HELP, openJournal, table } from './journal-cli.js';

export const OUTBOX_USAGE = `Usage: amk-bridge outbox list [--state STATE] [--limit N] [--json] [--config FILE | --journal FILE]
       amk-bridge outbox retry [KEY] [--config FILE | --journal FILE]

list    Messages, newest first. By default what still needs attention: pending and
        failed messages. A summary line gives the whole backlog.
retry   Makes failed (and waiting pending) messages due now and forgets which
        endpoints refused them; with KEY only that message. Prints the keys. The
        running daemon picks them up within about a second.

Works while the daemon runs and when MQTT is down: it only touches the journal file.

Options:
  --state STATE       pending, failed, delivered or all (list; default pending and failed).
  --limit N           At most N messages (list; default 100).
  --json              Print one JSON object {messages, truncated, backlog} (list; times
                      in epoch ms; truncated: more messages than --limit).
${JOURNAL_OPTIONS_HELP}
  -h, --help          Show this help.

Exit status: 0 done; 1 journal error or KEY not retryable; 2 usage error.
`;

const STATES = ['pending', 'failed', 'delivered', 'all'] as const;
type StateOption = (typeof STATES)[number];

/** Runs `outbox` with `argv` (the arguments after `outbox`); resolves to the exit code. */
export async function outboxCommand(argv: readonly string[], io: CliIO): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        ...JOURNAL_OPTIONS,
        state: { type: 'string' },
        limit: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    return usageError((err as Error).message, io);
  }
  const { values } = parsed;
  if (values.help === true) {
    io.stdout.write(OUTBOX_USAGE);
    return 0;
  }
  const [sub, ...rest] = parsed.positionals;
  if (sub === 'list') {
    if (rest.length > 0) return usageError(`unexpected argument "${rest[0]}"`, io);
    const state = values.state ?? null;
    if (state !== null && !(STATES as readonly string[]).includes(state)) return usageError(`--state must be one of ${STATES.join(', ')} (got "${state}")`, io);
    const limit = values.limit === undefined ? 100 : /^\d+$/.test(values.limit) ? Number(values.limit) : NaN;
    if (!Number.isSafeInteger(limit) || limit < 1) return usageError(`--limit must be a positive integer (got "${values.limit}")`, io);
    return withJournal(values, io, (j) => list(j, state as StateOption | null, limit, values.json === true, io));
  }
  if (sub === 'retry') {
    if (rest.length > 1) return usageError(`unexpected argument "${rest[1]}"`, io);
    for (const opt of ['state', 'limit', 'json'] as const) if (values[opt] !== undefined) return usageError(`--${opt} applies to "outbox list" only`, io);
    return withJournal(values, io, (j) => retry(j, rest[0], io));
  }
  return usageError(sub === undefined ? 'no subcommand given (list or retry)' : `unknown subcommand "${sub}"`, io);
}

function usageError(message: string, io: CliIO): number {
  io.stderr.write(`amk-bridge outbox: ${message}\n\n${OUTBOX_USAGE}`);
  return 2;
}

async function withJournal(opts: { config?: string | undefined; journal?: string | undefined }, io: CliIO, fn: (j: Journal) => number): Promise<number> {
  const journal = await openJournal(opts, io, 'outbox');
  if (journal === null) return 1;
  try {
    return fn(journal);
  } finally {
    journal.close();
  }
}

function list(journal: Journal, state: StateOption | null, limit: number, json: boolean, io: CliIO): number {
  // One row more than shown tells whether there are more.
  let rows: OutboxRow[];
  if (state === null) {
    // What needs attention: both states merged, newest first (the order list() uses).
    rows = [...journal.list('pending', limit + 1), ...journal.list('failed', limit + 1)].sort(
      (a, b) => b.createdAt - a.createdAt || MESSAGE_ORDER[b.type] - MESSAGE_ORDER[a.type] || (a.key < b.key ? 1 : a.key > b.key ? -1 : 0),
    );
  } else {
    rows = journal.list(state, limit + 1);
  }
  const truncated = rows.length > limit;
  rows = rows.slice(0, limit);
  const backlog = journal.backlog();
  if (json) {
    io.stdout.write(`${JSON.stringify({ messages: rows, truncated, backlog }, null, 2)}\n`);
    return 0;
  }
  if (rows.length === 0) {
    const what = state === null ? 'outbox empty: nothing pending or failed' : state === 'all' ? 'outbox empty' : `no ${state} messages`;
    io.stdout.write(`${what}\n`);
    return 0;
  }
  const text = table(
    ['KEY', 'STATE', 'TRIES', 'CREATED', 'NEXT TRY', 'DELIVERED', 'TO', 'ESCALATED', 'LAST ERROR'],
    rows.map((m) => [
      m.key,
      m.state,
      String(m.tries),
      iso(m.createdAt),
      m.state === 'pending' ? iso(m.nextAt) : '-',
      iso(m.deliveredAt),
      m.deliveredTo ?? '-',
      m.escalated ? 'yes' : 'no',
      m.lastError ?? '-',
    ]),
  );
  const more = truncated ? ` (showing the newest ${limit}; --limit N for more)` : '';
  const oldest = backlog.oldestCreatedAt === null ? '' : `; oldest pending created ${iso(backlog.oldestCreatedAt)}`;
  io.stdout.write(`${text}\n\nbacklog: ${backlog.pending} pending, ${backlog.failed} failed${oldest}${more}\n`);
  return 0;
}

function retry(journal: Journal, key: string | undefined, io: CliIO): number {
  const keys = journal.retry(key, Date.now());
  if (keys.length === 0) {
    if (key === undefined) {
      io.stdout.write('nothing to retry: no pending or failed messages\n');
      return 0;
    }
    const row = journal.get(key);
    io.stderr.write(
      row === null
        ? `amk-bridge outbox: no message with key "${key}" (see "amk-bridge outbox list --state all")\n`
        : `amk-bridge outbox: "${key}" was delivered at ${iso(row.deliveredAt)} to ${row.deliveredTo ?? '-'}; it is not sent again\n`,
    );
    return 1;
  }
  io.stdout.write(keys.map((k) => `${k}\n`).join(''));
  io.stderr.write(`${keys.length} message${keys.length === 1 ? '' : 's'} set for retry; the running daemon picks ${keys.length === 1 ? 'it' : 'them'} up within about a second\n`);
  return 0;
}
