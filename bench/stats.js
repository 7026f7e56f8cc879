#!/usr/bin/env node
// Statistics benchmark: `npm run build && node bench/stats.js`.
//
// Fills a temporary journal with 1 million rows (250k calls, 250k requests, 500k attempts over
// 30 days, five regions; one transaction, prepared statements) and times `Journal.stats`
// over the 30 days, by day, by hour and by week: three runs each; the best is the figure, the
// median and every run are shown too (the machine may be shared). Target: < 1000 ms each.
// Then checks once (by day, untimed) that the result is the reference's, computeStats over
// statsRows (src/journal/stats-query.ts); STATS_BENCH_VERIFY=0 skips that (it takes seconds).
// Env: STATS_BENCH_CALLS=250000. Results also go to bench/stats-results.json.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { isDeepStrictEqual } from 'node:util';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const { Journal } = await import(join(ROOT, 'dist/journal/journal.js'));
const { openDatabase } = await import(join(ROOT, 'dist/journal/db.js'));
const { referenceStats } = await import(join(ROOT, 'dist/journal/stats-query.js'));

const N = Number(process.env.STATS_BENCH_CALLS ?? 250_000);
const TARGET_MS = 1000;
const DAY = 86_400_000;
const FROM = Date.UTC(2025, 0, 1);
const TO = FROM + 30 * DAY;
const REGIONS = ['hovedstaden', 'sjaelland', 'syddanmark', 'midtjylland', 'nordjylland'];
const OUTCOMES = ['busy', 'no-answer', 'rejected', 'unreachable', 'cancelled'];

// Deterministic pseudo-random numbers (mulberry32).
let seed = 0x5eed;
const rnd = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

const dir = mkdtempSync(join(tmpdir(), 'amk-stats-bench-'));
// STATS_BENCH_FILE: reuse (or keep) a filled journal there instead of a temporary one.
const keep = process.env.STATS_BENCH_FILE;
const file = keep ?? join(dir, 'journal.sqlite');
try {
  const fillStart = performance.now();
  const db = openDatabase(file);
  const filled = db.prepare('SELECT COUNT(*) AS n FROM calls').get().n > 0;
  db.pragma('synchronous = OFF');
  const call = db.prepare('INSERT INTO calls (call_id, started_at, trunk, region, recontact) VALUES (?, ?, ?, ?, ?)');
  const req = db.prepare(`INSERT INTO requests (request_id, call_id, incident_id, emergency_call_id, node, desk, region, trigger,
      started_at, test, policy, context, outcome, outcome_stage, outcome_region, outcome_at)
    VALUES (?, ?, ?, ?, 'node-1', 'desk-1', ?, 'dtmf', ?, 0, '{}', NULL, ?, ?, ?, ?)`);
  const att = db.prepare(`INSERT INTO attempts (attempt_id, request_id, n, stage, region, target, started_at, outcome, status, ended_at, answered_at)
    VALUES (?, ?, ?, ?, ?, 'sip:amk@10.0.0.2', ?, ?, ?, ?, ?)`);
  const msg = db.prepare(`INSERT INTO outbox (key, request_id, type, region, endpoints, payload, state, next_at, escalate_at, created_at, test)
    VALUES (?, ?, 'no-contact', ?, '[]', NULL, 'delivered', ?, ?, ?, 0)`);
  if (!filled) db.transaction(() => {
    for (let i = 0; i < N; i++) {
      const region = REGIONS[i % REGIONS.length];
      const t = FROM + Math.floor(rnd() * 30 * DAY);
      const callId = `call-${i}`;
      call.run(callId, t, 'trunk-1', region, rnd() < 0.05 ? 1 : 0);
      const rid = `req-${i}`;
      const t0 = t + 20_000;
      // Two attempts each: the first fails; the second is answered (home, buffer or overflow) or fails too.
      const r = rnd();
      const answered = r < 0.97;
      const stage = r < 0.8 ? 'home' : r < 0.9 ? 'buffer' : 'overflow';
      const region2 = stage === 'overflow' ? REGIONS[(i + 1) % REGIONS.length] : region;
      const ans = t0 + 8000 + Math.floor(rnd() * 12_000);
      req.run(rid, callId, `urn:i:${i}`, `urn:e:${i}`, region, t0, answered ? 'contact' : 'no-contact', answered ? stage : null, answered ? region2 : null, answered ? ans : t0 + 30_000);
      att.run(`${rid}-1`, rid, 1, 'home', region, t0 + 50, OUTCOMES[i % OUTCOMES.length], 486, t0 + 6000, null);
      att.run(`${rid}-2`, rid, 2, stage, region2, t0 + 6100, answered ? 'answered' : 'no-answer', answered ? 200 : 408, answered ? ans : t0 + 30_000, answered ? ans : null);
      if (!answered) msg.run(`${rid}:no-contact`, rid, region, t0 + 30_000, t0 + 90_000, t0 + 30_000);
    }
  })();
  db.close();
  const fillMs = performance.now() - fillStart;
  if (process.env.STATS_BENCH_FILL_ONLY) {
    rmSync(dir, { recursive: true, force: true }); // process.exit skips the finally below
    process.exit(0);
  }

  const journal = Journal.open(file, { create: false });
  const results = {
    rows: N * 4,
    calls: N,
    requests: N,
    attempts: 2 * N,
    fillMs: Math.round(fillMs),
    targetMs: TARGET_MS,
    machine: { cpus: cpus().length, node: process.version, loadAvgAtStart: loadavg()[0] },
    runs: {},
    sameAsReference: null,
  };
  console.log(`# ${cpus().length} CPUs, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  let ok = true;
  for (const by of ['day', 'hour', 'week']) {
    const times = [];
    let stats;
    for (let k = 0; k < 3; k++) {
      const t = performance.now();
      stats = journal.stats({ from: FROM, to: TO, by, now: TO + DAY });
      times.push(performance.now() - t);
    }
    const best = Math.min(...times);
    const median = [...times].sort((a, b) => a - b)[1];
    const pass = best < TARGET_MS;
    ok &&= pass;
    results.runs[by] = { ms: Math.round(best), medianMs: Math.round(median), allMs: times.map(Math.round), buckets: stats.buckets.length, requests: stats.totals.total.requests, pass };
    console.log(
      `stats over ${(N * 4).toLocaleString('en')} journal rows, 30 days by ${by}: ${best.toFixed(0)} ms (${pass ? 'PASS' : 'FAIL'} < ${TARGET_MS} ms; median ${median.toFixed(0)} ms; runs ${times.map((x) => x.toFixed(0)).join(', ')} ms)`,
    );
  }
  if (process.env.STATS_BENCH_VERIFY !== '0') {
    const opts = { from: FROM, to: TO, by: 'day', now: TO + DAY };
    const db = openDatabase(file, { create: false });
    const same = isDeepStrictEqual(journal.stats(opts), referenceStats(db, opts));
    db.close();
    results.sameAsReference = same;
    ok &&= same;
    console.log(`by day, the same as the reference (computeStats over statsRows): ${same ? 'yes' : 'NO'}`);
  }
  journal.close();
  writeFileSync(join(HERE, 'stats-results.json'), `${JSON.stringify(results, null, 2)}\n`);
  if (!ok) process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
