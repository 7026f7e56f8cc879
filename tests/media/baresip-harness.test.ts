// Proves the media test harness without the bridge: the audio helpers on sox-made files, and
// two real baresip peers calling each other directly, playing tones and recording.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  concatAudio, dominantFrequency, dtmfDigits, dtmfPresent, goertzel, hasTone, makeSilence, makeTone,
  readWav, rms, segmentsWithTone, toneLevels, toneShare, writeWav,
} from '../helpers/audio.js';
import { startBaresip } from '../helpers/baresip.js';
import { freeUdpPortBlock, portsInUse } from '../helpers/ports.js';

const work = mkdtempSync(join(tmpdir(), 'baresip-harness-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
const file = (name: string): string => join(work, name);

t.test('audio helpers on sox-made files', async (t) => {
  t.test('a plain 1 kHz tone', async (t) => {
    await makeTone(file('1k.wav'), { freqHz: 1000, seconds: 1 });
    const w = readWav(file('1k.wav'));
    t.equal(w.sampleRate, 8000);
    t.equal(w.channels, 1);
    t.equal(w.samples.length, 8000);
    t.ok(Math.abs(rms(w.samples) - 0.5 / Math.SQRT2) < 0.01, `rms ${rms(w.samples)}`);
    // Goertzel: amplitude A → A²/4 (0.0625 for volume 0.5).
    t.ok(Math.abs(goertzel(w.samples, 8000, 1000) - 0.0625) < 0.002, `goertzel ${goertzel(w.samples, 8000, 1000)}`);
    t.ok(goertzel(w.samples, 8000, 1100) < 1e-4, 'no power 100 Hz away');
    t.ok(Math.abs(goertzel(w.samples, 8000, 1000, 0, 400) - 0.0625) < 0.003, 'over a sub-range');
    t.ok(hasTone(w.samples, 8000, 1000));
    t.notOk(hasTone(w.samples, 8000, 600));
    t.ok(toneShare(w.samples, 8000, 1000) > 0.95, `share ${toneShare(w.samples, 8000, 1000)}`);
    const df = dominantFrequency(w.samples, 8000);
    t.ok(Math.abs(df - 1000) <= 2, `dominant ${df}`);
    const lv = toneLevels(w.samples, 8000, [600, 1000]);
    t.ok(Math.abs(lv[1000]! - 0.354) < 0.01, `level 1000: ${lv[1000]}`);
    t.ok(lv[600]! < 0.003, `level 600: ${lv[600]}`);
    t.notOk(dtmfPresent(w.samples, 8000), 'a plain 1 kHz tone is no DTMF');
    t.same(segmentsWithTone(w.samples, 8000, 1000), [{ startS: 0, endS: 1 }]);
  });

  t.test('silence', async (t) => {
    await makeSilence(file('sil.wav'), 0.5);
    const w = readWav(file('sil.wav'));
    t.equal(w.samples.length, 4000);
    t.equal(rms(w.samples), 0);
    t.notOk(hasTone(w.samples, 8000, 1000));
    t.ok(Number.isNaN(dominantFrequency(w.samples, 8000)));
    t.same(segmentsWithTone(w.samples, 8000, 425), []);
    t.notOk(dtmfPresent(w.samples, 8000));
  });

  t.test('a 425 Hz 1 s on / 4 s off cadence', async (t) => {
    await makeTone(file('425.wav'), { freqHz: 425, seconds: 1 });
    await makeSilence(file('off.wav'), 4);
    await concatAudio(file('cadence.wav'), ['425.wav', 'off.wav', '425.wav', 'off.wav', '425.wav'].map(file));
    const w = readWav(file('cadence.wav'));
    t.equal(w.samples.length, 11 * 8000);
    const segs = segmentsWithTone(w.samples, 8000, 425);
    t.equal(segs.length, 3, JSON.stringify(segs));
    segs.forEach((s, i) => {
      t.ok(Math.abs(s.startS - 5 * i) <= 0.05, `segment ${i} starts ${s.startS}`);
      t.ok(Math.abs(s.endS - (5 * i + 1)) <= 0.05, `segment ${i} ends ${s.endS}`);
    });
    t.same(segmentsWithTone(w.samples, 8000, 1000), [], 'no 1 kHz segments');
    t.ok(hasTone(w.samples, 8000, 425, { window: [5, 6] }));
    t.notOk(hasTone(w.samples, 8000, 425, { window: [6, 10] }), 'silent between');
    const t0 = Date.now();
    const df = dominantFrequency(w.samples, 8000);
    const ms = Date.now() - t0;
    t.ok(Math.abs(df - 425) <= 2, `dominant ${df}`);
    t.ok(ms < 2000, `dominantFrequency on 11 s took ${ms} ms`);
    t.comment(`dominantFrequency on 11 s of audio: ${ms} ms`);
  });

  t.test('DTMF pairs', async (t) => {
    await makeTone(file('dtmf1.wav'), { freqHz: [697, 1209], seconds: 0.1 });
    const w = readWav(file('dtmf1.wav'));
    t.ok(dtmfPresent(w.samples, 8000), 'sox synth sine 697 sine 1209 is DTMF');
    t.same(dtmfDigits(w.samples, 8000).map((d) => d.key), ['1']);
    // '5' then '#' then '*' mixed with a louder 1 kHz tone (each DTMF tone 12 dB under it).
    await makeTone(file('d5.wav'), { freqHz: [770, 1336], seconds: 0.08, volume: 0.25 });
    await makeTone(file('dhash.wav'), { freqHz: [941, 1477], seconds: 0.08, volume: 0.25 });
    await makeTone(file('dstar.wav'), { freqHz: [941, 1209], seconds: 0.08, volume: 0.25 });
    await makeSilence(file('gap.wav'), 0.1);
    await concatAudio(file('digits.wav'), ['gap', 'd5', 'gap', 'dhash', 'gap', 'dstar', 'gap'].map((n) => file(`${n}.wav`)));
    const d = readWav(file('digits.wav'));
    const mixed = new Float32Array(d.samples.length);
    for (let i = 0; i < mixed.length; i++) mixed[i] = d.samples[i]! + 0.5 * Math.sin((2 * Math.PI * 1000 * i) / 8000);
    t.same(dtmfDigits(mixed, 8000).map((x) => x.key), ['5', '#', '*'], 'digits found under a louder tone');
    // Not DTMF: a single DTMF frequency, two tones of the same group, a 600+1000 Hz mix.
    await makeTone(file('697.wav'), { freqHz: 697, seconds: 0.5 });
    t.notOk(dtmfPresent(readWav(file('697.wav')).samples, 8000), 'one frequency is not a pair');
    await makeTone(file('lowlow.wav'), { freqHz: [697, 941], seconds: 0.5 });
    t.notOk(dtmfPresent(readWav(file('lowlow.wav')).samples, 8000), 'two low-group tones are not a key');
    await makeTone(file('mix.wav'), { freqHz: [600, 1000], seconds: 1 });
    const m = readWav(file('mix.wav'));
    t.notOk(dtmfPresent(m.samples, 8000), '600+1000 Hz is no DTMF');
    t.ok(hasTone(m.samples, 8000, 600) && hasTone(m.samples, 8000, 1000), 'both tones of a mix');
    t.ok(Math.abs(toneShare(m.samples, 8000, 600) - 0.5) < 0.05, `share ${toneShare(m.samples, 8000, 600)}`);
  });

  t.test('readWav: WAVE_FORMAT_EXTENSIBLE, odd chunks, chunk order, unfinished header', async (t) => {
    const pcm = Buffer.alloc(8 * 2 * 2); // 8 stereo frames, 16-bit: L = 0.5, R = -0.25 → mono 0.125
    for (let i = 0; i < 8; i++) { pcm.writeInt16LE(16384, i * 4); pcm.writeInt16LE(-8192, i * 4 + 2); }
    const chunk = (id: string, body: Buffer): Buffer => {
      const h = Buffer.alloc(8);
      h.write(id, 0, 'ascii');
      h.writeUInt32LE(body.length, 4);
      return Buffer.concat([h, body, body.length & 1 ? Buffer.alloc(1) : Buffer.alloc(0)]);
    };
    const fmtExt = Buffer.alloc(40);
    fmtExt.writeUInt16LE(0xfffe, 0);
    fmtExt.writeUInt16LE(2, 2);
    fmtExt.writeUInt32LE(16000, 4);
    fmtExt.writeUInt32LE(16000 * 4, 8);
    fmtExt.writeUInt16LE(4, 12);
    fmtExt.writeUInt16LE(16, 14);
    fmtExt.writeUInt16LE(22, 16);
    fmtExt.writeUInt16LE(16, 18);
    fmtExt.writeUInt32LE(3, 20);
    Buffer.from('0100000000001000800000aa00389b71', 'hex').copy(fmtExt, 24); // KSDATAFORMAT_SUBTYPE_PCM
    const riff = (chunks: Buffer[], size?: number): Buffer => {
      const body = Buffer.concat([Buffer.from('WAVE', 'ascii'), ...chunks]);
      const h = Buffer.alloc(8);
      h.write('RIFF', 0, 'ascii');
      h.writeUInt32LE(size ?? body.length, 4);
      return Buffer.concat([h, body]);
    };
    // data before fmt, an odd-sized LIST chunk (padded) first, a fact chunk between.
    writeFileSync(file('ext.wav'), riff([chunk('LIST', Buffer.from('INFOx', 'ascii')), chunk('data', pcm), chunk('fact', Buffer.alloc(4)), chunk('fmt ', fmtExt)]));
    const w = readWav(file('ext.wav'));
    t.equal(w.sampleRate, 16000);
    t.equal(w.channels, 2);
    t.equal(w.samples.length, 8);
    t.ok(w.samples.every((v) => Math.abs(v - 0.125) < 1e-6), 'channels averaged to mono');
    // A writer killed before fixing its header: data size 0, RIFF size 0.
    const fmtPcm = Buffer.alloc(16);
    fmtPcm.writeUInt16LE(1, 0); fmtPcm.writeUInt16LE(1, 2); fmtPcm.writeUInt32LE(8000, 4);
    fmtPcm.writeUInt32LE(16000, 8); fmtPcm.writeUInt16LE(2, 12); fmtPcm.writeUInt16LE(16, 14);
    const dataHead = Buffer.alloc(8);
    dataHead.write('data', 0, 'ascii');
    writeFileSync(file('unfinished.wav'), Buffer.concat([riff([chunk('fmt ', fmtPcm)], 0), dataHead, pcm]));
    t.equal(readWav(file('unfinished.wav')).samples.length, 16, 'data runs to the end of the file');
    writeFileSync(file('junk.wav'), Buffer.from('not a wav file at all'));
    t.throws(() => readWav(file('junk.wav')), /not a RIFF\/WAVE/);
    // writeWav round trip.
    writeWav(file('rt.wav'), Float32Array.from([0, 0.5, -0.5, 1, -1]), 8000);
    const rt = readWav(file('rt.wav'));
    t.equal(rt.samples.length, 5);
    t.ok(Math.abs(rt.samples[1]! - 0.5) < 1e-4 && rt.samples[4] === -1);
  });
});

t.test('freeUdpPortBlock: disjoint, free, even', async (t) => {
  const a = await freeUdpPortBlock(10);
  const b = await freeUdpPortBlock(10);
  t.equal(a % 2, 0);
  t.ok(a >= 10000 && a + 10 <= 20000 && b >= 10000 && b + 10 <= 20000, 'below the bridge\'s default RTP range (20000-30000)');
  const c = await freeUdpPortBlock(4, '127.0.0.1', [40000, 40010]);
  t.ok(c >= 40000 && c + 4 <= 40010 && c % 2 === 0, `a block in a given range: ${c}`);
  t.ok(Math.abs(a - b) >= 10, `${a} and ${b} do not overlap`);
  const used = portsInUse();
  for (let p = a; p < a + 10; p++) t.notOk(used.has(p), `${p} unused`);
});

t.test('baresip A (1000 Hz) calls baresip B (auto-answer, 600 Hz)', async (t) => {
  await makeTone(file('a1000.wav'), { freqHz: 1000, seconds: 3 });
  await makeTone(file('b600.wav'), { freqHz: 600, seconds: 5 });
  // Both quit once the call ends (A hangs up when its 3 s tone ends); -t 8 is the safety net.
  const b = await startBaresip(t, { name: 'bob', answer: true, tone: file('b600.wav'), seconds: 8, record: true, quitAfterCall: true });
  t.match(b.uri, /^sip:bob@127\.0\.0\.1:\d+$/);
  const started = Date.now();
  const a = await startBaresip(t, {
    name: 'alice', dial: b.uri, tone: file('a1000.wav'), seconds: 8, record: true, quitAfterCall: true,
    sendDtmf: { digits: '1*9#', afterS: 1 },
  });
  t.not(a.port, b.port);
  t.ok(a.rtpPorts[0] > b.rtpPorts[1] || a.rtpPorts[1] < b.rtpPorts[0], 'RTP port blocks disjoint');
  t.ok(await a.established, 'A: call established');
  const [ra, rb] = await Promise.all([a.done, b.done]);
  const callS = (Date.now() - started) / 1000;
  t.ok(callS < 6, `both quit after the call: ${callS.toFixed(2)} s`);
  t.equal(ra.code, 0, `A exited 0${ra.code === 0 ? '' : `\n${ra.log}`}`);
  t.equal(rb.code, 0, `B exited 0${rb.code === 0 ? '' : `\n${rb.log}`}`);
  t.equal(ra.established, 1);
  t.equal(rb.established, 1);
  t.comment(`call established ${ra.establishedAfterMs} ms after A started; B answered ${rb.establishedAfterMs} ms after B started`);
  t.equal(ra.sentDtmf, '1*9#', 'A sent the digits');
  t.equal(rb.receivedDtmf, '1*9#', 'B received them as RFC 4733 events');

  const recB = b.recordings();
  t.equal(recB.length, 1, 'B recorded one call');
  const wb = readWav(recB[0]!);
  t.equal(wb.sampleRate, 8000);
  const secondsB = wb.samples.length / 8000;
  t.ok(secondsB > 2.5 && secondsB < 3.5, `B heard ${secondsB} s`);
  t.ok(hasTone(wb.samples, 8000, 1000), 'B heard 1000 Hz');
  t.notOk(hasTone(wb.samples, 8000, 600), 'B did not hear itself');
  const dfB = dominantFrequency(wb.samples, 8000);
  t.ok(Math.abs(dfB - 1000) <= 30, `B's dominant frequency ${dfB}`);
  t.notOk(dtmfPresent(wb.samples, 8000), 'RFC 4733 digits are not in-band audio');
  const segs = segmentsWithTone(wb.samples, 8000, 1000);
  t.ok(segs.length >= 1 && segs[0]!.startS < 0.3, `1000 Hz from the start of B's recording: ${JSON.stringify(segs)}`);
  t.comment(`B's recording: ${secondsB.toFixed(2)} s, rms ${rms(wb.samples).toFixed(3)}, dominant ${dfB.toFixed(1)} Hz, 1 kHz segments ${JSON.stringify(segs)}`);

  const recA = a.recordings();
  t.equal(recA.length, 1, 'A recorded one call');
  const wa = readWav(recA[0]!);
  t.ok(hasTone(wa.samples, 8000, 600), 'A heard 600 Hz');
  const dfA = dominantFrequency(wa.samples, 8000);
  t.ok(Math.abs(dfA - 600) <= 30, `A's dominant frequency ${dfA}`);
  // What A sent (its -enc.wav) is its own tone.
  t.ok(hasTone(readWav(a.sentRecordings()[0]!).samples, 8000, 1000), "A's sent recording holds 1000 Hz");
});

t.test('TCP, PCMA, a caller killed mid-call', async (t) => {
  await makeTone(file('a800.wav'), { freqHz: 800, seconds: 20 });
  const b = await startBaresip(t, {
    name: 'tcpb', answer: true, seconds: 20, record: true, transport: 'tcp', codecs: ['PCMA'], quitAfterCall: true,
  });
  t.match(b.uri, /;transport=tcp$/);
  const a = await startBaresip(t, { name: 'tcpa', dial: b.uri, tone: file('a800.wav'), seconds: 20, transport: 'tcp', codecs: ['PCMA', 'PCMU'] });
  t.ok(await b.established, 'B: call established over TCP');
  await new Promise((r) => setTimeout(r, 1500));
  const t0 = Date.now();
  a.kill();
  const ra = await a.done;
  t.ok(Date.now() - t0 < 1500, `A gone ${Date.now() - t0} ms after SIGTERM (code ${ra.code}, signal ${ra.signal})`);
  const rb = await b.done; // B got A's BYE and quit
  t.ok(Date.now() - t0 < 3000, `B quit after the BYE, ${Date.now() - t0} ms after the kill`);
  t.match(rb.log, /Set audio decoder: PCMA/, 'PCMA negotiated');
  t.match(rb.log, /sipsess connect via TCP/, 'the call came over TCP');
  const rec = b.recordings();
  t.equal(rec.length, 1);
  const raw = readFileSync(rec[0]!);
  t.equal(raw.readUInt32LE(40), raw.length - 44, 'recording closed properly (data size in the header)');
  const w = readWav(rec[0]!);
  const s = w.samples.length / 8000;
  t.ok(s > 1 && s < 3, `B recorded ${s} s before the kill`);
  t.ok(hasTone(w.samples, 8000, 800), 'B heard 800 Hz');
});

t.test('a ringing peer answers on /accept; a rejected caller quits', async (t) => {
  const b = await startBaresip(t, { name: 'ringer', seconds: 6, quitAfterCall: true });
  const a = await startBaresip(t, { name: 'caller', dial: b.uri, seconds: 6, quitAfterCall: true });
  t.ok(await b.waitForLog(/Incoming call from/), 'B rings');
  await new Promise((r) => setTimeout(r, 200));
  t.notMatch(b.log(), /Call established/, 'B does not answer by itself');
  b.command('/accept');
  t.ok(await b.established, 'answered on /accept');
  b.command('/hangup');
  const [ra, rb] = await Promise.all([a.done, b.done]);
  t.equal(ra.established, 1);
  t.equal(rb.established, 1);
  // Rejected: the caller's quitAfterCall fires on the final response too.
  const c = await startBaresip(t, { name: 'rejecter', seconds: 6 });
  const t0 = Date.now();
  const d = await startBaresip(t, { name: 'rejected', dial: c.uri, seconds: 6, quitAfterCall: true });
  t.ok(await c.waitForLog(/Incoming call from/), 'C rings');
  c.command('/hangup');
  const rd = await d.done;
  t.match(rd.log, /session closed: 486/, 'the caller saw 486');
  t.equal(rd.established, 0);
  t.ok(Date.now() - t0 < 4000, `the rejected caller quit in ${Date.now() - t0} ms`);
});
