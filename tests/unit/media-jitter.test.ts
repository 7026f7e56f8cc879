import t from 'tap';
import { JitterBuffer } from '../../src/media/jitter-buffer.js';
import { ALAW_DECODE, ULAW_DECODE } from '../../src/media/g711.js';

// The source signal encodes its own sample index, so any output sample tells where it came from.
const sig = (n: number): number => (n % 16000) + 1;

interface Pkt {
  /** arrival time in ms */
  at: number;
  ssrc: number;
  seq: number;
  ts: number;
  /** index of the first source sample and sample count */
  n0: number;
  len: number;
}

/** A sender: consecutive packets of the given lengths, each arriving when complete + `net` ms. */
function stream(lengths: number[], o: { ssrc?: number; seq0?: number; ts0?: number; n0?: number; t0?: number; net?: number; rate?: number } = {}): Pkt[] {
  const out: Pkt[] = [];
  let n = o.n0 ?? 0;
  let seq = o.seq0 ?? 1000;
  let ts = o.ts0 ?? 5000;
  const rate = o.rate ?? 1; // sender clock speed relative to ours
  for (const len of lengths) {
    out.push({ at: (o.t0 ?? 0) + (n - (o.n0 ?? 0) + len) / 8 / rate + (o.net ?? 0), ssrc: o.ssrc ?? 0x1234, seq: seq & 0xffff, ts: ts >>> 0, n0: n, len });
    n += len;
    seq++;
    ts += len;
  }
  return out;
}

/**
 * Runs the buffer: packets are put at their arrival times, get() runs every 20 ms at 20k + 0.5 ms.
 * Returns the concatenated output (null frames → recorded as NaN so they are visible) and the results of get().
 */
function run(jb: JitterBuffer, pkts: Pkt[], ticks: number): { out: number[]; got: boolean[] } {
  const sorted = [...pkts].sort((a, b) => a.at - b.at);
  const out: number[] = [];
  const got: boolean[] = [];
  const frame = new Int16Array(160);
  const samples = new Int16Array(1024);
  let p = 0;
  for (let k = 1; k <= ticks; k++) {
    const now = 20 * k + 0.5;
    while (p < sorted.length && sorted[p]!.at <= now) {
      const q = sorted[p++]!;
      for (let i = 0; i < q.len; i++) samples[i] = sig(q.n0 + i);
      jb.put(q.ssrc, q.seq, q.ts, samples, q.len);
    }
    frame.fill(-7);
    const g = jb.get(frame);
    got.push(g);
    for (let i = 0; i < 160; i++) out.push(g ? frame[i]! : NaN);
  }
  return { out, got };
}

/** Largest absolute difference between two equally long sample lists (Infinity if lengths differ). */
const maxDiff = (a: number[], b: number[]): number =>
  a.length !== b.length ? Infinity : a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => sig(from + i));
const repeat = <T>(v: T, n: number): T[] => Array.from({ length: n }, () => v);

t.test('in-order 20 ms packets reproduce the input exactly after the delay', async (t) => {
  const jb = new JitterBuffer();
  const { out, got } = run(jb, stream(repeat(160, 100)), 102);
  t.ok(got.every(Boolean));
  t.same(out.slice(0, 320), repeat(0, 320), '40 ms of pre-roll silence');
  t.same(out.slice(320, 320 + 16000), range(0, 16000), 'then the input, sample for sample');
  t.same(jb.stats, { received: 100, lost: 0, late: 0, duplicate: 0, resyncs: 0, concealed: 0 });
  // other delays
  const jb60 = new JitterBuffer({ delayMs: 60 });
  const r60 = run(jb60, stream(repeat(160, 50)), 50);
  t.same(r60.out.slice(0, 480), repeat(0, 480));
  t.same(r60.out.slice(480, 8000), range(0, 8000 - 480));
});

t.test('10 ms and 30 ms packets mixed', async (t) => {
  const jb = new JitterBuffer();
  const lengths = Array.from({ length: 120 }, (_, i) => [80, 240, 160, 80, 80, 240, 240, 80][i % 8]!);
  const total = lengths.reduce((a, b) => a + b, 0);
  const pkts = stream(lengths, { net: 3 });
  const ticks = Math.floor(total / 160);
  const { out } = run(jb, pkts, ticks);
  const first = out.findIndex((v) => v !== 0);
  t.equal(first, 320, 'first sample played delayMs after the first packet arrived (next tick)');
  t.same(out.slice(first), range(0, out.length - first), 'exact reproduction');
  t.equal(jb.stats.concealed, 0);
  t.equal(jb.stats.late, 0);
  t.equal(jb.stats.received, pkts.filter((p) => p.at <= 20 * ticks + 0.5).length, 'every arrived packet accepted');
  t.equal(jb.stats.lost + jb.stats.duplicate + jb.stats.resyncs, 0);
});

t.test('reordering within the delay is repaired', async (t) => {
  const jb = new JitterBuffer();
  const pkts = stream(repeat(160, 60));
  pkts[10]!.at += 25; // arrives after 11 and 12
  pkts[30]!.at += 15;
  const { out } = run(jb, pkts, 60);
  t.same(out.slice(320), range(0, 9600 - 320));
  t.same(jb.stats, { received: 60, lost: 0, late: 0, duplicate: 0, resyncs: 0, concealed: 0 });
});

t.test('a lost packet is concealed: fade, then silence', async (t) => {
  const jb = new JitterBuffer();
  const pkts = stream(repeat(160, 80)).filter((_, i) => i !== 20 && !(i >= 40 && i <= 44));
  const { out } = run(jb, pkts, 82);
  const frameOut = (k: number): number[] => out.slice(320 + 160 * k, 320 + 160 * (k + 1));
  t.same(frameOut(19), range(19 * 160, 20 * 160));
  // frame 20 = frame 19 repeated with a gain ramp 1 → ½
  t.ok(maxDiff(frameOut(20), range(19 * 160, 20 * 160).map((v, i) => v * (1 - i / 320))) <= 0.5, 'gain 1 → ½');
  t.same(frameOut(21), range(21 * 160, 22 * 160), 'the next packet plays normally');
  // 5 lost in a row: ½ → ¼ → ⅛ fades over three frames, then silence
  const last = range(39 * 160, 40 * 160);
  t.ok(maxDiff(frameOut(40), last.map((v, i) => v * (1 - i / 320))) <= 0.5, 'gain 1 → ½');
  t.ok(maxDiff(frameOut(41), last.map((v, i) => v * (0.5 - i / 640))) <= 0.5, 'gain ½ → ¼');
  t.ok(maxDiff(frameOut(42), last.map((v, i) => v * (0.25 - i / 1280))) <= 0.5, 'gain ¼ → ⅛');
  t.same(frameOut(43), repeat(0, 160), 'silence after three frames');
  t.same(frameOut(44), repeat(0, 160));
  t.same(frameOut(45), range(45 * 160, 46 * 160));
  const energy = (k: number): number => frameOut(k).reduce((s, v) => s + v * v, 0);
  t.ok(energy(40) > energy(41) && energy(41) > energy(42) && energy(42) > 0);
  t.same(jb.stats, { received: 74, lost: 6, late: 0, duplicate: 0, resyncs: 0, concealed: 4 });
});

t.test('partial loss with 10 ms packets conceals only the missing half', async (t) => {
  const jb = new JitterBuffer();
  const pkts = stream(repeat(80, 60)).filter((_, i) => i !== 21);
  const { out } = run(jb, pkts, 32);
  const f10 = out.slice(320 + 1600, 320 + 1760);
  t.same(f10.slice(0, 80), range(1600, 1680), 'received half intact');
  t.ok(maxDiff(f10.slice(80), range(1520, 1600).map((v, i) => v * (1 - (i + 80) / 320))) <= 0.5, 'missing half from the last good frame');
  t.equal(jb.stats.concealed, 1);
  t.equal(jb.stats.lost, 1);
});

t.test('late packets are counted and dropped', async (t) => {
  const jb = new JitterBuffer();
  const pkts = stream(repeat(160, 60));
  pkts[25]!.at += 100; // 100 ms late: its playout time (40 ms after arrival of its neighbours) has passed
  const { out } = run(jb, pkts, 62);
  t.equal(jb.stats.late, 1);
  t.equal(jb.stats.lost, 0, 'late is not lost');
  t.equal(jb.stats.concealed, 1);
  t.equal(jb.stats.resyncs, 0);
  t.same(out.slice(320 + 26 * 160, 320 + 40 * 160), range(26 * 160, 40 * 160), 'the stream goes on undisturbed');
});

t.test('duplicates are counted and dropped', async (t) => {
  const jb = new JitterBuffer();
  const pkts = stream(repeat(160, 60));
  pkts.push({ ...pkts[12]!, at: pkts[12]!.at + 1 }); // immediate duplicate
  pkts.push({ ...pkts[5]!, at: pkts[40]!.at }); // long after it was played
  pkts.push({ ...pkts[50]!, at: pkts[50]!.at + 10 });
  const { out } = run(jb, pkts, 62);
  t.equal(jb.stats.duplicate, 3);
  t.equal(jb.stats.late, 0);
  t.same(out.slice(320, 320 + 9000), range(0, 9000));
});

t.test('SSRC change resyncs without a gap longer than the delay', async (t) => {
  const jb = new JitterBuffer();
  const a = stream(repeat(160, 50), { ssrc: 1 });
  // B starts right after A, unrelated sequence numbers and timestamps, its samples follow A's
  const b = stream(repeat(160, 50), { ssrc: 2, seq0: 40000, ts0: 0xfffff000, n0: 8000, t0: 1000 });
  const { out } = run(jb, [...a, ...b], 104);
  t.equal(jb.stats.resyncs, 1);
  const lastA = out.lastIndexOf(sig(7999));
  const firstB = out.indexOf(sig(8000));
  t.ok(lastA > 0 && firstB > lastA, 'A then B');
  t.ok(firstB - lastA - 1 <= 320, `gap ${firstB - lastA - 1} samples ≤ delay`);
  t.same(out.slice(firstB, firstB + 7000), range(8000, 15000), 'B reproduced exactly');
  // a straggler from A after the switch is dropped
  const jb2 = new JitterBuffer();
  run(jb2, [...a, ...b, { ...a[49]!, seq: (a[49]!.seq + 1) & 0xffff, at: 1030 }], 104);
  t.equal(jb2.stats.resyncs, 1);
  t.equal(jb2.stats.late, 1);
});

t.test('timestamp and sequence jumps resync', async (t) => {
  for (const [label, dts, dseq] of [
    ['timestamp +100000', 100000, 0],
    ['timestamp −50000', -50000, 0],
    ['sequence +5000', 0, 5000],
  ] as const) {
    const jb = new JitterBuffer();
    const a = stream(repeat(160, 50));
    const b = stream(repeat(160, 50), { seq0: 1050 + dseq, ts0: 5000 + 8000 + dts, n0: 8000, t0: 1000 });
    const { out } = run(jb, [...a, ...b], 104);
    t.equal(jb.stats.resyncs, 1, label);
    const lastA = out.lastIndexOf(sig(7999));
    const firstB = out.indexOf(sig(8000));
    t.ok(firstB - lastA - 1 <= 320, `${label}: gap ${firstB - lastA - 1} ≤ 320`);
    t.same(out.slice(firstB, firstB + 7000), range(8000, 15000), `${label}: continues exactly`);
    t.equal(jb.stats.late, 0);
  }
});

t.test('sequence wrap at 65535 and timestamp wrap at 2^32', async (t) => {
  const jb = new JitterBuffer();
  const pkts = stream(repeat(160, 100), { seq0: 65500, ts0: 4294967296 - 160 * 40 - 37 });
  pkts[50]!.at += 10; // reordered across the wraps
  const { out } = run(jb, pkts, 102);
  t.same(out.slice(320, 320 + 16000), range(0, 16000));
  t.same(jb.stats, { received: 100, lost: 0, late: 0, duplicate: 0, resyncs: 0, concealed: 0 });
});

t.test('idle after silence returns false; traffic resumes cleanly', async (t) => {
  const jb = new JitterBuffer(); // maxDelay 200 → idle after 300 ms without packets
  const out = new Int16Array(160);
  t.equal(jb.get(out), false, 'nothing yet');
  const a = stream(repeat(160, 20));
  const b = stream(repeat(160, 20), { seq0: 1020, ts0: 5000 + 3200 + 8000, n0: 3200, t0: 1400 });
  const { got, out: o } = run(jb, [...a, ...b], 140);
  // last packet of A arrives at 400 ms → gets at 400.5 … 680.5 (15 ticks) true, then false
  // (tick j runs at 20(j+1) + 0.5 ms)
  t.equal(got.indexOf(false), 34, 'true for (200 + 100) ms after the last packet');
  t.ok(got.slice(34, 70).every((g) => !g), 'idle until traffic resumes');
  t.ok(got[70], 'resumed');
  const firstB = o.indexOf(sig(3200));
  t.same(o.slice(firstB, firstB + 3000), range(3200, 6200));
  t.equal(jb.stats.resyncs, 1);
  // out is not touched while idle
  const jb2 = new JitterBuffer();
  run(jb2, stream(repeat(160, 2)), 30);
  out.fill(99);
  t.equal(jb2.get(out), false);
  t.ok(out.every((v) => v === 99));
});

t.test('DTX: a talk spurt after a silence gap resyncs cleanly', async (t) => {
  const jb = new JitterBuffer();
  const a = stream(repeat(160, 30));
  // 200 ms without packets (shorter than idle): sequence continues, timestamp jumps by the gap
  const b = stream(repeat(160, 30), { seq0: 1030, ts0: 5000 + 4800 + 1600, n0: 4800, t0: 600 + 200 });
  const { out, got } = run(jb, [...a, ...b], 75);
  t.ok(got.every(Boolean), 'never idle');
  t.equal(jb.stats.resyncs, 1);
  t.equal(jb.stats.lost, 0);
  t.equal(jb.stats.late, 0);
  const firstB = out.indexOf(sig(4800));
  // B's first packet arrives at 820 ms, before the tick at 820.5 that reads output frame 40
  t.equal(firstB, 40 * 160 + 320, 'first spurt sample plays delayMs after its arrival');
  t.same(out.slice(firstB, firstB + 4000), range(4800, 8800));
});

t.test('network delay step: packets turning late resync after three', async (t) => {
  const jb = new JitterBuffer();
  const a = stream(repeat(160, 100));
  for (const p of a) if (p.n0 >= 8000) p.at += 60; // from 1 s on everything is 60 ms later
  const { out } = run(jb, a, 110);
  t.equal(jb.stats.resyncs, 1);
  t.ok(jb.stats.late <= 3);
  const idx = out.indexOf(sig(9600));
  t.same(out.slice(idx, idx + 3000), range(9600, 12600), 'plays on after the resync');
});

t.test('clock drift: latency stays near the delay, no late packets', async (t) => {
  /** Latency (ms) between the newest sample the sender produced and the sample playing, every 5 s of a 60 s call. */
  const latencies = (rate: number): { lat: number[]; jb: JitterBuffer } => {
    const jb = new JitterBuffer();
    const frame = new Int16Array(160);
    const samples = new Int16Array(160);
    let k = 0;
    const lat: number[] = [];
    for (let tick = 1; tick <= 3000; tick++) {
      const now = 20 * tick + 0.5;
      while (((k + 1) * 20) / rate <= now) {
        for (let i = 0; i < 160; i++) samples[i] = sig(k * 160 + i);
        jb.put(1, k & 0xffff, (k * 160) >>> 0, samples, 160);
        k++;
      }
      jb.get(frame);
      if (tick % 250 === 0) {
        const v = frame[159]! - 1;
        const produced = now * 8 * rate;
        const playing = v + Math.floor((produced - v) / 16000) * 16000;
        lat.push((produced - playing) / 8);
      }
    }
    return { lat, jb };
  };
  const base = latencies(1).lat;
  t.ok(base.every((l) => Math.abs(l - base[0]!) < 1), `steady latency ${base[0]} ms without drift`);
  // ±0.3 % is 30 times worse than a real sender clock (±100 ppm); it must still hold
  for (const rate of [1.003, 0.997]) {
    const { lat, jb } = latencies(rate);
    t.equal(jb.stats.late, 0, `rate ${rate}: no late packets`);
    t.equal(jb.stats.resyncs, 0, `rate ${rate}: no resync`);
    t.equal(jb.stats.concealed, 0, `rate ${rate}: nothing concealed`);
    const worst = Math.max(...lat.map((l) => Math.abs(l - base[0]!)));
    t.ok(worst <= 40, `rate ${rate}: latency ${lat.map((l) => l.toFixed(0)).join(' ')} ms stays within 40 ms of ${base[0]}`);
  }
});

t.test('short get() input and bad put() lengths are tolerated', async (t) => {
  const jb = new JitterBuffer();
  jb.put(1, 1, 1, new Int16Array(160), 0);
  t.equal(jb.get(new Int16Array(160)), false, 'empty packet ignored');
  jb.put(1, 1, 1, new Int16Array(100), 160); // length clamped to the array
  t.equal(jb.stats.received, 1);
});

t.test('putG711 decodes into the buffer exactly as decoding first and put() do', async (t) => {
  // One stream with reordering, a loss, a duplicate, a late packet, 10/20/30 ms packets and an
  // SSRC change, played into two buffers: decoded samples through put(), the G.711 payload
  // (at an offset inside a larger packet) through putG711(). Output and statistics must match.
  for (const [law, table] of [['µ-law', ULAW_DECODE], ['A-law', ALAW_DECODE]] as const) {
    const pkts = [
      ...stream([160, 160, 80, 80, 240, 160, 160, 160, 160, 160, 160, 160]),
      ...stream([160, 160, 160, 160, 160], { ssrc: 0x9999, seq0: 7, ts0: 900_000, n0: 3000, t0: 250 }),
    ];
    [pkts[2], pkts[3]] = [pkts[3]!, pkts[2]!];
    pkts.splice(6, 1); // lost
    pkts.push({ ...pkts[4]! }); // duplicate
    pkts.push({ ...pkts[0]!, at: 400 }); // late
    const code = (n: number): number => (n * 73 + 11) & 0xff;
    const a = new JitterBuffer({ delayMs: 40, maxDelayMs: 200 });
    const b = new JitterBuffer({ delayMs: 40, maxDelayMs: 200 });
    const sorted = [...pkts].sort((x, y) => x.at - y.at);
    const samples = new Int16Array(1024);
    const packet = new Uint8Array(12 + 1024);
    const fa = new Int16Array(160);
    const fb = new Int16Array(160);
    let p = 0;
    for (let k = 1; k <= 40; k++) {
      const now = 20 * k + 0.5;
      while (p < sorted.length && sorted[p]!.at <= now) {
        const q = sorted[p++]!;
        for (let i = 0; i < q.len; i++) {
          packet[12 + i] = code(q.n0 + i);
          samples[i] = table[code(q.n0 + i)]!;
        }
        a.put(q.ssrc, q.seq, q.ts, samples, q.len);
        b.putG711(q.ssrc, q.seq, q.ts, packet, 12, q.len, table);
      }
      const ga = a.get(fa);
      const gb = b.get(fb);
      t.equal(gb, ga, `${law} tick ${k}: same activity`);
      if (ga) t.same(Array.from(fb), Array.from(fa), `${law} tick ${k}: same samples`);
    }
    t.same(b.stats, a.stats, `${law}: same statistics`);
    t.ok(a.stats.lost > 0 && a.stats.duplicate > 0 && a.stats.late > 0 && a.stats.resyncs > 0, `${law}: the stream exercised loss, duplicates, lateness and a resync`);
  }
  // A payload that claims more than the packet holds is cut at the packet's end.
  const jb = new JitterBuffer({ delayMs: 0 });
  jb.putG711(1, 1, 0, new Uint8Array(12 + 100).fill(0x80), 12, 160, ULAW_DECODE);
  const out = new Int16Array(160);
  jb.get(out);
  t.equal(out[99], ULAW_DECODE[0x80], 'the 100 samples there');
  t.equal(out[100], 0, 'the rest was never received: silence');
  t.equal(jb.stats.received, 1);
});
