// The media engine against raw UDP "phones" on 127.0.0.1: real sockets, real worker, real clock.
// Each test starts its own engine on its own port range (a random free range, see freeRange)
// and stops it on teardown.
import t from 'tap';
import { createSocket, type Socket } from 'node:dgram';
import { MediaEngine, PortsExhaustedError, type MediaEngineOptions } from '../../src/media/engine.js';
import { decodeInto, encodeInto } from '../../src/media/g711.js';
import type { Codec, EndpointMedia, MediaEvent } from '../../src/media/types.js';

/** What the helpers need of a (sub)test. */
interface Test {
  teardown(fn: () => unknown): void;
  fail(message: string): unknown;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function bindUdp(address: string, port = 0): Promise<Socket | null> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', () => {
      s.close();
      resolve(null);
    });
    s.bind({ address, port, exclusive: true }, () => resolve(s));
  });
}

/**
 * A range [min, max) of `pairs` RTP/RTCP pairs, every port of which could be bound just now.
 * Taken from 30000–32700: above the bridge's default RTP range (20000–30000, used by bridges
 * that other test files start concurrently) and below the kernel's ephemeral range (where
 * port-0 binds land). The engine skips a pair someone grabs in between anyway.
 */
async function freeRange(pairs: number): Promise<[number, number]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 30000 + 2 * Math.floor(Math.random() * (1350 - pairs));
    const socks: Socket[] = [];
    let ok = true;
    for (let p = base; p < base + 2 * pairs; p++) {
      const s = await bindUdp('127.0.0.1', p);
      if (!s) {
        ok = false;
        break;
      }
      socks.push(s);
    }
    await Promise.all(socks.map((s) => new Promise<void>((r) => s.close(() => r()))));
    if (ok) return [base, base + 2 * pairs];
  }
  throw new Error('no free port range in 30000-32700');
}

async function startEngine(t: Test, pairs = 8, opts: Partial<MediaEngineOptions> = {}): Promise<{ engine: MediaEngine; events: MediaEvent[] }> {
  const [portMin, portMax] = await freeRange(pairs);
  const engine = await MediaEngine.start({ address: '127.0.0.1', portMin, portMax, rtcpIntervalMs: 60_000, ...opts });
  t.teardown(() => engine.stop());
  const events: MediaEvent[] = [];
  engine.on('event', (e: MediaEvent) => events.push(e));
  engine.on('error', (err: Error) => t.fail(`engine error: ${err.message}`));
  return { engine, events };
}

interface Rx {
  seq: number;
  ts: number;
  ssrc: number;
  marker: boolean;
  pt: number;
  payload: Buffer;
  at: number;
}

const PT: Record<Codec, number> = { PCMU: 0, PCMA: 8 };

/**
 * Goertzel levels for an 8000-amplitude tone: heard is well above half of it (concealment of a
 * late packet on a loaded machine lowers the average a little), not heard is below −30 dB of it.
 */
const HEARD = 4000;
const NOT_HEARD = 250;

/** A raw RTP peer: an RTP and an RTCP socket, what it receives, and a tone it can send. */
class Phone {
  readonly received: Rx[] = [];
  readonly rtcpIn: Buffer[] = [];
  ssrc = (Math.random() * 0xffffffff) >>> 0;
  seq = Math.floor(Math.random() * 0xffff);
  ts = (Math.random() * 0xffffffff) >>> 0;
  private phase = 0;
  private timer: NodeJS.Timeout | null = null;

  private constructor(readonly address: string, readonly rtp: Socket, readonly rtcp: Socket) {
    rtp.on('message', (m) => {
      if (m.length >= 2 && m[1]! >= 192 && m[1]! <= 223) {
        this.rtcpIn.push(m);
        return;
      }
      if (m.length < 12) return;
      this.received.push({
        marker: (m[1]! & 0x80) !== 0, pt: m[1]! & 0x7f, seq: m.readUInt16BE(2), ts: m.readUInt32BE(4), ssrc: m.readUInt32BE(8),
        payload: m.subarray(12), at: performance.now(),
      });
    });
    rtcp.on('message', (m) => this.rtcpIn.push(m));
  }

  static async open(t: Test, address = '127.0.0.1'): Promise<Phone> {
    const rtp = await bindUdp(address);
    const rtcp = await bindUdp(address);
    if (!rtp || !rtcp) throw new Error(`cannot bind on ${address}`);
    const p = new Phone(address, rtp, rtcp);
    t.teardown(() => p.close());
    return p;
  }

  get port(): number {
    return this.rtp.address().port;
  }

  media(codec: Codec, extra: Partial<EndpointMedia> = {}): EndpointMedia {
    return {
      remote: { address: this.address, port: this.port, rtcpPort: this.rtcp.address().port },
      codec, payloadType: PT[codec], telephoneEvent: 101, ptimeMs: 20, direction: 'sendrecv', latchNetworks: [], ...extra,
    };
  }

  /** One RTP packet to the engine's port; the timestamp advances by `advance` (default: payload length). */
  sendRtp(port: number, pt: number, payload: Uint8Array, opts: { marker?: boolean; ts?: number; advance?: number } = {}): void {
    const b = Buffer.alloc(12 + payload.length);
    b[0] = 0x80;
    b[1] = (opts.marker ? 0x80 : 0) | pt;
    b.writeUInt16BE(this.seq, 2);
    b.writeUInt32BE((opts.ts ?? this.ts) >>> 0, 4);
    b.writeUInt32BE(this.ssrc, 8);
    b.set(payload, 12);
    this.rtp.send(b, port, '127.0.0.1');
    this.seq = (this.seq + 1) & 0xffff;
    if (opts.ts === undefined) this.ts = (this.ts + (opts.advance ?? payload.length)) >>> 0;
  }

  /** `samples` of a sine (continuous phase), G.711-encoded. */
  tonePayload(codec: Codec, freq: number, samples: number, amplitude = 8000): Buffer {
    const pcm = new Int16Array(samples);
    for (let i = 0; i < samples; i++) {
      pcm[i] = Math.round(amplitude * Math.sin(this.phase));
      this.phase += (2 * Math.PI * freq) / 8000;
    }
    const out = Buffer.alloc(samples);
    encodeInto(codec, pcm, 0, samples, out, 0);
    return out;
  }

  /**
   * Sends a tone (freq 0 = silence) to `port`, one packet per ptime ms, until stop(). Paced
   * against the start time (every packet that is due is sent at each wake-up), so a loaded test
   * machine delays packets but never drops the rate.
   */
  start(port: number, codec: Codec, freq: number, ptimeMs = 20): void {
    this.stop();
    const t0 = performance.now();
    let sent = 0;
    const tick = (): void => {
      while (sent * ptimeMs <= performance.now() - t0) {
        this.sendRtp(port, PT[codec], this.tonePayload(codec, freq, ptimeMs * 8, freq === 0 ? 0 : 8000), { marker: sent === 0 });
        sent++;
      }
      this.timer = setTimeout(tick, Math.max(0, t0 + sent * ptimeMs - performance.now()));
    };
    tick();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Decoded audio of the packets received from index `from` on. */
  audio(codec: Codec, from = 0, to = this.received.length): Int16Array {
    const pkts = this.received.slice(from, to);
    const out = new Int16Array(pkts.reduce((n, p) => n + p.payload.length, 0));
    let off = 0;
    for (const p of pkts) off += decodeInto(codec, p.payload, out, off);
    return out;
  }

  close(): void {
    this.stop();
    try {
      this.rtp.close();
      this.rtcp.close();
    } catch {
      /* closed */
    }
  }
}

/** Goertzel: the amplitude of `freq` in `x` (a full-scale sine of amplitude A gives ≈ A). */
function level(x: Int16Array, freq: number): number {
  const n = x.length;
  if (n === 0) return 0;
  const k = 2 * Math.cos((2 * Math.PI * freq) / 8000);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const s0 = x[i]! + k * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return (2 * Math.sqrt(Math.max(0, s1 * s1 + s2 * s2 - k * s1 * s2))) / n;
}

/** Largest |sample| of x. */
function peak(x: Int16Array): number {
  let m = 0;
  for (const v of x) if (Math.abs(v) > m) m = Math.abs(v);
  return m;
}

/** Every problem with a received stream: SSRC changes, sequence gaps, timestamps that do not follow the payload. */
function discontinuities(rx: Rx[]): string[] {
  const out: string[] = [];
  for (let i = 1; i < rx.length; i++) {
    const a = rx[i - 1]!;
    const b = rx[i]!;
    if (b.ssrc !== a.ssrc) out.push(`#${i}: SSRC ${a.ssrc} → ${b.ssrc}`);
    if (((b.seq - a.seq) & 0xffff) !== 1) out.push(`#${i}: seq ${a.seq} → ${b.seq}`);
    if (((b.ts - a.ts) >>> 0) !== a.payload.length) out.push(`#${i}: ts +${(b.ts - a.ts) >>> 0} after ${a.payload.length} samples`);
  }
  return out;
}

async function until(cond: () => boolean, timeoutMs = 3000): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) return false;
    await sleep(10);
  }
  return true;
}

t.test('conference: relay of two, then three, then two again; transcoding; continuous streams', async (t) => {
  const { engine } = await startEngine(t);
  const [pa, pb, pc] = [await Phone.open(t), await Phone.open(t), await Phone.open(t)];
  const a = await engine.allocate();
  const b = await engine.allocate();
  t.equal(a.address, '127.0.0.1');
  t.equal(a.port % 2, 0, 'even RTP port');
  t.not(a.port, b.port);
  t.equal(engine.activeEndpoints, 2);
  engine.configure(a.id, pa.media('PCMU'));
  engine.configure(b.id, pb.media('PCMA'));
  engine.setConference('c1', [a.id, b.id]);
  pa.start(a.port, 'PCMU', 1000);
  pb.start(b.port, 'PCMA', 600);
  await sleep(800);

  const bAudio = pb.audio('PCMA', 10);
  t.ok(pb.received.length >= 30, `B's phone receives (${pb.received.length} packets)`);
  t.ok(pb.received.every((p) => p.pt === 8 && p.payload.length === 160), 'PCMA, 20 ms packets');
  t.ok(level(bAudio, 1000) > HEARD, `B hears A's 1 kHz (${level(bAudio, 1000).toFixed(0)})`);
  t.ok(level(bAudio, 600) < NOT_HEARD, 'B does not hear itself');
  const aAudio = pa.audio('PCMU', 10);
  t.ok(level(aAudio, 600) > HEARD, `A hears B's 600 Hz (${level(aAudio, 600).toFixed(0)})`);
  t.ok(level(aAudio, 1000) < NOT_HEARD, 'A does not hear itself');
  t.equal(pb.received[0]!.marker, true, 'marker on the first packet');
  t.ok(pb.received.slice(1).every((p) => !p.marker), 'no marker after');

  // C joins: a conference of three.
  const c = await engine.allocate();
  engine.configure(c.id, pc.media('PCMU'));
  pc.start(c.port, 'PCMU', 1400);
  const [ia, ib] = [pa.received.length, pb.received.length];
  engine.setConference('c1', [a.id, b.id, c.id]);
  await sleep(800);
  const [ja, jb, jc] = [pa.received.length, pb.received.length, pc.received.length];
  const a3 = pa.audio('PCMU', ia + 10);
  const b3 = pb.audio('PCMA', ib + 10);
  const c3 = pc.audio('PCMU', 10);
  t.ok(level(a3, 600) > HEARD && level(a3, 1400) > HEARD && level(a3, 1000) < NOT_HEARD, 'A hears B + C, not itself');
  t.ok(level(b3, 1000) > HEARD && level(b3, 1400) > HEARD && level(b3, 600) < NOT_HEARD, 'B hears A + C, not itself');
  t.ok(level(c3, 1000) > HEARD && level(c3, 600) > HEARD && level(c3, 1400) < NOT_HEARD, 'C hears A + B, not itself');

  // C leaves.
  engine.setConference('c1', [a.id, b.id]);
  await sleep(600);
  const a2 = pa.audio('PCMU', ja + 10);
  const b2 = pb.audio('PCMA', jb + 10);
  t.ok(level(a2, 600) > HEARD && level(a2, 1400) < NOT_HEARD, 'A hears only B again');
  t.ok(level(b2, 1000) > HEARD && level(b2, 1400) < NOT_HEARD, 'B hears only A again');
  t.ok(pc.received.length - jc <= 2, 'C is no longer sent anything');
  t.same(discontinuities(pa.received), [], "A's stream: one SSRC, continuous seq and timestamps throughout");
  t.same(discontinuities(pb.received), [], "B's stream: one SSRC, continuous seq and timestamps throughout");
  t.equal(pb.received.filter((p) => p.marker).length, 1, 'B: marker only at the start');

  const stats = await engine.stats();
  const sa = stats.find((s) => s.id === a.id)!;
  t.ok(sa.packetsIn > 80 && sa.packetsOut > 80, `A counts packets (${sa.packetsIn} in, ${sa.packetsOut} out)`);
  t.equal(sa.rejectedSource, 0);
  t.equal(sa.latchedTo, `127.0.0.1:${pa.port}`);
});

t.test('ptime 10 on one leg and 30 on the other', async (t) => {
  const { engine } = await startEngine(t);
  const [pa, pb] = [await Phone.open(t), await Phone.open(t)];
  const a = await engine.allocate();
  const b = await engine.allocate();
  engine.configure(a.id, pa.media('PCMU', { ptimeMs: 10 }));
  engine.configure(b.id, pb.media('PCMU', { ptimeMs: 30 }));
  engine.setConference('c', [a.id, b.id]);
  pa.start(a.port, 'PCMU', 1000, 10);
  pb.start(b.port, 'PCMU', 600, 30);
  await sleep(1000);
  t.ok(pa.received.length > 60, `10 ms leg receives ${pa.received.length} packets in 1 s`);
  t.ok(pa.received.every((p) => p.payload.length === 80), 'all 80 samples');
  t.ok(pb.received.length > 20 && pb.received.length < 40, `30 ms leg receives ${pb.received.length} packets in 1 s`);
  t.ok(pb.received.every((p) => p.payload.length === 240), 'all 240 samples');
  t.same(discontinuities(pa.received), [], '10 ms stream continuous');
  t.same(discontinuities(pb.received), [], '30 ms stream continuous');
  t.ok(level(pb.audio('PCMU', 8), 1000) > HEARD, '30 ms leg hears the 10 ms leg');
  t.ok(level(pa.audio('PCMU', 20), 600) > HEARD, '10 ms leg hears the 30 ms leg');

  // Re-INVITE switches leg A to 20 ms: the stream stays continuous.
  engine.configure(a.id, pa.media('PCMU', { ptimeMs: 20 }));
  const i = pa.received.length;
  await sleep(400);
  const after = pa.received.slice(i);
  const switched = after.findIndex((p) => p.payload.length === 160);
  t.ok(switched >= 0 && after.slice(switched).every((p) => p.payload.length === 160) && after.length - switched >= 10, 'now 160 samples');
  t.same(discontinuities(pa.received), [], 'continuous across the ptime change');
});

t.test('latching: a source outside the SDP is rejected, unless a latch network allows it', async (t) => {
  const { engine, events } = await startEngine(t);
  const pa = await Phone.open(t);
  const pb = await Phone.open(t);
  const stranger = await Phone.open(t, '127.0.0.2');
  const a = await engine.allocate();
  const b = await engine.allocate();
  engine.configure(a.id, pa.media('PCMU'));
  engine.configure(b.id, pb.media('PCMU'));
  engine.setConference('c', [a.id, b.id]);
  stranger.start(a.port, 'PCMU', 1000);
  await sleep(600);
  let s = (await engine.stats()).find((x) => x.id === a.id)!;
  t.ok(s.rejectedSource >= 20, `dropped and counted (${s.rejectedSource})`);
  t.equal(s.packetsIn, 0);
  t.equal(s.latchedTo, null, 'not latched');
  const rej = events.filter((e) => e.type === 'rejected-source');
  t.equal(rej.length, 1, 'one rejected-source event (rate-limited)');
  t.same(rej[0], { type: 'rejected-source', endpointId: a.id, from: `127.0.0.2:${stranger.port}` });
  t.ok(pb.received.length > 20, 'B is sent the mix all the same');
  t.ok(peak(pb.audio('PCMU')) < 50, 'nobody hears the stranger');

  // The SBC pool 127.0.0.0/8 is allowed: the stranger is accepted and latched.
  engine.configure(a.id, pa.media('PCMU', { latchNetworks: ['127.0.0.0/8'] }));
  const i = pb.received.length;
  await sleep(600);
  s = (await engine.stats()).find((x) => x.id === a.id)!;
  t.equal(s.latchedTo, `127.0.0.2:${stranger.port}`, 'latched to the allowed network source');
  t.ok(s.packetsIn > 15, 'accepted');
  t.ok(level(pb.audio('PCMU', i + 10), 1000) > HEARD, 'B hears it');
  t.ok(stranger.received.length > 10, 'symmetric RTP: A now sends to the latched source');
  const before = pa.received.length;
  await sleep(200);
  t.equal(pa.received.length, before, 'and no longer to the SDP address');
  t.throws(() => engine.configure(a.id, pa.media('PCMU', { latchNetworks: ['nonsense/8'] })), RangeError);
});

t.test('RFC 4733: one dtmf event per press; the audio sent during the event is not heard', async (t) => {
  const { engine, events } = await startEngine(t);
  const pa = await Phone.open(t);
  const pb = await Phone.open(t);
  const a = await engine.allocate();
  const b = await engine.allocate();
  engine.configure(a.id, pa.media('PCMU'));
  engine.configure(b.id, pb.media('PCMU'));
  engine.setConference('c', [a.id, b.id]);

  // The phone sends silence, and during each key press an in-band 1 kHz tone as audio besides
  // the RFC 4733 events: B must not hear that tone.
  let pressing: number | null = null;
  let eventTs = 0;
  let duration = 0;
  let first = true;
  const timer = setInterval(() => {
    const audio = pa.tonePayload('PCMU', 1000, 160, pressing === null ? 0 : 8000);
    pa.sendRtp(a.port, 0, audio, { marker: first });
    first = false;
    if (pressing !== null) {
      duration += 160;
      const ev = Buffer.from([pressing, 10, duration >> 8, duration & 0xff]);
      pa.sendRtp(a.port, 101, ev, { marker: duration === 160, ts: eventTs });
    }
  }, 20);
  t.teardown(() => clearInterval(timer));
  const press = async (code: number, ms: number): Promise<void> => {
    eventTs = pa.ts;
    duration = 0;
    pressing = code;
    await sleep(ms);
    pressing = null;
    // End packets, three times (RFC 4733 §2.5.1.4).
    for (let i = 0; i < 3; i++) {
      pa.sendRtp(a.port, 101, Buffer.from([code, 0x80 | 10, duration >> 8, duration & 0xff]), { ts: eventTs });
      await sleep(5);
    }
  };
  await sleep(300);
  await press(5, 160);
  await sleep(400);
  await press(11, 120);
  await sleep(600);
  const dtmf = events.filter((e) => e.type === 'dtmf');
  t.equal(dtmf.length, 2, 'exactly one event per press');
  t.same(dtmf.map((e) => e.type === 'dtmf' && e.digit), ['5', '#']);
  // Reported on the first packet of the press (the feature-code logic need not wait for the
  // release), with the duration known then.
  for (const e of dtmf) if (e.type === 'dtmf') t.ok(e.endpointId === a.id && e.durationMs >= 0 && e.durationMs <= 40, `duration ${e.durationMs} ms at onset`);
  const heard = pb.audio('PCMU');
  t.ok(heard.length > 160 * 50, 'B received the mix throughout');
  let worst = 0;
  for (let off = 0; off + 160 <= heard.length; off += 160) worst = Math.max(worst, level(heard.subarray(off, off + 160), 1000));
  t.ok(worst < NOT_HEARD, `no 20 ms frame of B's audio carries the key-press tone (max 1 kHz level ${worst.toFixed(0)})`);
});

t.test('comfort noise is silence; unknown payload types are dropped and counted', async (t) => {
  const { engine } = await startEngine(t);
  const pa = await Phone.open(t);
  const pb = await Phone.open(t);
  const a = await engine.allocate();
  const b = await engine.allocate();
  engine.configure(a.id, pa.media('PCMU'));
  engine.configure(b.id, pb.media('PCMU'));
  engine.setConference('c', [a.id, b.id]);
  pa.start(a.port, 'PCMU', 1000);
  await sleep(400);
  pa.stop();
  // RFC 3389 CN (PT 13, one level byte) every 20 ms, then an undeclared dynamic PT 96.
  const cn = setInterval(() => pa.sendRtp(a.port, 13, Buffer.from([40]), { advance: 160 }), 20);
  await sleep(600);
  clearInterval(cn);
  const i = pb.received.length;
  const junk = setInterval(() => pa.sendRtp(a.port, 96, Buffer.alloc(160, 0x55)), 20);
  await sleep(400);
  clearInterval(junk);
  const es = await engine.engineStats();
  t.ok(es.unknownPayload >= 10 && es.unknownPayload <= 25, `PT 96 counted as unknown (${es.unknownPayload}), CN not`);
  t.ok(peak(pb.audio('PCMU', i - 10, i)) < 50, 'B hears silence while A sends comfort noise');
  t.ok(peak(pb.audio('PCMU', i + 5)) < 50, 'and nothing of the unknown payload type');
  t.same(discontinuities(pb.received), [], "B's stream is continuous throughout");
});

t.test("private tone: A's phone hears ringing, B hears none of it", async (t) => {
  const { engine } = await startEngine(t);
  const pa = await Phone.open(t);
  const pb = await Phone.open(t);
  const a = await engine.allocate();
  const b = await engine.allocate();
  engine.configure(a.id, pa.media('PCMA'));
  engine.configure(b.id, pb.media('PCMU'));
  await sleep(100);
  t.equal(pa.received.length, 0, 'an endpoint in no conference and no tone is sent nothing');
  engine.playTone(a.id, 'ringing');
  await sleep(600);
  const ringing = pa.audio('PCMA', 2);
  t.ok(pa.received.length > 20, 'A hears the tone before anything is mixed');
  t.ok(level(ringing, 425) > 1000, `425 Hz (${level(ringing, 425).toFixed(0)})`);
  t.equal(pb.received.length, 0, 'B is sent nothing');

  // In a conference: A talks to B while ringing; B hears A's voice, never the ringing.
  pa.start(a.port, 'PCMA', 1000);
  engine.setConference('c', [a.id, b.id]);
  await sleep(800);
  const bAudio = pb.audio('PCMU', 5);
  t.ok(level(bAudio, 1000) > HEARD, 'B hears A');
  t.ok(level(bAudio, 425) < 100, `B hears no ringing (${level(bAudio, 425).toFixed(0)})`);
  engine.playTone(a.id, null);
  engine.setConference('c', []);
  await sleep(100);
  const n = pa.received.length;
  await sleep(200);
  t.equal(pa.received.length, n, 'no tone and no conference: A is sent nothing');
  t.same(discontinuities(pa.received.slice(0, n)).filter((d) => !d.includes('ts')), [], 'seq continuous for A');
  t.throws(() => engine.playTone(a.id, 'nonsense' as never), RangeError);
});

t.test('a pair whose port is taken by someone else is skipped', async (t) => {
  const [portMin, portMax] = await freeRange(3);
  const squatter = await bindUdp('127.0.0.1', portMin + 1); // the RTCP port of the first pair
  t.ok(squatter, 'occupied the first RTCP port');
  const engine = await MediaEngine.start({ address: '127.0.0.1', portMin, portMax });
  t.teardown(() => engine.stop());
  const a = await engine.allocate();
  t.equal(a.port, portMin + 2, 'the next pair');
  const b = await engine.allocate();
  t.equal(b.port, portMin + 4);
  await t.rejects(engine.allocate(), PortsExhaustedError, 'the skipped pair is still unusable: exhausted');
  squatter?.close();
  await sleep(50);
  const c = await engine.allocate();
  t.equal(c.port, portMin, 'once free, the skipped pair is used again');
});

t.test('port exhaustion: a range of two pairs', async (t) => {
  const { engine } = await startEngine(t, 2);
  const x = await engine.allocate();
  const y = await engine.allocate();
  await t.rejects(engine.allocate(), PortsExhaustedError, 'the third allocate rejects');
  engine.release(x.id);
  const z = await engine.allocate();
  t.equal(z.port, x.port, 'release frees the pair');
  t.equal(engine.activeEndpoints, 2);
  t.throws(() => engine.configure(x.id, { remote: null, codec: 'PCMU', payloadType: 0, telephoneEvent: null, ptimeMs: 20, direction: 'sendrecv', latchNetworks: [] }), /unknown/);
  engine.release(y.id);
  engine.release(z.id);
  t.equal(engine.activeEndpoints, 0);
});

t.test('RTCP: receiver reports with a block about the peer, LSR from its SR, BYE on release; RTP timeout', async (t) => {
  const { engine, events } = await startEngine(t, 8, { rtcpIntervalMs: 200, rtpTimeoutMs: 400 });
  const pa = await Phone.open(t);
  const a = await engine.allocate();
  engine.configure(a.id, pa.media('PCMU', { direction: 'recvonly' }));
  pa.start(a.port, 'PCMU', 1000);
  t.ok(await until(() => pa.rtcpIn.length >= 1, 2000), 'a report arrives at the RTCP port within 2 s');
  const rr = pa.rtcpIn[pa.rtcpIn.length - 1]!;
  t.equal(rr[1], 201, 'RR (we send nothing: recvonly)');
  t.equal(rr[0]! & 0x1f, 1, 'one report block');
  t.equal(rr.readUInt32BE(8), pa.ssrc, "about the phone's SSRC");
  t.equal(pa.received.length, 0, 'recvonly: no RTP sent');

  // The phone sends an SR; the next report echoes its NTP middle bits as LSR.
  const ntpSec = 0x12345678;
  const ntpFrac = 0x9abcdef0;
  const sr = Buffer.alloc(28);
  sr[0] = 0x80;
  sr[1] = 200;
  sr.writeUInt16BE(6, 2);
  sr.writeUInt32BE(pa.ssrc, 4);
  sr.writeUInt32BE(ntpSec, 8);
  sr.writeUInt32BE(ntpFrac, 12);
  pa.rtcp.send(sr, a.port + 1, '127.0.0.1');
  const n = pa.rtcpIn.length;
  t.ok(await until(() => pa.rtcpIn.length > n + 1, 2000), 'more reports');
  const last = pa.rtcpIn[pa.rtcpIn.length - 1]!;
  t.equal(last.readUInt32BE(8 + 16), ((ntpSec & 0xffff) << 16 | ntpFrac >>> 16) >>> 0, 'LSR from the SR');

  // sendrecv in a conference: we send, so the reports become SRs.
  engine.configure(a.id, pa.media('PCMU'));
  engine.playTone(a.id, 'ringing');
  const m = pa.rtcpIn.length;
  t.ok(await until(() => pa.rtcpIn.slice(m).some((p) => p[1] === 200), 2000), 'SR once we send');

  // RTP timeout: the phone stops sending.
  pa.stop();
  t.ok(await until(() => events.some((e) => e.type === 'rtp-timeout'), 2000), 'rtp-timeout event');
  const to = events.find((e) => e.type === 'rtp-timeout');
  t.ok(to && to.type === 'rtp-timeout' && to.endpointId === a.id && to.silentForMs >= 400);

  const k = pa.rtcpIn.length;
  engine.release(a.id);
  t.ok(await until(() => pa.rtcpIn.slice(k).some((p) => p.includes(Buffer.from([0x81, 203]))), 2000), 'BYE on release');
  const stats = await engine.stats();
  t.same(stats, [], 'released endpoints are gone from stats');
});

t.test('release stops sending and frees the ports', async (t) => {
  const { engine } = await startEngine(t, 4);
  const pa = await Phone.open(t);
  const pb = await Phone.open(t);
  const a = await engine.allocate();
  const b = await engine.allocate();
  engine.configure(a.id, pa.media('PCMU'));
  engine.configure(b.id, pb.media('PCMU'));
  engine.setConference('c', [a.id, b.id]);
  pa.start(a.port, 'PCMU', 1000);
  await sleep(300);
  t.ok(pb.received.length > 5);
  engine.release(b.id);
  t.equal(engine.activeEndpoints, 1);
  await sleep(200);
  const n = pb.received.length;
  await sleep(300);
  t.equal(pb.received.length, n, 'nothing more is sent to B');
  const rtp = await bindUdp('127.0.0.1', b.port);
  const rtcp = await bindUdp('127.0.0.1', b.port + 1);
  t.ok(rtp && rtcp, 'both ports can be bound again');
  rtp?.close();
  rtcp?.close();
  t.throws(() => engine.release(b.id), /unknown/, 'double release');
  // A goes on alone in the conference (it hears silence, still a continuous stream).
  const i = pa.received.length;
  await sleep(200);
  t.ok(pa.received.length > i, 'A still sent');
  t.same(discontinuities(pa.received), [], "A's stream continuous");
  await engine.stop();
  await t.rejects(engine.stats(), /stopped/);
});
