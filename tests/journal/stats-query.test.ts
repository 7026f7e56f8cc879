// queryStats (the statistics as SQLite folds them) against the reference, computeStats over
// statsRows, on journals from a seeded generator: written through the Journal API as the daemon
// writes them, and by direct inserts for what the API does not produce (equal attempt numbers,
// unknown outcomes, odd region names, rows outside the period's slack...). Each comparison is
// deep equality and identical JSON (key order included).
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import t, { type Test } from 'tap';
import type { Bucketing, Stats, StatsOptions } from '../../src/domain/statistics.js';
import { openDatabase, type SqliteDb } from '../../src/journal/db.js';
import { Journal } from '../../src/journal/journal.js';
import { queryStats, referenceStats, STATS_SLACK_MS } from '../../src/journal/stats-query.js';
import type { AttemptOutcome, ContactStage } from '../../src/journal/types.js';
import { messageCommit, requestStart, tempDir } from './fixtures/process.js';

const MIN = 60_000;
const H = 60 * MIN;
const D = 24 * H;
/** Wednesday 15 January 2025, 10:00 UTC: weeks (from Monday) are cut by most periods. */
const T0 = Date.UTC(2025, 0, 15, 10);

/** mulberry32: the same journals on every run. */
function prng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

interface Rnd {
  (): number;
  int(n: number): number;
  pick<T>(a: readonly T[]): T;
  chance(p: number): boolean;
}

function rng(seed: number): Rnd {
  const next = prng(seed);
  const r = (() => next()) as Rnd;
  r.int = (n) => Math.floor(next() * n);
  r.pick = (a) => a[Math.floor(next() * a.length)] as (typeof a)[number];
  r.chance = (p) => next() < p;
  return r;
}

/** Deep equality and the same JSON; on a difference, tap's diff of the two. */
function sameAsReference(t: Test, db: SqliteDb, opts: StatsOptions, label: string): Stats {
  const fast = queryStats(db, opts);
  const ref = referenceStats(db, opts);
  if (isDeepStrictEqual(fast, ref) && JSON.stringify(fast) === JSON.stringify(ref)) t.pass(label);
  else t.strictSame(fast, ref, `${label} ${JSON.stringify(opts)}`);
  return fast;
}

/** Periods over [start, end): whole, cut inside buckets at either end, short, empty, region filtered. */
function periods(rnd: Rnd, start: number, end: number, regions: readonly string[], now: number): StatsOptions[] {
  const out: StatsOptions[] = [];
  const span = end - start;
  for (const by of ['hour', 'day', 'week'] as Bucketing[]) {
    out.push({ from: start - D, to: end + D, by, now });
    out.push({ from: start + 17 * MIN + 123, to: end - 41 * MIN, by, now });
    const from = start + rnd.int(span);
    out.push({ from, to: from + 1 + rnd.int(Math.max(1, Math.floor(span / 3))), by, now: now + rnd.int(2 * H) - H });
    out.push({ from: start - 3 * D, to: start - 2 * D, by, now }); // before every row
    out.push({ from: start - D, to: end + D, by, region: rnd.pick(regions), now, runningGraceMs: rnd.int(3 * H) });
  }
  out.push({ from: start, to: end, by: 'day', region: 'nowhere', now });
  out.push({ from: start - D, to: end + D, by: 'hour' }); // now: Date.now(), every open request lost
  return out;
}

const REGIONS = ['hovedstaden', 'sjælland', 'syddanmark', 'midtjylland'] as const;
const OVERFLOW_ONLY = 'bornholm'; // a region only overflow reaches: no calls, no requests of its own
const FAILED: readonly AttemptOutcome[] = ['busy', 'no-answer', 'rejected', 'unreachable', 'cancelled', 'citizen-hangup'];

/**
 * A journal as the daemon writes it: calls, requests with attempts in order, outcomes,
 * no-contact messages committed with their outcome, late contacts via overflow after the
 * message, aborted, running and lost requests, test requests, follow-up messages.
 */
function daemonJournal(file: string, seed: number, requests: number): { start: number; end: number; now: number } {
  const rnd = rng(seed);
  const j = Journal.open(file);
  const start = T0;
  let t = start;
  let lastStart = start;
  for (let i = 0; i < requests; i++) {
    t += rnd.int(90 * MIN);
    const callId = `call-${seed}-${i}`;
    const home = rnd.pick(REGIONS);
    j.callSeen({ callId, startedAt: t, trunk: rnd.chance(0.5) ? 'trunk-1' : null, region: home, recontact: rnd.chance(0.1) });
    if (i < requests - 3 && rnd.chance(0.15)) continue; // a call without a request
    const id = `${seed.toString(16).padStart(8, '0')}-${i.toString(16).padStart(4, '0')}-4000-8000-000000000000`;
    const t0 = t + 5000 + rnd.int(20_000);
    const last = i >= requests - 3; // open at `now`, so running
    j.requestStarted(requestStart(id, { callId, region: home, startedAt: t0, test: !last && rnd.chance(0.1) }));
    lastStart = t0;
    let at = t0 + 100;
    let n = 0;
    const attempt = (stage: ContactStage, region: string, outcome: AttemptOutcome | null): number | null => {
      const attemptId = `${id}-${++n}`;
      const begun = at;
      j.attemptStarted({ attemptId, requestId: id, n, stage, region, target: `sip:amk@${region}`, startedAt: begun });
      at += 1000 + rnd.int(15_000);
      if (outcome === null) return null; // still ringing
      const answeredAt = outcome === 'answered' ? at : null;
      j.attemptEnded(attemptId, { outcome, status: outcome === 'answered' ? 200 : 486, reason: null, endedAt: at, answeredAt, crossedCancel: false });
      return answeredAt;
    };
    const shape = last ? 1 : rnd();
    if (shape < 0.45) {
      // Contact at home (first or a later attempt) or via the buffer.
      const fails = rnd.int(3);
      for (let k = 0; k < fails; k++) attempt('home', home, rnd.pick(FAILED));
      const stage: ContactStage = rnd.chance(0.2) ? 'buffer' : 'home';
      const answered = attempt(stage, home, 'answered') as number;
      j.requestOutcome(id, 'contact', answered, stage, home);
    } else if (shape < 0.6) {
      // Contact via overflow, before any message.
      attempt('home', home, rnd.pick(FAILED));
      const region = rnd.chance(0.3) ? OVERFLOW_ONLY : rnd.pick(REGIONS.filter((r) => r !== home));
      const answered = attempt('overflow', region, 'answered') as number;
      j.requestOutcome(id, 'contact', answered, 'overflow', region);
      if (rnd.chance(0.5)) j.commitMessage(messageCommit(id, 'contact-via-overflow', { createdAt: answered + 500, region: home }));
    } else if (shape < 0.8) {
      // No contact: the message with its outcome; sometimes a late contact via overflow after it.
      for (let k = 1 + rnd.int(2); k > 0; k--) attempt('home', home, rnd.pick(FAILED));
      j.commitMessage(messageCommit(id, 'no-contact', { createdAt: at, region: home, escalateAt: at + MIN }), { outcome: 'no-contact', at });
      if (rnd.chance(0.5)) attempt('overflow', rnd.pick([...REGIONS, OVERFLOW_ONLY]), rnd.chance(0.7) ? 'answered' : rnd.pick(FAILED));
    } else if (shape < 0.9) {
      // Aborted: the caller hung up.
      attempt('home', home, rnd.chance(0.5) ? 'citizen-hangup' : 'cancelled');
      j.requestOutcome(id, 'aborted', at);
    } else {
      // No outcome yet: running or lost, by its age at `now`; maybe an attempt still ringing.
      if (rnd.chance(0.5)) attempt('home', home, rnd.chance(0.5) ? null : rnd.pick(FAILED));
    }
  }
  j.close();
  // `now` shortly after the last request: it still runs, older open ones are lost.
  return { start, end: t + H, now: lastStart + 5 * MIN };
}

/** Odd region names: separators of the record format, non-ASCII, a prefix of another. */
const ODD_REGIONS = ['hovedstaden', 'sjælland', 'a,b;c:d/e[f]x', 'syd', 'syddanmark', '💡 nord'] as const;
const OUTCOME_NAMES = ['answered', 'answered', 'answered', 'busy', 'no-answer', 'rejected', 'unreachable', 'cancelled', 'citizen-hangup', null, 'open', 'timeout', 'x,y:z'];

interface Shape {
  /** Calls: in every region, in all but the first (whose requests have no calls), or none. */
  calls: 'all' | 'some' | 'none';
  /** Rows inserted in time order (as the daemon does), else in random order. */
  timeOrdered: boolean;
  /** Gaps in the requests' rowids (larger than a chunk of the query). */
  rowidGaps: boolean;
}

/**
 * A journal by direct inserts, beyond what the daemon writes: equal attempt numbers, attempts
 * before their request or after the slack, unknown outcomes, answered attempts without an answer
 * time, contact outcomes without a time, duplicate and out-of-window no-contact messages,
 * fractional and infinite times, n = 0, recontact = 2.
 */
function insertedJournal(db: SqliteDb, seed: number, requests: number, shape: Shape): { start: number; end: number; now: number } {
  const rnd = rng(seed);
  const span = rnd.pick([6 * H, 3 * D, 12 * D]);
  const regions = ODD_REGIONS.slice(0, 2 + rnd.int(ODD_REGIONS.length - 1));
  const callRegions = shape.calls === 'some' ? regions.slice(1) : regions;
  const times = Array.from({ length: requests }, () => T0 + rnd.int(span) + (rnd.chance(0.03) ? 0.25 : 0));
  if (shape.timeOrdered) times.sort((a, b) => a - b);
  const call = db.prepare('INSERT INTO calls (call_id, started_at, trunk, region, recontact) VALUES (?, ?, ?, ?, ?)');
  const req = db.prepare(`INSERT INTO requests (rowid, request_id, call_id, incident_id, emergency_call_id, node, desk, region, trigger,
      started_at, test, policy, context, outcome, outcome_stage, outcome_region, outcome_at)
    VALUES (?, ?, ?, 'urn:i', 'urn:e', 'node-1', NULL, ?, 'dtmf', ?, ?, '{}', NULL, ?, NULL, NULL, ?)`);
  const att = db.prepare(`INSERT INTO attempts (attempt_id, request_id, n, stage, region, target, started_at, outcome, answered_at)
    VALUES (?, ?, ?, ?, ?, 'sip:amk', ?, ?, ?)`);
  const msg = db.prepare(`INSERT INTO outbox (key, request_id, type, region, endpoints, state, next_at, escalate_at, created_at, test)
    VALUES (?, ?, ?, ?, '[]', 'delivered', 0, 0, ?, 0)`);
  let rowid = 0;
  db.transaction(() => {
    times.forEach((t, i) => {
      if (shape.calls !== 'none') call.run(`c${i}`, t - rnd.int(30_000), 'trunk-1', rnd.pick(callRegions), rnd.chance(0.1) ? rnd.pick([1, 2]) : 0);
      if (rnd.chance(0.1)) return;
      const id = `r${i}`;
      const home = rnd.pick(regions);
      const outcome = rnd.pick(['contact', 'contact', 'contact', 'no-contact', 'aborted', null, 'odd']);
      const outcomeAt = outcome === null || rnd.chance(0.05) ? null : rnd.chance(0.01) ? -Infinity : t + rnd.int(90_000);
      rowid += shape.rowidGaps && rnd.chance(0.02) ? 300_000 + rnd.int(300_000) : 1;
      req.run(rowid, id, `c${i}`, home, t, rnd.chance(0.1) ? 1 : 0, outcome, outcomeAt);
      const attempts = rnd.int(5);
      for (let k = 1; k <= attempts; k++) {
        const n = rnd.chance(0.15) ? Math.max(0, k - 1) : k; // equal n (and n = 0) now and then
        const start = t + rnd.int(60_000) - (rnd.chance(0.03) ? 2 * D : 0) + (rnd.chance(0.03) ? STATS_SLACK_MS + D : 0);
        const o = rnd.pick(OUTCOME_NAMES);
        const answeredAt = o === 'answered' && rnd.chance(0.9) ? (rnd.chance(0.01) ? Infinity : start + rnd.int(20_000)) : null;
        const stage = rnd.pick(['home', 'home', 'buffer', 'overflow', 'odd']);
        att.run(`${id}-${k}`, id, n, stage, rnd.pick([...regions, OVERFLOW_ONLY]), start, o, answeredAt);
      }
      if (rnd.chance(0.3)) {
        const type = rnd.chance(0.8) ? 'no-contact' : 'contact-via-overflow';
        const created = t + rnd.int(120_000) - (rnd.chance(0.05) ? 3 * D : 0) + (rnd.chance(0.05) ? STATS_SLACK_MS + D : 0);
        msg.run(`${id}:${type}`, id, type, home, created);
        if (type === 'no-contact' && rnd.chance(0.2)) msg.run(`${id}:no-contact:again`, id, 'no-contact', home, created + 1000);
      }
    });
  })();
  return { start: T0, end: T0 + span, now: T0 + rnd.int(span) };
}

t.test('a journal written through the Journal API, every bucketing and period', async (t) => {
  for (const seed of [1, 2]) {
    const file = join(tempDir(t), 'journal.sqlite');
    const { start, end, now } = daemonJournal(file, seed, 45);
    const db = openDatabase(file, { create: false });
    t.teardown(() => db.close());
    for (const opts of periods(rng(seed + 100), start, end, REGIONS, now)) sameAsReference(t, db, opts, `seed ${seed}: ${opts.by}`);
    // Journal.stats is this query.
    const j = Journal.open(file, { create: false });
    const opts: StatsOptions = { from: start, to: end, by: 'day', now };
    t.strictSame(j.stats(opts), referenceStats(db, opts), 'Journal.stats');
    j.close();
  }
});

t.test('the daemon journal has what the comparison is about', async (t) => {
  const file = join(tempDir(t), 'journal.sqlite');
  const { start, end, now } = daemonJournal(file, 7, 60);
  const db = openDatabase(file, { create: false });
  t.teardown(() => db.close());
  const s = sameAsReference(t, db, { from: start, to: end, by: 'week', now }, 'by week');
  const total = s.totals.total;
  t.ok(total.running > 0 && total.lostRequests > 0, 'running and lost requests');
  t.ok(total.noContactMessages > 0, 'no-contact messages');
  t.ok(total.answered.overflow > 0 && Object.keys(total.overflowContacts).some((k) => k.endsWith(`→${OVERFLOW_ONLY}`)), 'overflow contacts, also into a region without calls');
  t.ok(total.answered.attempt1 > 0 && total.answered.attempt2 > 0 && total.answered.buffer > 0, 'answered on every stage');
  t.ok(total.aborts > 0 && total.recontacts > 0, 'aborts and re-contacts');
  t.ok((total.attempts.byOutcome.open ?? 0) > 0, 'attempts still ringing');
  t.ok(total.timeToContactMs.median !== null && total.answerTimeMs.p90 !== null, 'percentiles');
});

t.test('random journals by direct inserts', async (t) => {
  const shapes: Shape[] = [
    { calls: 'all', timeOrdered: false, rowidGaps: false },
    { calls: 'all', timeOrdered: true, rowidGaps: true },
    { calls: 'none', timeOrdered: true, rowidGaps: false },
    { calls: 'some', timeOrdered: false, rowidGaps: true },
  ];
  for (let seed = 11; seed <= 18; seed++) {
    const shape = shapes[seed % shapes.length] as Shape;
    const db = openDatabase(join(tempDir(t), 'journal.sqlite'));
    t.teardown(() => db.close());
    // One large enough for well over a thousand values of a kind.
    const { start, end, now } = insertedJournal(db, seed, seed === 12 ? 3000 : 150 + (seed % 3) * 150, shape);
    const rnd = rng(seed);
    for (const opts of periods(rnd, start, end, ODD_REGIONS, now)) sameAsReference(t, db, opts, `seed ${seed} ${JSON.stringify(shape)}: ${opts.by}`);
  }
});

t.test('an empty journal, and an invalid period', async (t) => {
  const db = openDatabase(join(tempDir(t), 'journal.sqlite'));
  t.teardown(() => db.close());
  for (const by of ['hour', 'day', 'week'] as Bucketing[]) {
    const s = sameAsReference(t, db, { from: T0, to: T0 + 2 * D, by, now: T0 }, `empty, by ${by}`);
    t.equal(s.totals.total.requests, 0);
  }
  sameAsReference(t, db, { from: T0, to: T0 + D, by: 'day', region: 'hovedstaden', now: T0 }, 'empty, one region');
  t.throws(() => queryStats(db, { from: T0, to: T0, by: 'day' }), { message: 'the period needs from < to' });
  t.throws(() => queryStats(db, { from: Number.NaN, to: T0, by: 'day' }), { message: 'the period needs from < to' });
});
