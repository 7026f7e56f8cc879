// Audio for the end-to-end media tests: make test signals with sox, read the WAV files baresip
// records (libsndfile), and analyse them (Goertzel tone detection, cadences, DTMF).
//
//   await makeTone(join(dir, 'a.wav'), { freqHz: 1000, seconds: 4 });
//   ...
//   const { samples, sampleRate } = readWav(peer.recordings()[0]!);
//   t.ok(hasTone(samples, sampleRate, 1000));
//   t.notOk(dtmfPresent(samples, sampleRate), 'no feature-code digit leaks to the citizen');
//
// Levels and powers are in full-scale units: samples are −1..1, a full-scale sine has RMS
// 1/√2 ≈ 0.707 and mean power 0.5; sox `vol 0.5` makes a sine of amplitude 0.5 (RMS 0.354).
//
// Frame-based analyses (toneLevel/toneShare/hasTone/dominantFrequency/segmentsWithTone/
// dtmfPresent) cut the signal into frames (50 ms unless said otherwise), apply a Hann window
// and run Goertzel per frame. Measured selectivity (share of a pure tone's power counted at a
// frequency that far off): 0 Hz 100 %, 5 Hz 92 %, 10 Hz 72 %, 15 Hz 47 %, 20 Hz 25 %, 25 Hz 10 %,
// 30 Hz 3 %, 40 Hz and more 0 %. So hasTone(…, 1000) accepts 975–1025 Hz with the default
// minShare 0.1, and tones 40 Hz or more apart do not mix up. DTMF uses 40 ms frames.
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

export const SOX_BIN = process.env['SOX_BIN'] ?? '/usr/bin/sox';

function sox(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(SOX_BIN, args, { timeout: 30_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`sox ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve();
    });
  });
}

// -D: no dither (sox dithers by default when writing 16-bit, so 'silence' would not be 0).
const FORMAT_8K = ['-r', '8000', '-c', '1', '-b', '16', '-e', 'signed-integer'];

/** An 8 kHz mono 16-bit WAV holding a sine (sox `synth S sine F vol V`); volume 0..1 is its
 *  amplitude (default 0.5). `freqHz` may list several frequencies: their sines are mixed with
 *  equal amplitude (together peaking at `volume`), e.g. [697, 1209] for DTMF '1'. */
export async function makeTone(file: string, opts: { freqHz: number | number[]; seconds: number; volume?: number }): Promise<void> {
  const freqs = Array.isArray(opts.freqHz) ? opts.freqHz : [opts.freqHz];
  const volume = opts.volume ?? 0.5;
  if (freqs.length === 0) throw new Error('makeTone: no frequency');
  if (!(opts.seconds > 0)) throw new Error(`makeTone: bad duration ${opts.seconds}`);
  if (!(volume >= 0 && volume <= 1)) throw new Error(`makeTone: volume ${volume} is not in 0..1`);
  // Several `sine F` give one channel each; sox mixes them down to the one output channel
  // (averaging, so each sine has amplitude volume/n).
  const synth = freqs.flatMap((f) => ['sine', String(f)]);
  await sox(['-D', '-n', ...FORMAT_8K, file, 'synth', String(opts.seconds), ...synth, 'vol', String(volume)]);
}

/** An 8 kHz mono 16-bit WAV of digital silence. */
export async function makeSilence(file: string, seconds: number): Promise<void> {
  if (!(seconds > 0)) throw new Error(`makeSilence: bad duration ${seconds}`);
  await sox(['-D', '-n', ...FORMAT_8K, file, 'trim', '0', String(seconds)]);
}

/** Concatenate audio files (same format, e.g. made by makeTone/makeSilence) into `file`. */
export async function concatAudio(file: string, inputs: string[]): Promise<void> {
  if (inputs.length === 0) throw new Error('concatAudio: no input');
  await sox([...inputs, file]);
}

/** Write mono samples (−1..1, clipped) as a 16-bit PCM WAV; no sox needed. */
export function writeWav(file: string, samples: ArrayLike<number>, sampleRate = 8000): void {
  const n = samples.length;
  const buf = Buffer.alloc(44 + n * 2);
  buf.write('RIFF', 0, 'ascii');
  buf.writeUInt32LE(36 + n * 2, 4);
  buf.write('WAVE', 8, 'ascii');
  buf.write('fmt ', 12, 'ascii');
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20); // PCM
  buf.writeUInt16LE(1, 22); // mono
  buf.writeUInt32LE(sampleRate, 24);
  buf.writeUInt32LE(sampleRate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36, 'ascii');
  buf.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) {
    const v = Math.max(-1, Math.min(1, samples[i] ?? 0));
    buf.writeInt16LE(Math.round(v < 0 ? v * 32768 : v * 32767), 44 + i * 2);
  }
  writeFileSync(file, buf);
}

export interface Wav {
  sampleRate: number;
  /** Channels in the file; `samples` is always mono (channels averaged). */
  channels: number;
  /** Mono samples, −1..1. */
  samples: Float32Array;
}

const WAVE_FORMAT_PCM = 1;
const WAVE_FORMAT_IEEE_FLOAT = 3;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

/**
 * Read a RIFF/WAVE file: integer PCM (8/16/24/32-bit) or IEEE float (32/64-bit), plain or
 * WAVE_FORMAT_EXTENSIBLE, chunks in any order (LIST/fact/PEAK/… skipped, odd sizes padded).
 * A `data` chunk whose size is 0, 0xFFFFFFFF or past the end of the file (a writer that was
 * killed before it fixed up its header) is taken to run to the end of the file.
 */
export function readWav(file: string): Wav {
  const buf = readFileSync(file);
  const bad = (why: string): Error => new Error(`readWav ${file}: ${why}`);
  if (buf.length < 12 || buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') {
    throw bad('not a RIFF/WAVE file');
  }
  let fmt: { tag: number; channels: number; sampleRate: number; blockAlign: number; bits: number } | undefined;
  let data: Buffer | undefined;
  let off = 12;
  while (off + 8 <= buf.length) {
    const id = buf.toString('ascii', off, off + 4);
    let size = buf.readUInt32LE(off + 4);
    const body = off + 8;
    if (id === 'data') {
      if (size === 0 || size === 0xffffffff || body + size > buf.length) size = buf.length - body;
      data = buf.subarray(body, body + size);
    } else if (id === 'fmt ') {
      if (size < 16 || body + 16 > buf.length) throw bad('short fmt chunk');
      let tag = buf.readUInt16LE(body);
      const bits = buf.readUInt16LE(body + 14);
      if (tag === WAVE_FORMAT_EXTENSIBLE) {
        // cbSize(2) validBits(2) channelMask(4) subFormat GUID(16): its first 2 bytes are the tag.
        if (size < 40 || body + 40 > buf.length) throw bad('short WAVE_FORMAT_EXTENSIBLE fmt chunk');
        tag = buf.readUInt16LE(body + 24);
      }
      fmt = {
        tag,
        channels: buf.readUInt16LE(body + 2),
        sampleRate: buf.readUInt32LE(body + 4),
        blockAlign: buf.readUInt16LE(body + 12),
        bits,
      };
    }
    off = body + size + (size & 1);
  }
  if (!fmt) throw bad('no fmt chunk');
  if (!data) throw bad('no data chunk');
  const { tag, channels, bits } = fmt;
  if (channels < 1) throw bad('no channels');
  const bytes = bits / 8;
  const blockAlign = fmt.blockAlign || channels * bytes;
  let read: (at: number) => number;
  if (tag === WAVE_FORMAT_PCM && bits === 16) read = (at) => data!.readInt16LE(at) / 32768;
  else if (tag === WAVE_FORMAT_PCM && bits === 8) read = (at) => (data![at]! - 128) / 128;
  else if (tag === WAVE_FORMAT_PCM && bits === 24) read = (at) => data!.readIntLE(at, 3) / 8388608;
  else if (tag === WAVE_FORMAT_PCM && bits === 32) read = (at) => data!.readInt32LE(at) / 2147483648;
  else if (tag === WAVE_FORMAT_IEEE_FLOAT && bits === 32) read = (at) => data!.readFloatLE(at);
  else if (tag === WAVE_FORMAT_IEEE_FLOAT && bits === 64) read = (at) => data!.readDoubleLE(at);
  else throw bad(`unsupported format tag ${tag} with ${bits} bits`);
  const frames = Math.floor(data.length / blockAlign);
  const samples = new Float32Array(frames);
  for (let i = 0; i < frames; i++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += read(i * blockAlign + c * bytes);
    samples[i] = sum / channels;
  }
  return { sampleRate: fmt.sampleRate, channels, samples };
}

function clampRange(n: number, from?: number, to?: number): [number, number] {
  const a = Math.max(0, Math.min(n, Math.floor(from ?? 0)));
  const b = Math.max(a, Math.min(n, Math.floor(to ?? n)));
  return [a, b];
}

/**
 * Goertzel power of `freqHz` over samples[from, to) (sample indices; default all), rectangular
 * window, normalised by N²: a sine of amplitude A at that frequency gives A²/4 (0.25 at full
 * scale; 0.0625 for sox `vol 0.5`), i.e. a quarter of A², half the sine's mean power.
 * The frequency need not fall on a DFT bin. Resolution is about sampleRate/N.
 */
export function goertzel(samples: ArrayLike<number>, sampleRate: number, freqHz: number, from?: number, to?: number): number {
  const [a, b] = clampRange(samples.length, from, to);
  const n = b - a;
  if (n === 0) return 0;
  const w = (2 * Math.PI * freqHz) / sampleRate;
  const coeff = 2 * Math.cos(w);
  let s1 = 0;
  let s2 = 0;
  for (let i = a; i < b; i++) {
    const s0 = (samples[i] as number) + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
  return Math.max(0, power) / (n * n);
}

/** RMS of samples[from, to) (sample indices; default all). Full-scale sine: 0.707. */
export function rms(samples: ArrayLike<number>, from?: number, to?: number): number {
  const [a, b] = clampRange(samples.length, from, to);
  if (b === a) return 0;
  let sum = 0;
  for (let i = a; i < b; i++) {
    const v = samples[i] as number;
    sum += v * v;
  }
  return Math.sqrt(sum / (b - a));
}

// ---- Frame analysis ---------------------------------------------------------------------------

/** Hann-windowed frames of a signal, ready for per-frame Goertzel. */
interface Frames {
  sampleRate: number;
  n: number;
  /** Windowed frame samples, frame after frame (count × n). */
  data: Float64Array;
  count: number;
  /** Start sample of each frame. */
  starts: number[];
  /** Mean power of each frame (Hann-weighted, so comparable with toneFramePower). */
  power: Float64Array;
  /** Σw: the window's coherent gain × n. */
  sumW: number;
}

function makeFrames(samples: ArrayLike<number>, sampleRate: number, frameS: number, from: number, to: number, hopS = frameS): Frames {
  let n = Math.max(8, Math.round(sampleRate * frameS));
  const hop = Math.max(1, Math.round(sampleRate * hopS));
  if (to - from < n) n = Math.max(0, to - from); // a window shorter than a frame: one frame
  const starts: number[] = [];
  if (n > 0) for (let s = from; s + n <= to; s += hop) starts.push(s);
  const win = new Float64Array(n);
  let sumW = 0;
  let sumW2 = 0;
  for (let i = 0; i < n; i++) {
    win[i] = n > 1 ? 0.5 - 0.5 * Math.cos((2 * Math.PI * (i + 0.5)) / n) : 1;
    sumW += win[i]!;
    sumW2 += win[i]! * win[i]!;
  }
  const data = new Float64Array(starts.length * n);
  const power = new Float64Array(starts.length);
  starts.forEach((s, f) => {
    let e = 0;
    for (let i = 0; i < n; i++) {
      const v = (samples[s + i] as number) * win[i]!;
      data[f * n + i] = v;
      e += v * v;
    }
    power[f] = sumW2 > 0 ? e / sumW2 : 0;
  });
  return { sampleRate, n, data, count: starts.length, starts, power, sumW };
}

/** Per-frame power of the sine component at freqHz: A²/2 for a sine of amplitude A. */
function toneFramePower(fr: Frames, freqHz: number, out = new Float64Array(fr.count)): Float64Array {
  const coeff = 2 * Math.cos((2 * Math.PI * freqHz) / fr.sampleRate);
  const { n, data } = fr;
  const scale = fr.sumW > 0 ? 2 / (fr.sumW * fr.sumW) : 0; // |X|² = (A·Σw/2)² → A²/2
  for (let f = 0; f < fr.count; f++) {
    let s1 = 0;
    let s2 = 0;
    const base = f * n;
    for (let i = 0; i < n; i++) {
      const s0 = data[base + i]! + coeff * s1 - s2;
      s2 = s1;
      s1 = s0;
    }
    out[f] = Math.max(0, s1 * s1 + s2 * s2 - coeff * s1 * s2) * scale;
  }
  return out;
}

function sum(a: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s;
}

/** [from, to) in samples for a window in seconds. */
function windowSamples(n: number, sampleRate: number, window?: readonly [number, number]): [number, number] {
  if (!window) return [0, n];
  return clampRange(n, window[0] * sampleRate, window[1] * sampleRate);
}

const FRAME_S = 0.05;

/** RMS amplitude of the sine component at freqHz in the window (seconds; default all): about
 *  A/√2 for a sine of amplitude A, comparable with rms(). Averaged over 50 ms frames. */
export function toneLevel(samples: ArrayLike<number>, sampleRate: number, freqHz: number, window?: readonly [number, number]): number {
  const [a, b] = windowSamples(samples.length, sampleRate, window);
  const fr = makeFrames(samples, sampleRate, FRAME_S, a, b);
  if (fr.count === 0) return 0;
  return Math.sqrt(sum(toneFramePower(fr, freqHz)) / fr.count);
}

/** toneLevel() for several frequencies: frequency → RMS amplitude of that component. */
export function toneLevels(samples: ArrayLike<number>, sampleRate: number, freqs: number[], window?: readonly [number, number]): Record<number, number> {
  const [a, b] = windowSamples(samples.length, sampleRate, window);
  const fr = makeFrames(samples, sampleRate, FRAME_S, a, b);
  const out: Record<number, number> = {};
  for (const f of freqs) out[f] = fr.count === 0 ? 0 : Math.sqrt(sum(toneFramePower(fr, f)) / fr.count);
  return out;
}

/** Share (0..1) of the window's power that lies near freqHz: ~1 for a pure tone, ~0.5 for each
 *  of two equal tones, 0 for silence. */
export function toneShare(samples: ArrayLike<number>, sampleRate: number, freqHz: number, window?: readonly [number, number]): number {
  const [a, b] = windowSamples(samples.length, sampleRate, window);
  const fr = makeFrames(samples, sampleRate, FRAME_S, a, b);
  const total = sum(fr.power);
  if (total <= 0) return 0;
  return Math.min(1, sum(toneFramePower(fr, freqHz)) / total);
}

export interface HasToneOptions {
  /** Share of the window's total power that must lie near the frequency (default 0.1). */
  minShare?: number;
  /** Minimum RMS level of the tone component (default 0.003 ≈ −50 dBFS): silence with a trace
   *  of the tone is not "having" it. */
  minLevel?: number;
  /** [startS, endS] in seconds; default the whole signal. */
  window?: readonly [number, number];
}

/** Is a tone near freqHz present in the window with at least `minShare` of the power? */
export function hasTone(samples: ArrayLike<number>, sampleRate: number, freqHz: number, opts: HasToneOptions = {}): boolean {
  const [a, b] = windowSamples(samples.length, sampleRate, opts.window);
  const fr = makeFrames(samples, sampleRate, FRAME_S, a, b);
  if (fr.count === 0) return false;
  const tone = sum(toneFramePower(fr, freqHz));
  const total = sum(fr.power);
  if (total <= 0) return false;
  return tone / total >= (opts.minShare ?? 0.1) && Math.sqrt(tone / fr.count) >= (opts.minLevel ?? 0.003);
}

/**
 * The frequency (Hz) with the most power between 100 and 3800 Hz in the window (seconds;
 * default all): a 5 Hz Goertzel scan over 50 ms Hann frames, refined by parabolic
 * interpolation (accurate to ~1 Hz for a clean tone). NaN for silence or an empty window.
 * About 0.2 s for 10 s of 8 kHz audio.
 */
export function dominantFrequency(samples: ArrayLike<number>, sampleRate: number, window?: readonly [number, number]): number {
  const [a, b] = windowSamples(samples.length, sampleRate, window);
  const fr = makeFrames(samples, sampleRate, FRAME_S, a, b);
  if (fr.count === 0 || sum(fr.power) <= 0) return NaN;
  const lo = 100;
  const hi = Math.min(3800, sampleRate / 2 - 50);
  const step = 5;
  const scan: number[] = [];
  const buf = new Float64Array(fr.count);
  for (let f = lo; f <= hi; f += step) scan.push(sum(toneFramePower(fr, f, buf)));
  let best = 0;
  for (let i = 1; i < scan.length; i++) if (scan[i]! > scan[best]!) best = i;
  if (!(scan[best]! > 0)) return NaN;
  let delta = 0;
  if (best > 0 && best < scan.length - 1) {
    const y0 = scan[best - 1]!;
    const y1 = scan[best]!;
    const y2 = scan[best + 1]!;
    const den = y0 - 2 * y1 + y2;
    if (den < 0) delta = Math.max(-0.5, Math.min(0.5, (0.5 * (y0 - y2)) / den));
  }
  return lo + (best + delta) * step;
}

export interface Segment { startS: number; endS: number }

export interface SegmentOptions {
  /** Share of a frame's power that must lie near the frequency (default 0.3). */
  minShare?: number;
  /** Minimum RMS level of the tone in a frame (default 0.005 ≈ −46 dBFS). */
  minLevel?: number;
}

/**
 * Where a tone near freqHz sounds: consecutive frames of `frameMs` (default 50) in which it
 * holds at least `minShare` of the power, merged into segments. Boundaries are accurate to
 * about half a frame. For cadences: a 1 s on / 4 s off 425 Hz ring tone gives segments of
 * ~1 s every 5 s.
 */
export function segmentsWithTone(samples: ArrayLike<number>, sampleRate: number, freqHz: number, frameMs = 50, opts: SegmentOptions = {}): Segment[] {
  const frameS = frameMs / 1000;
  const fr = makeFrames(samples, sampleRate, frameS, 0, samples.length);
  const tone = toneFramePower(fr, freqHz);
  const minShare = opts.minShare ?? 0.3;
  const minPower = (opts.minLevel ?? 0.005) ** 2;
  const out: Segment[] = [];
  let open: Segment | undefined;
  for (let f = 0; f < fr.count; f++) {
    const on = fr.power[f]! > 0 && tone[f]! >= minPower && tone[f]! / fr.power[f]! >= minShare;
    const startS = fr.starts[f]! / sampleRate;
    const endS = (fr.starts[f]! + fr.n) / sampleRate;
    if (on) {
      if (open) open.endS = endS;
      else { open = { startS, endS }; out.push(open); }
    } else {
      open = undefined;
    }
  }
  return out;
}

export const DTMF_LOW = [697, 770, 852, 941] as const;
export const DTMF_HIGH = [1209, 1336, 1477, 1633] as const;
const DTMF_KEYS = ['123A', '456B', '789C', '*0#D'];

export interface DtmfOptions {
  /** Share of a 40 ms window's power each of the two tones must hold (default 0.03, i.e. each
   *  at most 15 dB below the whole: a pair at −12 dB per tone under a louder tone is found). */
  minShare?: number;
  /** Minimum RMS level of each of the two tones (default 0.005 ≈ −46 dBFS). */
  minLevel?: number;
  /** Maximum level difference between the two tones, dB (default 10). */
  maxTwistDb?: number;
}

/**
 * The DTMF keys heard: for every 40 ms window (hop 10 ms) where one low-group and one
 * high-group tone are both strong (each ≥ minShare of the power and ≥ minLevel) and within
 * maxTwistDb of each other, the key; consecutive windows with the same key are one press.
 */
export function dtmfDigits(samples: ArrayLike<number>, sampleRate: number, opts: DtmfOptions = {}): { key: string; atS: number }[] {
  const fr = makeFrames(samples, sampleRate, 0.04, 0, samples.length, 0.01);
  const low = DTMF_LOW.map((f) => toneFramePower(fr, f));
  const high = DTMF_HIGH.map((f) => toneFramePower(fr, f));
  const minShare = opts.minShare ?? 0.03;
  const minPower = (opts.minLevel ?? 0.005) ** 2;
  const maxTwist = 10 ** ((opts.maxTwistDb ?? 10) / 10);
  const out: { key: string; atS: number }[] = [];
  let last = '';
  for (let f = 0; f < fr.count; f++) {
    const total = fr.power[f]!;
    let key = '';
    if (total > 0) {
      const li = argmax(low.map((p) => p[f]!));
      const hi = argmax(high.map((p) => p[f]!));
      const pl = low[li]![f]!;
      const ph = high[hi]![f]!;
      if (pl >= minPower && ph >= minPower && pl / total >= minShare && ph / total >= minShare
        && Math.max(pl, ph) / Math.min(pl, ph) <= maxTwist) {
        key = DTMF_KEYS[li]![hi]!;
      }
    }
    if (key && key !== last) out.push({ key, atS: fr.starts[f]! / sampleRate });
    last = key;
  }
  return out;
}

function argmax(v: number[]): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

/** Is any DTMF key (a low+high pair, both strong) present in some 40 ms window? */
export function dtmfPresent(samples: ArrayLike<number>, sampleRate: number, opts: DtmfOptions = {}): boolean {
  return dtmfDigits(samples, sampleRate, opts).length > 0;
}
