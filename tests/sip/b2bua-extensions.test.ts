// 100rel/PRACK and session timers on both legs, the source ACL, OPTIONS, 481 and 405.
import t from 'tap';
import dgram from 'node:dgram';
import { startSipp, runSipp, describeSipp } from '../helpers/sipp.js';
import { startTestBridge } from '../helpers/bridge.js';

t.test('PRACK on both legs: reliable 180 relayed reliably', async (t) => {
  const ct = startSipp(t, { scenario: 'calltaker-prack.xml' });
  await ct.ready;
  const { bridge } = await startTestBridge(t, { callTakerTarget: `sip:1001@127.0.0.1:${ct.port}` });
  const trunk = await runSipp(t, { scenario: 'trunk-prack.xml', remote: `127.0.0.1:${bridge.port('udp')}` });
  t.equal(trunk.successful, 1, `trunk got a reliable 180 and its PRACK was answered: ${describeSipp(trunk)}`);
  const ctr = await ct.done;
  t.equal(ctr.successful, 1, `call taker got our PRACK: ${describeSipp(ctr)}`);
  t.match(ctr.messages, /PRACK sip:[\s\S]*RAck: \d+ \d+ INVITE/, 'the bridge PRACKed the call taker');
});

t.test('session timers: the citizen refreshes by re-INVITE, the call taker by re-INVITE', async (t) => {
  const ct = startSipp(t, { scenario: 'calltaker-session-timer.xml', keys: { refresh: 800 } });
  await ct.ready;
  const { bridge } = await startTestBridge(t, { callTakerTarget: `sip:1001@127.0.0.1:${ct.port}`, sip: { sessionTimer: { expiresS: 90, minSeS: 90 } } });
  const trunk = await runSipp(t, { scenario: 'trunk-session-timer.xml', remote: `127.0.0.1:${bridge.port('udp')}`, keys: { refresh: 500 } });
  t.equal(trunk.successful, 1, `trunk: ${describeSipp(trunk)}`);
  t.match(trunk.messages, /SIP\/2\.0 200 OK[\s\S]*Session-Expires: 90;refresher=uac/, 'the 200 carries the negotiated interval');
  const ctr = await ct.done;
  t.equal(ctr.successful, 1, `call taker: ${describeSipp(ctr)}`);
  t.match(ctr.messages, /INVITE sip:[\s\S]*Session-Expires: 90/, 'the bridge asks the call taker for session timers');
});

t.test('a Session-Expires below Min-SE gets 422', async (t) => {
  const { bridge } = await startTestBridge(t, { sip: { sessionTimer: { expiresS: 1800, minSeS: 600 } } });
  const res = await udpRequest(bridge.port('udp'), 'INVITE', ['Session-Expires: 120', 'Supported: timer'], 'v=0\r\n');
  t.match(res.find((r) => !r.startsWith('SIP/2.0 100')) ?? '', /^SIP\/2\.0 422[\s\S]*Min-SE: 600/);
});

t.test('INVITE from a source outside the trunk and platform networks: 403', async (t) => {
  const { bridge } = await startTestBridge(t, {
    trunks: [{ id: 'trunk-a', networks: ['192.0.2.0/24'] }],
    callTakers: { networks: ['198.51.100.0/24'] },
  });
  const rejected: number[] = [];
  bridge.bus.on('call.rejected', (e) => rejected.push(e.status));
  const trunk = await runSipp(t, { scenario: 'trunk-call.xml', remote: `127.0.0.1:${bridge.port('udp')}`, timeoutS: 5 });
  t.equal(trunk.successful, 0);
  t.match(trunk.messages, /SIP\/2\.0 403/, 'the caller got 403');
  t.same(rejected, [403], 'reported as a rejected call');
  t.same(bridge.b2bua.counters.rejected, { 'source not allowed': 1 }, 'and counted');
});

t.test('OPTIONS gets 200 with Allow; in-dialog requests for unknown dialogs get 481; REGISTER 405', async (t) => {
  const { bridge } = await startTestBridge(t);
  const opt = await runSipp(t, { scenario: 'trunk-options.xml', remote: `127.0.0.1:${bridge.port('udp')}` });
  t.equal(opt.successful, 1, `OPTIONS: ${describeSipp(opt)}`);
  const bye = await udpRequest(bridge.port('udp'), 'BYE', [], '', ';tag=unknown');
  t.match(bye[0] ?? '', /^SIP\/2\.0 481/);
  const reg = await udpRequest(bridge.port('udp'), 'REGISTER', [], '');
  t.match(reg[0] ?? '', /^SIP\/2\.0 405[\s\S]*Allow: INVITE/);
  const unknown = await udpRequest(bridge.port('udp'), 'FROBNICATE', [], '');
  t.match(unknown[0] ?? '', /^SIP\/2\.0 501/);
});

/** Send one request from a fresh UDP socket and collect what comes back for 400 ms. */
async function udpRequest(port: number, method: string, extra: string[], body: string, toTag = ''): Promise<string[]> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const me = s.address().port;
  const got: string[] = [];
  s.on('message', (b) => got.push(b.toString()));
  const lines = [
    `${method} sip:112@127.0.0.1:${port} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${me};branch=z9hG4bK${Math.random().toString(36).slice(2)};rport`,
    'Max-Forwards: 70', `From: <sip:+4511111111@127.0.0.1>;tag=x1`, `To: <sip:112@127.0.0.1>${toTag}`,
    `Call-ID: t-${Math.random()}`, `CSeq: 1 ${method}`, `Contact: <sip:c@127.0.0.1:${me}>`, ...extra,
  ];
  if (body) lines.push('Content-Type: application/sdp');
  const msg = `${lines.join('\r\n')}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  s.send(msg, port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 400));
  s.close();
  return got;
}

t.test('RTP port range used up: new calls get 503 with Retry-After, nothing crashes', async (t) => {
  const ct = startSipp(t, { scenario: 'calltaker-answer.xml' });
  await ct.ready;
  const base = 40000 + 2 * Math.floor(Math.random() * 4000);
  const { bridge } = await startTestBridge(t, { callTakerTarget: `sip:1001@127.0.0.1:${ct.port}`, media: { portMin: base, portMax: base + 8 } });
  const first = runSipp(t, { scenario: 'trunk-call.xml', remote: `127.0.0.1:${bridge.port('udp')}`, keys: { hold_ms: 1500 } });
  await new Promise((r) => setTimeout(r, 500));
  const second = await udpRequest(bridge.port('udp'), 'INVITE', [], 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n');
  t.match(second.find((m) => !m.startsWith('SIP/2.0 100')) ?? '', /^SIP\/2\.0 503[\s\S]*Retry-After: \d+/, 'the second call is refused with 503');
  t.equal((await first).successful, 1, 'the first call was not disturbed');
  t.equal(bridge.b2bua.counters.rejected['no RTP ports'], 1);
});
