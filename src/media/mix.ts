// Conference mixing kernels over one 20 ms frame (160 samples at 8 kHz).
//
// The mixer sums every active member into an Int32Array `total` once, then for each member
// builds `acc = total − own input (+ private tone)` and saturates it to int16 for encoding
// (N−1 mixing: nobody hears their own voice). Int32 accumulation cannot overflow for any
// realistic member count (65 536 members at full scale), and saturation happens once, at the
// end, so a loud member clipping does not distort the others' sum.
//
// Plain indexed loops over typed arrays (monomorphic, no allocation, no closures). All
// functions process min(length of the arrays involved) samples.

/** acc = 0. */
export function clearAcc(acc: Int32Array): void {
  acc.fill(0);
}

/** acc += src. */
export function addInto(acc: Int32Array, src: Int16Array): void {
  const n = acc.length < src.length ? acc.length : src.length;
  for (let i = 0; i < n; i++) acc[i] = acc[i]! + src[i]!;
}

/** acc −= src (N−1 mixing: total minus own). */
export function subInto(acc: Int32Array, src: Int16Array): void {
  const n = acc.length < src.length ? acc.length : src.length;
  for (let i = 0; i < n; i++) acc[i] = acc[i]! - src[i]!;
}

/** acc += src × gain (gain as a float, e.g. 0.5 for −6 dB); the product is truncated toward zero. */
export function addScaledInto(acc: Int32Array, src: Int16Array, gain: number): void {
  const n = acc.length < src.length ? acc.length : src.length;
  for (let i = 0; i < n; i++) acc[i] = acc[i]! + ((src[i]! * gain) | 0);
}

/** out = acc saturated to int16 (±32767 / −32768). */
export function clipInto(acc: Int32Array, out: Int16Array): void {
  const n = acc.length < out.length ? acc.length : out.length;
  for (let i = 0; i < n; i++) {
    const v = acc[i]!;
    out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
}

// Fused kernels for the tick's common case (a 20 ms packet straight from the mix, no private
// tone): saturation and G.711 encoding (`table` is ULAW_ENCODE or ALAW_ENCODE, indexed by the
// 16-bit pattern of the sample) in the same pass, written into the packet at out[off..]. They
// give exactly what clipInto() followed by encodeInto() gives. Each processes total.length
// samples (one frame); `out` must hold off + that many bytes.

/** acc = src (widened to 32 bits): the first term of a sum. */
export function setFrom(acc: Int32Array, src: Int16Array): void {
  const n = acc.length < src.length ? acc.length : src.length;
  for (let i = 0; i < n; i++) acc[i] = src[i]!;
}

/** out[off + i] = G.711 of clip(total[i] − own[i]): what a member hears who is in the sum. */
export function encodeMinus(total: Int32Array, own: Int16Array, table: Uint8Array, out: Uint8Array, off: number): void {
  const n = total.length;
  for (let i = 0; i < n; i++) {
    const v = total[i]! - own[i]!;
    out[off + i] = table[(v > 32767 ? 32767 : v < -32768 ? -32768 : v) & 0xffff]!;
  }
}

/** out[off + i] = G.711 of clip(total[i]): what a member hears who is not in the sum. */
export function encodeSum(total: Int32Array, table: Uint8Array, out: Uint8Array, off: number): void {
  const n = total.length;
  for (let i = 0; i < n; i++) {
    const v = total[i]!;
    out[off + i] = table[(v > 32767 ? 32767 : v < -32768 ? -32768 : v) & 0xffff]!;
  }
}

/** out[off + i] = G.711 of clip(x[i] + y[i]): exactly two other voices (no sum of everyone needed). */
export function encodePair(x: Int16Array, y: Int16Array, table: Uint8Array, out: Uint8Array, off: number): void {
  const n = x.length;
  for (let i = 0; i < n; i++) {
    const v = x[i]! + y[i]!;
    out[off + i] = table[(v > 32767 ? 32767 : v < -32768 ? -32768 : v) & 0xffff]!;
  }
}

/** out[off + i] = G.711 of src[i] (one other voice: no sum, nothing to clip). */
export function encodeFrame(src: Int16Array, table: Uint8Array, out: Uint8Array, off: number): void {
  const n = src.length;
  for (let i = 0; i < n; i++) out[off + i] = table[src[i]! & 0xffff]!;
}
