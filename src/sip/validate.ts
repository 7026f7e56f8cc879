// Checks a UAS / B2BUA applies to a successfully parsed message before any transaction or
// dialog logic sees it (RFC 3261 8.2, 16.3; RFC 4475 section 3). Method-level decisions
// (405, 415, 501) are the endpoint's, not made here.
import { Headers, canonicalName, splitList, type SipRequest, type SipResponse } from './message.js';
import { parseCSeq, parseMaxForwards, parseNameAddr, parseUri, parseVia, tagOf } from './grammar.js';

export interface Rejection {
  status: number;
  reason: string;
  /** Extra headers for the error response (Unsupported for 420). */
  headers?: [string, string][];
}

export interface ValidateOptions {
  /** Option tags we implement (lower-case); Require listing others gets 420. */
  supported: string[];
  /** Methods the endpoint implements; unknown methods are left to the endpoint (501 + Allow). */
  allowedMethods: string[];
}

const REQUIRED = ['call-id', 'from', 'to', 'cseq'];
const AT_MOST_ONCE = ['max-forwards', 'content-length', 'content-type'];

function bad(reason: string): Rejection {
  return { status: 400, reason };
}

/** The first reason to reject the request, or null when it may be processed. */
export function validateRequest(req: SipRequest, opts: ValidateOptions): Rejection | null {
  const h = req.headers;
  if (req.version.toUpperCase() !== 'SIP/2.0') return { status: 505, reason: `Unsupported SIP version ${req.version}` };

  // Counted per header line: From/To values may carry unquoted commas (RFC 4475 baddn).
  for (const key of REQUIRED) {
    const n = h.count(key);
    if (n === 0) return bad(`Missing ${canonicalName(key)} header`);
    if (n > 1) return bad(`Multiple ${canonicalName(key)} headers`);
  }
  for (const key of AT_MOST_ONCE) if (h.count(key) > 1) return bad(`Multiple ${canonicalName(key)} headers`);
  if (h.get('call-id') === '') return bad('Empty Call-ID header');

  // Raw lines, not getList: empty elements (`Via: a;;,;,,`, badinv01) must be seen.
  const vias = h.getRaw('via');
  if (vias.length === 0) return bad('Missing Via header');
  for (const raw of vias) {
    for (const el of splitList(raw)) if (el === '' || !parseVia(el)) return bad('Malformed Via header');
  }
  for (const raw of h.getRaw('contact')) {
    for (const el of splitList(raw)) if (el !== '*' && !parseNameAddr(el)) return bad('Malformed Contact header');
  }

  const cseq = parseCSeq(h.get('cseq'));
  if (!cseq) return bad('Malformed CSeq header');
  if (cseq.method !== req.method) return bad('CSeq method does not match');

  const mf = h.get('max-forwards');
  if (mf !== undefined && parseMaxForwards(mf) === null) return bad('Malformed Max-Forwards header');

  if (!parseNameAddr(h.get('from')!)) return bad('Malformed From header');
  if (!parseNameAddr(h.get('to')!)) return bad('Malformed To header');

  const ruri = parseUri(req.uri);
  if (!ruri) return bad('Malformed Request-URI');
  if (ruri.scheme !== 'sip' && ruri.scheme !== 'sips' && ruri.scheme !== 'tel') {
    return { status: 416, reason: `Unsupported URI scheme ${ruri.scheme}` };
  }

  // ACK cannot be answered and CANCEL must not be refused over its INVITE's extensions.
  if (req.method !== 'ACK' && req.method !== 'CANCEL' && (h.has('require') || h.has('proxy-require'))) {
    const supported = new Set(opts.supported.map((t) => t.toLowerCase()));
    const seen = new Set<string>();
    const names: string[] = []; // as the request spelled them
    const collect = (name: string, proxy: boolean): void => {
      for (const tag of h.getList(name)) {
        const key = tag.toLowerCase();
        if (seen.has(key) || (!proxy && supported.has(key))) continue;
        seen.add(key);
        names.push(tag);
      }
    };
    collect('require', false);
    // We are not a proxy: every Proxy-Require tag names something we do not do (bext01).
    collect('proxy-require', true);
    if (names.length > 0) return { status: 420, reason: 'Bad Extension', headers: [['Unsupported', names.join(', ')]] };
  }
  return null;
}

/** Reason to drop a response (responses are never answered), or null when usable. */
export function validateResponse(res: SipResponse): string | null {
  const h = res.headers;
  if (!Number.isInteger(res.status) || res.status < 100 || res.status > 699) return 'status code out of range';
  if (res.version.toUpperCase() !== 'SIP/2.0') return 'unsupported SIP version';
  const top = h.getList('via')[0];
  if (!top) return 'missing Via';
  if (!parseVia(top)) return 'malformed Via';
  if (!h.get('call-id')) return 'missing Call-ID';
  if (!h.has('from')) return 'missing From';
  if (!h.has('to')) return 'missing To';
  if (!h.has('cseq')) return 'missing CSeq';
  if (!parseCSeq(h.get('cseq'))) return 'malformed CSeq';
  return null;
}

/**
 * Via (every line, in order), From, To (with `;tag=toTag` added when it has none), Call-ID and
 * CSeq copied for an error response (RFC 3261 8.2.6.2). Never throws: works from whatever a
 * broken request carried, values copied verbatim.
 */
export function errorResponseHeaders(req: { headers: Headers }, toTag?: string): Headers {
  const src = req.headers;
  const out = new Headers();
  for (const f of src.fields) if (f.key === 'via') out.append('Via', f.value);
  const from = src.get('from');
  if (from !== undefined) out.append('From', from);
  const to = src.get('to');
  if (to !== undefined) out.append('To', toTag && to !== '' && !tagOf(to) ? `${to};tag=${toTag}` : to);
  const callId = src.get('call-id');
  if (callId !== undefined) out.append('Call-ID', callId);
  const cseq = src.get('cseq');
  if (cseq !== undefined) out.append('CSeq', cseq);
  return out;
}
