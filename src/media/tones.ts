// Private tones for the call taker (8 kHz, 16-bit), mixed into that endpoint's output only.
//
// Every tone is generated from per-voice 32-bit phase accumulators over a 4096-entry sine table
// with linear interpolation. The phase runs continuously across frames and across segments (a
// change of frequency keeps the phase), so there is no discontinuity at frame or segment
// boundaries; each tone burst that starts or ends against silence gets a 4 ms linear ramp so
// cadence switching does not click either. Per frame: no allocation, no closures.

import type { ToneName } from './types.js';

export interface TonePlan {
  /** Consecutive segments; an empty `freqs` is silence. Several freqs in one segment sound together. */
  segments: { freqs: number[]; ms: number }[];
  /** Loop the segments forever (true) or play them once (false). */
  repeat: boolean;
}

export const TONE_PLANS: Record<ToneName, TonePlan> = {
  // Danish ring-back tone: 425 Hz, 1 s on / 4 s off (ETSI TR 101 041-2, Denmark; the ETSI ES 201
  // 970 / ITU-T E.180 Supplement 2 national tone tables agree).
  ringing: { segments: [{ freqs: [425], ms: 1000 }, { freqs: [], ms: 4000 }], repeat: true },
  // Danish busy tone: 425 Hz, 0.25 s on / 0.25 s off (ETSI TR 101 041-2, Denmark).
  busy: { segments: [{ freqs: [425], ms: 250 }, { freqs: [], ms: 250 }], repeat: true },
  // Product-defined (no standard tone exists for "region connected"): two short high beeps,
  // 1400 Hz 100 ms, 100 ms apart, once — clearly distinct from ring-back and busy.
  connected: {
    segments: [{ freqs: [1400], ms: 100 }, { freqs: [], ms: 100 }, { freqs: [1400], ms: 100 }],
    repeat: false,
  },
  // Product-defined "message sent": a rising three-note chime 600 / 900 / 1200 Hz, 150 ms each, once.
  'message-sent': {
    segments: [{ freqs: [600], ms: 150 }, { freqs: [900], ms: 150 }, { freqs: [1200], ms: 150 }],
    repeat: false,
  },
  // "Message failed — phone the region on the backup line": the special information tone of
  // ITU-T Rec. E.180 §2.3 (950 / 1400 / 1800 Hz, 330 ms each, then 1 s silence, repeating;
  // also ETSI TR 101 041 / EG 201 188 "special information tone"), used because call takers
  // already know it as "the call cannot be completed this way".
  'message-failed': {
    segments: [
      { freqs: [950], ms: 330 }, { freqs: [1400], ms: 330 }, { freqs: [1800], ms: 330 }, { freqs: [], ms: 1000 },
    ],
    repeat: true,
  },
  // Product-defined "refused" (a second trigger while one runs): two low beeps, 480 Hz 150 ms,
  // 100 ms apart, once — low pitch reads as "no".
  refused: {
    segments: [{ freqs: [480], ms: 150 }, { freqs: [], ms: 100 }, { freqs: [480], ms: 150 }],
    repeat: false,
  },
};

const RATE = 8000;
const FRAME = 160;
const TABLE_BITS = 12;
const TABLE_SIZE = 1 << TABLE_BITS;
const FRAC_BITS = 32 - TABLE_BITS;
const FRAC_SCALE = 1 / (1 << FRAC_BITS);
const MAX_VOICES = 4;
const RAMP = 32; // 4 ms

/** sin(2π i / TABLE_SIZE), one extra entry for interpolation. */
const SINE = new Float64Array(TABLE_SIZE + 1);
for (let i = 0; i <= TABLE_SIZE; i++) SINE[i] = Math.sin((2 * Math.PI * i) / TABLE_SIZE);

interface CompiledSegment {
  len: number;
  /** Phase increments per voice (uint32 of a turn per sample); 0 for unused voices. */
  inc: Uint32Array;
  voices: number;
  amp: number;
  rampIn: boolean;
  rampOut: boolean;
}

function compile(plan: TonePlan, level: number): CompiledSegment[] {
  const segs = plan.segments;
  const n = segs.length;
  const out: CompiledSegment[] = [];
  for (let s = 0; s < n; s++) {
    const seg = segs[s]!;
    const voices = Math.min(seg.freqs.length, MAX_VOICES);
    const inc = new Uint32Array(MAX_VOICES);
    for (let v = 0; v < voices; v++) inc[v] = Math.round((seg.freqs[v]! / RATE) * 4294967296) >>> 0;
    const prev = s > 0 ? segs[s - 1]! : plan.repeat ? segs[n - 1]! : null;
    const next = s < n - 1 ? segs[s + 1]! : plan.repeat ? segs[0]! : null;
    out.push({
      len: Math.max(0, Math.round((seg.ms * RATE) / 1000)),
      inc,
      voices,
      amp: voices > 0 ? level / voices : 0,
      rampIn: voices > 0 && (prev === null || prev.freqs.length === 0),
      rampOut: voices > 0 && (next === null || next.freqs.length === 0),
    });
  }
  return out;
}

export class ToneGenerator {
  readonly name: ToneName;
  private readonly segs: CompiledSegment[];
  private readonly repeat: boolean;
  private readonly phase = new Uint32Array(MAX_VOICES);
  private seg = 0;
  private pos = 0; // sample position within the segment
  private done = false;

  constructor(name: ToneName, level = 6000) {
    const plan = TONE_PLANS[name];
    if (!plan) throw new Error(`unknown tone ${String(name)}`);
    this.name = name;
    this.segs = compile(plan, level);
    this.repeat = plan.repeat;
    if (this.segs.every((s) => s.len === 0)) this.done = true;
  }

  /** True once a one-shot tone has played all of its samples. */
  get finished(): boolean {
    return this.done;
  }

  /**
   * Adds the next 160 samples of the tone into `acc` (Int32Array accumulator). Returns false
   * once a one-shot tone is finished (this call added its last samples, or it had ended
   * before): the caller may then drop the generator. Repeating tones always return true.
   */
  addTo(acc: Int32Array): boolean {
    if (this.done) return false;
    let i = 0;
    while (i < FRAME) {
      const seg = this.segs[this.seg]!;
      let n = seg.len - this.pos;
      if (n > FRAME - i) n = FRAME - i;
      if (n > 0) {
        if (seg.voices > 0) this.render(seg, acc, i, n);
        i += n;
        this.pos += n;
      }
      if (this.pos >= seg.len) {
        this.pos = 0;
        this.seg++;
        if (this.seg >= this.segs.length) {
          if (!this.repeat) {
            this.done = true;
            return false;
          }
          this.seg = 0;
        }
      }
    }
    return true;
  }

  private render(seg: CompiledSegment, acc: Int32Array, at: number, n: number): void {
    const phase = this.phase;
    const len = seg.len;
    const start = this.pos;
    for (let v = 0; v < seg.voices; v++) {
      const inc = seg.inc[v]!;
      let ph = phase[v]!;
      const amp = seg.amp;
      for (let k = 0; k < n; k++) {
        const idx = ph >>> FRAC_BITS;
        const frac = (ph & ((1 << FRAC_BITS) - 1)) * FRAC_SCALE;
        const s0 = SINE[idx]!;
        let y = (s0 + (SINE[idx + 1]! - s0) * frac) * amp;
        const p = start + k;
        if (seg.rampIn && p < RAMP) y *= (p + 1) / (RAMP + 1);
        if (seg.rampOut && len - p <= RAMP) y *= (len - p) / (RAMP + 1);
        const j = at + k;
        acc[j] = acc[j]! + Math.round(y);
        ph = (ph + inc) >>> 0;
      }
      phase[v] = ph;
    }
  }
}
