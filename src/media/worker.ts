// The media worker: owns every RTP/RTCP socket and runs all conferences on one 20 ms clock, so
// SIP bursts and garbage collection on the main thread never delay a packet.
//
// Receive path (per packet, in the socket callback): latch check → RTCP demux (RTCP socket, or
// isRtcpPacket on the RTP socket for rtcp-mux) → parse → by payload type: telephone-event to the
// DTMF receiver; PCMU/PCMA decoded into the endpoint's jitter buffer; comfort noise (PT 13, RFC
// 3389) counted and otherwise ignored: the jitter buffer runs idle and that member contributes
// silence (we do not synthesise noise: the other parties keep talking, and G.711 peers without CN
// hear the same); anything else dropped and counted.
//
// Commands from the main thread arrive as port messages; besides the event loop's own delivery,
// they are taken synchronously after every tick and from the receive path at least every
// millisecond, so a call's endpoint allocation waits about a millisecond, not for a whole turn of
// a loop busy with hundreds of sockets.
//
// Clock: tick n is due at t0 + 20n (performance.now()); each tick is scheduled against that due
// time with setTimeout (setImmediate when already due), so lateness never accumulates (no drift).
// A tick that runs late still produces exactly one 20 ms frame per endpoint; ticks that fall
// more than MAX_CATCH_UP ticks behind are skipped, and every stream's timestamp jumps by the
// skipped time (marker bit set), like a talkspurt gap.
//
// Each tick: every endpoint's jitter buffer gives one frame (idle, muted by DTMF, or not
// receiving → silence); per conference, each member hears the sum of the other members' active
// inputs (+ its private tone), clipped, encoded in its codec and packetised in its ptime through
// a per-endpoint FIFO (10 ms → two packets per tick, 30 ms → a packet every 1.5 ticks). The
// common case — 20 ms packets, no tone — is encoded straight into the endpoint's packet buffer
// in one pass (nothing, one or two other voices need no sum of everyone; see mix.ts).
//
// Per packet the receive path allocates nothing of its own (the payload is decoded straight into
// the jitter buffer) and the send path reuses one packet buffer per endpoint; nothing is posted
// to the main thread per packet. What remains per packet is Node's: one 'message' callback with
// its Buffer and address object per datagram received, one send() per datagram sent.
// An endpoint in no conference hears only its tone, if any; otherwise nothing is sent and its
// RTP timestamp keeps advancing with the clock (the next packet carries the marker bit).
import { createSocket, type Socket, type RemoteInfo } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { ALAW_DECODE, ALAW_ENCODE, SILENCE_BYTE, ULAW_DECODE, ULAW_ENCODE, encodeInto } from './g711.js';
import { parseRtpInto, newRtpPacket, writeRtpHeader, isRtcpPacket } from './rtp.js';
import { buildSenderReport, buildReceiverReport, buildBye, dlsrFromMs, lsrFromNtpMs, parseRtcp, ReceptionStats, type ReportBlock } from './rtcp.js';
import { JitterBuffer } from './jitter-buffer.js';
import { DtmfReceiver } from './dtmf-receiver.js';
import { ToneGenerator } from './tones.js';
import { clearAcc, addInto, subInto, clipInto, setFrom, encodeMinus, encodeSum, encodeFrame, encodePair } from './mix.js';
import { Latch, normalizeAddress, type LatchAddress } from './latch.js';
import { PortPool } from './port-pool.js';
import type { Command, EngineStats, Reply, WorkerInit } from './protocol.js';
import type { Codec, EndpointMedia, EndpointStats, MediaEvent } from './types.js';

const TICK_MS = 20;
const FRAME = 160; // samples per tick at 8 kHz
const MAX_PTIME_MS = 60;
const FIFO_CAP = MAX_PTIME_MS * 8 + FRAME;
/** Ticks we run back to back to catch up before skipping the rest. */
const MAX_CATCH_UP = 10;
const LATE_MS = 20;
const REJECT_EVENT_INTERVAL_MS = 5000;
const PT_CN = 13;
const MAX_PAYLOAD = 2048;
const JB_MAX_DELAY_MS = 200;

const port = parentPort;
if (!port) throw new Error('media worker: not started as a worker thread');
const init = workerData as WorkerInit;
const family = init.address.includes(':') ? 'udp6' : 'udp4';
const JB_MAX = Math.max(JB_MAX_DELAY_MS, init.jitterDelayMs * 2);
/**
 * After the last telephone-event packet the member's input stays muted this long: audio it sent
 * during the event may still sit in its jitter buffer (up to its maximum delay).
 */
const DTMF_HANGOVER_MS = JB_MAX + 2 * TICK_MS;

function post(msg: Reply): void {
  port!.postMessage(msg);
}
function emitEvent(event: MediaEvent): void {
  post({ op: 'event', event });
}

/** dgram's default lookup defers every send of an unconnected socket by a tick; ours is synchronous (addresses are IP literals). */
function syncLookup(address: string, _family: unknown, cb: (err: Error | null, address: string, family: number) => void): void {
  cb(null, address, family === 'udp6' ? 6 : 4);
}

class Conference {
  members: Endpoint[] = [];
  constructor(readonly id: string) {}
}

class Endpoint {
  media: EndpointMedia | null = null;
  readonly latch = new Latch();
  /** Source of RTCP seen on the RTCP socket (symmetric RTCP destination). */
  rtcpSource: LatchAddress | null = null;
  conference: Conference | null = null;
  tone: ToneGenerator | null = null;
  closed = false;

  // --- receive
  readonly jb: JitterBuffer;
  readonly dtmf: DtmfReceiver;
  readonly rx = new ReceptionStats();
  peerSsrc: number | null = null;
  lastRtpAt = 0;
  timeoutFired = false;
  dtmfMuteUntil = 0;
  /** Middle 32 bits of the NTP timestamp of the last SR received, and when it arrived. */
  lsr = 0;
  lastSrAt = 0;
  /** This tick's input frame and whether it carries audio. */
  readonly inFrame = new Int16Array(FRAME);
  inActive = false;

  // --- send
  readonly ssrc = randomInt(0, 0x1_0000_0000);
  seq = randomInt(0, 0x10000);
  /** RTP timestamp of the first sample in the FIFO. */
  ts = randomInt(0, 0x1_0000_0000);
  readonly fifo = new Int16Array(FIFO_CAP);
  fifoLen = 0;
  /**
   * The 20 ms packet: header and payload are written in place each tick. A send that libuv
   * could not complete at once keeps its buffer; then this one is replaced (see sendFrame).
   */
  pkt = Buffer.allocUnsafe(12 + FRAME);
  /** G.711 tables and silence code of the codec we send and receive; kept by update(). */
  encode = ULAW_ENCODE;
  silence = SILENCE_BYTE.PCMU;
  markerNext = true;
  sentSinceReport = false;
  nextRtcpAt = 0;

  // --- counters
  packetsIn = 0;
  packetsOut = 0;
  octetsOut = 0;
  rejectedSource = 0;
  ignoredSource = 0;
  unknownPayload = 0;
  cnPackets = 0;
  malformed = 0;
  rtcpIn = 0;
  rtcpOut = 0;
  lastRejectEventAt = -Infinity;

  constructor(
    readonly id: string,
    readonly port: number,
    readonly rtp: Socket,
    readonly rtcp: Socket,
  ) {
    this.jb = new JitterBuffer({ delayMs: init.jitterDelayMs, maxDelayMs: JB_MAX });
    this.dtmf = new DtmfReceiver((digit: string, durationMs: number) => emitEvent({ type: 'dtmf', endpointId: this.id, digit, durationMs }));
  }

  /** We take audio from the peer (direction from our point of view). Kept by update(). */
  receives = false;
  /** Where RTP goes: the latched source (symmetric RTP), else the SDP address; null = send nothing. Kept by update(). */
  rtpDest: LatchAddress | null = null;

  /** Recomputes receives/rtpDest after a configure or a (re)latch. */
  update(): void {
    const m = this.media;
    const d = m?.direction;
    const codec = m?.codec ?? 'PCMU';
    this.encode = codec === 'PCMA' ? ALAW_ENCODE : ULAW_ENCODE;
    this.silence = SILENCE_BYTE[codec];
    this.receives = d === 'sendrecv' || d === 'recvonly';
    this.rtpDest = m === null || m.remote === null || (d !== 'sendrecv' && d !== 'sendonly') ? null : (this.latch.latched ?? m.remote);
  }

  /** Where RTCP goes and from which socket (rtcp-mux when the peer's RTCP port is its RTP port). */
  rtcpRoute(): { sock: Socket; dest: LatchAddress } | null {
    const m = this.media;
    if (m === null || m.remote === null) return null;
    if (m.remote.rtcpPort === m.remote.port) {
      return { sock: this.rtp, dest: this.latch.latched ?? m.remote };
    }
    return { sock: this.rtcp, dest: this.rtcpSource ?? { address: m.remote.address, port: m.remote.rtcpPort } };
  }
}

// ---------------------------------------------------------------------------------------------
// State

const pool = new PortPool(init.portMin, init.portMax);
const endpoints = new Map<string, Endpoint>();
/** Same endpoints, as an array for the tick loop (rebuilt on change). */
let endpointList: Endpoint[] = [];
const conferences = new Map<string, Conference>();
let conferenceList: Conference[] = [];
let stopping = false;

const rtpScratch = newRtpPacket();
const total = new Int32Array(FRAME);
const acc = new Int32Array(FRAME);
const out16 = new Int16Array(FRAME);

function rebuildLists(): void {
  endpointList = [...endpoints.values()];
  conferenceList = [...conferences.values()];
}

// ---------------------------------------------------------------------------------------------
// Clock and load statistics

interface Counters {
  since: number;
  ticks: number;
  ticksLate: number;
  sumLate: number;
  maxLate: number;
  ticksSkipped: number;
  sumWork: number;
  maxWork: number;
  packetsIn: number;
  packetsOut: number;
  packetsOutLate: number;
  rtcpIn: number;
  rtcpOut: number;
  unknownPayload: number;
  rejectedSource: number;
  elu: ReturnType<typeof performance.eventLoopUtilization>;
  cpu: { user: number; sys: number } | null;
}

/** CPU time of this thread (user, system) in ms from /proc/thread-self/stat, or null off Linux. */
function threadCpu(): { user: number; sys: number } | null {
  try {
    const s = readFileSync('/proc/thread-self/stat', 'utf8');
    // Fields after the ")" of the command name: state is the 1st, utime the 12th, stime the 13th.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]) * 10, sys: Number(f[12]) * 10 }; // clock ticks of 10 ms (USER_HZ 100)
  } catch {
    return null;
  }
}

function freshCounters(): Counters {
  return {
    since: performance.now(), ticks: 0, ticksLate: 0, sumLate: 0, maxLate: 0, ticksSkipped: 0, sumWork: 0, maxWork: 0,
    packetsIn: 0, packetsOut: 0, packetsOutLate: 0, rtcpIn: 0, rtcpOut: 0, unknownPayload: 0, rejectedSource: 0,
    elu: performance.eventLoopUtilization(), cpu: threadCpu(),
  };
}
let ctr = freshCounters();

function engineStats(reset: boolean): EngineStats {
  const now = performance.now();
  const cpu = threadCpu();
  const s: EngineStats = {
    elapsedMs: now - ctr.since,
    ticks: ctr.ticks,
    ticksLate: ctr.ticksLate,
    maxTickLateMs: ctr.maxLate,
    meanTickLateMs: ctr.ticks ? ctr.sumLate / ctr.ticks : 0,
    ticksSkipped: ctr.ticksSkipped,
    meanTickWorkMs: ctr.ticks ? ctr.sumWork / ctr.ticks : 0,
    maxTickWorkMs: ctr.maxWork,
    packetsIn: ctr.packetsIn,
    packetsOut: ctr.packetsOut,
    packetsOutLate: ctr.packetsOutLate,
    rtcpIn: ctr.rtcpIn,
    rtcpOut: ctr.rtcpOut,
    unknownPayload: ctr.unknownPayload,
    rejectedSource: ctr.rejectedSource,
    utilisation: performance.eventLoopUtilization(ctr.elu).utilization,
    cpuMs: cpu !== null && ctr.cpu !== null ? cpu.user + cpu.sys - ctr.cpu.user - ctr.cpu.sys : null,
    cpuSysMs: cpu !== null && ctr.cpu !== null ? cpu.sys - ctr.cpu.sys : null,
    endpoints: endpoints.size,
    conferences: conferences.size,
  };
  if (reset) ctr = freshCounters();
  return s;
}

let t0 = performance.now();
let tickNo = 0;
/** Due time of tick `tickNo`. */
let nextDue = t0;
let timer: NodeJS.Timeout | null = null;
let immediate: NodeJS.Immediate | null = null;
let lastTickEnd = 0;
/** The receive path runs an overdue tick once the timer is this late… */
const PUMP_LATE_MS = 2;
/** …and at least this long after the previous tick ended. */
const PUMP_GAP_MS = 8;
/**
 * Commands from the main thread are also taken synchronously (receiveMessageOnPort) after each
 * tick and from the receive path at most this often: under load one turn of the event loop
 * handles hundreds of sockets, and a call's endpoint allocation must not wait for all of them.
 */
const COMMAND_POLL_MS = 1;
let lastCommandPoll = 0;

/** Arms the timer for the next due tick (setImmediate when it is already due). */
function scheduleTick(): void {
  if (stopping || timer !== null || immediate !== null) return;
  const delay = nextDue - performance.now();
  if (delay >= 1) timer = setTimeout(onTimer, delay);
  else immediate = setImmediate(onTimer);
}

function onTimer(): void {
  timer = null;
  immediate = null;
  pump(performance.now());
  scheduleTick();
}

/**
 * Runs the next tick if it is due (timers fire at millisecond granularity: up to 1 ms early is
 * accepted). Called by the timer, and by the receive path when the timer is overdue, so a flood
 * of input that keeps the event loop in its poll phase cannot hold the clock back.
 */
function pump(now: number): void {
  if (stopping || now < nextDue - 1) return;
  let due = nextDue;
  if (now - due > MAX_CATCH_UP * TICK_MS) {
    // Hopelessly behind (a stall): skip to the current tick; streams show a timestamp gap.
    const skip = Math.floor((now - due) / TICK_MS);
    tickNo += skip;
    ctr.ticksSkipped += skip;
    for (let i = 0; i < endpointList.length; i++) skipSamples(endpointList[i]!, skip * FRAME);
    due = t0 + tickNo * TICK_MS;
  }
  const late = now > due ? now - due : 0;
  ctr.ticks++;
  ctr.sumLate += late;
  if (late > ctr.maxLate) ctr.maxLate = late;
  if (late > LATE_MS) ctr.ticksLate++;
  tickNo++;
  nextDue = t0 + tickNo * TICK_MS;
  try {
    runTick(now, due);
  } catch (err) {
    post({ op: 'error', message: `media tick failed: ${(err as Error).stack ?? String(err)}` });
  }
  lastTickEnd = performance.now();
  const work = lastTickEnd - now;
  ctr.sumWork += work;
  if (work > ctr.maxWork) ctr.maxWork = work;
  pollCommands(lastTickEnd);
}

/** Handles the commands waiting in the port now, between two packets or after a tick. */
function pollCommands(now: number): void {
  lastCommandPoll = now;
  for (;;) {
    const m = receiveMessageOnPort(port!);
    if (m === undefined) return;
    onCommands(m.message as Command | Command[]);
  }
}

// ---------------------------------------------------------------------------------------------
// The tick

function runTick(now: number, due: number): void {
  // 1. One input frame per endpoint (every jitter buffer drains at the clock rate, in a
  //    conference or not).
  for (let i = 0; i < endpointList.length; i++) {
    const ep = endpointList[i]!;
    const got = ep.jb.get(ep.inFrame);
    const dtmf = ep.dtmf.active(now); // called every tick: it stamps event packets with this clock
    ep.inActive = got && ep.receives && !dtmf && now >= ep.dtmfMuteUntil;
  }

  // 2. Conferences. Members who send 20 ms packets with nothing queued and no private tone (the
  //    common case) get their packet encoded straight from the inputs: silence when nobody else
  //    is active, the other voice when one is, the clipped sum of the two others when two are
  //    (a three-party conference), the clipped sum of all minus their own beyond that.
  for (let c = 0; c < conferenceList.length; c++) {
    const conf = conferenceList[c]!;
    const members = conf.members;
    let active = 0;
    let a0: Endpoint | null = null;
    let a1: Endpoint | null = null;
    let a2: Endpoint | null = null;
    for (let i = 0; i < members.length; i++) {
      const m = members[i]!;
      if (!m.inActive) continue;
      if (active === 0) a0 = m;
      else if (active === 1) a1 = m;
      else if (active === 2) a2 = m;
      active++;
    }
    let summed = false;
    let sent = 0;
    for (let i = 0; i < members.length; i++) {
      const m = members[i]!;
      const dest = m.rtpDest;
      if (dest === null) {
        idle(m);
        continue;
      }
      const others = m.inActive ? active - 1 : active;
      if (m.tone === null && m.fifoLen === 0 && m.media!.ptimeMs === TICK_MS) {
        const buf = m.pkt;
        if (others === 0) buf.fill(m.silence, 12, 12 + FRAME);
        else if (others === 1) encodeFrame((a0 !== m ? a0 : a1)!.inFrame, m.encode, buf, 12);
        else if (others === 2) {
          // The two active members other than m: a0 and a1, unless m is one of them.
          const x = a0 === m ? a1! : a0!;
          const y = a0 === m || a1 === m ? a2! : a1!;
          encodePair(x.inFrame, y.inFrame, m.encode, buf, 12);
        } else {
          if (!summed) summed = sumInputs(members, a0!);
          if (m.inActive) encodeMinus(total, m.inFrame, m.encode, buf, 12);
          else encodeSum(total, m.encode, buf, 12);
        }
        sendFrame(m, dest, buf);
        sent++;
        continue;
      }
      if (active === 0) clearAcc(acc);
      else {
        if (!summed) summed = sumInputs(members, a0!);
        acc.set(total);
        if (m.inActive) subInto(acc, m.inFrame);
      }
      if (m.tone !== null && !m.tone.addTo(acc)) m.tone = null;
      clipInto(acc, out16);
      sent += emit(m, dest, out16);
    }
    ctr.packetsOut += sent;
    if (sent > 0 && performance.now() - due > LATE_MS) ctr.packetsOutLate += sent;
  }

  // 3. Endpoints outside any conference: their tone alone, or nothing.
  let sent = 0;
  for (let i = 0; i < endpointList.length; i++) {
    const ep = endpointList[i]!;
    if (ep.conference !== null) continue;
    const dest = ep.rtpDest;
    if (ep.tone === null || dest === null) {
      idle(ep);
      continue;
    }
    clearAcc(acc);
    if (!ep.tone.addTo(acc)) ep.tone = null;
    clipInto(acc, out16);
    sent += emit(ep, dest, out16);
  }
  ctr.packetsOut += sent;
  if (sent > 0 && performance.now() - due > LATE_MS) ctr.packetsOutLate += sent;

  // 4. RTCP and RTP timeouts.
  for (let i = 0; i < endpointList.length; i++) {
    const ep = endpointList[i]!;
    if (ep.nextRtcpAt !== 0 && now >= ep.nextRtcpAt) sendRtcp(ep, now, false);
  }
  if (init.rtpTimeoutMs > 0 && tickNo % 25 === 0) {
    for (let i = 0; i < endpointList.length; i++) {
      const ep = endpointList[i]!;
      if (ep.lastRtpAt === 0 || ep.timeoutFired || !ep.receives) continue;
      const silent = now - ep.lastRtpAt;
      if (silent >= init.rtpTimeoutMs) {
        ep.timeoutFired = true;
        emitEvent({ type: 'rtp-timeout', endpointId: ep.id, silentForMs: Math.round(silent) });
      }
    }
  }
}

/** Appends one 20 ms frame to the endpoint's FIFO and sends every full packet. Returns packets sent. */
function emit(ep: Endpoint, dest: LatchAddress, pcm: Int16Array): number {
  const m = ep.media!;
  const frame = m.ptimeMs * 8;
  if (frame === FRAME && ep.fifoLen === 0) {
    // 20 ms packets, nothing queued (the common case): straight from the mix, no FIFO copy.
    encodeInto(m.codec, pcm, 0, FRAME, ep.pkt, 12);
    sendFrame(ep, dest, ep.pkt);
    return 1;
  }
  ep.fifo.set(pcm, ep.fifoLen);
  ep.fifoLen += FRAME;
  let off = 0;
  let n = 0;
  while (ep.fifoLen - off >= frame) {
    sendPacket(ep, dest, ep.fifo, off, frame);
    off += frame;
    n++;
  }
  if (off > 0) {
    if (off < ep.fifoLen) ep.fifo.copyWithin(0, off, ep.fifoLen);
    ep.fifoLen -= off;
  }
  return n;
}

/** total = Σ the active members' input frames (`first` is the first active one). Returns true. */
function sumInputs(members: Endpoint[], first: Endpoint): boolean {
  setFrom(total, first.inFrame);
  for (let i = 0; i < members.length; i++) {
    const m = members[i]!;
    if (m.inActive && m !== first) addInto(total, m.inFrame);
  }
  return true;
}

/** Sends the endpoint's 20 ms packet whose payload is already in buf[12, 172); advances seq/ts. */
function sendFrame(ep: Endpoint, dest: LatchAddress, buf: Buffer): void {
  writeRtpHeader(buf, ep.markerNext, ep.media!.payloadType, ep.seq, ep.ts, ep.ssrc);
  const sock = ep.rtp;
  sock.send(buf, dest.port, dest.address);
  // Sent at once (the usual case), the buffer is ours again; otherwise libuv queued the send and
  // holds it until done, so the next packet gets a buffer of its own.
  if (sock.getSendQueueCount() !== 0) ep.pkt = Buffer.allocUnsafe(12 + FRAME);
  ep.markerNext = false;
  ep.seq = (ep.seq + 1) & 0xffff;
  ep.ts = (ep.ts + FRAME) >>> 0;
  ep.packetsOut++;
  ep.octetsOut += FRAME;
  ep.sentSinceReport = true;
}

/** Encode `samples` PCM samples from `pcm[off]` into one RTP packet and send it; advance seq/ts. */
function sendPacket(ep: Endpoint, dest: LatchAddress, pcm: Int16Array, off: number, samples: number): void {
  const m = ep.media!;
  const buf = Buffer.allocUnsafe(12 + samples);
  writeRtpHeader(buf, ep.markerNext, m.payloadType, ep.seq, ep.ts, ep.ssrc);
  encodeInto(m.codec, pcm, off, samples, buf, 12);
  ep.rtp.send(buf, dest.port, dest.address);
  ep.markerNext = false;
  ep.seq = (ep.seq + 1) & 0xffff;
  ep.ts = (ep.ts + samples) >>> 0;
  ep.packetsOut++;
  ep.octetsOut += samples;
  ep.sentSinceReport = true;
}

/** A tick in which the endpoint sends nothing: the timeline moves on, what was queued is dropped. */
function idle(ep: Endpoint): void {
  skipSamples(ep, FRAME);
}

function skipSamples(ep: Endpoint, samples: number): void {
  ep.ts = (ep.ts + ep.fifoLen + samples) >>> 0;
  ep.fifoLen = 0;
  ep.markerNext = true;
}

// ---------------------------------------------------------------------------------------------
// Receive path

function onRtpMessage(ep: Endpoint, msg: Buffer, rinfo: RemoteInfo): void {
  const now = performance.now();
  // The timer is overdue because input keeps the loop in its poll phase: tick from here, but
  // leave at least PUMP_GAP_MS of I/O (and control messages) between ticks, so an overloaded
  // worker alternates ticks and input instead of ticking inside every packet callback.
  if (now >= nextDue + PUMP_LATE_MS && now - lastTickEnd >= PUMP_GAP_MS) pump(now);
  else if (now - lastCommandPoll >= COMMAND_POLL_MS) pollCommands(now);
  if (ep.closed) return;
  if (isRtcpPacket(msg)) {
    onRtcpMessage(ep, msg, rinfo, true);
    return;
  }
  if (ep.media === null) {
    // Not configured yet (a late offer: the peer may send before its answer reached us): no
    // source is allowed yet, but none is suspicious either.
    ep.ignoredSource++;
    return;
  }
  const from = family === 'udp6' ? normalizeAddress(rinfo.address) : rinfo.address;
  const verdict = ep.latch.check(from, rinfo.port, now);
  if (verdict === 'reject') {
    reject(ep, rinfo, now);
    return;
  }
  if (verdict === 'ignore') {
    ep.ignoredSource++;
    return;
  }
  if (verdict === 'latch') ep.update();
  const p = rtpScratch;
  if (!parseRtpInto(msg, msg.length, p)) {
    ep.malformed++;
    return;
  }
  ep.packetsIn++;
  ctr.packetsIn++;
  ep.lastRtpAt = now;
  ep.timeoutFired = false;
  if (p.ssrc !== ep.peerSsrc) {
    ep.peerSsrc = p.ssrc;
    ep.rx.reset();
    ep.lsr = 0;
    ep.lastSrAt = 0;
  }
  const m = ep.media;
  const pt = p.payloadType;
  if (pt === m.telephoneEvent) {
    ep.rx.update(p.sequence, p.timestamp, now * 8);
    ep.dtmf.push(p.timestamp, msg.subarray(p.payloadOffset, p.payloadOffset + p.payloadLength));
    ep.dtmfMuteUntil = now + DTMF_HANGOVER_MS;
    return;
  }
  let codec: Codec | null = null;
  if (pt === m.payloadType) codec = m.codec;
  else if (pt === 0) codec = 'PCMU';
  else if (pt === 8) codec = 'PCMA';
  if (codec !== null) {
    if (p.payloadLength === 0 || p.payloadLength > MAX_PAYLOAD) {
      ep.malformed++;
      return;
    }
    ep.rx.update(p.sequence, p.timestamp, now * 8);
    // Decoded straight into the jitter buffer (no copy of the payload, no scratch array).
    ep.jb.putG711(p.ssrc, p.sequence, p.timestamp, msg, p.payloadOffset, p.payloadLength, codec === 'PCMA' ? ALAW_DECODE : ULAW_DECODE);
    return;
  }
  if (pt === PT_CN) {
    // Comfort noise: the peer stopped talking. Nothing goes into the jitter buffer, which runs
    // idle, so this member contributes silence until speech resumes.
    ep.rx.update(p.sequence, p.timestamp, now * 8);
    ep.cnPackets++;
    return;
  }
  ep.unknownPayload++;
  ctr.unknownPayload++;
}

function reject(ep: Endpoint, rinfo: RemoteInfo, now: number): void {
  ep.rejectedSource++;
  ctr.rejectedSource++;
  if (now - ep.lastRejectEventAt >= REJECT_EVENT_INTERVAL_MS) {
    ep.lastRejectEventAt = now;
    emitEvent({ type: 'rejected-source', endpointId: ep.id, from: `${rinfo.address}:${rinfo.port}` });
  }
}

function onRtcpMessage(ep: Endpoint, msg: Buffer, rinfo: RemoteInfo, muxed: boolean): void {
  if (ep.closed) return;
  const now = performance.now();
  const from = normalizeAddress(rinfo.address);
  if (ep.media === null) {
    ep.ignoredSource++;
    return;
  }
  if (!ep.latch.allowed(from)) {
    reject(ep, rinfo, now);
    return;
  }
  const items = parseRtcp(msg);
  if (items === null) {
    ep.malformed++;
    return;
  }
  ep.rtcpIn++;
  ctr.rtcpIn++;
  if (!muxed) ep.rtcpSource = { address: from, port: rinfo.port };
  for (const item of items) {
    if (item.type === 'SR') {
      ep.lsr = lsrFromNtpMs(item.ntpMs);
      ep.lastSrAt = now;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// RTCP out

function rtcpInterval(): number {
  return init.rtcpIntervalMs * (0.5 + Math.random());
}

function reportBlocks(ep: Endpoint, now: number): ReportBlock[] {
  if (ep.peerSsrc === null) return [];
  if (ep.lastSrAt === 0) return [ep.rx.block(ep.peerSsrc, 0, 0)];
  return [ep.rx.block(ep.peerSsrc, ep.lsr, dlsrFromMs(now - ep.lastSrAt))];
}

function buildReport(ep: Endpoint, now: number): Buffer {
  const reports = reportBlocks(ep, now);
  if (ep.sentSinceReport) {
    ep.sentSinceReport = false;
    // The RTP timestamp that corresponds to "now": the next sample to be produced belongs to the
    // next tick.
    const rtpTimestamp = (ep.ts + ep.fifoLen + Math.round((now - nextDue) * 8)) >>> 0;
    return buildSenderReport({
      ssrc: ep.ssrc, ntpMs: performance.timeOrigin + now, rtpTimestamp, packets: ep.packetsOut, octets: ep.octetsOut, reports, cname: init.cname,
    });
  }
  return buildReceiverReport({ ssrc: ep.ssrc, reports, cname: init.cname });
}

function sendRtcp(ep: Endpoint, now: number, bye: boolean, done?: () => void): void {
  ep.nextRtcpAt = now + rtcpInterval();
  const route = ep.rtcpRoute();
  if (route === null) {
    done?.();
    return;
  }
  // BYE: its own compound packet (RR + SDES + BYE).
  const buf = bye ? buildBye(ep.ssrc, init.cname) : buildReport(ep, now);
  ep.rtcpOut++;
  ctr.rtcpOut++;
  if (done) route.sock.send(buf, route.dest.port, route.dest.address, () => done());
  else route.sock.send(buf, route.dest.port, route.dest.address);
}

// ---------------------------------------------------------------------------------------------
// Commands

function bindSocket(p: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = createSocket({ type: family, lookup: syncLookup as never });
    const onError = (err: Error): void => {
      sock.close();
      reject(err);
    };
    sock.once('error', onError);
    sock.bind({ address: init.address, port: p, exclusive: true }, () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}

async function allocate(req: number, id: string): Promise<void> {
  if (endpoints.has(id)) {
    post({ op: 'allocate-failed', req, id, exhausted: false, message: `endpoint ${id} exists` });
    return;
  }
  // Ports of endpoints being released come back once their sockets are closed: wait for them
  // rather than failing (release() then allocate() must work).
  if (pool.free === 0 && releasing.size > 0) await Promise.all([...releasing]);
  // Each free pair is tried at most once; a pair that fails to bind goes to the back of the list.
  const attempts = pool.free;
  let lastErr: Error | null = null;
  for (let a = 0; a < attempts; a++) {
    const p = pool.allocate();
    if (p === null) break;
    let rtp: Socket | null = null;
    let rtcp: Socket | null = null;
    try {
      rtp = await bindSocket(p);
      rtcp = await bindSocket(p + 1);
      if (stopping) {
        rtp.close();
        rtcp.close();
        pool.release(p);
        post({ op: 'allocate-failed', req, id, exhausted: false, message: 'media engine stopping' });
        return;
      }
      const ep = new Endpoint(id, p, rtp, rtcp);
      rtp.on('message', (msg, rinfo) => onRtpMessage(ep, msg, rinfo));
      rtcp.on('message', (msg, rinfo) => onRtcpMessage(ep, msg, rinfo, false));
      const onSockError = (err: Error): void => post({ op: 'error', id, message: `endpoint ${id} socket: ${err.message}` });
      rtp.on('error', onSockError);
      rtcp.on('error', onSockError);
      endpoints.set(id, ep);
      rebuildLists();
      post({ op: 'allocated', req, id, address: init.address, port: p });
      return;
    } catch (err) {
      lastErr = err as Error;
      rtp?.close();
      rtcp?.close();
      pool.release(p);
    }
  }
  post({
    op: 'allocate-failed', req, id, exhausted: true,
    message: lastErr ? `no RTP port pair could be bound (last: ${lastErr.message})` : `all ${pool.capacity} RTP port pairs are in use`,
  });
}

function configure(id: string, media: EndpointMedia): void {
  const ep = endpoints.get(id);
  if (!ep) return unknown(id, 'configure');
  const prev = ep.media;
  const prevAddress = prev?.remote?.address ?? null;
  ep.media = media;
  ep.latch.configure(media.remote?.address ?? null, media.latchNetworks);
  if ((media.remote?.address ?? null) !== prevAddress) ep.rtcpSource = null;
  ep.update();
  if (ep.nextRtcpAt === 0) ep.nextRtcpAt = performance.now() + rtcpInterval();
}

function setConference(conferenceId: string, ids: string[]): void {
  const old = conferences.get(conferenceId);
  const members: Endpoint[] = [];
  for (const id of ids) {
    const ep = endpoints.get(id);
    if (!ep) {
      unknown(id, 'setConference');
      continue;
    }
    if (!members.includes(ep)) members.push(ep);
  }
  if (old) for (const ep of old.members) if (!members.includes(ep)) ep.conference = null;
  if (members.length === 0) {
    conferences.delete(conferenceId);
    rebuildLists();
    return;
  }
  const conf = old ?? new Conference(conferenceId);
  for (const ep of members) {
    const prev = ep.conference;
    if (prev !== null && prev !== conf) removeMember(prev, ep);
    ep.conference = conf;
  }
  conf.members = members;
  conferences.set(conferenceId, conf);
  rebuildLists();
}

function removeMember(conf: Conference, ep: Endpoint): void {
  conf.members = conf.members.filter((m) => m !== ep);
  if (ep.conference === conf) ep.conference = null;
  if (conf.members.length === 0) conferences.delete(conf.id);
}

function release(id: string): void {
  const ep = endpoints.get(id);
  if (!ep) return unknown(id, 'release');
  releaseEndpoint(ep);
}

const releasing = new Set<Promise<void>>();

function releaseEndpoint(ep: Endpoint): Promise<void> {
  ep.closed = true;
  endpoints.delete(ep.id);
  if (ep.conference) removeMember(ep.conference, ep);
  rebuildLists();
  const done = closeEndpoint(ep);
  releasing.add(done);
  void done.then(() => releasing.delete(done));
  return done;
}

function closeEndpoint(ep: Endpoint): Promise<void> {
  return new Promise((resolve) => {
    const close = (): void => {
      let open = 2;
      const closed = (): void => {
        if (--open > 0) return;
        pool.release(ep.port);
        post({ op: 'released', id: ep.id, port: ep.port });
        resolve();
      };
      ep.rtp.close(closed);
      ep.rtcp.close(closed);
    };
    // RTCP BYE before the sockets close.
    let once = false;
    const doneOnce = (): void => {
      if (once) return;
      once = true;
      close();
    };
    try {
      sendRtcp(ep, performance.now(), true, doneOnce);
    } catch {
      doneOnce();
    }
    // A send whose callback never comes must not hold the ports forever.
    setTimeout(doneOnce, 200).unref();
  });
}

function endpointStats(): EndpointStats[] {
  return endpointList.map((ep) => {
    const jb = ep.jb.stats;
    const l = ep.latch.latched;
    return {
      id: ep.id,
      packetsIn: ep.packetsIn,
      packetsOut: ep.packetsOut,
      rejectedSource: ep.rejectedSource,
      lost: jb.lost,
      lateOrDuplicate: jb.late + jb.duplicate,
      latchedTo: l ? `${l.address}:${l.port}` : null,
    };
  });
}

function unknown(id: string, what: string): void {
  post({ op: 'error', id, message: `${what}: unknown endpoint ${id}` });
}

async function stop(req: number): Promise<void> {
  stopping = true;
  if (timer !== null) clearTimeout(timer);
  if (immediate !== null) clearImmediate(immediate);
  timer = null;
  immediate = null;
  await Promise.all([...endpoints.values()].map((ep) => releaseEndpoint(ep)));
  conferences.clear();
  rebuildLists();
  post({ op: 'stopped', req });
}

function onCommands(msg: Command | Command[]): void {
  if (Array.isArray(msg)) for (const cmd of msg) handle(cmd);
  else handle(msg);
}

port.on('message', onCommands);

function handle(cmd: Command): void {
  try {
    switch (cmd.op) {
      case 'allocate':
        if (stopping) post({ op: 'allocate-failed', req: cmd.req, id: cmd.id, exhausted: false, message: 'media engine stopping' });
        else void allocate(cmd.req, cmd.id);
        break;
      case 'configure':
        configure(cmd.id, cmd.media);
        break;
      case 'conference':
        setConference(cmd.conferenceId, cmd.endpointIds);
        break;
      case 'tone': {
        const ep = endpoints.get(cmd.id);
        if (!ep) unknown(cmd.id, 'playTone');
        else ep.tone = cmd.tone === null ? null : new ToneGenerator(cmd.tone);
        break;
      }
      case 'release':
        release(cmd.id);
        break;
      case 'stats':
        post({ op: 'stats', req: cmd.req, stats: endpointStats() });
        break;
      case 'engine-stats':
        post({ op: 'engine-stats', req: cmd.req, stats: engineStats(cmd.reset) });
        break;
      case 'stop':
        void stop(cmd.req);
        break;
    }
  } catch (err) {
    post({ op: 'error', message: `media worker: ${(cmd as { op: string }).op}: ${(err as Error).stack ?? String(err)}` });
  }
}

t0 = performance.now();
tickNo = 0;
nextDue = t0;
scheduleTick();
post({ op: 'ready' });
