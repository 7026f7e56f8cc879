import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import YAML from 'yaml';
import Ajv from 'ajv';
import { configJsonSchema, configJsonSchemaText } from '../../src/config/json-schema.js';
import { formatConfigErrors, loadConfig, parseConfigText, validateConfig, type ConfigError } from '../../src/config/load.js';
import { networksToBlockList, parseCidr, type Config } from '../../src/config/schema.js';
import { redactSecrets } from '../../src/config/secrets.js';
import { testConfig, testConfigInput } from '../helpers/config.js';

const EXAMPLE = fileURLToPath(new URL('../../config/amk-bridge.example.yaml', import.meta.url));
const SCHEMA_FILE = fileURLToPath(new URL('../../config/amk-bridge.schema.json', import.meta.url));
const exampleText = readFileSync(EXAMPLE, 'utf8');

/** The example file as plain data, to mutate per test. */
function example(): Record<string, any> {
  return YAML.parse(exampleText) as Record<string, any>;
}

function errorsOf(raw: unknown, baseDir?: string): ConfigError[] {
  const r = validateConfig(raw, baseDir === undefined ? {} : { baseDir });
  if (r.ok) throw new Error('expected config errors, got a valid config');
  return r.errors;
}

function paths(errors: ConfigError[]): string[] {
  return errors.map((e) => e.path);
}

t.test('the example config loads', async (t) => {
  const r = await loadConfig(EXAMPLE);
  if (!r.ok) t.fail(formatConfigErrors(EXAMPLE, r.errors));
  t.ok(r.ok);
  if (!r.ok) return;
  const c = r.config;
  t.equal(c.node, 'psap-1');
  t.equal(c.log.level, 'info');
  t.same(c.sip.listen, [
    { transport: 'udp', address: '127.0.0.1', port: 5060 },
    { transport: 'tcp', address: '127.0.0.1', port: 5060 },
  ]);
  t.equal(c.sip.timers.timerBMs, 64 * 500, 'timer B defaults to 64*T1');
  t.equal(c.sip.prack, 'supported');
  t.equal(c.regions[0]?.code, '01');
  t.equal(c.regions[0]?.ringTimerS, 11);
  t.equal(c.regions[0]?.attempts, 2);
  t.equal(c.routing.rules[0]?.match.requestUriUser?.prefix, '112');
  t.equal(c.conference.featureCode, '*1');
  t.equal(c.conference.interDigitMs, 2000);
});

t.test('the example shows the defaults: a nearly empty file gives the same config', async (t) => {
  const ex = await loadConfig(EXAMPLE);
  const min = parseConfigText('node: psap-1\n', '/');
  t.ok(ex.ok && min.ok);
  if (!ex.ok || !min.ok) return;
  // The example keeps its journal in the working directory so that `npm start` needs no root.
  const { routing: exRouting, journal: exJournal, recontact: exRe, ...exRest } = ex.config;
  const { routing: minRouting, journal: minJournal, recontact: minRe, ...minRest } = min.config;
  t.same(minRest, exRest);
  t.same({ ...exRe, path: '', keyFile: '' }, { ...minRe, path: '', keyFile: '' });
  t.same([exRe.path, exRe.keyFile], ['state/recontact.sqlite', 'state/recontact.key']);
  t.same([exJournal.path, minJournal.path], ['state/journal.sqlite', '/var/lib/amk-bridge/journal.sqlite']);
  t.same({ ...exJournal, path: '', contextKeyFile: '' }, { ...minJournal, path: '', contextKeyFile: '' });
  t.same([exJournal.retentionDays, exJournal.pruneIntervalMin], [400, 60]);
  t.same([exJournal.contextKeyFile, minJournal.contextKeyFile], ['state/journal.sqlite.key', '/var/lib/amk-bridge/journal.sqlite.key'], 'the key file defaults to the journal path + .key');
  t.equal(minRouting.defaultRegion, exRouting.defaultRegion);
  t.same(minRouting.rules, [], 'no rules by default');
});

t.test('defaults are derived values where documented', async (t) => {
  const r = parseConfigText('sip: { timers: { t1Ms: 100 } }\ndesks: [{ id: d7, users: ["7"] }]\n', '/');
  t.ok(r.ok);
  if (!r.ok) return;
  t.equal(r.config.sip.timers.timerBMs, 6400);
  t.equal(r.config.desks[0]?.name, 'd7', 'desk name defaults to the id');
  const explicit = parseConfigText('sip: { timers: { timerBMs: 2000 } }\n', '/');
  t.equal(explicit.ok && explicit.config.sip.timers.timerBMs, 2000);
});

t.test('each cross-field error is reported with its exact path', async (t) => {
  type Case = [name: string, mutate: (c: Record<string, any>) => void, path: string, message: RegExp];
  const cases: Case[] = [
    ['unknown default region', (c) => (c.routing.defaultRegion = 'nord'), 'routing.defaultRegion', /"nord" is not defined/],
    ['unknown rule region', (c) => (c.routing.rules[0].region = 'syd'), 'routing.rules[0].region', /"syd" is not defined/],
    ['unknown rule trunk', (c) => (c.routing.rules[0].match.trunk = 'trunk-x'), 'routing.rules[0].match.trunk', /"trunk-x" is not defined/],
    ['duplicate region id', (c) => c.regions.push({ ...c.regions[0], code: '02' }), 'regions[1].id', /duplicate region id "hovedstaden" \(also regions\[0\]\.id\)/],
    ['duplicate region code', (c) => c.regions.push({ ...c.regions[0], id: 'sjaelland' }), 'regions[1].code', /duplicate region code "01"/],
    ['duplicate desk id', (c) => c.desks.push({ id: 'desk-1', users: ['1002'] }), 'desks[1].id', /duplicate desk id/],
    ['desk user on two desks', (c) => c.desks.push({ id: 'desk-2', users: ['1002', '1001'] }), 'desks[1].users[1]', /"1001" is already mapped \(desks\[0\]\.users\[0\]\)/],
    ['duplicate trunk id', (c) => c.trunks.push({ id: 'trunk-a', networks: ['10.0.0.0/8'] }), 'trunks[1].id', /duplicate trunk id/],
    ['bad regex', (c) => (c.routing.rules[0].match.requestUriUser = { regex: '(' }), 'routing.rules[0].match.requestUriUser.regex', /does not compile/],
    ['bad header regex', (c) => (c.routing.rules[0].match.header = { name: 'X-Area', regex: '[' }), 'routing.rules[0].match.header.regex', /does not compile/],
    ['two match kinds', (c) => (c.routing.rules[0].match.toUser = { equals: '112', prefix: '11' }), 'routing.rules[0].match.toUser', /exactly one of equals, prefix or regex/],
    ['empty match', (c) => (c.routing.rules[0].match = {}), 'routing.rules[0].match', /at least one condition/],
    ['bad IPv4 CIDR', (c) => (c.trunks[0].networks = ['10.0.0.256/8']), 'trunks[0].networks[0]', /not an IPv4 or IPv6 address/],
    ['bad prefix length', (c) => (c.callTakers.networks = ['10.0.0.0/33']), 'callTakers.networks[0]', /0\.\.32/],
    ['bad IPv6 CIDR', (c) => (c.trunks[0].networks = ['2001:db8::/129']), 'trunks[0].networks[0]', /0\.\.128/],
    ['password and passwordFile', (c) => (c.regions[0].auth = { username: 'u', password: 'p', passwordFile: 'x' }), 'regions[0].auth.passwordFile', /mutually exclusive/],
    ['neither password nor passwordFile', (c) => (c.regions[0].auth = { username: 'u' }), 'regions[0].auth', /password or passwordFile/],
    ['non-SIP call-taker target', (c) => (c.callTakers.target = 'http://acd'), 'callTakers.target', /sip: or sips:/],
    ['non-SIP region target', (c) => (c.regions[0].targets = ['sip:ok@h', 'tel:+4512']), 'regions[0].targets[1]', /sip: or sips:/],
    ['non-SIP outbound proxy', (c) => (c.regions[0].outboundProxy = 'proxy.example'), 'regions[0].outboundProxy', /sip: or sips:/],
    ['non-SIP trunk probe', (c) => (c.trunks[0].probe = 'sip:'), 'trunks[0].probe', /sip: or sips:/],
    ['T2 below T1', (c) => (c.sip.timers = { t1Ms: 1000, t2Ms: 500 }), 'sip.timers.t2Ms', />= t1Ms/],
    ['Min-SE above Session-Expires', (c) => (c.sip.sessionTimer = { expiresS: 120, minSeS: 600 }), 'sip.sessionTimer.minSeS', /<= expiresS/],
    ['probe timeout above interval', (c) => (c.probes = { intervalS: 2, timeoutMs: 5000 }), 'probes.timeoutMs', /shorter than probes\.intervalS/],
    ['wildcard listen without publicAddress', (c) => (c.sip.listen = [{ transport: 'udp', address: '0.0.0.0' }]), 'sip.publicAddress', /required/],
    ['same socket twice', (c) => (c.sip.listen = [{ transport: 'udp' }, { transport: 'udp', address: '127.0.0.1', port: 5060 }]), 'sip.listen[1]', /same transport/],
    ['ring timer out of range', (c) => (c.regions[0].ringTimerS = 0), 'regions[0].ringTimerS', />= 0\.1 \(got 0\)/],
    ['attempts out of range', (c) => (c.regions[0].attempts = 11), 'regions[0].attempts', /<= 10/],
    ['journal retention below a day', (c) => (c.journal.retentionDays = 0), 'journal.retentionDays', />= 1 \(got 0\)/],
    ['journal retention not whole days', (c) => (c.journal.retentionDays = 1.5), 'journal.retentionDays', /integer/],
    ['attempts not an integer', (c) => (c.regions[0].attempts = 1.5), 'regions[0].attempts', /integer/],
    ['region code not two digits', (c) => (c.regions[0].code = '1'), 'regions[0].code', /two digits/],
    ['listen address not an IP', (c) => (c.sip.listen = [{ transport: 'udp', address: 'localhost' }]), 'sip.listen[0].address', /IPv4 or IPv6/],
    ['unknown transport', (c) => (c.sip.listen = [{ transport: 'sctp' }]), 'sip.listen[0].transport', /one of "udp", "tcp" \(got "sctp"\)/],
    ['no listen socket', (c) => (c.sip.listen = []), 'sip.listen', /at least 1 item/],
    ['no regions', (c) => (c.regions = []), 'regions', /at least 1 item/],
    ['missing region targets', (c) => delete c.regions[0].targets, 'regions[0].targets', /required key is missing/],
    ['bad log level', (c) => (c.log.level = 'verbose'), 'log.level', /one of/],
    ['bad feature code', (c) => (c.conference.featureCode = '12'), 'conference.featureCode', /starting with \* or #/],
    ['bad prack mode', (c) => (c.sip.prack = 'yes'), 'sip.prack', /"supported", "required", "off"/],
  ];
  for (const [name, mutate, path, message] of cases) {
    const c = example();
    mutate(c);
    const errors = errorsOf(c);
    const hit = errors.find((e) => e.path === path);
    t.ok(hit, `${name}: error at ${path}`, { found: errors });
    if (hit) t.match(hit.message, message, `${name}: message`);
  }
});

t.test('IPv6 networks and bare addresses are accepted; BlockList matches them', async (t) => {
  const c = example();
  c.trunks[0].networks = ['2001:db8::/32', '::1', '192.0.2.7', '10.0.0.0/8'];
  const r = validateConfig(c);
  t.ok(r.ok, r.ok ? 'valid' : formatConfigErrors('x', r.errors));
  t.same(parseCidr('::1'), { address: '::1', prefix: 128, family: 'ipv6' });
  const acl = networksToBlockList(c.trunks[0].networks);
  t.ok(acl.check('2001:db8::5', 'ipv6'));
  t.ok(acl.check('10.1.2.3', 'ipv4'));
  t.ok(acl.check('192.0.2.7', 'ipv4'));
  t.notOk(acl.check('192.0.2.8', 'ipv4'));
});

t.test('several errors at once are all reported, in file order', async (t) => {
  const text = [
    'node: psap-1',
    'sip:',
    '  maxMessageBytes: 10',
    'regions:',
    '  - id: hovedstaden',
    '    code: "01"',
    '    targets: [ftp://x]',
    '    ringTimerS: 999',
    '  - id: hovedstaden',
    '    code: "01"',
    '    targets: [sip:a@b]',
    'routing:',
    '  defaultRegion: nord',
    '',
  ].join('\n');
  const r = parseConfigText(text, '/');
  t.notOk(r.ok);
  if (r.ok) return;
  t.same(paths(r.errors), [
    'sip.maxMessageBytes',
    'regions[0].targets[0]',
    'regions[0].ringTimerS',
    'regions[1].id',
    'regions[1].code',
    'routing.defaultRegion',
  ]);
  t.same(
    r.errors.map((e) => e.line),
    [3, 7, 8, 9, 10, 13],
    'each error knows its line',
  );
});

t.test('YAML syntax errors give line:col and the message', async (t) => {
  const r = parseConfigText('node: psap-1\nsip:\n  listen: [ { transport: udp }\nregions: []\n', '/');
  t.notOk(r.ok);
  if (r.ok) return;
  t.ok(r.errors.length >= 1);
  for (const e of r.errors) t.match(e.path, /^\d+:\d+$/);
  t.ok(r.errors.some((e) => e.path.startsWith('4:') || e.path.startsWith('3:')), 'points at the broken flow sequence', { errors: r.errors });
  t.notMatch(r.errors[0]?.message ?? '', /\n/, 'one line per error');

  const dup = parseConfigText('node: a\nnode: b\n', '/');
  t.same(dup.ok ? [] : dup.errors, [{ path: '2:1', message: 'Map keys must be unique' }]);

  const alias = parseConfigText('conference:\n  featureCode: *1\n', '/');
  t.notOk(alias.ok);
  if (!alias.ok) {
    t.equal(alias.errors[0]?.path, '2:16');
    t.match(alias.errors[0]?.message ?? '', /must be quoted, for example "\*1"/);
  }

  const empty = parseConfigText('# only a comment\n', '/');
  t.same(empty.ok ? [] : paths(empty.errors), ['']);
});

t.test('unknown keys are errors with their path and a suggestion', async (t) => {
  const r = parseConfigText(
    'regions:\n  - id: hovedstaden\n    code: "01"\n    targets: [sip:a@b]\n    ringTimer: 5\nprobes: { intervalS: 30, bogus: 1 }\nextra: true\n',
    '/',
  );
  t.notOk(r.ok);
  if (r.ok) return;
  t.same(r.errors, [
    { path: 'regions[0].ringTimer', message: 'unknown key; did you mean "ringTimerS"?', line: 5 },
    { path: 'probes.bogus', message: 'unknown key; allowed here: intervalS, timeoutMs, upAfter, downAfter', line: 6 },
    { path: 'extra', message: `unknown key; allowed here: node, log, sip, trunks, callTakers, desks, regions, routing, probes, conference, media, journal, messages, lamps, mqtt, metrics, recontact`, line: 7 },
  ]);
  const auth = example();
  auth.regions[0].auth = { username: 'u', password: 'p', realms: 'x' };
  t.same(
    errorsOf(auth).map((e) => [e.path, e.message]),
    [['regions[0].auth.realms', 'unknown key; did you mean "realm"?']],
  );
});

t.test('numbers where strings are needed get a quoting hint', async (t) => {
  const r = parseConfigText('regions:\n  - id: hovedstaden\n    code: 01\n    targets: [sip:a@b]\ndesks: [{ id: d, users: [1001] }]\n', '/');
  t.notOk(r.ok);
  if (r.ok) return;
  t.same(r.errors, [
    { path: 'regions[0].code', message: 'expected a string, got the number 1; quote it: "01"', line: 3 },
    { path: 'desks[0].users[0]', message: 'expected a string, got the number 1001; quote it: "1001"', line: 5 },
  ]);
});

t.test('passwordFile is read relative to the config file', async (t) => {
  const dir = t.testdir({
    secrets: { 'amk.pw': 's3cret\n' },
    'ok.yaml': exampleText.replace('auth: null ', 'auth: { username: psap, passwordFile: secrets/amk.pw, realm: amk } '),
    'missing.yaml': exampleText.replace('auth: null ', 'auth: { username: psap, passwordFile: nope.pw } '),
  });
  const ok = await loadConfig(join(dir, 'ok.yaml'));
  t.ok(ok.ok, ok.ok ? 'valid' : formatConfigErrors('ok.yaml', ok.errors));
  if (ok.ok) {
    t.same(ok.config.regions[0]?.auth, { username: 'psap', password: 's3cret', passwordFile: join(dir, 'secrets/amk.pw'), realm: 'amk' });
  }
  const missing = await loadConfig(join(dir, 'missing.yaml'));
  t.notOk(missing.ok);
  if (!missing.ok) {
    t.equal(missing.errors.length, 1);
    t.equal(missing.errors[0]?.path, 'regions[0].auth.passwordFile');
    t.match(missing.errors[0]?.message, /cannot read secret file: ENOENT: no such file or directory/);
    t.match(missing.errors[0]?.message, join(dir, 'nope.pw'));
    t.type(missing.errors[0]?.line, 'number');
  }
  const inline = example();
  inline.regions[0].auth = { username: 'psap', password: 'inline' };
  const r = validateConfig(inline);
  t.same(r.ok && r.config.regions[0]?.auth, { username: 'psap', password: 'inline', passwordFile: null, realm: null });

  const emptyDir = t.testdir({ 'empty.pw': '\n' });
  const emptyCfg = example();
  emptyCfg.regions[0].auth = { username: 'psap', passwordFile: 'empty.pw' };
  t.match(errorsOf(emptyCfg, emptyDir), [{ path: 'regions[0].auth.passwordFile', message: /is empty/ }]);
});

t.test('a missing config file is one clear error', async (t) => {
  const r = await loadConfig('/nonexistent/amk-bridge.yaml');
  t.notOk(r.ok);
  if (!r.ok) t.match(r.errors, [{ path: '', message: /cannot read config file: ENOENT/ }]);
});

t.test('redactSecrets hides passwords in a deep copy', async (t) => {
  const c = example();
  c.regions[0].auth = { username: 'psap', password: 'hunter2' };
  const r = validateConfig(c);
  t.ok(r.ok);
  if (!r.ok) return;
  const red: Config = redactSecrets(r.config);
  t.equal(red.regions[0]?.auth?.password, '***');
  t.equal(red.regions[0]?.auth?.username, 'psap');
  t.equal(r.config.regions[0]?.auth?.password, 'hunter2', 'original untouched');
  t.not(red.regions, r.config.regions, 'deep copy');
  t.notMatch(JSON.stringify(red), /hunter2/);
  t.same(redactSecrets({ a: [{ password: null, token: 'x', secret: '' }] }), { a: [{ password: null, token: '***', secret: '' }] });
});

t.test('formatConfigErrors: one line per error', async (t) => {
  t.equal(
    formatConfigErrors('/etc/amk.yaml', [
      { path: 'regions[0].ringTimerS', message: 'must be <= 300 (got 999)', line: 12 },
      { path: '3:5', message: 'Map keys must be unique' },
      { path: '', message: 'the file holds no configuration' },
    ]),
    [
      '/etc/amk.yaml: regions[0].ringTimerS: must be <= 300 (got 999) (line 12)',
      '/etc/amk.yaml: 3:5: Map keys must be unique',
      '/etc/amk.yaml: the file holds no configuration',
    ].join('\n'),
  );
});

t.test('JSON Schema', async (t) => {
  const committed = readFileSync(SCHEMA_FILE, 'utf8');
  t.equal(
    committed,
    configJsonSchemaText(),
    'config/amk-bridge.schema.json is up to date (regenerate: amk-bridge print-schema > config/amk-bridge.schema.json)',
  );
  const schema = configJsonSchema();
  t.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
  t.equal(schema.title, 'amk-bridge configuration');
  t.match(exampleText.split('\n')[0], '# yaml-language-server: $schema=./amk-bridge.schema.json');

  const warnings: unknown[] = [];
  const ajv = new Ajv.default({ strict: true, allErrors: true, logger: { log() {}, warn: (...a: unknown[]) => warnings.push(a), error: (...a: unknown[]) => warnings.push(a) } });
  const validate = ajv.compile(JSON.parse(committed) as object);
  t.same(warnings, [], 'strict ajv compiles it without warnings');
  t.ok(validate(YAML.parse(exampleText)), 'the example validates', { errors: validate.errors });
  t.ok(validate({}), 'everything has a default');

  const typo = example();
  typo.regions[0].ringTimer = 5;
  t.notOk(validate(typo), 'editors flag unknown keys too');
  const twoKinds = example();
  twoKinds.routing.rules[0].match.toUser = { equals: '1', prefix: '2' };
  t.notOk(validate(twoKinds), 'editors flag a condition with two kinds');
  const badUri = example();
  badUri.callTakers.target = 'http://x';
  t.notOk(validate(badUri), 'editors flag a non-SIP URI');

  // every key carries a description (operators read them in their editor)
  const undocumented: string[] = [];
  const walk = (s: any, path: string): void => {
    if (s === null || typeof s !== 'object') return;
    for (const [k, v] of Object.entries((s.properties ?? {}) as Record<string, any>)) {
      const described = typeof v.description === 'string' || (Array.isArray(v.anyOf) && v.anyOf.some((x: any) => typeof x.description === 'string'));
      if (!described) undocumented.push(`${path}.${k}`);
      walk(v, `${path}.${k}`);
    }
    if (s.items) walk(s.items, `${path}[]`);
    for (const alt of (s.anyOf ?? []) as unknown[]) walk(alt, path);
  };
  walk(schema, '');
  t.same(undocumented, [], 'every key has a description');
});

t.test('testConfig helper', async (t) => {
  const c = testConfig({
    callTakerTarget: 'sip:ct@127.0.0.1:6000',
    regionTargets: ['sip:amk@127.0.0.1:6001'],
    region: { ringTimerS: 0.3 },
    sip: { timers: { t1Ms: 50 } },
  });
  t.same(c.sip.listen.map((l) => [l.transport, l.address, l.port]), [
    ['udp', '127.0.0.1', 0],
    ['tcp', '127.0.0.1', 0],
  ]);
  t.equal(c.callTakers.target, 'sip:ct@127.0.0.1:6000');
  t.same(c.regions[0]?.targets, ['sip:amk@127.0.0.1:6001']);
  t.equal(c.regions[0]?.ringTimerS, 0.3);
  t.equal(c.regions[0]?.attempts, 2, 'other defaults apply');
  t.equal(c.sip.timers.t1Ms, 50);
  t.equal(c.sip.timers.t2Ms, 4000, 'deep merge keeps sibling defaults');
  t.equal(c.sip.timers.timerBMs, 3200);
  t.equal(c.regions[0]?.probe, false);
  t.equal(c.callTakers.probe, false);
  t.equal(c.trunks[0]?.probe, null);
  t.equal(c.log.level, process.env.TEST_LOG_LEVEL ?? 'silent');
  t.ok(networksToBlockList(c.trunks[0]?.networks ?? []).check('::1', 'ipv6'), 'IPv6 loopback allowed');

  const two = testConfig({
    regions: [
      { id: 'a', code: '01', targets: ['sip:a@127.0.0.1:1'] },
      { id: 'b', code: '02', targets: ['sip:b@127.0.0.1:2'] },
    ],
    routing: { defaultRegion: 'a', rules: [{ region: 'b', match: { toUser: { equals: '2' } } }] },
  });
  t.same(two.regions.map((r) => r.id), ['a', 'b'], 'lists replace the default');
  t.throws(() => testConfig({ region: { attempts: 0 } }), /regions\[0\]\.attempts: must be >= 1/);
  t.equal(testConfigInput().node, 'test');
});
