import t from 'tap';
import { ToneGenerator, TONE_PLANS } from '../../src/media/tones.js';
import type { ToneName } from '../../src/media/types.js';

const RATE = 8000;
const LEVEL = 6000;

/** Runs a generator for `frames` 20 ms frames; returns the samples and how many calls returned true. */
function render(name: ToneName, frames: number): { x: Int32Array; trueCalls: number } {
  const g = new ToneGenerator(name);
  const x = new Int32Array(frames * 160);
  const acc = new Int32Array(160);
  let trueCalls = 0;
  let ended = false;
  for (let f = 0; f < frames; f++) {
    acc.fill(0);
    const more = g.addTo(acc);
    if (more && !ended) trueCalls++;
    if (!more) ended = true;
    x.set(acc, f * 160);
  }
  return { x, trueCalls };
}

function goertzelPower(x: Int32Array, from: number, to: number, f: number): number {
  const w = (2 * Math.PI * f) / RATE;
  const c = 2 * Math.cos(w);
  let s1 = 0;
  let s2 = 0;
  for (let i = from; i < to; i++) {
    const s0 = x[i]! + c * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return s1 * s1 + s2 * s2 - c * s1 * s2;
}

/** Frequency with the strongest Goertzel response, scanning 300..2500 Hz in 1 Hz steps. */
function peakFrequency(x: Int32Array, from: number, to: number): number {
  let best = 0;
  let bestP = -1;
  for (let f = 300; f <= 2500; f += 1) {
    const p = goertzelPower(x, from, to, f);
    if (p > bestP) { bestP = p; best = f; }
  }
  return best;
}

/** On/off runs of 1 ms windows (on = any non-zero sample), as [on, ms] pairs. */
function cadence(x: Int32Array): [boolean, number][] {
  const runs: [boolean, number][] = [];
  for (let w = 0; w + 8 <= x.length; w += 8) {
    let on = false;
    for (let i = w; i < w + 8; i++) if (x[i] !== 0) on = true;
    const last = runs[runs.length - 1];
    if (last && last[0] === on) last[1]++;
    else runs.push([on, 1]);
  }
  return runs;
}

/** Expected runs from the plan: consecutive sounding segments merge. */
function expectedCadence(name: ToneName, totalMs: number): [boolean, number][] {
  const plan = TONE_PLANS[name];
  const runs: [boolean, number][] = [];
  let ms = 0;
  do {
    for (const s of plan.segments) {
      const on = s.freqs.length > 0;
      const d = Math.min(s.ms, totalMs - ms);
      if (d <= 0) break;
      const last = runs[runs.length - 1];
      if (last && last[0] === on) last[1] += d;
      else runs.push([on, d]);
      ms += d;
    }
  } while (plan.repeat && ms < totalMs);
  if (ms < totalMs) {
    const last = runs[runs.length - 1]!;
    if (!last[0]) last[1] += totalMs - ms;
    else runs.push([false, totalMs - ms]);
  }
  return runs;
}

const cases: { name: ToneName; ms: number }[] = [
  { name: 'ringing', ms: 10000 },
  { name: 'busy', ms: 1000 },
  { name: 'connected', ms: 400 },
  { name: 'message-sent', ms: 600 },
  { name: 'message-failed', ms: 1990 * 2 },
  { name: 'refused', ms: 500 },
];

for (const { name, ms } of cases) {
  t.test(`${name}: cadence, frequencies, level, continuity`, async (t) => {
    const frames = Math.ceil(ms / 20);
    const { x } = render(name, frames);
    t.same(cadence(x.subarray(0, ms * 8)), expectedCadence(name, ms), 'on/off times (1 ms resolution)');

    const plan = TONE_PLANS[name];
    let at = 0;
    let fmax = 0;
    for (let rep = 0; rep < (plan.repeat ? 2 : 1); rep++) {
      for (const seg of plan.segments) {
        const len = (seg.ms * RATE) / 1000;
        if (at + len > x.length) break;
        // analyse the steady part (skip the 4 ms ramps)
        const from = at + 40;
        const to = at + len - 40;
        if (seg.freqs.length === 0) {
          let nz = 0;
          for (let i = at; i < at + len; i++) if (x[i] !== 0) nz++;
          t.equal(nz, 0, `silent ${seg.ms} ms at ${at / 8} ms`);
        } else {
          const f = seg.freqs[0]!;
          fmax = Math.max(fmax, f);
          const est = peakFrequency(x, from, to);
          t.ok(Math.abs(est - f) / f <= 0.02, `${f} Hz at ${at / 8} ms: measured ${est} Hz`);
          let peak = 0;
          let sq = 0;
          for (let i = from; i < to; i++) { peak = Math.max(peak, Math.abs(x[i]!)); sq += x[i]! * x[i]!; }
          t.ok(peak <= LEVEL + 1 && peak > LEVEL * 0.99, `peak ${peak} ≈ ${LEVEL}`);
          const rms = Math.sqrt(sq / (to - from));
          t.ok(Math.abs(rms - LEVEL / Math.SQRT2) < LEVEL * 0.02, `rms ${rms.toFixed(0)}`);
        }
        at += len;
      }
    }

    // continuity: no sample-to-sample step larger than the steepest slope of the tone itself
    const bound = LEVEL * 2 * Math.sin((Math.PI * fmax) / RATE) + 2;
    let maxStep = 0;
    let maxBoundaryStep = 0;
    for (let i = 1; i < x.length; i++) {
      const step = Math.abs(x[i]! - x[i - 1]!);
      if (step > maxStep) maxStep = step;
      if (i % 160 === 0 && step > maxBoundaryStep) maxBoundaryStep = step;
    }
    t.ok(maxStep <= bound, `max step ${maxStep} ≤ ${bound.toFixed(0)}`);
    t.ok(maxBoundaryStep <= bound, `max step across frames ${maxBoundaryStep}`);
    // tone on/off edges are ramped: the first and last samples of a burst are small
    t.ok(Math.abs(x[0]!) < LEVEL / 10 || plan.segments[0]!.freqs.length === 0, 'ramped start');
  });
}

t.test('one-shot tones end; repeating tones do not', async (t) => {
  // connected 300 ms = 15 frames; message-sent 450 ms = 22.5 → 23; refused 400 ms = 20
  for (const [name, calls] of [['connected', 14], ['message-sent', 22], ['refused', 19]] as const) {
    const g = new ToneGenerator(name);
    const acc = new Int32Array(160);
    let n = 0;
    while (g.addTo(acc)) {
      n++;
      if (n > 1000) break;
    }
    t.equal(n, calls, `${name}: true for ${calls} frames, false on the frame with its last samples`);
    t.ok(g.finished);
    acc.fill(0);
    t.equal(g.addTo(acc), false, 'stays finished');
    t.ok(acc.every((v) => v === 0), 'adds nothing after the end');
  }
  for (const name of ['ringing', 'busy', 'message-failed'] as const) {
    const { trueCalls } = render(name, 600);
    t.equal(trueCalls, 600, `${name} repeats`);
  }
});

t.test('addTo adds (does not overwrite) and honours the level', async (t) => {
  const acc = new Int32Array(160).fill(1000);
  new ToneGenerator('busy', 3000).addTo(acc);
  let peak = 0;
  for (const v of acc) peak = Math.max(peak, Math.abs(v - 1000));
  t.ok(peak <= 3001 && peak > 2900, `peak ${peak}`);
  t.ok(acc.some((v) => v !== 1000));
});
