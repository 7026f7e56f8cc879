// A request's context (caller number, callback URI, location…) sealed at rest. While a request
// runs, its context sits in `requests.context` so that a restart can still build the message;
// no clear caller number may sit in the database file (or its WAL) meanwhile. The context is
// stored as AES-256-GCM ciphertext under a key that lives in its own file:
//
//   v1:<base64 IV>:<base64 tag>:<base64 ciphertext>
//
// with a fresh random 12-byte IV per write and the request id as additional authenticated data
// (a sealed context copied onto another request does not open). The key file holds exactly 32
// random bytes; it is created (mode 0600) when missing. Contexts written before sealing existed
// are plain JSON text and are still read.

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { closeSync, constants, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export const CONTEXT_KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const VERSION = 'v1';
const CIPHER = 'aes-256-gcm';

/** Whether stored text is a sealed context (any version) rather than legacy plain JSON. */
export function isSealed(text: string): boolean {
  // JSON text never starts with a letter followed by digits and a colon.
  return /^v[0-9]+:/.test(text);
}

/** Seals `plaintext` (the context's JSON text) for the request `requestId`. */
export function sealContext(key: Buffer, plaintext: string, requestId: string): string {
  checkKey(key);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(CIPHER, key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(requestId, 'utf8'));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return `${VERSION}:${iv.toString('base64')}:${cipher.getAuthTag().toString('base64')}:${ct.toString('base64')}`;
}

/**
 * Opens a sealed context of the request `requestId` and returns its JSON text. Throws when the
 * text is not a sealed context this build knows, or does not authenticate (wrong key, another
 * request's context, damaged). The error never contains the sealed data.
 */
export function unsealContext(key: Buffer, sealed: string, requestId: string): string {
  checkKey(key);
  const parts = sealed.split(':');
  if (parts[0] !== VERSION) throw new Error(`unknown context seal version "${(parts[0] ?? '').slice(0, 8)}"`);
  if (parts.length !== 4) throw new Error('malformed sealed context');
  const iv = Buffer.from(parts[1] as string, 'base64');
  const tag = Buffer.from(parts[2] as string, 'base64');
  const ct = Buffer.from(parts[3] as string, 'base64');
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new Error('malformed sealed context');
  const decipher = createDecipheriv(CIPHER, key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(requestId, 'utf8'));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(ct), decipher.final()]).toString('utf8');
  } catch {
    throw new Error('sealed context does not authenticate (another key, or damaged)');
  }
}

function checkKey(key: Buffer): void {
  if (key.length !== CONTEXT_KEY_BYTES) throw new Error(`a context key has ${CONTEXT_KEY_BYTES} bytes (got ${key.length})`);
}

/**
 * Reads the context key from `file`. With `create`, a missing file is created first with 32
 * fresh random bytes, mode 0600, exclusively: two processes starting at once never overwrite
 * each other's key, and both end up with the one that was published first. Throws an error
 * naming the file when it cannot be read or does not hold exactly 32 bytes.
 */
export function loadContextKey(file: string, opts: { create: boolean }): Buffer {
  if (opts.create && !existsSync(file)) createKeyFile(file);
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'cannot be read (permission denied)' : `cannot be read (${(err as Error).message})`;
    throw new Error(`journal context key file "${file}" ${why}`);
  }
  if (raw.length !== CONTEXT_KEY_BYTES) {
    throw new Error(
      `journal context key file "${file}" holds ${raw.length} bytes; it must hold exactly ${CONTEXT_KEY_BYTES} random bytes ` +
        `(remove it to have a new one created at start, or create one with "head -c ${CONTEXT_KEY_BYTES} /dev/urandom > ${file}; chmod 600 ${file}")`,
    );
  }
  return raw;
}

/**
 * Creates the key file when it does not exist. The key is written and fsynced under a private
 * temporary name (O_EXCL) and then published with link(2), which fails if the name exists: a
 * reader never sees a half-written key, and an existing key is never replaced.
 */
function createKeyFile(file: string): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const excl = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
  writeKey(tmp, excl);
  try {
    linkSync(tmp, file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Someone (another start, the operator) was first: theirs stands.
    if (code !== 'EEXIST') {
      // A file system without hard links: create the file itself exclusively instead.
      try {
        writeKey(file, excl);
      } catch (err2) {
        if ((err2 as NodeJS.ErrnoException).code !== 'EEXIST') throw err2;
      }
    }
  } finally {
    unlinkSync(tmp);
  }
  syncDir(dirname(file));
}

function writeKey(path: string, flags: number): void {
  const fd = openSync(path, flags, 0o600);
  try {
    writeSync(fd, randomBytes(CONTEXT_KEY_BYTES));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, constants.O_RDONLY);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Not every platform can fsync a directory; the key file itself is on disk.
  }
}
