// `amk-bridge incident` and `amk-bridge outbox`: as real processes of the built CLI against a
// journal the test prepared, and in-process through the command functions.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { CliIO } from '../../src/cli/check-config.js';
import { INCIDENT_USAGE, incidentCommand } from '../../src/cli/incident.js';
import { runCli, USAGE } from '../../src/cli/main.js';
import { OUTBOX_USAGE, outboxCommand } from '../../src/cli/outbox.js';
import { Journal } from '../../src/journal/journal.js';
import { messageCommit, requestStart, requireBuild, runCliProcess, T0, tempDir } from './fixtures/process.js';

requireBuild();

const ID = '0f3a9c1e-1111-4000-8000-000000000001';
const ID2 = '0f3a9c1e-2222-4000-8000-000000000002';
const ID3 = '7b00aa11-3333-4000-8000-000000000003';

function captureIO(): CliIO & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, out: () => out, err: () => err };
}

/**
 * A journal with:
 *   ID:  attempt 1 busy, attempt 2 (overflow) answered after 6 s; no-contact delivered,
 *        contact-via-overflow failed on both endpoints and escalated
 *   ID2: same Call-ID as ID3, open, no-contact pending (a retry later)
 *   ID3: open, no attempts, no messages
 */
function prepare(t: Test): { dir: string; file: string } {
  const dir = tempDir(t);
  const file = join(dir, 'journal.sqlite');
  const j = Journal.open(file);
  j.requestStarted(requestStart(ID, { callId: 'abc@10.0.0.1' }));
  j.attemptStarted({ attemptId: 'a1', requestId: ID, n: 1, stage: 'home', region: 'hovedstaden', target: 'sip:amk@10.0.0.2', startedAt: T0 + 100 });
  j.attemptProvisional('a1', T0 + 300);
  j.attemptEnded('a1', { outcome: 'busy', status: 486, reason: 'Busy Here', endedAt: T0 + 1000, answeredAt: null, crossedCancel: false });
  j.attemptStarted({ attemptId: 'a2', requestId: ID, n: 2, stage: 'overflow', region: 'sjaelland', target: 'sip:amk@10.0.0.3', startedAt: T0 + 20_000 });
  j.attemptProvisional('a2', T0 + 20_400);
  j.attemptEnded('a2', { outcome: 'answered', status: 200, reason: 'OK', endedAt: T0 + 26_000, answeredAt: T0 + 26_000, crossedCancel: false });
  j.commitMessage(messageCommit(ID, 'no-contact', { createdAt: T0 + 15_000 }), { outcome: 'no-contact', at: T0 + 15_000 });
  j.delivered(`${ID}:no-contact`, 'https://a.example/msg', T0 + 15_500);
  j.commitMessage(messageCommit(ID, 'contact-via-overflow', { createdAt: T0 + 26_000 }));
  j.endpointFailed(`${ID}:contact-via-overflow`, 'https://a.example/msg', 'HTTP 400 Bad Request');
  j.endpointFailed(`${ID}:contact-via-overflow`, 'https://b.example/msg', 'HTTP 422 Unprocessable');
  j.escalated(`${ID}:contact-via-overflow`, T0 + 86_000);
  j.failed(`${ID}:contact-via-overflow`, 'every endpoint failed permanently');

  j.requestStarted(requestStart(ID2, { callId: 'shared@10.0.0.1', startedAt: T0 + 60_000 }));
  j.commitMessage(messageCommit(ID2, 'no-contact', { createdAt: T0 + 70_000 }));
  j.retryLater(`${ID2}:no-contact`, T0 + 80_000, 'HTTP 503 Service Unavailable');
  j.requestStarted(requestStart(ID3, { callId: 'shared@10.0.0.1', startedAt: T0 + 90_000, desk: null }));
  j.close();
  return { dir, file };
}

const iso = (ms: number): string => new Date(ms).toISOString();
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** A line of the request block: labels padded to the longest ("Emergency call"). */
const field = (label: string, value: string): RegExp => new RegExp(`^  ${escape(label.padEnd('Emergency call'.length))}  ${escape(value)}$`, 'm');

t.test('incident (process): the whole story as aligned text', async (t) => {
  const { file } = prepare(t);
  const r = await runCliProcess(['incident', ID, '--journal', file]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stderr, '');
  const out = r.stdout;
  t.match(out, new RegExp(`^Request ${ID}\n`));
  t.match(out, field('Call-ID', 'abc@10.0.0.1'));
  t.match(out, field('Incident', `urn:emergency:uid:incidentid:${ID}:psap.example`));
  t.match(out, field('Emergency call', `urn:emergency:uid:callid:${ID}:psap.example`));
  t.match(out, field('Desk', 'desk-7'));
  t.match(out, field('Region', 'hovedstaden'));
  t.match(out, field('Trigger', 'dtmf'));
  t.match(out, field('Started', iso(T0)));
  t.match(out, field('Outcome', `no-contact at ${iso(T0 + 15_000)}`));

  const lines = out.split('\n');
  const attemptsAt = lines.indexOf('Attempts (2)');
  t.ok(attemptsAt > 0, 'attempts section');
  const header = lines[attemptsAt + 1] ?? '';
  t.match(header, /^ {2}N {2}STAGE +REGION +TARGET +STARTED +FIRST 1XX +ENDED +OUTCOME +SIP +ANSWERED +TO ANSWER \(MS\)$/);
  const a1 = (lines[attemptsAt + 2] ?? '').trim().split(/\s{2,}/);
  t.same(a1, ['1', 'home', 'hovedstaden', 'sip:amk@10.0.0.2', iso(T0 + 100), iso(T0 + 300), iso(T0 + 1000), 'busy', '486', '-', '-']);
  const a2 = (lines[attemptsAt + 3] ?? '').trim().split(/\s{2,}/);
  t.same(a2, ['2', 'overflow', 'sjaelland', 'sip:amk@10.0.0.3', iso(T0 + 20_000), iso(T0 + 20_400), iso(T0 + 26_000), 'answered', '200', iso(T0 + 26_000), '6000']);
  // Aligned: every column starts at the same offset in the header and the rows.
  const col = (s: string, needle: string): number => s.indexOf(needle);
  t.equal(col(lines[attemptsAt + 3] ?? '', iso(T0 + 20_000)), col(header, 'STARTED'));
  t.equal(col(lines[attemptsAt + 2] ?? '', 'busy'), col(header, 'OUTCOME'));

  const messagesAt = lines.indexOf('Messages (2)');
  t.ok(messagesAt > attemptsAt, 'messages section after the attempts');
  t.match(lines[messagesAt + 1], /^ {2}TYPE +KEY +STATE +TRIES +CREATED +DELIVERED +TO +ESCALATED +LAST ERROR$/);
  t.same((lines[messagesAt + 2] ?? '').trim().split(/\s{2,}/), ['no-contact', `${ID}:no-contact`, 'delivered', '0', iso(T0 + 15_000), iso(T0 + 15_500), 'https://a.example/msg', 'no', '-']);
  t.same((lines[messagesAt + 3] ?? '').trim().split(/\s{2,}/), [
    'contact-via-overflow', `${ID}:contact-via-overflow`, 'failed', '2', iso(T0 + 26_000), '-', '-', iso(T0 + 86_000), 'every endpoint failed permanently',
  ]);
  t.notMatch(out, /Ingen kontakt/, 'no payload in the text view');
});

t.test('incident (process): --json is one parseable object; prefix, Call-ID and URNs find it', async (t) => {
  const { file } = prepare(t);
  const r = await runCliProcess(['incident', '--json', '--journal', file, '0f3a9c1e-1111']);
  t.equal(r.code, 0, r.stderr);
  const story = JSON.parse(r.stdout) as {
    request: { requestId: string; outcome: string; context: unknown; desk: string };
    attempts: { n: number; timeToAnswerMs: number | null; status: number; firstResponseAt: number }[];
    messages: { type: string; state: string; payload: string | null; failedEndpoints: string[]; escalatedAt: number | null }[];
  };
  t.equal(story.request.requestId, ID);
  t.equal(story.request.outcome, 'no-contact');
  t.equal(story.request.context, null, 'context cleared at the outcome');
  t.same(story.attempts.map((a) => [a.n, a.status, a.timeToAnswerMs, a.firstResponseAt]), [
    [1, 486, null, T0 + 300],
    [2, 200, 6000, T0 + 20_400],
  ]);
  t.same(story.messages.map((m) => [m.type, m.state]), [['no-contact', 'delivered'], ['contact-via-overflow', 'failed']]);
  t.equal(story.messages[0]?.payload, null, 'delivered payload purged');
  t.same(story.messages[1]?.failedEndpoints, ['https://a.example/msg', 'https://b.example/msg']);
  t.equal(story.messages[1]?.escalatedAt, T0 + 86_000);

  for (const q of ['abc@10.0.0.1', `urn:emergency:uid:incidentid:${ID}:psap.example`, `urn:emergency:uid:callid:${ID}:psap.example`]) {
    const io = captureIO();
    t.equal(await incidentCommand([q, '--journal', file, '--json'], io), 0, `found by ${q}`);
    t.equal((JSON.parse(io.out()) as { request: { requestId: string } }).request.requestId, ID);
  }
});

t.test('incident (process): several matches are listed and exit 1; none exits 1', async (t) => {
  const { file } = prepare(t);
  const several = await runCliProcess(['incident', '0f3a9c1e', '--journal', file]);
  t.equal(several.code, 1);
  t.equal(several.stdout, '');
  t.match(several.stderr, /2 requests match "0f3a9c1e"; give a longer id/);
  const listed = several.stderr.split('\n').filter((l) => l.startsWith('  0f3a9c1e'));
  t.same(listed.map((l) => l.trim().split(/\s{2,}/)[0]), [ID2, ID], 'newest first');
  t.match(listed[1], /no-contact$/);
  t.match(listed[0], /open$/);

  const byCallId = await runCliProcess(['incident', 'shared@10.0.0.1', '--journal', file]);
  t.equal(byCallId.code, 1);
  t.match(byCallId.stderr, /2 requests match "shared@10\.0\.0\.1"/);

  const none = await runCliProcess(['incident', 'deadbeef-0000', '--journal', file]);
  t.equal(none.code, 1);
  t.equal(none.stdout, '');
  t.match(none.stderr, new RegExp(`no request matches "deadbeef-0000" in ${escape(file)}`));
  const short = await runCliProcess(['incident', '0f3a9c', '--journal', file]);
  t.equal(short.code, 1, 'prefixes shorter than 8 characters do not match');
  t.match(short.stderr, /at least 8 characters/);
});

t.test('incident: an open request without attempts or messages', async (t) => {
  const { file } = prepare(t);
  const io = captureIO();
  t.equal(await incidentCommand([ID3, '--journal', file], io), 0, io.err());
  t.match(io.out(), field('Outcome', 'open (no outcome yet)'));
  t.match(io.out(), field('Desk', '-'));
  t.match(io.out(), /\nAttempts \(0\)\n\nMessages \(0\)\n$/);
});

t.test('incident: usage errors exit 2, --help exits 0', async (t) => {
  let io = captureIO();
  t.equal(await incidentCommand([], io), 2);
  t.match(io.err(), /no ID given/);
  io = captureIO();
  t.equal(await incidentCommand(['a', 'b'], io), 2);
  t.match(io.err(), /unexpected argument "b"/);
  io = captureIO();
  t.equal(await incidentCommand(['x', '--bogus'], io), 2);
  io = captureIO();
  t.equal(await runCli(['incident', '--help'], io), 0);
  t.equal(io.out(), INCIDENT_USAGE);
  t.match(USAGE, /^ {2}incident ID/m);
  t.match(USAGE, /^ {2}outbox list\|retry/m);
});

t.test('outbox list (process): pending and failed by default, newest first, with the backlog', async (t) => {
  const { file } = prepare(t);
  const r = await runCliProcess(['outbox', 'list', '--journal', file]);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  t.match(lines[0], /^KEY +STATE +TRIES +CREATED +NEXT TRY +DELIVERED +TO +ESCALATED +LAST ERROR$/);
  t.same((lines[1] ?? '').split(/\s{2,}/), [`${ID2}:no-contact`, 'pending', '1', iso(T0 + 70_000), iso(T0 + 80_000), '-', '-', 'no', 'HTTP 503 Service Unavailable']);
  t.same((lines[2] ?? '').split(/\s{2,}/), [`${ID}:contact-via-overflow`, 'failed', '2', iso(T0 + 26_000), '-', '-', '-', 'yes', 'every endpoint failed permanently']);
  t.equal(lines[3], '');
  t.equal(lines[4], `backlog: 1 pending, 1 failed; oldest pending created ${iso(T0 + 70_000)}`);
  t.equal(lines.length, 5, 'the delivered message is not listed');

  const all = await runCliProcess(['outbox', 'list', '--state', 'all', '--limit', '2', '--journal', file]);
  t.equal(all.code, 0, all.stderr);
  t.same(
    all.stdout.split('\n').slice(1, 3).map((l) => l.split(/\s{2,}/)[0]),
    [`${ID2}:no-contact`, `${ID}:contact-via-overflow`],
  );
  t.match(all.stdout, /\(showing the newest 2; --limit N for more\)\n$/);

  const delivered = await runCliProcess(['outbox', 'list', '--state', 'delivered', '--json', '--journal', file]);
  t.equal(delivered.code, 0, delivered.stderr);
  const parsed = JSON.parse(delivered.stdout) as { messages: { key: string; payload: unknown; deliveredTo: string }[]; truncated: boolean; backlog: unknown };
  t.same(parsed.messages.map((m) => [m.key, m.payload, m.deliveredTo]), [[`${ID}:no-contact`, null, 'https://a.example/msg']]);
  t.equal(parsed.truncated, false);
  t.same(parsed.backlog, { pending: 1, failed: 1, oldestCreatedAt: T0 + 70_000 });
});

t.test('outbox list: empty outbox', async (t) => {
  const file = join(tempDir(t), 'empty.sqlite');
  Journal.open(file).close();
  let io = captureIO();
  t.equal(await outboxCommand(['list', '--journal', file], io), 0);
  t.equal(io.out(), 'outbox empty: nothing pending or failed\n');
  io = captureIO();
  t.equal(await outboxCommand(['list', '--state', 'failed', '--journal', file], io), 0);
  t.equal(io.out(), 'no failed messages\n');
  io = captureIO();
  t.equal(await outboxCommand(['list', '--json', '--journal', file], io), 0);
  t.same(JSON.parse(io.out()), { messages: [], truncated: false, backlog: { pending: 0, failed: 0, oldestCreatedAt: null } });
});

t.test('outbox retry (process): all, then one key; delivered and unknown keys exit 1', async (t) => {
  const { file } = prepare(t);
  const before = Date.now();
  const all = await runCliProcess(['outbox', 'retry', '--journal', file]);
  t.equal(all.code, 0, all.stderr);
  t.equal(all.stdout, `${ID}:contact-via-overflow\n${ID2}:no-contact\n`, 'oldest first');
  t.match(all.stderr, /2 messages set for retry; the running daemon picks them up within about a second/);
  const j = Journal.open(file, { create: false });
  t.teardown(() => j.close());
  const row = j.get(`${ID}:contact-via-overflow`);
  t.equal(row?.state, 'pending');
  t.same(row?.failedEndpoints, []);
  t.ok(row !== null && row.nextAt >= before && row.nextAt <= Date.now(), 'due now');
  t.same(j.due(Date.now()).map((r) => r.key), [`${ID}:contact-via-overflow`, `${ID2}:no-contact`]);

  j.failed(`${ID2}:no-contact`, 'refused');
  const one = await runCliProcess(['outbox', 'retry', `${ID2}:no-contact`, '--journal', file]);
  t.equal(one.code, 0, one.stderr);
  t.equal(one.stdout, `${ID2}:no-contact\n`);
  t.match(one.stderr, /^1 message set for retry/);
  t.equal(j.get(`${ID2}:no-contact`)?.state, 'pending');

  const delivered = await runCliProcess(['outbox', 'retry', `${ID}:no-contact`, '--journal', file]);
  t.equal(delivered.code, 1);
  t.match(delivered.stderr, new RegExp(`"${ID}:no-contact" was delivered at ${iso(T0 + 15_500)} to https://a\\.example/msg; it is not sent again`));
  const unknown = await runCliProcess(['outbox', 'retry', 'nope:no-contact', '--journal', file]);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /no message with key "nope:no-contact"/);
});

t.test('outbox retry: nothing to retry exits 0', async (t) => {
  const file = join(tempDir(t), 'empty.sqlite');
  Journal.open(file).close();
  const io = captureIO();
  t.equal(await runCli(['outbox', 'retry', '--journal', file], io), 0);
  t.equal(io.out(), 'nothing to retry: no pending or failed messages\n');
});

t.test('journal location: --config journal.path (relative to the working directory), --journal wins', async (t) => {
  const { dir } = prepare(t);
  writeFileSync(join(dir, 'amk.yaml'), 'node: psap-1\njournal:\n  path: journal.sqlite\n');
  const viaConfig = await runCliProcess(['outbox', 'list', '--config', 'amk.yaml'], { cwd: dir });
  t.equal(viaConfig.code, 0, viaConfig.stderr);
  t.match(viaConfig.stdout, /backlog: 1 pending, 1 failed/);
  const incident = await runCliProcess(['incident', '-c', join(dir, 'amk.yaml'), ID, '--json'], { cwd: dir });
  t.equal(incident.code, 0, incident.stderr);
  t.equal((JSON.parse(incident.stdout) as { request: { requestId: string } }).request.requestId, ID);

  writeFileSync(join(dir, 'elsewhere.yaml'), 'node: psap-1\njournal:\n  path: missing/journal.sqlite\n');
  const wins = await runCliProcess(['outbox', 'list', '--config', 'elsewhere.yaml', '--journal', 'journal.sqlite'], { cwd: dir });
  t.equal(wins.code, 0, wins.stderr);
  const missing = await runCliProcess(['outbox', 'list', '--config', 'elsewhere.yaml'], { cwd: dir });
  t.equal(missing.code, 1);
  t.match(missing.stderr, new RegExp(`journal ${escape(join(dir, 'missing', 'journal.sqlite'))} \\(journal.path in elsewhere.yaml\\) does not exist`));
  t.notOk(existsSync(join(dir, 'missing')), 'the CLI creates no journal and no directory');
});

t.test('journal location errors: invalid config, missing --journal file, not a database', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'bad.yaml'), 'node: psap-1\njournal:\n  pth: x\n');
  const bad = join(dir, 'bad.yaml');
  let io = captureIO();
  t.equal(await outboxCommand(['list', '--config', bad], io), 1);
  t.equal(io.err(), `${bad}: journal.pth: unknown key; did you mean "path"? (line 3)\n`, 'printed like check-config');
  t.equal(io.out(), '');

  io = captureIO();
  t.equal(await incidentCommand(['x', '--journal', join(dir, 'absent.sqlite')], io), 1);
  t.match(io.err(), /journal .*absent\.sqlite \(--journal\) does not exist/);
  t.notOk(existsSync(join(dir, 'absent.sqlite')));

  writeFileSync(join(dir, 'junk.sqlite'), 'this is not a database, just text that is long enough to look like a header........');
  io = captureIO();
  t.equal(await outboxCommand(['list', '--journal', join(dir, 'junk.sqlite')], io), 1);
  t.match(io.err(), /cannot open journal .*junk\.sqlite: file is not a database/);
});

t.test('outbox: usage errors exit 2, --help exits 0', async (t) => {
  const cases: [string[], RegExp][] = [
    [[], /no subcommand given/],
    [['purge'], /unknown subcommand "purge"/],
    [['list', '--state', 'sent'], /--state must be one of pending, failed, delivered, all/],
    [['list', '--limit', '0'], /--limit must be a positive integer/],
    [['list', '--limit', '2x'], /--limit must be a positive integer/],
    [['list', 'extra'], /unexpected argument "extra"/],
    [['retry', 'a', 'b'], /unexpected argument "b"/],
    [['retry', '--json'], /--json applies to "outbox list" only/],
    [['list', '--bogus'], /Unknown option '--bogus'/],
  ];
  for (const [argv, message] of cases) {
    const io = captureIO();
    t.equal(await outboxCommand(argv, io), 2, argv.join(' '));
    t.match(io.err(), message);
  }
  const io = captureIO();
  t.equal(await runCli(['outbox', '--help'], io), 0);
  t.equal(io.out(), OUTBOX_USAGE);
});
