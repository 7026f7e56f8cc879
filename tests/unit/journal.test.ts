import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { openDatabase, SCHEMA_VERSION } from '../../src/journal/db.js';
import { Journal } from '../../src/journal/journal.js';
import type { MessageType, OutboxCommit, RequestStart } from '../../src/journal/types.js';
import { messageCommit, requestStart, T0, tempDir } from '../journal/fixtures/process.js';


/** A fresh journal in its own directory, closed at teardown. */
function journal(t: Test): { j: Journal; file: string } {
  const file = join(tempDir(t), 'sub', 'journal.sqlite');
  const j = Journal.open(file);
  t.teardown(() => j.close());
  return { j, file };
}

/** The shared fixture, with the richer policy and context these tests look at. */
function request(id: string, over: Partial<RequestStart> = {}): RequestStart {
  return requestStart(id, { policy: { attempts: 2, ringTimerS: 11 }, context: { caller: '+4512345678', location: { lat: 55.67, lon: 12.56 } }, ...over });
}

/** The shared fixture; these tests also look for the caller in the payload. */
function message(requestId: string, type: MessageType, over: Partial<OutboxCommit> = {}): OutboxCommit {
  return messageCommit(requestId, type, {
    payload: JSON.stringify({ type, text: 'Ingen kontakt til AMK', caller: '+4512345678' }), createdAt: T0 + 1000, escalateAt: T0 + 61_000, ...over,
  });
}

t.test('open creates the file and its directories, with WAL and the current schema', async (t) => {
  const { j, file } = journal(t);
  t.ok(existsSync(file));
  const raw = new Database(file, { readonly: true });
  t.teardown(() => raw.close());
  t.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
  t.equal(raw.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  const indexes = (raw.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'`).all() as { name: string }[]).map((r) => r.name);
  for (const name of ['outbox_state_next_at', 'outbox_request_id', 'requests_call_id', 'requests_incident_id', 'attempts_request']) t.ok(indexes.includes(name), `index ${name}`);
  t.equal(j.path, file);
});

t.test('the connection is durable: WAL, synchronous FULL, secure delete, foreign keys, busy timeout', async (t) => {
  const db = openDatabase(join(tempDir(t), 'a', 'b', 'j.sqlite'));
  t.teardown(() => db.close());
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  t.equal(db.pragma('synchronous', { simple: true }), 2, 'FULL');
  t.equal(db.pragma('secure_delete', { simple: true }), 1);
  t.equal(db.pragma('foreign_keys', { simple: true }), 1);
  t.equal(db.pragma('busy_timeout', { simple: true }), 5000);
});

t.test('open with create: false refuses a missing file and creates nothing', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'absent', 'journal.sqlite');
  t.throws(() => Journal.open(file, { create: false }));
  t.notOk(existsSync(join(dir, 'absent')));
});

t.test('a file from a newer build is refused', async (t) => {
  const file = join(tempDir(t), 'j.sqlite');
  Journal.open(file).close();
  const raw = new Database(file);
  raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
  raw.close();
  t.throws(() => Journal.open(file), /newer than this build/);
});

t.test('requests: start, outcome (first sticks, context cleared), open requests', async (t) => {
  const { j } = journal(t);
  j.requestStarted(request('req-b', { startedAt: T0 + 10 }));
  j.requestStarted(request('req-a', { startedAt: T0, desk: null, test: true, trigger: 'auto' }));
  j.requestStarted(request('req-a', { startedAt: T0 + 99, region: 'other' }));

  const a = j.request('req-a');
  t.same(a, { ...request('req-a', { startedAt: T0, desk: null, test: true, trigger: 'auto' }), outcome: null, outcomeStage: null, outcomeRegion: null, outcomeAt: null }, 'a repeated start keeps the first');
  t.same(j.context('req-a'), { caller: '+4512345678', location: { lat: 55.67, lon: 12.56 } });
  t.same(j.openRequests().map((r) => r.requestId), ['req-a', 'req-b'], 'oldest first');

  t.equal(j.requestOutcome('req-a', 'contact', T0 + 5000, 'overflow', 'sjaelland'), true);
  t.equal(j.requestOutcome('req-a', 'no-contact', T0 + 6000), false, 'second outcome refused');
  t.equal(j.requestOutcome('nope', 'aborted', T0), false, 'unknown request');
  const after = j.request('req-a');
  t.equal(after?.outcome, 'contact');
  t.equal(after?.outcomeStage, 'overflow');
  t.equal(after?.outcomeRegion, 'sjaelland');
  t.equal(after?.outcomeAt, T0 + 5000);
  t.equal(after?.context, null);
  t.equal(j.context('req-a'), null, 'context cleared with the outcome');
  t.same(after?.policy, { attempts: 2, ringTimerS: 11 }, 'policy kept');
  t.same(j.openRequests().map((r) => r.requestId), ['req-b']);

  t.equal(j.requestOutcome('req-b', 'aborted', T0 + 7000), true);
  const b = j.request('req-b');
  t.equal(b?.outcomeStage, null);
  t.equal(b?.outcomeRegion, null);
  t.same(j.openRequests(), []);
  t.equal(j.request('nope'), null);
  t.equal(j.context('nope'), null);
});

t.test('a request without context stores null', async (t) => {
  const { j } = journal(t);
  j.requestStarted(request('r', { context: undefined }));
  t.equal(j.context('r'), null);
});

t.test('attempts: first 1xx and first end stick, ordered by n', async (t) => {
  const { j } = journal(t);
  j.requestStarted(request('r'));
  j.attemptStarted({ attemptId: 'r-2', requestId: 'r', n: 2, stage: 'home', region: 'hovedstaden', target: 'sip:amk@10.0.0.2', startedAt: T0 + 20_000 });
  j.attemptStarted({ attemptId: 'r-1', requestId: 'r', n: 1, stage: 'home', region: 'hovedstaden', target: 'sip:amk@10.0.0.2', startedAt: T0 + 100 });
  j.attemptStarted({ attemptId: 'r-3', requestId: 'r', n: 3, stage: 'buffer', region: 'hovedstaden', target: 'sip:buffer@10.0.0.3', startedAt: T0 + 40_000 });
  j.attemptProvisional('r-1', T0 + 300);
  j.attemptProvisional('r-1', T0 + 900);
  j.attemptEnded('r-1', { outcome: 'no-answer', status: 487, reason: 'Request Terminated', endedAt: T0 + 11_100, answeredAt: null, crossedCancel: false });
  j.attemptEnded('r-1', { outcome: 'answered', status: 200, reason: 'OK', endedAt: T0 + 12_000, answeredAt: T0 + 12_000, crossedCancel: true });
  j.attemptEnded('r-2', { outcome: 'answered', status: 200, reason: 'OK', endedAt: T0 + 23_000, answeredAt: T0 + 23_000, crossedCancel: true });

  const rows = j.attempts('r');
  t.same(rows.map((a) => a.n), [1, 2, 3]);
  t.same(rows[0], {
    attemptId: 'r-1', requestId: 'r', n: 1, stage: 'home', region: 'hovedstaden', target: 'sip:amk@10.0.0.2', startedAt: T0 + 100,
    firstResponseAt: T0 + 300, outcome: 'no-answer', status: 487, reason: 'Request Terminated', endedAt: T0 + 11_100, answeredAt: null, crossedCancel: false,
  });
  t.equal(rows[1]?.answeredAt, T0 + 23_000);
  t.equal(rows[1]?.crossedCancel, true);
  t.equal(rows[1]?.firstResponseAt, null);
  t.same(
    { outcome: rows[2]?.outcome, status: rows[2]?.status, endedAt: rows[2]?.endedAt, crossedCancel: rows[2]?.crossedCancel },
    { outcome: null, status: null, endedAt: null, crossedCancel: false },
    'running attempt',
  );
  t.same(j.attempts('other'), []);
  t.throws(() => j.attemptStarted({ attemptId: 'x', requestId: 'missing', n: 1, stage: 'home', region: 'h', target: 't', startedAt: T0 }), /FOREIGN KEY/, 'attempts belong to a started request');
});

t.test('commitMessage: new row pending and due at once; idempotent on requestId:type', async (t) => {
  const { j } = journal(t);
  j.requestStarted(request('r'));
  const m = message('r', 'no-contact');
  const first = j.commitMessage(m);
  t.equal(first.created, true);
  t.same(first.row, {
    key: 'r:no-contact', requestId: 'r', type: 'no-contact', region: 'hovedstaden', endpoints: m.endpoints, payload: m.payload,
    state: 'pending', tries: 0, nextAt: m.createdAt, escalateAt: m.escalateAt, escalated: false, failedEndpoints: [], lastError: null,
    createdAt: m.createdAt, deliveredAt: null, deliveredTo: null, test: false,
  });
  const again = j.commitMessage({ ...m, payload: '{"other":true}', createdAt: T0 + 9999 });
  t.equal(again.created, false);
  t.same(again.row, first.row, 'the existing row, unchanged');
  t.same(j.get('r:no-contact'), first.row);
  t.equal(j.get('r:citizen-hangup'), null);
  t.equal(j.commitMessage(message('r', 'citizen-hangup', { test: true })).row.test, true);
});

t.test('commitMessage with an outcome: same transaction, first outcome sticks, context cleared', async (t) => {
  const { j, file } = journal(t);
  j.requestStarted(request('r'));
  j.commitMessage(message('r', 'no-contact'), { outcome: 'no-contact', at: T0 + 1000 });
  const r = j.request('r');
  t.equal(r?.outcome, 'no-contact');
  t.equal(r?.outcomeAt, T0 + 1000);
  t.equal(r?.outcomeStage, null);
  t.equal(j.context('r'), null);
  j.commitMessage(message('r', 'contact-via-overflow'), { outcome: 'contact', at: T0 + 2000 });
  t.equal(j.request('r')?.outcome, 'no-contact', 'first outcome sticks');
  t.equal(j.messages('r').length, 2);

  // A failing outcome write rolls the message back with it: nothing half-done.
  j.requestStarted(request('s'));
  const raw = new Database(file);
  raw.exec(`CREATE TRIGGER refuse_outcome BEFORE UPDATE OF outcome ON requests BEGIN SELECT RAISE(ABORT, 'outcome refused'); END`);
  raw.close();
  t.throws(() => j.commitMessage(message('s', 'no-contact'), { outcome: 'no-contact', at: T0 }), /outcome refused/);
  t.equal(j.get('s:no-contact'), null, 'message rolled back');
  t.equal(j.commitMessage(message('s', 'no-contact')).created, true, 'without the outcome it commits');
});

t.test('due: oldest first then MESSAGE_ORDER; follow-ups wait for the no-contact delivery', async (t) => {
  const { j } = journal(t);
  for (const id of ['a', 'b', 'c']) j.requestStarted(request(id));
  // Same createdAt for a's messages: MESSAGE_ORDER decides (committed in reverse order on purpose).
  j.commitMessage(message('a', 'citizen-hangup', { createdAt: T0 + 100 }));
  j.commitMessage(message('a', 'contact-via-overflow', { createdAt: T0 + 100 }));
  j.commitMessage(message('a', 'no-contact', { createdAt: T0 + 100 }));
  j.commitMessage(message('b', 'no-contact', { createdAt: T0 + 50 }));
  // c has only a follow-up (no no-contact row at all): not gated.
  j.commitMessage(message('c', 'citizen-hangup', { createdAt: T0 + 200 }));

  t.same(j.due(T0 + 1000).map((r) => r.key), ['b:no-contact', 'a:no-contact', 'c:citizen-hangup']);
  t.same(j.due(T0 + 150).map((r) => r.key), ['b:no-contact', 'a:no-contact'], 'not yet created rows are not due');
  t.same(j.due(T0 + 1000, 1).map((r) => r.key), ['b:no-contact'], 'limit');
  t.same(j.due(T0 + 10), []);
  t.equal(j.nextDueAt(), T0 + 50);

  // A retry pushes a's no-contact later: a's follow-ups stay gated while it is pending.
  j.retryLater('a:no-contact', T0 + 5000, 'HTTP 503');
  j.delivered('b:no-contact', 'https://a.example/msg', T0 + 1100);
  t.same(j.due(T0 + 1200).map((r) => r.key), ['c:citizen-hangup']);
  t.equal(j.nextDueAt(), T0 + 200, 'gated follow-ups do not count');

  // A failed no-contact still holds the follow-ups back.
  j.failed('a:no-contact', 'every endpoint refused');
  t.same(j.due(T0 + 9000).map((r) => r.key), ['c:citizen-hangup']);
  j.delivered('c:citizen-hangup', 'https://a.example/msg', T0 + 1300);
  t.equal(j.nextDueAt(), null, 'nothing can become due');

  j.retry('a:no-contact', T0 + 9000);
  j.delivered('a:no-contact', 'https://b.example/msg', T0 + 9100);
  t.same(j.due(T0 + 9200).map((r) => r.key), ['a:contact-via-overflow', 'a:citizen-hangup'], 'released in MESSAGE_ORDER');
  t.equal(j.nextDueAt(), T0 + 100);
});

t.test('delivered: state, time and endpoint; payload purged; first delivery sticks', async (t) => {
  const { j, file } = journal(t);
  j.requestStarted(request('r'));
  j.commitMessage(message('r', 'no-contact'));
  j.delivered('r:no-contact', 'https://b.example/msg', T0 + 2000);
  j.delivered('r:no-contact', 'https://a.example/msg', T0 + 3000);
  const row = j.get('r:no-contact');
  t.equal(row?.state, 'delivered');
  t.equal(row?.deliveredAt, T0 + 2000);
  t.equal(row?.deliveredTo, 'https://b.example/msg');
  t.equal(row?.payload, null, 'payload purged');
  t.same(j.due(T0 + 10_000), []);
  j.retryLater('r:no-contact', T0 + 5000, 'late');
  t.equal(j.get('r:no-contact')?.tries, 0, 'a delivered row is not touched by retryLater');
  t.same(j.retry('r:no-contact'), [], 'nor by retry');

  // The purge reaches the file, not only the row we read back.
  j.checkpoint();
  const raw = new Database(file, { readonly: true });
  t.teardown(() => raw.close());
  t.equal((raw.prepare('SELECT payload FROM outbox WHERE key = ?').get('r:no-contact') as { payload: string | null }).payload, null);
});

t.test('retryLater, endpointFailed, failed, escalated', async (t) => {
  const { j } = journal(t);
  j.requestStarted(request('r'));
  j.commitMessage(message('r', 'no-contact'));
  const key = 'r:no-contact';

  j.retryLater(key, T0 + 4000, 'timeout after 5000 ms');
  let row = j.get(key);
  t.same({ tries: row?.tries, nextAt: row?.nextAt, lastError: row?.lastError, state: row?.state }, { tries: 1, nextAt: T0 + 4000, lastError: 'timeout after 5000 ms', state: 'pending' });

  j.endpointFailed(key, 'https://a.example/msg', 'HTTP 400 Bad Request');
  j.endpointFailed(key, 'https://a.example/msg', 'HTTP 404 Not Found');
  row = j.get(key);
  t.same(row?.failedEndpoints, ['https://a.example/msg'], 'an endpoint is listed once');
  t.equal(row?.tries, 3);
  t.equal(row?.lastError, 'HTTP 404 Not Found');
  j.endpointFailed(key, 'https://b.example/msg', 'HTTP 403 Forbidden');
  t.same(j.get(key)?.failedEndpoints, ['https://a.example/msg', 'https://b.example/msg']);

  t.same(j.escalationsDue(T0 + 60_000), []);
  t.same(j.escalationsDue(T0 + 61_000).map((r) => r.key), [key]);
  j.escalated(key, T0 + 61_500);
  j.escalated(key, T0 + 99_000);
  t.equal(j.get(key)?.escalated, true);
  t.equal(j.messages('r')[0]?.escalatedAt, T0 + 61_500, 'the first escalation time is kept');
  t.same(j.escalationsDue(T0 + 100_000), [], 'escalates once');

  j.failed(key, 'every endpoint failed permanently');
  row = j.get(key);
  t.equal(row?.state, 'failed');
  t.equal(row?.lastError, 'every endpoint failed permanently');
  t.same(j.due(T0 + 1e9), []);
  j.retryLater(key, T0 + 1, 'ignored');
  t.equal(j.get(key)?.tries, 4, 'a failed row waits for the operator');
});

t.test('escalationsDue: pending, not escalated, escalateAt passed; oldest first', async (t) => {
  const { j } = journal(t);
  for (const id of ['a', 'b', 'c']) j.requestStarted(request(id));
  j.commitMessage(message('a', 'no-contact', { createdAt: T0 + 20, escalateAt: T0 + 1000 }));
  j.commitMessage(message('b', 'no-contact', { createdAt: T0 + 10, escalateAt: T0 + 1000 }));
  j.commitMessage(message('c', 'no-contact', { createdAt: T0, escalateAt: T0 + 1000 }));
  j.delivered('c:no-contact', 'x', T0 + 500);
  t.same(j.escalationsDue(T0 + 1000).map((r) => r.key), ['b:no-contact', 'a:no-contact']);
});

t.test('retry: failed and pending rows back to pending, due now, endpoint failures forgotten', async (t) => {
  const { j } = journal(t);
  for (const id of ['a', 'b', 'c']) j.requestStarted(request(id));
  j.commitMessage(message('a', 'no-contact', { createdAt: T0 }));
  j.commitMessage(message('b', 'no-contact', { createdAt: T0 + 10 }));
  j.commitMessage(message('c', 'no-contact', { createdAt: T0 + 20 }));
  j.endpointFailed('a:no-contact', 'https://a.example/msg', 'HTTP 400');
  j.failed('a:no-contact', 'all failed');
  j.retryLater('b:no-contact', T0 + 999_999, 'HTTP 503');
  j.delivered('c:no-contact', 'https://a.example/msg', T0 + 30);

  t.same(j.retry('a:no-contact', T0 + 5000), ['a:no-contact']);
  const a = j.get('a:no-contact');
  t.same({ state: a?.state, nextAt: a?.nextAt, failedEndpoints: a?.failedEndpoints, tries: a?.tries }, { state: 'pending', nextAt: T0 + 5000, failedEndpoints: [], tries: 1 });
  t.same(j.retry('nope'), []);
  t.same(j.retry('c:no-contact'), [], 'delivered rows stay delivered');

  j.failed('a:no-contact', 'again');
  const before = Date.now();
  t.same(j.retry(), ['a:no-contact', 'b:no-contact'], 'all of them, oldest first');
  const b = j.get('b:no-contact');
  t.ok(b !== null && b.nextAt >= before && b.nextAt <= Date.now(), 'now by default');
  t.equal(j.get('c:no-contact')?.state, 'delivered');
});

t.test('backlog and list', async (t) => {
  const { j } = journal(t);
  t.same(j.backlog(), { pending: 0, failed: 0, oldestCreatedAt: null });
  t.same(j.list('all'), []);
  for (const id of ['a', 'b', 'c', 'd']) j.requestStarted(request(id));
  j.commitMessage(message('a', 'no-contact', { createdAt: T0 }));
  j.commitMessage(message('b', 'no-contact', { createdAt: T0 + 10 }));
  j.commitMessage(message('c', 'no-contact', { createdAt: T0 + 20 }));
  j.commitMessage(message('d', 'no-contact', { createdAt: T0 + 30 }));
  j.commitMessage(message('d', 'citizen-hangup', { createdAt: T0 + 30 }));
  j.delivered('a:no-contact', 'x', T0 + 100);
  j.failed('c:no-contact', 'refused');

  t.same(j.backlog(), { pending: 3, failed: 1, oldestCreatedAt: T0 + 10 });
  t.same(j.list('all').map((r) => r.key), ['d:citizen-hangup', 'd:no-contact', 'c:no-contact', 'b:no-contact', 'a:no-contact'], 'newest first');
  t.same(j.list('all', 2).map((r) => r.key), ['d:citizen-hangup', 'd:no-contact']);
  t.same(j.list('pending').map((r) => r.key), ['d:citizen-hangup', 'd:no-contact', 'b:no-contact']);
  t.same(j.list('failed').map((r) => r.key), ['c:no-contact']);
  t.same(j.list('delivered').map((r) => r.key), ['a:no-contact']);
});

t.test('messages: a request\'s rows in MESSAGE_ORDER', async (t) => {
  const { j } = journal(t);
  j.requestStarted(request('r'));
  j.commitMessage(message('r', 'delivery-escalated', { createdAt: T0 + 1 }));
  j.commitMessage(message('r', 'citizen-hangup', { createdAt: T0 + 5 }));
  j.commitMessage(message('r', 'no-contact', { createdAt: T0 + 9 }));
  t.same(j.messages('r').map((m) => m.type), ['no-contact', 'citizen-hangup', 'delivery-escalated']);
  t.same(j.messages('other'), []);
});

t.test('find: by id, id prefix (>= 8 chars), Call-ID, incident URN, emergency call URN; newest first', async (t) => {
  const { j } = journal(t);
  j.requestStarted(request('0f3a9c1e-1111-4000-8000-000000000001', { startedAt: T0, callId: 'shared@host' }));
  j.requestStarted(request('0f3a9c1e-2222-4000-8000-000000000002', { startedAt: T0 + 10, callId: 'shared@host' }));
  j.requestStarted(request('7b00aa11-3333-4000-8000-000000000003', { startedAt: T0 + 20 }));
  j.requestStarted(request('0f3a9c1e', { startedAt: T0 + 30 }));
  const ids = (q: string): string[] => j.find(q).map((r) => r.requestId);

  t.same(ids('7b00aa11-3333-4000-8000-000000000003'), ['7b00aa11-3333-4000-8000-000000000003'], 'whole id');
  t.same(ids('7b00aa11'), ['7b00aa11-3333-4000-8000-000000000003'], 'unique prefix');
  t.same(ids('0f3a9c1e-'), ['0f3a9c1e-2222-4000-8000-000000000002', '0f3a9c1e-1111-4000-8000-000000000001'], 'ambiguous prefix: all, newest first');
  t.same(ids('0f3a9c1e'), ['0f3a9c1e'], 'a whole id wins over the ids it prefixes');
  t.same(ids('7b00aa1'), [], 'prefixes shorter than 8 characters do not match');
  t.same(ids('shared@host'), ['0f3a9c1e-2222-4000-8000-000000000002', '0f3a9c1e-1111-4000-8000-000000000001'], 'Call-ID');
  t.same(ids('urn:emergency:uid:incidentid:7b00aa11-3333-4000-8000-000000000003:psap.example'), ['7b00aa11-3333-4000-8000-000000000003'], 'incident URN');
  t.same(ids('urn:emergency:uid:callid:7b00aa11-3333-4000-8000-000000000003:psap.example'), ['7b00aa11-3333-4000-8000-000000000003'], 'emergency call URN');
  t.same(ids('7B00AA11'), [], 'ids are case-sensitive');
  t.same(ids('%%%%%%%%'), [], 'no pattern characters');
  t.same(ids('nothing-like-this'), []);
});

t.test('reopen after close keeps everything', async (t) => {
  const file = join(tempDir(t), 'j.sqlite');
  const j1 = Journal.open(file);
  j1.requestStarted(request('r'));
  j1.attemptStarted({ attemptId: 'r-1', requestId: 'r', n: 1, stage: 'home', region: 'hovedstaden', target: 'sip:amk@x', startedAt: T0 + 1 });
  j1.attemptProvisional('r-1', T0 + 2);
  j1.attemptEnded('r-1', { outcome: 'busy', status: 486, reason: 'Busy Here', endedAt: T0 + 3, answeredAt: null, crossedCancel: false });
  j1.commitMessage(message('r', 'no-contact'), { outcome: 'no-contact', at: T0 + 4 });
  j1.commitMessage(message('r', 'citizen-hangup'));
  j1.endpointFailed('r:citizen-hangup', 'https://a.example/msg', 'HTTP 410');
  j1.delivered('r:no-contact', 'https://b.example/msg', T0 + 5);
  j1.escalated('r:citizen-hangup', T0 + 6);
  const snapshot = { request: j1.request('r'), attempts: j1.attempts('r'), messages: j1.messages('r'), backlog: j1.backlog() };
  j1.close();
  j1.close();

  const j2 = Journal.open(file);
  t.teardown(() => j2.close());
  t.same({ request: j2.request('r'), attempts: j2.attempts('r'), messages: j2.messages('r'), backlog: j2.backlog() }, snapshot);
  t.equal(snapshot.messages[1]?.failedEndpoints[0], 'https://a.example/msg');
  t.equal(snapshot.request?.outcome, 'no-contact');
  t.equal(snapshot.attempts[0]?.status, 486);
});
