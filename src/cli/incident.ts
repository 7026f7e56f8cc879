// `amk-bridge incident ID`: the whole story of one conference-in request from the journal: the
// request, every attempt and every message, as aligned text or one JSON object.

import { parseArgs } from 'node:util';
import { MIN_PREFIX, type Journal, type MessageRow } from '../journal/journal.js';
import type { AttemptRow, RequestRow } from '../journal/types.js';
import type { CliIO } from './check-config.js';
import { iso, JOURNAL_OPTIONS, JOURNAL_OPTIONS_HELP, openJournal, table } from './journal-cli.js';

export const INCIDENT_USAGE = `Usage: amk-bridge incident ID [--config FILE | --journal FILE] [--json]

Shows the whole story of a conference-in request from the journal: the request, each
attempt and each message. ID is the request id, a unique prefix of it (at least
${MIN_PREFIX} characters), the SIP Call-ID of the 112 call, its incident URN or its
emergency call URN. Times are UTC.

Options:
${JOURNAL_OPTIONS_HELP}
  --json              Print one JSON object {request, attempts, messages} (times in epoch ms).
  -h, --help          Show this help.

Exit status: 0 shown; 1 no match, several matches or journal error; 2 usage error.
`;

export interface IncidentStory {
  request: RequestRow;
  attempts: (AttemptRow & { timeToAnswerMs: number | null })[];
  messages: MessageRow[];
}

/** Runs `incident` with `argv` (the arguments after the subcommand); resolves to the exit code. */
export async function incidentCommand(argv: readonly string[], io: CliIO): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: { ...JOURNAL_OPTIONS, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    io.stderr.write(`amk-bridge incident: ${(err as Error).message}\n\n${INCIDENT_USAGE}`);
    return 2;
  }
  if (parsed.values.help === true) {
    io.stdout.write(INCIDENT_USAGE);
    return 0;
  }
  const [query, ...extra] = parsed.positionals;
  if (query === undefined || query === '' || extra.length > 0) {
    io.stderr.write(`amk-bridge incident: ${query === undefined || query === '' ? 'no ID given' : `unexpected argument "${extra[0]}"`}\n\n${INCIDENT_USAGE}`);
    return 2;
  }
  const journal = await openJournal(parsed.values, io, 'incident');
  if (journal === null) return 1;
  try {
    return show(journal, query, parsed.values.json === true, io);
  } finally {
    journal.close();
  }
}

function show(journal: Journal, query: string, json: boolean, io: CliIO): number {
  const found = journal.find(query);
  if (found.length === 0) {
    io.stderr.write(
      `amk-bridge incident: no request matches "${query}" in ${journal.path}\n` +
        `(ID is a request id, an id prefix of at least ${MIN_PREFIX} characters, a SIP Call-ID, an incident URN or an emergency call URN)\n`,
    );
    return 1;
  }
  if (found.length > 1) {
    const rows = found.map((r) => [r.requestId, iso(r.startedAt), r.callId, r.outcome ?? 'open']);
    io.stderr.write(
      `amk-bridge incident: ${found.length} requests match "${query}"; give a longer id, or one of these:\n` +
        `${table(['REQUEST', 'STARTED', 'CALL-ID', 'OUTCOME'], rows, '  ')}\n`,
    );
    return 1;
  }
  const request = found[0] as RequestRow;
  const story: IncidentStory = {
    request,
    attempts: journal.attempts(request.requestId).map((a) => ({ ...a, timeToAnswerMs: a.answeredAt === null ? null : a.answeredAt - a.startedAt })),
    messages: journal.messages(request.requestId),
  };
  io.stdout.write(json ? `${JSON.stringify(story, null, 2)}\n` : formatStory(story));
  return 0;
}

/** The story as aligned text. */
export function formatStory({ request: r, attempts, messages }: IncidentStory): string {
  const outcome =
    r.outcome === null
      ? 'open (no outcome yet)'
      : `${r.outcome} at ${iso(r.outcomeAt)}${r.outcomeStage !== null || r.outcomeRegion !== null ? ` (${[r.outcomeStage && `stage ${r.outcomeStage}`, r.outcomeRegion && `region ${r.outcomeRegion}`].filter(Boolean).join(', ')})` : ''}`;
  const fields: [string, string][] = [
    ['Call-ID', r.callId],
    ['Incident', r.incidentId],
    ['Emergency call', r.emergencyCallId],
    ['Node', r.node],
    ['Desk', r.desk ?? '-'],
    ['Region', r.region],
    ['Trigger', r.trigger],
    ['Test', r.test ? 'yes' : 'no'],
    ['Started', iso(r.startedAt)],
    ['Outcome', outcome],
  ];
  const width = Math.max(...fields.map(([k]) => k.length));
  let out = `Request ${r.requestId}\n${fields.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join('\n')}\n`;

  out += `\nAttempts (${attempts.length})\n`;
  if (attempts.length > 0) {
    const rows = attempts.map((a) => [
      String(a.n),
      a.stage,
      a.region,
      a.target,
      iso(a.startedAt),
      iso(a.firstResponseAt),
      iso(a.endedAt),
      a.outcome ?? (a.endedAt === null ? 'running' : '-'),
      a.status === null ? '-' : String(a.status),
      iso(a.answeredAt),
      a.timeToAnswerMs === null ? '-' : String(a.timeToAnswerMs),
    ]);
    out += `${table(['N', 'STAGE', 'REGION', 'TARGET', 'STARTED', 'FIRST 1XX', 'ENDED', 'OUTCOME', 'SIP', 'ANSWERED', 'TO ANSWER (MS)'], rows, '  ')}\n`;
  }

  out += `\nMessages (${messages.length})\n`;
  if (messages.length > 0) {
    const rows = messages.map((m) => [
      m.type,
      m.key,
      m.state,
      String(m.tries),
      iso(m.createdAt),
      iso(m.deliveredAt),
      m.deliveredTo ?? '-',
      m.escalated ? iso(m.escalatedAt) : 'no',
      m.lastError ?? '-',
    ]);
    out += `${table(['TYPE', 'KEY', 'STATE', 'TRIES', 'CREATED', 'DELIVERED', 'TO', 'ESCALATED', 'LAST ERROR'], rows, '  ')}\n`;
  }
  return out;
}
