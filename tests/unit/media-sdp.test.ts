import t from 'tap';
import {
  answerOffer,
  applyAnswer,
  createOffer,
  dtmfEvents,
  formatsOf,
  parseSdp,
  sameOrigin,
  SdpSession,
  type Sdp,
  type SdpOrigin,
} from '../../src/media/sdp.js';
import type { Codec } from '../../src/media/types.js';

const crlf = (lines: string[]): string => lines.join('\r\n') + '\r\n';
const session: SdpOrigin = { username: 'amk-bridge', sessionId: '4242', version: 7 };
const local = { address: '10.20.30.40', port: 40000, session };

function parse(text: string): Sdp {
  const sdp = parseSdp(text);
  if (!sdp) throw new Error('SDP did not parse');
  return sdp;
}

function answer(text: string, opts: Partial<Parameters<typeof answerOffer>[1]> = {}) {
  const r = answerOffer(parse(text), { ...local, ...opts });
  if (!r.ok) throw new Error(`unexpected ${r.status}: ${r.reason}`);
  return { ...r, parsed: parse(r.sdp), lines: r.sdp.split('\r\n') };
}

// --- Offers as real peers send them -------------------------------------------------------

/** Asterisk (chan_pjsip) toward a trunk: PCMA first, telephone-event 0-16, CN, maxptime. */
const ASTERISK = crlf([
  'v=0',
  'o=- 1811530376 1811530378 IN IP4 192.0.2.10',
  's=Asterisk',
  'c=IN IP4 192.0.2.10',
  't=0 0',
  'm=audio 17550 RTP/AVP 8 0 101 13',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-16',
  'a=rtpmap:13 CN/8000',
  'a=ptime:20',
  'a=maxptime:150',
  'a=sendrecv',
]);

/** Cisco CUBE: media-level c=, G.729 between the G.711 laws, CN on 19 (reserved, not 13). */
const CISCO = crlf([
  'v=0',
  'o=CiscoSystemsSIP-GW-UserAgent 5563 9876 IN IP4 198.51.100.5',
  's=SIP Call',
  'c=IN IP4 198.51.100.5',
  't=0 0',
  'm=audio 16384 RTP/AVP 8 18 0 101 19',
  'c=IN IP4 198.51.100.6',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:18 G729/8000',
  'a=fmtp:18 annexb=no',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-16',
  'a=rtpmap:19 CN/8000',
  'a=ptime:20',
]);

/** Kamailio + rtpengine: explicit a=rtcp on a non-adjacent port, telephone-event on 96. */
const RTPENGINE = crlf([
  'v=0',
  'o=- 3895741063 3895741063 IN IP4 203.0.113.20',
  's=-',
  'c=IN IP4 203.0.113.20',
  't=0 0',
  'm=audio 30000 RTP/AVP 0 8 96 13',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:96 telephone-event/8000',
  'a=fmtp:96 0-16',
  'a=rtpmap:13 CN/8000',
  'a=sendrecv',
  'a=rtcp:30011',
  'a=ptime:20',
]);

t.test('parse: session and media sections, o=, rtpmap, fmtp, ptime, rtcp, direction', async (t) => {
  const sdp = parse(ASTERISK);
  t.equal(sdp.version, 0);
  t.same(sdp.origin, {
    username: '-', sessionId: '1811530376', version: 1811530378, versionText: '1811530378',
    netType: 'IN', addrType: 'IP4', address: '192.0.2.10',
  });
  t.equal(sdp.sessionName, 'Asterisk');
  t.same(sdp.connection, { addrType: 'IP4', address: '192.0.2.10' });
  t.same(sdp.other, ['t=0 0'], 'unknown/uninterpreted session lines are kept');
  t.equal(sdp.media.length, 1);
  const m = sdp.media[0]!;
  t.match(m, { type: 'audio', port: 17550, portCount: 1, proto: 'RTP/AVP', formats: ['8', '0', '101', '13'] });
  t.equal(m.connection, null);
  t.same(m.rtpmap[2], { payloadType: 101, encoding: 'telephone-event', clockRate: 8000, channels: 1 });
  t.same(m.fmtp, [{ payloadType: 101, params: '0-16' }]);
  t.equal(m.ptime, 20);
  t.equal(m.maxptime, 150);
  t.equal(m.direction, 'sendrecv');
  t.equal(m.rtcp, null);
  t.equal(m.rtcpMux, false);
  t.same(formatsOf(m).map((f) => f.encoding), ['PCMA', 'PCMU', 'TELEPHONE-EVENT', 'CN']);

  const r = parse(RTPENGINE).media[0]!;
  t.same(r.rtcp, { port: 30011, connection: null });
  const withAddr = parse(crlf(['v=0', 'c=IN IP4 192.0.2.1', 'm=audio 5004 RTP/AVP 0', 'a=rtcp:53020 IN IP4 126.16.64.4', 'a=rtcp-mux']));
  t.same(withAddr.media[0]!.rtcp, { port: 53020, connection: { addrType: 'IP4', address: '126.16.64.4' } });
  t.equal(withAddr.media[0]!.rtcpMux, true);
  t.equal(withAddr.origin, null, 'missing o= is tolerated');
});

t.test('parse: static payload types need no rtpmap; dynamic ones do', async (t) => {
  const sdp = parse(crlf(['v=0', 'c=IN IP4 192.0.2.1', 'm=audio 5004 RTP/AVP 0 8 13 18 97 98', 'a=rtpmap:98 opus/48000/2']));
  t.same(
    formatsOf(sdp.media[0]!).map((f) => [f.payloadType, f.encoding, f.clockRate, f.channels]),
    [[0, 'PCMU', 8000, 1], [8, 'PCMA', 8000, 1], [13, 'CN', 8000, 1], [18, 'G729', 8000, 1], [97, null, null, 1], [98, 'OPUS', 48000, 2]],
  );
});

t.test('parse: LF-only, trailing white space, blank and junk lines, session-level direction', async (t) => {
  const text = [
    'v=0  ',
    'o=user 1 2 IN IP4 192.0.2.9\t',
    's=-',
    'c=IN IP4 192.0.2.9/127',
    't=0 0',
    'a=sendonly',
    'x-garbage without equals',
    '',
    'm=audio 6000 RTP/AVP 0   ',
    'a=X-nortel-private:1',
    'm=audio 6002 RTP/AVP 8',
    'a=recvonly',
    '',
  ].join('\n');
  const sdp = parse(text);
  t.equal(sdp.origin?.username, 'user');
  t.same(sdp.connection, { addrType: 'IP4', address: '192.0.2.9' }, 'TTL suffix dropped');
  t.equal(sdp.direction, 'sendonly');
  t.same(sdp.other, ['t=0 0', 'x-garbage without equals']);
  t.equal(sdp.media.length, 2);
  t.same(sdp.media[0]!.formats, ['0']);
  t.same(sdp.media[0]!.attributes, [{ name: 'X-nortel-private', value: '1' }]);
  t.equal(sdp.media[0]!.direction, null, 'session level applies');
  t.equal(sdp.media[1]!.direction, 'recvonly', 'media level overrides');
  t.ok(parseSdp(text.replace(/\n/g, '\r')), 'bare CR too');
});

t.test('parse: null without v= or with an unreadable m= line', async (t) => {
  t.equal(parseSdp(''), null);
  t.equal(parseSdp('hello world'), null);
  t.equal(parseSdp('o=- 1 1 IN IP4 192.0.2.1\r\nm=audio 5004 RTP/AVP 0\r\n'), null, 'no v=');
  t.equal(parseSdp('v=zero\r\n'), null);
  t.equal(parseSdp('v=0\r\nm=audio\r\n'), null);
  t.equal(parseSdp('v=0\r\nm=audio port RTP/AVP 0\r\n'), null);
  t.equal(parseSdp('v=0\r\nm=audio 70000 RTP/AVP 0\r\n'), null);
  t.ok(parseSdp('v=0\r\n'), 'an SDP with no streams is still an SDP');
});

t.test('answer: Asterisk offer PCMA first → PCMA, telephone-event 101 0-15, CN 13', async (t) => {
  const a = answer(ASTERISK);
  t.same(a.media, {
    remote: { address: '192.0.2.10', port: 17550, rtcpPort: 17551 },
    codec: 'PCMA',
    payloadType: 8,
    telephoneEvent: 101,
    ptimeMs: 20,
    direction: 'sendrecv',
    latchNetworks: [],
  });
  t.equal(
    a.sdp,
    crlf([
      'v=0',
      'o=amk-bridge 4242 7 IN IP4 10.20.30.40',
      's=amk-bridge',
      'c=IN IP4 10.20.30.40',
      't=0 0',
      'm=audio 40000 RTP/AVP 8 101 13',
      'a=rtpmap:8 PCMA/8000',
      'a=rtpmap:101 telephone-event/8000',
      'a=fmtp:101 0-15',
      'a=rtpmap:13 CN/8000',
      'a=ptime:20',
      'a=sendrecv',
      'a=rtcp:40001',
    ]),
  );
  t.ok(a.parsed.origin, 'our answer parses');
});

t.test("answer: the offerer's order decides, not ours", async (t) => {
  t.equal(answer(ASTERISK, { codecs: ['PCMU', 'PCMA'] }).media.codec, 'PCMA');
  t.equal(answer(RTPENGINE, { codecs: ['PCMA', 'PCMU'] }).media.codec, 'PCMU');
  const onlyMu = answer(ASTERISK, { codecs: ['PCMU'] });
  t.equal(onlyMu.media.codec, 'PCMU', 'codecs limits what we accept');
  t.equal(onlyMu.media.payloadType, 0);
  t.match(onlyMu.sdp, /^m=audio 40000 RTP\/AVP 0 101 13\r$/m);
});

t.test('answer: Cisco CUBE, media-level c=, G.729 skipped, CN on 19 is not our 13', async (t) => {
  const a = answer(CISCO);
  t.equal(a.media.codec, 'PCMA');
  t.same(a.media.remote, { address: '198.51.100.6', port: 16384, rtcpPort: 16385 }, 'media-level c= wins');
  t.equal(a.media.telephoneEvent, 101);
  t.match(a.sdp, /^m=audio 40000 RTP\/AVP 8 101\r$/m);
  t.notMatch(a.sdp, /G729|CN/);
});

t.test('answer: rtpengine, a=rtcp and telephone-event on a dynamic number', async (t) => {
  const a = answer(RTPENGINE);
  t.equal(a.media.codec, 'PCMU');
  t.equal(a.media.payloadType, 0);
  t.equal(a.media.telephoneEvent, 96);
  t.same(a.media.remote, { address: '203.0.113.20', port: 30000, rtcpPort: 30011 });
  t.match(a.sdp, /^m=audio 40000 RTP\/AVP 0 96 13\r$/m);
  t.match(a.sdp, /^a=rtpmap:96 telephone-event\/8000\r$/m);
  t.match(a.sdp, /^a=fmtp:96 0-15\r$/m);
  t.match(a.sdp, /^a=rtcp:40001\r$/m);
});

t.test('answer: no telephone-event or CN offered → none answered', async (t) => {
  const a = answer(crlf(['v=0', 'o=- 1 1 IN IP4 192.0.2.1', 's=-', 'c=IN IP4 192.0.2.1', 't=0 0', 'm=audio 5004 RTP/AVP 0']));
  t.equal(a.media.telephoneEvent, null);
  t.match(a.sdp, /^m=audio 40000 RTP\/AVP 0\r$/m);
  t.notMatch(a.sdp, /telephone-event|CN|fmtp/);
});

t.test('answer: telephone-event events intersected with 0-15', async (t) => {
  t.equal(dtmfEvents('0-16'), '0-15');
  t.equal(dtmfEvents('0-11'), '0-11');
  t.equal(dtmfEvents('0-9,11,12-15,32'), '0-9,11-15');
  t.equal(dtmfEvents(null), '0-15', 'no fmtp means 0-15');
  t.equal(dtmfEvents('16-99'), null);
  const onlyFlash = answer(RTPENGINE.replace('a=fmtp:96 0-16', 'a=fmtp:96 16'));
  t.equal(onlyFlash.media.telephoneEvent, null, 'nothing we handle → not kept');
  t.notMatch(onlyFlash.sdp, /telephone-event/);
  const some = answer(RTPENGINE.replace('a=fmtp:96 0-16', 'a=fmtp:96 0-11'));
  t.match(some.sdp, /^a=fmtp:96 0-11\r$/m);
  t.equal(answer(RTPENGINE.replace('a=fmtp:96 0-16\r\n', '')).sdp.match(/a=fmtp:96 (.*)\r/)?.[1], '0-15');
});

t.test('answer: an offer with only G.729 → 488 naming what was offered', async (t) => {
  const r = answerOffer(
    parse(crlf([
      'v=0', 'o=- 1 1 IN IP4 192.0.2.1', 's=-', 'c=IN IP4 192.0.2.1', 't=0 0',
      'm=audio 5004 RTP/AVP 18 101', 'a=rtpmap:18 G729/8000', 'a=fmtp:18 annexb=no',
      'a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-15',
    ])),
    local,
  );
  t.equal(r.ok, false);
  if (r.ok) return;
  t.equal(r.status, 488);
  t.match(r.reason, /G729\/8000/);
  t.match(r.reason, /TELEPHONE-EVENT\/8000/);
});

t.test('answer: SRTP-only → 488; SDES best-effort (SAVP then AVP) → the AVP stream', async (t) => {
  const savp = crlf([
    'v=0', 'o=- 1 1 IN IP4 192.0.2.1', 's=-', 'c=IN IP4 192.0.2.1', 't=0 0',
    'm=audio 5004 RTP/SAVP 0 8',
    'a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz',
  ]);
  const r = answerOffer(parse(savp), local);
  t.equal(r.ok, false);
  if (!r.ok) t.match(r.reason, /RTP\/SAVP/);
  const both = savp + 'm=audio 5006 RTP/AVP 0 8\r\n';
  const a = answer(both);
  t.same(a.media.remote, { address: '192.0.2.1', port: 5006, rtcpPort: 5007 });
  t.same(a.parsed.media.map((m) => [m.port, m.proto, m.formats]), [
    [0, 'RTP/SAVP', ['0', '8']],
    [40000, 'RTP/AVP', ['0']],
  ]);
});

t.test('answer: RTP/AVPF accepted and mirrored; a disabled (port 0) audio stream is skipped', async (t) => {
  const a = answer(crlf([
    'v=0', 'o=- 1 1 IN IP4 192.0.2.1', 's=-', 'c=IN IP4 192.0.2.1', 't=0 0',
    'm=audio 0 RTP/AVP 0', 'm=audio 5008 RTP/AVPF 8 0', 'a=rtcp-fb:* nack',
  ]));
  t.equal(a.media.codec, 'PCMA');
  t.same(a.parsed.media.map((m) => [m.port, m.proto]), [[0, 'RTP/AVP'], [40000, 'RTP/AVPF']]);
});

t.test('answer: video + audio (softphone) → video rejected with port 0, m= lines kept in order', async (t) => {
  const offer = crlf([
    'v=0',
    'o=linphone 2810 1347 IN IP4 192.0.2.77',
    's=Talk',
    'c=IN IP4 192.0.2.77',
    't=0 0',
    'm=video 9078 RTP/AVP 96 97 31',
    'a=rtpmap:96 VP8/90000',
    'a=rtpmap:97 H264/90000',
    'a=fmtp:97 profile-level-id=42801F',
    'm=audio 7078 RTP/AVP 96 0 8 101',
    'a=rtpmap:96 opus/48000/2',
    'a=rtpmap:101 telephone-event/8000',
    'm=audio 7080 RTP/AVP 0',
  ]);
  const a = answer(offer);
  t.equal(a.media.codec, 'PCMU', 'Opus skipped, first G.711 the offerer listed');
  t.equal(a.media.remote?.port, 7078);
  t.same(a.parsed.media.map((m) => [m.type, m.port, m.proto, m.formats]), [
    ['video', 0, 'RTP/AVP', ['96', '97', '31']],
    ['audio', 40000, 'RTP/AVP', ['0', '101']],
    ['audio', 0, 'RTP/AVP', ['0']],
  ]);
  t.same(a.parsed.media[0]!.attributes, [], 'rejected stream carries nothing else');
});

t.test('answer: direction mirrored; sendonly hold; c=0.0.0.0 hold', async (t) => {
  const base = RTPENGINE.replace('a=sendrecv\r\n', '');
  const held = answer(base.replace('a=ptime:20', 'a=ptime:20\r\na=sendonly'));
  t.equal(held.media.direction, 'recvonly');
  t.ok(held.media.remote, 'sendonly hold keeps the address (RTCP goes on)');
  t.match(held.sdp, /^a=recvonly\r$/m);
  t.equal(answer(base + 'a=recvonly\r\n').media.direction, 'sendonly');
  t.equal(answer(base + 'a=inactive\r\n').media.direction, 'inactive');
  t.equal(answer(base).media.direction, 'sendrecv', 'default sendrecv');
  const sessionLevel = base.replace('t=0 0\r\n', 't=0 0\r\na=sendonly\r\n');
  t.equal(answer(sessionLevel).media.direction, 'recvonly', 'session-level direction');
  t.equal(answer(sessionLevel + 'a=sendrecv\r\n').media.direction, 'sendrecv', 'media level overrides');

  const oldHold = base.replace('c=IN IP4 203.0.113.20', 'c=IN IP4 0.0.0.0');
  const a = answer(oldHold);
  t.equal(a.media.remote, null);
  t.equal(a.media.direction, 'recvonly');
  t.match(a.sdp, /^a=recvonly\r$/m);
  t.equal(answer(oldHold + 'a=inactive\r\n').media.direction, 'inactive');
  t.equal(answer(oldHold + 'a=sendonly\r\n').media.direction, 'recvonly');
  t.equal(answer(oldHold + 'a=recvonly\r\n').media.direction, 'inactive', 'we cannot send to 0.0.0.0');
});

t.test('answer: ptime 30 kept, odd values → 20, maxptime respected', async (t) => {
  const p30 = answer(ASTERISK.replace('a=ptime:20', 'a=ptime:30'));
  t.equal(p30.media.ptimeMs, 30);
  t.match(p30.sdp, /^a=ptime:30\r$/m);
  t.equal(answer(ASTERISK.replace('a=ptime:20', 'a=ptime:10')).media.ptimeMs, 10);
  t.equal(answer(ASTERISK.replace('a=ptime:20', 'a=ptime:40')).media.ptimeMs, 20);
  t.equal(answer(ASTERISK.replace('a=ptime:20\r\n', '')).media.ptimeMs, 20);
  t.equal(answer(ASTERISK.replace('a=ptime:20\r\na=maxptime:150', 'a=maxptime:10')).media.ptimeMs, 10);
});

t.test('answer: a=rtcp present or absent', async (t) => {
  t.equal(answer(RTPENGINE).media.remote?.rtcpPort, 30011);
  t.equal(answer(RTPENGINE.replace('a=rtcp:30011\r\n', '')).media.remote?.rtcpPort, 30001);
  t.equal(answer(RTPENGINE.replace('a=rtcp:30011', 'a=rtcp:30001 IN IP4 203.0.113.20')).media.remote?.rtcpPort, 30001);
});

t.test('answer: IPv6 both ways', async (t) => {
  const offer = crlf([
    'v=0', 'o=- 99 1 IN IP6 2001:db8::10', 's=-', 'c=IN IP6 2001:db8::10', 't=0 0',
    'm=audio 5004 RTP/AVP 8 101', 'a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-15',
  ]);
  const a = answer(offer, { address: '::1' });
  t.same(a.media.remote, { address: '2001:db8::10', port: 5004, rtcpPort: 5005 });
  t.match(a.sdp, /^o=amk-bridge 4242 7 IN IP6 ::1\r$/m);
  t.match(a.sdp, /^c=IN IP6 ::1\r$/m);
  t.same(a.parsed.connection, { addrType: 'IP6', address: '::1' });
});

t.test('answer: LF-only offer, PCMU on a dynamic payload type', async (t) => {
  const offer = ['v=0', 'o=- 5 5 IN IP4 192.0.2.3', 's=-', 'c=IN IP4 192.0.2.3', 't=0 0', 'm=audio 4000 RTP/AVP 97', 'a=rtpmap:97 pcmu/8000', ''].join('\n');
  const a = answer(offer);
  t.equal(a.media.codec, 'PCMU');
  t.equal(a.media.payloadType, 97);
  t.match(a.sdp, /^m=audio 40000 RTP\/AVP 97\r\na=rtpmap:97 PCMU\/8000\r$/m);
  t.notMatch(a.sdp, /[^\r]\n/, 'we always write CRLF');
});

t.test('answer: no c= anywhere → 488', async (t) => {
  const r = answerOffer(parse(crlf(['v=0', 'o=- 1 1 IN IP4 192.0.2.1', 's=-', 't=0 0', 'm=audio 5004 RTP/AVP 0'])), local);
  t.match(r, { ok: false, status: 488 });
});

t.test('createOffer → parseSdp round trip', async (t) => {
  const text = createOffer({ address: '10.20.30.40', port: 42000, session });
  t.equal(
    text,
    crlf([
      'v=0',
      'o=amk-bridge 4242 7 IN IP4 10.20.30.40',
      's=amk-bridge',
      'c=IN IP4 10.20.30.40',
      't=0 0',
      'm=audio 42000 RTP/AVP 0 8 101',
      'a=rtpmap:0 PCMU/8000',
      'a=rtpmap:8 PCMA/8000',
      'a=rtpmap:101 telephone-event/8000',
      'a=fmtp:101 0-15',
      'a=ptime:20',
      'a=sendrecv',
      'a=rtcp:42001',
    ]),
  );
  const sdp = parse(text);
  t.same(sdp.origin, { username: 'amk-bridge', sessionId: '4242', version: 7, versionText: '7', netType: 'IN', addrType: 'IP4', address: '10.20.30.40' });
  t.same(formatsOf(sdp.media[0]!).map((f) => [f.payloadType, f.encoding, f.fmtp]), [[0, 'PCMU', null], [8, 'PCMA', null], [101, 'TELEPHONE-EVENT', '0-15']]);
  t.same(sdp.media[0]!.rtcp, { port: 42001, connection: null });

  const custom = parse(createOffer({
    address: '2001:db8::1', port: 5000, session, codecs: ['PCMA', 'PCMU'], telephoneEvent: 96, ptimeMs: 30, direction: 'sendonly',
  }));
  t.same(custom.connection, { addrType: 'IP6', address: '2001:db8::1' });
  t.same(custom.media[0]!.formats, ['8', '0', '96']);
  t.equal(custom.media[0]!.ptime, 30);
  t.equal(custom.media[0]!.direction, 'sendonly');
  t.same(parse(createOffer({ ...local, codecs: ['PCMA'], telephoneEvent: null })).media[0]!.formats, ['8']);

  // Our own offer, answered by our own answerer: a self-consistent pair.
  const a = answerOffer(sdp, local);
  t.ok(a.ok);
  if (a.ok) {
    t.equal(a.media.codec, 'PCMU');
    t.equal(a.media.telephoneEvent, 101);
    const back = applyAnswer({ codecs: ['PCMU', 'PCMA'], telephoneEvent: 101 }, parse(a.sdp));
    t.same(back, {
      ok: true,
      media: {
        remote: { address: '10.20.30.40', port: 40000, rtcpPort: 40001 },
        codec: 'PCMU', payloadType: 0, telephoneEvent: 101, ptimeMs: 20, direction: 'sendrecv', latchNetworks: [],
      },
    });
  }
});

const answerFrom = (pts: string, extra: string[] = []): Sdp =>
  parse(crlf(['v=0', 'o=region 77 1 IN IP4 198.51.100.50', 's=-', 'c=IN IP4 198.51.100.50', 't=0 0', `m=audio 21000 RTP/AVP ${pts}`, ...extra]));

t.test('applyAnswer: each codec, telephone-event kept or not, ptime, direction', async (t) => {
  const offered = { codecs: ['PCMU', 'PCMA'] as Codec[], telephoneEvent: 101 };
  const mu = applyAnswer(offered, answerFrom('0 101', ['a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-15', 'a=ptime:20']));
  t.same(mu, {
    ok: true,
    media: {
      remote: { address: '198.51.100.50', port: 21000, rtcpPort: 21001 },
      codec: 'PCMU', payloadType: 0, telephoneEvent: 101, ptimeMs: 20, direction: 'sendrecv', latchNetworks: [],
    },
  });
  const a = applyAnswer(offered, answerFrom('8', ['a=rtpmap:8 PCMA/8000', 'a=ptime:30', 'a=recvonly', 'a=rtcp:21009']));
  t.match(a, { ok: true, media: { codec: 'PCMA', payloadType: 8, telephoneEvent: null, ptimeMs: 30, direction: 'sendonly', remote: { rtcpPort: 21009 } } });
  t.match(applyAnswer(offered, answerFrom('8 0')), { ok: true, media: { codec: 'PCMA' } }, "the answerer's first pick");
  t.match(applyAnswer(offered, answerFrom('0', ['a=sendonly'])), { ok: true, media: { direction: 'recvonly' } });
  t.match(applyAnswer(offered, answerFrom('0', ['a=inactive'])), { ok: true, media: { direction: 'inactive' } });
  t.match(applyAnswer(offered, answerFrom('0', ['a=ptime:25'])), { ok: true, media: { ptimeMs: 20 } });
  const hold = applyAnswer(offered, parse(crlf(['v=0', 'c=IN IP4 0.0.0.0', 'm=audio 21000 RTP/AVP 0'])));
  t.match(hold, { ok: true, media: { remote: null, direction: 'recvonly' } });
  t.match(applyAnswer({ codecs: ['PCMA'], telephoneEvent: 101 }, answerFrom('0 8')), { ok: true, media: { codec: 'PCMA' } }, 'only what we offered');
  t.match(applyAnswer({ codecs: ['PCMU'], telephoneEvent: null }, answerFrom('0 101', ['a=rtpmap:101 telephone-event/8000'])), { ok: true, media: { telephoneEvent: null } });
});

t.test('applyAnswer: rejections', async (t) => {
  const offered = { codecs: ['PCMU', 'PCMA'] as Codec[], telephoneEvent: 101 };
  t.match(applyAnswer(offered, parse(crlf(['v=0', 'c=IN IP4 198.51.100.50', 'm=audio 0 RTP/AVP 0']))), { ok: false, reason: /port 0/ });
  t.match(applyAnswer(offered, answerFrom('18')), { ok: false, reason: /G729/ });
  t.match(applyAnswer(offered, parse('v=0\r\nc=IN IP4 198.51.100.50\r\nm=video 5000 RTP/AVP 31\r\n')), { ok: false, reason: /no audio/ });
  t.match(applyAnswer(offered, parse('v=0\r\nm=audio 5000 RTP/AVP 0\r\n')), { ok: false, reason: /c=/ });
  t.match(applyAnswer(offered, parse('v=0\r\nc=IN IP4 198.51.100.50\r\nm=audio 5000 RTP/SAVP 0\r\n')), { ok: false, reason: /RTP\/SAVP/ });
});

t.test('SdpSession: numeric id, version bumps only on change', async (t) => {
  const s = new SdpSession();
  const o1 = s.origin();
  t.equal(o1.username, 'amk-bridge');
  t.match(o1.sessionId, /^[1-9]\d*$/);
  t.equal(o1.version, 1);
  t.same(s.origin(), o1, 'same SDP re-sent (session refresh) keeps the version');
  s.bump();
  t.same(s.origin(), { ...o1, version: 2 });
  o1.version = 99;
  t.equal(s.origin().version, 2, 'origin() is a copy');
  t.equal(new SdpSession('bridge-a').origin().username, 'bridge-a');
  t.not(new SdpSession().sessionId, new SdpSession().sessionId, 'random per leg');

  // The version as it appears on the wire.
  const first = parse(createOffer({ ...local, session: s.origin() }));
  const refresh = parse(createOffer({ ...local, session: s.origin() }));
  s.bump();
  const changed = parse(createOffer({ ...local, direction: 'sendonly', session: s.origin() }));
  t.ok(sameOrigin(first, refresh));
  t.notOk(sameOrigin(first, changed));
});

t.test('sameOrigin', async (t) => {
  const a = parse(ASTERISK);
  t.ok(sameOrigin(a, parse(ASTERISK.replace('a=ptime:20', 'a=ptime:30'))), 'body may differ: the o= line decides');
  t.notOk(sameOrigin(a, parse(ASTERISK.replace('1811530378', '1811530379'))), 'version changed');
  t.notOk(sameOrigin(a, parse(ASTERISK.replace('o=- 1811530376', 'o=- 1811530377'))), 'other session');
  t.notOk(sameOrigin(a, parse(ASTERISK.replace('o=- ', 'o=asterisk '))), 'other user');
  t.notOk(sameOrigin(a, null));
  t.notOk(sameOrigin(null, null));
  t.notOk(sameOrigin(parse('v=0\r\n'), parse('v=0\r\n')), 'no o= line: cannot tell');
  const big = 'v=0\r\no=- 1 18446744073709551615 IN IP4 192.0.2.1\r\n';
  t.notOk(sameOrigin(parse(big), parse(big.replace('615', '614'))), '64-bit versions compared exactly');
});
