// 112 calls through the B2BUA between SIPp peers: a trunk (citizen) and the call-taker platform.
import t from 'tap';
import { startSipp, runSipp, describeSipp } from '../helpers/sipp.js';
import { startTestBridge, waitFor } from '../helpers/bridge.js';

async function setup(t: Tap.Test, calltaker: string, keys: Record<string, string | number> = {}, opts: { transport?: 'u1' | 't1' } = {}) {
  const ct = startSipp(t, { scenario: calltaker, keys, transport: opts.transport });
  await ct.ready;
  const tp = opts.transport === 't1' ? ';transport=tcp' : '';
  const { bridge } = await startTestBridge(t, { callTakerTarget: `sip:1001@127.0.0.1:${ct.port}${tp}` });
  const events: string[] = [];
  bridge.bus.on('call.answered', (e) => events.push(`answered:${e.desk}`));
  bridge.bus.on('call.ended', (e) => events.push(`ended:${e.by}`));
  return { ct, bridge, events };
}

t.test('a call flows trunk → bridge → call taker and the trunk hangs up', async (t) => {
  const { ct, bridge, events } = await setup(t, 'calltaker-answer.xml');
  const trunk = await runSipp(t, { scenario: 'trunk-call.xml', remote: `127.0.0.1:${bridge.port('udp')}` });
  t.equal(trunk.successful, 1, `trunk: ${describeSipp(trunk)}`);
  const ctr = await ct.done;
  t.equal(ctr.successful, 1, `call taker: ${describeSipp(ctr)}`);
  await waitFor(() => bridge.b2bua.activeCalls === 0, 3000, 'call cleaned up');
  t.same(events, ['answered:desk-1', 'ended:citizen'], 'desk identified from the answering leg');
});

t.test('emergency headers and the PIDF-LO part reach the call taker', async (t) => {
  const { ct, bridge } = await setup(t, 'calltaker-checks-headers.xml');
  const trunk = await runSipp(t, { scenario: 'trunk-call-multipart.xml', remote: `127.0.0.1:${bridge.port('udp')}` });
  t.equal(trunk.successful, 1, `trunk: ${describeSipp(trunk)}`);
  const ctr = await ct.done;
  t.equal(ctr.successful, 1, `call taker checks: ${describeSipp(ctr)}`);
});

t.test('the call taker hangs up: BYE reaches the trunk', async (t) => {
  const { ct, bridge, events } = await setup(t, 'calltaker-answer-bye.xml');
  const trunk = await runSipp(t, { scenario: 'trunk-wait-bye.xml', remote: `127.0.0.1:${bridge.port('udp')}` });
  t.equal(trunk.successful, 1, `trunk: ${describeSipp(trunk)}`);
  t.equal((await ct.done).successful, 1);
  await waitFor(() => events.includes('ended:calltaker'), 2000, 'end event');
});

t.test('the trunk cancels before answer: 487, and the call taker is cancelled', async (t) => {
  const { ct, bridge } = await setup(t, 'calltaker-ring-forever.xml');
  const trunk = await runSipp(t, { scenario: 'trunk-cancel.xml', remote: `127.0.0.1:${bridge.port('udp')}` });
  t.equal(trunk.successful, 1, `trunk: ${describeSipp(trunk)}`);
  const ctr = await ct.done;
  t.equal(ctr.successful, 1, `call taker got CANCEL: ${describeSipp(ctr)}`);
  await waitFor(() => bridge.b2bua.activeCalls === 0, 3000, 'call cleaned up');
});

t.test('re-INVITE from the trunk with a new SDP is answered on its leg (media is anchored)', async (t) => {
  const { ct, bridge } = await setup(t, 'calltaker-answer.xml');
  const trunk = await runSipp(t, { scenario: 'trunk-reinvite.xml', remote: `127.0.0.1:${bridge.port('udp')}` });
  t.equal(trunk.successful, 1, `trunk: ${describeSipp(trunk)}`);
  const answers = [...trunk.messages.matchAll(/o=amk-bridge (\d+) (\d+) IN IP4/g)].map((m) => `${m[1]}/${m[2]}`);
  t.equal(answers.length >= 2, true, 'both 200s carry our SDP');
  t.not(answers[0], answers.at(-1), 'the answer to the changed offer has a new o= version');
  const ctr = await ct.done;
  t.equal(ctr.successful, 1, `call taker: ${describeSipp(ctr)}`);
  t.notMatch(ctr.messages, /INVITE sip:[^\n]*SIP\/2\.0[\s\S]*INVITE sip:/, 'the call taker was not disturbed');
});

t.test('re-INVITE from the call taker is answered on its leg', async (t) => {
  const { ct, bridge } = await setup(t, 'calltaker-reinvite.xml');
  const trunkP = runSipp(t, { scenario: 'trunk-wait-bye.xml', remote: `127.0.0.1:${bridge.port('udp')}` });
  setTimeout(() => bridge.b2bua.hangupAll('test over'), 1500);
  const trunk = await trunkP;
  t.equal(trunk.successful, 1, `trunk: ${describeSipp(trunk)}`);
  const ctr = await ct.done;
  t.equal(ctr.successful, 1, `call taker got a 200 with our SDP: ${describeSipp(ctr)}`);
  t.notMatch(trunk.messages, /INVITE sip:[\s\S]*INVITE sip:/, 'the trunk was not disturbed');
});

t.test('hold from the trunk is passed on to the call taker, answered sendonly/recvonly', async (t) => {
  const { ct, bridge } = await setup(t, 'calltaker-answer.xml');
  const trunk = await runSipp(t, { scenario: 'trunk-hold.xml', remote: `127.0.0.1:${bridge.port('udp')}` });
  t.equal(trunk.successful, 1, `trunk: ${describeSipp(trunk)}`);
  t.match(trunk.messages, /SIP\/2\.0 200 OK[\s\S]*a=recvonly/, 'the bridge answered the hold recvonly');
  const ctr = await ct.done;
  t.equal(ctr.successful, 1, `call taker: ${describeSipp(ctr)}`);
  t.match(ctr.messages, /INVITE sip:[\s\S]*INVITE sip:[^\n]*\n[\s\S]*a=recvonly/, 'the call taker got a re-INVITE asking it to receive only');
});

t.test('calls over TCP', async (t) => {
  const { ct, bridge } = await setup(t, 'calltaker-answer.xml', {}, { transport: 't1' });
  const trunk = await runSipp(t, { scenario: 'trunk-call.xml', remote: `127.0.0.1:${bridge.port('tcp')}`, transport: 't1' });
  t.equal(trunk.successful, 1, `trunk: ${describeSipp(trunk)}`);
  t.equal((await ct.done).successful, 1);
});

t.test('retransmissions under 10 % loss on both sides', async (t) => {
  // The call taker lingers so a lost 200-to-BYE can be answered again when the BYE is resent.
  const ct = startSipp(t, { scenario: 'calltaker-answer.xml', calls: 10, lost: 10, timeoutS: 60, keys: { linger_ms: 4000 } });
  await ct.ready;
  const { bridge } = await startTestBridge(t, { callTakerTarget: `sip:1001@127.0.0.1:${ct.port}`, sip: { timers: { t1Ms: 100 } } });
  const trunk = await runSipp(t, { scenario: 'trunk-call.xml', remote: `127.0.0.1:${bridge.port('udp')}`, calls: 10, rate: 5, lost: 10, timeoutS: 60, keys: { hold_ms: 2500 } });
  t.equal(trunk.successful, 10, `trunk: ${describeSipp(trunk)}`);
  // SIPp's own loss also hits the call taker's last messages (a lost BYE retransmission after
  // it stopped lingering counts as its failure), so the bridge's view is the measure there.
  await ct.done;
  t.equal(bridge.b2bua.counters.callsAnswered, 10, 'all ten answered by the call taker through the bridge');
});
