// The journal: durable record of conference-in requests, their attempts and outcomes, and the
// message outbox. Every method is synchronous; when it returns, the write is on disk (see db.ts).
// Statements are prepared once, in the constructor.

import { openDatabase, type OpenOptions, type SqliteDb } from './db.js';
import { requestParams, toAttemptRow, toOutboxRow, toRequestRow, type AttemptRecord, type OutboxRecord, type RequestRecord } from './rows.js';
import { CONTEXT_KEY_BYTES, isSealed, loadContextKey, sealContext, unsealContext } from './context-seal.js';
import { pruneJournalAsync, type PruneCounts } from './prune.js';
import type { Stats, StatsOptions } from '../domain/statistics.js';
import { queryStats } from './stats-query.js';
import {
  MESSAGE_ORDER,
  type AttemptEnd,
  type AttemptRow,
  type AttemptStart,
  type ContactStage,
  type Outbox,
  type OutboxCommit,
  type OutboxRow,
  type RequestOutcome,
  type RequestRow,
  type RequestStart,
} from './types.js';

/** An outbox row as the incident view shows it: also when the delivery escalated. */
export interface MessageRow extends OutboxRow {
  escalatedAt: number | null;
}

export type ListFilter = 'pending' | 'failed' | 'delivered' | 'all';

export interface JournalOpenOptions extends OpenOptions {
  /**
   * The 32-byte key that seals request contexts at rest (./context-seal.ts). Default: read from
   * `contextKeyFile`. null: no key (contexts can be neither written nor unsealed).
   */
  contextKey?: Buffer | null;
  /**
   * Key file used when `contextKey` is not given; default `<path>.key`. Where the journal may be
   * created (the default), a missing key file is created and a bad one is an error; with
   * `create: false` (the CLI) a missing, unreadable or bad key file only means sealed contexts
   * read as null, with a warning when one is met.
   */
  contextKeyFile?: string;
  /** Warnings, such as a context that cannot be unsealed; default: process.emitWarning. */
  warn?: (obj: object, msg: string) => void;
}

interface ContextSealing {
  key: Buffer | null;
  /** Why there is no key, for the warning. */
  keyProblem: string | null;
  warn: (obj: object, msg: string) => void;
}

/** Shortest id prefix `find` accepts: shorter ones would match too much to be useful. */
export const MIN_PREFIX = 8;

/** SQL for MESSAGE_ORDER of `column`, so ordering follows the TypeScript table, not a stored copy. */
function orderOf(column: string): string {
  const whens = Object.entries(MESSAGE_ORDER)
    .map(([type, n]) => `WHEN '${type}' THEN ${n}`)
    .join(' ');
  return `(CASE ${column} ${whens} ELSE 99 END)`;
}

/** A follow-up waits for its request's `no-contact` message to be delivered first. */
const NOT_GATED = `(o.type = 'no-contact' OR NOT EXISTS (
  SELECT 1 FROM outbox nc WHERE nc.request_id = o.request_id AND nc.type = 'no-contact' AND nc.state <> 'delivered'))`;

const OLDEST_FIRST = `o.created_at, ${orderOf('o.type')}, o.key`;
const NEWEST_FIRST = `o.created_at DESC, ${orderOf('o.type')} DESC, o.key DESC`;

/** Every statement the journal runs, prepared once per connection. */
function prepareStatements(db: SqliteDb) {
  const p = <P extends unknown[] | object, R = unknown>(sql: string) => db.prepare<P, R>(sql);
  type Key = [string];
  return {
    // A repeated start (same id) keeps the first: starts are idempotent, like the outbox.
    insertRequest: p<Record<string, unknown>>(`INSERT INTO requests
      (request_id, call_id, incident_id, emergency_call_id, node, desk, region, trigger, started_at, test, policy, context)
      VALUES (@request_id, @call_id, @incident_id, @emergency_call_id, @node, @desk, @region, @trigger, @started_at, @test, @policy, @context)
      ON CONFLICT (request_id) DO NOTHING`),
    insertCall: p<[string, number, string | null, string, number]>(`INSERT INTO calls (call_id, started_at, trunk, region, recontact)
      VALUES (?, ?, ?, ?, ?) ON CONFLICT (call_id) DO NOTHING`),
    insertAttempt: p<Record<string, unknown>>(`INSERT INTO attempts (attempt_id, request_id, n, stage, region, target, started_at)
      VALUES (@attempt_id, @request_id, @n, @stage, @region, @target, @started_at)
      ON CONFLICT (attempt_id) DO NOTHING`),
    attemptProvisional: p<[number, string]>(`UPDATE attempts SET first_response_at = ? WHERE attempt_id = ? AND first_response_at IS NULL`),
    attemptEnded: p<Record<string, unknown>>(`UPDATE attempts SET outcome = @outcome, status = @status, reason = @reason, ended_at = @ended_at,
      answered_at = @answered_at, crossed_cancel = @crossed_cancel WHERE attempt_id = @attempt_id AND ended_at IS NULL`),
    // The outcome also ends the need for the context (personal data): cleared in the same write.
    requestOutcome: p<Record<string, unknown>>(`UPDATE requests SET outcome = @outcome, outcome_stage = @stage, outcome_region = @region,
      outcome_at = @at, context = NULL WHERE request_id = @request_id AND outcome IS NULL`),
    openRequests: p<[], RequestRecord>(`SELECT * FROM requests WHERE outcome IS NULL ORDER BY started_at, request_id`),
    request: p<Key, RequestRecord>(`SELECT * FROM requests WHERE request_id = ?`),
    context: p<Key, { context: string | null }>(`SELECT context FROM requests WHERE request_id = ?`),
    attempts: p<Key, AttemptRecord>(`SELECT * FROM attempts WHERE request_id = ? ORDER BY n, started_at`),
    messages: p<Key, OutboxRecord>(`SELECT * FROM outbox o WHERE o.request_id = ? ORDER BY ${orderOf('o.type')}, o.created_at`),
    findExact: p<{ q: string }, RequestRecord>(`SELECT * FROM requests
      WHERE request_id = @q OR call_id = @q OR incident_id = @q OR emergency_call_id = @q`),
    // A range on the primary key, so the prefix search uses the index (LIKE/GLOB would need escaping).
    findPrefix: p<{ q: string; upper: string }, RequestRecord>(`SELECT * FROM requests WHERE request_id >= @q AND request_id < @upper`),

    insertMessage: p<Record<string, unknown>>(`INSERT INTO outbox
      (key, request_id, type, region, endpoints, payload, state, tries, next_at, escalate_at, escalated, failed_endpoints, created_at, test)
      VALUES (@key, @request_id, @type, @region, @endpoints, @payload, 'pending', 0, @created_at, @escalate_at, 0, '[]', @created_at, @test)
      ON CONFLICT (key) DO NOTHING`),
    get: p<Key, OutboxRecord>(`SELECT * FROM outbox WHERE key = ?`),
    due: p<[number, number], OutboxRecord>(`SELECT o.* FROM outbox o WHERE o.state = 'pending' AND o.next_at <= ? AND ${NOT_GATED}
      ORDER BY ${OLDEST_FIRST} LIMIT ?`),
    nextDueAt: p<[], { at: number | null }>(`SELECT MIN(o.next_at) AS at FROM outbox o WHERE o.state = 'pending' AND ${NOT_GATED}`),
    escalationsDue: p<[number], OutboxRecord>(`SELECT o.* FROM outbox o WHERE o.state = 'pending' AND o.escalated = 0 AND o.escalate_at <= ?
      ORDER BY ${OLDEST_FIRST}`),
    // First delivery sticks; the payload (personal data) is not kept once delivered.
    delivered: p<[number, string, string]>(`UPDATE outbox SET state = 'delivered', delivered_at = ?, delivered_to = ?, payload = NULL
      WHERE key = ? AND state <> 'delivered'`),
    retryLater: p<[number, string, string]>(`UPDATE outbox SET tries = tries + 1, next_at = ?, last_error = ? WHERE key = ? AND state = 'pending'`),
    endpointFailed: p<{ key: string; endpoint: string; error: string }>(`UPDATE outbox SET tries = tries + 1, last_error = @error,
      failed_endpoints = CASE WHEN EXISTS (SELECT 1 FROM json_each(failed_endpoints) WHERE value = @endpoint)
        THEN failed_endpoints ELSE json_insert(failed_endpoints, '$[#]', @endpoint) END
      WHERE key = @key AND state = 'pending'`),
    escalated: p<[number, string]>(`UPDATE outbox SET escalated = 1, escalated_at = COALESCE(escalated_at, ?) WHERE key = ?`),
    failed: p<[string, string]>(`UPDATE outbox SET state = 'failed', last_error = ? WHERE key = ? AND state = 'pending'`),
    listState: p<[string, number], OutboxRecord>(`SELECT o.* FROM outbox o WHERE o.state = ? ORDER BY ${NEWEST_FIRST} LIMIT ?`),
    listAll: p<[number], OutboxRecord>(`SELECT o.* FROM outbox o ORDER BY ${NEWEST_FIRST} LIMIT ?`),
    retryCandidates: p<[], { key: string }>(`SELECT o.key FROM outbox o WHERE o.state IN ('pending', 'failed') ORDER BY ${OLDEST_FIRST}`),
    retryCandidate: p<Key, { key: string }>(`SELECT key FROM outbox WHERE key = ? AND state IN ('pending', 'failed')`),
    retryOne: p<[number, string]>(`UPDATE outbox SET state = 'pending', next_at = ?, failed_endpoints = '[]' WHERE key = ?`),
    backlog: p<[], { pending: number | null; failed: number | null; oldest: number | null }>(`SELECT
      SUM(state = 'pending') AS pending, SUM(state = 'failed') AS failed,
      MIN(CASE WHEN state = 'pending' THEN created_at END) AS oldest
      FROM outbox WHERE state IN ('pending', 'failed')`),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

export class Journal implements Outbox {
  readonly path: string;
  private readonly db: SqliteDb;
  private readonly s: Statements;
  private readonly commitTx: (m: OutboxCommit, outcome?: { outcome: RequestOutcome; at: number }) => { row: OutboxRow; created: boolean };
  private readonly retryTx: (key: string | undefined, now: number) => string[];
  private readonly sealing: ContextSealing;

  /**
   * Opens the journal file, creating it (and its directories) unless `create: false`, and gets
   * the key that seals request contexts (see JournalOpenOptions).
   */
  static open(path: string, opts: JournalOpenOptions = {}): Journal {
    const db = openDatabase(path, opts);
    const warn = opts.warn ?? ((obj: object, msg: string) => process.emitWarning(`${msg} ${JSON.stringify(obj)}`));
    let key: Buffer | null = null;
    let keyProblem: string | null = null;
    if (opts.contextKey !== undefined) {
      key = opts.contextKey;
      if (key === null) keyProblem = 'the journal was opened without a context key';
      else if (key.length !== CONTEXT_KEY_BYTES) {
        db.close();
        throw new Error(`journal ${path}: a context key has ${CONTEXT_KEY_BYTES} bytes (got ${key.length})`);
      }
    } else {
      const file = opts.contextKeyFile ?? `${path}.key`;
      const create = opts.create ?? true;
      try {
        key = loadContextKey(file, { create });
      } catch (err) {
        if (create) {
          db.close();
          throw err;
        }
        keyProblem = (err as Error).message;
      }
    }
    return new Journal(db, path, { key, keyProblem, warn });
  }

  private constructor(db: SqliteDb, path: string, sealing: ContextSealing) {
    this.db = db;
    this.path = path;
    this.sealing = sealing;
    this.s = prepareStatements(db);
    // IMMEDIATE: take the write lock up front. A deferred transaction that reads first and
    // then writes fails at once (SQLITE_BUSY_SNAPSHOT) if another process, such as the CLI or
    // the daemon, committed meanwhile; the busy timeout cannot help it.
    this.commitTx = db.transaction((m: OutboxCommit, outcome?: { outcome: RequestOutcome; at: number }) => {
      const key = `${m.requestId}:${m.type}`;
      const created =
        this.s.insertMessage.run({
          key,
          request_id: m.requestId,
          type: m.type,
          region: m.region,
          endpoints: JSON.stringify(m.endpoints),
          payload: m.payload,
          created_at: m.createdAt,
          escalate_at: m.escalateAt,
          test: m.test ? 1 : 0,
        }).changes > 0;
      if (outcome) this.s.requestOutcome.run({ request_id: m.requestId, outcome: outcome.outcome, stage: null, region: null, at: outcome.at });
      return { row: toOutboxRow(this.s.get.get(key) as OutboxRecord), created };
    }).immediate;

    this.retryTx = db.transaction((key: string | undefined, now: number): string[] => {
      const keys = key === undefined ? this.s.retryCandidates.all().map((r) => r.key) : this.s.retryCandidate.get(key) ? [key] : [];
      for (const k of keys) this.s.retryOne.run(now, k);
      return keys;
    }).immediate;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /**
   * Counts over requests started in [from, to): requests by outcome (`open` for none yet),
   * attempts by outcome, messages by type and state. The full statistics build on the same rows.
   */
  summary(from: number, to: number): { requests: Record<string, number>; attempts: Record<string, number>; messages: Record<string, number> } {
    const count = (sql: string) => Object.fromEntries((this.db.prepare(sql).all(from, to) as { k: string; n: number }[]).map((r) => [r.k, r.n]));
    return {
      requests: count(`SELECT COALESCE(outcome, 'open') AS k, COUNT(*) AS n FROM requests WHERE started_at >= ? AND started_at < ? GROUP BY k`),
      attempts: count(`SELECT COALESCE(a.outcome, 'open') AS k, COUNT(*) AS n FROM attempts a JOIN requests r USING (request_id) WHERE r.started_at >= ? AND r.started_at < ? GROUP BY k`),
      messages: count(`SELECT o.type || ':' || o.state AS k, COUNT(*) AS n FROM outbox o JOIN requests r USING (request_id) WHERE r.started_at >= ? AND r.started_at < ? GROUP BY k`),
    };
  }

  /** Records a 112 call the bridge saw (the statistics' first denominator). A repeated call id keeps the first. */
  callSeen(c: { callId: string; startedAt: number; trunk: string | null; region: string; recontact: boolean }): void {
    // A call row is a count, not a message: it does not wait for its own fsync on the INVITE's
    // path. Written with synchronous=NORMAL it survives a crash of the process at once (WAL in
    // the page cache) and a power loss from the next durable commit or checkpoint on.
    this.db.pragma('synchronous = NORMAL');
    try {
      this.s.insertCall.run(c.callId, c.startedAt, c.trunk, c.region, c.recontact ? 1 : 0);
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  /** Statistics by the national counting method over the journal (see ./stats-query.ts). */
  stats(opts: StatsOptions): Stats {
    return queryStats(this.db, opts);
  }

  /**
   * Folds the WAL into the database file and truncates it. Purged payloads can linger in WAL
   * frames until they are overwritten; a daemon may call this now and then (closing the last
   * connection does the same).
   */
  checkpoint(): void {
    this.db.pragma('wal_checkpoint(TRUNCATE)');
  }

  /**
   * Deletes what is older than `before` (epoch ms) and no longer needed: calls; requests with an
   * outcome whose messages are all delivered, with their attempts and messages (./prune.ts). Small
   * transactions, the event loop gets a turn between them; then the WAL is checkpointed so the
   * deleted rows leave it too. Returns the counts.
   */
  async prune(before: number, opts: { batch?: number } = {}): Promise<PruneCounts> {
    const counts = await pruneJournalAsync(this.db, before, opts);
    if (this.db.open) this.checkpoint();
    return counts;
  }

  // -------------------------------------------------------------------------------------------
  // Requests and attempts

  /**
   * Policy and context are stored as JSON text, the context sealed (./context-seal.ts). A
   * repeated start for the same id keeps the first.
   */
  requestStarted(r: RequestStart): void {
    const params = requestParams(r);
    params.context = this.seal(r.requestId, params.context as string | null);
    this.s.insertRequest.run(params);
  }

  /** The request must have been started (foreign key). A repeated attempt id keeps the first. */
  attemptStarted(a: AttemptStart): void {
    this.s.insertAttempt.run({
      attempt_id: a.attemptId,
      request_id: a.requestId,
      n: a.n,
      stage: a.stage,
      region: a.region,
      target: a.target,
      started_at: a.startedAt,
    });
  }

  /** Records only the first 1xx. */
  attemptProvisional(attemptId: string, at: number): void {
    this.s.attemptProvisional.run(at, attemptId);
  }

  /** Only the first end sticks. */
  attemptEnded(attemptId: string, e: AttemptEnd): void {
    this.s.attemptEnded.run({
      attempt_id: attemptId,
      outcome: e.outcome,
      status: e.status,
      reason: e.reason,
      ended_at: e.endedAt,
      answered_at: e.answeredAt,
      crossed_cancel: e.crossedCancel ? 1 : 0,
    });
  }

  /** First outcome sticks (returns false when the request already had one, or is unknown). Clears the stored context. */
  requestOutcome(requestId: string, outcome: RequestOutcome, at: number, stage: ContactStage | null = null, region: string | null = null): boolean {
    return this.s.requestOutcome.run({ request_id: requestId, outcome, stage, region, at }).changes > 0;
  }

  /** Requests without an outcome, oldest first. */
  openRequests(): RequestRow[] {
    return this.s.openRequests.all().map((r) => this.requestRow(r));
  }

  request(requestId: string): RequestRow | null {
    const r = this.s.request.get(requestId);
    return r ? this.requestRow(r) : null;
  }

  /** By attempt number. */
  attempts(requestId: string): AttemptRow[] {
    return this.s.attempts.all(requestId).map(toAttemptRow);
  }

  /** The request's messages in MESSAGE_ORDER. */
  messages(requestId: string): MessageRow[] {
    return this.s.messages.all(requestId).map((r) => ({ ...toOutboxRow(r), escalatedAt: r.escalated_at }));
  }

  /**
   * The stored context (unsealed, parsed JSON), or null once the request has its outcome. Also
   * null, with a warning, when it cannot be unsealed (another key, no key): never throws.
   */
  context(requestId: string): unknown | null {
    const r = this.s.context.get(requestId);
    return r ? this.unseal(requestId, r.context) : null;
  }

  private requestRow(r: RequestRecord): RequestRow {
    return { ...toRequestRow({ ...r, context: null }), context: this.unseal(r.request_id, r.context) };
  }

  /** A context's JSON text as stored: sealed. */
  private seal(requestId: string, json: string | null): string | null {
    if (json === null) return null;
    const { key, keyProblem } = this.sealing;
    // Never in the clear: a process without the key cannot store a context.
    if (key === null) throw new Error(`journal ${this.path}: cannot store the context of request ${requestId}: ${keyProblem ?? 'no context key'}`);
    return sealContext(key, json, requestId);
  }

  /** A stored context, parsed: sealed, or plain JSON as written before sealing. */
  private unseal(requestId: string, stored: string | null): unknown {
    if (stored === null) return null;
    try {
      if (!isSealed(stored)) return JSON.parse(stored) as unknown;
      const { key, keyProblem } = this.sealing;
      if (key === null) throw new Error(keyProblem ?? 'no context key');
      return JSON.parse(unsealContext(key, stored, requestId)) as unknown;
    } catch (err) {
      this.sealing.warn({ requestId, journal: this.path, error: (err as Error).message }, 'request context cannot be read; taken as none');
      return null;
    }
  }

  /**
   * A request by its id, a unique id prefix of >= MIN_PREFIX characters, its SIP Call-ID, its
   * incident URN or emergency call URN. Newest first. A query that is a whole request id
   * matches only that request, even if it also prefixes others.
   */
  find(query: string): RequestRow[] {
    const exact = this.s.findExact.all({ q: query });
    const byId = new Map(exact.map((r) => [r.request_id, r]));
    if (query.length >= MIN_PREFIX && !exact.some((r) => r.request_id === query)) {
      // U+10FFFF sorts after every character that can follow the prefix (BINARY collation).
      for (const r of this.s.findPrefix.all({ q: query, upper: `${query}\u{10FFFF}` })) byId.set(r.request_id, r);
    }
    return [...byId.values()]
      .sort((a, b) => b.started_at - a.started_at || (a.request_id < b.request_id ? 1 : a.request_id > b.request_id ? -1 : 0))
      .map((r) => this.requestRow(r));
  }

  // -------------------------------------------------------------------------------------------
  // Outbox

  /**
   * Stores a message (idempotent on `${requestId}:${type}`: returns the existing row and false)
   * and, in the same transaction, the request's outcome when given (first outcome sticks,
   * context cleared). A new row is pending and due at once.
   */
  commitMessage(m: OutboxCommit, outcome?: { outcome: RequestOutcome; at: number }): { row: OutboxRow; created: boolean } {
    return this.commitTx(m, outcome);
  }

  /** Pending rows due at `now`, oldest first (then MESSAGE_ORDER); follow-ups wait for the request's `no-contact` delivery. */
  due(now: number, limit = -1): OutboxRow[] {
    return this.s.due.all(now, limit).map(toOutboxRow);
  }

  /** Earliest nextAt over pending rows that are not waiting for their `no-contact` message. */
  nextDueAt(): number | null {
    return this.s.nextDueAt.get()?.at ?? null;
  }

  escalationsDue(now: number): OutboxRow[] {
    return this.s.escalationsDue.all(now).map(toOutboxRow);
  }

  /** Marks the row delivered (first delivery sticks) and purges its payload. */
  delivered(key: string, endpoint: string, at: number): void {
    this.s.delivered.run(at, endpoint, key);
  }

  retryLater(key: string, nextAt: number, error: string): void {
    this.s.retryLater.run(nextAt, error, key);
  }

  endpointFailed(key: string, endpoint: string, error: string): void {
    this.s.endpointFailed.run({ key, endpoint, error });
  }

  escalated(key: string, at: number): void {
    this.s.escalated.run(at, key);
  }

  failed(key: string, error: string): void {
    this.s.failed.run(error, key);
  }

  get(key: string): OutboxRow | null {
    const r = this.s.get.get(key);
    return r ? toOutboxRow(r) : null;
  }

  /** Newest first. */
  list(filter: ListFilter, limit = 100): OutboxRow[] {
    const rows = filter === 'all' ? this.s.listAll.all(limit) : this.s.listState.all(filter, limit);
    return rows.map(toOutboxRow);
  }

  /** Failed and pending rows (all, or the one key) back to pending, due at `now`, endpoint failures forgotten. Returns the keys, oldest first. */
  retry(key?: string, now: number = Date.now()): string[] {
    return this.retryTx(key, now);
  }

  backlog(): { pending: number; failed: number; oldestCreatedAt: number | null } {
    const r = this.s.backlog.get();
    return { pending: r?.pending ?? 0, failed: r?.failed ?? 0, oldestCreatedAt: r?.oldest ?? null };
  }
}
