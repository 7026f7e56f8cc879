// The HMAC keys re-contact flagging hashes caller numbers with. Each key lives in its own file
// (mode 0600, owned by the daemon's user), generated once, e.g.
//
//   openssl rand -hex 32 > /etc/amk-bridge/recontact.key
//
// A file holds either raw bytes or the key as hex or base64 text (one line); either way at
// least 32 bytes of key. A key's id is the first 8 hex digits of its SHA-256, so the id that is
// stored next to each hash (and may be logged) says nothing about the key itself.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface RecontactKey {
  id: string;
  key: Buffer;
}

export interface RecontactKeys {
  current: RecontactKey;
  /** The key before the last rotation: still matched for one window, never hashed with. */
  previous: RecontactKey | null;
}

export const MIN_KEY_BYTES = 32;

/** First 8 hex digits of the key's SHA-256. */
export function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

const HEX = /^(?:[0-9a-fA-F]{2})+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;

/** The key bytes of a file's content: hex text, base64 text, else the raw bytes. */
function decode(raw: Buffer): { key: Buffer; form: string } {
  const isText = raw.every((b) => b === 0x09 || b === 0x0a || b === 0x0d || (b >= 0x20 && b < 0x7f));
  if (isText) {
    const text = raw.toString('ascii').trim();
    if (HEX.test(text)) return { key: Buffer.from(text, 'hex'), form: 'hex text' };
    if (BASE64.test(text)) return { key: Buffer.from(text, 'base64'), form: 'base64 text' };
    if (BASE64URL.test(text)) return { key: Buffer.from(text, 'base64url'), form: 'base64 text' };
    // Other text (a passphrase, a placeholder) is not a generated key.
    throw new Error('holds text that is neither hex nor base64; generate a key with "openssl rand -hex 32"');
  }
  return { key: raw, form: 'raw bytes' };
}

/** Reads and checks one key file; the error names the file and the problem. */
export function readKeyFile(file: string): RecontactKey {
  const fail = (problem: string): never => {
    throw new Error(`re-contact key file "${file}": ${problem}`);
  };
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return fail(code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'cannot be read (permission denied)' : `cannot be read (${(err as Error).message})`);
  }
  if (raw.length === 0) return fail('is empty');
  let decoded: { key: Buffer; form: string };
  try {
    decoded = decode(raw);
  } catch (err) {
    return fail((err as Error).message);
  }
  const { key, form } = decoded;
  if (key.length < MIN_KEY_BYTES) {
    return fail(`key is ${key.length} bytes (${form}); at least ${MIN_KEY_BYTES} are needed, e.g. "openssl rand -hex 32"`);
  }
  // A random 32-byte key has ~28 distinct byte values; a handful means a placeholder (all zeros,
  // a repeated pattern), not a key.
  if (new Set(key).size < 8) return fail('key is not random (too few distinct bytes); generate one with "openssl rand -hex 32"');
  return { id: keyId(key), key };
}

/**
 * The current key and, after a rotation, the previous one. The previous key is only used to
 * recognise sightings hashed before the rotation; drop it one window after rotating.
 */
export function loadRecontactKeys(currentFile: string, previousFile?: string | null): RecontactKeys {
  const current = readKeyFile(currentFile);
  let previous = previousFile ? readKeyFile(previousFile) : null;
  // The same key given twice is one key.
  if (previous && previous.id === current.id && previous.key.equals(current.key)) previous = null;
  return { current, previous };
}
