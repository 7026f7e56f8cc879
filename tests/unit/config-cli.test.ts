import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import YAML from 'yaml';
import { checkConfigCommand, type CliIO } from '../../src/cli/check-config.js';
import { describeStartError, runCli, USAGE } from '../../src/cli/main.js';
import { configJsonSchemaText } from '../../src/config/json-schema.js';
import { callLogger, createLogger, defaultPretty } from '../../src/log.js';

const EXAMPLE = fileURLToPath(new URL('../../config/amk-bridge.example.yaml', import.meta.url));
const exampleText = readFileSync(EXAMPLE, 'utf8');

function captureIO(): CliIO & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    out: () => out,
    err: () => err,
  };
}

t.test('check-config: a valid file prints "FILE: ok" and exits 0', async (t) => {
  const io = captureIO();
  t.equal(await checkConfigCommand([EXAMPLE], io), 0);
  t.equal(io.out(), `${EXAMPLE}: ok\n`);
  t.equal(io.err(), '');
});

t.test('check-config: a bad file prints every error as FILE: KEY: reason and exits 1', async (t) => {
  const badText = exampleText
    .replace('defaultRegion: hovedstaden', 'defaultRegion: nord')
    .replace('ringTimerS: 11 ', 'ringTimerS: 0 ')
    .replace('  prack: supported', '  prack: supported\n  prak: off');
  const lineOf = (needle: string): number => badText.split('\n').findIndex((l) => l.includes(needle)) + 1;
  const dir = t.testdir({ 'bad.yaml': badText, 'good.yaml': exampleText });
  const bad = join(dir, 'bad.yaml');
  const io = captureIO();
  t.equal(await checkConfigCommand([bad], io), 1);
  t.equal(io.out(), '');
  const lines = io.err().trimEnd().split('\n');
  t.same(lines, [
    `${bad}: sip.prak: unknown key; did you mean "prack"? (line ${lineOf('prak: off')})`,
    `${bad}: regions[0].ringTimerS: must be >= 0.1 (got 0) (line ${lineOf('ringTimerS: 0')})`,
    `${bad}: routing.defaultRegion: region "nord" is not defined in regions (defined: "hovedstaden") (line ${lineOf('defaultRegion: nord')})`,
  ]);

  const both = captureIO();
  t.equal(await checkConfigCommand([join(dir, 'good.yaml'), bad], both), 1, 'any bad file fails the run');
  t.equal(both.out(), `${join(dir, 'good.yaml')}: ok\n`);
  t.equal(both.err().trimEnd().split('\n').length, 3);
});

t.test('check-config: YAML syntax error and missing file', async (t) => {
  const dir = t.testdir({ 'broken.yaml': 'node: psap-1\nsip: [\n' });
  const io = captureIO();
  t.equal(await checkConfigCommand([join(dir, 'broken.yaml'), join(dir, 'absent.yaml')], io), 1);
  const lines = io.err().trimEnd().split('\n');
  t.match(lines[0], new RegExp(`^${join(dir, 'broken.yaml')}: \\d+:\\d+: .+`));
  t.match(lines.at(-1), `${join(dir, 'absent.yaml')}: cannot read config file: ENOENT`);
});

t.test('check-config: --print shows the effective config with secrets redacted', async (t) => {
  const dir = t.testdir({
    'pw.txt': 'topsecret\n',
    'c.yaml': exampleText.replace('auth: null ', 'auth: { username: psap, passwordFile: pw.txt } '),
  });
  const file = join(dir, 'c.yaml');
  const io = captureIO();
  t.equal(await checkConfigCommand(['--print', file], io), 0);
  t.equal(io.err(), `${file}: ok\n`);
  const printed = YAML.parse(io.out()) as { regions: { auth: { password: string; passwordFile: string } }[]; sip: { timers: { timerBMs: number } } };
  t.equal(printed.regions[0]?.auth.password, '***');
  t.equal(printed.regions[0]?.auth.passwordFile, join(dir, 'pw.txt'));
  t.equal(printed.sip.timers.timerBMs, 32000, 'defaults applied');
  t.notMatch(io.out(), /topsecret/);
});

t.test('check-config: usage errors exit 2, --help exits 0', async (t) => {
  const none = captureIO();
  t.equal(await checkConfigCommand([], none), 2);
  t.match(none.err(), /no FILE given[\s\S]*Usage: amk-bridge check-config/);
  const bogus = captureIO();
  t.equal(await checkConfigCommand(['--bogus', EXAMPLE], bogus), 2);
  t.match(bogus.err(), /Unknown option '--bogus'/);
  const help = captureIO();
  t.equal(await checkConfigCommand(['--help'], help), 0);
  t.match(help.out(), /Usage: amk-bridge check-config/);
});

t.test('cli: subcommands', async (t) => {
  const schema = captureIO();
  t.equal(await runCli(['print-schema'], schema), 0);
  t.equal(schema.out(), configJsonSchemaText());

  const check = captureIO();
  t.equal(await runCli(['check-config', EXAMPLE], check), 0);
  t.equal(check.out(), `${EXAMPLE}: ok\n`);

  const unknown = captureIO();
  t.equal(await runCli(['frobnicate'], unknown), 2);
  t.equal(unknown.out(), '');
  t.match(unknown.err(), 'unknown command "frobnicate"');
  t.match(unknown.err(), USAGE);

  const none = captureIO();
  t.equal(await runCli([], none), 2);
  t.match(none.err(), USAGE);

  const help = captureIO();
  t.equal(await runCli(['--help'], help), 0);
  t.equal(help.out(), USAGE);

  const ver = captureIO();
  t.equal(await runCli(['--version'], ver), 0);
  t.match(ver.out(), /^amk-bridge \d+\.\d+\.\d+/);

  const runHelp = captureIO();
  t.equal(await runCli(['run', '--help'], runHelp), 0);
  t.match(runHelp.out(), /run --config FILE/);

  const runNoConfig = captureIO();
  t.equal(await runCli(['run'], runNoConfig), 2);
  t.match(runNoConfig.err(), '--config FILE is required');
});

t.test('cli: run with an invalid config prints the errors and exits 1 before starting', async (t) => {
  const dir = t.testdir({ 'bad.yaml': exampleText.replace('attempts: 2 ', 'attempts: 0 ') });
  const file = join(dir, 'bad.yaml');
  const io = captureIO();
  t.equal(await runCli(['run', '--config', file], io), 1);
  t.match(io.err(), `${file}: regions[0].attempts: must be >= 1 (got 0)`);
  const badLevel = captureIO();
  t.equal(await runCli(['run', '--config', EXAMPLE, '--log-level', 'loud'], badLevel), 2);
});

t.test('start errors are described clearly', async (t) => {
  const inUse = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:5060'), { code: 'EADDRINUSE', address: '127.0.0.1', port: 5060 });
  t.equal(describeStartError(inUse), 'cannot listen on 127.0.0.1:5060: address already in use (another SIP server or bridge running?)');
  t.match(describeStartError(Object.assign(new Error('x'), { code: 'EACCES', address: '0.0.0.0', port: 506 })), /permission denied/);
  t.equal(describeStartError(new Error('boom')), 'boom');
});

t.test('logger: JSON lines, levels and call child loggers', async (t) => {
  const dest = new PassThrough();
  let text = '';
  dest.on('data', (c: Buffer) => (text += c.toString()));
  const log = createLogger({ level: 'info', destination: dest, base: { node: 'psap-1' } });
  log.debug('hidden');
  log.info({ x: 1 }, 'hello');
  const call = callLogger(log, { callId: 'abc@host', requestId: 'r1', attemptId: undefined });
  call.warn('ringing too long');
  await new Promise((r) => setImmediate(r));
  const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(lines.length, 2);
  t.match(lines[0], { level: 30, msg: 'hello', x: 1, node: 'psap-1' });
  t.match(lines[0]?.time, /^\d{4}-\d\d-\d\dT/);
  t.match(lines[1], { level: 40, msg: 'ringing too long', callId: 'abc@host', requestId: 'r1' });
  t.notOk(lines[1] !== undefined && 'attemptId' in lines[1], 'undefined ids are left out');
});

t.test('logger: pretty output to a stream, and the default choice', async (t) => {
  const dest = new PassThrough();
  let text = '';
  dest.on('data', (c: Buffer) => (text += c.toString()));
  const log = createLogger({ level: 'info', pretty: true, destination: dest });
  log.info({ callId: 'c1' }, 'pretty line');
  await new Promise((r) => setImmediate(r));
  t.match(text, /INFO.*pretty line/);
  t.match(text, /callId: "c1"/);
  t.throws(() => JSON.parse(text));

  t.equal(defaultPretty({}, true), true, 'terminal: pretty');
  t.equal(defaultPretty({}, false), false, 'pipe/journald: JSON');
  t.equal(defaultPretty({ LOG_FORMAT: 'json' }, true), false);
  t.equal(defaultPretty({ LOG_FORMAT: 'pretty' }, false), true);
});
