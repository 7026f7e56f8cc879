// SDP for the media anchor (RFC 4566), offer/answer (RFC 3264), telephone-event (RFC 4733) and
// a=rtcp (RFC 3605). Every leg gets SDP naming the bridge's own address and port; what the peer
// said becomes an EndpointMedia for the RTP engine.
//
// Only G.711 (PCMU 0, PCMA 8) is spoken. The answer names exactly one codec (plus
// telephone-event and CN 13 when offered), so the engine never has to switch laws mid-stream.
import { randomInt } from 'node:crypto';
import net from 'node:net';
import type { Codec, EndpointMedia } from './types.js';

export type Direction = EndpointMedia['direction'];

/** Our o= line: what a leg's SdpSession hands to answerOffer/createOffer. */
export interface SdpOrigin {
  username: string;
  /** Numeric string (may exceed 2^53, so never a number). */
  sessionId: string;
  version: number;
}

/** A parsed o= line. `versionText` is kept because peers may use 64-bit versions. */
export interface SdpParsedOrigin extends SdpOrigin {
  versionText: string;
  netType: string;
  addrType: string;
  address: string;
}

export interface SdpConnection {
  addrType: 'IP4' | 'IP6';
  /** Without any /ttl or /count suffix. */
  address: string;
}

export interface SdpRtpMap {
  payloadType: number;
  encoding: string;
  clockRate: number;
  channels: number;
}

export interface SdpAttribute {
  name: string;
  value: string | null;
}

export interface SdpMedia {
  /** audio, video, application, ... (as written, lower-cased). */
  type: string;
  port: number;
  /** The /N of "port/N", 1 when absent. */
  portCount: number;
  /** As written, e.g. RTP/AVP, RTP/SAVP, UDP/TLS/RTP/SAVPF. */
  proto: string;
  /** The format tokens of the m= line, in order, as written. */
  formats: string[];
  /** Media-level c=, null when the session-level one applies. */
  connection: SdpConnection | null;
  rtpmap: SdpRtpMap[];
  fmtp: { payloadType: number; params: string }[];
  ptime: number | null;
  maxptime: number | null;
  /** Media-level direction attribute, null when absent (session level or sendrecv applies). */
  direction: Direction | null;
  /** RFC 3605 a=rtcp. */
  rtcp: { port: number; connection: SdpConnection | null } | null;
  rtcpMux: boolean;
  /** Every a= line of this section, in order (known ones included). */
  attributes: SdpAttribute[];
  /** Other lines of this section (i=, b=, k=, unknown), as written. */
  other: string[];
}

export interface Sdp {
  version: number;
  origin: SdpParsedOrigin | null;
  sessionName: string | null;
  /** Session-level c=. */
  connection: SdpConnection | null;
  /** Session-level direction attribute. */
  direction: Direction | null;
  /** Session-level a= lines. */
  attributes: SdpAttribute[];
  /** Other session-level lines (t=, b=, i=, u=, unknown), as written. */
  other: string[];
  media: SdpMedia[];
}

/** One format of an m= line, with its encoding resolved (rtpmap or static table). */
export interface SdpFormat {
  payloadType: number;
  /** Upper-cased encoding name, or null for an unknown dynamic payload type. */
  encoding: string | null;
  clockRate: number | null;
  channels: number;
  fmtp: string | null;
}

const DIRECTIONS: ReadonlySet<string> = new Set(['sendrecv', 'sendonly', 'recvonly', 'inactive']);

/** RFC 3551 static payload types (audio, and the common video ones for naming). */
const STATIC: ReadonlyMap<number, { encoding: string; clockRate: number; channels?: number }> = new Map([
  [0, { encoding: 'PCMU', clockRate: 8000 }],
  [3, { encoding: 'GSM', clockRate: 8000 }],
  [4, { encoding: 'G723', clockRate: 8000 }],
  [5, { encoding: 'DVI4', clockRate: 8000 }],
  [6, { encoding: 'DVI4', clockRate: 16000 }],
  [7, { encoding: 'LPC', clockRate: 8000 }],
  [8, { encoding: 'PCMA', clockRate: 8000 }],
  [9, { encoding: 'G722', clockRate: 8000 }],
  [10, { encoding: 'L16', clockRate: 44100, channels: 2 }],
  [11, { encoding: 'L16', clockRate: 44100 }],
  [12, { encoding: 'QCELP', clockRate: 8000 }],
  [13, { encoding: 'CN', clockRate: 8000 }],
  [14, { encoding: 'MPA', clockRate: 90000 }],
  [15, { encoding: 'G728', clockRate: 8000 }],
  [16, { encoding: 'DVI4', clockRate: 11025 }],
  [17, { encoding: 'DVI4', clockRate: 22050 }],
  [18, { encoding: 'G729', clockRate: 8000 }],
  [25, { encoding: 'CelB', clockRate: 90000 }],
  [26, { encoding: 'JPEG', clockRate: 90000 }],
  [28, { encoding: 'nv', clockRate: 90000 }],
  [31, { encoding: 'H261', clockRate: 90000 }],
  [32, { encoding: 'MPV', clockRate: 90000 }],
  [33, { encoding: 'MP2T', clockRate: 90000 }],
  [34, { encoding: 'H263', clockRate: 90000 }],
]);

const CODEC_PT: Readonly<Record<Codec, number>> = { PCMU: 0, PCMA: 8 };
const DEFAULT_CODECS: readonly Codec[] = ['PCMU', 'PCMA'];
const PTIMES: ReadonlySet<number> = new Set([10, 20, 30]);
const ACCEPTED_PROTOS: ReadonlySet<string> = new Set(['RTP/AVP', 'RTP/AVPF']);

// ---------------------------------------------------------------------------------------------
// Parsing

function parseConnection(value: string): SdpConnection | null {
  const [netType, addrType, addr] = value.trim().split(/\s+/);
  if (netType?.toUpperCase() !== 'IN' || !addr) return null;
  const type = addrType?.toUpperCase();
  if (type !== 'IP4' && type !== 'IP6') return null;
  const address = addr.split('/')[0]!;
  if (!address) return null;
  return { addrType: type, address };
}

function parseAttribute(value: string): SdpAttribute {
  const colon = value.indexOf(':');
  if (colon < 0) return { name: value.trim(), value: null };
  return { name: value.slice(0, colon).trim(), value: value.slice(colon + 1).trim() };
}

function parseInteger(s: string | undefined, max: number): number | null {
  if (s === undefined || !/^\d+$/.test(s)) return null;
  const n = Number(s);
  return n <= max ? n : null;
}

function parseOrigin(value: string): SdpParsedOrigin | null {
  const parts = value.trim().split(/\s+/);
  if (parts.length < 6) return null;
  const [username, sessionId, versionText, netType, addrType, address] = parts as [
    string, string, string, string, string, string,
  ];
  if (!/^\d+$/.test(versionText)) return null;
  return { username, sessionId, version: Number(versionText), versionText, netType, addrType, address };
}

function newMedia(type: string, port: number, portCount: number, proto: string, formats: string[]): SdpMedia {
  return {
    type, port, portCount, proto, formats,
    connection: null, rtpmap: [], fmtp: [], ptime: null, maxptime: null, direction: null,
    rtcp: null, rtcpMux: false, attributes: [], other: [],
  };
}

function applyMediaAttribute(m: SdpMedia, a: SdpAttribute): void {
  const name = a.name.toLowerCase();
  const v = a.value ?? '';
  if (DIRECTIONS.has(name)) {
    m.direction ??= name as Direction;
  } else if (name === 'rtpmap') {
    const r = /^(\d+)\s+([^\s/]+)\/(\d+)(?:\/(\d+))?/.exec(v);
    const pt = parseInteger(r?.[1], 127);
    if (r && pt !== null) {
      m.rtpmap.push({ payloadType: pt, encoding: r[2]!, clockRate: Number(r[3]), channels: r[4] ? Number(r[4]) : 1 });
    }
  } else if (name === 'fmtp') {
    const r = /^(\d+)\s*(.*)$/.exec(v);
    const pt = parseInteger(r?.[1], 127);
    if (r && pt !== null) m.fmtp.push({ payloadType: pt, params: r[2]!.trim() });
  } else if (name === 'ptime' || name === 'maxptime') {
    const n = Number(v);
    if (v !== '' && Number.isFinite(n) && n > 0) m[name] = n;
  } else if (name === 'rtcp') {
    const r = /^(\d+)(?:\s+(.*))?$/.exec(v);
    const port = parseInteger(r?.[1], 65535);
    if (r && port !== null) m.rtcp = { port, connection: r[2] ? parseConnection(r[2]) : null };
  } else if (name === 'rtcp-mux') {
    m.rtcpMux = true;
  }
}

/**
 * Parse an SDP body. Tolerant of LF or CRLF line ends, trailing white space, blank lines and
 * unknown lines (kept in `other`/`attributes`). Null when there is no v= line, or an m= line
 * cannot be read (an answer must mirror every m= line, so a half-read SDP is unusable).
 */
export function parseSdp(text: string): Sdp | null {
  const sdp: Sdp = {
    version: -1, origin: null, sessionName: null, connection: null, direction: null,
    attributes: [], other: [], media: [],
  };
  let current: SdpMedia | null = null;
  let sawVersion = false;
  for (const raw of text.split(/\r\n|\r|\n/)) {
    const line = raw.trim();
    if (!line) continue;
    const r = /^([a-zA-Z])\s*=(.*)$/.exec(line);
    if (!r) {
      (current ? current.other : sdp.other).push(line);
      continue;
    }
    const type = r[1]!.toLowerCase();
    const value = r[2]!.trim();
    if (type === 'v') {
      const v = parseInteger(value, 255);
      if (v === null || sawVersion) return null;
      sdp.version = v;
      sawVersion = true;
    } else if (type === 'm') {
      const [media, portSpec, proto, ...formats] = value.split(/\s+/);
      const p = /^(\d+)(?:\/(\d+))?$/.exec(portSpec ?? '');
      const port = parseInteger(p?.[1], 65535);
      if (!media || !proto || !p || port === null) return null;
      current = newMedia(media.toLowerCase(), port, p[2] ? Number(p[2]) : 1, proto, formats);
      sdp.media.push(current);
    } else if (type === 'c') {
      const c = parseConnection(value);
      if (current) current.connection = c;
      else sdp.connection = c;
    } else if (type === 'a') {
      const a = parseAttribute(value);
      if (current) {
        current.attributes.push(a);
        applyMediaAttribute(current, a);
      } else {
        sdp.attributes.push(a);
        const name = a.name.toLowerCase();
        if (DIRECTIONS.has(name)) sdp.direction ??= name as Direction;
      }
    } else if (type === 'o' && !current) {
      sdp.origin = parseOrigin(value);
    } else if (type === 's' && !current) {
      sdp.sessionName = value;
    } else {
      (current ? current.other : sdp.other).push(line);
    }
  }
  return sawVersion ? sdp : null;
}

// ---------------------------------------------------------------------------------------------
// Reading a parsed SDP

/** The formats of an m= line with their encodings (rtpmap first, then the static table). */
export function formatsOf(m: SdpMedia): SdpFormat[] {
  const out: SdpFormat[] = [];
  for (const token of m.formats) {
    const pt = parseInteger(token, 127);
    if (pt === null) continue;
    const map = m.rtpmap.find((r) => r.payloadType === pt);
    const fixed = pt < 96 ? STATIC.get(pt) : undefined;
    const fmtp = m.fmtp.find((f) => f.payloadType === pt)?.params ?? null;
    if (map) {
      out.push({ payloadType: pt, encoding: map.encoding.toUpperCase(), clockRate: map.clockRate, channels: map.channels, fmtp });
    } else if (fixed) {
      out.push({ payloadType: pt, encoding: fixed.encoding.toUpperCase(), clockRate: fixed.clockRate, channels: fixed.channels ?? 1, fmtp });
    } else {
      out.push({ payloadType: pt, encoding: null, clockRate: null, channels: 1, fmtp });
    }
  }
  return out;
}

/** The direction in force for an m= line: media level, else session level, else sendrecv. */
export function directionOf(sdp: Sdp, m: SdpMedia): Direction {
  return m.direction ?? sdp.direction ?? 'sendrecv';
}

/** The c= in force for an m= line: media level, else session level. */
export function connectionOf(sdp: Sdp, m: SdpMedia): SdpConnection | null {
  return m.connection ?? sdp.connection;
}

/** RFC 3264 8.4 old-style hold: c= names the unspecified address. */
export function isHoldAddress(address: string): boolean {
  return address === '0.0.0.0' || (net.isIPv6(address) && /^[0:]+$/.test(address));
}

/** Same o= username, session id and version: a re-offer with this changes nothing. */
export function sameOrigin(a: Sdp | null, b: Sdp | null): boolean {
  const x = a?.origin;
  const y = b?.origin;
  if (!x || !y) return false;
  return x.username === y.username && x.sessionId === y.sessionId && x.versionText === y.versionText;
}

function mirror(d: Direction): Direction {
  return d === 'sendonly' ? 'recvonly' : d === 'recvonly' ? 'sendonly' : d;
}

/** What we may do when the peer's address is 0.0.0.0: receive at most. */
function withoutSend(d: Direction): Direction {
  return d === 'sendrecv' ? 'recvonly' : d === 'sendonly' ? 'inactive' : d;
}

function codecOf(f: SdpFormat): Codec | null {
  if (f.clockRate !== 8000 || f.channels !== 1) return null;
  return f.encoding === 'PCMU' || f.encoding === 'PCMA' ? f.encoding : null;
}

function isTelephoneEvent(f: SdpFormat): boolean {
  return f.encoding === 'TELEPHONE-EVENT' && f.clockRate === 8000;
}

function choosePtime(m: SdpMedia): number {
  let ptime = m.ptime !== null && PTIMES.has(m.ptime) ? m.ptime : 20;
  if (m.maxptime !== null && ptime > m.maxptime) {
    ptime = [30, 20, 10].find((p) => p <= m.maxptime!) ?? 10;
  }
  return ptime;
}

/**
 * RFC 4733 event list ("0-15,32,36-40") intersected with the DTMF events 0-15 we handle, as
 * an fmtp value; null when nothing is left. No fmtp means 0-15 (RFC 4733 2.4.1).
 */
export function dtmfEvents(fmtp: string | null): string | null {
  if (fmtp === null || fmtp.trim() === '') return '0-15';
  const have = new Set<number>();
  for (const part of fmtp.split(',')) {
    const r = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!r) continue;
    const lo = Number(r[1]);
    const hi = r[2] !== undefined ? Number(r[2]) : lo;
    for (let e = lo; e <= Math.min(hi, 15); e++) have.add(e);
  }
  const ranges: string[] = [];
  for (let e = 0; e <= 15; e++) {
    if (!have.has(e)) continue;
    let end = e;
    while (end + 1 <= 15 && have.has(end + 1)) end++;
    ranges.push(end === e ? `${e}` : `${e}-${end}`);
    e = end;
  }
  return ranges.length ? ranges.join(',') : null;
}

function describeFormat(f: SdpFormat): string {
  return f.encoding ? `${f.encoding}/${f.clockRate}${f.channels !== 1 ? `/${f.channels}` : ''}` : `pt ${f.payloadType}`;
}

/** "audio RTP/AVP G729/8000 telephone-event/8000; video RTP/AVP H264/90000" for a 488 reason. */
function describeOffer(sdp: Sdp): string {
  if (!sdp.media.length) return 'no m= lines';
  return sdp.media
    .map((m) => {
      const formats = /RTP/i.test(m.proto) ? formatsOf(m).map(describeFormat) : m.formats;
      return `${m.type}${m.port === 0 ? ' (port 0)' : ''} ${m.proto} ${formats.join(' ')}`.trim();
    })
    .join('; ');
}

// ---------------------------------------------------------------------------------------------
// Producing SDP

function ipType(address: string): 'IP4' | 'IP6' {
  return net.isIPv6(address) ? 'IP6' : 'IP4';
}

function header(address: string, session: SdpOrigin): string[] {
  const ip = ipType(address);
  return [
    'v=0',
    `o=${session.username} ${session.sessionId} ${session.version} IN ${ip} ${address}`,
    's=amk-bridge',
    `c=IN ${ip} ${address}`,
    't=0 0',
  ];
}

function rtpmapLine(pt: number, encoding: string): string {
  return `a=rtpmap:${pt} ${encoding}/8000`;
}

function join(lines: string[]): string {
  return lines.join('\r\n') + '\r\n';
}

export interface AnswerLocal {
  address: string;
  port: number;
  /** The codecs we accept; the offerer's order decides among them. Default PCMU, PCMA. */
  codecs?: Codec[];
  session: SdpOrigin;
}

export type AnswerResult =
  | { ok: true; sdp: string; media: EndpointMedia }
  | { ok: false; status: 488; reason: string };

/**
 * Answer an offer (RFC 3264 6): the first RTP/AVP(F) audio stream offering PCMU or PCMA is
 * accepted with the offerer's most preferred G.711 law, telephone-event (0-15) and CN 13 when
 * offered; every other m= line is answered with port 0 and its format list, in order.
 */
export function answerOffer(offer: Sdp, local: AnswerLocal): AnswerResult {
  const supported = local.codecs?.length ? local.codecs : DEFAULT_CODECS;
  let chosen: { index: number; m: SdpMedia; codec: SdpFormat & { codec: Codec } } | null = null;
  for (const [index, m] of offer.media.entries()) {
    if (m.type !== 'audio' || m.port === 0 || !ACCEPTED_PROTOS.has(m.proto.toUpperCase())) continue;
    for (const f of formatsOf(m)) {
      const codec = codecOf(f);
      if (codec && supported.includes(codec)) {
        chosen = { index, m, codec: { ...f, codec } };
        break;
      }
    }
    if (chosen) break;
  }
  if (!chosen) {
    return { ok: false, status: 488, reason: `no acceptable audio (we take ${supported.join('/')} over RTP/AVP); offered: ${describeOffer(offer)}` };
  }
  const { m, codec } = chosen;
  const conn = connectionOf(offer, m);
  if (!conn) return { ok: false, status: 488, reason: 'offered audio stream has no c= address' };

  const formats = formatsOf(m);
  const te = formats.find(isTelephoneEvent);
  const teEvents = te ? dtmfEvents(te.fmtp) : null;
  const telephoneEvent = te && teEvents !== null ? te.payloadType : null;
  const cn = formats.some((f) => f.payloadType === 13 && f.encoding === 'CN' && f.clockRate === 8000);
  const ptimeMs = choosePtime(m);
  const hold = isHoldAddress(conn.address);
  let direction = mirror(directionOf(offer, m));
  if (hold) direction = withoutSend(direction);

  const pts = [codec.payloadType, ...(telephoneEvent !== null ? [telephoneEvent] : []), ...(cn ? [13] : [])];
  const lines = header(local.address, local.session);
  for (const [index, om] of offer.media.entries()) {
    if (index !== chosen.index) {
      // RFC 3264 6: a rejected stream keeps its place, port 0, and at least one format.
      lines.push(`m=${om.type} 0 ${om.proto} ${om.formats.length ? om.formats.join(' ') : '0'}`);
      continue;
    }
    lines.push(`m=audio ${local.port} ${m.proto} ${pts.join(' ')}`);
    lines.push(rtpmapLine(codec.payloadType, codec.codec));
    if (telephoneEvent !== null) {
      lines.push(rtpmapLine(telephoneEvent, 'telephone-event'));
      lines.push(`a=fmtp:${telephoneEvent} ${teEvents}`);
    }
    if (cn) lines.push(rtpmapLine(13, 'CN'));
    lines.push(`a=ptime:${ptimeMs}`, `a=${direction}`, `a=rtcp:${local.port + 1}`);
  }

  const media: EndpointMedia = {
    remote: hold ? null : { address: conn.address, port: m.port, rtcpPort: m.rtcp?.port ?? m.port + 1 },
    codec: codec.codec,
    payloadType: codec.payloadType,
    telephoneEvent,
    ptimeMs,
    direction,
    latchNetworks: [],
  };
  return { ok: true, sdp: join(lines), media };
}

export interface OfferLocal {
  address: string;
  port: number;
  /** Offered in this order. Default PCMU, PCMA. */
  codecs?: Codec[];
  /** telephone-event payload type, default 101; null offers no telephone-event. */
  telephoneEvent?: number | null;
  /** Default 20. */
  ptimeMs?: number;
  /** Default sendrecv. */
  direction?: Direction;
  session: SdpOrigin;
}

/** An offer for one leg: G.711 laws in `codecs` order, telephone-event 0-15, ptime, direction, a=rtcp. */
export function createOffer(local: OfferLocal): string {
  const codecs = local.codecs?.length ? local.codecs : DEFAULT_CODECS;
  const te = local.telephoneEvent === undefined ? 101 : local.telephoneEvent;
  const pts = [...codecs.map((c) => CODEC_PT[c]), ...(te !== null ? [te] : [])];
  const lines = header(local.address, local.session);
  lines.push(`m=audio ${local.port} RTP/AVP ${pts.join(' ')}`);
  for (const c of codecs) lines.push(rtpmapLine(CODEC_PT[c], c));
  if (te !== null) lines.push(rtpmapLine(te, 'telephone-event'), `a=fmtp:${te} 0-15`);
  lines.push(`a=ptime:${local.ptimeMs ?? 20}`, `a=${local.direction ?? 'sendrecv'}`, `a=rtcp:${local.port + 1}`);
  return join(lines);
}

/** What we put in an offer we sent, as applyAnswer needs it. */
export interface OfferWeSent {
  codecs: Codec[];
  /** Null when we offered no telephone-event. */
  telephoneEvent: number | null;
}

/**
 * The media an answer to our offer settles (RFC 3264 7): the first of the answer's formats that
 * we offered, telephone-event if kept, its ptime, its direction mirrored, its address and port.
 */
export function applyAnswer(
  offerWeSent: OfferWeSent,
  answer: Sdp,
): { ok: true; media: EndpointMedia } | { ok: false; reason: string } {
  const m = answer.media.find((x) => x.type === 'audio');
  if (!m) return { ok: false, reason: 'answer has no audio stream' };
  if (m.port === 0) return { ok: false, reason: 'answer rejected the audio stream (port 0)' };
  if (!ACCEPTED_PROTOS.has(m.proto.toUpperCase())) return { ok: false, reason: `answer uses transport ${m.proto}` };
  const formats = formatsOf(m);
  let chosen: { codec: Codec; payloadType: number } | null = null;
  for (const f of formats) {
    const codec = codecOf(f);
    if (codec && offerWeSent.codecs.includes(codec)) {
      chosen = { codec, payloadType: f.payloadType };
      break;
    }
  }
  if (!chosen) {
    return { ok: false, reason: `answer names no codec we offered: ${formats.map(describeFormat).join(' ') || 'no formats'}` };
  }
  const conn = connectionOf(answer, m);
  if (!conn) return { ok: false, reason: 'answer has no c= address' };
  const te = offerWeSent.telephoneEvent !== null ? formats.find(isTelephoneEvent) : undefined;
  const hold = isHoldAddress(conn.address);
  let direction = mirror(directionOf(answer, m));
  if (hold) direction = withoutSend(direction);
  return {
    ok: true,
    media: {
      remote: hold ? null : { address: conn.address, port: m.port, rtcpPort: m.rtcp?.port ?? m.port + 1 },
      codec: chosen.codec,
      payloadType: chosen.payloadType,
      telephoneEvent: te ? te.payloadType : null,
      ptimeMs: choosePtime(m),
      direction,
      latchNetworks: [],
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Our o= line per leg

/**
 * The o= line of one leg (RFC 3264 8): one session id for the dialog's life; the version goes
 * up by one whenever our SDP on that leg changes (`bump()`), and stays put when identical SDP is
 * sent again (session refresh re-INVITE/UPDATE).
 */
export class SdpSession {
  readonly username: string;
  readonly sessionId: string;
  #version: number;

  constructor(username = 'amk-bridge') {
    this.username = username;
    // Numeric, below 2^48 so it is exact everywhere; never 0.
    this.sessionId = String(randomInt(1, 2 ** 48));
    this.#version = 1;
  }

  get version(): number {
    return this.#version;
  }

  origin(): SdpOrigin {
    return { username: this.username, sessionId: this.sessionId, version: this.#version };
  }

  bump(): void {
    this.#version += 1;
  }
}
