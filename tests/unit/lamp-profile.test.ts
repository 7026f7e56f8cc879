import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv from 'ajv';
import t, { type Test } from 'tap';
import YAML from 'yaml';
import {
  ackBytes,
  commandsFor,
  initCommands,
  loadProfile,
  loadProfiles,
  parseProfileText,
  PROFILE_SCHEMA_FILE,
  ProfileError,
  profileJsonSchema,
  profileJsonSchemaText,
  shownMode,
  validateProfile,
  writeProfileJsonSchema,
  type ProfileIssue,
} from '../../src/lamps/profile.js';
import { formatHex } from '../../src/lamps/template.js';
import type { LampMode, LampProfile } from '../../src/lamps/types.js';

const PROFILE_DIR = fileURLToPath(new URL('../../hardware/profiles', import.meta.url));
const SHIPPED = ['devantech-usb-rly08', 'kmtronic-usb-relay', 'lcus', 'numato-usb-relay', 'patlite-phe-3fb3'];

async function shipped(id: string): Promise<LampProfile> {
  const p = (await loadProfiles(PROFILE_DIR)).find((x) => x.id === id);
  if (!p) throw new Error(`no shipped profile ${id}`);
  return p;
}

function one(profile: LampProfile, output: number | string, mode: LampMode, state?: Record<string, LampMode>): string {
  const cmds = commandsFor(profile, output, mode, state);
  if (cmds.length !== 1) throw new Error(`expected one command, got ${cmds.length}`);
  return formatHex(cmds[0] as Buffer);
}

function text(profile: LampProfile, output: number | string, mode: LampMode, state?: Record<string, LampMode>): string {
  return (commandsFor(profile, output, mode, state)[0] as Buffer).toString('latin1');
}

/** A temporary directory for this test only, removed at its end. */
function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'amk-profile-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const RELAY_OK = `id: test-relay
name: Test relay
manual: Test manual, section Commands
serial: { baudRate: 9600 }
kind: relay
channels: 2
selfFlash: false
commands:
  on: A0 {ch} 01 {sum}
  off: A0 {ch} 00 {sum}
ack: null
`;

const TOWER_OK = `id: test-tower
name: Test tower
manual: Test manual, section Commands
serial: { baudRate: 9600 }
kind: tower
colours: [red, green]
selfFlash: true
commands:
  set: '"@" {red} {green} "!"'
  modes: { off: "30", on: "31", flash: "32" }
ack: { ack: "06", nak: "15", timeoutMs: 500, retries: 2 }
`;

/** The issues a profile text gives (it must not load). */
function issuesOf(yamlText: string, file = 'bad.yaml'): ProfileIssue[] {
  try {
    parseProfileText(yamlText, file);
  } catch (err) {
    if (err instanceof ProfileError) return [...err.issues];
    throw err;
  }
  throw new Error('expected the profile to be rejected');
}

function edit(base: string, change: (doc: Record<string, any>) => void): string {
  const doc = YAML.parse(base) as Record<string, any>;
  change(doc);
  return YAML.stringify(doc);
}

// ---------------------------------------------------------------------------------------------

t.test('every shipped profile loads', async (t) => {
  const profiles = await loadProfiles(PROFILE_DIR);
  t.same(profiles.map((p) => p.id).sort(), SHIPPED);
  for (const p of profiles) {
    t.ok(p.manual.length > 20, `${p.id} cites its manual`);
    t.equal(p.selfFlash, p.kind === 'tower', `${p.id}: only the tower flashes by itself`);
  }
  for (const name of readdirSync(PROFILE_DIR).filter((n) => n.endsWith('.yaml'))) {
    const first = readFileSync(join(PROFILE_DIR, name), 'utf8').split('\n')[0];
    t.equal(first, '# yaml-language-server: $schema=../profile.schema.json', `${name} starts with the schema modeline`);
    const single = await loadProfile(join(PROFILE_DIR, name));
    t.ok(single.id.length > 0, `${name} loads on its own`);
  }
});

t.test('hardware/profile.schema.json is the generated schema, and every shipped profile matches it', async (t) => {
  t.equal(readFileSync(PROFILE_SCHEMA_FILE, 'utf8'), profileJsonSchemaText(), 'regenerate with writeProfileJsonSchema() if this fails');
  const schema = profileJsonSchema();
  t.equal(schema['$schema'], 'http://json-schema.org/draft-07/schema#');
  const ajv = new Ajv.default({ strict: false, allErrors: true });
  const validate = ajv.compile(schema);
  for (const name of readdirSync(PROFILE_DIR).filter((n) => n.endsWith('.yaml'))) {
    const data = YAML.parse(readFileSync(join(PROFILE_DIR, name), 'utf8')) as unknown;
    t.ok(validate(data), `${name}: ${ajv.errorsText(validate.errors)}`);
  }
  t.notOk(validate({ ...YAML.parse(RELAY_OK), colour: 'red' }), 'unknown keys are rejected by the JSON Schema too');
  const dir = tempDir(t);
  const out = join(dir, 'profile.schema.json');
  t.equal(await writeProfileJsonSchema(out), out);
  t.equal(readFileSync(out, 'utf8'), profileJsonSchemaText());
});

t.test('LCUS: A0 ch op sum', async (t) => {
  const p = await shipped('lcus');
  t.equal(p.channels, 8);
  t.same(p.serial, { baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1 });
  t.equal(one(p, 1, 'on'), 'A0 01 01 A2', 'the manual example: on');
  t.equal(one(p, 1, 'off'), 'A0 01 00 A1', 'the manual example: off');
  t.equal(one(p, 2, 'on'), 'A0 02 01 A3');
  t.equal(one(p, 2, 'off'), 'A0 02 00 A2');
  t.equal(one(p, 8, 'on'), 'A0 08 01 A9');
  t.equal(one(p, 8, 'off'), 'A0 08 00 A8');
  t.equal(one(p, 2, 'flash'), 'A0 02 01 A3', 'relay flash = steady on');
  t.equal(ackBytes(p), null);
  t.same(initCommands(p), []);
});

t.test('KMtronic: FF ch 01/00', async (t) => {
  const p = await shipped('kmtronic-usb-relay');
  t.equal(p.serial.baudRate, 9600);
  t.equal(one(p, 1, 'on'), 'FF 01 01');
  t.equal(one(p, 1, 'off'), 'FF 01 00');
  t.equal(one(p, 4, 'on'), 'FF 04 01');
  t.equal(one(p, 8, 'off'), 'FF 08 00');
  t.equal(one(p, 3, 'flash'), 'FF 03 01', 'relay flash = steady on');
  t.equal(ackBytes(p), null);
});

t.test('Devantech USB-RLY08: one byte, 0x65..0x6C on, 0x6F..0x76 off', async (t) => {
  const p = await shipped('devantech-usb-rly08');
  t.same(p.serial, { baudRate: 19200, dataBits: 8, parity: 'none', stopBits: 2 });
  const on = [1, 2, 3, 4, 5, 6, 7, 8].map((ch) => one(p, ch, 'on'));
  const off = [1, 2, 3, 4, 5, 6, 7, 8].map((ch) => one(p, ch, 'off'));
  t.same(on, ['65', '66', '67', '68', '69', '6A', '6B', '6C']);
  t.same(off, ['6F', '70', '71', '72', '73', '74', '75', '76']);
  t.equal(one(p, 5, 'flash'), '69', 'relay flash = steady on');
});

t.test('Numato: "relay on N\\r" with N counted from 0', async (t) => {
  const p = await shipped('numato-usb-relay');
  t.equal(text(p, 1, 'on'), 'relay on 0\r');
  t.equal(text(p, 1, 'off'), 'relay off 0\r');
  t.equal(text(p, 8, 'on'), 'relay on 7\r');
  t.equal(text(p, 8, 'off'), 'relay off 7\r');
  t.equal(text(p, 3, 'flash'), 'relay on 2\r', 'relay flash = steady on');
  t.equal(one(p, 1, 'on'), '72 65 6C 61 79 20 6F 6E 20 30 0D');
});

t.test('Patlite PHE-3FB3: @??S + red amber green unused unused buzzer + !, ACK 06 / NAK 15', async (t) => {
  const p = await shipped('patlite-phe-3fb3');
  t.same(p.colours, ['red', 'amber', 'green', 'buzzer']);
  t.equal(p.selfFlash, true);
  t.same(p.serial, { baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1 });
  t.equal(text(p, 'red', 'on'), '@??S100000!', 'red on, everything else off');
  t.equal(text(p, 'red', 'off'), '@??S000000!');
  t.equal(text(p, 'red', 'flash'), '@??S200000!', 'the tower flashes by itself: flash stays flash');
  t.equal(text(p, 'green', 'on', { red: 'flash', amber: 'on' }), '@??S211000!', 'the other colours keep their modes');
  t.equal(text(p, 'red', 'off', { red: 'on', amber: 'flash', green: 'on' }), '@??S021000!', 'output overrides its own entry in the state');
  t.equal(text(p, 'buzzer', 'on'), '@??S000001!', 'buzzer pattern 1');
  t.equal(text(p, 'buzzer', 'flash', { green: 'on' }), '@??S001002!', 'buzzer pattern 2 for flash');
  t.equal(one(p, 'red', 'on'), '40 3F 3F 53 31 30 30 30 30 30 21');
  const ack = ackBytes(p);
  t.ok(ack);
  t.equal(formatHex(ack?.ack ?? Buffer.alloc(0)), '06');
  t.equal(formatHex(ack?.nak ?? Buffer.alloc(0)), '15');
  t.equal(ack?.timeoutMs, 1000);
  t.equal(ack?.retries, 3);
});

t.test('a tower without its own flasher shows flash as on', async (t) => {
  const text0 = edit(TOWER_OK, (d) => {
    d['selfFlash'] = false;
    delete d['commands'].modes.flash;
  });
  const p = parseProfileText(text0, 'tower.yaml');
  t.equal(text(p, 'red', 'flash'), '@10!');
  t.equal(text(p, 'green', 'on', { red: 'flash' }), '@11!', 'also for the other colours in the state');
  t.equal(shownMode(p, 'flash'), 'on');
  const self = parseProfileText(TOWER_OK, 'tower.yaml');
  t.equal(shownMode(self, 'flash'), 'flash');
  t.equal(text(self, 'green', 'on', { red: 'flash' }), '@21!');
  const relay = parseProfileText(RELAY_OK, 'relay.yaml');
  t.equal(shownMode(relay, 'flash'), 'on');
  t.equal(shownMode(relay, 'off'), 'off');
});

t.test('commandsFor rejects outputs the profile does not have', async (t) => {
  const relay = await shipped('lcus');
  const tower = await shipped('patlite-phe-3fb3');
  t.throws(() => commandsFor(relay, 0, 'on'), RangeError, 'channel 0');
  t.throws(() => commandsFor(relay, 9, 'on'), /not a channel 1\.\.8/, 'channel 9 of 8');
  t.throws(() => commandsFor(relay, 1.5, 'on'), RangeError);
  t.throws(() => commandsFor(relay, 'red', 'on'), RangeError, 'a colour on a relay');
  t.throws(() => commandsFor(tower, 'blue', 'on'), /not a colour \(red, amber, green, buzzer\)/);
  t.throws(() => commandsFor(tower, 1, 'on'), RangeError, 'a channel on a tower');
  t.throws(() => commandsFor(tower, 'red', 'on', { blue: 'on' }), /tower state names "blue"/);
});

t.test('init commands', async (t) => {
  const p = parseProfileText(edit(RELAY_OK, (d) => (d['commands'].init = '"mode 1" 0D {sum}')), 'init.yaml');
  t.same(initCommands(p).map((b) => formatHex(b)), ['6D 6F 64 65 20 31 0D 03']);
});

t.test('a profile object validated from data works the same', async (t) => {
  const raw = YAML.parse(RELAY_OK) as unknown;
  const p = validateProfile(raw, 'data');
  t.equal(one(p, 2, 'on'), 'A0 02 01 A3');
  t.same(p.serial, { baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1 }, 'serial defaults 8N1');
  // A hand-built profile object (not from the loader) is compiled on first use.
  const hand: LampProfile = { ...p, commands: { on: 'FF {ch} 01', off: 'FF {ch} 00' } };
  t.equal(one(hand, 2, 'off'), 'FF 02 00');
});

// ---------------------------------------------------------------------------------------------
// Bad profiles: errors name the file, the key and the line

t.test('bad profiles: each error names the file, the key and the line', async (t) => {
  const cases: { what: string; text: string; path: string; message: RegExp; line?: number }[] = [
    { what: 'unknown key', text: RELAY_OK.replace('kind: relay', 'kind: relay\ncolour: red'), path: 'colour', message: /unknown key/, line: 6 },
    { what: 'unknown key deep', text: RELAY_OK.replace('serial: { baudRate: 9600 }', 'serial: { baudRate: 9600, flow: rtscts }'), path: 'serial.flow', message: /unknown key/ },
    { what: 'missing key', text: RELAY_OK.replace('manual: Test manual, section Commands\n', ''), path: 'manual', message: /required key is missing/ },
    { what: 'bad enum', text: RELAY_OK.replace('kind: relay', 'kind: lamp'), path: 'kind', message: /must be one of "relay", "tower" \(got "lamp"\)/, line: 5 },
    { what: 'bad stop bits', text: RELAY_OK.replace('{ baudRate: 9600 }', '{ baudRate: 9600, stopBits: 3 }'), path: 'serial.stopBits', message: /must be one of 1, 2/ },
    { what: 'bad id', text: RELAY_OK.replace('id: test-relay', 'id: Test Relay'), path: 'id', message: /lower-case/, line: 1 },
    { what: 'template syntax', text: RELAY_OK.replace('on: A0 {ch} 01 {sum}', 'on: A0 {ch} 1 {sum}'), path: 'commands.on', message: /hex bytes are two hex digits each.*at position 9 of template/, line: 9 },
    { what: 'unknown placeholder name on a relay', text: RELAY_OK.replace('on: A0 {ch} 01 {sum}', 'on: A0 {channel} 01 {sum}'), path: 'commands.on', message: /relay commands take \{ch\} only, got \{channel\}/ },
    { what: 'unquoted ack byte (a YAML number)', text: TOWER_OK.replace('ack: "06"', 'ack: 06'), path: 'ack.ack', message: /expected a string, got the number 6; quote it: "06"/, line: 11 },
    { what: 'relay without channels', text: RELAY_OK.replace('channels: 2\n', ''), path: 'channels', message: /required for kind: relay/ },
    { what: 'relay without off', text: RELAY_OK.replace('  off: A0 {ch} 00 {sum}\n', ''), path: 'commands.off', message: /required for kind: relay/ },
    { what: 'relay that flashes', text: RELAY_OK.replace('selfFlash: false', 'selfFlash: true'), path: 'selfFlash', message: /never flashed in software/, line: 7 },
    { what: 'relay with tower keys', text: RELAY_OK.replace('kind: relay', 'kind: relay\ncolours: [red]'), path: 'colours', message: /only for kind: tower/ },
    { what: 'channel byte out of range', text: RELAY_OK.replace('channels: 2', 'channels: 8').replace('on: A0 {ch} 01 {sum}', 'on: "{ch+0xFA}"'), path: 'commands.on', message: /channel 6: \{ch\+0xFA\} is 256 .* outside one byte/ },
    { what: 'all channels the same bytes', text: RELAY_OK.replace('on: A0 {ch} 01 {sum}', 'on: A0 01 01 A2'), path: 'commands.on', message: /channel 2 on gives the same bytes as channel 1 on \(A0 01 01 A2\); use \{ch\}/ },
    { what: 'on and off the same', text: RELAY_OK.replace('off: A0 {ch} 00 {sum}', 'off: A0 {ch} 01 {sum}'), path: 'commands.off', message: /channel 1 off gives the same bytes as channel 1 on/ },
    { what: 'tower set with a name that is no colour', text: TOWER_OK.replace('{green} "!"', '{green} {blue} "!"'), path: 'commands.set', message: /\{blue\} is not a colour; colours: red, green/ },
    { what: 'tower colour without placeholder', text: TOWER_OK.replace('colours: [red, green]', 'colours: [red, green, amber]'), path: 'commands.set', message: /colour amber has no \{placeholder\}/ },
    { what: 'duplicate colour', text: TOWER_OK.replace('colours: [red, green]', 'colours: [red, green, red]'), path: 'colours[2]', message: /listed twice/ },
    { what: 'bad colour name', text: TOWER_OK.replace('colours: [red, green]', 'colours: [red, light-green]'), path: 'colours[1]', message: /colour names are letters/ },
    { what: 'self-flashing tower without flash code', text: TOWER_OK.replace(', flash: "32"', ''), path: 'commands.modes.flash', message: /required when selfFlash is true/ },
    { what: 'flash code never sent', text: TOWER_OK.replace('selfFlash: true', 'selfFlash: false'), path: 'commands.modes.flash', message: /never sent: selfFlash is false/ },
    { what: 'mode codes the same', text: TOWER_OK.replace('on: "31"', 'on: "30"'), path: 'commands.modes.on', message: /same bytes as modes\.off \(30\)/ },
    { what: 'mode code with a placeholder', text: TOWER_OK.replace('on: "31"', 'on: "{ch}"'), path: 'commands.modes.on', message: /a mode code takes no placeholders/ },
    { what: 'tower with relay commands', text: TOWER_OK.replace('commands:\n', 'commands:\n  on: "01"\n'), path: 'commands.on', message: /only for kind: relay/ },
    { what: 'tower without set', text: TOWER_OK.replace(`  set: '"@" {red} {green} "!"'\n`, ''), path: 'commands.set', message: /required for kind: tower/ },
    { what: 'ack equals nak', text: TOWER_OK.replace('nak: "15"', 'nak: "06"'), path: 'ack.nak', message: /ack and nak must differ/ },
    { what: 'ack without timeout', text: TOWER_OK.replace(' timeoutMs: 500,', ''), path: 'ack.timeoutMs', message: /required key is missing/ },
    { what: 'negative retries', text: TOWER_OK.replace('retries: 2', 'retries: -1'), path: 'ack.retries', message: /must be >= 0/ },
    { what: 'init with a placeholder', text: RELAY_OK.replace('commands:\n', 'commands:\n  init: "{ch}"\n'), path: 'commands.init', message: /the init command takes no placeholders/ },
  ];
  for (const c of cases) {
    const issues = issuesOf(c.text, 'hardware/profiles/bad.yaml');
    const hit = issues.find((i) => i.path === c.path);
    t.ok(hit, `${c.what}: an issue at ${c.path} (got ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')})`);
    if (!hit) continue;
    t.equal(hit.file, 'hardware/profiles/bad.yaml', `${c.what}: names the file`);
    t.match(hit.message, c.message, `${c.what}: ${hit.message}`);
    if (c.line !== undefined) t.equal(hit.line, c.line, `${c.what}: line ${c.line}`);
  }
});

t.test('every problem is reported in one run, formatted FILE: KEY: reason (line N)', async (t) => {
  const bad = RELAY_OK.replace('baudRate: 9600', 'baudRate: "fast"').replace('on: A0 {ch} 01 {sum}', 'on: A0 {ch 01').replace('kind: relay', 'kind: relay\nextra: 1');
  let err: unknown;
  try {
    parseProfileText(bad, 'p.yaml');
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof ProfileError);
  const e = err as ProfileError;
  t.same(e.issues.map((i) => i.path), ['serial.baudRate', 'extra', 'commands.on'], 'in file order');
  const lines = e.message.split('\n');
  t.match(lines[0], /^p\.yaml: serial\.baudRate: expected a number, got the string "fast" \(line 4\)$/);
  t.match(lines[1], /^p\.yaml: extra: unknown key \(a typo\?\) \(line 6\)$/);
  t.match(lines[2], /^p\.yaml: commands\.on: placeholder is not closed: missing \} at position 4 of template "A0 \{ch 01" \(line 10\)$/);
});

t.test('YAML problems name the file and the line:column', async (t) => {
  let issues = issuesOf('id: x\nid: y\n', 'dup.yaml');
  t.equal(issues[0]?.file, 'dup.yaml');
  t.match(issues[0]?.path, /^2:\d+$/);
  t.match(issues[0]?.message, /unique/i);
  issues = issuesOf('id: [unclosed\n', 'syntax.yaml');
  t.match(issues[0]?.path, /^\d+:\d+$/);
  issues = issuesOf('# only a comment\n', 'empty.yaml');
  t.same(issues, [{ file: 'empty.yaml', path: '', message: 'the file holds no profile (it is empty or only comments)' }]);
  issues = issuesOf('- a list\n', 'list.yaml');
  t.equal(issues[0]?.path, '');
  t.match(issues[0]?.message, /expected a mapping, got a list/);
});

t.test('loadProfile / loadProfiles: files on disk', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'a-relay.yaml'), RELAY_OK);
  writeFileSync(join(dir, 'b-tower.yaml'), TOWER_OK);
  writeFileSync(join(dir, 'notes.txt'), 'not a profile');
  writeFileSync(join(dir, 'c.yml'), 'ignored: only *.yaml is read');
  const ok = await loadProfiles(dir);
  t.same(ok.map((p) => p.id), ['test-relay', 'test-tower'], 'only *.yaml, sorted by file name');

  await t.rejects(loadProfile(join(dir, 'missing.yaml')), { name: 'ProfileError', message: new RegExp(`^${join(dir, 'missing.yaml')}: cannot read profile`) });

  writeFileSync(join(dir, 'd-same-id.yaml'), TOWER_OK.replace('name: Test tower', 'name: Another'));
  writeFileSync(join(dir, 'e-broken.yaml'), RELAY_OK.replace('id: test-relay', 'id: broken').replace('kind: relay', 'kind: lamp'));
  writeFileSync(join(dir, 'f-broken.yaml'), RELAY_OK.replace('id: test-relay', 'id: broken2').replace('off: A0 {ch} 00 {sum}', 'off: "x"'));
  let err: unknown;
  try {
    await loadProfiles(dir);
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof ProfileError, 'one error for the whole directory');
  const issues = (err as ProfileError).issues;
  t.same(
    issues.map((i) => [i.file, i.path]),
    [
      [join(dir, 'd-same-id.yaml'), 'id'],
      [join(dir, 'e-broken.yaml'), 'kind'],
      [join(dir, 'f-broken.yaml'), 'commands.off'],
    ],
  );
  t.match(issues[0]?.message, new RegExp(`id "test-tower" is already used by ${join(dir, 'b-tower.yaml').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  t.match((err as Error).message, /e-broken\.yaml: kind: must be one of/);
  t.match((err as Error).message, /f-broken\.yaml: commands\.off: unexpected character "x"/);

  await t.rejects(loadProfiles(join(dir, 'nope')), { name: 'ProfileError', message: /cannot read profile directory/ });
  const empty = tempDir(t);
  t.same(await loadProfiles(empty), [], 'an empty directory has no profiles');
});
