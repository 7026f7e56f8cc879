// Lamp device profiles: YAML data files in hardware/profiles/ that say how a serial relay board
// or signal tower is driven (serial settings, byte templates per channel/colour, acknowledgement
// handling, whether it flashes by itself), each citing the vendor manual its bytes come from.
// Adding a device is adding a file: nothing here knows any vendor.
//
// Loading validates everything a driver would otherwise trip over later: unknown keys, missing
// keys for the profile's kind, every template compiles, every channel's bytes fit and differ.
// Errors name the file, the key and (when the YAML says) the line.
//
// The flash rule: mechanical relay boards are never flashed in software (their contacts wear
// out), so a relay asked to flash is switched on; a tower flashes only when `selfFlash` says it
// has its own flasher, otherwise flash is shown as steady on.

import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { compileTemplate, formatHex, isTemplateName, type CompiledTemplate } from './template.js';
import type { LampMode, LampProfile, OutputKey } from './types.js';

// ---------------------------------------------------------------------------------------------
// Schema

const TEMPLATE_HELP =
  'Byte template: hex bytes ("A0 01"), "ASCII text" (escapes \\r \\n \\\\ \\"), {ch}, {ch+N}, {ch-N}, {ch:ascii}, {sum}, {xor}, {name}; see src/lamps/template.ts.';

/** A template string that must compile (checked per key, so one run reports every bad template). */
function template(what: string) {
  return z
    .string()
    .min(1)
    .superRefine((text, ctx) => {
      try {
        compileTemplate(text);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    })
    .describe(`${what} ${TEMPLATE_HELP}`);
}

const LAMP_MODES = ['off', 'on', 'flash'] as const;

const serialSchema = z
  .strictObject({
    baudRate: z.number().int().min(50).max(4_000_000).describe('Line speed in bit/s, as the manual gives it (USB CDC devices ignore it, but it must still be given).'),
    dataBits: z.literal([5, 6, 7, 8]).default(8).describe('Data bits per character (default 8).'),
    parity: z.enum(['none', 'even', 'odd']).default('none').describe('Parity (default none).'),
    stopBits: z.literal([1, 2]).default(1).describe('Stop bits (default 1).'),
  })
  .describe('Serial line settings, from the manual.');

const modesSchema = z
  .strictObject({
    off: template('Bytes for a colour that is off.').optional(),
    on: template('Bytes for a colour that is steadily on.').optional(),
    flash: template('Bytes for a colour the device flashes by itself (only with selfFlash: true).').optional(),
  })
  .describe('tower: the bytes each {<colour>} placeholder of `set` takes, per mode. off and on are required; flash exactly when selfFlash is true.');

const commandsSchema = z
  .strictObject({
    on: template('relay: switch channel {ch} on.').optional(),
    off: template('relay: switch channel {ch} off.').optional(),
    set: template('tower: set every colour at once; one {<colour>} placeholder per colour name.').optional(),
    modes: modesSchema.optional(),
    init: template('Sent once after the port opens (e.g. to select a mode); optional, no placeholders.').optional(),
  })
  .describe('How outputs are switched, as byte templates.');

const ackSchema = z
  .strictObject({
    ack: template('What the device answers when it accepted a command (e.g. "06").'),
    nak: template('What the device answers when it rejected a command (e.g. "15"); the command is sent again.'),
    timeoutMs: z.number().int().min(1).max(60_000).describe('How long to wait for ack or nak before sending the command again.'),
    retries: z.number().int().min(0).max(10).describe('How many times a nak-ed or unanswered command is sent again before it is given up.'),
  })
  .describe('The device acknowledges: wait for ack before the next command; retry on nak or timeout.');

/** The profile file format (strict: unknown keys are errors). Cross-key rules are in `checkProfile`. */
export const profileSchema = z
  .strictObject({
    id: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'lower-case letters, digits and -, starting with a letter or digit')
      .describe('Short unique name of the profile, used in the lamp configuration (e.g. "lcus").'),
    name: z.string().min(1).describe('Human name of the device(s) the profile is for.'),
    manual: z.string().min(10).describe('The vendor manual (title and section) the bytes and serial settings come from.'),
    serial: serialSchema,
    kind: z
      .enum(['relay', 'tower'])
      .describe('relay: mechanical relays, one command per channel, never flashed (flash is shown as on). tower: a signal tower/light set with one command per change.'),
    channels: z.number().int().min(1).max(255).optional().describe('relay: how many channels (1-based, as printed on the board) the profile drives at most.'),
    colours: z
      .array(z.string().refine(isTemplateName, 'colour names are letters, digits and _ (not sum or xor), starting with a letter'))
      .min(1)
      .optional()
      .describe('tower: colour (or buzzer) names; each is a {<colour>} placeholder in commands.set.'),
    selfFlash: z.boolean().describe('The device flashes by itself. Only such devices ever show flash; others show flash as steady on. Relay boards: always false.'),
    commands: commandsSchema,
    ack: ackSchema.nullable().describe('null: the device sends no acknowledgement. Otherwise its ack/nak bytes, timeout and retries.'),
  })
  .describe('A lamp device profile (hardware/profiles/*.yaml).');

// ---------------------------------------------------------------------------------------------
// Errors

export interface ProfileIssue {
  /** The profile file ('' when validating data that came from no file). */
  file: string;
  /** Key path (`commands.on`, `serial.baudRate`), '' for the whole file, `line:col` for YAML syntax errors. */
  path: string;
  message: string;
  /** 1-based line in the file, when known. */
  line?: number;
}

/** One line per issue: `FILE: KEY: reason (line N)`. */
export function formatProfileIssues(issues: readonly ProfileIssue[]): string {
  return issues
    .map((i) => {
      const where = i.line !== undefined ? ` (line ${i.line})` : '';
      const file = i.file === '' ? '' : `${i.file}: `;
      return i.path === '' ? `${file}${i.message}${where}` : `${file}${i.path}: ${i.message}${where}`;
    })
    .join('\n');
}

/** A profile (or directory of profiles) that does not load; `issues` lists every problem found. */
export class ProfileError extends Error {
  readonly issues: readonly ProfileIssue[];

  constructor(issues: readonly ProfileIssue[]) {
    super(formatProfileIssues(issues));
    this.name = 'ProfileError';
    this.issues = issues;
  }
}

type Path = (string | number)[];

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out;
}

interface Source {
  doc: Document;
  text: string;
  lineCounter: LineCounter;
}

/** Line of the key at `path` (or of its nearest existing parent) and the scalar's source text. */
function locate(source: Source, path: Path): { line: number; text?: string } | undefined {
  let node: unknown = source.doc.contents;
  let offset: number | undefined = (node as { range?: [number, number, number] } | null)?.range?.[0];
  let found = true;
  for (const p of path) {
    if (isMap(node)) {
      const pair = node.items.find((it) => isScalar(it.key) && String(it.key.value) === String(p));
      if (pair === undefined) {
        found = false;
        break;
      }
      offset = (isScalar(pair.key) ? pair.key.range?.[0] : undefined) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof p === 'number' && node.items[p] !== undefined) {
      node = node.items[p];
      offset = (node as { range?: [number, number, number] }).range?.[0] ?? offset;
    } else {
      found = false;
      break;
    }
  }
  if (offset === undefined) return undefined;
  const { line } = source.lineCounter.linePos(offset);
  if (found && isScalar(node) && node.range) return { line, text: source.text.slice(node.range[0], node.range[1]) };
  return { line };
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  return `the ${typeof v} ${String(v)}`;
}

function describeIssue(issue: z.core.$ZodIssue, source: Source | undefined): { path: Path; message: string }[] {
  const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({ path: [...path, key], message: 'unknown key (a typo?)' }));
    case 'invalid_type': {
      if (input === undefined) return [{ path, message: 'required key is missing' }];
      let message = `expected ${issue.expected === 'object' ? 'a mapping' : issue.expected === 'array' ? 'a list' : `a ${issue.expected}`}, got ${describeValue(input)}`;
      if (issue.expected === 'string' && (typeof input === 'number' || typeof input === 'boolean')) {
        // `ack: 06` is the number 6 in YAML: the quote hint keeps the leading zero.
        const text = source ? locate(source, path)?.text : undefined;
        message += `; quote it: "${text ?? String(input)}"`;
      }
      return [{ path, message }];
    }
    case 'invalid_value':
      return [{ path, message: `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}${input === undefined ? '' : ` (got ${JSON.stringify(input)})`}` }];
    case 'too_small':
    case 'too_big': {
      const small = issue.code === 'too_small';
      const limit = small ? (issue as { minimum: number | bigint }).minimum : (issue as { maximum: number | bigint }).maximum;
      if (issue.origin === 'string') return [{ path, message: small && Number(limit) === 1 ? 'must not be empty' : `must be ${small ? 'at least' : 'at most'} ${limit} characters long` }];
      if (issue.origin === 'array') return [{ path, message: `must have ${small ? 'at least' : 'at most'} ${limit} item(s)` }];
      return [{ path, message: `must be ${small ? '>=' : '<='} ${limit}${input === undefined ? '' : ` (got ${String(input)})`}` }];
    }
    default:
      return [{ path, message: issue.message }];
  }
}

// ---------------------------------------------------------------------------------------------
// Cross-key rules and compiled templates

interface Compiled {
  on?: CompiledTemplate;
  off?: CompiledTemplate;
  set?: CompiledTemplate;
  modes: Partial<Record<LampMode, Buffer>>;
  init: Buffer[];
  ack: { ack: Buffer; nak: Buffer; timeoutMs: number; retries: number } | null;
}

const compiledCache = new WeakMap<LampProfile, Compiled>();

/** Rules between keys, on a profile whose keys each have the right shape. */
function checkProfile(p: LampProfile): { path: Path; message: string }[] {
  const issues: { path: Path; message: string }[] = [];
  const add = (path: Path, message: string): void => {
    issues.push({ path, message });
  };
  const tryCompile = (path: Path, text: string | undefined): CompiledTemplate | undefined => {
    if (text === undefined) return undefined;
    try {
      return compileTemplate(text);
    } catch (err) {
      add(path, (err as Error).message);
      return undefined;
    }
  };
  const noValues = (path: Path, t: CompiledTemplate | undefined, what: string): void => {
    if (t && t.names.length > 0) add(path, `${what} takes no placeholders other than {sum}/{xor}, got {${t.names.join('}, {')}}`);
  };
  const c = p.commands;

  if (p.kind === 'relay') {
    for (const key of ['colours'] as const) if (p[key] !== undefined) add([key], 'only for kind: tower');
    for (const key of ['set', 'modes'] as const) if (c[key] !== undefined) add(['commands', key], 'only for kind: tower (relays use commands.on and commands.off)');
    if (p.selfFlash) add(['selfFlash'], 'relay boards are never flashed in software (contact wear) and profiles have no relay flash command: set selfFlash: false');
    if (p.channels === undefined) add(['channels'], 'required for kind: relay');
    if (c.on === undefined) add(['commands', 'on'], 'required for kind: relay');
    if (c.off === undefined) add(['commands', 'off'], 'required for kind: relay');
    const seen = new Map<string, string>();
    for (const key of ['on', 'off'] as const) {
      const t = tryCompile(['commands', key], c[key]);
      if (!t) continue;
      const others = t.names.filter((n) => n !== 'ch');
      if (others.length > 0) {
        add(['commands', key], `relay commands take {ch} only, got {${others.join('}, {')}}`);
        continue;
      }
      for (let ch = 1; ch <= (p.channels ?? 0); ch++) {
        let bytes: Buffer;
        try {
          bytes = t({ ch });
        } catch (err) {
          add(['commands', key], `channel ${ch}: ${(err as Error).message}`);
          break;
        }
        const what = `channel ${ch} ${key}`;
        const hex = formatHex(bytes);
        const before = seen.get(hex);
        if (before !== undefined) {
          add(['commands', key], `${what} gives the same bytes as ${before} (${hex})${t.names.includes('ch') ? '' : '; use {ch}'}`);
          break;
        }
        seen.set(hex, what);
      }
    }
  } else {
    if (p.channels !== undefined) add(['channels'], 'only for kind: relay');
    for (const key of ['on', 'off'] as const) if (c[key] !== undefined) add(['commands', key], 'only for kind: relay (towers use commands.set and commands.modes)');
    const colours = p.colours ?? [];
    if (p.colours === undefined) add(['colours'], 'required for kind: tower');
    colours.forEach((name, i) => {
      if (colours.indexOf(name) !== i) add(['colours', i], `colour ${JSON.stringify(name)} is listed twice`);
    });
    if (c.set === undefined) add(['commands', 'set'], 'required for kind: tower');
    const set = tryCompile(['commands', 'set'], c.set);
    if (set) {
      const unknown = set.names.filter((n) => !colours.includes(n));
      if (unknown.length > 0) add(['commands', 'set'], `{${unknown.join('}, {')}} ${unknown.length === 1 ? 'is not a colour' : 'are not colours'}; colours: ${colours.join(', ')}`);
      const unused = colours.filter((n) => !set.names.includes(n));
      if (unused.length > 0) add(['commands', 'set'], `colour${unused.length === 1 ? '' : 's'} ${unused.join(', ')} ${unused.length === 1 ? 'has' : 'have'} no {placeholder} in the set command`);
    }
    if (c.modes === undefined) add(['commands', 'modes'], 'required for kind: tower');
    else {
      if (c.modes.off === undefined) add(['commands', 'modes', 'off'], 'required for kind: tower');
      if (c.modes.on === undefined) add(['commands', 'modes', 'on'], 'required for kind: tower');
      if (p.selfFlash && c.modes.flash === undefined) add(['commands', 'modes', 'flash'], 'required when selfFlash is true');
      if (!p.selfFlash && c.modes.flash !== undefined) add(['commands', 'modes', 'flash'], 'never sent: selfFlash is false, so flash is shown as on; remove it or set selfFlash: true');
      const seen = new Map<string, LampMode>();
      for (const mode of LAMP_MODES) {
        const t = tryCompile(['commands', 'modes', mode], c.modes[mode]);
        noValues(['commands', 'modes', mode], t, 'a mode code');
        if (!t || t.names.length > 0) continue;
        const hex = formatHex(t());
        const before = seen.get(hex);
        if (before !== undefined) add(['commands', 'modes', mode], `same bytes as modes.${before} (${hex})`);
        seen.set(hex, mode);
      }
    }
  }
  noValues(['commands', 'init'], tryCompile(['commands', 'init'], c.init), 'the init command');
  if (p.ack !== null) {
    const ack = tryCompile(['ack', 'ack'], p.ack.ack);
    const nak = tryCompile(['ack', 'nak'], p.ack.nak);
    noValues(['ack', 'ack'], ack, 'ack');
    noValues(['ack', 'nak'], nak, 'nak');
    if (ack && nak && ack.names.length === 0 && nak.names.length === 0 && ack().equals(nak())) add(['ack', 'nak'], 'ack and nak must differ');
  }
  return issues;
}

/** The profile's templates, compiled once per profile object. Throws on a profile that does not validate. */
function compiled(profile: LampProfile): Compiled {
  const hit = compiledCache.get(profile);
  if (hit) return hit;
  const c = profile.commands;
  const modes: Partial<Record<LampMode, Buffer>> = {};
  for (const mode of LAMP_MODES) {
    const text = c.modes?.[mode];
    if (text !== undefined) modes[mode] = compileTemplate(text)();
  }
  const out: Compiled = {
    ...(c.on !== undefined ? { on: compileTemplate(c.on) } : {}),
    ...(c.off !== undefined ? { off: compileTemplate(c.off) } : {}),
    ...(c.set !== undefined ? { set: compileTemplate(c.set) } : {}),
    modes,
    init: c.init !== undefined ? [compileTemplate(c.init)()] : [],
    ack:
      profile.ack === null
        ? null
        : { ack: compileTemplate(profile.ack.ack)(), nak: compileTemplate(profile.ack.nak)(), timeoutMs: profile.ack.timeoutMs, retries: profile.ack.retries },
  };
  compiledCache.set(profile, out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Loading

/** Validates already-parsed profile data (YAML/JSON data or a test's object); `file` names it in errors. Throws ProfileError. */
export function validateProfile(raw: unknown, file = ''): LampProfile {
  return validate(raw, file, undefined);
}

function validate(raw: unknown, file: string, source: Source | undefined): LampProfile {
  const result = profileSchema.safeParse(raw, { reportInput: true });
  const problems: { path: Path; message: string }[] = [];
  if (!result.success) for (const issue of result.error.issues) problems.push(...describeIssue(issue, source));
  else problems.push(...checkProfile(result.data));
  if (problems.length > 0 || !result.success) {
    const issues = problems.map((i): ProfileIssue => {
      const line = source ? locate(source, i.path)?.line : undefined;
      return line === undefined ? { file, path: formatPath(i.path), message: i.message } : { file, path: formatPath(i.path), message: i.message, line };
    });
    issues.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
    throw new ProfileError(issues);
  }
  const profile: LampProfile = result.data;
  compiled(profile);
  return profile;
}

/** Parses and validates the YAML text of a profile; `file` names it in errors. Throws ProfileError. */
export function parseProfileText(text: string, file: string): LampProfile {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) {
    throw new ProfileError(
      problems.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        return { file, path: `${line}:${col}`, message: e.message.split('\n')[0] ?? e.message, line };
      }),
    );
  }
  if (doc.contents === null) throw new ProfileError([{ file, path: '', message: 'the file holds no profile (it is empty or only comments)' }]);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ProfileError([{ file, path: '', message: (err as Error).message.split('\n')[0] ?? 'bad YAML' }]);
  }
  return validate(raw, file, { doc, text, lineCounter });
}

/** Reads and validates one profile file. Throws ProfileError naming the file and key. */
export async function loadProfile(file: string): Promise<LampProfile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ProfileError([{ file, path: '', message: `cannot read profile: ${(err as Error).message}` }]);
  }
  return parseProfileText(text, file);
}

/**
 * Loads every `*.yaml` in `dir` (sorted by file name). Every bad file is reported, not only the
 * first, in one ProfileError; two files with the same id are an error too.
 */
export async function loadProfiles(dir: string): Promise<LampProfile[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.yaml')).sort();
  } catch (err) {
    throw new ProfileError([{ file: dir, path: '', message: `cannot read profile directory: ${(err as Error).message}` }]);
  }
  const profiles: LampProfile[] = [];
  const issues: ProfileIssue[] = [];
  const ids = new Map<string, string>();
  for (const name of names) {
    const file = join(dir, name);
    try {
      const profile = await loadProfile(file);
      const other = ids.get(profile.id);
      if (other !== undefined) {
        issues.push({ file, path: 'id', message: `id ${JSON.stringify(profile.id)} is already used by ${other}` });
        continue;
      }
      ids.set(profile.id, file);
      profiles.push(profile);
    } catch (err) {
      if (err instanceof ProfileError) issues.push(...err.issues);
      else issues.push({ file, path: '', message: (err as Error).message });
    }
  }
  if (issues.length > 0) throw new ProfileError(issues);
  return profiles;
}

// ---------------------------------------------------------------------------------------------
// Commands

/** What a tower shows per colour; colours not given are off. */
export type TowerState = Readonly<Partial<Record<string, LampMode>>>;

/** The mode the device actually shows: flash is steady on unless the device flashes by itself (never on relays). */
export function shownMode(profile: LampProfile, mode: LampMode): LampMode {
  return mode === 'flash' && (profile.kind === 'relay' || !profile.selfFlash) ? 'on' : mode;
}

/**
 * The bytes to send so that `output` shows `mode`.
 * relay: `output` is a channel 1..channels; on and flash send `commands.on`, off `commands.off`.
 * tower: `output` is a colour; `commands.set` is rendered with every colour's mode from
 * `towerState` (missing colours are off) and `output` set to `mode`; flash is sent as on unless
 * selfFlash. Throws RangeError for an output the profile does not have.
 */
export function commandsFor(profile: LampProfile, output: OutputKey, mode: LampMode, towerState: TowerState = {}): Buffer[] {
  const c = compiled(profile);
  const shown = shownMode(profile, mode);
  if (profile.kind === 'relay') {
    const channels = profile.channels ?? 0;
    if (typeof output !== 'number' || !Number.isInteger(output) || output < 1 || output > channels) {
      throw new RangeError(`profile ${profile.id}: output ${JSON.stringify(output)} is not a channel 1..${channels}`);
    }
    const t = shown === 'off' ? c.off : c.on;
    if (!t) throw new Error(`profile ${profile.id}: no commands.${shown === 'off' ? 'off' : 'on'}`);
    return [t({ ch: output })];
  }
  const colours = profile.colours ?? [];
  if (typeof output !== 'string' || !colours.includes(output)) {
    throw new RangeError(`profile ${profile.id}: output ${JSON.stringify(output)} is not a colour (${colours.join(', ')})`);
  }
  for (const key of Object.keys(towerState)) {
    if (!colours.includes(key)) throw new RangeError(`profile ${profile.id}: tower state names ${JSON.stringify(key)}, not a colour (${colours.join(', ')})`);
  }
  if (!c.set) throw new Error(`profile ${profile.id}: no commands.set`);
  const vars: Record<string, Buffer> = {};
  for (const colour of colours) {
    const m = colour === output ? shown : shownMode(profile, towerState[colour] ?? 'off');
    const code = c.modes[m];
    if (!code) throw new Error(`profile ${profile.id}: no commands.modes.${m}`);
    vars[colour] = code;
  }
  return [c.set(vars)];
}

/** Commands to send once after the port opens (the profile's `commands.init`, if any). */
export function initCommands(profile: LampProfile): Buffer[] {
  return [...compiled(profile).init];
}

/** The profile's acknowledgement bytes and timing, or null when the device sends none. */
export function ackBytes(profile: LampProfile): { ack: Buffer; nak: Buffer; timeoutMs: number; retries: number } | null {
  return compiled(profile).ack;
}

// ---------------------------------------------------------------------------------------------
// JSON Schema for editors (hardware/profile.schema.json, referenced by each profile's modeline)

export const PROFILE_SCHEMA_DRAFT = 'http://json-schema.org/draft-07/schema#';

/** Where the generated schema lives in the repository (src/lamps and dist/lamps are both two levels down). */
export const PROFILE_SCHEMA_FILE = fileURLToPath(new URL('../../hardware/profile.schema.json', import.meta.url));

/** The draft-07 JSON Schema of a profile file, generated from the zod schema. */
export function profileJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(profileSchema, { target: 'draft-7', io: 'input' }) as Record<string, unknown>;
  const { $schema: _ignored, title, description, ...rest } = generated;
  return {
    $schema: PROFILE_SCHEMA_DRAFT,
    $comment: 'Generated from src/lamps/profile.ts (writeProfileJsonSchema); do not edit by hand.',
    title: title ?? 'amk-bridge lamp device profile',
    description,
    ...rest,
  };
}

/** The schema as the text committed in hardware/profile.schema.json. */
export function profileJsonSchemaText(): string {
  return `${JSON.stringify(profileJsonSchema(), null, 2)}\n`;
}

/** Writes the schema file (default: hardware/profile.schema.json); returns the path written. */
export async function writeProfileJsonSchema(file: string = PROFILE_SCHEMA_FILE): Promise<string> {
  await writeFile(file, profileJsonSchemaText(), 'utf8');
  return file;
}
