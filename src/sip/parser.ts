// SIP message parser (RFC 3261 section 7) and TCP stream framer (section 18.3).
//
// Liberal where RFC 4475 allows it: CRLFs before the start line are skipped, several SP between
// request-line elements and trailing SP are accepted (lwsstart, trws), a Request-URI wrapped in
// <> is unwrapped (ltgtruri), any whitespace before a header colon and folded lines are accepted.
// Strict where guessing is unsafe: whitespace inside the Request-URI is a 400 (lwsruri), and
// Content-Length must be a plain non-negative integer agreeing across repeated headers.
import { isUtf8 } from 'node:buffer';
import { EMPTY, Headers, type SipMessage } from './message.js';
import { isToken, isTokenChar, parseContentLength, trimLws } from './grammar.js';

export type ParseResult =
  | { ok: true; msg: SipMessage }
  | {
      ok: false;
      reason: string;
      /** Set when the start line was a request line: enough to build an error response. */
      request?: { method: string; uri: string; headers: Headers };
      /** Response to send (400, 413, 505); undefined means drop silently. */
      status?: number;
    };

export interface ParseOptions {
  /** UDP: missing Content-Length means "rest of the datagram", extra octets are ignored. */
  datagram?: boolean;
  /** Larger messages are refused with 413 (default 65535). */
  maxBytes?: number;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

function isSp(c: number): boolean {
  return c === 32 || c === 9;
}

type StartLine =
  | { kind: 'request'; method: string; uri: string; version: string; error?: string; status?: number }
  | { kind: 'response'; version: string; status: number; reason: string }
  | { kind: 'garbage'; error: string };

/** `SIP/` 1*DIGIT "." 1*DIGIT, "SIP" case-insensitive (ABNF literals are). */
function isSipVersion(v: string): boolean {
  if (v.length < 7 || v.slice(0, 4).toUpperCase() !== 'SIP/') return false;
  const dot = v.indexOf('.', 4);
  if (dot <= 4 || dot === v.length - 1) return false;
  for (let i = 4; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (i !== dot && !(c >= 48 && c <= 57)) return false;
  }
  return true;
}

function parseStartLine(line: string): StartLine {
  const n = line.length;
  if (line.slice(0, 4).toUpperCase() === 'SIP/') {
    // Status-Line: SIP-Version SP 3DIGIT SP Reason-Phrase (reason may be empty, any UTF-8)
    let i = 0;
    while (i < n && !isSp(line.charCodeAt(i))) i++;
    const version = line.slice(0, i);
    if (!isSipVersion(version)) return { kind: 'garbage', error: 'bad SIP version in status line' };
    while (i < n && isSp(line.charCodeAt(i))) i++;
    const cs = i;
    let code = 0;
    while (i < n) {
      const c = line.charCodeAt(i);
      if (c < 48 || c > 57) break;
      if (i - cs < 3) code = code * 10 + (c - 48);
      i++;
    }
    // Exactly three digits: 4294967301 must not wrap around to anything (bigcode).
    if (i - cs !== 3 || code < 100 || code > 699) return { kind: 'garbage', error: 'bad status code' };
    if (i < n && !isSp(line.charCodeAt(i))) return { kind: 'garbage', error: 'bad status code' };
    return { kind: 'response', version, status: code, reason: trimLws(line, i) };
  }
  // Request-Line: Method SP Request-URI SP SIP-Version
  let i = 0;
  while (i < n && !isSp(line.charCodeAt(i))) i++;
  const method = line.slice(0, i);
  if (!isToken(method)) return { kind: 'garbage', error: 'bad request line' };
  while (i < n && isSp(line.charCodeAt(i))) i++;
  let e = n;
  while (e > i && isSp(line.charCodeAt(e - 1))) e--;
  let vs = e;
  while (vs > i && !isSp(line.charCodeAt(vs - 1))) vs--;
  const version = line.slice(vs, e);
  if (vs === i || version.slice(0, 4).toUpperCase() !== 'SIP/') return { kind: 'garbage', error: 'bad request line' };
  let ue = vs;
  while (ue > i && isSp(line.charCodeAt(ue - 1))) ue--;
  let uri = line.slice(i, ue);
  const req: StartLine = { kind: 'request', method, uri, version };
  if (version.toUpperCase() !== 'SIP/2.0') {
    req.error = `unsupported SIP version ${version}`;
    req.status = 505;
    return req;
  }
  if (uri.charCodeAt(0) === 60 && uri.charCodeAt(uri.length - 1) === 62) {
    uri = uri.slice(1, -1); // RFC 4475 ltgtruri: accept, and never forward the brackets
    req.uri = uri;
  }
  for (let k = 0; k < uri.length; k++) {
    if (isSp(uri.charCodeAt(k))) {
      req.error = 'whitespace in Request-URI';
      req.status = 400;
      return req;
    }
  }
  if (uri === '') {
    req.error = 'empty Request-URI';
    req.status = 400;
  }
  return req;
}

function drop(reason: string): ParseResult {
  return { ok: false, reason };
}

/**
 * Parses one complete SIP message. The header section is decoded as UTF-8 (latin1 when it is
 * not valid UTF-8); the body is a zero-copy slice of `buf`, exactly Content-Length bytes.
 */
export function parseMessage(buf: Buffer, opts?: ParseOptions): ParseResult {
  const datagram = opts?.datagram === true;
  const maxBytes = opts?.maxBytes ?? 65535;
  let start = 0;
  // RFC 3261 7.5: CRLFs before the start line are ignored (keep-alives on streams).
  while (start < buf.length && (buf[start] === 13 || buf[start] === 10)) start++;
  if (start >= buf.length) return drop('empty message');

  const sep = buf.indexOf(CRLFCRLF, start);
  const hdrEnd = sep < 0 ? buf.length : sep;
  let text = buf.toString('utf8', start, hdrEnd);
  if (text.includes('\uFFFD') && !isUtf8(buf.subarray(start, hdrEnd))) text = buf.toString('latin1', start, hdrEnd);

  let nl = text.indexOf('\n');
  if (nl < 0) nl = text.length;
  const sl = parseStartLine(text.slice(0, nl > 0 && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl));
  if (sl.kind === 'garbage') return drop(sl.error);

  const headers = new Headers();
  let error: string | undefined;
  let clText: string | undefined;
  let clConflict = false;

  // Header lines; a line starting with SP/HT continues the previous one (folding).
  let name: string | undefined;
  let value = '';
  const flush = (): void => {
    if (name === undefined) return;
    headers.append(name, trimLws(value));
    const f = headers.fields[headers.fields.length - 1]!;
    if (f.key === 'content-length') {
      if (clText === undefined) clText = f.value;
      else if (parseContentLength(clText) !== parseContentLength(f.value)) clConflict = true;
    }
    name = undefined;
  };
  let pos = nl + 1;
  while (pos < text.length) {
    let le = text.indexOf('\n', pos);
    if (le < 0) le = text.length;
    const end = le > pos && text.charCodeAt(le - 1) === 13 ? le - 1 : le;
    if (isSp(text.charCodeAt(pos))) {
      if (name !== undefined) {
        const more = trimLws(text, pos, end);
        if (more !== '') value = trimLws(value) === '' ? more : `${trimLws(value)} ${more}`;
      } else if (trimLws(text, pos, end) !== '') {
        error ??= 'folded line without a header';
      }
    } else if (end > pos) {
      flush();
      // Bounded scan: an unbounded indexOf would go quadratic on many colon-less lines.
      let colon = pos;
      while (colon < end && text.charCodeAt(colon) !== 58) colon++;
      if (colon >= end) {
        error ??= 'header line without a colon';
      } else {
        let ne = colon;
        while (ne > pos && isSp(text.charCodeAt(ne - 1))) ne--;
        let ok = ne > pos;
        for (let k = pos; k < ne && ok; k++) ok = isTokenChar(text.charCodeAt(k));
        if (ok) {
          name = text.slice(pos, ne);
          value = text.slice(colon + 1, end);
        } else error ??= 'invalid header name';
      }
    }
    pos = le + 1;
  }
  flush();

  if (sl.kind === 'response') {
    // Responses are never answered: anything wrong means drop.
    if (error) return drop(error);
  } else if (sl.error || error) {
    return fail(sl, headers, sl.error ?? error!, sl.status ?? 400);
  }

  if (sep < 0) return reject(sl, headers, 'no empty line after the header section', 400);
  const bodyStart = sep + 4;
  const available = buf.length - bodyStart;
  let len: number;
  if (clText === undefined) {
    if (!datagram) return reject(sl, headers, 'missing Content-Length on a stream', 400);
    len = available;
  } else {
    const cl = parseContentLength(clText);
    if (cl === null) return reject(sl, headers, 'invalid Content-Length', 400);
    if (clConflict) return reject(sl, headers, 'conflicting Content-Length values', 400);
    len = cl;
  }
  if (bodyStart - start + len > maxBytes) return reject(sl, headers, 'message too large', 413);
  if (len > available) return reject(sl, headers, 'Content-Length larger than the message', 400);
  // Octets after Content-Length bytes are ignored (RFC 4475 dblreq); on a stream the framer
  // already cut the message to size.
  const body = len === 0 ? EMPTY : buf.subarray(bodyStart, bodyStart + len);
  const msg: SipMessage =
    sl.kind === 'request'
      ? { kind: 'request', method: sl.method, uri: sl.uri, version: sl.version, headers, body }
      : { kind: 'response', status: sl.status, reason: sl.reason, version: sl.version, headers, body };
  return { ok: true, msg };
}

function fail(sl: Extract<StartLine, { kind: 'request' }>, headers: Headers, reason: string, status: number): ParseResult {
  return { ok: false, reason, status, request: { method: sl.method, uri: sl.uri, headers } };
}

/** Error for a request, silent drop for a response. */
function reject(sl: StartLine, headers: Headers, reason: string, status: number): ParseResult {
  return sl.kind === 'request' ? fail(sl, headers, reason, status) : drop(reason);
}

// ---------------------------------------------------------------------------------------------
// Stream framing

const MISSING = -1;
const INVALID = -2;

function isClName(b: Buffer, s: number, e: number): boolean {
  while (e > s && isSp(b[e - 1]!)) e--;
  const len = e - s;
  if (len === 1) return (b[s]! | 0x20) === 108; // compact form 'l'
  if (len !== 14) return false;
  return b.toString('latin1', s, e).toLowerCase() === 'content-length';
}

/** Plain decimal between LWS in b[s..e); INVALID otherwise. */
function digitsIn(b: Buffer, s: number, e: number): number {
  let i = s;
  while (i < e && (isSp(b[i]!) || b[i] === 13 || b[i] === 10)) i++;
  const ds = i;
  let v = 0;
  while (i < e && b[i]! >= 48 && b[i]! <= 57) {
    v = Math.min(v * 10 + (b[i]! - 48), Number.MAX_SAFE_INTEGER);
    i++;
  }
  if (i === ds) return INVALID;
  while (i < e && (isSp(b[i]!) || b[i] === 13 || b[i] === 10)) i++;
  return i === e ? v : INVALID;
}

/** Content-Length of the header section b[start..end) without decoding it. */
function streamContentLength(b: Buffer, start: number, end: number): number {
  let found = MISSING;
  let pos = b.indexOf(10, start) + 1; // skip the start line
  if (pos <= 0 || pos > end) return MISSING;
  while (pos < end) {
    let le = b.indexOf(10, pos);
    if (le < 0 || le > end) le = end;
    if (!isSp(b[pos]!)) {
      let colon = pos;
      while (colon < le && b[colon] !== 58) colon++;
      if (colon < le && isClName(b, pos, colon)) {
        while (le < end && le + 1 < end && isSp(b[le + 1]!)) {
          const next = b.indexOf(10, le + 1); // folded value continues on the next line
          le = next < 0 || next > end ? end : next;
        }
        const v = digitsIn(b, colon + 1, le);
        if (v === INVALID || (found !== MISSING && v !== found)) return INVALID;
        found = v;
      }
    }
    pos = le + 1;
  }
  return found;
}

/**
 * Cuts a TCP/TLS byte stream into SIP messages by Content-Length (mandatory on streams).
 * Any framing error is fatal for the connection: after onError nothing more is processed.
 *
 * Bytes accumulate in one growable buffer (appending is amortised O(1), so a peer trickling a
 * message byte by byte costs linear time, not quadratic re-concatenation); each emitted message
 * is copied out, so the buffer can be compacted and reused.
 */
export class StreamFramer {
  /** Called for each RFC 5626 CRLFCRLF ping; the transport answers with a CRLF pong. */
  onKeepAlive?: () => void;
  private store: Buffer = EMPTY;
  /** Unconsumed bytes are store[start, end). */
  private start = 0;
  private end = 0;
  /** Where the CRLFCRLF search resumes, relative to start (no rescans as data trickles in). */
  private scanFrom = 0;
  /** Length of the message at start once its header section is complete, else 0. */
  private needed = 0;
  private failed = false;

  constructor(
    private readonly onMessage: (buf: Buffer) => void,
    private readonly onError: (reason: string) => void,
    private readonly maxBytes = 65535,
  ) {}

  push(chunk: Buffer): void {
    if (this.failed || chunk.length === 0) return;
    this.append(chunk);
    if (this.needed > this.end - this.start) return;
    const b = this.store.subarray(0, this.end);
    let off = this.start;
    while (off < b.length) {
      const c = b[off];
      if (c === 13 || c === 10) {
        // Keep-alives between messages: CRLFCRLF is a ping, a lone CRLF a pong (RFC 5626 4.4.1).
        if (c === 10) {
          off++;
          continue;
        }
        if (off + 1 >= b.length) break;
        if (b[off + 1] !== 10) {
          off++;
          continue;
        }
        if (off + 3 < b.length && b[off + 2] === 13 && b[off + 3] === 10) {
          off += 4;
          this.onKeepAlive?.();
          if (this.failed) return;
          continue;
        }
        if (off + 2 === b.length || (off + 3 === b.length && b[off + 2] === 13)) break; // maybe a ping
        off += 2;
        continue;
      }
      if (this.needed === 0) {
        const he = b.indexOf(CRLFCRLF, off + this.scanFrom);
        if (he < 0) {
          if (b.length - off > this.maxBytes) return this.fail('header section too large');
          this.scanFrom = Math.max(0, b.length - 3 - off);
          break;
        }
        if (he - off > this.maxBytes) return this.fail('header section too large');
        const cl = streamContentLength(b, off, he);
        if (cl === MISSING) return this.fail('missing Content-Length on a stream');
        if (cl === INVALID) return this.fail('invalid Content-Length');
        const total = he + 4 + cl - off;
        if (total > this.maxBytes) return this.fail('message too large');
        this.needed = total;
      }
      if (off + this.needed > b.length) break;
      const msgEnd = off + this.needed;
      this.needed = 0;
      this.scanFrom = 0;
      const msg = Buffer.from(b.subarray(off, msgEnd));
      off = msgEnd;
      this.onMessage(msg);
      if (this.failed) return;
    }
    this.start = off;
    if (this.start === this.end) {
      this.start = this.end = 0;
      if (this.store.length > 4 * this.maxBytes) this.store = EMPTY; // drop a buffer a burst inflated
    }
  }

  private append(chunk: Buffer): void {
    const pending = this.end - this.start;
    if (this.end + chunk.length > this.store.length) {
      if (pending + chunk.length <= this.store.length) {
        this.store.copyWithin(0, this.start, this.end);
      } else {
        const grown = Buffer.allocUnsafe(Math.max(4096, 2 * (pending + chunk.length)));
        this.store.copy(grown, 0, this.start, this.end);
        this.store = grown;
      }
      this.start = 0;
      this.end = pending;
    }
    chunk.copy(this.store, this.end);
    this.end += chunk.length;
  }

  private fail(reason: string): void {
    this.failed = true;
    this.store = EMPTY;
    this.start = this.end = 0;
    this.onError(reason);
  }
}
