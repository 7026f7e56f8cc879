// The conference-in entry point reached by SIP INFO digits from the call taker: the outbound
// region leg, its headers, the ring timer, CANCEL rules, digest, and a 200 crossing our CANCEL.
import t from 'tap';
import { startSipp, runSipp, describeSipp } from '../helpers/sipp.js';
import { startTestBridge, waitFor } from '../helpers/bridge.js';
import type { BridgeEvents } from '../../src/core/events.js';

type Attempt = BridgeEvents['conference.attempt'];

async function conference(t: Tap.Test, region: string, opts: { ringTimerS?: number; regionKeys?: Record<string, string | number>; auth?: { username: string; password: string }; holdMs?: number; digits?: [string, string] } = {}) {
  const amk = startSipp(t, { scenario: region, keys: opts.regionKeys ?? {}, timeoutS: 20 });
  const ct = startSipp(t, { scenario: 'calltaker-info-trigger.xml', keys: { pause_ms: 200, dtmf1: opts.digits?.[0] ?? '*', dtmf2: opts.digits?.[1] ?? '1' }, timeoutS: 20 });
  await Promise.all([amk.ready, ct.ready]);
  const { bridge } = await startTestBridge(t, {
    callTakerTarget: `sip:1001@127.0.0.1:${ct.port}`,
    regionTargets: [`sip:amk@127.0.0.1:${amk.port}`],
    region: { ringTimerS: opts.ringTimerS ?? 2, auth: opts.auth ?? null, attempts: 1 },
    conference: { interDigitMs: 150 },
  });
  const attempts: Attempt[] = [];
  bridge.bus.on('conference.attempt', (e) => attempts.push(e));
  const trunk = runSipp(t, { scenario: 'trunk-call.xml', remote: `127.0.0.1:${bridge.port('udp')}`, keys: { hold_ms: opts.holdMs ?? 3000 }, timeoutS: 20 });
  return { amk, ct, bridge, attempts, trunk };
}

const phases = (a: Attempt[]) => a.map((x) => x.phase);

t.test('*1 by INFO dials the region with esnet.1, Call-Info and PAI; it answers', async (t) => {
  const { amk, ct, attempts, trunk, bridge } = await conference(t, 'region-answer.xml');
  const tr = await trunk;
  t.equal(tr.successful, 1, `trunk: ${describeSipp(tr)}`);
  const ar = await amk.done;
  t.equal(ar.successful, 1, `region (checks headers, gets BYE when the citizen leaves): ${describeSipp(ar)}`);
  t.equal((await ct.done).successful, 1);
  t.same(phases(attempts), ['started', 'ringing', 'answered']);
  t.match(ar.messages, /INVITE sip:amk@[\s\S]*Resource-Priority: esnet\.1/);
  await waitFor(() => bridge.b2bua.activeCalls === 0, 3000, 'call ended');
});

t.test('ring timer: CANCEL after the 1xx, attempt ends cancelled', async (t) => {
  const { amk, attempts, trunk } = await conference(t, 'region-ring.xml', { ringTimerS: 0.6 });
  const ar = await amk.done;
  t.equal(ar.successful, 1, `region got CANCEL: ${describeSipp(ar)}`);
  await trunk;
  t.same(phases(attempts), ['started', 'ringing', 'cancelled']);
  t.equal(attempts[2]!.status, 487);
});

t.test('busy: 486 ends the attempt as failed', async (t) => {
  const { amk, attempts, trunk } = await conference(t, 'region-busy.xml');
  t.equal((await amk.done).successful, 1);
  await trunk;
  t.same(phases(attempts), ['started', 'failed']);
  t.equal(attempts[1]!.status, 486);
});

t.test('digest: a 401 challenge is answered inside the same attempt', async (t) => {
  const { amk, attempts, trunk } = await conference(t, 'region-401.xml', {
    auth: { username: 'amk-bridge', password: 'secret' },
    regionKeys: { auth_user: 'amk-bridge', auth_pass: 'secret' },
  });
  const tr = await trunk;
  t.equal(tr.successful, 1);
  const ar = await amk.done;
  t.equal(ar.successful, 1, `region verified the Authorization: ${describeSipp(ar)}`);
  t.same(phases(attempts), ['started', 'ringing', 'answered'], 'one attempt, not two');
});

t.test('no CANCEL before a 1xx: the CANCEL waits for the late 180', async (t) => {
  const { amk, attempts, trunk } = await conference(t, 'region-no-1xx.xml', { ringTimerS: 0.3, regionKeys: { silence_ms: 1500 }, holdMs: 4000 });
  const ar = await amk.done;
  t.equal(ar.successful, 1, `region saw no CANCEL before its 180: ${describeSipp(ar)}`);
  await trunk;
  const m = ar.messages;
  t.ok(m.indexOf('CANCEL sip:') > m.indexOf('SIP/2.0 180'), 'CANCEL only after the 180');
  t.equal(attempts.at(-1)!.phase, 'cancelled');
});

t.test('a 200 crossing our CANCEL is contact', async (t) => {
  const { amk, attempts, trunk } = await conference(t, 'region-200-crosses-cancel.xml', { ringTimerS: 0.6 });
  const ar = await amk.done;
  t.equal(ar.successful, 1, `region: ${describeSipp(ar)}`);
  await trunk;
  const last = attempts.at(-1)!;
  t.equal(last.phase, 'answered');
  t.equal(last.crossedCancel, true);
});

t.test('*101# names region 01; an unknown code is refused', async (t) => {
  const amk = startSipp(t, { scenario: 'region-answer.xml' });
  const ct = startSipp(t, { scenario: 'calltaker-answer.xml' });
  await Promise.all([amk.ready, ct.ready]);
  const { bridge } = await startTestBridge(t, {
    callTakerTarget: `sip:1001@127.0.0.1:${ct.port}`,
    regionTargets: [`sip:amk@127.0.0.1:${amk.port}`],
    conference: { interDigitMs: 150 },
  });
  const attempts: Attempt[] = [];
  const refused: string[] = [];
  bridge.bus.on('conference.attempt', (e) => attempts.push(e));
  bridge.bus.on('conference.refused', (e) => refused.push(e.reason));
  let callId = '';
  bridge.bus.on('call.answered', (e) => {
    callId = e.callId;
    for (const d of '*199#') bridge.bus.emit('call.digit', { callId, digit: d, via: 'info' });
    for (const d of '*101#') bridge.bus.emit('call.digit', { callId, digit: d, via: 'info' });
    for (const d of '*101#') bridge.bus.emit('call.digit', { callId, digit: d, via: 'info' });
  });
  const trunk = await runSipp(t, { scenario: 'trunk-call.xml', remote: `127.0.0.1:${bridge.port('udp')}`, keys: { hold_ms: 1500 } });
  t.equal(trunk.successful, 1);
  t.equal((await amk.done).successful, 1);
  t.same(refused, ['no region with code 99', 'a conference-in is already running']);
  t.equal(attempts[0]!.region, 'hovedstaden');
});
