// The running bridge over MQTT: its embedded broker, retained state/info/health from real
// state, and technicians' commands that act on a real call (a CTI conference-in that dials a
// SIPp region, the story of that request, the outbox, a refused reload).
import t, { type Test } from 'tap';
import mqtt from 'mqtt';
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { flow, waitFor, settle } from '../procedure/helpers.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { startDaemon } from '../helpers/daemon.js';
import { testConfigInput } from '../helpers/config.js';

interface Client {
  messages: Map<string, unknown>;
  events: Record<string, unknown>[];
  request(cmd: string, payload: unknown): Promise<Record<string, unknown>>;
  end(): Promise<void>;
}

async function connect(t: Test, port: number, base: string): Promise<Client> {
  const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 200 });
  t.teardown(() => c.endAsync(true));
  const messages = new Map<string, unknown>();
  const events: Record<string, unknown>[] = [];
  const waiting = new Map<string, (v: Record<string, unknown>) => void>();
  c.on('message', (topic, payload) => {
    const v = payload.length ? JSON.parse(payload.toString()) : null;
    messages.set(topic, v);
    if (topic === `${base}/bridge/event`) events.push(v);
    const m = /\/bridge\/response\/(.+)$/.exec(topic);
    if (m) {
      const tx = String((v as { transaction?: unknown }).transaction);
      waiting.get(`${m[1]}#${tx}`)?.(v);
    }
  });
  await c.subscribeAsync(`${base}/#`);
  let n = 0;
  return {
    messages, events,
    request(cmd, payload) {
      const tx = `tx-${++n}`;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no response to ${cmd}`)), 10_000);
        waiting.set(`${cmd}#${tx}`, (v) => {
          clearTimeout(timer);
          resolve(v);
        });
        void c.publishAsync(`${base}/bridge/request/${cmd}`, JSON.stringify({ ...(payload as object), transaction: tx }));
      });
    },
    end: () => c.endAsync(),
  };
}

t.test('over MQTT: retained state, info without secrets, health from real state; a CTI conference-in by desk; its story', async (t) => {
  const f = await flow(t, {
    home: { scenario: 'region-answer.xml', keys: { answer_ms: 300 } },
    calltaker: { scenario: 'calltaker-answer.xml' },
    trunkHoldMs: 4000,
    config: { mqtt: { embedded: { port: 0 }, healthIntervalS: 1 }, node: 'mqtt-test' },
  });
  const port = f.bridge.brokerPort!;
  t.ok(port > 0, 'the embedded broker listens');
  const base = 'amk-bridge/mqtt-test';
  const c = await connect(t, port, base);
  await waitFor(() => c.messages.has(`${base}/bridge/health`), 5000, 'retained health');
  t.same(c.messages.get(`${base}/bridge/state`), { state: 'online' });
  const info = c.messages.get(`${base}/bridge/info`) as { node: string; config: { node: string }; configSchema: object };
  t.equal(info.node, 'mqtt-test');
  t.ok(info.configSchema, 'the config schema is published');
  const health = c.messages.get(`${base}/bridge/health`) as { outbox: object; calls: { active: number } };
  t.same(Object.keys(health.outbox).sort(), ['failed', 'oldestAgeS', 'pending']);

  // The call is answered at desk-1 (user 1001); the technician's CTI command conferences in.
  await waitFor(() => f.bridge.conference.callOfDesk('desk-1') !== null, 8000, 'call at desk-1');
  const r = await c.request('conference_in', { desk: 'desk-1' });
  t.equal(r.status, 'ok', JSON.stringify(r));
  t.equal(r.transaction, 'tx-1', 'the transaction is echoed');
  const { requestId } = r.data as { requestId: string };
  await waitFor(() => f.attempts().some((a) => a.phase === 'answered'), 8000, 'the region answered');
  const nobody = await c.request('conference_in', { desk: 'desk-9' });
  t.same([nobody.status, nobody.error], ['error', 'no call in progress at desk desk-9']);
  const story = await c.request('incident', { id: requestId });
  t.equal(story.status, 'ok');
  const s = story.data as { request: { outcome: string; trigger: string }; attempts: { outcome: string }[] };
  t.same([s.request.outcome, s.request.trigger, s.attempts.map((a) => a.outcome)], ['contact', 'cti', ['answered']]);
  const h = await c.request('health_check', {});
  t.equal((h.data as { calls: { active: number } }).calls.active, 1, 'health_check reads the real state: one call up');
  await waitFor(() => c.events.some((e) => e.type === 'request.ended'), 5000, 'request event published');
  const bad = await c.request('conference_in', {});
  t.equal(bad.status, 'error');
  t.match(bad.error, /needs "desk" or "callId"/, 'a bad payload is named');
  await settle(f);
  await c.end();
});

t.test('over MQTT: outbox and stats after a no-contact request; a refused reload raises the alarm and keeps the config', async (t) => {
  const f = await flow(t, {
    home: { scenario: 'region-busy.xml' },
    region: { attempts: 1 },
    trunkHoldMs: 1500,
    config: { mqtt: { embedded: { port: 0 } }, node: 'mqtt-test2' },
  });
  const base = 'amk-bridge/mqtt-test2';
  const c = await connect(t, f.bridge.brokerPort!, base);
  await waitFor(() => f.receiver.accepted().length === 1, 8000, 'the message');
  const ob = await c.request('outbox', { state: 'delivered' });
  const rows = (ob.data as { messages: { type: string; payload?: unknown }[] }).messages;
  t.same(rows.map((m) => m.type), ['no-contact']);
  t.notOk('payload' in rows[0]!, 'no payload over MQTT');
  const st = await c.request('stats', {});
  t.same((st.data as { requests: object }).requests, { 'no-contact': 1 });
  const retry = await c.request('outbox/retry', {});
  t.same(retry.data, { keys: [] }, 'nothing to retry');
  // The bridge was started without a config file here: reload says so.
  const rl = await c.request('reload', {});
  t.equal(rl.status, 'error');
  await settle(f);
});

t.test('reload over MQTT validates the file first', async (t) => {
  const { startTestBridge } = await import('../helpers/bridge.js');
  const dir = t.testdir({});
  const file = `${dir}/amk-bridge.yaml`;
  writeFileSync(file, 'node: [not valid\n');
  const { bridge } = await startTestBridge(t, { mqtt: { embedded: { port: 0 } }, node: 'mqtt-test3' } as never, { configPath: file });
  const alarms: string[] = [];
  bridge.bus.on('alarm', (e) => alarms.push(e.kind));
  const c = await connect(t, bridge.brokerPort!, 'amk-bridge/mqtt-test3');
  const r = await c.request('reload', {});
  t.equal(r.status, 'error');
  t.match(r.error, /amk-bridge\.yaml/, 'the error names the file and the problem');
  t.same(alarms, ['config-error']);
  t.ok(bridge.lamps.service.systemState().faults.includes('config'), 'the fault lamp knows');
  await c.end();
});

t.test("the site's broker (mosquitto) goes away mid-call and comes back: the call is unaffected, the state is published again", async (t) => {
  const mq = await startMosquitto(t);
  const f = await flow(t, {
    home: { scenario: 'region-answer.xml', keys: { answer_ms: 200 } },
    trunkHoldMs: 6000,
    config: { mqtt: { embedded: { enabled: false }, url: mq.url }, node: 'mqtt-site' },
  });
  const base = 'amk-bridge/mqtt-site';
  await waitFor(() => f.bridge.mqtt!.stats().connected, 8000, 'connected to mosquitto');
  await waitFor(() => f.attempts().some((a) => a.phase === 'answered'), 8000, 'the region answered');
  await mq.stop();
  await waitFor(() => !f.bridge.mqtt!.stats().connected, 8000, 'the bridge noticed');
  t.equal(f.bridge.b2bua.activeCalls, 1, 'the call goes on without the broker');
  await mq.start();
  await waitFor(() => f.bridge.mqtt!.stats().connected, 10_000, 'reconnected');
  const c = await connect(t, mq.port, base);
  await waitFor(() => c.messages.has(`${base}/bridge/state`) && c.messages.has(`${base}/bridge/info`), 5000, 'retained topics again');
  t.same(c.messages.get(`${base}/bridge/state`), { state: 'online' }, 'published again after the reconnect (the broker kept nothing)');
  const tr = await f.trunk;
  t.equal(tr.successful, 1, 'the citizen\'s call completed normally');
  t.equal((await f.home.done).successful, 1, 'the region leg completed normally');
  await c.end();
});

t.test('the daemon killed -9: its last will leaves bridge/state offline (retained)', async (t) => {
  const mq = await startMosquitto(t);
  const dir = t.testdir({});
  const file = `${dir}/amk-bridge.yaml`;
  writeFileSync(file, stringify({ ...testConfigInput(), node: 'mqtt-lwt', journal: { path: `${dir}/j.sqlite` }, mqtt: { embedded: { enabled: false }, url: mq.url } }));
  const d = startDaemon(t, file);
  await d.ready;
  const base = 'amk-bridge/mqtt-lwt';
  const c = await connect(t, mq.port, base);
  await waitFor(() => JSON.stringify(c.messages.get(`${base}/bridge/state`)) === '{"state":"online"}', 8000, 'online');
  await d.kill('SIGKILL');
  await waitFor(() => JSON.stringify(c.messages.get(`${base}/bridge/state`)) === '{"state":"offline"}', 8000, 'offline by the last will');
  await c.end();
  const late = await connect(t, mq.port, base);
  await waitFor(() => late.messages.has(`${base}/bridge/state`), 5000, 'retained');
  t.same(late.messages.get(`${base}/bridge/state`), { state: 'offline' }, 'retained for whoever looks later');
  await late.end();
});
