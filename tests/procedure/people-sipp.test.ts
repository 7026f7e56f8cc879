// The procedure when people act: the citizen or the call taker hangs up during an attempt, a
// second *1 while one runs; and the buffer queue and overflow before the message. SIPp regions
// and a real HTTP message receiver.
import t from 'tap';
import { flow, attemptLog, checkMessages, settle, waitFor } from './helpers.js';

t.test('the citizen hangs up during attempt 1: CANCEL, and the message (reason citizen-hangup)', async (t) => {
  const f = await flow(t, { home: { scenario: 'region-ring.xml' }, region: { ringTimerS: 5 }, trunkHoldMs: 900 });
  const id = await f.requestId();
  await waitFor(() => f.receiver.accepted().length >= 1, 8000, 'the message');
  const [m] = checkMessages(t, f, ['no-contact']);
  t.equal(m!.reason, 'citizen-hangup');
  t.same(attemptLog(f), [[1, 'citizen-hangup', null]]);
  t.equal((await f.home.done).successful, 1, 'the region got the CANCEL');
  t.equal(f.bridge.journal.request(id)!.outcome, 'no-contact');
  await settle(f);
});

t.test('the call taker hangs up during attempt 1: the procedure goes on; the region answers and gets the citizen', async (t) => {
  const f = await flow(t, {
    home: { scenario: 'region-answer.xml', keys: { answer_ms: 800 } },
    region: { ringTimerS: 3 },
    calltaker: { scenario: 'calltaker-trigger-bye.xml', keys: { bye_ms: 400 } },
    trunkHoldMs: 3000,
  });
  const id = await f.requestId();
  t.equal((await f.calltaker.done).successful, 1, 'the call taker left');
  await settle(f);
  t.equal((await f.home.done).successful, 1, 'the region answered and got the BYE when the citizen left');
  t.equal(f.bridge.journal.request(id)!.outcome, 'contact');
  t.equal((await f.trunk).successful, 1, 'the citizen stayed connected');
});

t.test('the call taker hangs up and nobody answers: the message is still sent', async (t) => {
  const f = await flow(t, {
    home: { scenario: 'region-busy.xml', calls: 2 },
    region: { ringTimerS: 0.4 },
    calltaker: { scenario: 'calltaker-trigger-bye.xml', keys: { bye_ms: 400 } },
    trunkHoldMs: 2500,
  });
  await waitFor(() => f.receiver.accepted().length >= 1, 8000, 'the message');
  checkMessages(t, f, ['no-contact']);
  await settle(f);
});

t.test('the buffer queue answers after the primary attempts', async (t) => {
  const f = await flow(t, {
    home: { scenario: 'region-busy.xml', calls: 2 },
    homeBuffer: { scenario: 'region-answer.xml' },
    region: { ringTimerS: 0.5, spacingS: 0.1 },
    trunkHoldMs: 2500,
  });
  const id = await f.requestId();
  await settle(f);
  t.same(attemptLog(f), [[1, 'busy', 486], [2, 'busy', 486], [3, 'answered', 200]]);
  const req = f.bridge.journal.request(id)!;
  t.same([req.outcome, req.outcomeStage], ['contact', 'buffer']);
  t.same(f.receiver.received, []);
});

t.test('overflow before the message: the overflow region answers, no message', async (t) => {
  const f = await flow(t, {
    home: { scenario: 'region-busy.xml', calls: 2 },
    overflow: { scenario: 'region-answer.xml', policy: 'before-message' },
    region: { spacingS: 0.1 },
    trunkHoldMs: 2500,
  });
  const id = await f.requestId();
  await settle(f);
  t.same(attemptLog(f), [[1, 'busy', 486], [2, 'busy', 486], [3, 'answered', 200]]);
  const req = f.bridge.journal.request(id)!;
  t.same([req.outcome, req.outcomeStage, req.outcomeRegion], ['contact', 'overflow', 'sjaelland']);
  t.same(f.receiver.received, []);
});

t.test('a second *1 while a request runs is refused', async (t) => {
  const f = await flow(t, {
    home: { scenario: 'region-ring.xml', calls: 2 },
    calltaker: { scenario: 'calltaker-info-trigger.xml' },
    region: { ringTimerS: 1 },
    trunkHoldMs: 2000,
  });
  await f.requestId();
  const r = f.bridge.conference.requestConferenceIn(f.events['request.started']![0]!.callId, { trigger: 'cti' });
  t.same(r, { ok: false, error: 'a conference-in is already running' });
  t.equal(f.events['conference.refused']?.length, 1);
  await settle(f);
});
