// Opening the journal's SQLite file: durability pragmas and the schema, migrated by
// `PRAGMA user_version`. One file holds requests, attempts and the message outbox, so a message
// and its request's outcome commit in one transaction.

import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';

export type SqliteDb = Database.Database;

export interface OpenOptions {
  /** Create the file (and its parent directories) when missing; default true. The CLI passes false. */
  create?: boolean;
}

/**
 * Each entry migrates the schema from version `index` to `index + 1`. Append only: an entry that
 * has shipped is never edited, since files in the field are already at its version.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE requests (
    request_id        TEXT PRIMARY KEY,
    call_id           TEXT NOT NULL,
    incident_id       TEXT NOT NULL,
    emergency_call_id TEXT NOT NULL,
    node              TEXT NOT NULL,
    desk              TEXT,
    region            TEXT NOT NULL,
    trigger           TEXT NOT NULL,
    started_at        INTEGER NOT NULL,
    test              INTEGER NOT NULL,
    policy            TEXT NOT NULL,
    -- Personal data a message may still need; NULL once the request has its outcome.
    context           TEXT,
    outcome           TEXT,
    outcome_stage     TEXT,
    outcome_region    TEXT,
    outcome_at        INTEGER
  );
  CREATE INDEX requests_call_id ON requests (call_id);
  CREATE INDEX requests_incident_id ON requests (incident_id);
  CREATE INDEX requests_emergency_call_id ON requests (emergency_call_id);
  CREATE INDEX requests_open ON requests (started_at) WHERE outcome IS NULL;

  CREATE TABLE attempts (
    attempt_id        TEXT PRIMARY KEY,
    request_id        TEXT NOT NULL REFERENCES requests (request_id),
    n                 INTEGER NOT NULL,
    stage             TEXT NOT NULL,
    region            TEXT NOT NULL,
    target            TEXT NOT NULL,
    started_at        INTEGER NOT NULL,
    first_response_at INTEGER,
    outcome           TEXT,
    status            INTEGER,
    reason            TEXT,
    ended_at          INTEGER,
    answered_at       INTEGER,
    crossed_cancel    INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX attempts_request ON attempts (request_id, n);

  -- No foreign key to requests on purpose: a message must be stored even if its request row
  -- were missing; losing "no contact" would be worse than an orphan row.
  CREATE TABLE outbox (
    key              TEXT PRIMARY KEY,
    request_id       TEXT NOT NULL,
    type             TEXT NOT NULL,
    region           TEXT NOT NULL,
    endpoints        TEXT NOT NULL,
    payload          TEXT,
    state            TEXT NOT NULL,
    tries            INTEGER NOT NULL DEFAULT 0,
    next_at          INTEGER NOT NULL,
    escalate_at      INTEGER NOT NULL,
    escalated        INTEGER NOT NULL DEFAULT 0,
    escalated_at     INTEGER,
    failed_endpoints TEXT NOT NULL DEFAULT '[]',
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER,
    delivered_to     TEXT,
    test             INTEGER NOT NULL
  );
  CREATE INDEX outbox_state_next_at ON outbox (state, next_at);
  CREATE INDEX outbox_request_id ON outbox (request_id);
  CREATE INDEX outbox_created_at ON outbox (created_at);
  `,
  // 1 -> 2: the 112 calls the bridge saw (the statistics' first denominator), and time indexes
  // for the statistics over any period.
  `
  CREATE TABLE calls (
    call_id    TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    trunk      TEXT,
    region     TEXT NOT NULL,
    recontact  INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX calls_started_at ON calls (started_at);
  CREATE INDEX IF NOT EXISTS requests_started_at ON requests (started_at);
  CREATE INDEX IF NOT EXISTS attempts_started_at ON attempts (started_at);
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Opens (and by default creates) the journal file, sets the pragmas and brings the schema up to date. */
export function openDatabase(path: string, opts: OpenOptions = {}): SqliteDb {
  const create = opts.create ?? true;
  const file = resolve(path);
  if (create) mkdirSync(dirname(file), { recursive: true });
  // `timeout` sets busy_timeout (5 s): the daemon and the CLI share the file, so a writer waits
  // for the other's transaction instead of failing.
  const db = new Database(file, { fileMustExist: !create, timeout: 5000 });
  try {
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (String(mode).toLowerCase() !== 'wal') throw new Error(`journal ${file}: cannot use WAL mode (got "${String(mode)}")`);
    // FULL: in WAL mode the WAL is fsynced at every commit, so a returned write survives a power cut.
    db.pragma('synchronous = FULL');
    // Purged payloads and cleared contexts are overwritten with zeros, not left in free pages.
    db.pragma('secure_delete = ON');
    db.pragma('foreign_keys = ON');
    migrate(db, file);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

function migrate(db: SqliteDb, file: string): void {
  const version = Number(db.pragma('user_version', { simple: true }));
  if (version > SCHEMA_VERSION) {
    throw new Error(`journal ${file}: schema version ${version} is newer than this build knows (${SCHEMA_VERSION}); run a newer amk-bridge`);
  }
  for (let v = version; v < SCHEMA_VERSION; v++) {
    // IMMEDIATE: two processes opening a fresh file at once must not both migrate it.
    db.transaction(() => {
      const now = Number(db.pragma('user_version', { simple: true }));
      if (now !== v) return;
      db.exec(MIGRATIONS[v] as string);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}
