// Retention of the journal: rows older than `journal.retentionDays` are deleted, on a schedule.
//
// What goes, by its start (calls, requests) — never anything still needed:
// - calls seen before the cut;
// - requests started before the cut that HAVE an outcome and whose messages are all delivered,
//   together with their attempts and those (delivered) messages.
// A request without an outcome (recovery still owes it a message), or with a message pending or
// failed, stays with its attempts and messages however old it is.
//
// Deletion runs in small IMMEDIATE transactions (`batch` calls or requests each), so the write
// lock is held briefly and the daemon's event loop is free between them (pruneJournalAsync
// yields after every transaction). `secure_delete` overwrites what is deleted; the journal
// checkpoints the WAL afterwards (Journal.prune).

import type { SqliteDb } from './db.js';

export interface PruneCounts {
  calls: number;
  requests: number;
  attempts: number;
  messages: number;
}

/**
 * Calls or requests per transaction. A request brings its attempts and messages along (about four
 * rows), and secure_delete overwrites every row: 200 keeps one transaction at a few milliseconds
 * plus its fsync on an ordinary disk.
 */
export const DEFAULT_PRUNE_BATCH = 200;

const DAY_MS = 86_400_000;

function zero(): PruneCounts {
  return { calls: 0, requests: 0, attempts: 0, messages: 0 };
}

function add(total: PruneCounts, c: PruneCounts): void {
  total.calls += c.calls;
  total.requests += c.requests;
  total.attempts += c.attempts;
  total.messages += c.messages;
}

export function prunedAnything(c: PruneCounts): boolean {
  return c.calls + c.requests + c.attempts + c.messages > 0;
}

interface Step {
  counts: PruneCounts;
  /** Nothing left to delete before the cut. */
  done: boolean;
}

function prepare(db: SqliteDb) {
  return {
    calls: db.prepare<[number, number]>(`DELETE FROM calls WHERE rowid IN (
      SELECT rowid FROM calls WHERE started_at < ? ORDER BY started_at LIMIT ?)`),
    // Finished requests only: an outcome, and no message that is not yet delivered.
    requests: db.prepare<[number, number], { request_id: string }>(`SELECT r.request_id FROM requests r
      WHERE r.started_at < ? AND r.outcome IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.request_id = r.request_id AND o.state <> 'delivered')
      ORDER BY r.started_at LIMIT ?`),
    attempts: db.prepare<[string]>(`DELETE FROM attempts WHERE request_id = ?`),
    messages: db.prepare<[string]>(`DELETE FROM outbox WHERE request_id = ? AND state = 'delivered'`),
    request: db.prepare<[string]>(`DELETE FROM requests WHERE request_id = ? AND outcome IS NOT NULL`),
  };
}

type StepFn = (before: number, batch: number) => Step;
/** One prepared step per connection. */
const steppers = new WeakMap<SqliteDb, StepFn>();

function stepper(db: SqliteDb): StepFn {
  let step = steppers.get(db);
  if (!step) {
    const s = prepare(db);
    // IMMEDIATE: the write lock up front (see Journal), so the candidates read are still
    // candidates when they are deleted.
    step = db.transaction((before: number, batch: number): Step => {
      const counts = zero();
      counts.calls = s.calls.run(before, batch).changes;
      if (counts.calls >= batch) return { counts, done: false };
      const budget = batch - counts.calls;
      const ids = s.requests.all(before, budget);
      for (const { request_id: id } of ids) {
        counts.attempts += s.attempts.run(id).changes;
        counts.messages += s.messages.run(id).changes;
        counts.requests += s.request.run(id).changes;
      }
      return { counts, done: ids.length < budget };
    }).immediate;
    steppers.set(db, step);
  }
  return step;
}

function checkArgs(before: number, batch: number): void {
  if (!Number.isFinite(before)) throw new Error(`prune: "before" must be a time in epoch ms (got ${before})`);
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`prune: batch must be a positive integer (got ${batch})`);
}

/**
 * Deletes the journal rows older than `before` (epoch ms) that are no longer needed (see the top
 * of this file), in transactions of at most `batch` calls or requests. Synchronous: it runs to the
 * end without giving the event loop a turn; the daemon uses pruneJournalAsync.
 */
export function pruneJournal(db: SqliteDb, before: number, opts: { batch?: number } = {}): PruneCounts {
  const batch = opts.batch ?? DEFAULT_PRUNE_BATCH;
  checkArgs(before, batch);
  const step = stepper(db);
  const total = zero();
  for (;;) {
    const r = step(before, batch);
    add(total, r.counts);
    if (r.done) return total;
  }
}

/**
 * The same as pruneJournal, giving the event loop a turn after every transaction. Stops early
 * (with what it deleted so far) when the connection is closed meanwhile.
 */
export async function pruneJournalAsync(db: SqliteDb, before: number, opts: { batch?: number } = {}): Promise<PruneCounts> {
  const batch = opts.batch ?? DEFAULT_PRUNE_BATCH;
  checkArgs(before, batch);
  const step = stepper(db);
  const total = zero();
  while (db.open) {
    const r = step(before, batch);
    add(total, r.counts);
    if (r.done) break;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// The schedule in the daemon

export interface PruneTarget {
  prune(before: number): Promise<PruneCounts>;
}

export interface PruneLog {
  info(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface PruneScheduleOptions {
  retentionDays: number;
  pruneIntervalMin: number;
  /** Delay of the first run after the start; default the interval, at most 60 s. */
  firstDelayMs?: number;
  now?: () => number;
}

export interface PruneSchedule {
  /** Clears the timer; a run in progress ends with its current transaction. */
  stop(): void;
}

/** First run this long after the start at most: the start (recovery, outbox replay) goes first. */
export const FIRST_PRUNE_DELAY_MS = 60_000;

/**
 * Prunes `target` shortly after the start and then every `pruneIntervalMin`, deleting what is
 * older than `retentionDays`. A run that prunes something logs the counts; a failure is logged
 * and tried again at the next interval. Runs never overlap; the timer does not keep the process
 * alive.
 */
export function scheduleJournalPrune(target: PruneTarget, opts: PruneScheduleOptions, log: PruneLog): PruneSchedule {
  const intervalMs = Math.max(1, Math.round(opts.pruneIntervalMin * 60_000));
  const retentionMs = opts.retentionDays * DAY_MS;
  const now = opts.now ?? Date.now;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;

  const arm = (ms: number): void => {
    if (stopped) return;
    timer = setTimeout(() => void run(), ms);
    timer.unref();
  };
  const run = async (): Promise<void> => {
    timer = null;
    const before = now() - retentionMs;
    try {
      const counts = await target.prune(before);
      if (prunedAnything(counts)) {
        log.info({ ...counts, before: new Date(before).toISOString(), retentionDays: opts.retentionDays }, 'journal pruned: rows older than the retention deleted');
      }
    } catch (err) {
      log.error({ err }, 'journal prune failed; trying again at the next interval');
    }
    arm(intervalMs);
  };
  arm(opts.firstDelayMs ?? Math.min(FIRST_PRUNE_DELAY_MS, intervalMs));
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}
