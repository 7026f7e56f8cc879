// Loads and validates the YAML configuration. Every problem is reported (not only the first),
// each with the key path an operator can find in the file (`regions[0].ringTimerS`) and, when the
// YAML says where it is, its line. Used by `check-config`, `run` and SIGHUP reloads.

import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document } from 'yaml';
import { z } from 'zod';
import { configSchema, type Config } from './schema.js';
import { applySecretFiles, readSecretFiles } from './secrets.js';

export interface ConfigError {
  /** Key path (`regions[0].ringTimerS`, `routing.defaultRegion`), `line:col` for YAML syntax errors, '' for the whole file. */
  path: string;
  /** Why it is wrong, in operator words. */
  message: string;
  /** 1-based line in the file, when known (not set for YAML syntax errors: their path says it). */
  line?: number;
}

export type ConfigResult = { ok: true; config: Config } | { ok: false; errors: ConfigError[] };

type Path = (string | number)[];

/** `['regions', 0, 'ringTimerS']` → `regions[0].ringTimerS`. */
export function formatConfigPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else {
      const key = String(p);
      out += /^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(key) ? (out === '' ? key : `.${key}`) : `[${JSON.stringify(key)}]`;
    }
  }
  return out;
}

/** One line per error: `FILE: KEY: reason` (`FILE: reason` for the whole file). */
export function formatConfigErrors(file: string, errors: readonly ConfigError[]): string {
  return errors
    .map((e) => {
      const where = e.line !== undefined ? ` (line ${e.line})` : '';
      return e.path === '' ? `${file}: ${e.message}${where}` : `${file}: ${e.path}: ${e.message}${where}`;
    })
    .join('\n');
}

/** Reads, parses and validates a config file; secret files are read relative to its directory. */
export async function loadConfig(path: string): Promise<ConfigResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return { ok: false, errors: [{ path: '', message: `cannot read config file: ${(err as Error).message}` }] };
  }
  return parseConfigText(text, dirname(resolve(path)));
}

/** Parses and validates YAML text; `baseDir` is where relative secret files are looked up. */
export function parseConfigText(text: string, baseDir: string): ConfigResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) {
    return {
      ok: false,
      errors: problems.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        return { path: `${line}:${col}`, message: firstLine(e.message) };
      }),
    };
  }
  if (doc.contents === null) {
    return { ok: false, errors: [{ path: '', message: 'the file holds no configuration (it is empty or only comments)' }] };
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { ok: false, errors: aliasErrors(doc, lineCounter) ?? [{ path: '', message: firstLine((err as Error).message) }] };
  }
  return validateConfig(raw, { baseDir, source: { doc, text, lineCounter } });
}

/** `*1` unquoted is a YAML alias: say so, with its position. */
function aliasErrors(doc: Document, lineCounter: LineCounter): ConfigError[] | undefined {
  const errors: ConfigError[] = [];
  visit(doc, {
    Alias(_key, node) {
      if (node.resolve(doc) !== undefined) return;
      const pos = node.range ? lineCounter.linePos(node.range[0]) : undefined;
      errors.push({
        path: pos ? `${pos.line}:${pos.col}` : '',
        message: `unresolved YAML alias *${node.source}; a value starting with * must be quoted, for example "*${node.source}"`,
      });
    },
  });
  return errors.length > 0 ? errors : undefined;
}

export interface ValidateOptions {
  /** Directory for relative `passwordFile`s; default: the current directory. */
  baseDir?: string;
  /** The YAML the value came from, to give line numbers and quoting hints. */
  source?: { doc: Document; text: string; lineCounter: LineCounter };
}

/** Validates an already-parsed config value (YAML/JSON data or a test's object). */
export function validateConfig(raw: unknown, opts: ValidateOptions = {}): ConfigResult {
  const result = configSchema.safeParse(raw, { reportInput: true });
  const secrets = readSecretFiles(raw, opts.baseDir ?? process.cwd());
  const issues: { path: Path; message: string }[] = [];
  if (!result.success) {
    for (const issue of result.error.issues) issues.push(...describeIssue(issue, opts.source));
  }
  for (const e of secrets.errors) issues.push(e);
  if (issues.length > 0 || !result.success) {
    const errors: ConfigError[] = issues.map((i) => {
      const line = opts.source ? locate(opts.source, i.path)?.line : undefined;
      return line === undefined ? { path: formatConfigPath(i.path), message: i.message } : { path: formatConfigPath(i.path), message: i.message, line };
    });
    // In file order where the file says where (stable: same-line errors keep schema order).
    errors.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
    return { ok: false, errors };
  }
  const config = result.data;
  applySecretFiles(config, secrets.files);
  return { ok: true, config };
}

// ---------------------------------------------------------------------------------------------
// Issue messages

type Issue = z.core.$ZodIssue;

function firstLine(s: string): string {
  return s.split('\n')[0]?.trim() ?? s;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `the ${typeof v} ${String(v)}`;
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a mapping (key: value)',
  array: 'a list',
  null: 'null',
};

function describeIssue(issue: Issue, source: ValidateOptions['source']): { path: Path; message: string }[] {
  const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({ path: [...path, key], message: unknownKeyMessage(key, allowedKeysAt(path)) }));
    case 'invalid_type': {
      if (input === undefined) return [{ path, message: 'required key is missing' }];
      const expected = EXPECTED[issue.expected] ?? issue.expected;
      let message = `expected ${expected}, got ${describeValue(input)}`;
      if (issue.expected === 'string' && (typeof input === 'number' || typeof input === 'boolean')) {
        const src = source ? locate(source, path)?.source : undefined;
        message += `; quote it: "${src ?? String(input)}"`;
      }
      return [{ path, message }];
    }
    case 'too_small':
    case 'too_big': {
      const small = issue.code === 'too_small';
      const limit = small ? (issue as { minimum: number | bigint }).minimum : (issue as { maximum: number | bigint }).maximum;
      const inclusive = issue.inclusive !== false;
      const got = input === undefined ? '' : ` (got ${Array.isArray(input) ? `${input.length}` : typeof input === 'string' ? `${input.length} characters` : String(input)})`;
      switch (issue.origin) {
        case 'array':
        case 'set':
          return [{ path, message: `must have ${small ? 'at least' : 'at most'} ${limit} item${limit === 1 ? '' : 's'}${got}` }];
        case 'string':
          if (small && Number(limit) === 1) return [{ path, message: 'must not be empty' }];
          return [{ path, message: `must be ${small ? 'at least' : 'at most'} ${limit} characters long${got}` }];
        default:
          return [{ path, message: `must be ${small ? (inclusive ? '>=' : '>') : inclusive ? '<=' : '<'} ${limit}${got}` }];
      }
    }
    case 'invalid_value':
      return [{ path, message: `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}${input === undefined ? '' : ` (got ${JSON.stringify(input)})`}` }];
    case 'not_multiple_of':
      return [{ path, message: `must be a multiple of ${issue.divisor}` }];
    default:
      return [{ path, message: issue.message }];
  }
}

function unknownKeyMessage(key: string, allowed: string[] | undefined): string {
  if (allowed === undefined || allowed.length === 0) return 'unknown key';
  const near = closest(key, allowed);
  if (near !== undefined) return `unknown key; did you mean "${near}"?`;
  return `unknown key; allowed here: ${allowed.join(', ')}`;
}

function closest(key: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  for (const c of candidates) {
    const d = c.toLowerCase() === key.toLowerCase() ? 0 : levenshtein(key.toLowerCase(), c.toLowerCase());
    if (d < bestDist) {
      best = c;
      bestDist = d;
    }
  }
  const limit = Math.max(1, Math.min(3, Math.floor(key.length / 3)));
  return bestDist <= limit ? best : undefined;
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** Keys of the zod object schema found at `path` (through defaults, nullables, pipes and arrays). */
function allowedKeysAt(path: Path): string[] | undefined {
  interface Def {
    type: string;
    shape?: Record<string, { _zod: { def: Def } }>;
    innerType?: { _zod: { def: Def } };
    in?: { _zod: { def: Def } };
    element?: { _zod: { def: Def } };
  }
  const unwrap = (def: Def): Def => {
    for (;;) {
      const next = def.innerType ?? (def.type === 'pipe' ? def.in : undefined);
      if (next === undefined) return def;
      def = next._zod.def;
    }
  };
  let def = unwrap((configSchema as unknown as { _zod: { def: Def } })._zod.def);
  for (const p of path) {
    if (typeof p === 'number' && def.type === 'array' && def.element) def = unwrap(def.element._zod.def);
    else if (typeof p === 'string' && def.type === 'object' && def.shape?.[p]) def = unwrap(def.shape[p]._zod.def);
    else return undefined;
  }
  return def.type === 'object' && def.shape ? Object.keys(def.shape) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Positions in the YAML

/** Line of the deepest node on `path` (the key's line for mapping entries) and, if the whole path resolved to a scalar, its source text. */
function locate(source: NonNullable<ValidateOptions['source']>, path: Path): { line: number; source?: string } | undefined {
  const { doc, text, lineCounter } = source;
  let node: unknown = doc.contents;
  let offset: number | undefined = (node as { range?: [number, number, number] } | null)?.range?.[0];
  let resolved = true;
  for (const p of path) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((it) => (isScalar(it.key) ? it.key.value : it.key) === p || (isScalar(it.key) && String(it.key.value) === String(p)));
      if (!pair) {
        resolved = false;
        break;
      }
      offset = (isScalar(pair.key) ? pair.key.range?.[0] : undefined) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof p === 'number') {
      const item = node.items[p];
      if (item === undefined) {
        resolved = false;
        break;
      }
      node = item;
      offset = (item as { range?: [number, number, number] }).range?.[0] ?? offset;
    } else {
      resolved = false;
      break;
    }
  }
  if (offset === undefined) return undefined;
  const { line } = lineCounter.linePos(offset);
  if (resolved && isScalar(node) && node.range) return { line, source: text.slice(node.range[0], node.range[1]) };
  return { line };
}
