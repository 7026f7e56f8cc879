import t from 'tap';
import { clearAcc, addInto, subInto, clipInto, addScaledInto, setFrom, encodeMinus, encodeSum, encodePair, encodeFrame } from '../../src/media/mix.js';
import { ALAW_ENCODE, ULAW_ENCODE, encodeInto } from '../../src/media/g711.js';

const frame = (f: (i: number) => number): Int16Array => Int16Array.from({ length: 160 }, (_, i) => f(i));

t.test('sums', async (t) => {
  const acc = new Int32Array(160).fill(123);
  clearAcc(acc);
  t.ok(acc.every((v) => v === 0), 'cleared');
  const a = frame((i) => i * 10);
  const b = frame((i) => -i * 3);
  const c = frame(() => 1000);
  addInto(acc, a);
  addInto(acc, b);
  addInto(acc, c);
  t.same(Array.from(acc), Array.from({ length: 160 }, (_, i) => i * 7 + 1000));
});

t.test('N−1: total minus own', async (t) => {
  const members = [frame((i) => i), frame((i) => 2 * i), frame((i) => -5 * i)];
  const total = new Int32Array(160);
  for (const m of members) addInto(total, m);
  const acc = new Int32Array(160);
  const out = new Int16Array(160);
  for (let k = 0; k < 3; k++) {
    acc.set(total);
    subInto(acc, members[k]!);
    clipInto(acc, out);
    const expected = Array.from({ length: 160 }, (_, i) => members.reduce((s, m, j) => (j === k ? s : s + m[i]!), 0));
    t.same(Array.from(out), expected, `member ${k} hears the other two only`);
  }
});

t.test('clipping saturates at +32767 / −32768', async (t) => {
  const acc = new Int32Array(160);
  addInto(acc, frame(() => 30000));
  addInto(acc, frame((i) => (i % 2 === 0 ? 30000 : -30000)));
  addInto(acc, frame((i) => (i % 2 === 0 ? 0 : -32768)));
  const out = new Int16Array(160);
  clipInto(acc, out);
  t.equal(out[0], 32767, '60000 → 32767');
  t.equal(out[1], -32768, '−32768 → −32768');
  const edge = Int32Array.of(32767, 32768, -32768, -32769, 0, -1, 1);
  const o = new Int16Array(7);
  clipInto(edge, o);
  t.same(Array.from(o), [32767, 32767, -32768, -32768, 0, -1, 1]);
  // three full-scale members: no int32 overflow, clean saturation
  const big = new Int32Array(160);
  for (let k = 0; k < 3; k++) addInto(big, frame(() => -32768));
  clipInto(big, out);
  t.ok(out.every((v) => v === -32768));
});

t.test('addScaledInto', async (t) => {
  const acc = new Int32Array(4);
  addScaledInto(acc, Int16Array.of(1000, -1000, 3, 32767), 0.5);
  t.same(Array.from(acc), [500, -500, 1, 16383]);
});

t.test('mismatched lengths process the common part only', async (t) => {
  const acc = new Int32Array(4);
  addInto(acc, Int16Array.of(1, 2, 3, 4, 5, 6));
  subInto(acc, Int16Array.of(1));
  t.same(Array.from(acc), [0, 2, 3, 4]);
});

t.test('fused kernels give what clipInto + encodeInto give', async (t) => {
  // Random frames with full-scale values, so sums clip in both directions.
  let seed = 12345;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  const randomFrame = (): Int16Array => frame(() => {
    const r = rnd() % 10;
    if (r === 0) return 32767;
    if (r === 1) return -32768;
    return (rnd() % 65536) - 32768;
  });
  for (const [codec, table] of [['PCMU', ULAW_ENCODE], ['PCMA', ALAW_ENCODE]] as const) {
    for (let round = 0; round < 20; round++) {
      const members = [randomFrame(), randomFrame(), randomFrame(), randomFrame()];
      const total = new Int32Array(160);
      setFrom(total, members[0]!);
      for (let k = 1; k < members.length; k++) addInto(total, members[k]!);
      const ref = (acc: Int32Array): number[] => {
        const pcm = new Int16Array(160);
        clipInto(acc, pcm);
        const out = new Uint8Array(160);
        encodeInto(codec, pcm, 0, 160, out, 0);
        return Array.from(out);
      };
      const got = (fill: (out: Uint8Array) => void): number[] => {
        const out = new Uint8Array(4 + 160).fill(0xaa);
        fill(out);
        t.equal(out[3], 0xaa, 'nothing written before the offset');
        return Array.from(out.subarray(4));
      };
      const minus1 = Int32Array.from(total, (v, i) => v - members[1]![i]!);
      t.same(got((o) => encodeMinus(total, members[1]!, table, o, 4)), ref(minus1), `${codec} encodeMinus`);
      t.same(got((o) => encodeSum(total, table, o, 4)), ref(total), `${codec} encodeSum`);
      const pair = Int32Array.from(members[2]!, (v, i) => v + members[3]![i]!);
      t.same(got((o) => encodePair(members[2]!, members[3]!, table, o, 4)), ref(pair), `${codec} encodePair`);
      t.same(got((o) => encodeFrame(members[0]!, table, o, 4)), ref(Int32Array.from(members[0]!)), `${codec} encodeFrame`);
    }
  }
});
