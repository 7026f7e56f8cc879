// RTCP (RFC 3550 §6): compound SR/RR + SDES(CNAME) [+ BYE] builders, a parser, and per-source
// reception statistics (RFC 3550 appendix A.1 sequence validation, A.3 loss, A.8 jitter).
//
// Time conventions:
// - `ntpMs` is wall-clock time in milliseconds since the Unix epoch (what Date.now() or
//   performance.timeOrigin + performance.now() give; fractions allowed). It is converted to the
//   64-bit NTP format (seconds since 1900) on the wire and back when parsing (NTP era 1, from
//   2036, is handled by the RFC 4330 §3 rule: seconds with the top bit clear are era 1).
// - `lsr` / `dlsr` in report blocks are wire values: LSR is the middle 32 bits of the NTP
//   timestamp of the last SR received (see lsrFromNtpMs), DLSR is in units of 1/65536 s (see
//   dlsrFromMs).
// Builders allocate one Buffer per report (every few seconds per leg): not on the packet path.

/** One reception report block (RFC 3550 §6.4.1). */
export interface ReportBlock {
  ssrc: number;
  /** Fraction lost since the previous report, 8-bit fixed point (0..255 = 0..255/256). */
  fractionLost: number;
  /** Cumulative packets lost, 24-bit signed (duplicates can make it negative). */
  cumulativeLost: number;
  /** Extended highest sequence number received (cycles << 16 | seq). */
  highestSeq: number;
  /** Interarrival jitter in RTP timestamp units. */
  jitter: number;
  /** Middle 32 bits of the NTP timestamp of the last SR from this source, 0 if none. */
  lsr: number;
  /** Delay since that SR in 1/65536 s, 0 if none. */
  dlsr: number;
}

export type RtcpItem =
  | { type: 'SR'; ssrc: number; ntpMs: number; rtpTimestamp: number; packets: number; octets: number; reports: ReportBlock[] }
  | { type: 'RR'; ssrc: number; reports: ReportBlock[] }
  | { type: 'SDES'; ssrc: number; cname?: string }
  | { type: 'BYE'; ssrcs: number[] }
  | { type: 'other'; pt: number };

const PT_SR = 200;
const PT_RR = 201;
const PT_SDES = 202;
const PT_BYE = 203;
const SDES_CNAME = 1;

/** Seconds between the NTP epoch (1900-01-01) and the Unix epoch (1970-01-01). */
const NTP_UNIX_OFFSET_S = 2208988800;
const TWO_32 = 4294967296;

/** Splits Unix-epoch milliseconds into NTP seconds (mod 2^32) and 32-bit fraction. */
function ntpParts(ntpMs: number): { sec: number; frac: number } {
  const totalS = Math.floor(ntpMs / 1000);
  let frac = Math.round(((ntpMs - totalS * 1000) / 1000) * TWO_32);
  let sec = totalS + NTP_UNIX_OFFSET_S;
  if (frac >= TWO_32) { frac -= TWO_32; sec += 1; }
  return { sec: sec % TWO_32 >>> 0, frac: frac >>> 0 };
}

function ntpToMs(sec: number, frac: number): number {
  // RFC 4330 §3: if the most significant bit is clear, the time is in era 1 (2036 and later).
  const s = sec >= 0x80000000 ? sec : sec + TWO_32;
  return (s - NTP_UNIX_OFFSET_S) * 1000 + (frac / TWO_32) * 1000;
}

/** LSR field value for an SR carrying `ntpMs`: middle 32 bits of its NTP timestamp. */
export function lsrFromNtpMs(ntpMs: number): number {
  const { sec, frac } = ntpParts(ntpMs);
  return (((sec & 0xffff) << 16) | (frac >>> 16)) >>> 0;
}

/** DLSR field value for a delay in milliseconds (units of 1/65536 s). */
export function dlsrFromMs(ms: number): number {
  if (!(ms > 0)) return 0;
  const v = Math.round((ms * 65536) / 1000);
  return v > 0xffffffff ? 0xffffffff : v;
}

/** Round-trip time in ms from a report block received at `arrivalNtpMs` (RFC 3550 §6.4.1), or null without LSR. */
export function rttMs(block: ReportBlock, arrivalNtpMs: number): number | null {
  if (block.lsr === 0) return null;
  const a = lsrFromNtpMs(arrivalNtpMs);
  const units = (a - block.lsr - block.dlsr) >>> 0;
  if (units > 0x80000000) return 0;
  return (units * 1000) / 65536;
}

// ---- writing -------------------------------------------------------------------------------

function writeU32(b: Buffer, off: number, v: number): void {
  b.writeUInt32BE(v >>> 0, off);
}

function writeHeader(b: Buffer, off: number, count: number, pt: number, totalBytes: number): void {
  b[off] = 0x80 | (count & 0x1f);
  b[off + 1] = pt;
  b.writeUInt16BE(totalBytes / 4 - 1, off + 2);
}

function writeBlocks(b: Buffer, off: number, reports: ReportBlock[]): number {
  for (const r of reports) {
    writeU32(b, off, r.ssrc);
    b[off + 4] = Math.max(0, Math.min(255, Math.round(r.fractionLost)));
    let lost = Math.round(r.cumulativeLost);
    if (lost > 0x7fffff) lost = 0x7fffff;
    else if (lost < -0x800000) lost = -0x800000;
    const l24 = lost & 0xffffff;
    b[off + 5] = (l24 >>> 16) & 0xff;
    b[off + 6] = (l24 >>> 8) & 0xff;
    b[off + 7] = l24 & 0xff;
    writeU32(b, off + 8, r.highestSeq);
    writeU32(b, off + 12, r.jitter);
    writeU32(b, off + 16, r.lsr);
    writeU32(b, off + 20, r.dlsr);
    off += 24;
  }
  return off;
}

function sdesSize(cnameBytes: Buffer): number {
  // header 4 + SSRC 4 + CNAME item (2 + len) + END (≥1 null), padded to 32 bits
  return 4 + ((4 + 2 + cnameBytes.length + 1 + 3) & ~3);
}

function writeSdes(b: Buffer, off: number, ssrc: number, cnameBytes: Buffer): number {
  const size = sdesSize(cnameBytes);
  writeHeader(b, off, 1, PT_SDES, size);
  writeU32(b, off + 4, ssrc);
  b[off + 8] = SDES_CNAME;
  b[off + 9] = cnameBytes.length;
  cnameBytes.copy(b, off + 10);
  // remaining octets (END + padding) are already zero (Buffer.alloc)
  return off + size;
}

function cnameBuf(cname: string): Buffer {
  const bytes = Buffer.from(cname, 'utf8');
  return bytes.length > 255 ? bytes.subarray(0, 255) : bytes;
}

function checkReports(reports: ReportBlock[]): void {
  if (reports.length > 31) throw new RangeError('RTCP: at most 31 report blocks per SR/RR');
}

/** Compound SR + SDES(CNAME). */
export function buildSenderReport(o: {
  ssrc: number; ntpMs: number; rtpTimestamp: number; packets: number; octets: number; reports: ReportBlock[]; cname: string;
}): Buffer {
  checkReports(o.reports);
  const cname = cnameBuf(o.cname);
  const srSize = 28 + 24 * o.reports.length;
  const b = Buffer.alloc(srSize + sdesSize(cname));
  writeHeader(b, 0, o.reports.length, PT_SR, srSize);
  writeU32(b, 4, o.ssrc);
  const { sec, frac } = ntpParts(o.ntpMs);
  writeU32(b, 8, sec);
  writeU32(b, 12, frac);
  writeU32(b, 16, o.rtpTimestamp);
  writeU32(b, 20, o.packets % TWO_32);
  writeU32(b, 24, o.octets % TWO_32);
  writeBlocks(b, 28, o.reports);
  writeSdes(b, srSize, o.ssrc, cname);
  return b;
}

function rrSize(n: number): number {
  return 8 + 24 * n;
}

function writeRr(b: Buffer, ssrc: number, reports: ReportBlock[]): number {
  const size = rrSize(reports.length);
  writeHeader(b, 0, reports.length, PT_RR, size);
  writeU32(b, 4, ssrc);
  return writeBlocks(b, 8, reports);
}

/** Compound RR + SDES(CNAME). */
export function buildReceiverReport(o: { ssrc: number; reports: ReportBlock[]; cname: string }): Buffer {
  checkReports(o.reports);
  const cname = cnameBuf(o.cname);
  const b = Buffer.alloc(rrSize(o.reports.length) + sdesSize(cname));
  const off = writeRr(b, o.ssrc, o.reports);
  writeSdes(b, off, o.ssrc, cname);
  return b;
}

/** Compound RR (no blocks) + SDES(CNAME) + BYE for `ssrc`. */
export function buildBye(ssrc: number, cname: string): Buffer {
  const c = cnameBuf(cname);
  const b = Buffer.alloc(rrSize(0) + sdesSize(c) + 8);
  let off = writeRr(b, ssrc, []);
  off = writeSdes(b, off, ssrc, c);
  writeHeader(b, off, 1, PT_BYE, 8);
  writeU32(b, off + 4, ssrc);
  return b;
}

// ---- parsing -------------------------------------------------------------------------------

function u32(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

function readBlocks(b: Uint8Array, off: number, count: number): ReportBlock[] {
  const out: ReportBlock[] = [];
  for (let i = 0; i < count; i++, off += 24) {
    let lost = (b[off + 5]! << 16) | (b[off + 6]! << 8) | b[off + 7]!;
    if (lost & 0x800000) lost -= 0x1000000;
    out.push({
      ssrc: u32(b, off),
      fractionLost: b[off + 4]!,
      cumulativeLost: lost,
      highestSeq: u32(b, off + 8),
      jitter: u32(b, off + 12),
      lsr: u32(b, off + 16),
      dlsr: u32(b, off + 20),
    });
  }
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/**
 * Parses a (compound) RTCP packet into its parts, in order. Returns null when any part is not
 * version 2, its length field runs past the buffer, its padding is inconsistent, or an SR/RR/BYE
 * is shorter than its counts require. SDES yields one item per chunk (CNAME if present);
 * unknown packet types (APP, feedback, XR, …) yield `{ type: 'other', pt }`.
 */
export function parseRtcp(buf: Uint8Array): RtcpItem[] | null {
  const items: RtcpItem[] = [];
  let off = 0;
  if (buf.length < 4) return null;
  while (off < buf.length) {
    if (off + 4 > buf.length) return null;
    const b0 = buf[off]!;
    if ((b0 & 0xc0) !== 0x80) return null;
    const count = b0 & 0x1f;
    const pt = buf[off + 1]!;
    const size = (((buf[off + 2]! << 8) | buf[off + 3]!) + 1) * 4;
    if (off + size > buf.length) return null;
    let end = off + size;
    if ((b0 & 0x20) !== 0) {
      const pad = buf[end - 1]!;
      if (pad === 0 || pad > size - 4) return null;
      end -= pad;
    }
    const body = off + 4;
    switch (pt) {
      case PT_SR: {
        if (end - body < 24 + 24 * count) return null;
        items.push({
          type: 'SR',
          ssrc: u32(buf, body),
          ntpMs: ntpToMs(u32(buf, body + 4), u32(buf, body + 8)),
          rtpTimestamp: u32(buf, body + 12),
          packets: u32(buf, body + 16),
          octets: u32(buf, body + 20),
          reports: readBlocks(buf, body + 24, count),
        });
        break;
      }
      case PT_RR: {
        if (end - body < 4 + 24 * count) return null;
        items.push({ type: 'RR', ssrc: u32(buf, body), reports: readBlocks(buf, body + 4, count) });
        break;
      }
      case PT_SDES: {
        let p = body;
        for (let c = 0; c < count; c++) {
          if (p + 4 > end) return null;
          const ssrc = u32(buf, p);
          p += 4;
          let cname: string | undefined;
          // items until a null octet (END), then skip to the next 32-bit boundary
          for (;;) {
            if (p >= end) return null;
            const type = buf[p]!;
            if (type === 0) break;
            if (p + 2 > end) return null;
            const len = buf[p + 1]!;
            if (p + 2 + len > end) return null;
            if (type === SDES_CNAME && cname === undefined) cname = utf8.decode(buf.subarray(p + 2, p + 2 + len));
            p += 2 + len;
          }
          p = (p + 4 - off) & ~3; // past the END octet and padding, relative to the packet start
          p += off;
          items.push(cname === undefined ? { type: 'SDES', ssrc } : { type: 'SDES', ssrc, cname });
        }
        break;
      }
      case PT_BYE: {
        if (end - body < 4 * count) return null;
        const ssrcs: number[] = [];
        for (let i = 0; i < count; i++) ssrcs.push(u32(buf, body + 4 * i));
        items.push({ type: 'BYE', ssrcs });
        break;
      }
      default:
        items.push({ type: 'other', pt });
    }
    off += size;
  }
  return items;
}

// ---- reception statistics ------------------------------------------------------------------

const RTP_SEQ_MOD = 1 << 16;
const MAX_DROPOUT = 3000;
const MAX_MISORDER = 100;
const MIN_SEQUENTIAL = 2;

/**
 * Per-source reception statistics, RFC 3550 appendix A.1 (sequence validity with probation,
 * MAX_DROPOUT 3000, MAX_MISORDER 100, MIN_SEQUENTIAL 2), A.3 (expected/lost/fraction lost) and
 * A.8 (interarrival jitter). Feed every RTP packet of the source to update(); ask for a report
 * block when sending RTCP. As in A.1, a new source is on probation until two packets arrive in
 * sequence; statistics count from the packet that ends probation. Hot path: no allocation.
 */
export class ReceptionStats {
  private maxSeq = 0;
  private cycles = 0;
  private baseSeq = 0;
  private badSeq = RTP_SEQ_MOD + 1;
  private probation = 0;
  private received = 0;
  private expectedPrior = 0;
  private receivedPrior = 0;
  private transit = 0;
  private jitterQ4 = 0; // jitter × 16, as in A.8
  private started = false;
  private haveTransit = false;

  constructor() {
    this.reset();
  }

  /** Forgets everything (new source). */
  reset(): void {
    this.maxSeq = 0;
    this.cycles = 0;
    this.baseSeq = 0;
    this.badSeq = RTP_SEQ_MOD + 1;
    this.probation = 0;
    this.received = 0;
    this.expectedPrior = 0;
    this.receivedPrior = 0;
    this.transit = 0;
    this.jitterQ4 = 0;
    this.started = false;
    this.haveTransit = false;
  }

  private initSeq(seq: number): void {
    this.baseSeq = seq;
    this.maxSeq = seq;
    this.badSeq = RTP_SEQ_MOD + 1;
    this.cycles = 0;
    this.received = 0;
    this.receivedPrior = 0;
    this.expectedPrior = 0;
  }

  /** A.1 update_seq(); true when the packet counts. */
  private updateSeq(seq: number): boolean {
    const udelta = (seq - this.maxSeq) & 0xffff;
    if (this.probation > 0) {
      if (seq === ((this.maxSeq + 1) & 0xffff)) {
        this.probation--;
        this.maxSeq = seq;
        if (this.probation === 0) {
          this.initSeq(seq);
          this.received++;
          return true;
        }
      } else {
        this.probation = MIN_SEQUENTIAL - 1;
        this.maxSeq = seq;
      }
      return false;
    } else if (udelta < MAX_DROPOUT) {
      if (seq < this.maxSeq) this.cycles += RTP_SEQ_MOD; // wrapped
      this.maxSeq = seq;
    } else if (udelta <= RTP_SEQ_MOD - MAX_MISORDER) {
      // a very large jump
      if (seq === this.badSeq) {
        // two sequential packets: assume the other side restarted without telling us
        this.initSeq(seq);
        this.haveTransit = false;
      } else {
        this.badSeq = (seq + 1) & (RTP_SEQ_MOD - 1);
        return false;
      }
    }
    // else: duplicate or reordered packet
    this.received++;
    return true;
  }

  /**
   * One RTP packet: its sequence number, RTP timestamp, and arrival time expressed in the same
   * clock (samples; e.g. arrival ms × 8 at 8 kHz; any origin, wraps mod 2^32).
   */
  update(seq: number, rtpTimestamp: number, arrivalSamples: number): void {
    seq &= 0xffff;
    if (!this.started) {
      // A.1: a newly heard source
      this.started = true;
      this.initSeq(seq);
      this.maxSeq = (seq - 1) & 0xffff;
      this.probation = MIN_SEQUENTIAL;
    }
    if (!this.updateSeq(seq)) return;
    // A.8 interarrival jitter
    const transit = (arrivalSamples - rtpTimestamp) | 0;
    if (this.haveTransit) {
      let d = (transit - this.transit) | 0;
      if (d < 0) d = -d;
      this.jitterQ4 += d - Math.floor((this.jitterQ4 + 8) / 16);
    }
    this.transit = transit;
    this.haveTransit = true;
  }

  /** Extended highest sequence number received (A.3). */
  get extendedMax(): number {
    return this.cycles + this.maxSeq;
  }

  /** Packets expected so far (A.3), 0 before the source is valid. */
  get expected(): number {
    return this.isValid ? this.extendedMax - this.baseSeq + 1 : 0;
  }

  /** Packets counted so far. */
  get receivedCount(): number {
    return this.received;
  }

  /** Interarrival jitter in timestamp units. */
  get jitter(): number {
    return Math.floor(this.jitterQ4 / 16);
  }

  private get isValid(): boolean {
    return this.started && this.probation === 0;
  }

  /**
   * A report block about this source (A.3): cumulative lost (clamped to 24-bit signed), fraction
   * lost since the previous block(), extended highest sequence number and jitter.
   */
  block(ssrc: number, lsr: number, dlsr: number): ReportBlock {
    if (!this.isValid) {
      return { ssrc: ssrc >>> 0, fractionLost: 0, cumulativeLost: 0, highestSeq: 0, jitter: 0, lsr: lsr >>> 0, dlsr: dlsr >>> 0 };
    }
    const extendedMax = this.extendedMax;
    const expected = extendedMax - this.baseSeq + 1;
    let lost = expected - this.received;
    if (lost > 0x7fffff) lost = 0x7fffff;
    else if (lost < -0x800000) lost = -0x800000;
    const expectedInterval = expected - this.expectedPrior;
    this.expectedPrior = expected;
    const receivedInterval = this.received - this.receivedPrior;
    this.receivedPrior = this.received;
    const lostInterval = expectedInterval - receivedInterval;
    const fraction = expectedInterval === 0 || lostInterval <= 0 ? 0 : Math.floor((lostInterval * 256) / expectedInterval);
    return {
      ssrc: ssrc >>> 0,
      fractionLost: fraction > 255 ? 255 : fraction,
      cumulativeLost: lost,
      highestSeq: extendedMax >>> 0,
      jitter: Math.min(Math.floor(this.jitterQ4 / 16), 0xffffffff),
      lsr: lsr >>> 0,
      dlsr: dlsr >>> 0,
    };
  }
}
