// Statistics over the journal's SQLite file, by the counting method of ../domain/statistics.ts.
//
// `queryStats` returns exactly what the reference, `computeStats(statsRows(...))`, returns (the
// tests compare the two, JSON included, on random journals) without handing JavaScript an
// object or array per journal row:
// - calls: grouped by region in SQLite, which names the regions and lists each call's bucket
//   and re-contact flag as one string of integers per region;
// - requests: one pass over the period's requests, each joined to its attempts through the
//   (request_id, n) index and folded per request in the scan's own order (no sort) into a short
//   text record (REQUEST_RECORD below); one string holds the records of ROWID_CHUNK rowids, and
//   JavaScript adds them up per bucket and region;
// - no-contact messages: counted per bucket and region in SQLite, from the outbox's few rows;
// - percentiles: nearest rank, by selection, of each cell's, bucket's, region's and the
//   period's values.
// Tables are read by rowid between the period's first and last rowid (see rowidSpan).
// Measured over bench/stats.js's million rows: GROUP BY bucket and region in SQLite sorts every
// input row (0.5-1 µs each), which alone took longer than the 1 s target, and a JavaScript
// array per row (`.raw()`) costs some 2 µs; this way takes 0.6-0.8 s on the 2-core test machine.

import type { SqliteDb } from './db.js';
import {
  BUCKET_MS,
  DEFAULT_RUNNING_GRACE_MS,
  bucketStart,
  computeStats,
  type AttemptStatRow,
  type CallStatRow,
  type Percentiles,
  type RegionStats,
  type RequestStatRow,
  type Stats,
  type StatsBucket,
  type StatsOptions,
  type StatsRows,
} from '../domain/statistics.js';

/** A request, its attempts and its messages all fall within this time after the request's start. */
export const STATS_SLACK_MS = 6 * 3_600_000;

/** Attempt outcomes with a one-digit code in the request records; others travel by name. */
const OUTCOMES = ['answered', 'busy', 'no-answer', 'rejected', 'unreachable', 'cancelled', 'citizen-hangup', 'open'] as const;
const N_OUTCOMES = OUTCOMES.length;
/** Their codes in the order of their names. */
const OUTCOMES_SORTED = OUTCOMES.map((_, i) => i).sort((x, y) => ((OUTCOMES[x] as string) < (OUTCOMES[y] as string) ? -1 : 1));
const OPEN = OUTCOMES.indexOf('open');

/** Request classes in the records, as computeStats tells requests apart. */
const CLASS_OTHER = 0;
const CLASS_CONTACT = 1; // outcome 'contact' with its time: the value is the time to contact
const CLASS_ABORTED = 2;
const CLASS_OPEN = 3; // no outcome yet: the value is started_at (lost or running is decided here)

/** Stage codes of an answered attempt. */
const STAGE_BUFFER = 1;
const STAGE_OVERFLOW = 2;

/** Requests (by rowid) per statement: bounds the size of one string of records. */
const ROWID_CHUNK = 1 << 18;

/**
 * The statistics of `opts` over the journal: the same as
 * `computeStats(statsRows(db, from, to, region), opts)`, read in one transaction.
 */
export function queryStats(db: SqliteDb, opts: StatsOptions): Stats {
  const { from, to } = opts;
  if (!(Number.isFinite(from) && Number.isFinite(to) && to > from)) throw new Error('the period needs from < to');
  return db.transaction(() => new StatsQuery(db, opts).run())();
}

const COUNTERS = ['callsSeen', 'recontacts', 'requests', 'noContact', 'aborts', 'lost', 'running', 'attempt1', 'attempt2', 'buffer', 'overflow', 'otherAttempts'] as const;
type Counter = (typeof COUNTERS)[number];

/** Counts of a level (cells, buckets, regions or the period), index by index. */
class Counts {
  readonly n: Record<Counter, Float64Array>;
  /** Attempts by outcome code: [i * N_OUTCOMES + code]. */
  readonly outcomes: Float64Array;
  /** `home→overflow` pairs. */
  readonly pairs = new Map<number, Record<string, number>>();
  /** Attempt outcomes outside OUTCOMES, by name. */
  readonly others = new Map<number, Record<string, number>>();
  /** Percentiles by index (none without values). */
  readonly answerMs: (Percentiles | undefined)[];
  readonly contactMs: (Percentiles | undefined)[];

  constructor(readonly count: number) {
    this.n = {} as Record<Counter, Float64Array>;
    for (const k of COUNTERS) this.n[k] = new Float64Array(count);
    this.outcomes = new Float64Array(count * N_OUTCOMES);
    this.answerMs = new Array<Percentiles | undefined>(count);
    this.contactMs = new Array<Percentiles | undefined>(count);
  }

  other(i: number): Record<string, number> {
    let rec = this.others.get(i);
    if (!rec) this.others.set(i, (rec = {}));
    return rec;
  }

  /** RegionStats of index i, shaped exactly as computeStats shapes them. */
  stats(i: number): RegionStats {
    const k = this.n;
    // By outcome, keys in sorted order (as computeStats' sortedRecord).
    let byOutcome: Record<string, number> = {};
    let attempts = k.otherAttempts[i] as number;
    for (const o of OUTCOMES_SORTED) {
      const count = this.outcomes[i * N_OUTCOMES + o] as number;
      if (count > 0) byOutcome[OUTCOMES[o] as string] = count;
      attempts += count;
    }
    const others = this.others.get(i);
    if (others) {
      for (const name of Object.keys(others)) byOutcome[name] = others[name] as number;
      byOutcome = sortedRecord(byOutcome);
    }
    const pairs = this.pairs.get(i);
    const callsSeen = k.callsSeen[i] as number;
    const requests = k.requests[i] as number;
    const noContact = k.noContact[i] as number;
    return {
      callsSeen,
      requests,
      attempts: { total: attempts, byOutcome },
      answered: { attempt1: k.attempt1[i] as number, attempt2: k.attempt2[i] as number, buffer: k.buffer[i] as number, overflow: k.overflow[i] as number },
      noContactMessages: noContact,
      noContactShareOfCalls: callsSeen === 0 ? null : noContact / callsSeen,
      noContactShareOfRequests: requests === 0 ? null : noContact / requests,
      overflowContacts: pairs ? sortedRecord(pairs) : {},
      answerTimeMs: this.answerMs[i] ?? { median: null, p90: null },
      timeToContactMs: this.contactMs[i] ?? { median: null, p90: null },
      aborts: k.aborts[i] as number,
      lostRequests: k.lost[i] as number,
      running: k.running[i] as number,
      recontacts: k.recontacts[i] as number,
    };
  }
}

/** Everything counted per cell: bucket b and region r (index in `names`) are cell b * R + r. */
class Cells extends Counts {
  /** Attempt outcomes outside OUTCOMES, per attempt in read order (rare). */
  readonly otherOutcomes = new Map<number, string[]>();
  readonly answerValues = new CellValues();
  readonly contactValues = new CellValues();
}

/** The sums of the cells' counts by `group` (bucket, region or all). */
class Totals extends Counts {
  constructor(cells: Cells, count: number, group: (cell: number) => number) {
    super(count);
    const to = new Int32Array(cells.count);
    for (let i = 0; i < cells.count; i++) to[i] = group(i);
    for (const k of COUNTERS) {
      const from = cells.n[k];
      const sum = this.n[k];
      for (let i = 0; i < cells.count; i++) sum[to[i] as number]! += from[i] as number;
    }
    for (let i = 0; i < cells.count; i++) {
      for (let o = 0; o < N_OUTCOMES; o++) this.outcomes[(to[i] as number) * N_OUTCOMES + o]! += cells.outcomes[i * N_OUTCOMES + o] as number;
    }
    for (const [cell, pairs] of cells.pairs) {
      const g = to[cell] as number;
      let sum = this.pairs.get(g);
      if (!sum) this.pairs.set(g, (sum = {}));
      for (const key of Object.keys(pairs)) sum[key] = (sum[key] ?? 0) + (pairs[key] as number);
    }
  }
}

/** Values, each with its cell. */
class CellValues {
  cells = new Int32Array(1024);
  values = new Float64Array(1024);
  length = 0;
  nan = false;

  push(cell: number, v: number): void {
    if (this.length === this.values.length) {
      const cells = new Int32Array(this.length * 2);
      cells.set(this.cells);
      this.cells = cells;
      const values = new Float64Array(this.length * 2);
      values.set(this.values);
      this.values = values;
    }
    this.cells[this.length] = cell;
    this.values[this.length++] = v;
    if (v !== v) this.nan = true;
  }
}

class StatsQuery {
  private readonly from: number;
  private readonly to: number;
  private readonly only: string | undefined;
  private readonly lostBefore: number;
  private readonly size: number;
  private readonly first: number;
  private readonly nBuckets: number;
  private readonly params: Record<string, unknown>;
  private readonly wide = new Map<string, boolean>();
  /** Region names; a region's index here is its index in the cells. */
  private names: string[] = [];
  private cells = new Cells(0);

  constructor(
    private readonly db: SqliteDb,
    private readonly opts: StatsOptions,
  ) {
    this.from = opts.from;
    this.to = opts.to;
    this.only = opts.region;
    const now = opts.now ?? Date.now();
    this.lostBefore = now - (opts.runningGraceMs ?? DEFAULT_RUNNING_GRACE_MS);
    this.size = BUCKET_MS[opts.by];
    this.first = bucketStart(this.from, opts.by);
    this.nBuckets = Math.ceil((this.to - this.first) / this.size);
    // JavaScript numbers bind as REAL, so the bucket arithmetic in SQL is computeStats' own.
    this.params = { from: this.from, to: this.to, slackTo: this.to + STATS_SLACK_MS, first: this.first, size: this.size };
    if (this.only !== undefined) this.params.region = this.only;
  }

  run(): Stats {
    const calls = this.calls();
    if (this.only !== undefined) this.names = [this.only];
    else {
      this.names = [...calls.keys()];
      if (this.names.length === 0) this.names = this.requestRegions();
    }
    // A request's home region missing from `names` (rare) restarts the fold with it added.
    for (let unknown = this.requests(); unknown.length > 0; unknown = this.requests()) {
      // A name SQLite does not find equal to itself (a BLOB, say): the reference copes.
      if (unknown.some((name) => this.names.includes(name))) return referenceStats(this.db, this.opts);
      this.names.push(...unknown);
    }
    const R = this.names.length;
    const { callsSeen, recontacts } = this.cells.n;
    for (const [name, list] of calls) {
      // `bucket * 2 + recontact`, comma-separated.
      const r = this.names.indexOf(name);
      for (let i = 0, code = 0; i <= list.length; i++) {
        const ch = list.charCodeAt(i);
        if (ch >= ZERO) code = code * 10 + (ch - ZERO);
        else {
          const cell = (code >> 1) * R + r;
          callsSeen[cell]!++;
          if (code & 1) recontacts[cell]!++;
          code = 0;
        }
      }
    }
    this.noContact();
    return this.result();
  }

  // ---- SQL ----------------------------------------------------------------------------------

  /** As statsRows decides (for its scan order): does the period cover most of the table's span? */
  private isWide(table: 'calls' | 'requests' | 'attempts'): boolean {
    let w = this.wide.get(table);
    if (w === undefined) this.wide.set(table, (w = wideScan(this.db, table, this.from, this.to)));
    return w;
  }

  /**
   * The rowids [lo, hi] between which lie all of the table's rows started in the period (null
   * if none). The rows are read by rowid within it, in pages' order: rows are written roughly in
   * time order, so a short period's span is short, and the time index would cost a random page
   * per row if they were not.
   */
  private rowidSpan(table: 'calls' | 'requests'): [number, number] | null {
    const wide = this.isWide(table);
    const span = wide
      ? `SELECT (SELECT MIN(rowid) FROM ${table}), (SELECT MAX(rowid) FROM ${table})`
      : `SELECT MIN(rowid), MAX(rowid) FROM ${table} INDEXED BY ${table}_started_at WHERE started_at >= @from AND started_at < @to`;
    const [lo, hi] = this.db.prepare(span).raw().get(wide ? {} : { from: this.from, to: this.to }) as [number | null, number | null];
    return lo === null || hi === null ? null : [lo, hi];
  }

  private get byRegion(): string {
    return this.only === undefined ? '' : ' AND r.region = @region';
  }

  /** SQL for the index in `names` of a region column (NULL for another name). */
  private regionIndex(column: string, params: Record<string, unknown>, asText = false): string {
    if (this.names.length === 0) return 'NULL';
    const whens = this.names.map((name, i) => {
      params[`r${i}`] = name;
      return `WHEN @r${i} THEN ${asText ? `'${i}'` : i}`;
    });
    return `CASE ${column} ${whens.join(' ')} END`;
  }

  /** SQL for the cell of a request (`r`) by its start and home region. */
  private cellOf(params: Record<string, unknown>): string {
    const bucket = 'CAST((r.started_at - @first) / @size AS INTEGER)';
    return this.only !== undefined ? bucket : `(${bucket} * ${this.names.length} + ${this.regionIndex('r.region', params)})`;
  }

  /**
   * The period's calls by region: per region, `bucket * 2 + recontact` of each call as a
   * comma-separated list. One pass, and the region names come with it.
   */
  private calls(): Map<string, string> {
    const span = this.rowidSpan('calls');
    if (span === null) return new Map();
    const rows = this.db
      .prepare(
        // recontact as JavaScript truthiness, as computeStats tests it.
        `SELECT r.region, group_concat(CAST((r.started_at - @first) / @size AS INTEGER) * 2 + (r.recontact NOT IN (0, '')))
        FROM calls r NOT INDEXED
        WHERE r.rowid >= @lo AND r.rowid <= @hi AND r.started_at >= @from AND r.started_at < @to${this.byRegion}
        GROUP BY r.region`,
      )
      .raw()
      .all({ ...this.params, lo: span[0], hi: span[1] }) as [string, string][];
    return new Map(rows);
  }

  /** Home regions of the period's requests (when no call gave names). */
  private requestRegions(): string[] {
    const span = this.rowidSpan('requests');
    if (span === null) return [];
    return this.db
      .prepare(
        `SELECT DISTINCT r.region FROM requests r NOT INDEXED
        WHERE r.rowid >= @lo AND r.rowid <= @hi AND r.started_at >= @from AND r.started_at < @to AND r.test = 0`,
      )
      .pluck()
      .all({ ...this.params, lo: span[0], hi: span[1] }) as string[];
  }

  /** Requests with a no-contact message: few rows, counted per cell by SQLite. */
  private noContact(): void {
    const params = { ...this.params };
    const rows = this.db
      .prepare(
        `SELECT ${this.cellOf(params)} AS cell, COUNT(*) FROM requests r
        WHERE r.request_id IN (SELECT o.request_id FROM outbox o WHERE o.type = 'no-contact' AND o.created_at >= @from AND o.created_at < @slackTo)
          AND r.started_at >= @from AND r.started_at < @to AND r.test = 0${this.byRegion}
        GROUP BY cell`,
      )
      .raw()
      .all(params) as [number, number][];
    for (const [cell, n] of rows) this.cells.n.noContact[cell] = n;
  }

  /**
   * Folds every request of the period with its attempts into `cells` (afresh). Returns the home
   * regions not in `names`, if any (and then the fold is incomplete).
   *
   * REQUEST_RECORD, one per request: `head,value,attempts;`
   * - head: cell * 4 + class (CLASS_*), or `x` + hex of a home region not in `names`;
   * - value: see CLASS_*, else empty;
   * - attempts: `/`-separated, each the index of its outcome in OUTCOMES, or `[` hex of the
   *   name `]`; an answered one continues `:n:stage:region:answerMs:sinceMs[:tieA]:tieB` with
   *   region only for the overflow stage (an index in `names`, or `x` + hex of the name),
   *   sinceMs (answer − request start) only without a contact outcome and tieA, tieB the order in
   *   which statsRows reads attempts: rowid on a wide scan, else started_at then rowid.
   * Separators are `,;:/` only: names travel as hex, numbers as SQLite's exact text.
   */
  private requests(): string[] {
    this.cells = new Cells(this.nBuckets * this.names.length);
    const params = { ...this.params };
    const contact = `r.outcome = 'contact' AND r.outcome_at IS NOT NULL`;
    const klass = `CASE WHEN ${contact} THEN ${CLASS_CONTACT} WHEN r.outcome = 'aborted' THEN ${CLASS_ABORTED} WHEN r.outcome IS NULL THEN ${CLASS_OPEN} ELSE ${CLASS_OTHER} END`;
    const head = `COALESCE(${this.cellOf(params)} * 4 + ${klass}, 'x' || hex(r.region))`;
    const value = `COALESCE(CASE WHEN ${contact} THEN r.outcome_at - r.started_at WHEN r.outcome IS NULL THEN r.started_at END, '')`;
    const outcome = `CASE a.outcome ${OUTCOMES.map((o, i) => `WHEN '${o}' THEN '${i}'`).join(' ')}
      ELSE CASE WHEN a.outcome IS NULL THEN '${OPEN}' ELSE '[' || hex(a.outcome) || ']' END END`;
    const stage = `CASE a.stage WHEN 'overflow' THEN ${STAGE_OVERFLOW} WHEN 'buffer' THEN ${STAGE_BUFFER} ELSE 0 END`;
    const overflowRegion = `CASE WHEN a.stage = 'overflow' THEN COALESCE(${this.regionIndex('a.region', params, true)}, 'x' || hex(a.region)) ELSE '' END`;
    const since = `CASE WHEN ${contact} THEN '' ELSE a.answered_at - r.started_at END`;
    const tie = this.isWide('attempts') ? 'a.rowid' : `a.started_at || ':' || a.rowid`;
    // `||` rather than concat() or printf(): measured the cheapest per row.
    const attempt = `CASE WHEN a.outcome = 'answered' AND a.answered_at IS NOT NULL
      THEN '${OUTCOMES.indexOf('answered')}:' || a.n || ':' || ${stage} || ':' || ${overflowRegion} || ':' || (a.answered_at - a.started_at) || ':' || ${since} || ':' || ${tie}
      ELSE ${outcome} END`;
    const records = `
      SELECT ${head} || ',' || ${value} || ',' || COALESCE(group_concat(CASE WHEN a.rowid IS NOT NULL THEN ${attempt} END, '/'), '') || ';' AS rec
      FROM requests r NOT INDEXED
      LEFT JOIN attempts a ON a.request_id = r.request_id AND a.started_at >= @from AND a.started_at < @slackTo
      WHERE r.rowid >= @lo AND r.rowid < @hi AND r.started_at >= @from AND r.started_at < @to AND r.test = 0${this.byRegion}
      GROUP BY r.rowid`; // the scan's own order: no sort
    const unknown = new Set<string>();
    const span = this.rowidSpan('requests');
    if (span === null) return [];
    // A chunk of rowids at a time, skipping gaps, bounds the size of one string.
    const chunk = this.db.prepare(`SELECT group_concat(rec, '') FROM (${records})`).pluck();
    const next = this.db.prepare(`SELECT MIN(rowid) FROM requests WHERE rowid >= ? AND rowid <= ?`).pluck();
    for (let lo: number | null = span[0]; lo !== null; lo = next.get(lo + ROWID_CHUNK, span[1]) as number | null) {
      const text = chunk.get({ ...params, lo, hi: Math.min(lo + ROWID_CHUNK, span[1] + 1) }) as string | null;
      if (text !== null) this.fold(text, !this.isWide('attempts'), unknown);
    }
    return [...unknown];
  }

  /** Folds request records (REQUEST_RECORD) into `cells`; home regions not in `names` go to `unknown`. */
  private fold(text: string, tieA: boolean, unknown: Set<string>): void {
    const c = this.cells;
    const n = c.n;
    const R = this.names.length;
    const lostBefore = this.lostBefore;
    const s = new Reader(text);
    while (s.p < text.length) {
      if (text.charCodeAt(s.p) === X) {
        unknown.add(fromHex(s.text().slice(1)));
        s.p = text.indexOf(';', s.p) + 1;
        continue;
      }
      const head = s.num();
      const cell = head >> 2;
      const klass = head & 3;
      const value = s.num();
      n.requests[cell]!++;
      if (klass === CLASS_CONTACT) c.contactValues.push(cell, value);
      else if (klass === CLASS_ABORTED) n.aborts[cell]!++;
      else if (klass === CLASS_OPEN) {
        if (value < lostBefore) n.lost[cell]!++;
        else n.running[cell]!++;
      }
      if (text.charCodeAt(s.p) === SEMICOLON) {
        s.p++;
        continue;
      }
      // Attempts; as computeStats, the first answer is the lowest n, then the first read.
      const base = cell * N_OUTCOMES;
      let bestN = Infinity;
      let bestA = 0;
      let bestB = 0;
      let bestStage = -1;
      let bestRegion = '';
      let bestSince = 0;
      do {
        const ch = text.charCodeAt(s.p);
        if (ch === OPEN_BRACKET) {
          const close = text.indexOf(']', s.p);
          n.otherAttempts[cell]!++;
          let list = c.otherOutcomes.get(cell);
          if (!list) c.otherOutcomes.set(cell, (list = []));
          list.push(fromHex(text.slice(s.p + 1, close)));
          s.p = close + 1;
          s.sep = text.charCodeAt(s.p++);
          continue;
        }
        c.outcomes[base + ch - ZERO]!++;
        s.sep = text.charCodeAt(++s.p);
        s.p++;
        if (s.sep !== COLON) continue;
        const an = s.num();
        const stage = s.num();
        const region = s.text();
        c.answerValues.push(cell, s.num());
        const since = s.num();
        const tA = tieA ? s.num() : 0;
        const tB = s.num();
        if (an < bestN || (an === bestN && bestStage >= 0 && (tA < bestA || (tA === bestA && tB < bestB)))) {
          bestN = an;
          bestA = tA;
          bestB = tB;
          bestStage = stage;
          bestRegion = region;
          bestSince = since;
        }
      } while (s.sep !== SEMICOLON);
      if (bestStage < 0) continue;
      if (bestStage === STAGE_OVERFLOW) {
        n.overflow[cell]!++;
        const to = bestRegion.charCodeAt(0) === X ? fromHex(bestRegion.slice(1)) : (this.names[Number(bestRegion)] as string);
        const key = `${this.names[cell % R] as string}→${to}`;
        let pairs = c.pairs.get(cell);
        if (!pairs) c.pairs.set(cell, (pairs = {}));
        pairs[key] = (pairs[key] ?? 0) + 1;
      } else if (bestStage === STAGE_BUFFER) n.buffer[cell]!++;
      else if (bestN <= 1) n.attempt1[cell]!++;
      else n.attempt2[cell]!++;
      // A late contact (after a no-contact outcome, say) counts from the request's start to the answer.
      if (klass !== CLASS_CONTACT) c.contactValues.push(cell, bestSince);
    }
  }

  // ---- result --------------------------------------------------------------------------------

  private result(): Stats {
    const R = this.names.length;
    const nB = this.nBuckets;
    const c = this.cells;
    // The period's levels: each cell, each bucket (all regions), each region (all buckets), all.
    const bucketOf = (cell: number): number => Math.floor(cell / R);
    const regionOf = (cell: number): number => cell % R;
    const buckets = new Totals(c, nB, bucketOf);
    const regions = new Totals(c, R, regionOf);
    const total = new Totals(c, 1, () => 0);
    // Percentiles: each cell's and each region's values first (read; cells reordered in place),
    // then each bucket's and the period's (reordered in place).
    for (const [values, key] of [
      [c.answerValues, 'answerMs'],
      [c.contactValues, 'contactMs'],
    ] as const) {
      const sel = new Selection(values, c.count);
      for (let i = 0; i < c.count; i++) c[key][i] = sel.range(i, i + 1);
      for (let r = 0; r < R; r++) regions[key][r] = sel.gather(Array.from({ length: nB }, (_, b) => b * R + r));
      for (let b = 0; b < nB; b++) buckets[key][b] = sel.range(b * R, (b + 1) * R);
      total[key][0] = sel.range(0, c.count);
    }
    // Outcomes outside OUTCOMES: counted per attempt into every level, as computeStats does.
    for (const [cell, names] of c.otherOutcomes) {
      for (const name of names) {
        for (const rec of [c.other(cell), buckets.other(bucketOf(cell)), regions.other(regionOf(cell)), total.other(0)]) rec[name] = (rec[name] ?? 0) + 1;
      }
    }

    // Regions in computeStats' order.
    const order = Array.from({ length: R }, (_, r) => r).sort((x, y) => {
      const a = this.names[x] as string;
      const b = this.names[y] as string;
      return a < b ? -1 : a > b ? 1 : 0;
    });
    const out: StatsBucket[] = [];
    for (let b = 0; b < nB; b++) {
      const byRegion: Record<string, RegionStats> = {};
      for (const r of order) byRegion[this.names[r] as string] = c.stats(b * R + r);
      const start = this.first + b * this.size;
      out.push({ start: Math.max(start, this.from), end: Math.min(start + this.size, this.to), regions: byRegion, total: buckets.stats(b) });
    }
    const totalRegions: Record<string, RegionStats> = {};
    for (const r of order) totalRegions[this.names[r] as string] = regions.stats(r);
    return {
      period: { from: this.from, to: this.to, region: this.only ?? null, timeZone: 'UTC' },
      by: this.opts.by,
      buckets: out,
      totals: { regions: totalRegions, total: total.stats(0) },
    };
  }
}

const X = 120; // 'x'
const COMMA = 44;
const SEMICOLON = 59;
const COLON = 58;
const OPEN_BRACKET = 91;
const ZERO = 48;

function isSeparator(ch: number): boolean {
  return ch === COMMA || ch === SEMICOLON || ch === COLON || ch === 47 /* / */;
}

/** Reads the fields of request records. */
class Reader {
  p = 0;
  /** The separator after the last field read. */
  sep = 0;

  constructor(private readonly s: string) {}

  /** The number up to the next separator (consumed); NaN when the field is empty. */
  num(): number {
    const s = this.s;
    const start = this.p;
    let p = start;
    let ch = s.charCodeAt(p);
    const neg = ch === 45; // '-'
    if (neg) ch = s.charCodeAt(++p);
    let v = 0;
    while (ch >= 48 && ch <= 57) {
      v = v * 10 + (ch - 48);
      ch = s.charCodeAt(++p);
    }
    if (isSeparator(ch) && p - start <= 15) {
      this.p = p + 1;
      this.sep = ch;
      return p === start ? NaN : neg ? -v : v;
    }
    // Not a short integer: a REAL (17 significant digits, so exact), a long one or infinity.
    while (p < s.length && !isSeparator(ch)) ch = s.charCodeAt(++p);
    this.p = p + 1;
    this.sep = ch;
    const t = s.slice(start, p);
    return t === 'Inf' || t === '+Inf' ? Infinity : t === '-Inf' ? -Infinity : Number(t);
  }

  /** The text up to the next separator (consumed). */
  text(): string {
    const s = this.s;
    const start = this.p;
    let p = start;
    while (p < s.length && !isSeparator(s.charCodeAt(p))) p++;
    this.p = p + 1;
    this.sep = s.charCodeAt(p);
    return s.slice(start, p);
  }
}

function fromHex(hex: string): string {
  return Buffer.from(hex, 'hex').toString('utf8');
}

function sortedRecord(r: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(r).sort()) out[k] = r[k] as number;
  return out;
}


/** Nearest-rank median and p90 (as `percentile` in statistics.ts) of groups of cells' values. */
class Selection {
  /** The values by cell: cell i holds [offsets[i], offsets[i + 1]). */
  private readonly byCell: Float64Array;
  private readonly offsets: Int32Array;
  private readonly nan: boolean;

  constructor(v: CellValues, cells: number) {
    const offsets = new Int32Array(cells + 1);
    for (let i = 0; i < v.length; i++) offsets[(v.cells[i] as number) + 1]!++;
    for (let i = 0; i < cells; i++) offsets[i + 1]! += offsets[i] as number;
    const next = offsets.slice(0, cells);
    const byCell = new Float64Array(v.length);
    for (let i = 0; i < v.length; i++) byCell[next[v.cells[i] as number]!++] = v.values[i] as number;
    this.byCell = byCell;
    this.offsets = offsets;
    this.nan = v.nan;
  }

  /** Of the cells [from, to), whose values are reordered; none without values. */
  range(from: number, to: number): Percentiles | undefined {
    const a = this.byCell.subarray(this.offsets[from], this.offsets[to]);
    return a.length === 0 ? undefined : medianP90(a, this.nan);
  }

  /** Of the given cells (a copy of their values); none without values. */
  gather(cells: number[]): Percentiles | undefined {
    let n = 0;
    for (const i of cells) n += (this.offsets[i + 1] as number) - (this.offsets[i] as number);
    if (n === 0) return undefined;
    const a = new Float64Array(n);
    n = 0;
    for (const i of cells) {
      const part = this.byCell.subarray(this.offsets[i], this.offsets[i + 1]);
      a.set(part, n);
      n += part.length;
    }
    return medianP90(a, this.nan);
  }
}

/** Nearest-rank median and p90 of `a` (not empty), which is reordered. */
function medianP90(a: Float64Array, maybeNaN: boolean): Percentiles {
  const n = a.length;
  const k50 = Math.max(1, Math.ceil((50 / 100) * n)) - 1;
  const k90 = Math.max(1, Math.ceil((90 / 100) * n)) - 1;
  if (maybeNaN || n <= 32) {
    a.sort(); // NaN last, as in computeStats
  } else {
    select(a, 0, n - 1, k90);
    select(a, 0, k90, k50);
  }
  return { median: a[k50] as number, p90: a[k90] as number };
}

/** Moves the k-th smallest of a[lo..hi] (no NaN) to a[k], the smaller ones before it. */
function select(a: Float64Array, lo: number, hi: number, k: number): void {
  for (let rounds = 0; hi > lo; rounds++) {
    if (hi - lo < 16 || rounds > 64) {
      a.subarray(lo, hi + 1).sort();
      return;
    }
    // Median of three as the pivot, Hoare partition.
    const x = a[lo] as number;
    const y = a[lo + ((hi - lo) >> 1)] as number;
    const z = a[hi] as number;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while ((a[i] as number) < pivot) i++;
      while ((a[j] as number) > pivot) j--;
      if (i <= j) {
        const t = a[i] as number;
        a[i++] = a[j] as number;
        a[j--] = t;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return;
  }
}

/** As statsRows decides: does [from, to) cover most of the table's time span? */
function wideScan(db: SqliteDb, table: 'calls' | 'requests' | 'attempts', from: number, to: number): boolean {
  // Two subqueries: SQLite reads a lone MIN or MAX off the index's end, but both in one
  // SELECT from the whole index.
  const r = db.prepare(`SELECT (SELECT MIN(started_at) FROM ${table}) AS lo, (SELECT MAX(started_at) FROM ${table}) AS hi`).get() as {
    lo: number | null;
    hi: number | null;
  };
  if (r.lo === null || r.hi === null) return false;
  const covered = Math.min(to, r.hi + 1) - Math.max(from, r.lo);
  return covered > 0.25 * (r.hi + 1 - r.lo);
}

/** The same statistics the simple way, every row of the period through computeStats: the reference. */
export function referenceStats(db: SqliteDb, opts: StatsOptions): Stats {
  return computeStats(statsRows(db, opts.from, opts.to, opts.region), opts);
}

/**
 * Calls seen by their start, requests by their start (test requests left out) and those
 * requests' attempts, as lean positional rows. With `region`, only that home region.
 */
export function statsRows(db: SqliteDb, from: number, to: number, region?: string): StatsRows {
  // A period covering most of a table reads it straight through (sequential pages) rather
  // than by the time index (a random page per row); a short period uses the index.
  const scan = (table: 'calls' | 'requests' | 'attempts'): string => (wideScan(db, table, from, to) ? 'NOT INDEXED' : '');
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
