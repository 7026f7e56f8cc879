// Retention: journal rows older than the cut are deleted in small transactions — calls,
// finished requests with their attempts and delivered messages — while a request without an
// outcome or with a message not yet delivered stays, however old. The daemon prunes on a
// schedule; statistics of a pruned period show nothing.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { Journal } from '../../src/journal/journal.js';
import { openDatabase } from '../../src/journal/db.js';
import { pruneJournal, scheduleJournalPrune, type PruneCounts } from '../../src/journal/prune.js';
import type { MessageType, RequestOutcome } from '../../src/journal/types.js';
import { startTestBridge, waitFor } from '../helpers/bridge.js';
import { messageCommit, requestStart, T0, tempDir } from './fixtures/process.js';

const DAY = 86_400_000;
/** The cut: 400 days before T0. */
const CUT = T0 - 400 * DAY;
const OLD = T0 - 500 * DAY;
const RECENT = T0 - 10 * DAY;

function open(t: Test): { j: Journal; file: string } {
  const file = join(tempDir(t), 'journal.sqlite');
  const j = Journal.open(file);
  t.teardown(() => j.close());
  return { j, file };
}

interface Spec {
  at: number;
  outcome?: RequestOutcome;
  attempts?: number;
  /** Messages and the state each ends in. */
  messages?: [MessageType, 'pending' | 'delivered' | 'failed'][];
}

/** A request as the daemon would have written it: start, attempts, messages, outcome. */
function request(j: Journal, id: string, s: Spec): void {
  j.requestStarted(requestStart(id, { startedAt: s.at }));
  for (let n = 1; n <= (s.attempts ?? 0); n++) {
    j.attemptStarted({ attemptId: `${id}-${n}`, requestId: id, n, stage: 'home', region: 'hovedstaden', target: `sip:amk-${id}@10.0.0.9`, startedAt: s.at + n * 1000 });
    j.attemptEnded(`${id}-${n}`, { outcome: 'busy', status: 486, reason: 'Busy Here', endedAt: s.at + n * 1000 + 500, answeredAt: null, crossedCancel: false });
  }
  for (const [type, state] of s.messages ?? []) {
    const key = `${id}:${type}`;
    j.commitMessage(messageCommit(id, type, { createdAt: s.at + 20_000, escalateAt: s.at + 50_000 }));
    if (state === 'delivered') j.delivered(key, 'https://a.example/msg', s.at + 21_000);
    if (state === 'failed') j.failed(key, 'every endpoint refused it');
  }
  if (s.outcome) j.requestOutcome(id, s.outcome, s.at + 22_000);
}

function call(j: Journal, id: string, at: number): void {
  j.callSeen({ callId: id, startedAt: at, trunk: 'trunk-a', region: 'hovedstaden', recontact: false });
}

function ids(file: string, sql: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare(sql).raw().all() as [string][]).map((r) => r[0]).sort();
  } finally {
    db.close();
  }
}

t.test('prunes old finished rows, keeps running requests and undelivered messages', async (t) => {
  const { j, file } = open(t);
  for (let i = 0; i < 3; i++) call(j, `old-call-${i}`, OLD + i);
  call(j, 'edge-call', CUT);
  call(j, 'new-call', RECENT);
  request(j, 'old-contact', { at: OLD, outcome: 'contact', attempts: 2 });
  request(j, 'old-delivered', { at: OLD, outcome: 'no-contact', attempts: 2, messages: [['no-contact', 'delivered'], ['citizen-hangup', 'delivered']] });
  request(j, 'old-aborted', { at: OLD + 1, outcome: 'aborted', attempts: 1 });
  request(j, 'old-open', { at: OLD, attempts: 1 });
  request(j, 'old-pending', { at: OLD, outcome: 'no-contact', attempts: 2, messages: [['no-contact', 'pending']] });
  request(j, 'old-failed', { at: OLD, outcome: 'no-contact', attempts: 2, messages: [['no-contact', 'failed']] });
  request(j, 'old-half', { at: OLD, outcome: 'no-contact', attempts: 2, messages: [['no-contact', 'delivered'], ['delivery-escalated', 'pending']] });
  request(j, 'old-open-msg', { at: OLD, attempts: 2, messages: [['no-contact', 'delivered']] });
  request(j, 'edge', { at: CUT, outcome: 'contact', attempts: 1 });
  request(j, 'new', { at: RECENT, outcome: 'no-contact', attempts: 2, messages: [['no-contact', 'delivered']] });
  // A message whose request row is missing is not a pruned request's: it stays.
  j.commitMessage(messageCommit('orphan', 'no-contact', { createdAt: OLD, escalateAt: OLD + 1 }));
  j.delivered('orphan:no-contact', 'https://a.example/msg', OLD + 5);

  const counts = await j.prune(CUT);
  t.same(counts, { calls: 3, requests: 3, attempts: 5, messages: 2 } satisfies PruneCounts);

  t.same(ids(file, 'SELECT call_id FROM calls'), ['edge-call', 'new-call'], 'old calls gone; a call at the cut itself is not older');
  t.same(ids(file, 'SELECT request_id FROM requests'), ['edge', 'new', 'old-failed', 'old-half', 'old-open', 'old-open-msg', 'old-pending']);
  t.same(j.attempts('old-open').length, 1, 'a request without an outcome keeps its attempts');
  t.same(j.attempts('old-pending').length, 2, 'a request with a pending message keeps its attempts');
  t.same(j.messages('old-pending').map((m) => m.state), ['pending'], 'a pending message stays');
  t.same(j.messages('old-failed').map((m) => m.state), ['failed'], 'a failed message stays');
  t.same(j.messages('old-half').map((m) => m.state), ['delivered', 'pending'], 'a request with one message undelivered keeps all of them');
  t.same(j.messages('old-open-msg').map((m) => m.state), ['delivered'], 'a request without an outcome keeps its messages');
  t.same(j.attempts('old-contact'), [], 'attempts of pruned requests are gone');
  t.same(j.messages('old-delivered'), [], 'delivered messages of pruned requests are gone');
  t.ok(j.get('orphan:no-contact'), 'messages of requests not pruned stay (also orphans)');
  t.same(j.attempts('new').length, 2);
  t.same(j.messages('new').length, 1);

  t.same(await j.prune(CUT), { calls: 0, requests: 0, attempts: 0, messages: 0 }, 'nothing left to prune');
  t.same(pruneJournal(openDb(t, file), CUT), { calls: 0, requests: 0, attempts: 0, messages: 0 });

  // Once a kept request is finished, the next prune takes it.
  j.delivered('old-pending:no-contact', 'https://b.example/msg', T0);
  t.same(await j.prune(CUT), { calls: 0, requests: 1, attempts: 2, messages: 1 });
});

function openDb(t: Test, file: string) {
  const db = openDatabase(file, { create: false });
  t.teardown(() => db.close());
  return db;
}

t.test('small transactions: the counts add up, the event loop turns between batches, writes go on', async (t) => {
  const { j, file } = open(t);
  const N_CALLS = 2500;
  const N_REQ = 1200;
  // Written in one go (one fsync) through a second connection: thousands of durable writes
  // one by one would only make the test slow.
  const raw = openDb(t, file);
  const insCall = raw.prepare(`INSERT INTO calls (call_id, started_at, trunk, region) VALUES (?, ?, 'trunk-a', 'hovedstaden')`);
  const insReq = raw.prepare(`INSERT INTO requests (request_id, call_id, incident_id, emergency_call_id, node, region, trigger, started_at, test, policy, outcome, outcome_at)
    VALUES (@id, @id, @id, @id, 'psap-1', 'hovedstaden', 'dtmf', @at, 0, '{}', @outcome, @at)`);
  const insAtt = raw.prepare(`INSERT INTO attempts (attempt_id, request_id, n, stage, region, target, started_at, outcome, ended_at)
    VALUES (?, ?, ?, 'home', 'hovedstaden', 'sip:amk@x', ?, 'busy', ?)`);
  const insMsg = raw.prepare(`INSERT INTO outbox (key, request_id, type, region, endpoints, state, next_at, escalate_at, created_at, delivered_at, test)
    VALUES (?, ?, 'no-contact', 'hovedstaden', '[]', 'delivered', ?, ?, ?, ?, 0)`);
  raw.transaction(() => {
    for (let i = 0; i < N_CALLS; i++) insCall.run(`c${i}`, OLD + i);
    for (let i = 0; i < N_REQ; i++) {
      const id = `r${i}`;
      insReq.run({ id, at: OLD + i, outcome: 'no-contact' });
      for (let n = 1; n <= 2; n++) insAtt.run(`${id}-${n}`, id, n, OLD + i, OLD + i + 1);
      insMsg.run(`${id}:no-contact`, id, OLD + i, OLD + i, OLD + i, OLD + i + 2);
    }
    for (let i = 0; i < 10; i++) insReq.run({ id: `open${i}`, at: OLD + i, outcome: null });
  })();

  let turns = 0;
  let written = 0;
  let done = false;
  const tick = (): void => {
    if (done) return;
    turns++;
    // The daemon keeps writing between the prune's transactions.
    call(j, `during-${turns}`, T0 + turns);
    written++;
    setImmediate(tick);
  };
  setImmediate(tick);
  const counts = await j.prune(CUT, { batch: 100 });
  done = true;
  t.same(counts, { calls: N_CALLS, requests: N_REQ, attempts: 2 * N_REQ, messages: N_REQ });
  const batches = Math.ceil((N_CALLS + N_REQ) / 100);
  t.ok(turns >= batches - 1, `the event loop turned ${turns} times during ${batches} batches`);
  t.equal(ids(file, 'SELECT call_id FROM calls').length, written, 'only the calls written meanwhile are left');
  t.equal(ids(file, 'SELECT request_id FROM requests').length, 10, 'the open requests stay');

  // The synchronous form, batch by batch as well.
  const db = openDb(t, file);
  for (let i = 0; i < 250; i++) call(j, `s${i}`, OLD + i);
  t.same(pruneJournal(db, CUT, { batch: 7 }), { calls: 250, requests: 0, attempts: 0, messages: 0 });
  t.throws(() => pruneJournal(db, CUT, { batch: 0 }), /batch must be a positive integer/);
  t.throws(() => pruneJournal(db, Number.NaN), /epoch ms/);
});

t.test('the deleted rows leave the file and the WAL', async (t) => {
  const { j, file } = open(t);
  const marker = 'sip:amk-old-marker-7731@10.0.0.9';
  request(j, 'old-marker-7731', { at: OLD, outcome: 'contact', attempts: 2 });
  call(j, 'call-old-marker-7731', OLD);
  request(j, 'new', { at: RECENT, outcome: 'contact', attempts: 1 });
  j.checkpoint();
  const has = (f: string, s: string): boolean => {
    try {
      return readFileSync(f).includes(Buffer.from(s));
    } catch {
      return false;
    }
  };
  t.ok(has(file, marker), 'the attempt target is in the file before the prune');
  await j.prune(CUT);
  t.equal(statSync(`${file}-wal`).size, 0, 'the WAL is checkpointed and truncated');
  for (const s of [marker, 'call-old-marker-7731', 'old-marker-7731']) t.notOk(has(file, s), `"${s}" overwritten in the file (secure_delete)`);
});

t.test('statistics after pruning: the period older than the retention shows no rows', async (t) => {
  const { j } = open(t);
  for (let i = 0; i < 5; i++) {
    call(j, `old-${i}`, OLD + i * 1000);
    request(j, `old-${i}`, { at: OLD + i * 1000, outcome: i % 2 ? 'contact' : 'no-contact', attempts: 2, messages: i % 2 ? [] : [['no-contact', 'delivered']] });
    call(j, `new-${i}`, RECENT + i * 1000);
    request(j, `new-${i}`, { at: RECENT + i * 1000, outcome: i % 2 ? 'contact' : 'no-contact', attempts: 2, messages: i % 2 ? [] : [['no-contact', 'delivered']] });
  }
  const oldPeriod = { from: OLD - DAY, to: OLD + DAY, by: 'day' as const, now: T0 };
  const newPeriod = { from: RECENT - DAY, to: RECENT + DAY, by: 'day' as const, now: T0 };
  const before = j.stats(oldPeriod).totals.total;
  t.same([before.callsSeen, before.requests, before.noContactMessages, before.attempts.total], [5, 5, 3, 10], 'the old period has rows before');
  const recentBefore = j.stats(newPeriod);

  await j.prune(CUT);
  const after = j.stats(oldPeriod).totals.total;
  t.same([after.callsSeen, after.requests, after.noContactMessages, after.attempts.total, after.lostRequests], [0, 0, 0, 0, 0], 'nothing left in the old period');
  t.same(j.stats(newPeriod), recentBefore, 'the period within the retention is unchanged');
  t.same(j.summary(OLD - DAY, OLD + DAY), { requests: {}, attempts: {}, messages: {} });
});

t.test('the schedule: first run soon, then every interval; failures logged and retried; stop ends it', async (t) => {
  const cuts: number[] = [];
  const lines: { level: string; obj: Record<string, unknown>; msg?: string }[] = [];
  const log = {
    info: (obj: object, msg?: string) => lines.push({ level: 'info', obj: obj as Record<string, unknown>, msg }),
    error: (obj: object, msg?: string) => lines.push({ level: 'error', obj: obj as Record<string, unknown>, msg }),
  };
  let n = 0;
  const target = {
    async prune(before: number): Promise<PruneCounts> {
      cuts.push(before);
      n++;
      if (n === 2) throw new Error('disk I/O error');
      return n === 1 ? { calls: 4, requests: 2, attempts: 3, messages: 1 } : { calls: 0, requests: 0, attempts: 0, messages: 0 };
    },
  };
  const now = T0;
  const s = scheduleJournalPrune(target, { retentionDays: 400, pruneIntervalMin: 0.0005, firstDelayMs: 5, now: () => now }, log);
  await waitFor(() => n >= 4, 5000, 'four runs');
  s.stop();
  const stoppedAt = n;
  await new Promise((r) => setTimeout(r, 150));
  t.equal(n, stoppedAt, 'no run after stop');
  t.ok(cuts.every((c) => c === T0 - 400 * DAY), 'each run prunes before now - retention');
  t.match(lines[0], { level: 'info', obj: { calls: 4, requests: 2, attempts: 3, messages: 1, retentionDays: 400 }, msg: /journal pruned/ });
  t.match(lines[1], { level: 'error', obj: { err: { message: 'disk I/O error' } }, msg: /prune failed; trying again at the next interval/ });
  t.equal(lines.length, 2, 'a run that prunes nothing logs nothing');
});

t.test('the daemon prunes on its schedule', async (t) => {
  const { bridge } = await startTestBridge(t, { journal: { retentionDays: 30, pruneIntervalMin: 0.01 } });
  const j = bridge.journal;
  const now = Date.now();
  const old = now - 40 * DAY;
  call(j, 'old-call', old);
  request(j, 'old-done', { at: old, outcome: 'contact', attempts: 2 });
  request(j, 'old-undelivered', { at: old, outcome: 'no-contact', attempts: 1, messages: [['no-contact', 'failed']] });
  call(j, 'fresh-call', now);
  request(j, 'fresh', { at: now - DAY, outcome: 'contact', attempts: 1 });
  await waitFor(() => j.request('old-done') === null, 10_000, 'the scheduled prune');
  t.same(j.attempts('old-done'), []);
  t.same(ids(j.path, 'SELECT call_id FROM calls'), ['fresh-call']);
  t.ok(j.request('old-undelivered'), 'an undelivered message keeps its request');
  t.ok(j.request('fresh'));
  // It keeps running: rows that age past the retention later go at a later run.
  request(j, 'old-later', { at: old, outcome: 'aborted', attempts: 1 });
  await waitFor(() => j.request('old-later') === null, 10_000, 'the next scheduled prune');
});
