import t from 'tap';
import {
  parseRtp, parseRtpInto, newRtpPacket, writeRtpHeader, isRtcpPacket, seqDelta, tsDelta,
} from '../../src/media/rtp.js';
import {
  buildSenderReport, buildReceiverReport, buildBye, parseRtcp, ReceptionStats, lsrFromNtpMs, dlsrFromMs, rttMs,
  type ReportBlock,
} from '../../src/media/rtcp.js';

function rtp(opts: { cc?: number; ext?: number[]; pad?: number; payload?: number[]; version?: number }): Uint8Array {
  const cc = opts.cc ?? 0;
  const bytes: number[] = [
    ((opts.version ?? 2) << 6) | (opts.pad !== undefined ? 0x20 : 0) | (opts.ext ? 0x10 : 0) | cc,
    0x80 | 8, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04,
  ];
  for (let i = 0; i < cc; i++) bytes.push(0xc0, 0, 0, i);
  if (opts.ext) {
    bytes.push(0xbe, 0xde, 0, opts.ext.length / 4, ...opts.ext);
  }
  bytes.push(...(opts.payload ?? [1, 2, 3, 4, 5]));
  if (opts.pad !== undefined) {
    for (let i = 1; i < opts.pad; i++) bytes.push(0);
    bytes.push(opts.pad);
  }
  return Uint8Array.from(bytes);
}

t.test('write → parse round trip', async (t) => {
  const buf = new Uint8Array(12 + 160);
  t.equal(writeRtpHeader(buf, true, 8, 65535, 0xfffffff0, 0xcafebabe), 12);
  const p = parseRtp(buf);
  t.same(p, { marker: true, payloadType: 8, sequence: 65535, timestamp: 0xfffffff0, ssrc: 0xcafebabe, payloadOffset: 12, payloadLength: 160 });
  writeRtpHeader(buf, false, 0, 1, 2, 3);
  t.same(parseRtp(buf, 20), { marker: false, payloadType: 0, sequence: 1, timestamp: 2, ssrc: 3, payloadOffset: 12, payloadLength: 8 }, 'len limits the packet');
  const reused = newRtpPacket();
  t.ok(parseRtpInto(buf, buf.length, reused));
  t.equal(reused.payloadLength, 160);
});

t.test('CSRC, extension and padding', async (t) => {
  let p = parseRtp(rtp({ cc: 2 }))!;
  t.equal(p.payloadOffset, 20);
  t.equal(p.payloadLength, 5);
  t.equal(p.marker, true);
  t.equal(p.payloadType, 8);
  t.equal(p.sequence, 0x1234);
  t.equal(p.timestamp, 0xdeadbeef);
  t.equal(p.ssrc, 0x01020304);
  p = parseRtp(rtp({ cc: 1, ext: [1, 2, 3, 4, 5, 6, 7, 8] }))!;
  t.equal(p.payloadOffset, 12 + 4 + 4 + 8);
  t.equal(p.payloadLength, 5);
  p = parseRtp(rtp({ pad: 3 }))!;
  t.equal(p.payloadOffset, 12);
  t.equal(p.payloadLength, 5, 'padding removed');
  p = parseRtp(rtp({ cc: 15, ext: [], pad: 4, payload: [] }))!;
  t.equal(p.payloadOffset, 12 + 60 + 4);
  t.equal(p.payloadLength, 0, 'all CSRC + empty extension + only padding');
});

t.test('invalid packets', async (t) => {
  t.equal(parseRtp(rtp({ version: 1 })), null, 'version 1');
  t.equal(parseRtp(rtp({ version: 0 })), null, 'version 0');
  t.equal(parseRtp(rtp({ version: 3 })), null, 'version 3');
  t.equal(parseRtp(new Uint8Array(11).fill(0x80)), null, 'shorter than 12');
  t.equal(parseRtp(rtp({}), 11), null, 'len shorter than 12');
  t.equal(parseRtp(rtp({ cc: 4, payload: [] }).subarray(0, 12 + 12)), null, 'CSRC list truncated');
  const ext = rtp({ ext: [1, 2, 3, 4], payload: [] });
  ext[15] = 9; // extension claims 9 words
  t.equal(parseRtp(ext), null, 'extension length past the end');
  t.equal(parseRtp(rtp({ ext: [], payload: [] }).subarray(0, 14)), null, 'extension header truncated');
  const pad0 = rtp({ pad: 1 });
  pad0[pad0.length - 1] = 0;
  t.equal(parseRtp(pad0), null, 'padding count 0');
  const padBig = rtp({ pad: 2, payload: [1] });
  padBig[padBig.length - 1] = 4;
  t.equal(parseRtp(padBig), null, 'padding longer than the payload');
});

t.test('isRtcpPacket (rtcp-mux demultiplexing)', async (t) => {
  for (const pt of [200, 201, 202, 203, 204, 205, 206, 207]) t.ok(isRtcpPacket(Uint8Array.of(0x80, pt, 0, 1)), `PT ${pt}`);
  t.notOk(isRtcpPacket(Uint8Array.of(0x80, 0x00)), 'PCMU');
  t.notOk(isRtcpPacket(Uint8Array.of(0x80, 0x80 | 8)), 'PCMA with marker');
  t.notOk(isRtcpPacket(Uint8Array.of(0x80, 0x80 | 101)), 'telephone-event with marker (229)');
  t.notOk(isRtcpPacket(Uint8Array.of(0x40, 200)), 'version 1');
  t.notOk(isRtcpPacket(Uint8Array.of(0x80)), 'too short');
  t.ok(isRtcpPacket(buildReceiverReport({ ssrc: 1, reports: [], cname: 'x' })));
});

t.test('sequence and timestamp deltas with wrap', async (t) => {
  t.equal(seqDelta(65535, 0), 1);
  t.equal(seqDelta(0, 65535), -1);
  t.equal(seqDelta(65530, 4), 10);
  t.equal(seqDelta(4, 65530), -10);
  t.equal(seqDelta(100, 100), 0);
  t.equal(seqDelta(0, 32767), 32767);
  t.equal(seqDelta(0, 32768), -32768);
  t.equal(tsDelta(0xfffffff0, 0x10), 32);
  t.equal(tsDelta(0x10, 0xfffffff0), -32);
  t.equal(tsDelta(0, 0x7fffffff), 0x7fffffff);
  t.equal(tsDelta(0, 0x80000000), -0x80000000);
  t.equal(tsDelta(4294967295, 159), 160);
});

// ---- RTCP ----------------------------------------------------------------------------------

const block: ReportBlock = {
  ssrc: 0x11223344, fractionLost: 42, cumulativeLost: 1234, highestSeq: 0x0001fffe, jitter: 77, lsr: 0xabcd1234, dlsr: 65536 * 2,
};

t.test('SR + SDES round trip', async (t) => {
  const ntpMs = Date.UTC(2025, 4, 17, 12, 0, 0) + 123.456;
  const buf = buildSenderReport({
    ssrc: 0xdeadbeef, ntpMs, rtpTimestamp: 0xfffffff0, packets: 1000, octets: 160000, reports: [block, { ...block, ssrc: 5, cumulativeLost: -3 }], cname: 'amk-bridge@host',
  });
  t.equal(buf.length % 4, 0);
  const items = parseRtcp(buf)!;
  t.equal(items.length, 2);
  const sr = items[0]!;
  if (sr.type !== 'SR') throw new Error('not SR');
  t.equal(sr.ssrc, 0xdeadbeef);
  t.ok(Math.abs(sr.ntpMs - ntpMs) < 0.001, `ntpMs ${sr.ntpMs} ≈ ${ntpMs}`);
  t.equal(lsrFromNtpMs(sr.ntpMs), lsrFromNtpMs(ntpMs), 'LSR computable from the parsed time');
  t.equal(sr.rtpTimestamp, 0xfffffff0);
  t.equal(sr.packets, 1000);
  t.equal(sr.octets, 160000);
  t.same(sr.reports, [block, { ...block, ssrc: 5, cumulativeLost: -3 }]);
  t.same(items[1], { type: 'SDES', ssrc: 0xdeadbeef, cname: 'amk-bridge@host' });
  // NTP seconds on the wire: Unix seconds + 2208988800
  t.equal(buf.readUInt32BE(8), Math.floor(ntpMs / 1000) + 2208988800);
});

t.test('RR + SDES and BYE round trip', async (t) => {
  for (const cname of ['', 'a', 'ab', 'abc', 'abcd', 'æøå@region']) {
    const rr = buildReceiverReport({ ssrc: 7, reports: [block], cname });
    t.equal(rr.length % 4, 0);
    t.same(parseRtcp(rr), [{ type: 'RR', ssrc: 7, reports: [block] }, { type: 'SDES', ssrc: 7, cname }], `cname "${cname}"`);
  }
  const bye = buildBye(0x99, 'me');
  t.same(parseRtcp(bye), [
    { type: 'RR', ssrc: 0x99, reports: [] },
    { type: 'SDES', ssrc: 0x99, cname: 'me' },
    { type: 'BYE', ssrcs: [0x99] },
  ]);
  t.same(parseRtcp(buildReceiverReport({ ssrc: 1, reports: [{ ...block, cumulativeLost: 99999999 }], cname: 'x' }))![0],
    { type: 'RR', ssrc: 1, reports: [{ ...block, cumulativeLost: 0x7fffff }] }, 'cumulative lost clamped to 24 bits');
});

t.test('parseRtcp: other packet types and malformed input', async (t) => {
  const app = Uint8Array.of(0x80, 204, 0, 2, 0, 0, 0, 1, 0x41, 0x42, 0x43, 0x44);
  const rr = buildReceiverReport({ ssrc: 1, reports: [], cname: 'x' });
  const both = new Uint8Array(rr.length + app.length);
  both.set(rr);
  both.set(app, rr.length);
  t.same(parseRtcp(both)!.map((i) => i.type), ['RR', 'SDES', 'other']);
  t.same(parseRtcp(both)![2], { type: 'other', pt: 204 });
  t.equal(parseRtcp(new Uint8Array(0)), null, 'empty');
  t.equal(parseRtcp(both.subarray(0, both.length - 2)), null, 'truncated');
  const v1 = Uint8Array.from(rr);
  v1[0] = 0x40;
  t.equal(parseRtcp(v1), null, 'version 1');
  const short = Uint8Array.of(0x81, 201, 0, 1, 0, 0, 0, 1); // RR claims one block but has none
  t.equal(parseRtcp(short), null, 'report count beyond the packet');
  // a padded last packet
  const padded = Uint8Array.of(0xa0, 203, 0, 2, 0, 0, 0, 9, 0, 0, 0, 4);
  t.same(parseRtcp(padded), [{ type: 'BYE', ssrcs: [] }]);
});

t.test('DLSR, LSR and RTT helpers', async (t) => {
  t.equal(dlsrFromMs(1000), 65536);
  t.equal(dlsrFromMs(0), 0);
  t.equal(dlsrFromMs(-5), 0);
  const srAt = Date.UTC(2030, 0, 1);
  const lsr = lsrFromNtpMs(srAt);
  // peer got our SR at srAt + 30 ms, held it 500 ms, its RR arrives at srAt + 560 ms → RTT 60 ms
  const rtt = rttMs({ ...block, lsr, dlsr: dlsrFromMs(500) }, srAt + 560)!;
  t.ok(Math.abs(rtt - 60) < 0.1, `rtt ${rtt}`);
  t.equal(rttMs({ ...block, lsr: 0 }, srAt), null);
});

t.test('ReceptionStats: loss, reordering, duplicate and wrap give the RFC 3550 A.3 figures', async (t) => {
  const s = new ReceptionStats();
  // 65530 starts probation, 65531 ends it (base_seq = 65531). 65534, 4 and 5 are lost,
  // 1 arrives after 2, 6 arrives twice.
  const seqs = [65530, 65531, 65532, 65533, 65535, 0, 2, 1, 3, 6, 6];
  for (const q of seqs) s.update(q, q * 160, q * 160 + 800);
  const b = s.block(0xabc, 0x1234, 0x10);
  // expected = extended max (65536 + 6) − base (65531) + 1 = 12; received = 10 (the duplicate
  // counts, as in A.3) → lost 2; fraction = 2 × 256 / 12 = 42
  t.same(b, { ssrc: 0xabc, fractionLost: 42, cumulativeLost: 2, highestSeq: 65542, jitter: 0, lsr: 0x1234, dlsr: 0x10 });
  t.equal(s.expected, 12);
  t.equal(s.receivedCount, 10);
  for (const q of [7, 8, 10]) s.update(q, q * 160, q * 160 + 800);
  // interval: expected 16 − 12 = 4, received 3 → 1 lost → 64/256; cumulative 16 − 13 = 3
  t.same(s.block(0xabc, 0, 0), { ssrc: 0xabc, fractionLost: 64, cumulativeLost: 3, highestSeq: 65546, jitter: 0, lsr: 0, dlsr: 0 });
  // no new packets: fraction 0, cumulative unchanged
  t.equal(s.block(0xabc, 0, 0).fractionLost, 0);
  s.reset();
  t.same(s.block(1, 0, 0), { ssrc: 1, fractionLost: 0, cumulativeLost: 0, highestSeq: 0, jitter: 0, lsr: 0, dlsr: 0 }, 'nothing yet');
});

t.test('ReceptionStats: interarrival jitter (A.8)', async (t) => {
  const s = new ReceptionStats();
  let arrival = 5000;
  for (let q = 0; q < 10; q++) s.update(q, q * 160, arrival + q * 160);
  t.equal(s.jitter, 0, 'constant transit');
  s.update(10, 1600, arrival + 1600 + 160); // 20 ms late: D = 160 → J = 160/16 = 10
  t.equal(s.jitter, 10);
  s.update(11, 1760, arrival + 1760); // back on time: J = 10 + (160 − 10)/16 = 19.375
  t.equal(s.jitter, 19);
  t.equal(s.block(1, 0, 0).jitter, 19);
  // arrival clock wraps at 2^32 without a jump in jitter
  const w = new ReceptionStats();
  arrival = 4294967295 - 800;
  for (let q = 0; q < 20; q++) w.update(q, (q * 160) >>> 0, (arrival + q * 160) % 4294967296);
  t.equal(w.jitter, 0);
});

t.test('ReceptionStats: restart detection (two sequential packets after a big jump)', async (t) => {
  const s = new ReceptionStats();
  for (let q = 100; q < 110; q++) s.update(q, q * 160, q * 160);
  s.update(40000, 0, 0); // big jump: ignored, remembered
  t.equal(s.block(1, 0, 0).highestSeq, 109);
  s.update(40001, 160, 160); // sequential: the source restarted
  const b = s.block(1, 0, 0);
  t.equal(b.highestSeq, 40001);
  t.equal(b.cumulativeLost, 0);
});
