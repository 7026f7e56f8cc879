// Statistics by the national counting method, from the journal's rows: per region and in total,
// over any period, in hour / day / week buckets (UTC; weeks start Monday 00:00 UTC). Pure: the
// same rows and options always give the same result. One pass over each row list; percentiles
// from sorted typed arrays.
//
// What is counted where:
// - 112 calls seen: by the call's start and the region routing gave it; re-contacts likewise.
// - requests, aborts, lost requests, no-contact messages, answered-on, overflow contacts, time to
//   contact: by the request's start and its home region.
// - attempts (by outcome) and answer time: by their request's start and home region.
// - answered on: the request's first answered attempt: `attempt1` (home, attempt 1), `attempt2`
//   (home, a later attempt), `buffer`, `overflow`. A request counts at most once.
// - no-contact messages: requests with a `no-contact` message in the outbox (one per request).
//   Its share of calls seen covers every 112 call (the bridge cannot tell illness calls from
//   others); its share of requests is the national denominator.
// - answer time: INVITE → 200 (answeredAt − startedAt) of each answered attempt.
// - time to contact: from the trigger (request start) to the contact: outcomeAt for a `contact`
//   outcome, else (a late contact via overflow after the no-contact message) the answer.
// - lost requests: no outcome and started more than `runningGraceMs` before `now`. Must be zero.
//   Requests without an outcome that are younger are `running`.
// Percentiles are nearest-rank: the smallest value with at least p % of the values at or below it.

import type { AttemptOutcome, ContactStage, RequestOutcome } from '../journal/types.js';

/** [startedAt, region, recontact (0|1)] */
export type CallStatRow = [startedAt: number, region: string, recontact: number];
/** [requestId, startedAt, homeRegion, outcome, outcomeStage, outcomeRegion, outcomeAt, noContactMessage (0|1)] */
export type RequestStatRow = [
  key: string,
  startedAt: number,
  region: string,
  outcome: RequestOutcome | null,
  outcomeStage: ContactStage | null,
  outcomeRegion: string | null,
  outcomeAt: number | null,
  noContactMessage: number,
];
/** [requestId, n, stage, region, outcome, startedAt, answeredAt] */
export type AttemptStatRow = [
  key: string,
  n: number,
  stage: ContactStage,
  region: string,
  outcome: AttemptOutcome | null,
  startedAt: number,
  answeredAt: number | null,
];

export interface StatsRows {
  calls: readonly CallStatRow[];
  requests: readonly RequestStatRow[];
  attempts: readonly AttemptStatRow[];
}

export type Bucketing = 'hour' | 'day' | 'week';

export interface StatsOptions {
  /** Period [from, to), epoch ms. */
  from: number;
  to: number;
  by: Bucketing;
  /** Only this (home) region. */
  region?: string;
  timeZone?: 'UTC';
  /** For lost vs running requests; default Date.now(). */
  now?: number;
  /** A request without an outcome younger than this is running, not lost; default 10 min. */
  runningGraceMs?: number;
}

export interface Percentiles {
  median: number | null;
  p90: number | null;
}

export interface RegionStats {
  callsSeen: number;
  requests: number;
  attempts: { total: number; byOutcome: Record<string, number> };
  answered: { attempt1: number; attempt2: number; buffer: number; overflow: number };
  noContactMessages: number;
  /** Fraction of 112 calls seen (every call, illness or not); null without calls. */
  noContactShareOfCalls: number | null;
  /** Fraction of conference-in requests (the national denominator); null without requests. */
  noContactShareOfRequests: number | null;
  /** `home→overflow` region pair → contacts. */
  overflowContacts: Record<string, number>;
  answerTimeMs: Percentiles;
  timeToContactMs: Percentiles;
  aborts: number;
  /** Requests without an outcome older than the running grace: must be 0. */
  lostRequests: number;
  /** Requests without an outcome still within the running grace. */
  running: number;
  recontacts: number;
}

export interface StatsBucket {
  start: number;
  end: number;
  regions: Record<string, RegionStats>;
  total: RegionStats;
}

export interface Stats {
  period: { from: number; to: number; region: string | null; timeZone: 'UTC' };
  by: Bucketing;
  buckets: StatsBucket[];
  totals: { regions: Record<string, RegionStats>; total: RegionStats };
}

export const DEFAULT_RUNNING_GRACE_MS = 10 * 60_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;
/** 1970-01-05, the first Monday after the epoch. */
const MONDAY = 4 * DAY;

export const BUCKET_MS: Record<Bucketing, number> = { hour: HOUR, day: DAY, week: WEEK };

/** Start of the bucket holding `t` (UTC). */
export function bucketStart(t: number, by: Bucketing): number {
  const size = BUCKET_MS[by];
  const offset = by === 'week' ? MONDAY : 0;
  return Math.floor((t - offset) / size) * size + offset;
}

/** Nearest-rank percentile of ascending `sorted` (p in 0..100). */
export function percentile(sorted: ArrayLike<number>, p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] as number;
}

/** Mutable counters while aggregating; `finish` turns them into RegionStats. */
interface Acc {
  callsSeen: number;
  requests: number;
  attempts: number;
  byOutcome: Record<string, number>;
  attempt1: number;
  attempt2: number;
  buffer: number;
  overflow: number;
  noContact: number;
  pairs: Record<string, number>;
  answerMs: number[];
  contactMs: number[];
  aborts: number;
  lost: number;
  running: number;
  recontacts: number;
}

function newAcc(): Acc {
  return {
    callsSeen: 0,
    requests: 0,
    attempts: 0,
    byOutcome: {},
    attempt1: 0,
    attempt2: 0,
    buffer: 0,
    overflow: 0,
    noContact: 0,
    pairs: {},
    answerMs: [],
    contactMs: [],
    aborts: 0,
    lost: 0,
    running: 0,
    recontacts: 0,
  };
}

function percentiles(values: number[]): Percentiles {
  const sorted = Float64Array.from(values).sort();
  return { median: percentile(sorted, 50), p90: percentile(sorted, 90) };
}

function sortedRecord(r: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(r).sort()) out[k] = r[k] as number;
  return out;
}

function finish(a: Acc): RegionStats {
  return {
    callsSeen: a.callsSeen,
    requests: a.requests,
    attempts: { total: a.attempts, byOutcome: sortedRecord(a.byOutcome) },
    answered: { attempt1: a.attempt1, attempt2: a.attempt2, buffer: a.buffer, overflow: a.overflow },
    noContactMessages: a.noContact,
    noContactShareOfCalls: a.callsSeen === 0 ? null : a.noContact / a.callsSeen,
    noContactShareOfRequests: a.requests === 0 ? null : a.noContact / a.requests,
    overflowContacts: sortedRecord(a.pairs),
    answerTimeMs: percentiles(a.answerMs),
    timeToContactMs: percentiles(a.contactMs),
    aborts: a.aborts,
    lostRequests: a.lost,
    running: a.running,
    recontacts: a.recontacts,
  };
}

/** An empty RegionStats (no rows). */
export function emptyRegionStats(): RegionStats {
  return finish(newAcc());
}

/**
 * Aggregates the journal's rows (see `Journal.statsRows`) for [from, to). Rows outside the
 * period or of another region (with `region`) are ignored, so callers may pass a superset.
 */
export function computeStats(rows: StatsRows, opts: StatsOptions): Stats {
  const { from, to, by } = opts;
  if (!(Number.isFinite(from) && Number.isFinite(to) && to > from)) throw new Error('the period needs from < to');
  const only = opts.region;
  const now = opts.now ?? Date.now();
  const lostBefore = now - (opts.runningGraceMs ?? DEFAULT_RUNNING_GRACE_MS);
  const size = BUCKET_MS[by];
  const first = bucketStart(from, by);
  const nBuckets = Math.ceil((to - first) / size);

  // Accumulators: one per (bucket, region), per bucket total, per region over the period, overall.
  const regionIndex = new Map<string, number>();
  const regionNames: string[] = [];
  const cells: (Acc | undefined)[][] = []; // [region][bucket]
  const bucketTotals: Acc[] = Array.from({ length: nBuckets }, newAcc);
  const periodRegions: Acc[] = [];
  const overall = newAcc();
  const regionOf = (name: string): number => {
    let i = regionIndex.get(name);
    if (i === undefined) {
      i = regionNames.length;
      regionIndex.set(name, i);
      regionNames.push(name);
      cells.push(new Array<Acc | undefined>(nBuckets));
      periodRegions.push(newAcc());
    }
    return i;
  };
  const cell = (r: number, b: number): Acc => {
    const row = cells[r] as (Acc | undefined)[];
    return (row[b] ??= newAcc());
  };
  const inPeriod = (t: number): boolean => t >= from && t < to;
  const bucketOf = (t: number): number => Math.floor((t - first) / size);

  for (const [startedAt, region, recontact] of rows.calls) {
    if (!inPeriod(startedAt) || (only !== undefined && region !== only)) continue;
    const r = regionOf(region);
    const b = bucketOf(startedAt);
    for (const a of [cell(r, b), bucketTotals[b] as Acc, periodRegions[r] as Acc, overall]) {
      a.callsSeen++;
      if (recontact) a.recontacts++;
    }
  }

  // Requests by key: their accumulators, for their attempts.
  const reqIndex = new Map<string, number>();
  const reqAccs: Acc[][] = [];
  const reqHome: string[] = [];
  const reqStarted: number[] = [];
  const reqContactCounted: boolean[] = [];
  for (const [key, startedAt, region, outcome, , , outcomeAt, noContactMsg] of rows.requests) {
    if (!inPeriod(startedAt) || (only !== undefined && region !== only)) continue;
    const r = regionOf(region);
    const b = bucketOf(startedAt);
    const accs = [cell(r, b), bucketTotals[b] as Acc, periodRegions[r] as Acc, overall];
    reqIndex.set(key, reqAccs.length);
    reqAccs.push(accs);
    reqHome.push(region);
    reqStarted.push(startedAt);
    const contactMs = outcome === 'contact' && outcomeAt !== null ? outcomeAt - startedAt : null;
    reqContactCounted.push(contactMs !== null);
    for (const a of accs) {
      a.requests++;
      if (noContactMsg) a.noContact++;
      if (outcome === 'aborted') a.aborts++;
      else if (outcome === null) {
        if (startedAt < lostBefore) a.lost++;
        else a.running++;
      }
      if (contactMs !== null) a.contactMs.push(contactMs);
    }
  }

  // Attempts: by outcome, answer time; the first answered attempt of each request (lowest n).
  const firstAnswer = new Int32Array(reqAccs.length).fill(-1);
  const firstAnswerN = new Float64Array(reqAccs.length).fill(Infinity);
  for (let i = 0; i < rows.attempts.length; i++) {
    const [key, n, , , outcome, startedAt, answeredAt] = rows.attempts[i] as AttemptStatRow;
    const q = reqIndex.get(key);
    if (q === undefined) continue;
    const o = outcome ?? 'open';
    const answered = outcome === 'answered' && answeredAt !== null;
    for (const a of reqAccs[q] as Acc[]) {
      a.attempts++;
      a.byOutcome[o] = (a.byOutcome[o] ?? 0) + 1;
      if (answered) a.answerMs.push(answeredAt - startedAt);
    }
    if (answered && n < (firstAnswerN[q] as number)) {
      firstAnswerN[q] = n;
      firstAnswer[q] = i;
    }
  }
  for (let q = 0; q < reqAccs.length; q++) {
    const i = firstAnswer[q] as number;
    if (i < 0) continue;
    const [, n, stage, region, , , answeredAt] = rows.attempts[i] as AttemptStatRow;
    const pair = stage === 'overflow' ? `${reqHome[q]}→${region}` : null;
    const lateContactMs = reqContactCounted[q] ? null : (answeredAt as number) - (reqStarted[q] as number);
    for (const a of reqAccs[q] as Acc[]) {
      if (stage === 'overflow') a.overflow++;
      else if (stage === 'buffer') a.buffer++;
      else if (n <= 1) a.attempt1++;
      else a.attempt2++;
      if (pair !== null) a.pairs[pair] = (a.pairs[pair] ?? 0) + 1;
      if (lateContactMs !== null) a.contactMs.push(lateContactMs);
    }
  }

  const names = regionNames.map((name, i) => [name, i] as const).sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  if (only !== undefined && !regionIndex.has(only)) names.splice(0, names.length, [only, regionOf(only)] as const);
  const buckets: StatsBucket[] = [];
  for (let b = 0; b < nBuckets; b++) {
    const regions: Record<string, RegionStats> = {};
    for (const [name, i] of names) {
      const acc = (cells[i] as (Acc | undefined)[])[b];
      regions[name] = acc ? finish(acc) : emptyRegionStats();
    }
    const start = first + b * size;
    buckets.push({ start: Math.max(start, from), end: Math.min(start + size, to), regions, total: finish(bucketTotals[b] as Acc) });
  }
  const totalRegions: Record<string, RegionStats> = {};
  for (const [name, i] of names) totalRegions[name] = finish(periodRegions[i] as Acc);
  return {
    period: { from, to, region: only ?? null, timeZone: 'UTC' },
    by,
    buckets,
    totals: { regions: totalRegions, total: finish(overall) },
  };
}
