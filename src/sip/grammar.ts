// Structured views of SIP header values (RFC 3261 section 25, RFC 3262, RFC 4028), parsed on
// demand from the raw text kept in Headers. Hand-written scanners: these run for most headers
// of every message, so no backtracking regexes and no intermediate arrays.
import { randomBytes } from 'node:crypto';
import type { Headers } from './message.js';

// ---------------------------------------------------------------------------------------------
// Character classes

/** token chars (RFC 3261 25.1): alphanum and -.!%*_+`'~ */
const TOKEN = new Uint8Array(128);
for (let c = 48; c <= 57; c++) TOKEN[c] = 1;
for (let c = 65; c <= 90; c++) TOKEN[c] = 1;
for (let c = 97; c <= 122; c++) TOKEN[c] = 1;
for (const ch of "-.!%*_+`'~") TOKEN[ch.charCodeAt(0)] = 1;

export function isTokenChar(c: number): boolean {
  return c < 128 && TOKEN[c] === 1;
}

/** True for a non-empty string made only of token chars. */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (!isTokenChar(s.charCodeAt(i))) return false;
  return true;
}

function isWs(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** Strips SP/HT/CR/LF only: String#trim would also eat U+FEFF and NBSP inside values. */
export function trimLws(s: string, from = 0, to = s.length): string {
  while (from < to && isWs(s.charCodeAt(from))) from++;
  while (to > from && isWs(s.charCodeAt(to - 1))) to--;
  return from === 0 && to === s.length ? s : s.slice(from, to);
}

function skipWs(s: string, i: number): number {
  while (i < s.length && isWs(s.charCodeAt(i))) i++;
  return i;
}

const MAX_U32 = 0xffffffff;

/**
 * Reads 1*DIGIT at i. Returns the value and the index after it, or null when there is no
 * digit or the value exceeds max (checked while accumulating, so 10^100 cannot overflow).
 */
function readInt(s: string, i: number, max: number): { value: number; end: number } | null {
  const start = i;
  let v = 0;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (!isDigit(c)) break;
    v = v * 10 + (c - 48);
    if (v > max) return null;
    i++;
  }
  return i === start ? null : { value: v, end: i };
}

/** Whole value must be LWS? 1*DIGIT LWS?; leading zeros allowed (RFC 4475 wsinv). */
function wholeInt(value: string | undefined, max: number): number | null {
  if (value === undefined) return null;
  const r = readInt(value, skipWs(value, 0), max);
  if (!r || skipWs(value, r.end) !== value.length) return null;
  return r.value;
}

/** Index just after the closing quote of the quoted-string starting at i, or -1. */
function quotedEnd(s: string, i: number): number {
  for (let j = i + 1; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c === 92 /* \ */) j++;
    else if (c === 34 /* " */) return j + 1;
  }
  return -1;
}

/** Content of a quoted-string (with its quotes) with quoted-pairs resolved. */
export function unquote(q: string): string {
  if (q.length < 2 || q.charCodeAt(0) !== 34) return q;
  const inner = q.slice(1, q.charCodeAt(q.length - 1) === 34 ? -1 : undefined);
  if (!inner.includes('\\')) return inner;
  let out = '';
  for (let i = 0; i < inner.length; i++) {
    if (inner.charCodeAt(i) === 92 && i + 1 < inner.length) i++;
    out += inner[i];
  }
  return out;
}

/** Index of the ':' ending a URI scheme (ALPHA *(ALPHA / DIGIT / + - .)), or -1. */
function schemeEnd(s: string): number {
  const c0 = s.charCodeAt(0) | 0x20;
  if (!(c0 >= 97 && c0 <= 122)) return -1;
  for (let i = 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 58) return i;
    const l = c | 0x20;
    if (!((l >= 97 && l <= 122) || isDigit(c) || c === 43 || c === 45 || c === 46)) return -1;
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Generic parameters: *( SEMI name [ EQUAL value ] ), LWS allowed around ; and = (wsinv)

/**
 * Calls fn(name, value) for each `;name[=value]` from pos to the end of s. Names are
 * lower-cased, values kept as written (quoted strings keep their quotes). Returns false on an
 * empty name (`;;`, RFC 4475 badinv01), a non-token name or trailing garbage. fn returning
 * true stops the walk early (still a success).
 */
function walkParams(s: string, pos: number, fn: (name: string, value: string | null) => boolean | void): boolean {
  const n = s.length;
  let i = pos;
  for (;;) {
    i = skipWs(s, i);
    if (i >= n) return true;
    if (s.charCodeAt(i) !== 59 /* ; */) return false;
    i = skipWs(s, i + 1);
    const ns = i;
    while (i < n && isTokenChar(s.charCodeAt(i))) i++;
    if (i === ns) return false;
    const name = s.slice(ns, i).toLowerCase();
    i = skipWs(s, i);
    let value: string | null = null;
    if (i < n && s.charCodeAt(i) === 61 /* = */) {
      i = skipWs(s, i + 1);
      if (i < n && s.charCodeAt(i) === 34) {
        const e = quotedEnd(s, i);
        if (e < 0) return false;
        value = s.slice(i, e);
        i = e;
      } else {
        const vs = i;
        while (i < n) {
          const c = s.charCodeAt(i);
          if (c === 59 || isWs(c)) break;
          i++;
        }
        value = s.slice(vs, i);
      }
    }
    if (fn(name, value) === true) return true;
  }
}

function parseParamsInto(s: string, pos: number, out: Map<string, string | null>): boolean {
  return walkParams(s, pos, (name, value) => {
    if (!out.has(name)) out.set(name, value);
  });
}

function formatParams(params: Map<string, string | null>): string {
  let out = '';
  for (const [k, v] of params) out += v === null ? `;${k}` : `;${k}=${v}`;
  return out;
}

// ---------------------------------------------------------------------------------------------
// URIs

export interface SipUri {
  /** Lower-case scheme: sip, sips, tel, or anything else (then see opaque). */
  scheme: string;
  /** User part as written (still %-escaped; see unescapeUser). For tel: the number. */
  user?: string;
  password?: string;
  /** Host as written; IPv6 references keep their brackets. '' for tel and unknown schemes. */
  host: string;
  port?: number;
  /** URI parameters: names lower-cased (and %-unescaped), values as written; null = no value. */
  params: Map<string, string | null>;
  /** `?name=value&...` headers, as written (escaped). */
  headers: Map<string, string>;
  /** Everything after `scheme:` for schemes we do not parse (callers answer 416). */
  opaque?: string;
}

/**
 * Parses a URI. sip/sips/tel get a structured view; any other `scheme:` comes back with
 * `opaque` set. Returns null for text without a scheme and for malformed sip/sips/tel URIs
 * (empty host, bad port, whitespace, unterminated IPv6 reference).
 */
export function parseUri(text: string): SipUri | null {
  const s = trimLws(text);
  const colon = schemeEnd(s);
  if (colon < 0) return null;
  const scheme = s.slice(0, colon).toLowerCase();
  if (scheme === 'sip' || scheme === 'sips') return parseSipUri(s, colon + 1, scheme);
  if (scheme === 'tel') return parseTelUri(s, colon + 1);
  return { scheme, host: '', params: new Map(), headers: new Map(), opaque: s.slice(colon + 1) };
}

function parseSipUri(s: string, p: number, scheme: string): SipUri | null {
  const n = s.length;
  const uri: SipUri = { scheme, host: '', params: new Map(), headers: new Map() };
  // userinfo cannot hold an unescaped '@' and neither can params or headers, so the first '@'
  // ends it even when the user part contains ; ? , / (RFC 4475 intmeth, semiuri).
  const at = s.indexOf('@', p);
  let i = p;
  if (at >= 0) {
    const colon = s.indexOf(':', p);
    if (colon >= 0 && colon < at) {
      uri.user = s.slice(p, colon);
      uri.password = s.slice(colon + 1, at);
    } else uri.user = s.slice(p, at);
    if (uri.user === '') return null;
    i = at + 1;
  }
  const hs = i;
  if (s.charCodeAt(i) === 91 /* [ */) {
    const close = s.indexOf(']', i);
    if (close < 0) return null;
    i = close + 1;
  } else {
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 58 || c === 59 || c === 63) break;
      if (!(isTokenChar(c) && c !== 37 && c !== 42)) return null; // hostname chars only
      i++;
    }
  }
  if (i === hs) return null;
  uri.host = s.slice(hs, i);
  if (s.charCodeAt(i) === 58 /* : */) {
    const r = readInt(s, i + 1, 65535);
    if (!r) return null;
    uri.port = r.value;
    i = r.end;
  }
  i = readUriParams(s, i, uri.params);
  if (i < 0) return null;
  if (i < n && s.charCodeAt(i) === 63 /* ? */) {
    for (const pair of s.slice(i + 1).split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      uri.headers.set(eq < 0 ? pair : pair.slice(0, eq), eq < 0 ? '' : pair.slice(eq + 1));
    }
    i = n;
  }
  return i === n ? uri : null;
}

/** Reads `;name[=value]` URI parameters (no LWS allowed) up to '?' or the end; -1 on bad chars. */
function readUriParams(s: string, i: number, out: Map<string, string | null>): number {
  const n = s.length;
  while (i < n && s.charCodeAt(i) === 59) {
    const start = ++i;
    let eq = -1;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 59 || c === 63) break;
      if (isWs(c) || c === 60 || c === 62 || c === 34) return -1;
      if (c === 61 && eq < 0) eq = i;
      i++;
    }
    if (i === start) continue; // tolerate ';;' inside a URI
    const rawName = s.slice(start, eq < 0 ? i : eq);
    const name = (rawName.includes('%') ? unescapeToken(rawName) : rawName).toLowerCase();
    if (!out.has(name)) out.set(name, eq < 0 ? null : s.slice(eq + 1, i));
  }
  return i;
}

/** %-unescapes a parameter name when the result is still a token (`%6C%72` → `lr`, esc01). */
function unescapeToken(raw: string): string {
  const u = unescapeUser(raw);
  return isToken(u) ? u : raw;
}

function parseTelUri(s: string, p: number): SipUri | null {
  let i = p;
  while (i < s.length && s.charCodeAt(i) !== 59 && s.charCodeAt(i) !== 63) i++;
  const user = s.slice(p, i);
  if (user === '') return null;
  for (let j = 0; j < user.length; j++) if (isWs(user.charCodeAt(j))) return null;
  const uri: SipUri = { scheme: 'tel', user, host: '', params: new Map(), headers: new Map() };
  i = readUriParams(s, i, uri.params);
  return i === s.length ? uri : null;
}

export function formatUri(u: SipUri): string {
  if (u.opaque !== undefined) return `${u.scheme}:${u.opaque}`;
  let out = `${u.scheme}:`;
  if (u.scheme === 'tel') out += u.user ?? '';
  else {
    if (u.user !== undefined) out += (u.password !== undefined ? `${u.user}:${u.password}` : u.user) + '@';
    out += u.host.includes(':') && u.host.charCodeAt(0) !== 91 ? `[${u.host}]` : u.host;
    if (u.port !== undefined) out += `:${u.port}`;
  }
  out += formatParams(u.params);
  let sep = '?';
  for (const [k, v] of u.headers) {
    out += `${sep}${k}=${v}`;
    sep = '&';
  }
  return out;
}

/**
 * Resolves %HH escapes into the octets they stand for, read as UTF-8. `%00` stays a NUL char
 * (RFC 4475 escnull: must not truncate). Invalid escapes such as `%ZK` are kept literally.
 */
export function unescapeUser(user: string): string {
  if (!user.includes('%')) return user;
  const src = Buffer.from(user, 'utf8');
  const out = Buffer.allocUnsafe(src.length);
  let o = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === 37 && i + 2 < src.length) {
      const h = hexVal(src[i + 1]!);
      const l = hexVal(src[i + 2]!);
      if (h >= 0 && l >= 0) {
        out[o++] = (h << 4) | l;
        i += 2;
        continue;
      }
    }
    out[o++] = c;
  }
  return out.toString('utf8', 0, o);
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

// ---------------------------------------------------------------------------------------------
// name-addr / addr-spec (From, To, Contact, Route, Record-Route, Refer-To, P-Asserted-Identity)

export interface NameAddr {
  /** Display name without quotes, quoted-pairs resolved. */
  display?: string;
  /** URI text between < > (trimmed), or the bare addr-spec. Not validated beyond `scheme:`. */
  uri: string;
  /** Header parameters (tag, expires, q, ...): names lower-cased, values as written. */
  params: Map<string, string | null>;
}

/**
 * Parses `[display] <uri> *(;param)` or a bare `addr-spec *(;param)`. Liberal where RFC 4475
 * allows it: no LWS before < (lwsdisp), unquoted non-token display names (baddn), an
 * unterminated quote before < (quotbal), spaces inside < > (badaspec), and a bare URI with
 * `?headers` (regbadct). Returns null when there is no `scheme:` URI or a parameter is empty.
 */
export function parseNameAddr(value: string): NameAddr | null {
  const s = value;
  const n = s.length;
  let i = skipWs(s, 0);
  if (i >= n) return null;
  let display: string | undefined;
  if (s.charCodeAt(i) === 34) {
    const e = quotedEnd(s, i);
    if (e >= 0) {
      display = unquote(s.slice(i, e));
      i = skipWs(s, e);
      if (s.charCodeAt(i) !== 60) return null;
    } else {
      const lt = s.indexOf('<', i);
      if (lt < 0) return null;
      display = trimLws(s, i + 1, lt);
      i = lt;
    }
  } else {
    const lt = s.indexOf('<', i);
    if (lt >= 0) {
      const d = trimLws(s, i, lt);
      if (d !== '') display = d;
      i = lt;
    }
  }
  let uri: string;
  let paramsAt: number;
  if (s.charCodeAt(i) === 60) {
    const gt = s.indexOf('>', i + 1);
    if (gt < 0) return null;
    uri = trimLws(s, i + 1, gt);
    paramsAt = gt + 1;
  } else {
    // Bare addr-spec: every ';' parameter belongs to the header, not the URI (RFC 3261 20.10).
    const semi = s.indexOf(';', i);
    paramsAt = semi < 0 ? n : semi;
    uri = trimLws(s, i, paramsAt);
  }
  if (schemeEnd(uri) < 0) return null;
  const params = new Map<string, string | null>();
  if (!parseParamsInto(s, paramsAt, params)) return null;
  const out: NameAddr = { uri, params };
  if (display !== undefined) out.display = display;
  return out;
}

export function formatNameAddr(na: NameAddr): string {
  const d = na.display ? `"${na.display.replace(/["\\]/g, '\\$&')}" ` : '';
  return `${d}<${na.uri}>${formatParams(na.params)}`;
}

/** Index where the header parameters of a name-addr / addr-spec / Via-like value start. */
function headerParamsStart(s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 34) {
      const e = quotedEnd(s, i);
      if (e >= 0) i = e - 1;
      else {
        // Unterminated quote: carry on from the next '<' like parseNameAddr does (quotbal);
        // one jump, so a run of `"\"` cannot make this quadratic.
        const lt = s.indexOf('<', i);
        if (lt < 0) return s.length;
        i = lt - 1;
      }
    } else if (c === 60) {
      const gt = s.indexOf('>', i + 1);
      if (gt < 0) return s.length;
      const semi = s.indexOf(';', gt + 1);
      return semi < 0 ? s.length : semi;
    } else if (c === 59) return i;
  }
  return s.length;
}

/**
 * One header parameter of a value (`tag` of From, `branch` of Via, `expires` of Contact):
 * the value as written, null when present without a value, undefined when absent.
 * Never throws, even on malformed values.
 */
export function getParam(value: string | undefined, name: string): string | null | undefined {
  if (!value) return undefined;
  const want = name.toLowerCase();
  let found: string | null | undefined;
  walkParams(value, headerParamsStart(value), (k, v) => {
    if (k !== want) return false;
    found = v;
    return true;
  });
  return found;
}

/** The tag parameter of a From/To value, if it has a non-empty one. */
export function tagOf(value: string | undefined): string | undefined {
  const t = getParam(value, 'tag');
  return t ? t : undefined;
}

// ---------------------------------------------------------------------------------------------
// Via

export interface Via {
  /** protocol-name/version, e.g. `SIP/2.0` (name upper-cased). */
  protocol: string;
  /** Upper-case transport token (UDP, TCP, TLS, SCTP, WS, or anything else). */
  transport: string;
  /** sent-by host as written; IPv6 references keep their brackets. */
  host: string;
  port?: number;
  params: Map<string, string | null>;
  branch?: string;
  received?: string;
  /** true for a bare `;rport` (RFC 3581 request), the number when filled in. */
  rport?: number | true;
}

/** Parses one via-parm; LWS is allowed around the slashes and the colon (RFC 4475 wsinv). */
export function parseVia(value: string): Via | null {
  const s = value;
  const n = s.length;
  let i = skipWs(s, 0);
  const parts: string[] = [];
  for (let k = 0; k < 3; k++) {
    if (k > 0) {
      if (s.charCodeAt(i) !== 47 /* / */) return null;
      i = skipWs(s, i + 1);
    }
    const ts = i;
    while (i < n && isTokenChar(s.charCodeAt(i))) i++;
    if (i === ts) return null;
    parts.push(s.slice(ts, i));
    i = skipWs(s, i);
  }
  if (!isWs(s.charCodeAt(i - 1))) return null; // sent-protocol LWS sent-by
  const hs = i;
  if (s.charCodeAt(i) === 91) {
    const close = s.indexOf(']', i);
    if (close < 0) return null;
    i = close + 1;
  } else {
    while (i < n) {
      const c = s.charCodeAt(i);
      if (!(isTokenChar(c) && c !== 37 && c !== 42)) break;
      i++;
    }
  }
  if (i === hs) return null;
  const via: Via = {
    protocol: `${parts[0]!.toUpperCase()}/${parts[1]!}`,
    transport: parts[2]!.toUpperCase(),
    host: s.slice(hs, i),
    params: new Map(),
  };
  i = skipWs(s, i);
  if (s.charCodeAt(i) === 58) {
    const r = readInt(s, skipWs(s, i + 1), 65535);
    if (!r) return null;
    via.port = r.value;
    i = r.end;
  }
  if (!parseParamsInto(s, i, via.params)) return null;
  const branch = via.params.get('branch');
  if (branch) via.branch = branch;
  const received = via.params.get('received');
  if (received) via.received = received;
  if (via.params.has('rport')) {
    const rp = via.params.get('rport');
    if (rp === null || rp === '') via.rport = true;
    else {
      const port = wholeInt(rp, 65535);
      if (port === null) return null;
      via.rport = port;
    }
  }
  return via;
}

/** Formats a Via; the branch/received/rport fields win over the same keys in params. */
export function formatVia(v: Via): string {
  let out = `${v.protocol}/${v.transport} ${v.host.includes(':') && v.host.charCodeAt(0) !== 91 ? `[${v.host}]` : v.host}`;
  if (v.port !== undefined) out += `:${v.port}`;
  const emit = (k: string, val: string | number | true | null | undefined): void => {
    if (val === undefined) return;
    out += val === null || val === true ? `;${k}` : `;${k}=${val}`;
  };
  const field = (k: string): string | number | true | undefined =>
    k === 'branch' ? v.branch : k === 'received' ? v.received : v.rport;
  for (const [k, val] of v.params) emit(k, k === 'branch' || k === 'received' || k === 'rport' ? field(k) : val);
  for (const k of ['branch', 'received', 'rport']) if (!v.params.has(k)) emit(k, field(k));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Scalar headers

/** `CSeq: 1*DIGIT LWS Method`; seq 0..2^32-1 (RFC 4475 scalar02). */
export function parseCSeq(value: string | undefined): { seq: number; method: string } | null {
  if (value === undefined) return null;
  const r = readInt(value, skipWs(value, 0), MAX_U32);
  if (!r || !isWs(value.charCodeAt(r.end))) return null;
  const method = trimLws(value, r.end);
  return isToken(method) ? { seq: r.value, method } : null;
}

/** 0..255 (RFC 3261 20.22); leading zeros allowed. */
export function parseMaxForwards(value: string | undefined): number | null {
  return wholeInt(value, 255);
}

/** Non-negative decimal; null for negative, non-numeric or absurdly large values. */
export function parseContentLength(value: string | undefined): number | null {
  return wholeInt(value, Number.MAX_SAFE_INTEGER);
}

/** `RAck: response-num LWS CSeq-num LWS Method` (RFC 3262 7.2). */
export function parseRAck(value: string | undefined): { rseq: number; cseq: number; method: string } | null {
  if (value === undefined) return null;
  const a = readInt(value, skipWs(value, 0), MAX_U32);
  if (!a || !isWs(value.charCodeAt(a.end))) return null;
  const b = readInt(value, skipWs(value, a.end), MAX_U32);
  if (!b || !isWs(value.charCodeAt(b.end))) return null;
  const method = trimLws(value, b.end);
  return isToken(method) && a.value >= 1 ? { rseq: a.value, cseq: b.value, method } : null;
}

/** `Session-Expires: delta-seconds *(;se-params)` (RFC 4028 4); unknown refresher values ignored. */
export function parseSessionExpires(value: string | undefined): { seconds: number; refresher?: 'uac' | 'uas' } | null {
  if (value === undefined) return null;
  const r = readInt(value, skipWs(value, 0), MAX_U32);
  if (!r) return null;
  const params = new Map<string, string | null>();
  if (!parseParamsInto(value, r.end, params)) return null;
  const ref = params.get('refresher')?.toLowerCase();
  return ref === 'uac' || ref === 'uas' ? { seconds: r.value, refresher: ref } : { seconds: r.value };
}

/** `Retry-After: delta-seconds [comment] *(;params)`; null when over 2^32-1 (scalarlg). */
export function parseRetryAfter(value: string | undefined): number | null {
  if (value === undefined) return null;
  const r = readInt(value, skipWs(value, 0), MAX_U32);
  if (!r) return null;
  const c = value.charCodeAt(r.end);
  return r.end === value.length || isWs(c) || c === 59 || c === 40 ? r.value : null;
}

/**
 * WWW-Authenticate / Proxy-Authenticate: `scheme LWS auth-param *(COMMA auth-param)`.
 * Param names lower-cased; quoted values unquoted (qop="auth,auth-int" keeps its comma).
 */
export function parseAuthChallenge(value: string | undefined): { scheme: string; params: Map<string, string> } | null {
  if (value === undefined) return null;
  const s = value;
  const n = s.length;
  let i = skipWs(s, 0);
  const ss = i;
  while (i < n && isTokenChar(s.charCodeAt(i))) i++;
  if (i === ss) return null;
  const scheme = s.slice(ss, i);
  if (i < n && !isWs(s.charCodeAt(i))) return null;
  const params = new Map<string, string>();
  for (;;) {
    i = skipWs(s, i);
    while (i < n && s.charCodeAt(i) === 44) i = skipWs(s, i + 1);
    if (i >= n) break;
    const ns = i;
    while (i < n && isTokenChar(s.charCodeAt(i))) i++;
    if (i === ns) return null;
    const name = s.slice(ns, i).toLowerCase();
    i = skipWs(s, i);
    let v = '';
    if (s.charCodeAt(i) === 61) {
      i = skipWs(s, i + 1);
      if (s.charCodeAt(i) === 34) {
        const e = quotedEnd(s, i);
        if (e < 0) return null;
        v = unquote(s.slice(i, e));
        i = e;
      } else {
        const vs = i;
        while (i < n && s.charCodeAt(i) !== 44 && !isWs(s.charCodeAt(i))) i++;
        v = s.slice(vs, i);
      }
    }
    if (!params.has(name)) params.set(name, v);
    i = skipWs(s, i);
    if (i < n && s.charCodeAt(i) !== 44) return null;
  }
  return { scheme, params };
}

/** Lower-case option tags of Require / Supported / Proxy-Require / Unsupported. */
export function optionTags(headers: Headers, name: string): string[] {
  const out: string[] = [];
  for (const t of headers.getList(name)) out.push(t.toLowerCase());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Identifiers. Random bytes come from a pooled crypto.randomBytes buffer: one syscall per few
// hundred identifiers, and 96+ random bits each so branches never collide across calls.

const POOL_SIZE = 4096;
let pool = randomBytes(POOL_SIZE);
let poolOff = 0;

function randomChars(bytes: number): string {
  if (poolOff + bytes > POOL_SIZE) {
    pool = randomBytes(POOL_SIZE);
    poolOff = 0;
  }
  const s = pool.toString('base64url', poolOff, poolOff + bytes);
  poolOff += bytes;
  return s;
}

/** RFC 3261 branch: magic cookie + 16 url-safe random chars (96 bits). */
export function newBranch(): string {
  return 'z9hG4bK' + randomChars(12);
}

/** From/To tag: 12 url-safe random chars (72 bits, RFC 3261 19.3 wants 32+). */
export function newTag(): string {
  return randomChars(9);
}

/** Call-ID: 20 url-safe random chars, `@host` when a host is given. */
export function newCallId(host?: string): string {
  const id = randomChars(15);
  return host ? `${id}@${host}` : id;
}
