// ITU-T G.711 µ-law (PCMU) and A-law (PCMA) by lookup table.
//
// Decode: 256-entry Int16Array per law. Encode: 64 K-entry Uint8Array per law, indexed by the
// 16-bit two's-complement pattern of the sample (`sample & 0xffff`), so encoding is one load.
// The tables are built once at module load (~130 KB in total) with the classic bit-twiddling
// reference algorithms (the same ones `alawmulaw` uses: µ-law with bias 0x84 and clip 32635 on
// 16-bit input, A-law on the 13 most significant bits with the 0x55 even-bit inversion); the unit
// test checks all 256 codes and all 65 536 inputs against `alawmulaw`.
//
// Hot path: decodeInto/encodeInto are plain indexed loops over typed arrays, no allocation.

import type { Codec } from './types.js';

const ULAW_BIAS = 0x84;
const ULAW_CLIP = 32635;

function ulawDecodeRef(code: number): number {
  const u = ~code & 0xff;
  const sign = u & 0x80;
  const exponent = (u >> 4) & 0x07;
  const mantissa = u & 0x0f;
  const magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
  return sign !== 0 ? -magnitude : magnitude;
}

function ulawEncodeRef(sample: number): number {
  let s = sample;
  const sign = (s >> 8) & 0x80;
  if (sign !== 0) s = -s;
  s += ULAW_BIAS;
  if (s > ULAW_CLIP) s = ULAW_CLIP;
  // exponent = position of the highest set bit of (s >> 7), 0..7
  let exponent = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

function alawDecodeRef(code: number): number {
  const a = code ^ 0x55;
  const exponent = (a >> 4) & 0x07;
  const mantissa = a & 0x0f;
  let magnitude: number;
  if (exponent === 0) magnitude = (mantissa << 4) + 8;
  else magnitude = ((mantissa << 4) + 0x108) << (exponent - 1);
  // A-law: sign bit set (after the 0x55 inversion) means positive.
  return (a & 0x80) !== 0 ? magnitude : -magnitude;
}

function alawEncodeRef(sample: number): number {
  let s = sample === -32768 ? -32767 : sample;
  const sign = (~s >> 8) & 0x80; // 0x80 for s >= 0
  if (sign === 0) s = -s;
  if (s > ULAW_CLIP) s = ULAW_CLIP;
  let code: number;
  if (s >= 256) {
    let exponent = 7;
    for (let mask = 0x4000; (s & mask) === 0 && exponent > 1; mask >>= 1) exponent--;
    const mantissa = (s >> (exponent + 3)) & 0x0f;
    code = (exponent << 4) | mantissa;
  } else {
    code = s >> 4;
  }
  return (code ^ (sign ^ 0x55)) & 0xff;
}

function buildDecode(ref: (code: number) => number): Int16Array {
  const t = new Int16Array(256);
  for (let c = 0; c < 256; c++) t[c] = ref(c);
  return t;
}

function buildEncode(ref: (sample: number) => number): Uint8Array {
  const t = new Uint8Array(65536);
  for (let s = -32768; s < 32768; s++) t[s & 0xffff] = ref(s);
  return t;
}

/** µ-law code → linear 16-bit sample. */
export const ULAW_DECODE: Int16Array = buildDecode(ulawDecodeRef);
/** A-law code → linear 16-bit sample. */
export const ALAW_DECODE: Int16Array = buildDecode(alawDecodeRef);
/** Linear sample (indexed by `sample & 0xffff`) → µ-law code. */
export const ULAW_ENCODE: Uint8Array = buildEncode(ulawEncodeRef);
/** Linear sample (indexed by `sample & 0xffff`) → A-law code. */
export const ALAW_ENCODE: Uint8Array = buildEncode(alawEncodeRef);

/** The code of digital silence (a linear 0 encodes to it): 0xFF for PCMU, 0xD5 for PCMA. */
export const SILENCE_BYTE: Record<Codec, number> = { PCMU: 0xff, PCMA: 0xd5 };

/**
 * Decodes `payload` (one G.711 code per byte) into `out` starting at `outOffset`.
 * Writes min(payload.length, out.length − outOffset) samples and returns that count.
 */
export function decodeInto(codec: Codec, payload: Uint8Array, out: Int16Array, outOffset = 0): number {
  const table = codec === 'PCMA' ? ALAW_DECODE : ULAW_DECODE;
  let n = payload.length;
  const room = out.length - outOffset;
  if (n > room) n = room > 0 ? room : 0;
  for (let i = 0; i < n; i++) out[outOffset + i] = table[payload[i]!]!;
  return n;
}

/**
 * Encodes `length` samples of `pcm` from `pcmOffset` into `out` from `outOffset`
 * (clamped to what both arrays hold).
 */
export function encodeInto(
  codec: Codec, pcm: Int16Array, pcmOffset: number, length: number, out: Uint8Array, outOffset = 0,
): void {
  const table = codec === 'PCMA' ? ALAW_ENCODE : ULAW_ENCODE;
  let n = length;
  if (n > pcm.length - pcmOffset) n = pcm.length - pcmOffset;
  if (n > out.length - outOffset) n = out.length - outOffset;
  for (let i = 0; i < n; i++) out[outOffset + i] = table[pcm[pcmOffset + i]! & 0xffff]!;
}
