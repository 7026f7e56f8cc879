// What the end-to-end statistics tests share: the `amk-bridge stats` command line run as a child
// process against a journal file, the figures a test expects computed from what it drove (never
// from the code under test), the journal's own rows read with plain SQL, and a byte search for a
// caller number in any of its written forms.
import { execFile } from 'node:child_process';
import Database from 'better-sqlite3';
import { childEnv } from '../helpers/children.js';
import { CLI } from '../helpers/daemon.js';
import type { RegionStats, Stats } from '../../src/domain/statistics.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `node dist/cli/main.js stats ARGS` (the built command line, as an operator runs it). */
export function statsCli(args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    // A generous timeout: a node start on a machine shared with other test runs can take seconds.
    execFile(process.execPath, [CLI, 'stats', ...args], { env: childEnv(), timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const e = err as Error & { code?: unknown; signal?: unknown; killed?: boolean };
      const code = typeof e.code === 'number' ? e.code : -1;
      resolve({ code, stdout, stderr: `${stderr}${code === -1 ? `(no exit code: ${e.killed ? 'killed, ' : ''}signal ${String(e.signal)}; ${e.message})` : ''}` });
    });
  });
}

/** `stats --format json` parsed; throws with the command's stderr when it did not exit 0. */
export async function statsJson(args: string[]): Promise<{ stats: Stats; run: CliRun }> {
  const run = await statsCli([...args, '--format', 'json']);
  if (run.code !== 0) throw new Error(`amk-bridge stats ${args.join(' ')} exited ${run.code}: stderr: ${run.stderr || '(empty)'}; stdout: ${run.stdout.slice(0, 500) || '(empty)'}`);
  return { stats: JSON.parse(run.stdout) as Stats, run };
}

/**
 * SIPp arguments for the peers that answer the bridge (call taker, answering regions): an
 * unexpected message does not abort the call. On a loaded machine the bridge's ACK can come after
 * SIPp retransmitted its 200; the bridge then ACKs the retransmission too, with a fresh Via
 * branch, which SIPp does not recognise as a retransmission and would abort the call for.
 */
export const TOLERANT_UAS = ['-default_behaviors', 'all,-abortunexp'];

const HOUR = 3_600_000;

/** A period of whole UTC hours around `t0`: [the hour holding t0, + `hours`), as CLI arguments. */
export function hourPeriod(t0: number, hours = 2): { from: number; to: number; args: string[] } {
  const from = Math.floor(t0 / HOUR) * HOUR;
  const to = from + hours * HOUR;
  return { from, to, args: ['--from', new Date(from).toISOString(), '--to', new Date(to).toISOString()] };
}

/** Nearest rank: the smallest value with at least p % of the values at or below it. */
export function nearestRank(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1]!;
}

// ---------------------------------------------------------------------------------------------
// What a test drove, and the figures that follow from it

/** The attempts one request goes through, in order, and how it ends. */
export interface RequestPlan {
  /** Home region. */
  region: string;
  /** Outcome of every attempt, in order. */
  attempts: string[];
  /** Which stage answered: attempt1/attempt2 (home), overflow (with its region), or none. */
  answered: { on: 'attempt1' | 'attempt2' | 'overflow'; region: string; delayMs: number } | null;
  noContact: boolean;
}

/**
 * The figures the statistics must show, per home region and in total: the counted part of
 * RegionStats, plus the SIPp answer delays of the answered attempts (lower bounds of the
 * answer times) in place of the percentiles.
 */
export interface Expected extends Omit<RegionStats, 'answerTimeMs' | 'timeToContactMs'> {
  answerDelays: number[];
}

function emptyExpected(): Expected {
  return {
    callsSeen: 0, requests: 0, attempts: { total: 0, byOutcome: {} },
    answered: { attempt1: 0, attempt2: 0, buffer: 0, overflow: 0 },
    noContactMessages: 0, noContactShareOfCalls: null, noContactShareOfRequests: null,
    overflowContacts: {}, aborts: 0, lostRequests: 0, running: 0, recontacts: 0, answerDelays: [],
  };
}

/**
 * The expected figures from the calls a test made: `calls` = [home region, re-contact?] of every
 * 112 call (with or without a request), `requests` = the plan of every request.
 */
export function expectedFigures(calls: readonly [string, boolean][], requests: readonly RequestPlan[]): { regions: Record<string, Expected>; total: Expected } {
  const regions: Record<string, Expected> = {};
  const total = emptyExpected();
  const of = (r: string): Expected[] => [(regions[r] ??= emptyExpected()), total];
  for (const [region, recontact] of calls) {
    for (const e of of(region)) {
      e.callsSeen++;
      if (recontact) e.recontacts++;
    }
  }
  for (const q of requests) {
    for (const e of of(q.region)) {
      e.requests++;
      for (const o of q.attempts) {
        e.attempts.total++;
        e.attempts.byOutcome[o] = (e.attempts.byOutcome[o] ?? 0) + 1;
      }
      if (q.answered) {
        e.answered[q.answered.on]++;
        e.answerDelays.push(q.answered.delayMs);
        if (q.answered.on === 'overflow') {
          const pair = `${q.region}→${q.answered.region}`;
          e.overflowContacts[pair] = (e.overflowContacts[pair] ?? 0) + 1;
        }
      }
      if (q.noContact) e.noContactMessages++;
    }
  }
  for (const e of [...Object.values(regions), total]) {
    e.noContactShareOfCalls = e.callsSeen === 0 ? null : e.noContactMessages / e.callsSeen;
    e.noContactShareOfRequests = e.requests === 0 ? null : e.noContactMessages / e.requests;
  }
  return { regions, total };
}

/** The counted figures of a RegionStats, shaped like Expected (without the answer delays). */
export function counted(r: RegionStats): Omit<Expected, 'answerDelays'> {
  return {
    callsSeen: r.callsSeen,
    requests: r.requests,
    attempts: { total: r.attempts.total, byOutcome: { ...r.attempts.byOutcome } },
    answered: { ...r.answered },
    noContactMessages: r.noContactMessages,
    noContactShareOfCalls: r.noContactShareOfCalls,
    noContactShareOfRequests: r.noContactShareOfRequests,
    overflowContacts: { ...r.overflowContacts },
    aborts: r.aborts,
    lostRequests: r.lostRequests,
    running: r.running,
    recontacts: r.recontacts,
  };
}

/** Expected without its answer delays, keys of byOutcome / overflowContacts sorted like the statistics. */
export function countedExpected(e: Expected): Omit<Expected, 'answerDelays'> {
  const sorted = (r: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const { answerDelays: _delays, ...rest } = e;
  return { ...rest, attempts: { total: e.attempts.total, byOutcome: sorted(e.attempts.byOutcome) }, overflowContacts: sorted(e.overflowContacts) };
}

/** The additive figures of two RegionStats summed (medians are not additive and left out). */
export function sumCounted(a: RegionStats, b: RegionStats): Omit<Expected, 'answerDelays'> {
  const add = (x: Record<string, number>, y: Record<string, number>): Record<string, number> => {
    const out: Record<string, number> = { ...x };
    for (const [k, n] of Object.entries(y)) out[k] = (out[k] ?? 0) + n;
    return Object.fromEntries(Object.entries(out).sort(([p], [q]) => (p < q ? -1 : p > q ? 1 : 0)));
  };
  const callsSeen = a.callsSeen + b.callsSeen;
  const requests = a.requests + b.requests;
  const noContactMessages = a.noContactMessages + b.noContactMessages;
  return {
    callsSeen,
    requests,
    attempts: { total: a.attempts.total + b.attempts.total, byOutcome: add(a.attempts.byOutcome, b.attempts.byOutcome) },
    answered: {
      attempt1: a.answered.attempt1 + b.answered.attempt1,
      attempt2: a.answered.attempt2 + b.answered.attempt2,
      buffer: a.answered.buffer + b.answered.buffer,
      overflow: a.answered.overflow + b.answered.overflow,
    },
    noContactMessages,
    noContactShareOfCalls: callsSeen === 0 ? null : noContactMessages / callsSeen,
    noContactShareOfRequests: requests === 0 ? null : noContactMessages / requests,
    overflowContacts: add(a.overflowContacts, b.overflowContacts),
    aborts: a.aborts + b.aborts,
    lostRequests: a.lostRequests + b.lostRequests,
    running: a.running + b.running,
    recontacts: a.recontacts + b.recontacts,
  };
}

// ---------------------------------------------------------------------------------------------
// The journal's rows, read with plain SQL (not through the code under test)

export interface JournalRows {
  requests: { request_id: string; region: string; started_at: number; outcome: string | null; outcome_stage: string | null; outcome_region: string | null; outcome_at: number | null }[];
  attempts: { request_id: string; n: number; stage: string; region: string; outcome: string | null; status: number | null; started_at: number; answered_at: number | null; home: string }[];
  outbox: { key: string; request_id: string; type: string; state: string; payload: string | null }[];
  calls: { call_id: string; started_at: number; region: string; recontact: number }[];
}

export function readJournalRows(file: string): JournalRows {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return {
      requests: db.prepare('SELECT request_id, region, started_at, outcome, outcome_stage, outcome_region, outcome_at FROM requests ORDER BY started_at').all() as JournalRows['requests'],
      attempts: db.prepare(`SELECT a.request_id, a.n, a.stage, a.region, a.outcome, a.status, a.started_at, a.answered_at, r.region AS home
        FROM attempts a JOIN requests r USING (request_id) ORDER BY a.request_id, a.n`).all() as JournalRows['attempts'],
      outbox: db.prepare('SELECT key, request_id, type, state, payload FROM outbox ORDER BY key').all() as JournalRows['outbox'],
      calls: db.prepare('SELECT call_id, started_at, region, recontact FROM calls ORDER BY started_at').all() as JournalRows['calls'],
    };
  } finally {
    db.close();
  }
}

// ---------------------------------------------------------------------------------------------
// A caller number in bytes

/**
 * Every form a caller number could be written in: as sent, E.164 with and without '+', the
 * international 00 prefix, the national digits (the shortest: it is inside every digit form),
 * and the same as UTF-16 (little and big endian) in case something stored text that way.
 */
export function numberForms(asSent: string, countryCode = '45'): { label: string; bytes: Buffer }[] {
  const digits = asSent.replace(/[^0-9]/g, '');
  const e164 = digits.startsWith('00') ? digits.slice(2) : digits;
  const national = e164.startsWith(countryCode) ? e164.slice(countryCode.length) : e164;
  const texts: [string, string][] = [
    ['as sent', asSent],
    ['E.164 with +', `+${e164}`],
    ['E.164 without +', e164],
    ['00 prefix', `00${e164}`],
    ['national digits', national],
  ];
  const forms: { label: string; bytes: Buffer }[] = [];
  for (const [label, text] of texts) {
    forms.push({ label: `${label} "${text}" (UTF-8)`, bytes: Buffer.from(text, 'utf8') });
    forms.push({ label: `${label} "${text}" (UTF-16LE)`, bytes: Buffer.from(text, 'utf16le') });
    forms.push({ label: `${label} "${text}" (UTF-16BE)`, bytes: Buffer.from(text, 'utf16le').swap16() });
  }
  return forms;
}

/** Where in `data` any form of the number occurs: [form label, byte offset] for every form found. */
export function findNumber(data: Buffer, forms: readonly { label: string; bytes: Buffer }[]): [string, number][] {
  const hits: [string, number][] = [];
  for (const f of forms) {
    const at = data.indexOf(f.bytes);
    if (at >= 0) hits.push([f.label, at]);
  }
  return hits;
}
