// Byte templates: the small language device profiles (hardware/profiles/*.yaml) use to say which
// bytes switch a channel or colour. Pure: compiling checks the syntax once; rendering only fills
// in values, so a profile that loads cannot fail later on a typo.
//
// Syntax (whitespace between items is ignored, items may also be written back to back):
//
//   A0 01 ff        hex bytes, exactly two hex digits each (either case)
//   "relay on "     ASCII text; escapes \r \n \\ \" (nothing else); printable ASCII only
//   {ch}            the channel number as one byte (1-based, as printed on the board)
//   {ch+N} {ch-N}   the channel number plus/minus N, as one byte; N decimal (100) or hex (0x64)
//   {ch:ascii}      the channel number as ASCII decimal digits ("12")
//   {ch:hex}        the channel number as ASCII upper-case hex digits ("C")
//   {ch-1:ascii}    offset and format combine: the 0-based number as decimal digits
//   {sum}           the sum of every byte before it in this command, mod 256
//   {xor}           the xor of every byte before it in this command
//   {name}          a named value given by the caller (tower colours: the colour's mode code);
//                   a number is one byte, a byte string is spliced in as is; {name+N},
//                   {name:ascii} and {name:hex} work as for ch when the value is a number
//
// Examples: LCUS `A0 {ch} 01 {sum}` (ch 2 → A0 02 01 A3); Numato `"relay on " {ch-1:ascii} "\r"`;
// Devantech `{ch+0x64}` (ch 1 → 65); Patlite `"@??S" {red} {amber} {green} "00" {buzzer} "!"`.
//
// Names are letters, digits and `_`, not starting with a digit; `sum` and `xor` are reserved.
// Errors name the 1-based character position in the template.

/** A value a placeholder takes: a number is one byte (or digits with `:ascii`/`:hex`), bytes are spliced in. */
export type TemplateValue = number | Uint8Array;

/** The values placeholders take, by name (`ch` for the channel number). */
export type TemplateVars = Readonly<Record<string, TemplateValue | undefined>>;

/** A compiled template: call it with the placeholder values to get the command bytes. */
export interface CompiledTemplate {
  (vars?: TemplateVars): Buffer;
  /** The template text it was compiled from. */
  readonly source: string;
  /** Value placeholders it uses (`ch` and caller-given names; not sum/xor), in order of first use. */
  readonly names: readonly string[];
}

/** A syntax error (from compileTemplate) or a bad value (from rendering), with where it is. */
export class TemplateError extends Error {
  /** 0-based index into the template text. */
  readonly position: number;
  readonly source: string;
  readonly reason: string;

  constructor(source: string, position: number, reason: string) {
    super(`${reason} at position ${position + 1} of template ${JSON.stringify(source)}`);
    this.name = 'TemplateError';
    this.source = source;
    this.position = position;
    this.reason = reason;
  }
}

type Format = 'byte' | 'ascii' | 'hex';

type Part =
  | { kind: 'bytes'; bytes: Buffer }
  | { kind: 'value'; name: string; offset: number; format: Format; pos: number; text: string }
  | { kind: 'sum' | 'xor'; pos: number };

const HEX = /[0-9A-Fa-f]/;
const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PLACEHOLDER_RE = /^([A-Za-z_][A-Za-z0-9_]*)(?:\s*([+-])\s*(0[xX][0-9A-Fa-f]+|[0-9]+))?(?:\s*:\s*([A-Za-z]+))?$/;
const RESERVED = new Set(['sum', 'xor']);

/** True when `name` can be used as a `{name}` placeholder (e.g. a tower colour name). */
export function isTemplateName(name: string): boolean {
  return NAME_RE.test(name) && !RESERVED.has(name);
}

/** Compiles template text; throws TemplateError naming the position of the first problem. */
export function compileTemplate(src: string): CompiledTemplate {
  const parts = parse(src);
  const names: string[] = [];
  for (const p of parts) if (p.kind === 'value' && !names.includes(p.name)) names.push(p.name);
  const render = (vars: TemplateVars = {}): Buffer => renderParts(src, parts, vars);
  return Object.assign(render, { source: src, names: Object.freeze(names) });
}

function parse(src: string): Part[] {
  const parts: Part[] = [];
  let literal: number[] = [];
  const flush = (): void => {
    if (literal.length > 0) parts.push({ kind: 'bytes', bytes: Buffer.from(literal) });
    literal = [];
  };
  let i = 0;
  while (i < src.length) {
    const c = src[i] as string;
    if (/\s/.test(c)) {
      i++;
    } else if (HEX.test(c)) {
      let j = i;
      while (j < src.length && HEX.test(src[j] as string)) j++;
      if (j < src.length && /[A-Za-z0-9_]/.test(src[j] as string)) {
        const hint = src[j] === 'x' || src[j] === 'X' ? ' (write hex bytes without 0x: "A0 01")' : '';
        throw new TemplateError(src, j, `unexpected character ${JSON.stringify(src[j])} in hex byte${hint}`);
      }
      if (j - i !== 2) {
        throw new TemplateError(src, i, `hex bytes are two hex digits each, separated by spaces ("A0 01"), got ${JSON.stringify(src.slice(i, j))}`);
      }
      literal.push(parseInt(src.slice(i, j), 16));
      i = j;
    } else if (c === '"') {
      const start = i;
      i++;
      let closed = false;
      while (i < src.length) {
        const ch = src[i] as string;
        if (ch === '"') {
          closed = true;
          i++;
          break;
        }
        if (ch === '\\') {
          const e = src[i + 1];
          const esc = e === 'r' ? 0x0d : e === 'n' ? 0x0a : e === '\\' ? 0x5c : e === '"' ? 0x22 : undefined;
          if (esc === undefined) {
            throw new TemplateError(src, i, `unknown escape ${e === undefined ? '\\ at the end' : JSON.stringify(`\\${e}`)} in text (known: \\r \\n \\\\ \\")`);
          }
          literal.push(esc);
          i += 2;
          continue;
        }
        const code = ch.charCodeAt(0);
        if (code < 0x20 || code > 0x7e) {
          throw new TemplateError(src, i, `text may hold printable ASCII only (write control bytes as hex or \\r \\n), got ${JSON.stringify(ch)}`);
        }
        literal.push(code);
        i++;
      }
      if (!closed) throw new TemplateError(src, start, 'text is not closed: missing "');
    } else if (c === '{') {
      const start = i;
      const end = src.indexOf('}', i);
      if (end < 0) throw new TemplateError(src, start, 'placeholder is not closed: missing }');
      const inner = src.slice(i + 1, end).trim();
      const text = src.slice(start, end + 1);
      const nested = inner.indexOf('{');
      if (nested >= 0) throw new TemplateError(src, src.indexOf('{', i + 1), 'placeholder is not closed before the next {');
      const m = PLACEHOLDER_RE.exec(inner);
      if (m === null) {
        throw new TemplateError(src, start, `bad placeholder ${text}: expected {ch}, {ch+N}, {ch-N}, {ch:ascii}, {sum}, {xor} or {name}`);
      }
      const [, name = '', sign, num, fmt] = m;
      if (RESERVED.has(name)) {
        if (sign !== undefined || fmt !== undefined) throw new TemplateError(src, start, `{${name}} takes no offset or format, got ${text}`);
        flush();
        parts.push({ kind: name as 'sum' | 'xor', pos: start });
      } else {
        let format: Format = 'byte';
        if (fmt !== undefined) {
          if (fmt !== 'ascii' && fmt !== 'hex') throw new TemplateError(src, start, `unknown format ":${fmt}" in ${text} (known: :ascii, :hex)`);
          format = fmt;
        }
        let offset = 0;
        if (sign !== undefined && num !== undefined) {
          offset = num.toLowerCase().startsWith('0x') ? parseInt(num.slice(2), 16) : parseInt(num, 10);
          if (offset > 0xffff) throw new TemplateError(src, start, `offset ${num} in ${text} is too large`);
          if (sign === '-') offset = -offset;
        }
        flush();
        parts.push({ kind: 'value', name, offset, format, pos: start, text });
      }
      i = end + 1;
    } else if (c === '}') {
      throw new TemplateError(src, i, 'unexpected } without {');
    } else {
      throw new TemplateError(src, i, `unexpected character ${JSON.stringify(c)} (expected hex bytes, "text" or {placeholder})`);
    }
  }
  flush();
  if (parts.length === 0) throw new TemplateError(src, 0, 'template is empty: it must give at least one byte');
  return parts;
}

function renderParts(src: string, parts: readonly Part[], vars: TemplateVars): Buffer {
  const out: number[] = [];
  for (const p of parts) {
    switch (p.kind) {
      case 'bytes':
        for (const b of p.bytes) out.push(b);
        break;
      case 'sum':
        out.push(out.reduce((a, b) => a + b, 0) & 0xff);
        break;
      case 'xor':
        out.push(out.reduce((a, b) => a ^ b, 0));
        break;
      case 'value': {
        const v = vars[p.name];
        if (v === undefined) throw new TemplateError(src, p.pos, `no value given for ${p.text}`);
        if (typeof v !== 'number') {
          if (p.offset !== 0 || p.format !== 'byte') throw new TemplateError(src, p.pos, `${p.text} needs a number, got ${v.length} bytes`);
          for (const b of v) out.push(b);
          break;
        }
        if (!Number.isInteger(v)) throw new TemplateError(src, p.pos, `${p.text} needs an integer, got ${v}`);
        const n = v + p.offset;
        if (p.format === 'byte') {
          if (n < 0 || n > 0xff) throw new TemplateError(src, p.pos, `${p.text} is ${n} for ${p.name} = ${v}, outside one byte (0..255)`);
          out.push(n);
        } else {
          if (n < 0) throw new TemplateError(src, p.pos, `${p.text} is ${n} for ${p.name} = ${v}, negative`);
          for (const ch of p.format === 'ascii' ? n.toString(10) : n.toString(16).toUpperCase()) out.push(ch.charCodeAt(0));
        }
        break;
      }
    }
  }
  return Buffer.from(out);
}

/** Bytes as the profiles write them: upper-case hex pairs separated by spaces (`A0 01 01 A2`). */
export function formatHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).toUpperCase().padStart(2, '0')).join(' ');
}
