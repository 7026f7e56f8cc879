import t from 'tap';
import alawmulaw from 'alawmulaw';
import {
  ULAW_DECODE, ALAW_DECODE, ULAW_ENCODE, ALAW_ENCODE, SILENCE_BYTE, decodeInto, encodeInto,
} from '../../src/media/g711.js';

t.test('every code decodes as alawmulaw decodes it', async (t) => {
  let badU = 0;
  let badA = 0;
  for (let c = 0; c < 256; c++) {
    if (ULAW_DECODE[c] !== alawmulaw.mulaw.decodeSample(c)) badU++;
    if (ALAW_DECODE[c] !== alawmulaw.alaw.decodeSample(c)) badA++;
  }
  t.equal(badU, 0, 'µ-law: 256 codes match');
  t.equal(badA, 0, 'A-law: 256 codes match');
  t.equal(ULAW_DECODE[0xff], 0);
  t.equal(ULAW_DECODE[0x00], -32124);
  t.equal(ULAW_DECODE[0x80], 32124);
  t.equal(ALAW_DECODE[0xd5], 8);
  t.equal(ALAW_DECODE[0x55], -8);
  t.equal(ALAW_DECODE[0xaa], 32256);
});

t.test('every int16 value encodes as alawmulaw encodes it', async (t) => {
  let badU = 0;
  let badA = 0;
  let firstBad = '';
  for (let s = -32768; s <= 32767; s++) {
    const u = alawmulaw.mulaw.encodeSample(s) & 0xff;
    const a = alawmulaw.alaw.encodeSample(s) & 0xff;
    if (ULAW_ENCODE[s & 0xffff] !== u) { badU++; firstBad ||= `µ ${s}`; }
    if (ALAW_ENCODE[s & 0xffff] !== a) { badA++; firstBad ||= `A ${s}`; }
  }
  t.equal(badU, 0, `µ-law: 65536 inputs match ${firstBad}`);
  t.equal(badA, 0, `A-law: 65536 inputs match ${firstBad}`);
});

t.test('round trip is stable: decode(encode(decode(c))) === decode(c)', async (t) => {
  let bad = 0;
  for (let c = 0; c < 256; c++) {
    const u = ULAW_DECODE[c]!;
    if (ULAW_DECODE[ULAW_ENCODE[u & 0xffff]!] !== u) bad++;
    const a = ALAW_DECODE[c]!;
    if (ALAW_DECODE[ALAW_ENCODE[a & 0xffff]!] !== a) bad++;
  }
  t.equal(bad, 0);
  // and encode → decode → encode is idempotent for every input
  let bad2 = 0;
  for (let s = -32768; s <= 32767; s += 7) {
    const u = ULAW_ENCODE[s & 0xffff]!;
    if (ULAW_ENCODE[ULAW_DECODE[u]! & 0xffff] !== u && ULAW_DECODE[u] !== 0) bad2++;
    const a = ALAW_ENCODE[s & 0xffff]!;
    if (ALAW_ENCODE[ALAW_DECODE[a]! & 0xffff] !== a) bad2++;
  }
  t.equal(bad2, 0);
});

t.test('silence bytes', async (t) => {
  t.equal(SILENCE_BYTE.PCMU, 0xff);
  t.equal(SILENCE_BYTE.PCMA, 0xd5);
  t.equal(ULAW_ENCODE[0], SILENCE_BYTE.PCMU);
  t.equal(ALAW_ENCODE[0], SILENCE_BYTE.PCMA);
  t.equal(ULAW_DECODE[SILENCE_BYTE.PCMU], 0);
});

t.test('decodeInto / encodeInto with offsets and clamping', async (t) => {
  const pcm = new Int16Array(200);
  for (let i = 0; i < 200; i++) pcm[i] = Math.round(Math.sin(i / 5) * 12000);
  for (const codec of ['PCMU', 'PCMA'] as const) {
    const enc = new Uint8Array(170).fill(0x11);
    encodeInto(codec, pcm, 20, 160, enc, 5);
    t.equal(enc[4], 0x11, 'before outOffset untouched');
    t.equal(enc[165], 0x11, 'after the frame untouched');
    const lib = codec === 'PCMU' ? alawmulaw.mulaw : alawmulaw.alaw;
    t.same(Array.from(enc.subarray(5, 165)), Array.from(pcm.subarray(20, 180), (s) => lib.encodeSample(s) & 0xff));
    const out = new Int16Array(170);
    const n = decodeInto(codec, enc.subarray(5, 165), out, 10);
    t.equal(n, 160);
    t.same(Array.from(out.subarray(10, 170)), Array.from(enc.subarray(5, 165), (c) => lib.decodeSample(c)));
    t.equal(out[9], 0);
    // clamped to the output's room
    const small = new Int16Array(100);
    t.equal(decodeInto(codec, enc, small, 40), 60);
    // encode clamped to the input
    const enc2 = new Uint8Array(10).fill(1);
    encodeInto(codec, pcm, 195, 10, enc2);
    t.equal(enc2[5], 1, 'only 5 samples available');
  }
});
