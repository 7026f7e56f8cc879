// RTP (RFC 3550 §5.1) header parsing and writing, plus the wrap-aware sequence/timestamp
// arithmetic every other media module uses.
//
// parseRtpInto() fills a caller-owned RtpPacket so the per-packet receive path allocates nothing;
// parseRtp() is the allocating convenience form.

/** A parsed RTP header. The payload is buf[payloadOffset, payloadOffset + payloadLength). */
export interface RtpPacket {
  marker: boolean;
  payloadType: number;
  sequence: number;
  timestamp: number;
  ssrc: number;
  payloadOffset: number;
  payloadLength: number;
}

/** Size of the fixed RTP header. */
export const RTP_HEADER_SIZE = 12;

/** A fresh RtpPacket to reuse with parseRtpInto(). */
export function newRtpPacket(): RtpPacket {
  return { marker: false, payloadType: 0, sequence: 0, timestamp: 0, ssrc: 0, payloadOffset: 0, payloadLength: 0 };
}

/**
 * Parses the RTP header of buf[0, len) into `pkt` (which is left in an unspecified state on
 * failure). Returns false when the packet is not version 2, shorter than its header (12 bytes +
 * 4 per CSRC + the header extension, whose length field must fit), or has a padding count of 0
 * or larger than what follows the header. CSRCs and the extension are skipped.
 */
export function parseRtpInto(buf: Uint8Array, len: number, pkt: RtpPacket): boolean {
  if (len > buf.length) len = buf.length;
  if (len < RTP_HEADER_SIZE) return false;
  const b0 = buf[0]!;
  if ((b0 & 0xc0) !== 0x80) return false;
  let offset = RTP_HEADER_SIZE + (b0 & 0x0f) * 4;
  if (offset > len) return false;
  if ((b0 & 0x10) !== 0) {
    // Header extension: 16-bit profile-defined id, 16-bit length in 32-bit words, then the words.
    if (offset + 4 > len) return false;
    const words = (buf[offset + 2]! << 8) | buf[offset + 3]!;
    offset += 4 + words * 4;
    if (offset > len) return false;
  }
  let end = len;
  if ((b0 & 0x20) !== 0) {
    // Padding: the last octet counts the padding octets, itself included.
    const pad = buf[len - 1]!;
    if (pad === 0 || pad > len - offset) return false;
    end = len - pad;
  }
  const b1 = buf[1]!;
  pkt.marker = (b1 & 0x80) !== 0;
  pkt.payloadType = b1 & 0x7f;
  pkt.sequence = (buf[2]! << 8) | buf[3]!;
  pkt.timestamp = ((buf[4]! << 24) | (buf[5]! << 16) | (buf[6]! << 8) | buf[7]!) >>> 0;
  pkt.ssrc = ((buf[8]! << 24) | (buf[9]! << 16) | (buf[10]! << 8) | buf[11]!) >>> 0;
  pkt.payloadOffset = offset;
  pkt.payloadLength = end - offset;
  return true;
}

/** Parses an RTP packet held in buf[0, len) (len defaults to buf.length); null when invalid (see parseRtpInto). */
export function parseRtp(buf: Uint8Array, len: number = buf.length): RtpPacket | null {
  const pkt = newRtpPacket();
  return parseRtpInto(buf, len, pkt) ? pkt : null;
}

/**
 * Writes a 12-byte RTP header (V=2, no padding, no extension, no CSRC) at buf[0]. Returns 12,
 * the offset of the payload.
 */
export function writeRtpHeader(
  buf: Uint8Array, marker: boolean, payloadType: number, sequence: number, timestamp: number, ssrc: number,
): number {
  buf[0] = 0x80;
  buf[1] = (marker ? 0x80 : 0) | (payloadType & 0x7f);
  buf[2] = (sequence >>> 8) & 0xff;
  buf[3] = sequence & 0xff;
  buf[4] = (timestamp >>> 24) & 0xff;
  buf[5] = (timestamp >>> 16) & 0xff;
  buf[6] = (timestamp >>> 8) & 0xff;
  buf[7] = timestamp & 0xff;
  buf[8] = (ssrc >>> 24) & 0xff;
  buf[9] = (ssrc >>> 16) & 0xff;
  buf[10] = (ssrc >>> 8) & 0xff;
  buf[11] = ssrc & 0xff;
  return RTP_HEADER_SIZE;
}

/**
 * rtcp-mux demultiplexing (RFC 5761 §4): a version-2 packet whose second octet is 192..223 is
 * RTCP. That range covers SR/RR/SDES/BYE/APP (200..204) as well as the feedback and XR types
 * (205..207) some peers send; RTP payload types 64..95 (which would collide) are never
 * negotiated with rtcp-mux.
 */
export function isRtcpPacket(buf: Uint8Array): boolean {
  if (buf.length < 2 || (buf[0]! & 0xc0) !== 0x80) return false;
  const pt = buf[1]!;
  return pt >= 192 && pt <= 223;
}

/** Signed distance b − a between two 16-bit sequence numbers, in [−32768, 32767]. */
export function seqDelta(a: number, b: number): number {
  return ((b - a + 32768) & 0xffff) - 32768;
}

/** Signed distance b − a between two 32-bit RTP timestamps, in [−2^31, 2^31 − 1]. */
export function tsDelta(a: number, b: number): number {
  return (b - a) | 0;
}
