// Prometheus /metrics: a real HTTP listener on a free port, fed by bus events and gauge functions.
import http from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { EventBus, type CallFacts } from '../../src/core/events.js';
import { Journal } from '../../src/journal/journal.js';
import { STATS_WINDOW_MS, startMetrics } from '../../src/metrics/metrics.js';
import { messageCommit, requestStart, tempDir } from '../journal/fixtures/process.js';
import { freePort } from '../helpers/ports.js';
import { startTestBridge } from '../helpers/bridge.js';

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const facts: CallFacts = {
  requestUri: 'sip:112@gw', requestUriUser: '112', toUser: '112', fromNumber: '+4512345678', paiNumber: null,
  trunk: 'trunk-a', source: '127.0.0.1', header: () => [], pidfLo: null,
};

/** The value of one sample line (`name{labels} value`), or null. */
function sample(text: string, series: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? null : Number(line.slice(series.length + 1));
}

t.test('GET /metrics after bus events: counters, gauges, labels, default process metrics', async (t) => {
  const bus = new EventBus();
  let active = 3;
  let failTargets = false;
  const m = await startMetrics({ host: '127.0.0.1', port: await freePort('tcp') }, bus, {
    activeCalls: () => active,
    backlog: () => ({ pending: 2, failed: 1, oldestAgeS: 42.5 }),
    targets: () => {
      if (failTargets) throw new Error('no targets');
      return [
        { id: 'trunk-a', kind: 'trunk', up: true },
        { id: 'amk-syd', kind: 'region', up: false },
        { id: 'amk-nord', kind: 'region', up: null },
      ];
    },
    eventLoopLagMs: () => 1.25,
  });
  t.teardown(() => m.close());
  t.ok(m.port > 0);

  const at = Date.now();
  bus.emit('call.started', { callId: 'c1', facts, at });
  bus.emit('call.started', { callId: 'c2', facts, at });
  bus.emit('request.ended', { requestId: 'r1', callId: 'c1', outcome: 'contact', stage: 'home', region: 'syd', attempts: 1, at });
  bus.emit('request.ended', { requestId: 'r2', callId: 'c2', outcome: 'no-contact', stage: null, region: 'syd', attempts: 3, at });
  const attempt = { callId: 'c1', requestId: 'r1', attemptId: 'a1', n: 1, region: 'syd', target: 'sip:amk@syd', at };
  bus.emit('conference.attempt', { ...attempt, phase: 'started' });
  bus.emit('conference.attempt', { ...attempt, phase: 'ringing' });
  bus.emit('conference.attempt', { ...attempt, phase: 'failed', outcome: 'busy', status: 486 });
  bus.emit('conference.attempt', { ...attempt, attemptId: 'a2', n: 2, phase: 'answered', outcome: 'answered' });
  const msg = { requestId: 'r2', callId: 'c2', key: 'k1', type: 'no-contact' as const };
  bus.emit('message.committed', { ...msg, region: 'syd', at });
  bus.emit('message.delivered', { ...msg, endpoint: 'https://amk/x', latencyMs: 12, at });
  bus.emit('message.escalated', { ...msg, reason: 'deadline', detail: 'late', at });
  bus.emit('message.failed', { ...msg, error: 'HTTP 500', at });

  const r = await get(m.port, '/metrics');
  t.equal(r.status, 200);
  t.match(r.type, /^text\/plain; version=0\.0\.4/);
  const body = r.body;
  for (const name of ['amk_calls_total', 'amk_requests_total', 'amk_attempts_total', 'amk_messages_total', 'amk_outbox_pending', 'amk_outbox_failed',
    'amk_outbox_oldest_age_seconds', 'amk_target_up', 'amk_event_loop_lag_ms', 'amk_active_calls']) {
    t.match(body, new RegExp(`^# HELP ${name} `, 'm'), `${name} has HELP`);
    t.match(body, new RegExp(`^# TYPE ${name} (counter|gauge)$`, 'm'), `${name} has TYPE`);
  }
  t.equal(sample(body, 'amk_calls_total'), 2);
  t.equal(sample(body, 'amk_requests_total{outcome="contact"}'), 1);
  t.equal(sample(body, 'amk_requests_total{outcome="no-contact"}'), 1);
  t.equal(sample(body, 'amk_attempts_total{outcome="busy"}'), 1);
  t.equal(sample(body, 'amk_attempts_total{outcome="answered"}'), 1);
  t.notMatch(body, /amk_attempts_total\{outcome="(started|ringing)"\}/, 'only ended attempts count');
  for (const state of ['committed', 'delivered', 'escalated', 'failed']) {
    t.equal(sample(body, `amk_messages_total{type="no-contact",state="${state}"}`), 1, `message ${state}`);
  }
  t.equal(sample(body, 'amk_outbox_pending'), 2);
  t.equal(sample(body, 'amk_outbox_failed'), 1);
  t.equal(sample(body, 'amk_outbox_oldest_age_seconds'), 42.5);
  t.equal(sample(body, 'amk_target_up{id="trunk-a",kind="trunk"}'), 1);
  t.equal(sample(body, 'amk_target_up{id="amk-syd",kind="region"}'), 0);
  t.notMatch(body, /amk_target_up\{id="amk-nord"/, 'a target not probed yet has no sample');
  t.equal(sample(body, 'amk_event_loop_lag_ms'), 1.25);
  t.equal(sample(body, 'amk_active_calls'), 3);
  t.match(body, /^process_resident_memory_bytes \d+/m, 'default process metrics');
  t.match(body, /^nodejs_eventloop_lag_seconds /m);
  t.notMatch(body, /4512345678/, 'no caller number in metrics');

  // Gauges are read at each scrape; a failing source leaves its series out, the scrape still works.
  active = 5;
  failTargets = true;
  const r2 = await get(m.port, '/metrics');
  t.equal(r2.status, 200);
  t.equal(sample(r2.body, 'amk_active_calls'), 5);
  t.notMatch(r2.body, /^amk_target_up\{/m);
});

t.test('404 for other paths and methods; query strings are fine', async (t) => {
  const bus = new EventBus();
  const m = await startMetrics({ host: '127.0.0.1', port: 0 }, bus, {
    activeCalls: () => 0, backlog: () => ({ pending: 0, failed: 0, oldestAgeS: null }), targets: () => [], eventLoopLagMs: () => 0,
  });
  t.teardown(() => m.close());
  t.equal((await get(m.port, '/')).status, 404);
  t.equal((await get(m.port, '/metrics/x')).status, 404);
  t.equal((await get(m.port, '/health')).status, 404);
  t.equal((await get(m.port, '/metrics', 'POST')).status, 404);
  const ok = await get(m.port, '/metrics?name[]=amk_calls_total');
  t.equal(ok.status, 200);
  t.equal(sample(ok.body, 'amk_outbox_oldest_age_seconds'), 0, 'no backlog: age 0');
});

t.test('two instances in one process keep their own registries; a taken port is a clear error', async (t) => {
  const a = new EventBus();
  const b = new EventBus();
  const g = { activeCalls: () => 0, backlog: () => ({ pending: 0, failed: 0, oldestAgeS: null }), targets: () => [], eventLoopLagMs: () => 0 };
  const ma = await startMetrics({ host: '127.0.0.1', port: 0 }, a, g);
  t.teardown(() => ma.close());
  const mb = await startMetrics({ host: '127.0.0.1', port: 0 }, b, g);
  t.teardown(() => mb.close());
  a.emit('call.started', { callId: 'x', facts, at: Date.now() });
  t.equal(sample((await get(ma.port, '/metrics')).body, 'amk_calls_total'), 1);
  t.equal(sample((await get(mb.port, '/metrics')).body, 'amk_calls_total'), 0);
  await t.rejects(startMetrics({ host: '127.0.0.1', port: ma.port }, a, g), /metrics cannot listen on 127\.0\.0\.1:\d+: the port is in use \(EADDRINUSE\)/);
});

t.test('statistics gauges: the last 24 h from a real journal, per home region and in total', async (t) => {
  const file = join(tempDir(t), 'journal.sqlite');
  const j = Journal.open(file);
  t.teardown(() => j.close());
  const now = Date.now();
  const H = 3_600_000;
  // Two calls in hovedstaden: A answered on attempt 1 after 4 s; B no contact (one message).
  // One call in sjaelland without a request. One call 30 h ago: outside the window.
  j.callSeen({ callId: 'c1', startedAt: now - 3 * H, trunk: 't', region: 'hovedstaden', recontact: false });
  j.callSeen({ callId: 'c2', startedAt: now - 2 * H, trunk: 't', region: 'hovedstaden', recontact: true });
  j.callSeen({ callId: 'c3', startedAt: now - 1 * H, trunk: 't', region: 'sjaelland', recontact: false });
  j.callSeen({ callId: 'c0', startedAt: now - 30 * H, trunk: 't', region: 'sjaelland', recontact: false });
  const A = 'aaaaaaaa-0000-4000-8000-00000000000a';
  const tA = now - 3 * H + 5000;
  j.requestStarted(requestStart(A, { callId: 'c1', region: 'hovedstaden', startedAt: tA }));
  j.attemptStarted({ attemptId: 'A1', requestId: A, n: 1, stage: 'home', region: 'hovedstaden', target: 'sip:amk@h', startedAt: tA + 100 });
  j.attemptEnded('A1', { outcome: 'answered', status: 200, reason: 'OK', endedAt: tA + 4100, answeredAt: tA + 4100, crossedCancel: false });
  j.requestOutcome(A, 'contact', tA + 4100, 'home', 'hovedstaden');
  const B = 'bbbbbbbb-0000-4000-8000-00000000000b';
  const tB = now - 2 * H + 5000;
  j.requestStarted(requestStart(B, { callId: 'c2', region: 'hovedstaden', startedAt: tB }));
  j.attemptStarted({ attemptId: 'B1', requestId: B, n: 1, stage: 'home', region: 'hovedstaden', target: 'sip:amk@h', startedAt: tB + 100 });
  j.attemptEnded('B1', { outcome: 'busy', status: 486, reason: 'Busy Here', endedAt: tB + 500, answeredAt: null, crossedCancel: false });
  j.commitMessage(messageCommit(B, 'no-contact', { createdAt: tB + 15_000, region: 'hovedstaden' }), { outcome: 'no-contact', at: tB + 15_000 });

  let computed = 0;
  const m = await startMetrics({ host: '127.0.0.1', port: 0 }, new EventBus(), {
    activeCalls: () => 0, backlog: () => ({ pending: 0, failed: 0, oldestAgeS: null }), targets: () => [], eventLoopLagMs: () => 0,
    stats: (from, to) => {
      computed++;
      t.equal(to - from, STATS_WINDOW_MS, 'the window is 24 h');
      return j.stats({ from, to, by: 'day', now: to });
    },
  });
  t.teardown(() => m.close());
  const body = (await get(m.port, '/metrics')).body;
  t.equal(sample(body, 'amk_stats_calls_seen{region="hovedstaden"}'), 2);
  t.equal(sample(body, 'amk_stats_calls_seen{region="sjaelland"}'), 1, 'the call 30 h ago is outside the window');
  t.equal(sample(body, 'amk_stats_calls_seen{region="total"}'), 3);
  t.equal(sample(body, 'amk_stats_requests{region="hovedstaden"}'), 2);
  t.equal(sample(body, 'amk_stats_no_contact_messages{region="hovedstaden"}'), 1);
  t.equal(sample(body, 'amk_stats_no_contact_share_of_requests{region="hovedstaden"}'), 0.5);
  t.equal(sample(body, 'amk_stats_no_contact_share_of_calls{region="total"}'), 1 / 3);
  t.equal(sample(body, 'amk_stats_no_contact_share_of_requests{region="sjaelland"}'), null, 'no requests: no share, not 0');
  t.equal(sample(body, 'amk_stats_answered{region="hovedstaden",on="attempt1"}'), 1);
  t.equal(sample(body, 'amk_stats_answer_time_seconds{region="hovedstaden",quantile="0.5"}'), 4);
  t.equal(sample(body, 'amk_stats_time_to_contact_seconds{region="total",quantile="0.9"}'), 4.1);
  t.equal(sample(body, 'amk_stats_lost_requests{region="total"}'), 0);
  t.equal(sample(body, 'amk_stats_recontacts{region="hovedstaden"}'), 1);
  t.match(body, /^# HELP amk_stats_no_contact_share_of_requests .*Last 24 h/m);
  // A second scrape within the minute reuses the computation.
  await get(m.port, '/metrics');
  t.equal(computed, 1, 'computed once for two scrapes');
});

t.test('the bridge serves /metrics when metrics are enabled, with the statistics gauges', async (t) => {
  const { bridge } = await startTestBridge(t, { metrics: { enabled: true, host: '127.0.0.1', port: 0 } });
  t.ok(bridge.metricsPort && bridge.metricsPort > 0, 'listening');
  const r = await get(bridge.metricsPort!, '/metrics');
  t.equal(r.status, 200);
  t.equal(sample(r.body, 'amk_stats_lost_requests{region="total"}'), 0, 'statistics from the journal');
  t.equal(sample(r.body, 'amk_stats_calls_seen{region="total"}'), 0);
  t.equal(sample(r.body, 'amk_active_calls'), 0);
});

t.test('metrics disabled (the default): no listener', async (t) => {
  const { bridge } = await startTestBridge(t);
  t.equal(bridge.metricsPort, null);
});
