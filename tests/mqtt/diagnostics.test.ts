// MQTT diagnostics against real brokers: the embedded aedes broker (MQTT 3.1.1) and Debian's
// mosquitto with passwords and an ACL, started by the test on its own port with its own config.
// The bridge side is a stub source whose commands are plain functions of this file.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connectAsync, type MqttClient } from 'mqtt';
import t, { type Test } from 'tap';
import { EventBus, type CallFacts } from '../../src/core/events.js';
import { startEmbeddedBroker } from '../../src/mqtt/broker.js';
import { MqttDiagnostics, type MqttDiagnosticsOptions } from '../../src/mqtt/diagnostics.js';
import { Pseudonymiser, scrub } from '../../src/mqtt/pseudonym.js';
import { COMMANDS, type BridgeCommands, type HealthSnapshot } from '../../src/mqtt/types.js';
import { EventLoopMonitor, Counters } from '../../src/mqtt/health.js';
import { childEnv, trackChild } from '../helpers/children.js';
import { freePort } from '../helpers/ports.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { makeCert } from '../helpers/receiver.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls until `cond` holds; fails with `what` after a generous timeout (waiting only). */
async function until(cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const BASE = 'amk-bridge/test';
/** The caller's number, and the forms it must never be published in. */
const CALLER = '+4512345678';
const CLEAR = /12\s*34\s*56\s*78/;
const PSEUDONYM = /^p:[0-9a-f]{12}$/;

// ---- a stub bridge ------------------------------------------------------------------------------

interface LogLine { level: 'info' | 'warn' | 'error'; o: object; m?: string }

function stubSource() {
  const bus = new EventBus();
  const calls: { cmd: string; args?: unknown }[] = [];
  const logs: LogLine[] = [];
  let uptime = 0;
  let releaseLampTest: (() => void) | null = null;
  const state = { reloadFails: false, holdLampTest: false };
  const health = (): HealthSnapshot => ({
    node: 'test-node', version: '9.9.9', at: new Date().toISOString(), uptimeS: ++uptime,
    targets: [
      { id: 'trunk-a', kind: 'trunk', uri: 'sip:+4570000001@trunk.example', up: true, since: 1000, lastStatus: 200 },
      { id: 'amk-syd', kind: 'region', uri: 'sip:amk@syd.example', up: false, since: 2000, lastStatus: 503 },
    ],
    messageEndpoints: [{ url: 'https://amk.example/messages', up: true, since: 1000, lastStatus: 200, lastError: null }],
    serialPorts: [{ id: 'tower', path: '/dev/ttyUSB0', open: true, since: 1000, lastError: null }],
    outbox: { pending: 1, failed: 0, oldestAgeS: 3 },
    eventLoopLagMs: { p50: 0.1, p99: 0.5, max: 1 },
    memory: { rssMb: 50, heapUsedMb: 20 },
    calls: { active: 2 },
    lamps: { system: 'ok', faults: [] },
    counters: { 'call.started': uptime },
    mqtt: { dropped: -1, queued: -1 },
  });
  const commands: BridgeCommands = {
    healthCheck: () => { calls.push({ cmd: 'health_check' }); return health(); },
    lampTest: async (args) => {
      calls.push({ cmd: 'lamp_test', args });
      if (state.holdLampTest) await new Promise<void>((r) => { releaseLampTest = r; });
      return { steps: 7 };
    },
    reload: async () => {
      calls.push({ cmd: 'reload' });
      if (state.reloadFails) throw new Error('config invalid: regions[0].uri: must be a SIP URI');
      return { applied: true };
    },
    conferenceIn: (args) => { calls.push({ cmd: 'conference_in', args }); return { requestId: 'r-cti-1', region: args.region ?? 'syd' }; },
    abort: (args) => { calls.push({ cmd: 'abort', args }); return { requestId: 'r-1' }; },
    stats: (args) => { calls.push({ cmd: 'stats', args }); return { from: args.from ?? null, to: args.to ?? null, calls: 12 }; },
    outbox: (args) => { calls.push({ cmd: 'outbox', args }); return { state: args.state ?? 'pending', items: [] }; },
    outboxRetry: (args) => { calls.push({ cmd: 'outbox/retry', args }); return { keys: args.key ? [args.key] : ['k1', 'k2'] }; },
    incident: (args) => {
      calls.push({ cmd: 'incident', args });
      if (args.id === 'nope') throw new Error('no request "nope"');
      return { id: args.id, callerNumber: CALLER, story: [`INVITE from sip:${CALLER}@ims.example;user=phone`, 'attempt 1: busy'] };
    },
  };
  const source = { bus, info: () => ({ node: 'test-node', version: '9.9.9', config: { mqtt: { password: '(removed)' } } }), health, commands };
  const log = {
    info: (o: object, m?: string) => { logs.push({ level: 'info', o, m }); },
    warn: (o: object, m?: string) => { logs.push({ level: 'warn', o, m }); },
    error: (o: object, m?: string) => { logs.push({ level: 'error', o, m }); },
  };
  return { bus, source, log, calls, logs, state, releaseLampTest: () => releaseLampTest?.() };
}

function diagnostics(t: Test, url: string, stub: ReturnType<typeof stubSource>, o: Partial<MqttDiagnosticsOptions> = {}): MqttDiagnostics {
  const d = new MqttDiagnostics({
    url, protocolVersion: 4, baseTopic: BASE, commandPrefix: 'bridge/request', healthIntervalS: 30, pseudonymise: true, queueLimit: 1000, ...o,
  }, stub.source, stub.log);
  t.teardown(() => d.stop());
  d.start();
  return d;
}

// ---- a client that records what it sees ---------------------------------------------------------

interface Got { topic: string; text: string; retain: boolean }

class Watcher {
  readonly got: Got[] = [];
  constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => this.got.push({ topic, text: payload.toString('utf8'), retain: packet.retain }));
  }

  static async open(t: Test, url: string, sub: string | null = `${BASE}/#`, o: { username?: string; password?: string } = {}): Promise<Watcher> {
    const client = await connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...o });
    client.on('error', () => {});
    t.teardown(() => client.endAsync(true));
    const w = new Watcher(client);
    if (sub !== null) await client.subscribeAsync(sub, { qos: 1 });
    return w;
  }

  on(topic: string): Got[] {
    return this.got.filter((g) => g.topic === `${BASE}/${topic}`);
  }

  json(g: Got | undefined): Record<string, unknown> {
    if (!g) throw new Error('no message');
    return JSON.parse(g.text) as Record<string, unknown>;
  }

  async next(topic: string, from: number, what = topic): Promise<Got> {
    let hit: Got | undefined;
    await until(() => (hit = this.got.slice(from).find((g) => g.topic === `${BASE}/${topic}`)) !== undefined, what);
    return hit!;
  }

  async request(cmd: string, payload: unknown, o: { raw?: boolean; retain?: boolean } = {}): Promise<Record<string, unknown>> {
    const from = this.got.length;
    const text = o.raw ? String(payload) : payload === undefined ? '' : JSON.stringify(payload);
    await this.client.publishAsync(`${BASE}/bridge/request/${cmd}`, text, { qos: 1, retain: o.retain ?? false });
    return this.json(await this.next(`bridge/response/${cmd}`, from, `response to ${cmd} ${text}`));
  }
}

const facts = (over: Partial<CallFacts> = {}): CallFacts => ({
  requestUri: 'sip:112@gw.example', requestUriUser: '112', toUser: '112', fromNumber: CALLER, paiNumber: CALLER,
  trunk: 'trunk-a', source: '10.0.0.1', header: () => [`<sip:${CALLER}@ims.example>`], pidfLo: null, ...over,
});

// ---- pseudonyms (no broker) ---------------------------------------------------------------------

t.test('scrub: caller keys, numbers and numeric SIP/tel URIs anywhere; targets and ids kept', async (t) => {
  const p = new Pseudonymiser(Buffer.alloc(32, 7));
  const ps = p.of(CALLER);
  t.match(ps, PSEUDONYM);
  for (const form of ['004512345678', '+45 12 34 56 78', `sip:${CALLER}@ims.example;user=phone`, 'tel:+45-12-34-56-78', `sips:${CALLER}@x`]) {
    t.equal(p.of(form), ps, `same pseudonym for ${form}`);
  }
  t.not(new Pseudonymiser().of(CALLER), ps, 'another key (another process start), another pseudonym');
  t.not(p.of('+4512345679'), ps);

  const fn = () => 1;
  const input = {
    callId: 'a84b4c76e66710@pc33.example', requestId: 'r-17', at: 1_700_000_000_000, when: '2025-01-31T08:00:00Z',
    callerNumber: CALLER, fromNumber: '12345678', paiNumber: null, number: 4512345678, from: 'sip:anonymous@anonymous.invalid', caller: 'Anna',
    nested: [{ note: `ring from "Anna" <sip:${CALLER}@ims.example>;tag=x`, raw: '+45 12 34 56 78', n: 3 }],
    text: `no contact for ${CALLER} after 3 attempts`, target: 'sip:+4570102030@amk.example', targets: ['sip:+4570102030@amk.example'],
    port: '5060', desk: '101', header: fn, date: new Date(0), big: 10n, period: { from: '2025-01-01', to: '2025-01-31T00:00:00Z' },
  };
  const out = scrub(input, p) as Record<string, unknown>;
  t.notMatch(JSON.stringify(out), CLEAR, 'the number is nowhere');
  t.same(out, {
    callId: input.callId, requestId: 'r-17', at: input.at, when: input.when,
    callerNumber: ps, fromNumber: p.of('12345678'), paiNumber: null, number: p.of('4512345678'), from: 'sip:anonymous@anonymous.invalid', caller: p.of('Anna'),
    nested: [{ note: `ring from "Anna" <${ps}>;tag=x`, raw: ps, n: 3 }],
    text: `no contact for ${ps} after 3 attempts`, target: input.target, targets: input.targets,
    port: '5060', desk: '101', date: '1970-01-01T00:00:00.000Z', big: '10', period: input.period,
  });
  t.equal(input.callerNumber, CALLER, 'the input is not changed');
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  t.same(scrub(cyclic, p), { a: 1, self: '[circular]' });
  t.equal(scrub(input, null), input, 'pseudonymise off: the value as it is');
});

// ---- the embedded broker ------------------------------------------------------------------------

async function embedded(t: Test) {
  const broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0 });
  t.teardown(() => broker.close());
  return { broker, url: `mqtt://127.0.0.1:${broker.port}` };
}

t.test('embedded broker: a port in use is a clear error', async (t) => {
  const { broker } = await embedded(t);
  await t.rejects(startEmbeddedBroker({ host: '127.0.0.1', port: broker.port }),
    { message: new RegExp(`^embedded MQTT broker cannot listen on 127\\.0\\.0\\.1:${broker.port}: the port is in use .*\\(EADDRINUSE\\)$`) });
});

t.test('embedded: retained state, info and health on connect; health periodic from real state; stop → offline', async (t) => {
  const { url } = await embedded(t);
  const stub = stubSource();
  const d = diagnostics(t, url, stub, { healthIntervalS: 1, baseTopic: `${BASE}/` });
  await until(() => d.stats().connected, 'connected');

  const w = await Watcher.open(t, url);
  await until(() => w.on('bridge/state').length > 0 && w.on('bridge/info').length > 0 && w.on('bridge/health').length > 0, 'retained topics');
  for (const topic of ['bridge/state', 'bridge/info', 'bridge/health']) t.equal(w.on(topic)[0]!.retain, true, `${topic} retained`);
  t.same(w.json(w.on('bridge/state')[0]), { state: 'online' });
  t.same(w.json(w.on('bridge/info')[0]), { node: 'test-node', version: '9.9.9', config: { mqtt: { password: '(removed)' } } });
  const h1 = w.json(w.on('bridge/health')[0]) as unknown as HealthSnapshot;
  t.match(h1, { node: 'test-node', outbox: { pending: 1 }, calls: { active: 2 }, mqtt: { dropped: 0, queued: 0 } });
  t.equal(h1.targets[0]!.uri, 'sip:+4570000001@trunk.example', 'our own target URIs are not pseudonymised');

  const n = w.on('bridge/health').length;
  await until(() => w.on('bridge/health').length >= n + 2, 'two more health publications');
  const hs = w.on('bridge/health').map((g) => w.json(g).uptimeS as number);
  t.ok(hs[hs.length - 1]! > hs[0]!, 'every publication is a new snapshot');
  t.ok(w.on('bridge/health').slice(n).every((g) => !g.retain), 'live publications to an existing subscriber');

  await d.stop();
  t.same(d.stats().connected, false);
  const w2 = await Watcher.open(t, url);
  await until(() => w2.on('bridge/state').length > 0, 'retained state after stop');
  t.same(w2.json(w2.on('bridge/state')[0]), { state: 'offline' });
  t.equal(w2.on('bridge/state')[0]!.retain, true);
  t.notOk(stub.logs.some((l) => l.level === 'error'), 'no errors logged');
});

t.test('embedded: lamps retained; events with caller numbers pseudonymised everywhere', async (t) => {
  const { url } = await embedded(t);
  const stub = stubSource();
  const { bus } = stub;
  const at = 1_700_000_000_000;
  const d = diagnostics(t, url, stub);
  bus.emit('lamp.changed', { lamp: '101', state: 'dialing', at }); // before it is connected: published on connect
  t.equal(d.stats().connected, false);
  const w = await Watcher.open(t, url);
  await until(() => d.stats().connected && w.on('lamp/101').length > 0, 'lamp/101 after connect');
  t.same(w.json(w.on('lamp/101')[0]), { state: 'dialing', at });

  const from = w.got.length;
  bus.emit('lamp.changed', { lamp: '101', state: 'connected', at: at + 1 });
  bus.emit('lamp.changed', { lamp: 'system', state: 'ok', at: at + 2 });
  bus.emit('call.started', { callId: 'c1', facts: facts(), at });
  bus.emit('request.started', { requestId: 'r1', callId: 'c1', region: 'syd', desk: '101', trigger: 'dtmf', at });
  bus.emit('request.state', { requestId: 'r1', callId: 'c1', desk: '101', state: 'dialing', attempt: 1, region: 'syd', at });
  bus.emit('conference.attempt', { callId: 'c1', requestId: 'r1', attemptId: 'a1', n: 1, region: 'syd', target: 'sip:+4570102030@amk.example', phase: 'failed', outcome: 'busy', status: 486, at });
  bus.emit('message.committed', { requestId: 'r1', callId: 'c1', key: 'k1', type: 'no-contact', region: 'syd', at });
  bus.emit('message.failed', { requestId: 'r1', callId: 'c1', key: 'k1', type: 'no-contact', error: `rejected: caller ${CALLER}`, at });
  bus.emit('alarm', { kind: 'no-contact', text: `Ingen kontakt til AMK: tel:+45-12-34-56-78`, requestId: 'r1', at });
  bus.emit('request.ended', { requestId: 'r1', callId: 'c1', outcome: 'no-contact', stage: null, region: 'syd', attempts: 3, at });
  bus.emit('call.ended', { callId: 'c1', reason: 'bye', by: 'citizen', at }); // not a published event
  await until(() => w.on('bridge/event').length >= 8, 'eight events');
  await until(() => w.on('lamp/system').length > 0 && w.on('lamp/101').length > 1, 'lamp updates');

  const events = w.on('bridge/event').map((g) => w.json(g));
  t.same(events.map((e) => e.type), ['call.started', 'request.started', 'request.state', 'conference.attempt', 'message.committed', 'message.failed', 'alarm', 'request.ended']);
  t.ok(w.on('bridge/event').every((g) => !g.retain), 'events are not retained');
  const started = events[0]!;
  t.same(Object.keys(started).sort(), ['at', 'callId', 'caller', 'trunk', 'type'], 'call.started: no facts object');
  t.match(started, { callId: 'c1', trunk: 'trunk-a', caller: PSEUDONYM });
  const ps = started.caller as string;
  t.match(events[3], { type: 'conference.attempt', target: 'sip:+4570102030@amk.example', outcome: 'busy' }, 'our target URI kept');
  t.match(events[4], { type: 'message.committed', messageType: 'no-contact', key: 'k1' }, "a message event's own type is messageType");
  t.equal(events[5]!.error, `rejected: caller ${ps}`, 'a number inside text: the same pseudonym');
  t.equal(events[6]!.text, `Ingen kontakt til AMK: ${ps}`, 'a tel: URI inside text');
  t.same(w.json(w.on('lamp/101').at(-1)), { state: 'connected', at: at + 1 });
  t.equal(w.on('lamp/101').at(-1)!.topic, `${BASE}/lamp/101`);

  const incident = await w.request('incident', { id: 'r1' });
  t.match(incident, { status: 'ok', data: { id: 'r1', callerNumber: ps } });
  t.equal((incident.data as { story: string[] }).story[0], `INVITE from ${ps}`);
  const all = w.got.slice(from);
  t.ok(all.length >= 12);
  t.notOk(all.some((g) => CLEAR.test(g.text)), 'the clear number appears in no published payload');

  const w2 = await Watcher.open(t, url);
  await until(() => w2.on('lamp/101').length > 0 && w2.on('lamp/system').length > 0, 'retained lamps');
  t.ok(w2.on('lamp/101')[0]!.retain);
  t.same(w2.json(w2.on('lamp/101')[0]), { state: 'connected', at: at + 1 });
  t.equal(w2.on('bridge/event').length, 0, 'events are not retained');
});

t.test('embedded: pseudonymise off publishes the number as it is', async (t) => {
  const { url } = await embedded(t);
  const stub = stubSource();
  const d = diagnostics(t, url, stub, { pseudonymise: false });
  const w = await Watcher.open(t, url);
  await until(() => d.stats().connected, 'connected');
  stub.bus.emit('call.started', { callId: 'c9', facts: facts({ paiNumber: null }), at: 1 });
  await until(() => w.on('bridge/event').length > 0, 'event');
  t.same(w.json(w.on('bridge/event')[0]), { type: 'call.started', callId: 'c9', trunk: 'trunk-a', caller: CALLER, at: 1 });
});

t.test('embedded: every command, with and without transaction; errors name the problem', async (t) => {
  const { url } = await embedded(t);
  const stub = stubSource();
  const d = diagnostics(t, url, stub);
  const w = await Watcher.open(t, url);
  await until(() => d.stats().connected && stub.logs.some((l) => l.m === 'MQTT broker connected'), 'connected');
  await sleep(50); // the command subscription is acknowledged right after connect

  const shape = (r: Record<string, unknown>) => Object.keys(r).sort().join(',');

  // health_check: the real (stub) state, fresh each time.
  const h1 = await w.request('health_check', undefined);
  t.equal(shape(h1), 'data,status', 'no transaction, no error key');
  t.match(h1, { status: 'ok', data: { node: 'test-node', mqtt: { dropped: 0, queued: 0 } } });
  const h2 = await w.request('health_check', { transaction: 'tx-1' });
  t.match(h2, { status: 'ok', transaction: 'tx-1' });
  t.not((h2.data as HealthSnapshot).uptimeS, (h1.data as HealthSnapshot).uptimeS, 'not a constant');
  t.match(await w.request('health_check', { transaction: 7 }), { status: 'ok', transaction: 7 });

  const ok: [string, unknown, unknown, unknown?][] = [
    // cmd, payload, expected data, expected args seen by the bridge
    ['lamp_test', {}, { steps: 7 }, {}],
    ['lamp_test', { stepMs: 50 }, { steps: 7 }, { stepMs: 50 }],
    ['reload', {}, { applied: true }],
    ['conference_in', { desk: '101' }, { requestId: 'r-cti-1', region: 'syd' }, { desk: '101' }],
    ['conference_in', { callId: 'c1', region: 'nord' }, { requestId: 'r-cti-1', region: 'nord' }, { callId: 'c1', region: 'nord' }],
    ['abort', { callId: 'c1' }, { requestId: 'r-1' }, { callId: 'c1' }],
    ['abort', { desk: '101' }, { requestId: 'r-1' }, { desk: '101' }],
    ['stats', {}, { from: null, to: null, calls: 12 }, {}],
    ['stats', { from: '2025-01-01', to: '2025-01-31T23:59:59Z' }, { from: '2025-01-01', to: '2025-01-31T23:59:59Z', calls: 12 }],
    ['outbox', {}, { state: 'pending', items: [] }, {}],
    ['outbox', { state: 'failed', limit: 10 }, { state: 'failed', items: [] }, { state: 'failed', limit: 10 }],
    ['outbox/retry', {}, { keys: ['k1', 'k2'] }, {}],
    ['outbox/retry', { key: 'k9' }, { keys: ['k9'] }, { key: 'k9' }],
    ['incident', { id: 'r7' }, { id: 'r7' }, { id: 'r7' }],
  ];
  for (const [cmd, payload, data, args] of ok) {
    for (const transaction of [undefined, `t-${cmd}`]) {
      const before = stub.calls.length;
      const r = await w.request(cmd, transaction === undefined ? payload : { ...(payload as object), transaction });
      t.match(r, { status: 'ok', data }, `${cmd} ${JSON.stringify(payload)}`);
      t.equal(shape(r), transaction === undefined ? 'data,status' : 'data,status,transaction');
      if (transaction !== undefined) t.equal(r.transaction, transaction, 'transaction echoed');
      t.equal(stub.calls.length, before + 1, 'the bridge was called once');
      t.equal(stub.calls[before]!.cmd, cmd);
      if (args !== undefined) t.same(stub.calls[before]!.args, args, 'arguments without transaction');
    }
  }
  t.same(COMMANDS.filter((c) => !stub.calls.some((x) => x.cmd === c)), [], 'every command was exercised');

  // Failures of the bridge become error responses with its message.
  stub.state.reloadFails = true;
  t.same(await w.request('reload', { transaction: 'r' }), { status: 'error', data: null, error: 'config invalid: regions[0].uri: must be a SIP URI', transaction: 'r' });
  t.same(await w.request('incident', { id: 'nope' }), { status: 'error', data: null, error: 'no request "nope"' });

  // Bad requests: refused before the bridge sees them, the problem named.
  const before = stub.calls.length;
  const bad: [string, unknown, RegExp, boolean?][] = [
    ['health_check', 'not json', /^payload is not valid JSON: /, true],
    ['health_check', '{"transaction": 1', /^payload is not valid JSON: /, true],
    ['health_check', '"health"', /^payload must be a JSON object$/, true],
    ['health_check', '5', /^payload must be a JSON object$/, true],
    ['health_check', '[1]', /^payload must be a JSON object$/, true],
    ['health_check', 'null', /^payload must be a JSON object$/, true],
    ['health_check', { transaction: { a: 1 } }, /^"transaction" must be a string or a number$/, true],
    ['health_check', { verbose: true }, /^health_check: unknown argument "verbose" \(health_check takes no arguments\)$/],
    ['explode', {}, /^unknown command "explode"; known commands: health_check, lamp_test, reload, conference_in, abort, stats, outbox, outbox\/retry, incident$/],
    ['outbox/purge', {}, /^unknown command "outbox\/purge"/],
    ['lamp_test', { stepMs: 'fast' }, /^lamp_test: "stepMs" must be an integer from 10 to 10000$/],
    ['lamp_test', { stepMs: 5 }, /^lamp_test: "stepMs" must be an integer from 10 to 10000$/],
    ['conference_in', {}, /^conference_in: needs "desk" or "callId"$/],
    ['conference_in', { region: 'syd' }, /^conference_in: needs "desk" or "callId"$/],
    ['conference_in', { desk: 101 }, /^conference_in: "desk" must be a non-empty string$/],
    ['conference_in', { deks: '101' }, /^conference_in: unknown argument "deks" \(conference_in takes desk, callId, region\)$/],
    ['abort', {}, /^abort: needs "desk" or "callId"$/],
    ['stats', { from: 'yesterday' }, /^stats: "from" must be an ISO 8601 date or time/],
    ['stats', { to: '2025-13-45' }, /^stats: "to" must be an ISO 8601 date or time/],
    ['stats', { from: '2025-02-01', to: '2025-01-01' }, /^stats: "from" must not be after "to"$/],
    ['outbox', { state: 'lost' }, /^outbox: "state" must be one of pending, failed, delivered, all$/],
    ['outbox', { limit: 0 }, /^outbox: "limit" must be an integer from 1 to 10000$/],
    ['outbox/retry', { key: '' }, /^outbox\/retry: "key" must be a non-empty string$/],
    ['incident', {}, /^incident: needs "id" \(a request id\)$/],
    ['incident', { id: 42 }, /^incident: "id" must be a non-empty string$/],
  ];
  for (const [cmd, payload, error, raw] of bad) {
    for (const transaction of raw ? [undefined] : [undefined, 'tx-bad']) {
      const p = raw || transaction === undefined ? payload : { ...(payload as object), transaction };
      const text = typeof p === 'string' ? p : JSON.stringify(p);
      const r = await w.request(cmd, text, { raw: true });
      t.match(r, { status: 'error', data: null, error }, `${cmd} ${text}`);
      const echoed = transaction !== undefined && !/"transaction" must be/.test(String(r.error));
      t.equal(r.transaction, echoed ? transaction : undefined, echoed ? 'transaction echoed on an error' : 'no transaction');
    }
  }
  t.equal(stub.calls.length, before, 'no bad request reached the bridge');

  // A request published with the retain flag runs once, live; the copy the broker keeps is
  // refused when it is replayed to a (re)connecting bridge.
  const r = await w.request('abort', { desk: '101', transaction: 'kept' }, { retain: true });
  t.match(r, { status: 'ok', transaction: 'kept' }, 'live: run');
  const stub2 = stubSource();
  const from = w.got.length;
  const d2 = diagnostics(t, url, stub2, { clientId: 'amk-bridge-second' });
  const replay = w.json(await w.next('bridge/response/abort', from, 'the replayed retained request'));
  t.same(replay, { status: 'error', data: null, error: 'retained request ignored: publish requests without the retain flag', transaction: 'kept' });
  t.equal(stub2.calls.length, 0, 'not run on replay');
  await w.client.publishAsync(`${BASE}/bridge/request/abort`, '', { qos: 1, retain: true }); // clear it
  await d2.stop();
  t.notOk(w.got.some((g) => g.topic.endsWith('/bridge/response/bridge/state')), 'our own topics are not commands');
});

t.test('embedded: a slow command does not hold up events; commandPrefix and ACL prefix', async (t) => {
  const { url } = await embedded(t);
  const stub = stubSource();
  const d = diagnostics(t, url, stub, { commandPrefix: 'tech/cmd' });
  const w = await Watcher.open(t, url);
  await until(() => d.stats().connected && stub.logs.some((l) => l.m === 'MQTT broker connected'), 'connected');
  await sleep(50);

  stub.state.holdLampTest = true;
  const from = w.got.length;
  await w.client.publishAsync(`${BASE}/tech/cmd/lamp_test`, JSON.stringify({ stepMs: 100, transaction: 'slow' }), { qos: 1 });
  await until(() => stub.calls.some((c) => c.cmd === 'lamp_test'), 'lamp test running');
  stub.bus.emit('alarm', { kind: 'test', text: 'while the lamp test runs', at: 1 });
  await w.next('bridge/event', from);
  t.equal(w.on('bridge/response/lamp_test').length, 0, 'the lamp test is still running');
  stub.releaseLampTest();
  const res = w.json(await w.next('bridge/response/lamp_test', from));
  t.same(res, { status: 'ok', data: { steps: 7 }, transaction: 'slow' });

  await w.client.publishAsync(`${BASE}/bridge/request/health_check`, '{}', { qos: 1 });
  await w.client.publishAsync(`${BASE}/tech/cmd/health_check`, '{"transaction":"here"}', { qos: 1 });
  const h = w.json(await w.next('bridge/response/health_check', from));
  t.equal(h.transaction, 'here', 'only the configured prefix takes commands');
});

// ---- mosquitto ----------------------------------------------------------------------------------

const USERS = { bridge: 'bridge-secret', tech: 'tech-secret', watcher: 'watcher-secret' };
const ACL = [
    'user bridge',
    'topic write amk-bridge/#',
    `topic read ${BASE}/bridge/request/#`,
    '',
    'user tech',
    `topic write ${BASE}/bridge/request/health_check`,
    `topic read ${BASE}/bridge/response/#`,
    '',
    'user watcher',
    'topic read amk-bridge/#',
    `topic write ${BASE}/bridge/request/#`,
  ];
const mosquitto = (t: Test, o: { tls?: boolean } = {}): Promise<Mosquitto> => startMosquitto(t, { ...o, users: USERS, acl: ACL });

const as = (user: keyof typeof USERS) => ({ username: user, password: USERS[user] });

t.test('mosquitto: username/password, the ACL decides which requests reach the bridge', async (t) => {
  const mq = await mosquitto(t);
  const stub = stubSource();
  const d = diagnostics(t, mq.url, stub, { protocolVersion: 5, username: 'bridge', password: USERS.bridge, clientId: 'amk-bridge-acl' });
  await until(() => d.stats().connected && stub.logs.some((l) => l.m === 'MQTT broker connected'), 'bridge connected');
  const w = await Watcher.open(t, mq.url, `${BASE}/#`, as('watcher'));
  await until(() => w.on('bridge/state').length > 0, 'retained state');
  t.same(w.json(w.on('bridge/state')[0]), { state: 'online' });
  await sleep(100); // the command subscription

  const tech = await Watcher.open(t, mq.url, `${BASE}/bridge/response/#`, as('tech'));
  const from = tech.got.length;
  // Denied by the ACL: mosquitto drops it (MQTT 3.1.1 has no way to say so).
  await tech.client.publishAsync(`${BASE}/bridge/request/reload`, '{"transaction":"denied"}', { qos: 1 });
  await tech.client.publishAsync(`${BASE}/bridge/request/health_check`, '{"transaction":"allowed"}', { qos: 1 });
  const res = tech.json(await tech.next('bridge/response/health_check', from));
  t.match(res, { status: 'ok', transaction: 'allowed', data: { node: 'test-node' } });
  await sleep(300); // a reload answer would have come with the health check (same publisher, in order)
  t.equal(tech.on('bridge/response/reload').length, 0, 'no response to the denied request');
  t.notOk(stub.calls.some((c) => c.cmd === 'reload'), 'the bridge never saw it');

  // A wrong password: refused, logged, retried; nothing thrown.
  const stub2 = stubSource();
  const d2 = diagnostics(t, mq.url, stub2, { username: 'bridge', password: 'wrong', clientId: 'amk-bridge-wrong' });
  await until(() => stub2.logs.some((l) => l.level === 'warn' && /Not authorized|Bad username or password/i.test(String((l.o as { err?: string }).err))), 'refusal logged');
  t.equal(d2.stats().connected, false);
  stub2.bus.emit('alarm', { kind: 'test', text: 'queued', at: 1 });
  t.same(d2.stats(), { connected: false, dropped: 0, queued: 1 });
});

t.test('mosquitto: last will — the bridge process killed -9 leaves state offline (retained)', async (t) => {
  const mq = await mosquitto(t);
  const fixture = resolve(import.meta.dirname, 'fixtures/diagnostics-child.mjs');
  const dist = resolve(import.meta.dirname, '../../dist/mqtt/diagnostics.js');
  if (!existsSync(dist)) throw new Error(`${dist} missing: run npm run build first`);
  const w = await Watcher.open(t, mq.url, `${BASE}/bridge/state`, as('watcher'));

  const opts: MqttDiagnosticsOptions = {
    url: mq.url, username: 'bridge', password: USERS.bridge, protocolVersion: 5, baseTopic: BASE, commandPrefix: 'bridge/request',
    healthIntervalS: 30, pseudonymise: true, queueLimit: 100, clientId: 'amk-bridge-child',
  };
  const child = spawn(process.execPath, [fixture], { env: childEnv({ DIAG_OPTS: JSON.stringify(opts) }), stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  t.teardown(() => { child.kill('SIGKILL'); });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
  await until(() => out.includes('connected') || child.exitCode !== null, 'child connected').catch((e: Error) => { throw new Error(`${e.message}: ${err}`); });
  t.equal(child.exitCode, null, `child runs ${err}`);
  await until(() => w.got.some((g) => g.text === '{"state":"online"}'), 'online');

  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  await exited;
  await until(() => w.got.at(-1)?.text === '{"state":"offline"}', 'the last will');

  const w2 = await Watcher.open(t, mq.url, `${BASE}/bridge/state`, as('watcher'));
  await until(() => w2.got.length > 0, 'retained state');
  t.same(w2.got.map((g) => [g.text, g.retain]), [['{"state":"offline"}', true]], 'offline is retained');
});

t.test('mosquitto restarted: the bridge reconnects, re-publishes retained topics and the queue (oldest dropped)', async (t) => {
  const mq = await mosquitto(t);
  const stub = stubSource();
  const d = diagnostics(t, mq.url, stub, { username: 'bridge', password: USERS.bridge, queueLimit: 5, clientId: 'amk-bridge-restart' });
  await until(() => d.stats().connected, 'connected');
  stub.bus.emit('lamp.changed', { lamp: '101', state: 'waiting', at: 5 });

  await mq.stop();
  await until(() => !d.stats().connected, 'disconnect noticed');
  for (let i = 0; i < 20; i++) stub.bus.emit('alarm', { kind: 'test', text: `event ${i}`, at: i });
  t.same(d.stats(), { connected: false, dropped: 15, queued: 5 });

  // Back, but refusing the bridge until our watcher listens (so no event can pass unseen).
  execFileSync('mosquitto_passwd', ['-D', mq.passwd, 'bridge']);
  const nLogs = stub.logs.length;
  await mq.start();
  const w = await Watcher.open(t, mq.url, `${BASE}/#`, as('watcher'));
  await until(() => stub.logs.slice(nLogs).some((l) => /Not authorized/i.test(String((l.o as { err?: string }).err))), 'the bridge refused (and retrying)');
  t.equal(d.stats().connected, false);
  execFileSync('mosquitto_passwd', ['-b', mq.passwd, 'bridge', USERS.bridge]);
  mq.reload();

  await until(() => w.on('bridge/event').length >= 5, 'the queued events', 20_000);
  await sleep(200);
  const events = w.on('bridge/event').map((g) => w.json(g));
  t.same(events.map((e) => e.text), ['event 15', 'event 16', 'event 17', 'event 18', 'event 19'], 'the last five, in order');
  t.same(d.stats(), { connected: true, dropped: 15, queued: 0 });
  const order = (topic: string) => w.got.findIndex((g) => g.topic === `${BASE}/${topic}`);
  t.ok(order('bridge/state') >= 0 && order('bridge/state') < order('bridge/event'), 'state first, then the queue');
  t.ok(order('bridge/info') < order('bridge/event') && order('bridge/health') < order('bridge/event'));
  t.match(w.json(w.on('bridge/health').at(-1)), { mqtt: { dropped: 15 } });

  // The broker kept nothing (persistence false): what a newcomer sees was published again.
  const w2 = await Watcher.open(t, mq.url, `${BASE}/#`, as('watcher'));
  await until(() => ['bridge/state', 'bridge/info', 'bridge/health', 'lamp/101'].every((x) => w2.on(x).length > 0), 'retained after restart');
  t.same(w2.json(w2.on('bridge/state')[0]), { state: 'online' });
  t.same(w2.json(w2.on('lamp/101')[0]), { state: 'waiting', at: 5 });
  t.ok(w2.got.every((g) => g.retain), 'only retained topics for a newcomer');
  t.notOk(stub.logs.some((l) => l.level === 'error'), 'no errors logged');
});

t.test('mosquitto over TLS: the configured CA is required to connect', async (t) => {
  const mq = await mosquitto(t, { tls: true });
  const w = await Watcher.open(t, mq.url, `${BASE}/bridge/state`, as('watcher'));

  const other = stubSource();
  const bad = diagnostics(t, mq.tlsUrl!, other, { username: 'bridge', password: USERS.bridge, ca: Buffer.from(makeCert().certPem), clientId: 'amk-bridge-wrong-ca' });
  await until(() => other.logs.some((l) => l.level === 'warn' && /certificate/i.test(String((l.o as { err?: string }).err))), 'certificate refusal logged');
  t.equal(bad.stats().connected, false, 'another CA: not connected');

  const stub = stubSource();
  const d = diagnostics(t, mq.tlsUrl!, stub, { username: 'bridge', password: USERS.bridge, ca: Buffer.from(mq.certPem!), protocolVersion: 5, clientId: 'amk-bridge-tls' });
  await until(() => d.stats().connected, 'connected over TLS');
  await until(() => w.got.some((g) => g.text === '{"state":"online"}'), 'online, seen on the plain listener');
  await d.stop();
  await until(() => w.got.at(-1)?.text === '{"state":"offline"}', 'offline after stop');
});

// ---- health helpers -----------------------------------------------------------------------------

t.test('Counters count bus events by name; EventLoopMonitor reports lag and resets', async (t) => {
  const bus = new EventBus();
  const c = new Counters();
  const detach = c.attach(bus);
  bus.emit('alarm', { kind: 'x', text: 'y', at: 1 });
  bus.emit('alarm', { kind: 'x', text: 'y', at: 2 });
  bus.emit('call.started', { callId: 'c', facts: facts(), at: 1 });
  bus.emit('call.ended', { callId: 'c', reason: 'bye', by: 'citizen', at: 2 }); // not counted
  c.inc('mqtt.reconnect');
  t.same(c.snapshot(), { alarm: 2, 'call.started': 1, 'mqtt.reconnect': 1 });
  detach();
  bus.emit('alarm', { kind: 'x', text: 'y', at: 3 });
  t.equal(c.snapshot().alarm, 2, 'detached');

  const m = new EventLoopMonitor();
  t.teardown(() => m.stop());
  await sleep(50);
  m.snapshot(); // start a fresh period
  await sleep(30); // (the histogram skips its first sample after a reset)
  const end = Date.now() + 80;
  while (Date.now() < end) { /* hold the event loop */ }
  await sleep(30);
  const s = m.snapshot();
  t.ok(s.max >= 40, `a held loop shows as lag (max ${s.max} ms)`);
  t.ok(s.p50 >= 0 && s.p99 >= s.p50 && s.max >= s.p99, 'ordered');
});
