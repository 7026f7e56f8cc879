// Statistics over the journal's SQLite file: reads the lean rows `computeStats`
// (../domain/statistics.ts) needs for the period and hands them over.

import type { SqliteDb } from './db.js';
import { computeStats, type AttemptStatRow, type CallStatRow, type RequestStatRow, type Stats, type StatsOptions, type StatsRows } from '../domain/statistics.js';

/** A request, its attempts and its messages all fall within this time after the request's start. */
export const STATS_SLACK_MS = 6 * 3_600_000;

export function queryStats(db: SqliteDb, opts: StatsOptions): Stats {
  return computeStats(statsRows(db, opts.from, opts.to, opts.region), opts);
}

/**
 * Calls seen by their start, requests by their start (test requests left out) and those
 * requests' attempts, as lean positional rows. With `region`, only that home region.
 */
export function statsRows(db: SqliteDb, from: number, to: number, region?: string): StatsRows {
  // A period covering most of a table reads it straight through (sequential pages) rather
  // than by the time index (a random page per row); a short period uses the index.
  const wide = (table: string): boolean => {
    const r = db.prepare(`SELECT MIN(started_at) AS lo, MAX(started_at) AS hi FROM ${table}`).get() as { lo: number | null; hi: number | null };
    if (r.lo === null || r.hi === null) return false;
    const covered = Math.min(to, r.hi + 1) - Math.max(from, r.lo);
    return covered > 0.25 * (r.hi + 1 - r.lo);
  };
  const scan = (table: string): string => (wide(table) ? 'NOT INDEXED' : '');
  const byRegion = region === undefined ? '' : ' AND r.region = @region';
  const params = region === undefined ? { from, to } : { from, to, region };
  const calls = db
    .prepare(`SELECT r.started_at, r.region, r.recontact FROM calls r ${scan('calls')} WHERE r.started_at >= @from AND r.started_at < @to${byRegion}`)
    .raw()
    .all(params) as CallStatRow[];
  const requests = db
    .prepare(`SELECT r.request_id, r.started_at, r.region, r.outcome, r.outcome_stage, r.outcome_region, r.outcome_at, 0
      FROM requests r ${scan('requests')} WHERE r.started_at >= @from AND r.started_at < @to AND r.test = 0${byRegion}`)
    .raw()
    .all(params) as RequestStatRow[];
  // Messages and attempts come after their request's start; a request lasts far less than
  // STATS_SLACK_MS, so this range holds every one of the period's requests. Rows of requests
  // outside the period (or region) are dropped by computeStats.
  const slack = { from, to: to + STATS_SLACK_MS };
  const noContact = new Set(
    (db.prepare(`SELECT request_id FROM outbox WHERE type = 'no-contact' AND created_at >= @from AND created_at < @to`).raw().all(slack) as [string][]).map((r) => r[0]),
  );
  if (noContact.size > 0) for (const r of requests) if (noContact.has(r[0])) r[7] = 1;
  const attempts = db
    .prepare(`SELECT a.request_id, a.n, a.stage, a.region, a.outcome, a.started_at, a.answered_at
      FROM attempts a ${scan('attempts')} WHERE a.started_at >= @from AND a.started_at < @to`)
    .raw()
    .all(slack) as AttemptStatRow[];
  return { calls, requests, attempts };
}
