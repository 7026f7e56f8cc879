// Fixed-delay, sample-accurate jitter buffer for one input stream (8 kHz, 16-bit, decoded).
//
// Model
// - The buffer keeps a local sample timeline. Each packet's samples are written at the position
//   its RTP timestamp maps to (anchorPos + tsDelta(anchorTs, ts)); the mapping is re-anchored at
//   every accepted packet so timestamp wrap-around (2^32) never matters. Sample accuracy means
//   10, 20 and 30 ms packets (80/160/240 samples) may be mixed freely.
// - The playout point advances 160 samples per get() (the mixer's 20 ms tick). On a (re)start
//   the first packet is placed `delay` samples after the playout point, so it is heard delayMs
//   after it arrived (frames before that are pre-roll silence).
// - A per-sample "present" flag marks what has been received. Missing samples are concealed:
//   the last fully received 20 ms frame is repeated with a fade of −6 dB per frame (linear gain
//   ramp 1 → ½ over the first frame, ½ → ¼ over the second, ¼ → ⅛ over the third), then
//   silence. stats.concealed counts frames in which any sample was filled by repetition.
// - Packets whose start lies behind the playout point are late: counted and dropped. Three late
//   packets in a row that are each the newest so far (not reordered stragglers) mean the sender's
//   timing moved (a network delay step): the third resyncs.
// - Duplicates are found by extended sequence number (256-packet window) and dropped.
// - stats.lost comes from sequence gaps as this buffer sees them: packets of other payload types
//   sharing the sequence space (telephone-event, comfort noise) that are not put() look lost
//   here. RTCP loss figures belong to ReceptionStats (rtcp.ts), which sees every packet.
// - Resync (counted in stats.resyncs): a new SSRC; a sequence jump (|Δseq| × packet length) or
//   a timestamp jump (relative to the playout point) beyond maxDelayMs in either direction (a
//   reordered straggler, whose sequence number and timestamp are both behind the newest packet's,
//   is never a jump); a DTX talk-spurt start (see below); the third consecutive late packet; a
//   restart after idle.
//   A resync maps the new packet `delay` samples after the playout point and keeps the audio
//   already buffered ahead of that point, so the audible gap is at most delayMs. Stragglers from
//   the previous SSRC that arrive within 200 ms of an SSRC change are dropped (counted late).
// - DTX: the caller does not pass the marker bit. A talk spurt after silence suppression is
//   recognised by the timestamp having advanced by more than the sequence gap explains (the
//   sequence continues +1, or +n when comfort-noise packets were not put); if the buffer has
//   drained by then, the spurt is re-anchored `delay` after the playout point (clean start, full
//   jitter protection). A stream silent for maxDelayMs + 100 ms is idle: get() returns false
//   and the next packet restarts the buffer.
// - Comfort noise (RFC 3389, PT 13) is the caller's business: either it put()s nothing for CN
//   packets (the gap fades out to silence and the next spurt resyncs as DTX), or it synthesizes
//   a low-level noise frame and put()s it with the CN packet's sequence number and timestamp
//   (and may keep doing so each ptime until speech resumes); the buffer treats that like speech.
// - Clock drift / delay drift: over every 1 s window the largest packet lead (how far ahead of
//   the playout point a packet's end was when it arrived) is compared with the lead of the
//   anchoring packet. More than 20 ms above it: 10 ms are skipped; more than 20 ms below: 10 ms
//   are repeated — both with a 5 ms cross-fade, only while audio is present. This keeps the
//   latency at delayMs across sender clock drift (±100 ppm ≈ 1 sample per 1.25 s) and absorbs
//   network delay steps smaller than a resync.
//
// Hot path: put(), putG711() (decodes a G.711 payload straight into the ring) and get() are
// indexed loops over preallocated typed arrays; no allocation.

import { seqDelta, tsDelta } from './rtp.js';

export interface JitterStats {
  /** Packets accepted into the buffer (not late, not duplicate). */
  received: number;
  /** Packets never received, from sequence gaps (a reordered or late arrival takes one back). */
  lost: number;
  /** Packets dropped because their playout time had passed. */
  late: number;
  /** Packets dropped as duplicates. */
  duplicate: number;
  /** Resyncs (SSRC change, sequence/timestamp jump, DTX spurt, late run, restart after idle). */
  resyncs: number;
  /** 20 ms frames in which missing samples were filled by repeating earlier audio. */
  concealed: number;
}

const FRAME = 160;
const TICK_MS = 20;
const SAMPLES_PER_MS = 8;
/** Longest packet accepted (120 ms); longer ones are truncated. */
const MAX_PACKET = 960;
const CONCEAL_FRAMES = 3;
const LATE_RUN_RESYNC = 3;
const SEEN_WINDOW = 256;
/** Sequence distance behind the newest packet within which a packet counts as reordered. */
const MAX_MISORDER = 1000;
const DRIFT_WINDOW_TICKS = 50;
const DRIFT_THRESHOLD = 160;
const DRIFT_STEP = 80;
const XFADE = 40;
const OLD_SSRC_GRACE_TICKS = 10;
const REBASE_AT = 0x40000000;

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p <<= 1;
  return p;
}

export class JitterBuffer {
  readonly stats: JitterStats = { received: 0, lost: 0, late: 0, duplicate: 0, resyncs: 0, concealed: 0 };

  private readonly delay: number;
  private readonly maxDelay: number;
  private readonly idleTicks: number;
  private readonly ring: Int16Array;
  private readonly present: Uint8Array;
  /** The same flags four at a time (a frame at a position divisible by 4 is checked in 40 reads). */
  private readonly present32: Uint32Array;
  private readonly mask: number;
  private readonly size: number;
  private readonly lastGood = new Int16Array(FRAME);
  private readonly seen = new Float64Array(SEEN_WINDOW).fill(NaN);

  private active = false;
  private everStarted = false;
  private ssrc = 0;
  private prevSsrc = -1;
  private ticksSinceSwitch = 0;
  /** Next sample position get() reads. */
  private playPos = 0;
  /** Frames wholly before this position are pre-roll (silence, not concealment). */
  private startPos = 0;
  /** One past the highest position written. */
  private writeHigh = 0;
  private anchorTs = 0;
  private anchorPos = 0;
  private highSeq = 0;
  private highExt = 0;
  private lastTs = 0;
  private lastLen = FRAME;
  private ticksSincePut = 0;
  private concealRun = 0;
  private haveGood = false;
  /** The previous output frame was fully received. */
  private lastWasGood = false;
  /** The last good frame is still in the ring at goodAt (not yet copied to lastGood). */
  private goodInRing = false;
  private goodAt = 0;
  private lateRun = 0;
  private refLead = 0;
  private maxLead = -1;
  private windowTicks = 0;
  private pendingAdjust = 0;

  constructor(opts?: { delayMs?: number; maxDelayMs?: number }) {
    const delayMs = Math.max(0, Math.round(opts?.delayMs ?? 40));
    const maxDelayMs = Math.max(delayMs + TICK_MS, Math.round(opts?.maxDelayMs ?? 200));
    this.delay = delayMs * SAMPLES_PER_MS;
    this.maxDelay = maxDelayMs * SAMPLES_PER_MS;
    this.idleTicks = Math.ceil((maxDelayMs + 100) / TICK_MS);
    this.size = nextPow2(this.maxDelay + MAX_PACKET + 2 * FRAME);
    this.mask = this.size - 1;
    this.ring = new Int16Array(this.size);
    this.present = new Uint8Array(this.size);
    this.present32 = new Uint32Array(this.present.buffer);
  }

  /** Playout delay in samples (for tests and diagnostics). */
  get delaySamples(): number {
    return this.delay;
  }

  /** True while a stream is being played out (started and not idle). */
  get isActive(): boolean {
    return this.active;
  }

  /**
   * Decoded samples of one packet at its RTP timestamp (any packet size: 10/20/30 ms,
   * 80/160/240 samples; up to 120 ms). `samples[0, length)` is copied; the array may be reused.
   */
  put(ssrc: number, sequence: number, timestamp: number, samples: Int16Array, length: number): void {
    if (length > samples.length) length = samples.length;
    if (length > MAX_PACKET) length = MAX_PACKET;
    if (!(length > 0)) return;
    const pos = this.admit(ssrc >>> 0, sequence & 0xffff, timestamp >>> 0, length);
    if (pos >= 0) this.write(pos, samples, length);
  }

  /**
   * put() for a G.711 payload: `payload[offset, offset + length)` is decoded through `table`
   * (ULAW_DECODE or ALAW_DECODE, one code per sample) straight into the buffer, with no
   * intermediate copy. Same rules as put().
   */
  putG711(ssrc: number, sequence: number, timestamp: number, payload: Uint8Array, offset: number, length: number, table: Int16Array): void {
    if (length > payload.length - offset) length = payload.length - offset;
    if (length > MAX_PACKET) length = MAX_PACKET;
    if (!(length > 0)) return;
    const pos = this.admit(ssrc >>> 0, sequence & 0xffff, timestamp >>> 0, length);
    if (pos >= 0) this.writeG711(pos, payload, offset, length, table);
  }

  /**
   * The bookkeeping of one packet of `length` samples (1..MAX_PACKET): duplicate, late, jump,
   * resync, sequence accounting, drift measurement. Returns the position its samples go to, or
   * −1 when it is dropped.
   */
  private admit(ssrc: number, sequence: number, timestamp: number, length: number): number {
    this.ticksSincePut = 0;

    if (!this.active) {
      if (this.everStarted) this.stats.resyncs++;
      this.start(ssrc, sequence, timestamp, length, true);
      return this.anchorPos;
    }
    if (ssrc !== this.ssrc) {
      if (ssrc === this.prevSsrc && this.ticksSinceSwitch < OLD_SSRC_GRACE_TICKS) {
        this.stats.late++;
        return -1;
      }
      this.prevSsrc = this.ssrc;
      this.ticksSinceSwitch = 0;
      return this.resync(ssrc, sequence, timestamp, length);
    }

    const sd = seqDelta(this.highSeq, sequence);
    const ext = this.highExt + sd;
    const inWindow = sd > -SEEN_WINDOW;
    if (sd <= 0 && inWindow && this.seen[ext & (SEEN_WINDOW - 1)] === ext) {
      this.stats.duplicate++;
      return -1;
    }
    const pos = this.anchorPos + tsDelta(this.anchorTs, timestamp);
    const d = pos - this.playPos;
    // An older packet (sequence and timestamp both behind the newest) is a straggler, never a jump.
    const old = sd < 0 && sd > -MAX_MISORDER && tsDelta(this.lastTs, timestamp) < 0;
    if (!old) {
      const seqJump = (sd < 0 ? -sd : sd) * this.lastLen;
      if (seqJump > this.maxDelay || d > this.maxDelay || d < -this.maxDelay) {
        return this.resync(ssrc, sequence, timestamp, length);
      }
      if (sd > 0 && this.writeHigh <= this.playPos && tsDelta(this.lastTs, timestamp) > sd * this.lastLen) {
        // DTX: a talk spurt after silence suppression while the buffer has drained
        return this.resync(ssrc, sequence, timestamp, length);
      }
    }

    // sequence accounting
    if (sd > 0) {
      if (sd > 1) this.stats.lost += sd - 1;
      this.highSeq = sequence;
      this.highExt = ext;
      this.lastTs = timestamp;
      this.lastLen = length;
    } else if (ext > 0 && this.stats.lost > 0) {
      this.stats.lost--; // a reordered packet fills a gap counted as lost
    }
    if (inWindow) this.seen[ext & (SEEN_WINDOW - 1)] = ext;

    if (d < 0) {
      this.stats.late++;
      // Newer packets arriving late, repeatedly: the sender's timing moved; follow it.
      if (sd > 0 && ++this.lateRun >= LATE_RUN_RESYNC) return this.resync(ssrc, sequence, timestamp, length);
      return -1;
    }
    if (sd > 0) {
      this.lateRun = 0;
      this.anchorTs = timestamp;
      this.anchorPos = pos;
      const lead = d + length;
      if (lead > this.maxLead) this.maxLead = lead;
    }
    return pos;
  }

  /**
   * Called once per 20 ms tick: fills `out` (160 samples) and returns true, or returns false
   * when the stream is idle (never started, or no packet for maxDelayMs + 100 ms); then `out`
   * is not touched and the mixer treats the input as silent.
   */
  get(out: Int16Array): boolean {
    if (!this.active) return false;
    if (this.ticksSincePut >= this.idleTicks) {
      this.active = false;
      return false;
    }
    this.ticksSincePut++;
    this.ticksSinceSwitch++;
    if (++this.windowTicks >= DRIFT_WINDOW_TICKS) this.endDriftWindow();

    const p = this.playPos;
    const ring = this.ring;
    const present = this.present;
    const mask = this.mask;

    if (p + FRAME <= this.startPos) {
      out.fill(0, 0, FRAME);
      this.lastWasGood = false;
      this.advance(p, FRAME);
      return true;
    }

    const a = p & mask;
    const contiguous = a + FRAME <= this.size;
    let full = true;
    if (contiguous && (a & 3) === 0) {
      // The playout point moves in steps of 80 samples or more: the usual case.
      const w = this.present32;
      const end = (a + FRAME) >> 2;
      for (let i = a >> 2; i < end; i++) {
        if (w[i] !== 0x01010101) {
          full = false;
          break;
        }
      }
    } else if (contiguous) {
      for (let i = a; i < a + FRAME; i++) {
        if (present[i] !== 1) {
          full = false;
          break;
        }
      }
    } else {
      for (let i = 0; i < FRAME; i++) {
        if (present[(p + i) & mask] !== 1) {
          full = false;
          break;
        }
      }
    }

    if (full) {
      let consumed = FRAME;
      if (this.pendingAdjust !== 0) {
        consumed = this.readAdjusted(p, out);
      } else if (contiguous) {
        for (let i = 0; i < FRAME; i++) out[i] = ring[a + i]!;
      } else {
        for (let i = 0; i < FRAME; i++) out[i] = ring[(p + i) & mask]!;
      }
      if (consumed === FRAME) {
        // The frame stays intact in the ring until well after the next get(); copied only if needed.
        this.goodAt = p;
        this.goodInRing = true;
      } else {
        this.saveGood(out);
      }
      this.haveGood = true;
      this.lastWasGood = true;
      this.concealRun = 0;
      this.advance(p, consumed);
      return true;
    }
    if (this.goodInRing) {
      // the frame just before this one (always still intact in the ring)
      const lastGood = this.lastGood;
      const g = this.goodAt;
      for (let i = 0; i < FRAME; i++) lastGood[i] = ring[(g + i) & mask]!;
      this.goodInRing = false;
    }

    // Some or all samples missing: conceal.
    const canRepeat = this.haveGood && this.concealRun < CONCEAL_FRAMES;
    const g0 = canRepeat ? 1 / (1 << this.concealRun) : 0;
    const step = g0 / (2 * FRAME);
    const lastGood = this.lastGood;
    const startPos = this.startPos;
    let repeated = false;
    for (let i = 0; i < FRAME; i++) {
      const idx = (p + i) & mask;
      if (present[idx] === 1) out[i] = ring[idx]!;
      else if (canRepeat && p + i >= startPos) {
        out[i] = Math.round(lastGood[i]! * (g0 - step * i));
        repeated = true;
      } else out[i] = 0;
    }
    if (repeated) this.stats.concealed++;
    this.lastWasGood = false;
    this.concealRun = present[(p + FRAME - 1) & mask] === 1 ? 0 : this.concealRun + 1;
    this.advance(p, FRAME);
    return true;
  }

  // ---- internals ---------------------------------------------------------------------------

  private saveGood(frame: Int16Array): void {
    const lastGood = this.lastGood;
    for (let i = 0; i < FRAME; i++) lastGood[i] = frame[i]!;
    this.goodInRing = false;
  }

  /** Clears the flags of [p, p + n) and moves the playout point past them. */
  private advance(p: number, n: number): void {
    this.clearFrom(p, n);
    let np = p + n;
    if (np >= REBASE_AT) {
      // keep positions small integers; a multiple of the ring size keeps ring indices unchanged
      np -= REBASE_AT;
      this.startPos -= REBASE_AT;
      this.writeHigh -= REBASE_AT;
      this.anchorPos -= REBASE_AT;
    }
    this.playPos = np;
  }

  private write(pos: number, samples: Int16Array, length: number): void {
    const ring = this.ring;
    const present = this.present;
    const mask = this.mask;
    const a = pos & mask;
    if (a + length <= this.size) {
      for (let i = 0; i < length; i++) ring[a + i] = samples[i]!;
      present.fill(1, a, a + length);
    } else {
      for (let i = 0; i < length; i++) {
        const idx = (pos + i) & mask;
        ring[idx] = samples[i]!;
        present[idx] = 1;
      }
    }
    if (pos + length > this.writeHigh) this.writeHigh = pos + length;
    this.stats.received++;
  }

  private writeG711(pos: number, payload: Uint8Array, offset: number, length: number, table: Int16Array): void {
    const ring = this.ring;
    const present = this.present;
    const mask = this.mask;
    const a = pos & mask;
    if (a + length <= this.size) {
      for (let i = 0; i < length; i++) ring[a + i] = table[payload[offset + i]!]!;
      present.fill(1, a, a + length);
    } else {
      for (let i = 0; i < length; i++) {
        const idx = (pos + i) & mask;
        ring[idx] = table[payload[offset + i]!]!;
        present[idx] = 1;
      }
    }
    if (pos + length > this.writeHigh) this.writeHigh = pos + length;
    this.stats.received++;
  }

  /** Clears presence flags of [from, from + n), n ≤ ring size. */
  private clearFrom(from: number, n: number): void {
    const a = from & this.mask;
    const end = a + n;
    if (end <= this.size) this.present.fill(0, a, end);
    else {
      this.present.fill(0, a, this.size);
      this.present.fill(0, 0, end - this.size);
    }
  }

  /** (Re)anchors the stream so that `timestamp` plays `delay` samples after the playout point. */
  private start(ssrc: number, sequence: number, timestamp: number, length: number, fresh: boolean): void {
    const at = this.playPos + this.delay;
    if (fresh) {
      this.present.fill(0);
      this.startPos = at;
      this.haveGood = false;
      this.lastWasGood = false;
      this.goodInRing = false;
      this.concealRun = 0;
      this.prevSsrc = -1;
      this.writeHigh = at;
    } else {
      // keep the audio already buffered before `at`; drop anything from `at` on
      this.clearFrom(at, this.size - this.delay);
      if (this.writeHigh > at) this.writeHigh = at;
    }
    this.active = true;
    this.everStarted = true;
    this.ssrc = ssrc;
    this.anchorTs = timestamp;
    this.anchorPos = at;
    this.highSeq = sequence;
    this.highExt = 0;
    this.seen.fill(NaN);
    this.seen[0] = 0;
    this.lastTs = timestamp;
    this.lastLen = length;
    this.lateRun = 0;
    this.refLead = this.delay + length;
    this.maxLead = -1;
    this.windowTicks = 0;
    this.pendingAdjust = 0;
  }

  /** A resync: the packet is re-anchored `delay` after the playout point; returns where it goes. */
  private resync(ssrc: number, sequence: number, timestamp: number, length: number): number {
    this.stats.resyncs++;
    this.start(ssrc, sequence, timestamp, length, false);
    return this.anchorPos;
  }

  private endDriftWindow(): void {
    this.windowTicks = 0;
    if (this.maxLead >= 0) {
      const diff = this.maxLead - this.refLead;
      this.pendingAdjust = diff > DRIFT_THRESHOLD ? DRIFT_STEP : diff < -DRIFT_THRESHOLD ? -DRIFT_STEP : 0;
    } else {
      this.pendingAdjust = 0;
    }
    this.maxLead = -1;
  }

  /**
   * Reads one frame at `p` while skipping (pendingAdjust > 0) or repeating (< 0) a few samples
   * with a cross-fade, when the audio needed is present. Returns the samples consumed.
   */
  private readAdjusted(p: number, out: Int16Array): number {
    const ring = this.ring;
    const present = this.present;
    const mask = this.mask;
    const k = this.pendingAdjust;
    if (k > 0) {
      for (let i = FRAME; i < FRAME + k; i++) {
        if (present[(p + i) & mask] !== 1) return this.plainRead(p, out);
      }
      for (let i = 0; i < XFADE; i++) {
        const w = (i + 0.5) / XFADE;
        out[i] = Math.round(ring[(p + i) & mask]! * (1 - w) + ring[(p + k + i) & mask]! * w);
      }
      for (let i = XFADE; i < FRAME; i++) out[i] = ring[(p + k + i) & mask]!;
      this.pendingAdjust = 0;
      return FRAME + k;
    }
    // repeat: continue from k samples back (the tail of the previous, fully received frame)
    const back = -k;
    if (!this.lastWasGood) return this.plainRead(p, out);
    for (let i = 0; i < FRAME; i++) {
      // source: `back` samples earlier (the tail of the previous frame is still in the ring)
      const src = ring[(p + i - back) & mask]!;
      if (i < XFADE) {
        const w = (i + 0.5) / XFADE;
        out[i] = Math.round(ring[(p + i) & mask]! * (1 - w) + src * w);
      } else out[i] = src;
    }
    this.pendingAdjust = 0;
    return FRAME - back;
  }

  private plainRead(p: number, out: Int16Array): number {
    const ring = this.ring;
    const mask = this.mask;
    for (let i = 0; i < FRAME; i++) out[i] = ring[(p + i) & mask]!;
    return FRAME;
  }
}
