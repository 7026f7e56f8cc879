import t from 'tap';
import { DtmfReceiver } from '../../src/media/dtmf-receiver.js';

/** One RFC 4733 event block: event, E bit, volume 10, duration (timestamp units). */
function blk(event: number, end: boolean, duration: number): number[] {
  return [event, (end ? 0x80 : 0) | 10, (duration >> 8) & 0xff, duration & 0xff];
}
const pkt = (...blocks: number[][]): Uint8Array => Uint8Array.from(blocks.flat());

function receiver(): { rx: DtmfReceiver; digits: [string, number][]; ends: [string, number][] } {
  const digits: [string, number][] = [];
  const ends: [string, number][] = [];
  const rx = new DtmfReceiver((d, ms) => digits.push([d, ms]), 8000, (d, ms) => ends.push([d, ms]));
  return { rx, digits, ends };
}

t.test('a normal event: start, continuations, three end packets → one digit', async (t) => {
  const { rx, digits, ends } = receiver();
  const ts = 123456;
  rx.push(ts, pkt(blk(5, false, 160)));
  t.same(digits, [['5', 20]], 'reported on the first packet, with the duration known then');
  for (let d = 320; d <= 800; d += 160) rx.push(ts, pkt(blk(5, false, d)));
  for (let i = 0; i < 3; i++) rx.push(ts, pkt(blk(5, true, 960)));
  t.same(digits, [['5', 20]], 'still one digit');
  t.same(ends, [['5', 120]], 'end reported once with the full duration (960 / 8 = 120 ms)');
});

t.test('only the end packets arrive → one digit', async (t) => {
  const { rx, digits } = receiver();
  for (let i = 0; i < 3; i++) rx.push(4000, pkt(blk(11, true, 800)));
  t.same(digits, [['#', 100]]);
});

t.test('all 16 DTMF events map to digits; other events are ignored', async (t) => {
  const { rx, digits } = receiver();
  for (let e = 0; e < 20; e++) rx.push(e * 10000, pkt(blk(e, true, 400)));
  rx.push(999999, pkt(blk(16, false, 160))); // flash
  t.equal(digits.map((d) => d[0]).join(''), '0123456789*#ABCD');
});

t.test('redundant blocks (two events in one packet) → two digits in order, once each', async (t) => {
  const { rx, digits } = receiver();
  const t1 = 16000;
  rx.push(t1, pkt(blk(1, false, 160)));
  rx.push(t1, pkt(blk(1, false, 320)));
  // packet carrying the end of "1" (800 samples) and the start of "2" at t1 + 800
  rx.push(t1, pkt(blk(1, true, 800), blk(2, false, 160)));
  rx.push(t1, pkt(blk(1, true, 800), blk(2, false, 320)));
  rx.push(t1, pkt(blk(1, true, 800), blk(2, true, 480)));
  // then the end of "2" on its own, three times
  for (let i = 0; i < 3; i++) rx.push(t1 + 800, pkt(blk(2, true, 480)));
  t.same(digits.map((d) => d[0]), ['1', '2']);

  // the same with every packet of "1" lost: it is recovered from the redundant block, in order
  const r2 = receiver();
  r2.rx.push(t1, pkt(blk(1, true, 800), blk(2, false, 160)));
  r2.rx.push(t1 + 800, pkt(blk(2, true, 480)));
  t.same(r2.digits.map((d) => d[0]), ['1', '2']);
});

t.test('the same digit pressed twice → two digits', async (t) => {
  const { rx, digits } = receiver();
  rx.push(1000, pkt(blk(7, false, 160)));
  for (let i = 0; i < 3; i++) rx.push(1000, pkt(blk(7, true, 640)));
  rx.push(1000 + 640 + 800, pkt(blk(7, false, 160)));
  for (let i = 0; i < 3; i++) rx.push(1000 + 640 + 800, pkt(blk(7, true, 640)));
  t.same(digits, [['7', 20], ['7', 20]]);
  // *1 feature code
  const r = receiver();
  r.rx.push(50000, pkt(blk(10, true, 640)));
  r.rx.push(52000, pkt(blk(1, true, 640)));
  t.equal(r.digits.map((d) => d[0]).join(''), '*1');
});

t.test('timestamps wrap around 2^32', async (t) => {
  const { rx, digits } = receiver();
  rx.push(0xffffff00, pkt(blk(1, true, 0x200), blk(2, false, 160)));
  rx.push(0x100, pkt(blk(2, true, 480)));
  t.same(digits.map((d) => d[0]), ['1', '2'], 'second event starts at 0xffffff00 + 0x200 = 0x100');
});

t.test('a long press split into segments is one digit', async (t) => {
  const { rx, digits } = receiver();
  rx.push(0, pkt(blk(3, false, 160)));
  rx.push(0, pkt(blk(3, false, 0xffff)));
  rx.push(0xffff, pkt(blk(3, false, 160)));
  rx.push(0xffff, pkt(blk(3, true, 800)));
  t.equal(digits.length, 1);
});

t.test('active(): during the event and for 40 ms after its end', async (t) => {
  const { rx } = receiver();
  t.notOk(rx.active(0), 'idle');
  rx.push(8000, pkt(blk(1, false, 160)));
  t.ok(rx.active(20), 'in progress');
  rx.push(8000, pkt(blk(1, false, 320)));
  t.ok(rx.active(40));
  t.ok(rx.active(60), 'still in progress between packets');
  rx.push(8000, pkt(blk(1, true, 480)));
  t.ok(rx.active(80), 'end seen at 80');
  rx.push(8000, pkt(blk(1, true, 480)));
  t.ok(rx.active(100), 'retransmitted end does not extend');
  t.ok(rx.active(119));
  t.notOk(rx.active(120), '40 ms after the end');
  // an event whose end packets are all lost stops muting after 250 ms without packets
  rx.push(20000, pkt(blk(2, false, 160)));
  t.ok(rx.active(1000));
  t.ok(rx.active(1240));
  t.notOk(rx.active(1290));
  // end-only event: 40 ms window from when it is seen
  rx.push(40000, pkt(blk(3, true, 640)));
  t.ok(rx.active(2000));
  t.ok(rx.active(2039));
  t.notOk(rx.active(2040));
});

t.test('malformed payloads are harmless', async (t) => {
  const { rx, digits } = receiver();
  rx.push(0, new Uint8Array(0));
  rx.push(0, Uint8Array.of(1, 2, 3));
  rx.push(0, pkt(blk(9, false, 0), [1, 2]));
  t.same(digits, [['9', 0]]);
});
