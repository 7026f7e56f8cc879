// The outbound side and target health: DNS SRV failover inside one attempt, an outbound proxy,
// OPTIONS probes with up/down thresholds, 491 on glare, and a clear error on a busy port.
import t from 'tap';
import dgram from 'node:dgram';
import { startSipp, runSipp, describeSipp } from '../helpers/sipp.js';
import { startTestBridge, waitFor } from '../helpers/bridge.js';
import { startDnsServer } from '../helpers/dns-server.js';
import { startKamailio } from '../helpers/kamailio.js';
import { freePort } from '../helpers/ports.js';
import { testConfig } from '../helpers/config.js';
import { startBridge } from '../../src/app.js';
import { createLogger } from '../../src/log.js';
import type { BridgeEvents } from '../../src/core/events.js';

type Attempt = BridgeEvents['conference.attempt'];

async function callWithConference(t: Tap.Test, bridgeOpts: Parameters<typeof startTestBridge>[1], start: Parameters<typeof startTestBridge>[2] = {}) {
  const ct = startSipp(t, { scenario: 'calltaker-info-trigger.xml', keys: { pause_ms: 200 } });
  await ct.ready;
  // The inter-digit timeout must outlast SIPp's gap between the two INFO digits on a loaded
  // machine: a '*' timed out alone is no feature code, and no conference-in would start.
  const { bridge } = await startTestBridge(t, { callTakerTarget: `sip:1001@127.0.0.1:${ct.port}`, conference: { interDigitMs: 1000 }, ...bridgeOpts }, start);
  const attempts: Attempt[] = [];
  bridge.bus.on('conference.attempt', (e) => attempts.push(e));
  const trunk = runSipp(t, { scenario: 'trunk-call.xml', remote: `127.0.0.1:${bridge.port('udp')}`, keys: { hold_ms: 6000 }, timeoutS: 25 });
  return { bridge, attempts, trunk, ct };
}

t.test('a region host name with two SRV targets: the dead one fails over inside one attempt', async (t) => {
  const amk = startSipp(t, { scenario: 'region-answer.xml', timeoutS: 30 });
  await amk.ready;
  const dead = await freePort('udp');
  const dns = await startDnsServer([
    { type: 'SRV', name: '_sip._udp.amk.region.test', priority: 10, weight: 0, port: dead, target: 'a.region.test' },
    { type: 'SRV', name: '_sip._udp.amk.region.test', priority: 20, weight: 0, port: amk.port, target: 'b.region.test' },
    { type: 'A', name: 'a.region.test', address: '127.0.0.1' },
    { type: 'A', name: 'b.region.test', address: '127.0.0.1' },
  ]);
  t.teardown(() => dns.close());
  const { attempts, trunk } = await callWithConference(t, { regionTargets: ['sip:amk@amk.region.test'], region: { ringTimerS: 5 }, sip: { timers: { t1Ms: 20 } } }, { dnsServers: [`127.0.0.1:${dns.port}`] });
  t.equal((await trunk).successful, 1);
  const ar = await amk.done;
  t.equal(ar.successful, 1, `second SRV target answered: ${describeSipp(ar)}`);
  t.same(attempts.map((a) => a.phase), ['started', 'ringing', 'answered'], 'failover stayed inside the attempt');
  t.ok(dns.count('_sip._udp.amk.region.test', 'SRV') >= 1, 'SRV was asked');
});

t.test('an outbound proxy (Kamailio) carries the region leg', async (t) => {
  const amk = startSipp(t, { scenario: 'region-answer.xml', timeoutS: 30 });
  await amk.ready;
  const proxyPort = await freePort('udp');
  await startKamailio(t, 'proxy.cfg.tpl', { PROXY_PORT: proxyPort });
  const { attempts, trunk } = await callWithConference(t, {
    regionTargets: [`sip:amk@127.0.0.1:${amk.port}`],
    region: { outboundProxy: `sip:127.0.0.1:${proxyPort}` },
  });
  t.equal((await trunk).successful, 1);
  const ar = await amk.done;
  t.equal(ar.successful, 1, `region: ${describeSipp(ar)}`);
  t.match(ar.messages, new RegExp(`INVITE sip:amk@[^\\n]*\\n[\\s\\S]*Via: SIP/2\\.0/UDP 127\\.0\\.0\\.1:${proxyPort};branch`), 'the INVITE came through the proxy');
  t.equal(attempts.at(-1)!.phase, 'answered');
});

t.test('OPTIONS probes: a target goes up, and down after it stops answering', async (t) => {
  const uas = startSipp(t, { scenario: 'selftest-options-uas.xml', calls: 1000, timeoutS: 30 });
  await uas.ready;
  const { bridge } = await startTestBridge(t, {
    callTakerTarget: `sip:acd@127.0.0.1:${uas.port}`,
    callTakers: { probe: true },
    probes: { intervalS: 1, timeoutMs: 300, upAfter: 1, downAfter: 2 },
  });
  const seen: boolean[] = [];
  bridge.bus.on('target.health', (e) => e.kind === 'calltaker' && seen.push(e.up));
  await waitFor(() => seen.length === 1, 4000, 'up');
  t.same(seen, [true]);
  t.equal(bridge.prober.states().find((s) => s.kind === 'calltaker')?.up, true);
  uas.kill();
  await waitFor(() => seen.length === 2, 6000, 'down');
  t.same(seen, [true, false], 'down after two missed probes');
  t.equal(bridge.prober.states().find((s) => s.kind === 'calltaker')?.lastStatus, null);
});

t.test('glare: a re-INVITE while ours is pending gets 491', async (t) => {
  // The call taker puts the call on hold; the bridge passes the hold on to a trunk that delays
  // its answer, and a re-INVITE from the trunk meanwhile must get 491.
  const ct = startSipp(t, { scenario: 'calltaker-hold.xml', keys: { pause_ms: 100 } });
  await ct.ready;
  const { bridge } = await startTestBridge(t, { callTakerTarget: `sip:1001@127.0.0.1:${ct.port}` });
  // A raw trunk: INVITE, ACK, then hold the relayed re-INVITE and send our own.
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => s.close());
  const me = s.address().port;
  const port = bridge.port('udp');
  const got: string[] = [];
  s.on('message', (b) => got.push(b.toString()));
  const callId = `glare-${Date.now()}`;
  const base = (method: string, seq: number, toTag = '') => [
    `${method} sip:112@127.0.0.1:${port} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${me};branch=z9hG4bK${Math.random().toString(36).slice(2)};rport`,
    'Max-Forwards: 70', 'From: <sip:+4511111111@127.0.0.1>;tag=g1', `To: <sip:112@127.0.0.1>${toTag}`,
    `Call-ID: ${callId}`, `CSeq: ${seq} ${method}`, `Contact: <sip:trunk@127.0.0.1:${me}>`,
  ];
  const sdp = (v: number) => `v=0\r\no=t 1 ${v} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n`;
  const send = (lines: string[], body = '') => s.send(`${lines.join('\r\n')}\r\n${body ? 'Content-Type: application/sdp\r\n' : ''}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, port, '127.0.0.1');
  send(base('INVITE', 1), sdp(1));
  await waitFor(() => got.some((m) => m.startsWith('SIP/2.0 200')), 3000, '200');
  const toTag = /^To:.*(;tag=[^;\r\n]+)/m.exec(got.find((m) => m.startsWith('SIP/2.0 200'))!)![1]!;
  send(base('ACK', 1, toTag));
  await waitFor(() => got.some((m) => m.startsWith('INVITE ')), 3000, 'relayed re-INVITE');
  send(base('INVITE', 2, toTag), sdp(2));
  await waitFor(() => got.some((m) => /^SIP\/2\.0 491/.test(m)), 2000, '491');
  t.pass('491 Request Pending while the other re-INVITE is in progress');
  bridge.b2bua.hangupAll('test over');
  await ct.done;
});

t.test('a port already in use is a clear start-up error', async (t) => {
  const holder = dgram.createSocket('udp4');
  await new Promise<void>((r) => holder.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => holder.close());
  const port = holder.address().port;
  const config = testConfig({ sip: { listen: [{ transport: 'udp', address: '127.0.0.1', port }] } });
  await t.rejects(startBridge(config, { logger: createLogger({ level: 'silent' }) }), { name: 'BindError', message: new RegExp(`cannot listen on UDP 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`) });
});
