// Delivery of the message after a real SIPp-driven request: a receiver that is down (escalation
// at the deadline: tone, state, alarm, the secondary endpoint, the follow-up), one that answers
// 500 then 200 (one accepted copy by key), one that refuses (permanent → secondary at once),
// and a reload while a request runs (the request keeps its policy snapshot).
import t from 'tap';
import { flow, validateMessage, waitFor } from './helpers.js';
import { freePort } from '../helpers/ports.js';

/** Record the tones the call taker is played (and still play them). */
function spyTones(f: Awaited<ReturnType<typeof flow>>): string[] {
  const tones: string[] = [];
  const media = f.bridge.media;
  const play = media.tone.bind(media);
  media.tone = (callId, tone) => {
    if (tone) tones.push(tone);
    play(callId, tone);
  };
  return tones;
}

t.test('the primary endpoint is down: escalation at the deadline, the secondary takes the message and the follow-up', async (t) => {
  const dead = await freePort('tcp');
  const f = await flow(t, {
    home: { scenario: 'region-busy.xml' },
    region: { attempts: 1, escalationS: 1 },
    primaryUrl: () => `http://127.0.0.1:${dead}/down`,
    secondary: true,
    trunkHoldMs: 3500,
  });
  const tones = spyTones(f);
  const id = await f.requestId();
  await waitFor(() => (f.events['message.escalated']?.length ?? 0) > 0, 8000, 'escalation');
  const esc = f.events['message.escalated']![0]!;
  t.same([esc.type, esc.reason], ['no-contact', 'deadline']);
  const committed = f.events['message.committed']!.find((m) => m.type === 'no-contact')!;
  t.ok(esc.at - committed.at >= 950, `escalated ${esc.at - committed.at} ms after the commit (deadline 1 s)`);
  t.ok(f.events['alarm']?.some((a) => a.kind === 'message-escalated'), 'an alarm went out');
  t.ok(f.events['request.state']?.some((s) => s.state === 'escalation'), 'the lamp state says: phone the region');
  await waitFor(() => tones.includes('message-failed'), 3000, 'the phone-the-region tone');
  await waitFor(() => f.receiver.accepted().length >= 2, 8000, 'delivery through the secondary');
  const got = f.receiver.accepted();
  t.same(got.map((r) => [r.path, (r.json as { type: string }).type]), [['/secondary', 'no-contact'], ['/secondary', 'delivery-escalated']]);
  for (const r of got) t.ok(validateMessage(r.json), JSON.stringify(validateMessage.errors));
  t.equal((got[1]!.json as { refersTo: string }).refersTo, `${id}:no-contact`);
  t.notMatch(got[1]!.body, /Ingen kontakt til AMK/, 'the follow-up never carries the text');
  const rows = f.bridge.journal.messages(id);
  t.same(rows.map((r) => [r.type, r.state, r.deliveredTo?.endsWith('/secondary'), r.payload]), [['no-contact', 'delivered', true, null], ['delivery-escalated', 'delivered', true, null]], 'delivered, payload purged');
  await f.trunk;
});

t.test('the receiver answers 500, then 200: one accepted copy by key', async (t) => {
  const f = await flow(t, { home: { scenario: 'region-busy.xml' }, region: { attempts: 1 }, trunkHoldMs: 2000 });
  let n = 0;
  f.receiver.setScript(() => (++n === 1 ? { status: 500 } : { status: 200 }));
  const id = await f.requestId();
  await waitFor(() => f.receiver.accepted().length >= 1, 8000, 'delivery');
  t.equal(f.receiver.received.length, 2, 'two POSTs');
  t.same(f.receiver.received.map((r) => [r.key, r.status]), [[`${id}:no-contact`, 500], [`${id}:no-contact`, 200]], 'the same key both times');
  t.equal(f.receiver.accepted().length, 1);
  t.equal(f.events['message.escalated'], undefined, 'no escalation: delivered before the deadline');
  await f.trunk;
});

t.test('the primary refuses the message (400): escalation at once, the secondary takes it', async (t) => {
  const f = await flow(t, { home: { scenario: 'region-busy.xml' }, region: { attempts: 1 }, secondary: true, trunkHoldMs: 2500 });
  f.receiver.setScript((r) => (r.path === '/primary' ? { status: 400 } : { status: 201 }));
  await f.requestId();
  await waitFor(() => f.receiver.accepted().some((r) => r.path === '/secondary'), 8000, 'delivery through the secondary');
  t.same(f.events['message.escalated']?.filter((e) => e.type === 'no-contact').map((e) => e.reason), ['permanent-failure']);
  const refused = f.receiver.received.filter((r) => r.path === '/primary');
  t.ok(refused.every((r) => r.status === 400), 'the primary refused');
  t.equal(new Set(refused.map((r) => r.key)).size, refused.length, 'a permanent refusal is not retried there (one POST per message)');
  await f.trunk;
});

t.test('a reload while a request runs: the request keeps its policy, the next one takes the new', async (t) => {
  const f = await flow(t, { home: { scenario: 'region-busy.xml', calls: 3 }, region: { attempts: 2, spacingS: 1.5 }, trunkHoldMs: 5000 });
  const id = await f.requestId();
  await waitFor(() => f.attempts().some((a) => a.phase === 'failed'), 5000, 'attempt 1 failed');
  // New policy: one attempt. The running request was started with two.
  f.bridge.reload({ ...f.config, regions: f.config.regions.map((r) => (r.id === 'hovedstaden' ? { ...r, attempts: 1 } : r)) });
  await waitFor(() => f.receiver.accepted().length >= 1, 8000, 'the message');
  t.same(f.bridge.journal.attempts(id).map((a) => a.n), [1, 2], 'the running request made its two attempts');
  const callId = f.events['request.started']![0]!.callId;
  const second = f.bridge.conference.requestConferenceIn(callId, { trigger: 'cti' });
  t.equal(second.ok, true);
  const id2 = second.ok ? second.requestId : '';
  await waitFor(() => f.receiver.accepted().length >= 2, 8000, 'the second message');
  t.same(f.bridge.journal.attempts(id2).map((a) => a.n), [1], 'a new request takes the new policy: one attempt');
  await f.trunk;
});
