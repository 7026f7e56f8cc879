// End to end with real audio: a citizen (baresip, 1 kHz), a call taker (baresip, 600 Hz) who
// types *1 as RFC 4733 digits, and a region (baresip) that records. After the trigger the
// region hears both; after the call taker leaves it still hears the citizen; the citizen hears
// no private tone and no feature-code digit.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startBaresip } from '../helpers/baresip.js';
import { makeTone, readWav, hasTone, dtmfPresent, toneShare, segmentsWithTone } from '../helpers/audio.js';
import { startTestBridge, waitFor } from '../helpers/bridge.js';
import type { BridgeEvents } from '../../src/core/events.js';

t.test('three-party conference with real audio', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'conf-audio-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const citizenWav = path.join(dir, 'citizen.wav');
  const takerWav = path.join(dir, 'taker.wav');
  await makeTone(citizenWav, { freqHz: 1000, seconds: 12 });
  await makeTone(takerWav, { freqHz: 600, seconds: 12 });

  const region = await startBaresip(t, { name: 'amk', answer: true, seconds: 14, record: true });
  const taker = await startBaresip(t, { name: '1001', answer: true, tone: takerWav, seconds: 14, record: true, sendDtmf: { digits: '*1', afterS: 1 } });
  const { bridge } = await startTestBridge(t, {
    callTakerTarget: taker.uri,
    regionTargets: [region.uri],
    conference: { interDigitMs: 300 },
  });
  const attempts: BridgeEvents['conference.attempt'][] = [];
  const digits: string[] = [];
  bridge.bus.on('conference.attempt', (e) => attempts.push(e));
  bridge.bus.on('call.digit', (e) => digits.push(`${e.digit}/${e.via}`));

  const citizen = await startBaresip(t, { name: 'citizen', dial: `sip:112@127.0.0.1:${bridge.port('udp')}`, tone: citizenWav, seconds: 14, record: true });
  await waitFor(() => attempts.some((a) => a.phase === 'answered'), 8000, 'region answered');
  t.same(digits, ['*/rtp', '1/rtp'], 'the feature code came as RFC 4733 events');
  const answeredAt = Date.now();
  // Let the three talk for 2.5 s, then the call taker leaves.
  await new Promise((r) => setTimeout(r, 2500));
  taker.command('/hangup');
  await new Promise((r) => setTimeout(r, 2500));
  citizen.command('/hangup');
  await waitFor(() => bridge.b2bua.activeCalls === 0, 5000, 'call ended');
  citizen.kill();
  region.kill();
  taker.kill();
  await Promise.all([citizen.done, region.done, taker.done]);

  const reg = readWav(region.recordings()[0]!);
  const sr = reg.sampleRate;
  const secs = reg.samples.length / sr;
  // About 5 s from answer to hang-up; a loaded machine makes baresip's recording a little shorter.
  t.ok(secs > 3.6, `region recorded ${secs.toFixed(1)} s`);
  // While all three talk (from 0.5 s after answer, 2 s long): citizen and call taker both heard.
  const together: [number, number] = [0.5, 2.3];
  t.ok(hasTone(reg.samples, sr, 1000, { window: together }), `region hears the citizen (1 kHz share ${toneShare(reg.samples, sr, 1000, together).toFixed(2)})`);
  t.ok(hasTone(reg.samples, sr, 600, { window: together }), `region hears the call taker (600 Hz share ${toneShare(reg.samples, sr, 600, together).toFixed(2)})`);
  // After the call taker left: the citizen still reaches the region, the call taker does not.
  const after: [number, number] = [3.2, Math.max(3.5, Math.min(4.6, secs - 0.1))];
  t.ok(hasTone(reg.samples, sr, 1000, { window: after }), 'the citizen still reaches the region after the call taker left');
  t.notOk(hasTone(reg.samples, sr, 600, { window: after }), 'no call-taker audio after it left');

  const cit = readWav(citizen.recordings()[0]!);
  t.ok(hasTone(cit.samples, cit.sampleRate, 600), 'the citizen heard the call taker');
  for (const f of [425, 1400]) t.notOk(hasTone(cit.samples, cit.sampleRate, f, { minShare: 0.05 }), `no private tone (${f} Hz) reached the citizen`);
  t.notOk(dtmfPresent(cit.samples, cit.sampleRate), 'no feature-code digit reached the citizen');
  t.notOk(dtmfPresent(reg.samples, sr), 'no feature-code digit reached the region');

  const tk = readWav(taker.recordings()[0]!);
  // The beeps are mixed under the citizen's louder 1 kHz tone: a share of ~10 % of the power.
  const beeps = segmentsWithTone(tk.samples, tk.sampleRate, 1400, 50, { minShare: 0.05 });
  t.ok(beeps.length >= 1, `the call taker heard the "connected" beeps (${JSON.stringify(beeps)})`);
  t.ok(answeredAt > 0);
});
