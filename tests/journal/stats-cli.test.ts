// `amk-bridge stats` in-process against a journal prepared through the Journal API: table,
// JSON, CSV, the daily per-region export and the chart.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { CliIO } from '../../src/cli/check-config.js';
import { EXPORT_HEADER, SHARE_OF_CALLS_LABEL, SHARE_OF_REQUESTS_LABEL, statsCommand, STATS_USAGE } from '../../src/cli/stats.js';
import type { Stats } from '../../src/domain/statistics.js';
import { Journal } from '../../src/journal/journal.js';
import { messageCommit, requestStart, tempDir } from './fixtures/process.js';

const D = 86_400_000;
const DAY1 = Date.UTC(2025, 2, 3); // Monday 3 March 2025
const NOW = DAY1 + 2 * D;
const ARGS = ['--from', '2025-03-03', '--to', '2025-03-05'];

function captureIO(): CliIO & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, out: () => out, err: () => err };
}

/**
 * Day 1: hovedstaden: 2 calls, A contact on attempt 1 (answer 4 s), B no-contact message then
 *        contact via overflow in sjaelland (answer 6 s). Day 2: sjaelland: 1 call (re-contact),
 *        C aborted. A test request (left out).
 */
function prepare(t: Test): string {
  const dir = tempDir(t);
  const file = join(dir, 'journal.sqlite');
  const j = Journal.open(file);
  j.callSeen({ callId: 'c1', startedAt: DAY1 + 3600_000, trunk: 't1', region: 'hovedstaden', recontact: false });
  j.callSeen({ callId: 'c2', startedAt: DAY1 + 7200_000, trunk: 't1', region: 'hovedstaden', recontact: false });
  j.callSeen({ callId: 'c2', startedAt: DAY1 + 9999_000, trunk: 't1', region: 'sjaelland', recontact: true }); // repeated: first kept
  j.callSeen({ callId: 'c3', startedAt: DAY1 + D + 3600_000, trunk: null, region: 'sjaelland', recontact: true });

  const A = 'aaaaaaaa-0000-4000-8000-000000000001';
  const tA = DAY1 + 3600_000 + 5000;
  j.requestStarted(requestStart(A, { callId: 'c1', region: 'hovedstaden', startedAt: tA }));
  j.attemptStarted({ attemptId: 'A1', requestId: A, n: 1, stage: 'home', region: 'hovedstaden', target: 'sip:amk@h', startedAt: tA + 100 });
  j.attemptEnded('A1', { outcome: 'answered', status: 200, reason: 'OK', endedAt: tA + 4100, answeredAt: tA + 4100, crossedCancel: false });
  j.requestOutcome(A, 'contact', tA + 4100, 'home', 'hovedstaden');

  const B = 'bbbbbbbb-0000-4000-8000-000000000002';
  const tB = DAY1 + 7200_000 + 5000;
  j.requestStarted(requestStart(B, { callId: 'c2', region: 'hovedstaden', startedAt: tB }));
  j.attemptStarted({ attemptId: 'B1', requestId: B, n: 1, stage: 'home', region: 'hovedstaden', target: 'sip:amk@h', startedAt: tB + 100 });
  j.attemptEnded('B1', { outcome: 'busy', status: 486, reason: 'Busy Here', endedAt: tB + 500, answeredAt: null, crossedCancel: false });
  j.commitMessage(messageCommit(B, 'no-contact', { createdAt: tB + 15_000, region: 'hovedstaden' }), { outcome: 'no-contact', at: tB + 15_000 });
  j.attemptStarted({ attemptId: 'B2', requestId: B, n: 2, stage: 'overflow', region: 'sjaelland', target: 'sip:amk@s', startedAt: tB + 20_000 });
  j.attemptEnded('B2', { outcome: 'answered', status: 200, reason: 'OK', endedAt: tB + 26_000, answeredAt: tB + 26_000, crossedCancel: false });

  const C = 'cccccccc-0000-4000-8000-000000000003';
  const tC = DAY1 + D + 3600_000 + 5000;
  j.requestStarted(requestStart(C, { callId: 'c3', region: 'sjaelland', startedAt: tC }));
  j.attemptStarted({ attemptId: 'C1', requestId: C, n: 1, stage: 'home', region: 'sjaelland', target: 'sip:amk@s', startedAt: tC + 100 });
  j.attemptEnded('C1', { outcome: 'cancelled', status: 487, reason: 'Request Terminated', endedAt: tC + 2000, answeredAt: null, crossedCancel: false });
  j.requestOutcome(C, 'aborted', tC + 2000);

  j.requestStarted(requestStart('dddddddd-0000-4000-8000-000000000004', { callId: 'c4', region: 'sjaelland', startedAt: tC + 1000, test: true }));
  j.close();
  return file;
}

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = captureIO();
  const code = await statsCommand(args, io, NOW);
  return { code, out: io.out(), err: io.err() };
}

t.test('json: the statistics object', async (t) => {
  const file = prepare(t);
  const r = await run([...ARGS, '--journal', file, '--format', 'json']);
  t.equal(r.code, 0, r.err);
  const s = JSON.parse(r.out) as Stats;
  t.equal(s.buckets.length, 2);
  const h = s.totals.regions.hovedstaden!;
  t.equal(h.callsSeen, 2);
  t.equal(h.requests, 2);
  t.same(h.answered, { attempt1: 1, attempt2: 0, buffer: 0, overflow: 1 });
  t.same(h.overflowContacts, { 'hovedstaden→sjaelland': 1 });
  t.equal(h.noContactMessages, 1);
  t.equal(h.noContactShareOfCalls, 0.5);
  t.equal(h.noContactShareOfRequests, 0.5);
  t.same(h.answerTimeMs, { median: 4000, p90: 6000 });
  t.same(h.timeToContactMs, { median: 4100, p90: 26_000 });
  const sj = s.totals.regions.sjaelland!;
  t.equal(sj.callsSeen, 1);
  t.equal(sj.recontacts, 1);
  t.equal(sj.requests, 1, 'the test request is left out');
  t.equal(sj.aborts, 1);
  t.equal(s.totals.total.lostRequests, 0);
  t.same(s.totals.total.attempts.byOutcome, { answered: 2, busy: 1, cancelled: 1 });

  const only = JSON.parse((await run([...ARGS, '--journal', file, '--format', 'json', '--region', 'sjaelland', '--by', 'week'])).out) as Stats;
  t.same(Object.keys(only.totals.regions), ['sjaelland']);
  t.equal(only.buckets.length, 1);
  t.equal(only.totals.total.requests, 1);
});

t.test('table: labelled shares and the whole period', async (t) => {
  const file = prepare(t);
  const r = await run([...ARGS, '--journal', file]);
  t.equal(r.code, 0, r.err);
  t.equal(r.err, '');
  t.match(r.out, /^Statistics 2025-03-03 00:00 – 2025-03-05 00:00 UTC, all regions, by day\n/);
  t.match(r.out, SHARE_OF_CALLS_LABEL);
  t.match(r.out, SHARE_OF_REQUESTS_LABEL);
  t.match(r.out, /^2025-03-03\s+hovedstaden\s+2\s+2\s+1\s+0\s+0\s+1\s+1\s+50\.0 %\s+50\.0 %\s+4\.0 s\s+6\.0 s\s+0\s+0$/m);
  t.match(r.out, /^2025-03-04\s+sjaelland\s+1\s+1\s/m);
  t.match(r.out, /^overflow contacts \(home→overflow\)\s+hovedstaden→sjaelland:1\s+-\s+hovedstaden→sjaelland:1$/m);
  t.match(r.out, /^lost requests \(must be 0\)\s+0\s+0\s+0$/m);
});

t.test('csv: one line per bucket and region, then the period', async (t) => {
  const file = prepare(t);
  const r = await run([...ARGS, '--journal', file, '--format', 'csv']);
  t.equal(r.code, 0, r.err);
  const lines = r.out.trimEnd().split('\n');
  t.match(lines[0], /^start,end,region,calls_seen,requests,attempts,attempts_by_outcome,answered_attempt1,/);
  t.equal(lines.length, 1 + 2 * 3 + 3);
  t.equal(
    lines[1],
    '2025-03-03T00:00:00.000Z,2025-03-04T00:00:00.000Z,hovedstaden,2,2,3,answered:2 busy:1,1,0,0,1,1,0.5,0.5,hovedstaden→sjaelland:1,4000,6000,4100,26000,0,0,0,0',
  );
  t.equal(lines.at(-1), '2025-03-03T00:00:00.000Z,2025-03-05T00:00:00.000Z,total,3,3,4,answered:2 busy:1 cancelled:1,1,0,0,1,1,0.3333333333333333,0.3333333333333333,hovedstaden→sjaelland:1,4000,6000,4100,26000,1,0,0,1');
});

t.test('--export: one file per region and day', async (t) => {
  const file = prepare(t);
  const dir = join(tempDir(t), 'export');
  const r = await run([...ARGS, '--journal', file, '--format', 'json', '--export', dir, '--by', 'hour']);
  t.equal(r.code, 0, r.err);
  t.match(r.err, /exported 4 file\(s\)/);
  for (const f of ['hovedstaden/2025-03-03.csv', 'hovedstaden/2025-03-04.csv', 'sjaelland/2025-03-03.csv', 'sjaelland/2025-03-04.csv']) t.ok(existsSync(join(dir, f)), f);
  const h1 = readFileSync(join(dir, 'hovedstaden/2025-03-03.csv'), 'utf8').trimEnd().split('\n');
  t.equal(h1[0], EXPORT_HEADER);
  const item = (lines: string[], name: string): string | undefined => lines.find((l) => l.split(',')[2] === name)?.split(',')[3];
  t.equal(item(h1, 'calls_seen'), '2');
  t.equal(item(h1, 'requests'), '2');
  t.equal(item(h1, 'attempts_busy'), '1');
  t.equal(item(h1, 'answered_attempt1'), '1');
  t.equal(item(h1, 'answered_overflow'), '1');
  t.equal(item(h1, 'overflow_contacts_hovedstaden→sjaelland'), '1');
  t.equal(item(h1, 'no_contact_messages'), '1');
  t.equal(item(h1, 'no_contact_share_of_requests'), '0.5');
  t.equal(item(h1, 'lost_requests'), '0');
  t.ok(h1.every((l, i) => i === 0 || l.startsWith('2025-03-03,hovedstaden,')));
  const s2 = readFileSync(join(dir, 'sjaelland/2025-03-04.csv'), 'utf8').trimEnd().split('\n');
  t.equal(item(s2, 'aborts'), '1');
  t.equal(item(s2, 'recontacts'), '1');
  t.equal(item(s2, 'no_contact_share_of_calls'), '0');
});

t.test('--chart FILE.svg: a well-formed SVG with both series', async (t) => {
  const file = prepare(t);
  const svgFile = join(tempDir(t), 'chart.svg');
  const r = await run([...ARGS, '--journal', file, '--format', 'json', '--chart', svgFile]);
  t.equal(r.code, 0, r.err);
  const svg = readFileSync(svgFile, 'utf8');
  t.match(svg, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  t.match(svg, /<\/svg>\n$/);
  const opened = (svg.match(/<(g|svg|title|text)[\s>]/g) ?? []).length;
  const closed = (svg.match(/<\/(g|svg|title|text)>/g) ?? []).length;
  t.equal(opened, closed, 'every element closed');
  t.match(svg, /<g id="no-contact-share-of-requests">[^]*data-day="2025-03-03" data-value="0.5"[^]*<\/g>/);
  t.match(svg, /<g id="answer-time-median"[^]*data-day="2025-03-03" data-value="4"[^]*<\/g>/);
  t.match(svg, /no-contact share \(%\)/);
  t.match(svg, /answer time median, INVITE → 200 \(s\)/);
  t.match(svg, /<g id="legend">/);
});

t.test('--chart FILE.png: through rsvg-convert, or a clear error without it', async (t) => {
  const file = prepare(t);
  const png = join(tempDir(t), 'chart.png');
  const r = await run([...ARGS, '--journal', file, '--format', 'json', '--chart', png]);
  const have = spawnSync('which', ['rsvg-convert']).status === 0;
  if (have) {
    t.equal(r.code, 0, r.err);
    t.same([...readFileSync(png).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  } else {
    t.equal(r.code, 1);
    t.match(r.err, /PNG needs rsvg-convert \(Debian package librsvg2-bin\), which is not installed; install it or write an SVG \(--chart FILE\.svg\)/);
    t.notOk(existsSync(png));
  }
});

t.test('lost requests raise an alarm; usage errors exit 2; a missing journal exits 1', async (t) => {
  const file = prepare(t);
  const j = Journal.open(file, { create: false });
  j.requestStarted(requestStart('eeeeeeee-0000-4000-8000-000000000005', { callId: 'c5', region: 'sjaelland', startedAt: DAY1 + D + 7200_000 }));
  j.close();
  const r = await run([...ARGS, '--journal', file, '--format', 'json']);
  t.equal(r.code, 0);
  t.match(r.err, /ALARM: 1 lost request\(s\)/);
  t.equal((JSON.parse(r.out) as Stats).totals.total.lostRequests, 1);

  for (const bad of [['--by', 'month'], ['--format', 'xml'], ['--from', 'yesterday'], ['--from', '2025-03-05', '--to', '2025-03-03'], ['--chart', 'x.pdf'], ['--nope']]) {
    const u = await run([...bad, '--journal', file]);
    t.equal(u.code, 2, bad.join(' '));
    t.match(u.err, STATS_USAGE);
  }
  const h = await run(['--help']);
  t.equal(h.code, 0);
  t.equal(h.out, STATS_USAGE);
  const missing = await run(['--journal', join(tempDir(t), 'none.sqlite')]);
  t.equal(missing.code, 1);
  t.match(missing.err, /does not exist/);
});
