// RFC 4733 telephone-event receiver: turns event packets into key presses, once each.
//
// - An event is identified by its start timestamp (RFC 4733 §2.5.1.3: every packet of one event
//   carries the RTP timestamp of the event's start; a new press gets a new timestamp), together
//   with its event code. The digit is reported on the first packet seen for that identity — the
//   start packet normally, or an end packet (E bit) when every earlier packet was lost — so the
//   feature-code logic reacts without waiting for the key to be released.
// - Retransmitted end packets (the E-bit packet is typically sent three times) and blocks
//   repeated in later packets refer to an identity already reported and never produce another
//   digit. The last 16 identities are remembered.
// - Several event blocks in one packet (RFC 4733 §2.5.1.5 "packing multiple events", used to
//   repeat the end of the previous event alongside the start of the next): the packet's RTP
//   timestamp is the start of the first block's event, and each following block's event starts
//   where the previous one ended (start + duration). Blocks are handled in order.
// - A long key press split into segments (duration field saturating at 0xFFFF, RFC 4733
//   §2.5.2.3) continues with a new timestamp equal to the previous segment's start + duration,
//   same code and no E bit on the previous segment: that is the same press, not a new digit.
// - Events 0–9 → '0'..'9', 10 '*', 11 '#', 12–15 'A'..'D'; other events (flash, tones, …) are
//   ignored entirely.
//
// active(nowMs) tells the engine to mute this leg while a press is in progress and for 40 ms
// after its end. push() carries no clock, so the receiver stamps packet arrivals with the time
// of the next active() call: nowMs only needs to be a monotonic millisecond clock, called every
// tick (the engine passes performance.now()). An event whose packets stop without an end packet
// is over after 250 ms of silence.
//
// Hot path: push() reads the payload in place; no allocation except in the digit callback.

const DIGITS = '0123456789*#ABCD';
const RECENT = 16;
const HANGOVER_MS = 40;
const STALL_MS = 250;

export class DtmfReceiver {
  private readonly onDigit: (digit: string, durationMs: number) => void;
  private readonly onEnd: ((digit: string, durationMs: number) => void) | undefined;
  private readonly clockRate: number;
  /** Recently reported events: start timestamp and code (ring). */
  private readonly recentTs = new Float64Array(RECENT).fill(NaN);
  private readonly recentCode = new Int16Array(RECENT).fill(-1);
  private recentNext = 0;

  /** The event most recently reported (the one a continuation packet would belong to). */
  private curTs = 0;
  private curCode = -1;
  private curDuration = 0;
  private curEnded = true;

  private inProgress = false;
  /** A packet of the current event arrived since the last active() call. */
  private packetPending = false;
  /** The current event's end was seen since the last active() call. */
  private endPending = false;
  private lastPacketAt = -Infinity;
  private endAt = -Infinity;

  /**
   * @param onDigit called once per key press, on its first packet, with the duration known so far.
   * @param clockRate telephone-event clock rate (8000).
   * @param onEnd optional: called once when a press's end (E bit) is first seen, with its full duration.
   */
  constructor(
    onDigit: (digit: string, durationMs: number) => void,
    clockRate = 8000,
    onEnd?: (digit: string, durationMs: number) => void,
  ) {
    this.onDigit = onDigit;
    this.clockRate = clockRate > 0 ? clockRate : 8000;
    this.onEnd = onEnd;
  }

  /** One telephone-event packet: its RTP timestamp and the payload (4 bytes per event block; redundant blocks allowed). */
  push(timestamp: number, payload: Uint8Array): void {
    let ts = timestamp >>> 0;
    const blocks = payload.length >> 2;
    for (let b = 0; b < blocks; b++) {
      const o = b << 2;
      const code = payload[o]!;
      const end = (payload[o + 1]! & 0x80) !== 0;
      const duration = (payload[o + 2]! << 8) | payload[o + 3]!;
      if (code < 16) this.block(ts, code, end, duration);
      ts = (ts + duration) >>> 0;
    }
  }

  /**
   * True while an event is in progress (the engine mutes this leg's audio then, so a feature
   * code's tones never reach anyone), and for 40 ms after its end. Call every tick with a
   * monotonic millisecond clock.
   */
  active(nowMs: number): boolean {
    if (this.packetPending) {
      this.packetPending = false;
      this.lastPacketAt = nowMs;
    }
    if (this.endPending) {
      this.endPending = false;
      this.endAt = nowMs;
    }
    if (this.inProgress) {
      if (nowMs - this.lastPacketAt < STALL_MS) return true;
      // end packets lost: the press is over
      this.inProgress = false;
      this.curEnded = true;
      this.endAt = this.lastPacketAt + STALL_MS;
    }
    return nowMs - this.endAt < HANGOVER_MS;
  }

  private block(ts: number, code: number, end: boolean, duration: number): void {
    if (code === this.curCode && ts === this.curTs) {
      this.update(end, duration);
      return;
    }
    if (this.seen(ts, code)) return; // an older event repeated: nothing new
    if (
      code === this.curCode && !this.curEnded && this.curDuration > 0 &&
      ts === ((this.curTs + this.curDuration) >>> 0)
    ) {
      // next segment of a long press
      this.remember(ts, code);
      this.curTs = ts;
      this.curDuration = 0;
      this.update(end, duration);
      return;
    }
    // a new press
    this.remember(ts, code);
    this.curTs = ts;
    this.curCode = code;
    this.curDuration = duration;
    this.curEnded = end;
    this.packetPending = true;
    if (end) {
      this.inProgress = false;
      this.endPending = true;
    } else {
      this.inProgress = true;
    }
    this.onDigit(DIGITS[code]!, this.ms(duration));
    if (end) this.onEnd?.(DIGITS[code]!, this.ms(duration));
  }

  /** Another packet of the current event. */
  private update(end: boolean, duration: number): void {
    if (this.curEnded) return; // retransmitted end packet
    this.packetPending = true;
    if (duration > this.curDuration) this.curDuration = duration;
    if (end) {
      this.curEnded = true;
      this.inProgress = false;
      this.endPending = true;
      this.onEnd?.(DIGITS[this.curCode]!, this.ms(this.curDuration));
    }
  }

  private seen(ts: number, code: number): boolean {
    for (let i = 0; i < RECENT; i++) {
      if (this.recentTs[i] === ts && this.recentCode[i] === code) return true;
    }
    return false;
  }

  private remember(ts: number, code: number): void {
    this.recentTs[this.recentNext] = ts;
    this.recentCode[this.recentNext] = code;
    this.recentNext = (this.recentNext + 1) % RECENT;
  }

  private ms(duration: number): number {
    return Math.round((duration * 1000) / this.clockRate);
  }
}
