// Secrets in the configuration: values that may come from separate files (`passwordFile` next to
// `password`) and must never be shown (diagnostics, MQTT bridge/info, logs).

import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';

/**
 * Keys whose values are secrets. A key `<secret>File` next to one of them names a file holding
 * the value (read at load time, relative to the config file's directory).
 */
export const SECRET_KEYS: ReadonlySet<string> = new Set(['password', 'passphrase', 'secret', 'token', 'authorization']);

/** What `redactSecrets` puts in place of a secret. */
export const REDACTED = '***';

type Path = (string | number)[];

export interface SecretFile {
  /** Path of the object holding the keys, e.g. ['regions', 0, 'auth']. */
  objectPath: Path;
  /** The secret key, e.g. 'password'. */
  key: string;
  /** Absolute path of the file. */
  file: string;
  /** File content, trailing newline(s) stripped. */
  value: string;
}

export interface SecretFileError {
  path: Path;
  message: string;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads one secret file: trailing CR/LF stripped; empty is an error. */
export function readSecretFile(file: string): string {
  const text = readFileSync(file, 'utf8').replace(/[\r\n]+$/, '');
  if (text.length === 0) throw new Error(`secret file "${file}" is empty`);
  return text;
}

/**
 * Finds every `<secret>File` key in the (raw or parsed) config and reads the file. Works on any
 * shape, so it can run even when schema validation failed (and report a missing file together
 * with the other errors).
 */
export function readSecretFiles(value: unknown, baseDir: string): { files: SecretFile[]; errors: SecretFileError[] } {
  const files: SecretFile[] = [];
  const errors: SecretFileError[] = [];
  const walk = (v: unknown, path: Path): void => {
    if (Array.isArray(v)) {
      v.forEach((item, i) => walk(item, [...path, i]));
      return;
    }
    if (!isRecord(v)) return;
    for (const [k, child] of Object.entries(v)) {
      if (k.endsWith('File') && SECRET_KEYS.has(k.slice(0, -4)) && typeof child === 'string' && child.length > 0) {
        const file = isAbsolute(child) ? child : resolve(baseDir, child);
        try {
          files.push({ objectPath: path, key: k.slice(0, -4), file, value: readSecretFile(file) });
        } catch (err) {
          errors.push({ path: [...path, k], message: `cannot read secret file: ${(err as Error).message}` });
        }
      } else {
        walk(child, [...path, k]);
      }
    }
  };
  walk(value, []);
  return { files, errors };
}

/**
 * Puts the secrets read by `readSecretFiles` into a parsed config (in place): `<key>` gets the
 * file content and `<key>File` the absolute file path.
 */
export function applySecretFiles(config: unknown, files: readonly SecretFile[]): void {
  for (const f of files) {
    let target: unknown = config;
    for (const p of f.objectPath) target = (target as Record<string | number, unknown> | undefined)?.[p];
    if (!isRecord(target)) continue;
    target[f.key] = f.value;
    target[`${f.key}File`] = f.file;
  }
}

/**
 * A deep copy of `config` with every secret value (keys in SECRET_KEYS) replaced by "***".
 * Empty or null secrets stay as they are (so "no password" is still visible); `...File` paths are kept.
 */
export function redactSecrets<T>(config: T): T {
  const copy = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(copy);
    if (!isRecord(v)) return v;
    const out: Record<string, unknown> = {};
    for (const [k, child] of Object.entries(v)) {
      out[k] = SECRET_KEYS.has(k) && child !== null && child !== undefined && child !== '' ? REDACTED : copy(child);
    }
    return out;
  };
  return copy(config) as T;
}
