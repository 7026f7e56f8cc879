// The answering desk is known from the answering leg and follows the call when the platform
// moves it: by REFER (the bridge re-dials) or by a re-INVITE naming another user.
import t from 'tap';
import { startSipp, runSipp, describeSipp } from '../helpers/sipp.js';
import { startTestBridge } from '../helpers/bridge.js';

const desks = [
  { id: 'desk-1', name: 'Desk 1', users: ['1001'] },
  { id: 'desk-2', name: 'Desk 2', users: ['1002'] },
];

t.test('REFER from the platform moves the call to another desk', async (t) => {
  const desk2 = startSipp(t, { scenario: 'calltaker-answer.xml' });
  await desk2.ready;
  const desk1 = startSipp(t, { scenario: 'calltaker-refer.xml', keys: { pause_ms: 200, refer_to: `sip:1002@127.0.0.1:${desk2.port}` } });
  await desk1.ready;
  const { bridge } = await startTestBridge(t, { callTakerTarget: `sip:1001@127.0.0.1:${desk1.port}`, desks });
  const seen: string[] = [];
  bridge.bus.on('call.answered', (e) => seen.push(`answered:${e.desk}`));
  bridge.bus.on('call.desk-changed', (e) => seen.push(`changed:${e.desk}:${e.via}`));
  const trunkP = runSipp(t, { scenario: 'trunk-wait-bye.xml', remote: `127.0.0.1:${bridge.port('udp')}` });
  setTimeout(() => bridge.b2bua.hangupAll('test over'), 2000);
  const trunk = await trunkP;
  t.equal(trunk.successful, 1, `trunk stayed up through the transfer: ${describeSipp(trunk)}`);
  t.notMatch(trunk.messages, /INVITE sip:[\s\S]*INVITE sip:/, 'the citizen was not re-INVITEd: its media stays anchored on the bridge');
  const d1 = await desk1.done;
  t.equal(d1.successful, 1, `desk 1: 202, NOTIFY 100/200, released by BYE: ${describeSipp(d1)}`);
  const d2 = await desk2.done;
  t.equal(d2.successful, 1, `desk 2 answered and got the BYE at the end: ${describeSipp(d2)}`);
  t.same(seen, ['answered:desk-1', 'changed:desk-2:refer']);
});

t.test('a re-INVITE naming another user updates the desk', async (t) => {
  const ct = startSipp(t, { scenario: 'calltaker-transfer-reinvite.xml', keys: { pause_ms: 200, new_desk: '1002' } });
  await ct.ready;
  const { bridge } = await startTestBridge(t, { callTakerTarget: `sip:1001@127.0.0.1:${ct.port}`, desks });
  const seen: string[] = [];
  bridge.bus.on('call.answered', (e) => seen.push(`answered:${e.desk}`));
  bridge.bus.on('call.desk-changed', (e) => seen.push(`changed:${e.desk}:${e.via}`));
  const trunkP = runSipp(t, { scenario: 'trunk-wait-bye.xml', remote: `127.0.0.1:${bridge.port('udp')}` });
  setTimeout(() => bridge.b2bua.hangupAll('test over'), 1500);
  t.equal((await trunkP).successful, 1);
  t.equal((await ct.done).successful, 1);
  t.same(seen, ['answered:desk-1', 'changed:desk-2:re-invite']);
});
