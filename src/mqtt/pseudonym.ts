// Caller numbers never leave the bridge in clear over MQTT (unless the config says so): they are
// replaced by a keyed pseudonym, HMAC-SHA256 under a random key drawn at each process start.
// The same number gives the same pseudonym for the life of the process (so a technician can
// follow one caller through the events), and nothing links pseudonyms across restarts.
import { createHmac, randomBytes } from 'node:crypto';

/** Keys whose value is a caller's number or address: always pseudonymised (strings and numbers). */
export const CALLER_KEYS: ReadonlySet<string> = new Set(['callerNumber', 'fromNumber', 'paiNumber', 'number', 'from', 'caller']);

/**
 * Keys whose string values (directly, or as elements of an array) name our own targets and
 * endpoints (region, call-taker and trunk URIs, message endpoint URLs), never a caller: they are
 * left as they are even when they look like a number.
 */
export const TARGET_KEYS: ReadonlySet<string> = new Set(['target', 'targets', 'uri', 'url', 'endpoint', 'requestUri']);

/** A whole string that is a phone number: 6–15 digits, optional + or 00, single spaces allowed. */
const PHONE = /^(?:\+|00)?\d(?: ?\d){5,14}$/;
/** A sip:, sips: or tel: URI whose user part is numeric, with its host and parameters. */
const NUMERIC_URI = /\b(?:sips?|tel):\+?\d[\d\-.()]*(?=$|[@;?>,\s"'])(?:@[^\s<>,;?"']*)?(?:[;?][^\s<>,"']*)?/gi;
/** A +E.164 number inside a longer text. */
const PLUS_NUMBER = /(?<![\w+])\+\d(?: ?\d){5,14}(?!\d)/g;
/** Withheld numbers: nothing personal to hide, and useful to see. */
const ANONYMOUS = /^(?:sips?:)?anonymous(?:@|$)/i;
/** An ISO 8601 date or time (a period's `from`, say): never a caller. */
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

export class Pseudonymiser {
  private readonly key: Buffer;

  /** `key`: for tests only; by default a random 32-byte key, new at every process start. */
  constructor(key?: Buffer) {
    this.key = key ?? randomBytes(32);
  }

  /**
   * `p:` and 12 hex digits. Forms of one number give one pseudonym: `+4512345678`,
   * `004512345678`, `+45 12 34 56 78`, `sip:+4512345678@host;user=phone`, `tel:+45-12345678`.
   */
  of(value: string | number): string {
    const mac = createHmac('sha256', this.key).update(normalise(String(value))).digest('hex');
    return `p:${mac.slice(0, 12)}`;
  }
}

/** The canonical form hashed: a number's digits (with +), else the trimmed lower-case string. */
export function normalise(value: string): string {
  let s = value.trim();
  const uri = /^(?:sips?|tel):([^@;?]*)/i.exec(s);
  if (uri) s = uri[1]!;
  const digits = s.replace(/[\s\-.()]/g, '');
  if (/^\+?\d+$/.test(digits)) return digits.startsWith('00') ? `+${digits.slice(2)}` : digits;
  return value.trim().toLowerCase();
}

function scrubString(s: string, pseudo: Pseudonymiser): string {
  if (PHONE.test(s)) return pseudo.of(s);
  if (!/\d/.test(s)) return s;
  return s.replace(NUMERIC_URI, (m) => pseudo.of(m)).replace(PLUS_NUMBER, (m) => pseudo.of(m));
}

function callerValue(v: unknown, pseudo: Pseudonymiser, seen: WeakSet<object>): unknown {
  if (typeof v === 'string') return v === '' || ANONYMOUS.test(v.trim()) || ISO_DATE.test(v) ? v : pseudo.of(v);
  if (typeof v === 'number' || typeof v === 'bigint') return pseudo.of(String(v));
  if (Array.isArray(v)) return v.map((x) => callerValue(x, pseudo, seen));
  return walk(v, pseudo, seen, null);
}

function walk(v: unknown, pseudo: Pseudonymiser, seen: WeakSet<object>, key: string | null): unknown {
  if (typeof v === 'string') return key !== null && TARGET_KEYS.has(key) ? v : scrubString(v, pseudo);
  if (typeof v === 'bigint') return String(v);
  if (v === null || typeof v !== 'object') return typeof v === 'function' || typeof v === 'symbol' ? undefined : v;
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
  if (Buffer.isBuffer(v) || ArrayBuffer.isView(v)) return `[${v.byteLength} bytes]`;
  if (seen.has(v)) return '[circular]';
  seen.add(v);
  try {
    if (Array.isArray(v)) return v.map((x) => walk(x, pseudo, seen, key));
    if (v instanceof Map) return walk(Object.fromEntries(v), pseudo, seen, key);
    if (v instanceof Set) return walk([...v], pseudo, seen, key);
    if (v instanceof Error) return scrubString(v.message, pseudo);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const y = CALLER_KEYS.has(k) ? callerValue(x, pseudo, seen) : walk(x, pseudo, seen, k);
      if (y !== undefined) out[k] = y;
    }
    return out;
  } finally {
    seen.delete(v);
  }
}

/**
 * A deep copy of `value` fit for publishing, with caller numbers pseudonymised:
 * - values under CALLER_KEYS (any non-empty string or number, except anonymous and ISO dates);
 * - any other string that is a phone number as a whole;
 * - sip:/sips:/tel: URIs with a numeric user part, and +E.164 numbers, inside any other string
 *   (the URI with its host and parameters becomes the pseudonym);
 * except strings under TARGET_KEYS, which name our own targets and endpoints.
 * Functions and symbols are dropped, Dates become ISO strings, Maps objects, Sets arrays.
 * `pseudo` null (config `mqtt.pseudonymise: false`): `value` is returned as it is.
 */
export function scrub<T>(value: T, pseudo: Pseudonymiser | null): T {
  if (pseudo === null) return value;
  return walk(value, pseudo, new WeakSet(), null) as T;
}
