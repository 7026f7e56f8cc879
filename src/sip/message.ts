// SIP message model shared by the parser, the transport, the transactions and the B2BUA.
// Header values are kept as raw text (one entry per header line, in wire order) so a B2BUA
// can pass headers through byte-exact; structured views come from ./grammar.ts on demand.

/** Compact header forms (RFC 3261 7.3.3 and later RFCs) mapped to their long names. */
const COMPACT: Record<string, string> = {
  i: 'call-id', m: 'contact', f: 'from', t: 'to', v: 'via', l: 'content-length',
  c: 'content-type', e: 'content-encoding', k: 'supported', s: 'subject', o: 'event',
  r: 'refer-to', b: 'referred-by', x: 'session-expires', u: 'allow-events', a: 'accept-contact',
  j: 'reject-contact', d: 'request-disposition', y: 'identity', n: 'identity-info',
};

/** Canonical spelling used when we print a header we created (or re-emit a compact one). */
const CANONICAL: Record<string, string> = {
  'call-id': 'Call-ID', cseq: 'CSeq', 'www-authenticate': 'WWW-Authenticate',
  'p-asserted-identity': 'P-Asserted-Identity', 'p-preferred-identity': 'P-Preferred-Identity',
  rack: 'RAck', rseq: 'RSeq', 'mime-version': 'MIME-Version', 'history-info': 'History-Info',
};

/** Lower-case long form of a header name: the key used for every lookup. */
export function headerKey(name: string): string {
  const lower = name.toLowerCase();
  return COMPACT[lower] ?? lower;
}

/** Conventional capitalisation for a header name (`call-id` → `Call-ID`, `x-foo` → `X-Foo`). */
export function canonicalName(name: string): string {
  const key = headerKey(name);
  return CANONICAL[key] ?? key.replace(/(^|-)([a-z])/g, (_m, dash: string, ch: string) => dash + ch.toUpperCase());
}

/** Headers whose value is a comma-separated list that may be split into several lines. */
const LIST_HEADERS = new Set([
  'via', 'route', 'record-route', 'contact', 'allow', 'supported', 'require', 'proxy-require',
  'unsupported', 'accept', 'accept-encoding', 'accept-language', 'allow-events', 'history-info',
  'call-info', 'p-asserted-identity', 'geolocation', 'resource-priority', 'privacy',
  'content-encoding', 'in-reply-to', 'alert-info', 'error-info', 'warning', 'accept-resource-priority',
]);

export function isListHeader(name: string): boolean {
  return LIST_HEADERS.has(headerKey(name));
}

/**
 * Split a header value at top-level commas: commas inside quoted strings, <...> and after the
 * URI parameters of a name-addr are respected. Empty elements are kept (as '') so a validator
 * can reject `Via: a;;,;,,` style separators.
 */
export function splitList(value: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value.charCodeAt(i);
    if (quoted) {
      if (ch === 92 /* \ */) i++;
      else if (ch === 34 /* " */) quoted = false;
    } else if (ch === 34) quoted = true;
    else if (ch === 60 /* < */) depth++;
    else if (ch === 62 /* > */) depth = Math.max(0, depth - 1);
    else if (ch === 44 /* , */ && depth === 0) {
      out.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(value.slice(start).trim());
  return out;
}

export interface HeaderField {
  /** Name as it appeared on the wire (or as we created it). */
  name: string;
  /** Lower-case long form, used for lookups. */
  key: string;
  /** Value with folding (CRLF + LWS) replaced by a single space and ends trimmed. */
  value: string;
}

/** Ordered header list with case-insensitive, compact-form-aware access. */
export class Headers {
  readonly fields: HeaderField[] = [];

  constructor(fields?: Iterable<[string, string]>) {
    if (fields) for (const [n, v] of fields) this.append(n, v);
  }

  append(name: string, value: string): this {
    this.fields.push({ name, key: headerKey(name), value });
    return this;
  }

  /** Insert before the first existing field (used for Via and Record-Route). */
  prepend(name: string, value: string): this {
    this.fields.unshift({ name, key: headerKey(name), value });
    return this;
  }

  /** Replace every field of this name with one field. */
  set(name: string, value: string): this {
    const key = headerKey(name);
    const idx = this.fields.findIndex((f) => f.key === key);
    const kept = this.fields.filter((f) => f.key !== key);
    this.fields.length = 0;
    this.fields.push(...kept);
    const field = { name: canonicalName(name), key, value };
    if (idx < 0 || idx > this.fields.length) this.fields.push(field);
    else this.fields.splice(idx, 0, field);
    return this;
  }

  remove(name: string): this {
    const key = headerKey(name);
    for (let i = this.fields.length - 1; i >= 0; i--) if (this.fields[i]!.key === key) this.fields.splice(i, 1);
    return this;
  }

  has(name: string): boolean {
    const key = headerKey(name);
    return this.fields.some((f) => f.key === key);
  }

  /** First field's raw value. */
  get(name: string): string | undefined {
    const key = headerKey(name);
    for (const f of this.fields) if (f.key === key) return f.value;
    return undefined;
  }

  /** Every raw field value of this name, in order (not split at commas). */
  getRaw(name: string): string[] {
    const key = headerKey(name);
    const out: string[] = [];
    for (const f of this.fields) if (f.key === key) out.push(f.value);
    return out;
  }

  /** Every element of a list header, split at top-level commas, in order. */
  getList(name: string): string[] {
    const out: string[] = [];
    for (const raw of this.getRaw(name)) for (const el of splitList(raw)) if (el !== '') out.push(el);
    return out;
  }

  /** Number of header lines of this name. */
  count(name: string): number {
    const key = headerKey(name);
    let n = 0;
    for (const f of this.fields) if (f.key === key) n++;
    return n;
  }

  clone(): Headers {
    const h = new Headers();
    for (const f of this.fields) h.fields.push({ ...f });
    return h;
  }
}

interface MessageBase {
  version: string;
  headers: Headers;
  /** Body bytes exactly as received (multipart bodies are kept whole). */
  body: Buffer;
}

export interface SipRequest extends MessageBase {
  kind: 'request';
  method: string;
  /** Request-URI text as received. */
  uri: string;
}

export interface SipResponse extends MessageBase {
  kind: 'response';
  status: number;
  reason: string;
}

export type SipMessage = SipRequest | SipResponse;

export type Transport = 'udp' | 'tcp' | 'tls';

/** Where a message came from, or where it goes. */
export interface Peer {
  transport: Transport;
  address: string;
  port: number;
  /** Local socket the message arrived on / should leave from. */
  localAddress?: string;
  localPort?: number;
}

export function isRequest(m: SipMessage): m is SipRequest {
  return m.kind === 'request';
}

export const EMPTY = Buffer.alloc(0);

export function request(method: string, uri: string, headers: Headers = new Headers(), body: Buffer = EMPTY): SipRequest {
  return { kind: 'request', method, uri, version: 'SIP/2.0', headers, body };
}

export function response(status: number, reason: string, headers: Headers = new Headers(), body: Buffer = EMPTY): SipResponse {
  return { kind: 'response', status, reason, version: 'SIP/2.0', headers, body };
}

/** Standard reason phrases for the responses we originate. */
export const REASONS: Record<number, string> = {
  100: 'Trying', 180: 'Ringing', 181: 'Call Is Being Forwarded', 182: 'Queued', 183: 'Session Progress',
  200: 'OK', 202: 'Accepted', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 406: 'Not Acceptable', 407: 'Proxy Authentication Required', 408: 'Request Timeout',
  413: 'Request Entity Too Large', 415: 'Unsupported Media Type', 416: 'Unsupported URI Scheme',
  420: 'Bad Extension', 421: 'Extension Required', 422: 'Session Interval Too Small', 480: 'Temporarily Unavailable',
  481: 'Call/Transaction Does Not Exist', 482: 'Loop Detected', 483: 'Too Many Hops', 486: 'Busy Here',
  487: 'Request Terminated', 488: 'Not Acceptable Here', 491: 'Request Pending', 500: 'Server Internal Error',
  501: 'Not Implemented', 503: 'Service Unavailable', 504: 'Server Time-out', 505: 'Version Not Supported',
  513: 'Message Too Large', 603: 'Decline',
};
