// The counted conference-in procedure against SIPp regions and a real HTTP message receiver:
// two attempts, spacing, digest, a 200 crossing the CANCEL, overflow after the message, and
// exactly one "Ingen kontakt til AMK" per request.
import t from 'tap';
import { flow, attemptLog, checkMessages, settle, waitFor, TEXT } from './helpers.js';
import { describeSipp } from '../helpers/sipp.js';

t.test('the region never answers: 2 attempts, the message, then the overflow region answers → follow-up', async (t) => {
  const f = await flow(t, {
    home: { scenario: 'region-ring.xml', calls: 2 },
    overflow: { scenario: 'region-answer.xml', policy: 'after-message' },
    trunkHoldMs: 5000,
  });
  const id = await f.requestId();
  await waitFor(() => f.receiver.accepted().length >= 2, 15_000, 'two messages');
  const r = await f.home.done;
  t.equal(r.successful, 2, `the home region saw two attempts, each cancelled: ${describeSipp(r)}`);
  t.same(attemptLog(f), [[1, 'no-answer', 487], [2, 'no-answer', 487], [3, 'answered', 200]]);
  const [noContact, follow] = checkMessages(t, f, ['no-contact', 'contact-via-overflow']);
  t.equal(noContact!.text, TEXT);
  t.equal(noContact!.requestId, id);
  t.equal(follow!.refersTo, `${id}:no-contact`);
  t.same((noContact!.attempts as { sipStatus: number }[]).map((a) => a.sipStatus), [487, 487], 'attempt log as SIPp saw it');
  t.match(f.receiver.accepted()[0]!.headers['idempotency-key'], `${id}:no-contact`);
  await settle(f);
  t.equal((await f.overflow!.done).successful, 1, 'the overflow region got the citizen and the BYE');
  const story = f.bridge.journal.request(id)!;
  t.equal(story.outcome, 'no-contact');
  t.same(f.bridge.journal.attempts(id).map((a) => [a.n, a.stage, a.region]), [[1, 'home', 'hovedstaden'], [2, 'home', 'hovedstaden'], [3, 'overflow', 'sjaelland']]);
});

t.test('answered on attempt 2: contact, no message', async (t) => {
  const f = await flow(t, { home: { scenario: 'region-answer-second.xml', calls: 2 }, trunkHoldMs: 3500 });
  const id = await f.requestId();
  await settle(f);
  const r = await f.home.done;
  t.equal(r.successful, 2, describeSipp(r));
  t.same(attemptLog(f), [[1, 'no-answer', 487], [2, 'answered', 200]]);
  t.equal(f.bridge.journal.request(id)!.outcome, 'contact');
  t.same(f.receiver.received, [], 'no message on contact');
});

t.test('486 at once, twice: attempt 2 waits for the spacing; then the message', async (t) => {
  const f = await flow(t, { home: { scenario: 'region-busy.xml', calls: 2 }, region: { ringTimerS: 1 }, trunkHoldMs: 2500 });
  await waitFor(() => f.receiver.accepted().length >= 1, 8000, 'the message');
  const starts = f.attempts().filter((a) => a.phase === 'started').map((a) => a.at);
  t.equal(starts.length, 2);
  t.ok(starts[1]! - starts[0]! >= 990, `attempt 2 started ${starts[1]! - starts[0]!} ms after attempt 1 (spacing 1000 ms)`);
  t.same(attemptLog(f), [[1, 'busy', 486], [2, 'busy', 486]]);
  const [m] = checkMessages(t, f, ['no-contact']);
  t.equal(m!.reason, 'attempts-exhausted');
  await settle(f);
});

t.test('a 401 challenge then an answer is one attempt', async (t) => {
  const f = await flow(t, {
    home: { scenario: 'region-401.xml', keys: { auth_user: 'amk-bridge', auth_pass: 'secret' } },
    region: { auth: { username: 'amk-bridge', password: 'secret' } },
    trunkHoldMs: 2500,
  });
  const id = await f.requestId();
  await settle(f);
  t.equal((await f.home.done).successful, 1);
  t.same(attemptLog(f), [[1, 'answered', 200]]);
  t.equal(f.bridge.journal.attempts(id).length, 1);
  t.same(f.receiver.received, []);
});

t.test('the ring timer runs out while their 200 crosses our CANCEL: contact', async (t) => {
  const f = await flow(t, { home: { scenario: 'region-200-crosses-cancel.xml' }, region: { ringTimerS: 0.5 }, trunkHoldMs: 2500 });
  const id = await f.requestId();
  await settle(f);
  const answered = f.attempts().find((a) => a.phase === 'answered');
  t.equal(answered?.crossedCancel, true);
  t.equal(f.attempts().filter((a) => a.phase === 'started').length, 1, 'no second attempt');
  t.equal(f.bridge.journal.request(id)!.outcome, 'contact');
  t.same(f.receiver.received, []);
});

