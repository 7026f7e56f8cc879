// computeStats over a small fixed data set, every figure computed by hand.
import t from 'tap';
import { bucketStart, computeStats, percentile, type AttemptStatRow, type CallStatRow, type RequestStatRow, type StatsRows } from '../../src/domain/statistics.js';

const H = 3_600_000;
const D = 24 * H;
const FROM = Date.UTC(2025, 0, 6); // a Monday
const TO = FROM + 2 * D;

const calls: CallStatRow[] = [
  [FROM + 1 * H, 'h', 0],
  [FROM + 2 * H, 'h', 1],
  [FROM + 3 * H, 's', 0],
  [FROM + D + 1 * H, 'h', 0],
  [FROM - 1, 'h', 1], // before the period
];
const requests: RequestStatRow[] = [
  ['R1', FROM + 1 * H, 'h', 'contact', 'home', 'h', FROM + 1 * H + 10_000, 0],
  ['R2', FROM + 2 * H, 'h', 'no-contact', null, null, FROM + 2 * H + 30_000, 1],
  ['R3', FROM + 3 * H, 's', 'aborted', null, null, FROM + 3 * H + 4000, 0],
  ['R4', FROM + D + 1 * H, 'h', 'contact', 'home', 'h', FROM + D + 1 * H + 10_000, 0],
  ['R5', FROM + D + 2 * H, 'h', null, null, null, null, 0],
  ['R6', TO - 5 * 60_000, 's', null, null, null, null, 0],
  ['R7', FROM + D + 3 * H, 's', 'contact', 'buffer', 's', FROM + D + 3 * H + 1500, 0],
  ['R0', FROM - 10, 'h', 'aborted', null, null, FROM, 0], // before the period
];
const a = (key: string, n: number, stage: AttemptStatRow[2], region: string, outcome: AttemptStatRow[4], start: number, answered: number | null): AttemptStatRow => [key, n, stage, region, outcome, start, answered];
const r1 = FROM + 1 * H;
const r2 = FROM + 2 * H;
const r4 = FROM + D + 1 * H;
const r7 = FROM + D + 3 * H;
const attempts: AttemptStatRow[] = [
  a('R1', 1, 'home', 'h', 'answered', r1 + 100, r1 + 5100),
  a('R2', 2, 'overflow', 's', 'answered', r2 + 20_000, r2 + 26_000),
  a('R2', 1, 'home', 'h', 'busy', r2 + 100, null),
  a('R3', 1, 'home', 's', 'cancelled', FROM + 3 * H + 100, null),
  a('R4', 1, 'home', 'h', 'no-answer', r4 + 100, null),
  a('R4', 2, 'home', 'h', 'answered', r4 + 8000, r4 + 10_000),
  a('R7', 1, 'buffer', 's', 'answered', r7, r7 + 1000),
  a('R0', 1, 'home', 'h', 'busy', FROM - 5, null), // request outside the period
  a('RX', 1, 'home', 'h', 'answered', r1, r1 + 1), // unknown request
];
const rows: StatsRows = { calls, requests, attempts };
const opts = { from: FROM, to: TO, now: TO } as const;

t.test('percentile: nearest rank', async (t) => {
  t.equal(percentile([], 50), null);
  t.equal(percentile([7], 90), 7);
  t.equal(percentile([1, 2, 3, 4], 50), 2);
  t.equal(percentile([1, 2, 3, 4], 90), 4);
  t.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90), 9);
});

t.test('bucketStart: UTC hours, days, weeks from Monday', async (t) => {
  const wed = Date.UTC(2025, 0, 8, 13, 45);
  t.equal(bucketStart(wed, 'hour'), Date.UTC(2025, 0, 8, 13));
  t.equal(bucketStart(wed, 'day'), Date.UTC(2025, 0, 8));
  t.equal(bucketStart(wed, 'week'), Date.UTC(2025, 0, 6));
  t.equal(bucketStart(Date.UTC(2025, 0, 5, 23, 59), 'week'), Date.UTC(2024, 11, 30));
  t.equal(bucketStart(Date.UTC(2025, 0, 6), 'week'), Date.UTC(2025, 0, 6));
});

t.test('by day: every figure per bucket, region and in total', async (t) => {
  const s = computeStats(rows, { ...opts, by: 'day' });
  t.same(s.period, { from: FROM, to: TO, region: null, timeZone: 'UTC' });
  t.equal(s.by, 'day');
  t.equal(s.buckets.length, 2);
  t.same(s.buckets.map((b) => [b.start, b.end]), [[FROM, FROM + D], [FROM + D, TO]]);
  t.same(Object.keys(s.buckets[0]!.regions), ['h', 's']);

  t.strictSame(s.buckets[0]!.regions.h, {
    callsSeen: 2,
    requests: 2,
    attempts: { total: 3, byOutcome: { answered: 2, busy: 1 } },
    answered: { attempt1: 1, attempt2: 0, buffer: 0, overflow: 1 },
    noContactMessages: 1,
    noContactShareOfCalls: 0.5,
    noContactShareOfRequests: 0.5,
    overflowContacts: { 'h→s': 1 },
    answerTimeMs: { median: 5000, p90: 6000 },
    // R1: contact outcome after 10 s; R2: no-contact, then contact via overflow 26 s after the trigger.
    timeToContactMs: { median: 10_000, p90: 26_000 },
    aborts: 0,
    lostRequests: 0,
    running: 0,
    recontacts: 1,
  });
  t.strictSame(s.buckets[0]!.regions.s, {
    callsSeen: 1,
    requests: 1,
    attempts: { total: 1, byOutcome: { cancelled: 1 } },
    answered: { attempt1: 0, attempt2: 0, buffer: 0, overflow: 0 },
    noContactMessages: 0,
    noContactShareOfCalls: 0,
    noContactShareOfRequests: 0,
    overflowContacts: {},
    answerTimeMs: { median: null, p90: null },
    timeToContactMs: { median: null, p90: null },
    aborts: 1,
    lostRequests: 0,
    running: 0,
    recontacts: 0,
  });
  const d1 = s.buckets[0]!.total;
  t.equal(d1.callsSeen, 3);
  t.equal(d1.requests, 3);
  t.same(d1.attempts, { total: 4, byOutcome: { answered: 2, busy: 1, cancelled: 1 } });
  t.equal(d1.noContactShareOfCalls, 1 / 3);
  t.equal(d1.noContactShareOfRequests, 1 / 3);

  t.strictSame(s.buckets[1]!.regions.h, {
    callsSeen: 1,
    requests: 2,
    attempts: { total: 2, byOutcome: { answered: 1, 'no-answer': 1 } },
    answered: { attempt1: 0, attempt2: 1, buffer: 0, overflow: 0 },
    noContactMessages: 0,
    noContactShareOfCalls: 0,
    noContactShareOfRequests: 0,
    overflowContacts: {},
    answerTimeMs: { median: 2000, p90: 2000 },
    timeToContactMs: { median: 10_000, p90: 10_000 },
    aborts: 0,
    lostRequests: 1,
    running: 0,
    recontacts: 0,
  });
  const s2 = s.buckets[1]!.regions.s!;
  t.equal(s2.callsSeen, 0);
  t.equal(s2.noContactShareOfCalls, null, 'no calls: no share of calls');
  t.equal(s2.noContactShareOfRequests, 0);
  t.same(s2.answered, { attempt1: 0, attempt2: 0, buffer: 1, overflow: 0 });
  t.same(s2.answerTimeMs, { median: 1000, p90: 1000 });
  t.same(s2.timeToContactMs, { median: 1500, p90: 1500 });
  t.equal(s2.running, 1, 'R6 started 5 min ago: running, not lost');
  t.equal(s2.lostRequests, 0);

  const h = s.totals.regions.h!;
  t.equal(h.callsSeen, 3);
  t.equal(h.requests, 4);
  t.same(h.answered, { attempt1: 1, attempt2: 1, buffer: 0, overflow: 1 });
  t.equal(h.noContactShareOfCalls, 1 / 3);
  t.equal(h.noContactShareOfRequests, 1 / 4);
  t.same(h.answerTimeMs, { median: 5000, p90: 6000 });
  t.same(h.timeToContactMs, { median: 10_000, p90: 26_000 });
  t.strictSame(s.totals.total, {
    callsSeen: 4,
    requests: 7,
    attempts: { total: 7, byOutcome: { answered: 4, busy: 1, cancelled: 1, 'no-answer': 1 } },
    answered: { attempt1: 1, attempt2: 1, buffer: 1, overflow: 1 },
    noContactMessages: 1,
    noContactShareOfCalls: 0.25,
    noContactShareOfRequests: 1 / 7,
    overflowContacts: { 'h→s': 1 },
    answerTimeMs: { median: 2000, p90: 6000 },
    timeToContactMs: { median: 10_000, p90: 26_000 },
    aborts: 1,
    lostRequests: 1,
    running: 1,
    recontacts: 1,
  });
});

t.test('lost vs running: the grace and now decide', async (t) => {
  const later = computeStats(rows, { ...opts, by: 'day', now: TO + 10 * 60_000 });
  t.equal(later.totals.total.lostRequests, 2, 'R6 is 15 min old: lost');
  t.equal(later.totals.total.running, 0);
  const long = computeStats(rows, { ...opts, by: 'day', now: TO, runningGraceMs: 23 * H });
  t.equal(long.totals.total.lostRequests, 0);
  t.equal(long.totals.total.running, 2);
});

t.test('by week and by hour', async (t) => {
  const w = computeStats(rows, { ...opts, by: 'week' });
  t.equal(w.buckets.length, 1);
  t.same([w.buckets[0]!.start, w.buckets[0]!.end], [FROM, TO], 'clipped to the period');
  t.strictSame(w.buckets[0]!.total, w.totals.total);
  const mid = computeStats(rows, { from: FROM + D, to: FROM + 9 * D, by: 'week', now: TO });
  t.same(mid.buckets.map((b) => [b.start, b.end]), [[FROM + D, FROM + 7 * D], [FROM + 7 * D, FROM + 9 * D]]);
  t.equal(mid.buckets[0]!.total.requests, 4);

  const hr = computeStats(rows, { ...opts, by: 'hour' });
  t.equal(hr.buckets.length, 48);
  t.equal(hr.buckets[1]!.total.requests, 1);
  t.equal(hr.buckets[2]!.regions.h!.noContactMessages, 1);
  t.equal(hr.buckets[0]!.total.requests, 0);
  t.same(hr.buckets[0]!.regions.h!.answerTimeMs, { median: null, p90: null });
  t.strictSame(hr.totals, computeStats(rows, { ...opts, by: 'day' }).totals, 'totals do not depend on the buckets');
});

t.test('region filter', async (t) => {
  const s = computeStats(rows, { ...opts, by: 'day', region: 's' });
  t.same(Object.keys(s.totals.regions), ['s']);
  t.strictSame(s.totals.total, s.totals.regions.s);
  t.equal(s.totals.total.requests, 3);
  t.equal(s.totals.total.callsSeen, 1);
  t.same(s.totals.total.overflowContacts, {}, 'overflow contacts belong to the home region');
  const none = computeStats(rows, { ...opts, by: 'day', region: 'x' });
  t.same(Object.keys(none.buckets[0]!.regions), ['x']);
  t.equal(none.totals.total.requests, 0);
  t.equal(none.totals.total.noContactShareOfRequests, null);
});

t.test('the period must be from < to', async (t) => {
  t.throws(() => computeStats(rows, { from: TO, to: FROM, by: 'day' }));
});
