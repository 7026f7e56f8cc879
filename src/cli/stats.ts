// `amk-bridge stats`: statistics by the national counting method from the journal, as a table,
// JSON or CSV; a daily per-region export regions reconcile with their own counts; a chart (SVG,
// or PNG through rsvg-convert) for the monthly report. Reads the journal only, so it works while
// the daemon runs.

import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type Bucketing, type RegionStats, type Stats } from '../domain/statistics.js';
import type { CliIO } from './check-config.js';
import { JOURNAL_OPTIONS, JOURNAL_OPTIONS_HELP, openJournal, table } from './journal-cli.js';

export const STATS_USAGE = `Usage: amk-bridge stats [--from ISO] [--to ISO] [--region ID] [--by hour|day|week]
                        [--format table|json|csv] [--export DIR] [--chart FILE.svg|FILE.png]
                        [--config FILE | --journal FILE]

Statistics by the national counting method, per region and in total, over [--from, --to)
(default: the last 7 days), in hour, day or week buckets (UTC; weeks start Monday).
Test requests are left out. Lost requests (no outcome after 10 minutes) must be zero: any
other number is printed as an ALARM on stderr.

Options:
  --from ISO          Start of the period (ISO 8601, e.g. 2025-03-01 or 2025-03-01T00:00Z).
  --to ISO            End of the period, exclusive (default now).
  --region ID         Only this home region.
  --by UNIT           hour, day (default) or week.
  --format FORMAT     table (default), json or csv.
  --export DIR        Also write DIR/<region>/<YYYY-MM-DD>.csv for every region and day
                      of the period: columns date,region,item,value,description.
  --chart FILE        Also draw the daily no-contact share and answer-time median:
                      FILE.svg, or FILE.png (needs rsvg-convert, Debian librsvg2-bin).
${JOURNAL_OPTIONS_HELP}
  -h, --help          Show this help.

Exit status: 0 done; 1 journal or file error; 2 usage error.
`;

const DAY = 86_400_000;
const BYS = ['hour', 'day', 'week'] as const;
const FORMATS = ['table', 'json', 'csv'] as const;

export const SHARE_OF_CALLS_LABEL = 'no-contact share of 112 calls seen (all calls: the bridge cannot tell illness calls from others)';
export const SHARE_OF_REQUESTS_LABEL = 'no-contact share of conference-in requests (the national denominator)';

/** Runs `stats` with `argv` (the arguments after `stats`); resolves to the exit code. */
export async function statsCommand(argv: readonly string[], io: CliIO, now: number = Date.now()): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      allowPositionals: false,
      strict: true,
      options: {
        ...JOURNAL_OPTIONS,
        from: { type: 'string' },
        to: { type: 'string' },
        region: { type: 'string' },
        by: { type: 'string' },
        format: { type: 'string' },
        export: { type: 'string' },
        chart: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    return usageError((err as Error).message, io);
  }
  if (values.help === true) {
    io.stdout.write(STATS_USAGE);
    return 0;
  }
  const to = values.to === undefined ? now : Date.parse(values.to);
  if (Number.isNaN(to)) return usageError(`--to is not an ISO 8601 time (got "${values.to}")`, io);
  const from = values.from === undefined ? to - 7 * DAY : Date.parse(values.from);
  if (Number.isNaN(from)) return usageError(`--from is not an ISO 8601 time (got "${values.from}")`, io);
  if (from >= to) return usageError('--from must be before --to', io);
  const by = values.by ?? 'day';
  if (!(BYS as readonly string[]).includes(by)) return usageError(`--by must be one of ${BYS.join(', ')} (got "${by}")`, io);
  const format = values.format ?? 'table';
  if (!(FORMATS as readonly string[]).includes(format)) return usageError(`--format must be one of ${FORMATS.join(', ')} (got "${format}")`, io);
  const chart = values.chart;
  if (chart !== undefined && !/\.(svg|png)$/i.test(chart)) return usageError(`--chart must name a .svg or .png file (got "${chart}")`, io);
  const region = values.region;

  const journal = await openJournal(values, io, 'stats');
  if (!journal) return 1;
  let stats: Stats;
  let daily: Stats;
  try {
    const opts = { from, to, now, ...(region === undefined ? {} : { region }) };
    stats = journal.stats({ ...opts, by: by as Bucketing });
    daily = by === 'day' ? stats : journal.stats({ ...opts, by: 'day' });
  } catch (err) {
    io.stderr.write(`amk-bridge stats: ${(err as Error).message}\n`);
    return 1;
  } finally {
    journal.close();
  }

  io.stdout.write(format === 'json' ? `${JSON.stringify(stats, null, 2)}\n` : format === 'csv' ? statsCsv(stats) : statsTable(stats));
  const lost = stats.totals.total.lostRequests;
  if (lost > 0) io.stderr.write(`amk-bridge stats: ALARM: ${lost} lost request(s) (no outcome) in the period; this must be zero\n`);

  try {
    if (values.export !== undefined) {
      const files = writeExport(daily, values.export);
      io.stderr.write(`amk-bridge stats: exported ${files.length} file(s) to ${values.export}\n`);
    }
    if (chart !== undefined) {
      const svg = chartSvg(daily);
      if (/\.svg$/i.test(chart)) writeFileSync(chart, svg);
      else {
        const err = svgToPng(svg, chart);
        if (err !== null) {
          io.stderr.write(`amk-bridge stats: ${err}\n`);
          return 1;
        }
      }
    }
  } catch (err) {
    io.stderr.write(`amk-bridge stats: ${(err as Error).message}\n`);
    return 1;
  }
  return 0;
}

function usageError(message: string, io: CliIO): number {
  io.stderr.write(`amk-bridge stats: ${message}\n\n${STATS_USAGE}`);
  return 2;
}

// ---------------------------------------------------------------------------------------------
// Formatting

const isoMinute = (ms: number): string => new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
const isoDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
const pct = (share: number | null): string => (share === null ? '-' : `${(share * 100).toFixed(1)} %`);
const secs = (ms: number | null): string => (ms === null ? '-' : `${(ms / 1000).toFixed(1)} s`);
const pairs = (r: Record<string, number>): string =>
  Object.entries(r)
    .map(([k, n]) => `${k}:${n}`)
    .join(' ') || '-';

/** The table: one line per bucket and region (and the bucket's total), then every figure for the whole period. */
export function statsTable(s: Stats): string {
  const region = s.period.region === null ? 'all regions' : `region ${s.period.region}`;
  const lines = [`Statistics ${isoMinute(s.period.from)} – ${isoMinute(s.period.to)} UTC, ${region}, by ${s.by}`, ''];
  const header = ['start (UTC)', 'region', 'calls', 'requests', 'ans 1', 'ans 2', 'buffer', 'overflow', 'no-contact', '% calls', '% requests', 'answer med', 'answer p90', 'aborts', 'lost'];
  const row = (start: string, name: string, r: RegionStats): string[] => [
    start,
    name,
    String(r.callsSeen),
    String(r.requests),
    String(r.answered.attempt1),
    String(r.answered.attempt2),
    String(r.answered.buffer),
    String(r.answered.overflow),
    String(r.noContactMessages),
    pct(r.noContactShareOfCalls),
    pct(r.noContactShareOfRequests),
    secs(r.answerTimeMs.median),
    secs(r.answerTimeMs.p90),
    String(r.aborts),
    String(r.lostRequests),
  ];
  const rows: string[][] = [];
  for (const b of s.buckets) {
    const start = s.by === 'hour' ? isoMinute(b.start) : isoDay(b.start);
    for (const [name, r] of Object.entries(b.regions)) rows.push(row(start, name, r));
    if (s.period.region === null) rows.push(row(start, 'total', b.total));
  }
  lines.push(table(header, rows), '', `% calls: ${SHARE_OF_CALLS_LABEL}`, `% requests: ${SHARE_OF_REQUESTS_LABEL}`, '');
  const columns = s.period.region === null ? [...Object.entries(s.totals.regions), ['total', s.totals.total] as const] : Object.entries(s.totals.regions);
  const outcomes = [...new Set(columns.flatMap(([, r]) => Object.keys(r.attempts.byOutcome)))].sort();
  const figure = (label: string, f: (r: RegionStats) => string): string[] => [label, ...columns.map(([, r]) => f(r))];
  const totals = [
    figure('112 calls seen', (r) => String(r.callsSeen)),
    figure('conference-in requests', (r) => String(r.requests)),
    figure('attempts', (r) => String(r.attempts.total)),
    ...outcomes.map((o) => figure(`  ${o}`, (r) => String(r.attempts.byOutcome[o] ?? 0))),
    figure('answered on attempt 1', (r) => String(r.answered.attempt1)),
    figure('answered on attempt 2 (or later)', (r) => String(r.answered.attempt2)),
    figure('answered in the buffer', (r) => String(r.answered.buffer)),
    figure('answered by an overflow region', (r) => String(r.answered.overflow)),
    figure('overflow contacts (home→overflow)', (r) => pairs(r.overflowContacts)),
    figure('no-contact messages', (r) => String(r.noContactMessages)),
    figure(SHARE_OF_CALLS_LABEL, (r) => pct(r.noContactShareOfCalls)),
    figure(SHARE_OF_REQUESTS_LABEL, (r) => pct(r.noContactShareOfRequests)),
    figure('answer time (INVITE → 200) median', (r) => secs(r.answerTimeMs.median)),
    figure('answer time (INVITE → 200) p90', (r) => secs(r.answerTimeMs.p90)),
    figure('time to contact from trigger median', (r) => secs(r.timeToContactMs.median)),
    figure('time to contact from trigger p90', (r) => secs(r.timeToContactMs.p90)),
    figure('aborts', (r) => String(r.aborts)),
    figure('lost requests (must be 0)', (r) => String(r.lostRequests)),
    figure('running requests', (r) => String(r.running)),
    figure('re-contacts', (r) => String(r.recontacts)),
  ];
  lines.push('Whole period', table(['', ...columns.map(([name]) => name)], totals), '');
  return lines.join('\n');
}

export const CSV_COLUMNS = [
  'start',
  'end',
  'region',
  'calls_seen',
  'requests',
  'attempts',
  'attempts_by_outcome',
  'answered_attempt1',
  'answered_attempt2',
  'answered_buffer',
  'answered_overflow',
  'no_contact_messages',
  'no_contact_share_of_calls',
  'no_contact_share_of_requests',
  'overflow_contacts',
  'answer_ms_median',
  'answer_ms_p90',
  'time_to_contact_ms_median',
  'time_to_contact_ms_p90',
  'aborts',
  'lost_requests',
  'running',
  'recontacts',
] as const;

const csvCell = (v: string | number | null): string => {
  const s = v === null ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

function csvRow(start: string, end: string, name: string, r: RegionStats): string {
  return [
    start,
    end,
    name,
    r.callsSeen,
    r.requests,
    r.attempts.total,
    pairs(r.attempts.byOutcome).replace(/^-$/, ''),
    r.answered.attempt1,
    r.answered.attempt2,
    r.answered.buffer,
    r.answered.overflow,
    r.noContactMessages,
    r.noContactShareOfCalls,
    r.noContactShareOfRequests,
    pairs(r.overflowContacts).replace(/^-$/, ''),
    r.answerTimeMs.median,
    r.answerTimeMs.p90,
    r.timeToContactMs.median,
    r.timeToContactMs.p90,
    r.aborts,
    r.lostRequests,
    r.running,
    r.recontacts,
  ]
    .map(csvCell)
    .join(',');
}

/** CSV: one line per bucket and region (region `total` for the bucket's total), then the period's lines (start/end of the period). */
export function statsCsv(s: Stats): string {
  const lines = [CSV_COLUMNS.join(',')];
  const iso = (ms: number): string => new Date(ms).toISOString();
  for (const b of s.buckets) {
    for (const [name, r] of Object.entries(b.regions)) lines.push(csvRow(iso(b.start), iso(b.end), name, r));
    lines.push(csvRow(iso(b.start), iso(b.end), 'total', b.total));
  }
  for (const [name, r] of Object.entries(s.totals.regions)) lines.push(csvRow(iso(s.period.from), iso(s.period.to), name, r));
  lines.push(csvRow(iso(s.period.from), iso(s.period.to), 'total', s.totals.total));
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// Daily export

export const EXPORT_HEADER = 'date,region,item,value,description';

/** The items of a day's export file, in order: [item, value, description]. */
function exportItems(r: RegionStats): [string, string | number | null, string][] {
  return [
    ['calls_seen', r.callsSeen, '112 calls the bridge saw, routed to this region'],
    ['requests', r.requests, 'conference-in requests (the national denominator)'],
    ['attempts', r.attempts.total, 'conference-in attempts (INVITEs) of these requests'],
    ...Object.entries(r.attempts.byOutcome).map(([o, n]): [string, number, string] => [`attempts_${o}`, n, `attempts ending ${o}`]),
    ['answered_attempt1', r.answered.attempt1, 'requests answered by this region on attempt 1'],
    ['answered_attempt2', r.answered.attempt2, 'requests answered by this region on attempt 2 or later'],
    ['answered_buffer', r.answered.buffer, 'requests answered in the buffer'],
    ['answered_overflow', r.answered.overflow, 'requests answered by an overflow region'],
    ...Object.entries(r.overflowContacts).map(([pair, n]): [string, number, string] => [`overflow_contacts_${pair}`, n, 'contacts via overflow, home→overflow region']),
    ['no_contact_messages', r.noContactMessages, '"Ingen kontakt til AMK" messages (one per request)'],
    ['no_contact_share_of_calls', r.noContactShareOfCalls, 'no-contact messages / 112 calls seen (all calls: the bridge cannot tell illness calls from others)'],
    ['no_contact_share_of_requests', r.noContactShareOfRequests, 'no-contact messages / conference-in requests (the national denominator)'],
    ['answer_ms_median', r.answerTimeMs.median, 'answer time INVITE → 200, median, ms'],
    ['answer_ms_p90', r.answerTimeMs.p90, 'answer time INVITE → 200, 90th percentile, ms'],
    ['time_to_contact_ms_median', r.timeToContactMs.median, 'trigger → contact, median, ms'],
    ['time_to_contact_ms_p90', r.timeToContactMs.p90, 'trigger → contact, 90th percentile, ms'],
    ['aborts', r.aborts, 'requests aborted'],
    ['lost_requests', r.lostRequests, 'requests without outcome (must be 0)'],
    ['recontacts', r.recontacts, 're-contacts among the calls seen'],
  ];
}

/** Writes DIR/<region>/<YYYY-MM-DD>.csv for every region and day of `daily` (day buckets). Returns the files. */
export function writeExport(daily: Stats, dir: string): string[] {
  const files: string[] = [];
  for (const b of daily.buckets) {
    const date = isoDay(b.start);
    for (const [name, r] of Object.entries(b.regions)) {
      if (!/^[A-Za-z0-9._-]+$/.test(name) || name.startsWith('.')) throw new Error(`region id "${name}" cannot be a directory name`);
      const sub = join(dir, name);
      mkdirSync(sub, { recursive: true });
      const file = join(sub, `${date}.csv`);
      const lines = [EXPORT_HEADER, ...exportItems(r).map(([item, value, desc]) => [date, name, item, value, desc].map(csvCell).join(','))];
      writeFileSync(file, `${lines.join('\n')}\n`);
      files.push(file);
    }
  }
  return files;
}

// ---------------------------------------------------------------------------------------------
// Chart

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Upper axis bound: a round number >= max (at least `floor`). */
function niceMax(max: number, floor: number): number {
  const m = Math.max(max, floor);
  const p = 10 ** Math.floor(Math.log10(m));
  for (const k of [1, 2, 2.5, 5, 10]) if (k * p >= m) return k * p;
  return 10 * p;
}

/**
 * SVG of the daily totals of `daily` (day buckets): the no-contact share of requests (line,
 * left axis, %), the share of 112 calls seen (dashed line, left axis) and the answer-time
 * median (bars, right axis, s).
 */
export function chartSvg(daily: Stats): string {
  const W = 900;
  const H = 480;
  const L = 70;
  const R = 70;
  const T = 60;
  const B = 90;
  const pw = W - L - R;
  const ph = H - T - B;
  const days = daily.buckets;
  const n = Math.max(days.length, 1);
  const slot = pw / n;
  const shareReq = days.map((b) => b.total.noContactShareOfRequests);
  const shareCalls = days.map((b) => b.total.noContactShareOfCalls);
  const answer = days.map((b) => (b.total.answerTimeMs.median === null ? null : b.total.answerTimeMs.median / 1000));
  const maxPct = niceMax(Math.max(0, ...[...shareReq, ...shareCalls].map((v) => (v ?? 0) * 100)), 1);
  const maxS = niceMax(Math.max(0, ...answer.map((v) => v ?? 0)), 1);
  const x = (i: number): number => L + slot * (i + 0.5);
  const yPct = (v: number): number => T + ph - (v * 100 * ph) / maxPct;
  const yS = (v: number): number => T + ph - (v * ph) / maxS;
  const f = (v: number): string => v.toFixed(1);
  const who = daily.period.region === null ? 'all regions' : `region ${daily.period.region}`;
  const title = `No-contact share and answer time, ${isoDay(daily.period.from)} – ${isoDay(daily.period.to - 1)} (${who})`;
  const out: string[] = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<title>${esc(title)}</title>`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="28" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`,
  ];
  // Grid and axes.
  for (let k = 0; k <= 5; k++) {
    const y = T + ph - (ph * k) / 5;
    out.push(`<line x1="${L}" y1="${f(y)}" x2="${L + pw}" y2="${f(y)}" stroke="#dddddd"/>`);
    out.push(`<text x="${L - 6}" y="${f(y + 4)}" text-anchor="end">${esc(String(+((maxPct * k) / 5).toFixed(2)))} %</text>`);
    out.push(`<text x="${L + pw + 6}" y="${f(y + 4)}" text-anchor="start">${esc(String(+((maxS * k) / 5).toFixed(2)))} s</text>`);
  }
  out.push(`<line x1="${L}" y1="${T}" x2="${L}" y2="${T + ph}" stroke="#000000"/>`);
  out.push(`<line x1="${L + pw}" y1="${T}" x2="${L + pw}" y2="${T + ph}" stroke="#000000"/>`);
  out.push(`<line x1="${L}" y1="${T + ph}" x2="${L + pw}" y2="${T + ph}" stroke="#000000"/>`);
  out.push(`<text transform="translate(18 ${T + ph / 2}) rotate(-90)" text-anchor="middle">no-contact share (%)</text>`);
  out.push(`<text transform="translate(${W - 14} ${T + ph / 2}) rotate(90)" text-anchor="middle">answer time median, INVITE → 200 (s)</text>`);
  const every = Math.max(1, Math.ceil(n / 15));
  days.forEach((b, i) => {
    if (i % every === 0) out.push(`<text x="${f(x(i))}" y="${T + ph + 16}" text-anchor="middle" font-size="10">${isoDay(b.start).slice(5)}</text>`);
  });
  out.push(`<text x="${L + pw / 2}" y="${T + ph + 34}" text-anchor="middle">day (UTC)</text>`);
  // Bars: answer-time median.
  out.push(`<g id="answer-time-median" fill="#9ecae1">`);
  answer.forEach((v, i) => {
    if (v !== null) out.push(`<rect x="${f(x(i) - slot * 0.35)}" y="${f(yS(v))}" width="${f(slot * 0.7)}" height="${f(T + ph - yS(v))}" data-day="${isoDay(days[i]!.start)}" data-value="${v}"/>`);
  });
  out.push(`</g>`);
  // Lines: shares (a gap where a day has no denominator).
  const line = (id: string, values: (number | null)[], colour: string, dash: string): void => {
    const segs: string[] = [];
    let cur: string[] = [];
    values.forEach((v, i) => {
      if (v === null) {
        if (cur.length) segs.push(cur.join(' '));
        cur = [];
      } else cur.push(`${cur.length ? 'L' : 'M'}${f(x(i))} ${f(yPct(v))}`);
    });
    if (cur.length) segs.push(cur.join(' '));
    out.push(`<g id="${id}">`);
    for (const d of segs) out.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`);
    values.forEach((v, i) => {
      if (v !== null) out.push(`<circle cx="${f(x(i))}" cy="${f(yPct(v))}" r="3" fill="${colour}" data-day="${isoDay(days[i]!.start)}" data-value="${v}"/>`);
    });
    out.push(`</g>`);
  };
  line('no-contact-share-of-requests', shareReq, '#d62728', '');
  line('no-contact-share-of-calls', shareCalls, '#ff9896', '6 4');
  // Legend.
  const ly = H - 30;
  out.push(`<g id="legend">`);
  out.push(`<line x1="${L}" y1="${ly}" x2="${L + 24}" y2="${ly}" stroke="#d62728" stroke-width="2"/>`);
  out.push(`<text x="${L + 30}" y="${ly + 4}">no-contact share of conference-in requests</text>`);
  out.push(`<line x1="${L + 300}" y1="${ly}" x2="${L + 324}" y2="${ly}" stroke="#ff9896" stroke-width="2" stroke-dasharray="6 4"/>`);
  out.push(`<text x="${L + 330}" y="${ly + 4}">… of all 112 calls seen</text>`);
  out.push(`<rect x="${L + 500}" y="${ly - 6}" width="20" height="12" fill="#9ecae1"/>`);
  out.push(`<text x="${L + 526}" y="${ly + 4}">answer time median (s)</text>`);
  out.push(`</g>`);
  out.push(`</svg>`);
  return `${out.join('\n')}\n`;
}

/** Renders with rsvg-convert; returns an error text, or null when the PNG is written. */
export function svgToPng(svg: string, file: string): string | null {
  const which = spawnSync('which', ['rsvg-convert'], { encoding: 'utf8' });
  if (which.status !== 0) return `--chart ${file}: PNG needs rsvg-convert (Debian package librsvg2-bin), which is not installed; install it or write an SVG (--chart FILE.svg)`;
  const r = spawnSync('rsvg-convert', ['--format', 'png', '--output', file], { input: svg, timeout: 60_000 });
  if (r.status !== 0) return `--chart ${file}: rsvg-convert failed: ${(r.stderr?.toString() || r.error?.message || `exit ${r.status}`).trim()}`;
  return null;
}
