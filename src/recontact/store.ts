// Re-contact sightings: when a caller number was seen, as a keyed hash (HMAC-SHA256 of the
// E.164 number) with the time and the expiry. Its own small SQLite file, apart from the journal.
//
// Privacy at rest: the number itself is never stored, only the hash, the id of the key it was
// hashed with, and the times. Without the key a hash cannot be turned back into a number (an
// unkeyed hash of the few hundred million possible numbers could be reversed by trying them
// all). Rows expire after the window and are deleted, with `secure_delete` so freed pages are
// overwritten. A sighting hashed with a key that is no longer configured can never match again
// and is deleted too.

import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { RecontactKey } from './keys.js';

export interface RecontactStoreOptions {
  /** How long a sighting counts (the re-contact window), in ms. */
  windowMs: number;
  keys: { current: RecontactKey; previous?: RecontactKey | null };
}

/** Earlier contacts are counted up to this many ("100 or more"). */
export const RECONTACT_COUNT_CAP = 100;

export interface Recontact {
  /** Earlier contacts from the same number within the window, at most RECONTACT_COUNT_CAP. */
  count: number;
  /** The latest of them (epoch ms). */
  lastAt: number;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS sightings (
    hash       TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    seen_at    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  -- Covering: the lookup counts a number's sightings from the index alone, so a number that
  -- calls hundreds of times a day (a switchboard, a repeated caller) stays cheap per call.
  DROP INDEX IF EXISTS sightings_hash;
  CREATE INDEX IF NOT EXISTS sightings_hash_seen ON sightings (hash, seen_at, expires_at);
  CREATE INDEX IF NOT EXISTS sightings_expires_at ON sightings (expires_at);
`;

function hmac(key: Buffer, e164: string): string {
  return createHmac('sha256', key).update(e164, 'utf8').digest('hex');
}

export class RecontactStore {
  private readonly db: Database.Database;
  private readonly windowMs: number;
  private readonly current: RecontactKey;
  private readonly previous: RecontactKey | null;
  private readonly lookup: Database.Statement<[{ cur: string; prev: string; now: number; since: number }], { count: number; lastAt: number | null }>;
  private readonly insert: Database.Statement<[string, string, number, number]>;
  private readonly deleteExpired: Database.Statement<[number]>;
  private readonly deleteUnknownKeys: Database.Statement<[string, string]>;
  private readonly seenTx: (hashes: [string, string], now: number) => Recontact | null;

  private constructor(db: Database.Database, opts: RecontactStoreOptions) {
    this.db = db;
    this.windowMs = opts.windowMs;
    this.current = opts.keys.current;
    this.previous = opts.keys.previous ?? null;
    // A sighting counts while it has not expired and is within the window as configured now
    // (a shortened window applies at once, also to rows written under the longer one).
    // The count stops at RECONTACT_COUNT_CAP: a number shared by many callers (a switchboard, a
    // trunk without caller ids) would otherwise cost a scan of all its sightings on every call.
    // One index range per key, newest first, each stopping at the cap (the sum is capped below).
    const latest = (hash: string, extra = '') => `SELECT * FROM (SELECT seen_at FROM sightings
      WHERE hash = ${hash}${extra} AND expires_at > @now AND seen_at > @since ORDER BY seen_at DESC LIMIT ${RECONTACT_COUNT_CAP})`;
    this.lookup = db.prepare(
      `SELECT COUNT(*) AS count, MAX(seen_at) AS lastAt FROM (${latest('@cur')} UNION ALL ${latest('@prev', ' AND @prev <> @cur')})`,
    );
    this.insert = db.prepare('INSERT INTO sightings (hash, key_id, seen_at, expires_at) VALUES (?, ?, ?, ?)');
    this.deleteExpired = db.prepare('DELETE FROM sightings WHERE expires_at <= ?');
    this.deleteUnknownKeys = db.prepare('DELETE FROM sightings WHERE key_id NOT IN (?, ?)');
    this.seenTx = db.transaction((hashes: [string, string], now: number): Recontact | null => {
      // Expired sightings go as soon as anything happens, periodic `prune` or not.
      this.deleteExpired.run(now);
      const row = this.lookup.get({ cur: hashes[0], prev: hashes[1], now, since: now - this.windowMs });
      this.insert.run(hashes[0], this.current.id, now, now + this.windowMs);
      if (!row || row.count === 0 || row.lastAt === null) return null;
      return { count: Math.min(row.count, RECONTACT_COUNT_CAP), lastAt: row.lastAt };
    });
  }

  /**
   * Opens (creating when missing) the store's file. Sightings hashed with a key that is neither
   * the current nor the previous one are deleted: they can never match again.
   */
  static open(path: string, opts: RecontactStoreOptions): RecontactStore {
    if (!(Number.isFinite(opts.windowMs) && opts.windowMs > 0)) throw new Error(`re-contact store: window must be > 0 ms (got ${opts.windowMs})`);
    const file = resolve(path);
    mkdirSync(dirname(file), { recursive: true });
    const db = new Database(file, { timeout: 5000 });
    try {
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (String(mode).toLowerCase() !== 'wal') throw new Error(`re-contact store ${file}: cannot use WAL mode (got "${String(mode)}")`);
      // NORMAL: a power cut may lose the last sightings, which only means a missed flag.
      db.pragma('synchronous = NORMAL');
      // Deleted sightings are overwritten with zeros, not left in free pages.
      db.pragma('secure_delete = ON');
      db.exec(SCHEMA);
      const store = new RecontactStore(db, opts);
      store.pruneUnknownKeys();
      return store;
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /**
   * The earlier sightings of this number within the window (null when none, or when the number
   * is null: withheld and anonymous numbers never match and are not recorded), then records this
   * one, hashed with the current key. Call once per call.
   */
  seen(e164: string | null, now: number): Recontact | null {
    if (e164 === null || e164.length === 0) return null;
    const cur = hmac(this.current.key, e164);
    // Without a previous key the current hash is looked up twice; same result, one statement.
    const prev = this.previous ? hmac(this.previous.key, e164) : cur;
    return this.seenTx([cur, prev], now);
  }

  /** Deletes expired sightings and those hashed with a key no longer configured; returns how many. */
  prune(now: number): number {
    return this.db.transaction(() => this.deleteExpired.run(now).changes + this.pruneUnknownKeys())();
  }

  private pruneUnknownKeys(): number {
    return this.deleteUnknownKeys.run(this.current.id, this.previous?.id ?? this.current.id).changes;
  }

  /** Rows held (expired ones included until pruned): for diagnostics and tests. */
  size(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM sightings').get() as { n: number }).n;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
