// Client side of HTTP Digest authentication as used by SIP (RFC 3261 section 22, RFC 2617,
// RFC 7616): parse WWW-Authenticate / Proxy-Authenticate challenges and build the matching
// Authorization / Proxy-Authorization credentials.

import { createHash, randomBytes } from 'node:crypto';
import type { Headers } from './message.js';

export interface DigestChallenge {
  realm: string;
  nonce: string;
  opaque?: string;
  /** As sent by the server (e.g. `MD5`, `sha-256-sess`); absent means MD5. */
  algorithm?: string;
  /** Lower-cased qop options offered (`auth`, `auth-int`); absent means RFC 2069 mode. */
  qop?: string[];
  stale?: boolean;
}

export interface Credentials {
  username: string;
  password: string;
  /** When set, these credentials only answer challenges for exactly this realm. */
  realm?: string;
}

export interface AuthorizeOptions {
  challenge: DigestChallenge;
  credentials: Credentials;
  method: string;
  /** The digest-uri: the Request-URI of the request being authorised. */
  uri: string;
  /** Message body, hashed when qop=auth-int is used. */
  body?: Buffer;
  /** Nonce count (1 for the first use of a nonce). */
  nc: number;
  /** Client nonce; generated when needed and not given. */
  cnonce?: string;
}

/** Thrown by `authorize` for a challenge it cannot answer (unknown algorithm or qop). */
export class DigestError extends Error {
  override name = 'DigestError';
}

interface Algorithm {
  /** Name written in the credentials. */
  name: string;
  /** node:crypto hash name. */
  hash: string;
  sess: boolean;
}

const ALGORITHMS: Record<string, Algorithm> = {
  'md5': { name: 'MD5', hash: 'md5', sess: false },
  'md5-sess': { name: 'MD5-sess', hash: 'md5', sess: true },
  'sha-256': { name: 'SHA-256', hash: 'sha256', sess: false },
  'sha-256-sess': { name: 'SHA-256-sess', hash: 'sha256', sess: true },
  'sha-512-256': { name: 'SHA-512-256', hash: 'sha512-256', sess: false },
  'sha-512-256-sess': { name: 'SHA-512-256-sess', hash: 'sha512-256', sess: true },
};

function algorithmOf(challenge: DigestChallenge): Algorithm | undefined {
  return ALGORITHMS[(challenge.algorithm ?? 'MD5').toLowerCase()];
}

/** The qop we would use for a challenge: `auth` preferred, `null` for RFC 2069 mode, undefined if none usable. */
function qopOf(challenge: DigestChallenge): 'auth' | 'auth-int' | null | undefined {
  if (challenge.qop === undefined || challenge.qop.length === 0) return null;
  if (challenge.qop.includes('auth')) return 'auth';
  if (challenge.qop.includes('auth-int')) return 'auth-int';
  return undefined;
}

/** True when `authorize` can answer this challenge (supported algorithm and qop). */
export function isSupported(challenge: DigestChallenge): boolean {
  return algorithmOf(challenge) !== undefined && qopOf(challenge) !== undefined;
}

// ---------------------------------------------------------------------------------------------
// Parsing

const TOKEN = /^[A-Za-z0-9\-.!%*_+`'~]+$/;
const PARAM = /^([A-Za-z0-9\-.!%*_+`'~]+)[ \t\r\n]*=[ \t\r\n]*([^]*)$/;
const SCHEME = /^([A-Za-z0-9\-.!%*_+`'~]+)(?:[ \t\r\n]+([^]*))?$/;

/** Split at commas outside quoted strings. Returns null on an unterminated quoted string. */
function splitTopLevel(value: string): string[] | null {
  const out: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      out.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  if (quoted) return null;
  out.push(value.slice(start).trim());
  return out;
}

/** Value of an auth-param: a quoted-string (unescaped) or a token. Null when malformed. */
function paramValue(raw: string): string | null {
  const v = raw.trim();
  if (v.startsWith('"')) {
    let out = '';
    for (let i = 1; i < v.length; i++) {
      const ch = v[i]!;
      if (ch === '\\') {
        i++;
        if (i >= v.length) return null;
        out += v[i];
      } else if (ch === '"') {
        return i === v.length - 1 ? out : null;
      } else out += ch;
    }
    return null;
  }
  // Strictly a token; tolerate other unquoted values (e.g. a base64 nonce) from sloppy servers.
  return TOKEN.test(v) || /^[^\s"\\]+$/.test(v) ? v : null;
}

interface RawChallenge {
  scheme: string;
  params: Map<string, string>;
  valid: boolean;
}

/** Split a header value into its challenges (`scheme param=value, ..., scheme2 ...`). */
function parseRawChallenges(headerValue: string): RawChallenge[] {
  const elements = splitTopLevel(headerValue);
  if (!elements) return [];
  const out: RawChallenge[] = [];
  let current: RawChallenge | undefined;
  const addParam = (name: string, raw: string): void => {
    if (!current) return;
    const value = paramValue(raw);
    if (value === null) {
      current.valid = false;
      return;
    }
    const key = name.toLowerCase();
    if (current.params.has(key)) current.valid = false; // RFC 7235: each param at most once
    else current.params.set(key, value);
  };
  for (const el of elements) {
    if (el === '') continue;
    const param = PARAM.exec(el);
    if (param) {
      addParam(param[1]!, param[2]!);
      continue;
    }
    const scheme = SCHEME.exec(el);
    if (!scheme) {
      if (current) current.valid = false;
      continue;
    }
    current = { scheme: scheme[1]!, params: new Map(), valid: true };
    out.push(current);
    const rest = scheme[2]?.trim();
    if (rest) {
      const first = PARAM.exec(rest);
      if (first) addParam(first[1]!, first[2]!);
      else if (current.scheme.toLowerCase() === 'digest') current.valid = false;
      // else: token68 of another scheme (e.g. Negotiate); irrelevant here.
    }
  }
  return out;
}

function toDigest(raw: RawChallenge): DigestChallenge | null {
  if (!raw.valid || raw.scheme.toLowerCase() !== 'digest') return null;
  const p = raw.params;
  const realm = p.get('realm');
  const nonce = p.get('nonce');
  if (realm === undefined || nonce === undefined) return null;
  const challenge: DigestChallenge = { realm, nonce };
  const opaque = p.get('opaque');
  if (opaque !== undefined) challenge.opaque = opaque;
  const algorithm = p.get('algorithm');
  if (algorithm !== undefined) challenge.algorithm = algorithm;
  const qop = p.get('qop');
  if (qop !== undefined) {
    const list = qop.split(',').map((q) => q.trim().toLowerCase()).filter((q) => q !== '');
    if (list.length > 0) challenge.qop = list;
  }
  const stale = p.get('stale');
  if (stale !== undefined) challenge.stale = stale.toLowerCase() === 'true';
  return challenge;
}

/**
 * Every Digest challenge in one WWW-Authenticate / Proxy-Authenticate value, in order.
 * Challenges of other schemes and malformed Digest challenges are skipped.
 */
export function parseChallenges(headerValue: string): DigestChallenge[] {
  const out: DigestChallenge[] = [];
  for (const raw of parseRawChallenges(headerValue)) {
    const c = toDigest(raw);
    if (c) out.push(c);
  }
  return out;
}

/**
 * Parse a `Digest realm="x", nonce="y", ...` challenge. Returns the first Digest challenge in
 * the value, or null when there is none (other scheme, missing realm/nonce, malformed).
 */
export function parseChallenge(headerValue: string): DigestChallenge | null {
  return parseChallenges(headerValue)[0] ?? null;
}

// ---------------------------------------------------------------------------------------------
// Computing credentials

function hex(hash: string, data: string | Buffer): string {
  return createHash(hash).update(data).digest('hex');
}

function quote(s: string): string {
  return '"' + s.replace(/[\\"]/g, (c) => '\\' + c) + '"';
}

/** A fresh client nonce (128 random bits, hex). */
export function makeCnonce(): string {
  return randomBytes(16).toString('hex');
}

/**
 * Build the full credentials value (`Digest username="..", realm="..", ...`) answering one
 * challenge. qop `auth` is preferred over `auth-int`; without qop the RFC 2069 form is used.
 * Throws DigestError for an unsupported algorithm or qop.
 */
export function authorize(opts: AuthorizeOptions): string {
  const { challenge, credentials, method, uri } = opts;
  const alg = algorithmOf(challenge);
  if (!alg) throw new DigestError(`unsupported digest algorithm ${challenge.algorithm ?? ''}`);
  const qop = qopOf(challenge);
  if (qop === undefined) throw new DigestError(`unsupported qop ${challenge.qop?.join(',') ?? ''}`);
  if (!Number.isInteger(opts.nc) || opts.nc < 1 || opts.nc > 0xffffffff) throw new DigestError(`bad nonce count ${opts.nc}`);
  const H = (data: string | Buffer): string => hex(alg.hash, data);
  const needCnonce = qop !== null || alg.sess;
  const cnonce = needCnonce ? (opts.cnonce ?? makeCnonce()) : undefined;
  const nc = opts.nc.toString(16).padStart(8, '0');

  let ha1 = H(`${credentials.username}:${challenge.realm}:${credentials.password}`);
  if (alg.sess) ha1 = H(`${ha1}:${challenge.nonce}:${cnonce!}`);
  const ha2 = qop === 'auth-int'
    ? H(`${method}:${uri}:${H(opts.body ?? Buffer.alloc(0))}`)
    : H(`${method}:${uri}`);
  const response = qop === null
    ? H(`${ha1}:${challenge.nonce}:${ha2}`)
    : H(`${ha1}:${challenge.nonce}:${nc}:${cnonce!}:${qop}:${ha2}`);

  const parts = [
    `username=${quote(credentials.username)}`,
    `realm=${quote(challenge.realm)}`,
    `nonce=${quote(challenge.nonce)}`,
    `uri=${quote(uri)}`,
    `response=${quote(response)}`,
    `algorithm=${alg.name}`,
  ];
  if (cnonce !== undefined) parts.push(`cnonce=${quote(cnonce)}`);
  if (qop !== null) parts.push(`nc=${nc}`, `qop=${qop}`);
  if (challenge.opaque !== undefined) parts.push(`opaque=${quote(challenge.opaque)}`);
  return 'Digest ' + parts.join(', ');
}

// ---------------------------------------------------------------------------------------------
// Session: answering 401/407 responses for one request (and its authenticated retries)

export interface DigestAnswer {
  header: 'Authorization' | 'Proxy-Authorization';
  value: string;
}

export interface DigestRequestInfo {
  method: string;
  uri: string;
  body?: Buffer;
}

export interface DigestSessionOptions {
  /**
   * Most answers given for one realm over the session's life (default 3). A backstop for
   * servers that reject wrong credentials with a fresh nonce (not marked stale) each time,
   * which the same-nonce guard alone would not catch.
   */
  maxAnswersPerRealm?: number;
  /** Client nonce source (tests). */
  cnonce?: () => string;
}

function pickCredentials(realm: string, credentials: Credentials | readonly Credentials[]): Credentials | undefined {
  const list: readonly Credentials[] = Array.isArray(credentials) ? credentials : [credentials as Credentials];
  return list.find((c) => c.realm === realm) ?? list.find((c) => c.realm === undefined);
}

/**
 * Answers 401/407 challenges for one outgoing request and its retries. Use one session per
 * original request (a new INVITE, REGISTER, ...), sharing it across the re-sends that carry
 * credentials. Keeps nonce counts per (realm, nonce) and refuses to loop.
 */
export class DigestSession {
  private readonly nonceCounts = new Map<string, number>();
  private readonly answered = new Set<string>();
  private readonly perRealm = new Map<string, number>();
  private readonly maxPerRealm: number;
  private readonly cnonce: () => string;

  constructor(opts: DigestSessionOptions = {}) {
    this.maxPerRealm = opts.maxAnswersPerRealm ?? 3;
    this.cnonce = opts.cnonce ?? makeCnonce;
  }

  /** Nonce count used for the last answer to (realm, nonce); 0 when never used. */
  nonceCount(realm: string, nonce: string): number {
    return this.nonceCounts.get(key(realm, nonce)) ?? 0;
  }

  /**
   * Credentials for every challenge in a 401 (WWW-Authenticate → Authorization) or 407
   * (Proxy-Authenticate → Proxy-Authorization) response; both kinds are answered when a
   * forking proxy aggregated them. For several challenges of the same realm (e.g. SHA-256 and
   * MD5) only the first supported one is answered (RFC 7616 section 3.7).
   *
   * Returns null — the caller then treats the 401/407 as final — when there is no usable
   * challenge or credentials, or when a challenge repeats one (same realm and nonce, not
   * stale) already answered in this session: the credentials were rejected.
   */
  answer(
    headers: Headers,
    request: DigestRequestInfo,
    credentials: Credentials | readonly Credentials[],
  ): DigestAnswer[] | null {
    const kinds: [string, DigestAnswer['header']][] = [
      ['WWW-Authenticate', 'Authorization'],
      ['Proxy-Authenticate', 'Proxy-Authorization'],
    ];
    const plan: { header: DigestAnswer['header']; challenge: DigestChallenge; creds: Credentials }[] = [];
    const seenRealms = new Set<string>();
    for (const [challengeHeader, header] of kinds) {
      for (const raw of headers.getRaw(challengeHeader)) {
        for (const challenge of parseChallenges(raw)) {
          const realmKey = header + '\0' + challenge.realm;
          if (seenRealms.has(realmKey) || !isSupported(challenge)) continue;
          const creds = pickCredentials(challenge.realm, credentials);
          if (!creds) continue;
          seenRealms.add(realmKey);
          const k = key(challenge.realm, challenge.nonce);
          if (this.answered.has(k) && challenge.stale !== true) return null; // rejected: loop guard
          if ((this.perRealm.get(challenge.realm) ?? 0) >= this.maxPerRealm) return null;
          plan.push({ header, challenge, creds });
        }
      }
    }
    if (plan.length === 0) return null;
    return plan.map(({ header, challenge, creds }) => {
      const k = key(challenge.realm, challenge.nonce);
      const nc = (this.nonceCounts.get(k) ?? 0) + 1;
      this.nonceCounts.set(k, nc);
      this.answered.add(k);
      this.perRealm.set(challenge.realm, (this.perRealm.get(challenge.realm) ?? 0) + 1);
      const value = authorize({
        challenge, credentials: creds, method: request.method, uri: request.uri, body: request.body,
        nc, cnonce: this.cnonce(),
      });
      return { header, value };
    });
  }
}

function key(realm: string, nonce: string): string {
  return realm + '\0' + nonce;
}
