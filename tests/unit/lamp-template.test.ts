import t from 'tap';
import { compileTemplate, formatHex, isTemplateName, TemplateError } from '../../src/lamps/template.js';

function hex(src: string, vars?: Parameters<ReturnType<typeof compileTemplate>>[0]): string {
  return formatHex(compileTemplate(src)(vars));
}

/** The error compileTemplate (or rendering, with vars) throws. */
function errorOf(src: string, vars?: Record<string, number | Uint8Array>): TemplateError {
  try {
    compileTemplate(src)(vars ?? { ch: 1 });
  } catch (err) {
    if (err instanceof TemplateError) return err;
    throw err;
  }
  throw new Error(`expected a TemplateError for ${src}`);
}

t.test('hex bytes', async (t) => {
  t.equal(hex('A0 01 01 A2'), 'A0 01 01 A2');
  t.equal(hex('a0 ff 00'), 'A0 FF 00', 'either case');
  t.equal(hex('  A0\t01\n02  '), 'A0 01 02', 'any whitespace between, around');
  t.equal(hex('06'), '06');
  t.ok(Buffer.isBuffer(compileTemplate('06')()), 'renders a Buffer');
});

t.test('quoted ASCII text and escapes', async (t) => {
  t.equal(compileTemplate('"relay on 1"')().toString('latin1'), 'relay on 1');
  t.equal(hex('"\\r\\n\\\\\\""'), '0D 0A 5C 22', '\\r \\n \\\\ \\"');
  t.equal(hex('"@" 3F "?"'), '40 3F 3F', 'text and hex mixed');
  t.equal(hex('"a""b"'), '61 62', 'back to back');
  t.equal(hex('"{ch}"', {}), '7B 63 68 7D', 'braces in text are text');
  t.equal(compileTemplate('" "')().toString(), ' ', 'a space');
});

t.test('{ch} and offsets', async (t) => {
  t.equal(hex('A0 {ch} 01', { ch: 2 }), 'A0 02 01');
  t.equal(hex('{ch+0x64}', { ch: 1 }), '65', 'hex offset');
  t.equal(hex('{ch+0x6E}', { ch: 8 }), '76');
  t.equal(hex('{ch+100}', { ch: 1 }), '65', 'decimal offset');
  t.equal(hex('{ch-1}', { ch: 1 }), '00', 'negative offset');
  t.equal(hex('{ ch + 0X10 }', { ch: 1 }), '11', 'spaces inside braces, 0X');
  t.equal(hex('{ch}{ch}', { ch: 255 }), 'FF FF', 'twice, back to back');
});

t.test('{ch:ascii} and {ch:hex}', async (t) => {
  t.equal(compileTemplate('"relay on " {ch-1:ascii} "\\r"')({ ch: 3 }).toString(), 'relay on 2\r', 'Numato: 0-based digits');
  t.equal(compileTemplate('{ch:ascii}')({ ch: 12 }).toString(), '12', 'several digits');
  t.equal(compileTemplate('{ch:ascii}')({ ch: 0 }).toString(), '0');
  t.equal(compileTemplate('{ch-1:hex}')({ ch: 12 }).toString(), 'B', 'upper-case hex digits');
  t.equal(compileTemplate('{ch:ascii}')({ ch: 300 }).toString(), '300', 'digits are not limited to a byte');
});

t.test('{sum} and {xor} cover every byte before them', async (t) => {
  t.equal(hex('A0 {ch} 01 {sum}', { ch: 1 }), 'A0 01 01 A2', 'LCUS ch 1 on');
  t.equal(hex('A0 {ch} 01 {sum}', { ch: 2 }), 'A0 02 01 A3', 'LCUS ch 2 on');
  t.equal(hex('A0 {ch} 00 {sum}', { ch: 1 }), 'A0 01 00 A1', 'LCUS ch 1 off');
  t.equal(hex('FF FF 03 {sum}'), 'FF FF 03 01', 'mod 256');
  t.equal(hex('01 02 04 {xor}'), '01 02 04 07');
  t.equal(hex('FF 0F {xor}'), 'FF 0F F0');
  t.equal(hex('01 {sum} {sum}'), '01 01 02', 'a second sum includes the first');
  t.equal(hex('"AB" {xor}'), '41 42 03', 'over text bytes too');
  t.equal(hex('{sum}'), '00', 'sum of nothing');
  t.equal(hex('{n} {sum}', { n: Buffer.from([1, 2]) }), '01 02 03', 'over spliced bytes');
});

t.test('{name}: numbers are one byte, bytes are spliced, offsets and formats apply to numbers', async (t) => {
  const patlite = compileTemplate('"@??S" {red} {amber} {green} "00" {buzzer} "!"');
  t.same(patlite.names, ['red', 'amber', 'green', 'buzzer'], 'names in order of first use');
  const codes = { red: Buffer.from('1'), amber: Buffer.from('9'), green: Buffer.from('0'), buzzer: Buffer.from('4') };
  t.equal(patlite(codes).toString(), '@??S190004!');
  t.equal(hex('{mode}', { mode: 0x31 }), '31', 'a number is one byte');
  t.equal(hex('{mode+1}', { mode: 0x31 }), '32');
  t.equal(compileTemplate('{n:ascii}')({ n: 42 }).toString(), '42');
  t.same(compileTemplate('A0 {ch} {sum}').names, ['ch'], 'sum/xor are not names');
  t.same(compileTemplate('{a}{b}{a}').names, ['a', 'b'], 'each name once');
  t.equal(hex('{x}', { x: new Uint8Array([]) }), '', 'empty bytes are allowed as a value');
});

t.test('the compiled template keeps its source and can be rendered many times', async (t) => {
  const tpl = compileTemplate('FF {ch} 01');
  t.equal(tpl.source, 'FF {ch} 01');
  t.equal(formatHex(tpl({ ch: 1 })), 'FF 01 01');
  t.equal(formatHex(tpl({ ch: 8 })), 'FF 08 01');
  t.ok(Object.isFrozen(tpl.names));
});

t.test('syntax errors name the position (1-based)', async (t) => {
  const cases: [string, number, RegExp][] = [
    ['A0 1', 4, /two hex digits/],
    ['A0 001', 4, /two hex digits/],
    ['A001', 1, /two hex digits/],
    ['0x41', 2, /without 0x/],
    ['A0 0g', 5, /unexpected character "g"/],
    ['A0 zz', 4, /unexpected character "z"/],
    ['"relay', 1, /not closed/],
    ['"a\\tb"', 3, /unknown escape "\\\\t"/],
    ['"a\\', 3, /unknown escape/],
    ['"é"', 2, /printable ASCII/],
    ['A0 {ch', 4, /placeholder is not closed/],
    ['{ch {sum}', 5, /before the next \{/],
    ['A0 }', 4, /unexpected \}/],
    ['{}', 1, /bad placeholder \{\}/],
    ['{ch*2}', 1, /bad placeholder/],
    ['{1ch}', 1, /bad placeholder/],
    ['{ch+}', 1, /bad placeholder/],
    ['{ch:bin}', 1, /unknown format ":bin"/],
    ['01 {sum+1}', 4, /\{sum\} takes no offset/],
    ['{xor:ascii}', 1, /\{xor\} takes no offset or format/],
    ['{ch+0x10000}', 1, /too large/],
    ['', 1, /empty/],
    ['   ', 1, /empty/],
    ['A0 ; comment', 4, /unexpected character ";"/],
  ];
  for (const [src, position, re] of cases) {
    let err: unknown;
    try {
      compileTemplate(src);
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof TemplateError, `${JSON.stringify(src)} throws a TemplateError`);
    if (!(err instanceof TemplateError)) continue;
    t.equal(err.position + 1, position, `${JSON.stringify(src)}: position ${position}`);
    t.match(err.reason, re, `${JSON.stringify(src)}: ${err.reason}`);
    t.match(err.message, new RegExp(`at position ${position} of template`), 'the message names the position');
    t.equal(err.source, src);
  }
});

t.test('render errors name the placeholder and its position', async (t) => {
  let e = errorOf('A0 {ch}', {});
  t.match(e.message, /no value given for \{ch\} at position 4/);
  e = errorOf('{ch+0x6E}', { ch: 200 });
  t.match(e.message, /\{ch\+0x6E\} is 310 for ch = 200, outside one byte \(0\.\.255\) at position 1/);
  e = errorOf('{ch-1}', { ch: 0 });
  t.match(e.message, /is -1 .* outside one byte/);
  e = errorOf('{ch-2:ascii}', { ch: 1 });
  t.match(e.message, /negative/);
  e = errorOf('{ch}', { ch: 1.5 });
  t.match(e.message, /needs an integer/);
  e = errorOf('{ch}', { ch: 256 });
  t.match(e.message, /outside one byte/);
  e = errorOf('00 {m+1}', { m: Buffer.from('1') });
  t.match(e.message, /\{m\+1\} needs a number, got 1 bytes at position 4/);
  e = errorOf('{m:ascii}', { m: Buffer.from('1') });
  t.match(e.message, /needs a number/);
});

t.test('isTemplateName: what a colour may be called', async (t) => {
  for (const ok of ['red', 'amber', 'green', 'buzzer', 'blue_2', '_x', 'ch']) t.ok(isTemplateName(ok), ok);
  for (const bad of ['', '2red', 'light-red', 'sum', 'xor', 'red ', 'rød']) t.notOk(isTemplateName(bad), JSON.stringify(bad));
});

t.test('formatHex', async (t) => {
  t.equal(formatHex(Buffer.from([0, 0x0a, 0xff])), '00 0A FF');
  t.equal(formatHex(new Uint8Array([])), '');
});
