import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import { buildMessage, messageKey, NO_CONTACT_TEXT, type MessageDetails } from '../../src/domain/message.js';
import { MessageDelivery, retryDelay, type DeliveryEvents, type DeliveryOptions } from '../../src/notify/delivery.js';
import { postJson, retryAfterMs } from '../../src/notify/http-post.js';
import { MESSAGE_ORDER, type MessageType, type Outbox, type OutboxCommit, type OutboxRow } from '../../src/journal/types.js';
import { makeCert, startReceiver } from '../helpers/receiver.js';

const validate = new Ajv.default({ strict: true }).compile(JSON.parse(readFileSync(new URL('../../config/message.schema.json', import.meta.url), 'utf8')) as object);

// ---------------------------------------------------------------------------------------------
// A small in-memory outbox with the contract's semantics (the SQLite one lives in the journal).

class MemOutbox implements Outbox {
  readonly rows = new Map<string, OutboxRow>();
  readonly writes: Array<{ op: string; key: string; arg?: unknown }> = [];

  commitMessage(m: OutboxCommit): { row: OutboxRow; created: boolean } {
    const key = messageKey(m.requestId, m.type);
    const had = this.rows.get(key);
    if (had) return { row: { ...had }, created: false };
    const row: OutboxRow = {
      key, requestId: m.requestId, type: m.type, region: m.region, endpoints: [...m.endpoints], payload: m.payload,
      state: 'pending', tries: 0, nextAt: m.createdAt, escalateAt: m.escalateAt, escalated: false, failedEndpoints: [],
      lastError: null, createdAt: m.createdAt, deliveredAt: null, deliveredTo: null, test: m.test,
    };
    this.rows.set(key, row);
    return { row: { ...row }, created: true };
  }
  due(now: number, limit = 100): OutboxRow[] {
    return [...this.rows.values()]
      .filter((r) => r.state === 'pending' && r.nextAt <= now)
      .filter((r) => {
        if (r.type === 'no-contact') return true;
        const nc = this.rows.get(messageKey(r.requestId, 'no-contact'));
        return nc === undefined || nc.state === 'delivered';
      })
      .sort((a, b) => a.createdAt - b.createdAt || MESSAGE_ORDER[a.type] - MESSAGE_ORDER[b.type])
      .slice(0, limit)
      .map((r) => ({ ...r, endpoints: [...r.endpoints], failedEndpoints: [...r.failedEndpoints] }));
  }
  nextDueAt(): number | null {
    const p = [...this.rows.values()].filter((r) => r.state === 'pending').map((r) => r.nextAt);
    return p.length ? Math.min(...p) : null;
  }
  escalationsDue(now: number): OutboxRow[] {
    return [...this.rows.values()].filter((r) => r.state === 'pending' && !r.escalated && r.escalateAt <= now).map((r) => ({ ...r }));
  }
  private row(key: string): OutboxRow {
    const r = this.rows.get(key);
    if (!r) throw new Error(`no row ${key}`);
    return r;
  }
  delivered(key: string, endpoint: string, at: number): void {
    this.writes.push({ op: 'delivered', key, arg: endpoint });
    Object.assign(this.row(key), { state: 'delivered', deliveredAt: at, deliveredTo: endpoint, payload: null });
  }
  retryLater(key: string, nextAt: number, error: string): void {
    this.writes.push({ op: 'retryLater', key, arg: nextAt });
    const r = this.row(key);
    Object.assign(r, { tries: r.tries + 1, nextAt, lastError: error });
  }
  endpointFailed(key: string, endpoint: string, error: string): void {
    this.writes.push({ op: 'endpointFailed', key, arg: endpoint });
    const r = this.row(key);
    if (!r.failedEndpoints.includes(endpoint)) r.failedEndpoints.push(endpoint);
    r.lastError = error;
  }
  escalated(key: string): void {
    this.writes.push({ op: 'escalated', key });
    this.row(key).escalated = true;
  }
  failed(key: string, error: string): void {
    this.writes.push({ op: 'failed', key, arg: error });
    Object.assign(this.row(key), { state: 'failed', lastError: error });
  }
  get(key: string): OutboxRow | null {
    const r = this.rows.get(key);
    return r ? { ...r } : null;
  }
  list(filter: 'pending' | 'failed' | 'delivered' | 'all'): OutboxRow[] {
    return [...this.rows.values()].filter((r) => filter === 'all' || r.state === filter);
  }
  retry(key?: string, now = Date.now()): string[] {
    const touched = [...this.rows.values()].filter((r) => (key === undefined || r.key === key) && r.state !== 'delivered');
    for (const r of touched) Object.assign(r, { state: 'pending', nextAt: now, failedEndpoints: [] });
    return touched.map((r) => r.key);
  }
  backlog() {
    const rows = [...this.rows.values()];
    const pending = rows.filter((r) => r.state === 'pending');
    return { pending: pending.length, failed: rows.filter((r) => r.state === 'failed').length, oldestCreatedAt: pending.length ? Math.min(...pending.map((r) => r.createdAt)) : null };
  }
  ops(key: string, op?: string) {
    return this.writes.filter((w) => w.key === key && (op === undefined || w.op === op));
  }
}

// ---------------------------------------------------------------------------------------------

type Ev =
  | { e: 'delivered'; key: string; endpoint: string; latencyMs: number; at: number }
  | { e: 'retrying'; key: string; endpoint: string; error: string; nextAt: number; now: number }
  | { e: 'escalated'; key: string; reason: string; detail: string; at: number }
  | { e: 'failed'; key: string; error: string };

function harness(t: Test, outbox: Outbox, p: Partial<DeliveryOptions> = {}) {
  const events: Ev[] = [];
  const logs: Array<{ level: string; o: object; m?: string }> = [];
  let lastNow = 0;
  const now = () => (lastNow = Date.now());
  const ev: DeliveryEvents = {
    // `lastNow` is the clock reading the worker used for the decision it reports.
    delivered: (row, endpoint, latencyMs) => events.push({ e: 'delivered', key: row.key, endpoint, latencyMs, at: Date.now() }),
    retrying: (row, endpoint, error, nextAt) => events.push({ e: 'retrying', key: row.key, endpoint, error, nextAt, now: lastNow }),
    escalated: (row, reason, detail) => events.push({ e: 'escalated', key: row.key, reason, detail, at: Date.now() }),
    failed: (row, error) => events.push({ e: 'failed', key: row.key, error }),
  };
  const log = {
    info: (o: object, m?: string) => logs.push({ level: 'info', o, m }),
    warn: (o: object, m?: string) => logs.push({ level: 'warn', o, m }),
    error: (o: object, m?: string) => logs.push({ level: 'error', o, m }),
  };
  const d = new MessageDelivery(outbox, {
    timeoutMs: 1000, backoff: { initialMs: 40, maxMs: 400 }, caFile: null, authorization: null, pollMs: 20, random: () => 0.5, now, ...p,
  }, ev, log);
  t.teardown(() => d.stop());
  return { d, events, logs, of: (e: Ev['e']) => events.filter((x) => x.e === e) };
}

const T = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await T(5);
  }
}

let seq = 0;
function commit(outbox: Outbox, endpoints: string[], p: { requestId?: string; type?: MessageType; escalateAfterMs?: number; test?: boolean } = {}): OutboxRow {
  const requestId = p.requestId ?? `req-${process.pid}-${++seq}`;
  const type = p.type ?? 'no-contact';
  const createdAt = Date.now();
  const d: MessageDetails = { type, createdAt, updatedAt: createdAt, attempts: [] };
  if (type === 'no-contact') d.reason = 'attempts-exhausted';
  if (type === 'citizen-hangup') d.hangupAt = createdAt;
  if (type === 'contact-via-overflow') d.overflow = { region: { id: 'sjaelland', name: 'Region Sjælland' }, answeredAt: createdAt };
  if (type === 'delivery-escalated') d.escalation = { at: createdAt, reason: 'deadline', detail: 'x' };
  const msg = buildMessage({
    requestId, incidentId: 'urn:emergency:uid:incidentid:0a1b:psap-1', emergencyCallId: 'urn:emergency:uid:callid:0c1d:psap-1',
    node: 'psap-1', desk: 'desk-1', region: { id: 'hovedstaden', name: 'Region Hovedstaden' },
    caller: { number: '+4512345678', uri: 'sip:+4512345678@op.dk' }, location: null, recontact: null, test: p.test ?? true,
  }, d);
  return outbox.commitMessage({
    requestId, type, region: 'hovedstaden', endpoints, payload: JSON.stringify(msg), createdAt,
    escalateAt: createdAt + (p.escalateAfterMs ?? 60_000), test: p.test ?? true,
  }).row;
}

/** A URL where nothing listens (a receiver started and stopped), and its port. */
async function closedUrl(t: Test): Promise<{ url: string; port: number }> {
  const r = await startReceiver(t);
  const url = r.url();
  await r.stop();
  return { url, port: r.port };
}

// ---------------------------------------------------------------------------------------------

t.test('delivered on the first try, with the right headers, key and body', async (t) => {
  const rx = await startReceiver(t);
  const outbox = new MemOutbox();
  const { d, of } = harness(t, outbox, { authorization: 'Bearer s3cret' });
  d.start();
  const row = commit(outbox, [rx.url()]);
  d.kick();
  t.equal(d.inFlight(), 1, 'the POST is under way when kick() returns');
  await until('delivered', () => of('delivered').length === 1);

  t.equal(rx.received.length, 1);
  const r = rx.received[0]!;
  t.equal(r.method, 'POST');
  t.equal(r.path, '/amk/messages');
  t.equal(r.headers['content-type'], 'application/json');
  t.equal(r.headers['idempotency-key'], row.key);
  t.equal(r.key, `${row.requestId}:no-contact`);
  t.equal(r.headers['user-agent'], 'amk-bridge');
  t.equal(r.headers.authorization, 'Bearer s3cret');
  t.equal(r.body, row.payload, 'the committed payload, byte for byte');
  t.ok(validate(r.json), 'what the region got validates against the schema', { errors: validate.errors });
  t.equal((r.json as { text: string }).text, NO_CONTACT_TEXT);

  const after = outbox.get(row.key)!;
  t.equal(after.state, 'delivered');
  t.equal(after.deliveredTo, rx.url());
  t.equal(after.tries, 0);
  t.same(outbox.ops(row.key).map((w) => w.op), ['delivered'], 'one write: delivered');
  const ev = of('delivered')[0] as Extract<Ev, { e: 'delivered' }>;
  t.equal(ev.endpoint, rx.url());
  t.ok(ev.latencyMs >= 0);
  t.equal(d.inFlight(), 0);

  // A second message rides the same kept-alive connection.
  commit(outbox, [rx.url()]);
  d.kick();
  await until('second delivered', () => of('delivered').length === 2);
  t.equal(rx.connections(), 1, 'no new connection for the second message');
  t.equal(rx.accepted().length, 2);
});

t.test('no Authorization header unless configured', async (t) => {
  const rx = await startReceiver(t);
  const outbox = new MemOutbox();
  const { d, of } = harness(t, outbox);
  commit(outbox, [rx.url()]);
  d.kick();
  await until('delivered', () => of('delivered').length === 1);
  t.notOk('authorization' in rx.received[0]!.headers);
});

t.test('500 then 200: retried after the backoff, one accepted copy', async (t) => {
  const rx = await startReceiver(t, { script: (r) => ({ status: r.n === 1 ? 500 : 200 }) });
  const outbox = new MemOutbox();
  const { d, of } = harness(t, outbox);
  d.start();
  const row = commit(outbox, [rx.url()]);
  d.kick();
  await until('delivered', () => of('delivered').length === 1);

  t.equal(rx.received.length, 2);
  t.equal(rx.received[0]!.key, rx.received[1]!.key, 'same Idempotency-Key on the retry');
  t.equal(rx.received[0]!.body, rx.received[1]!.body, 'same body on the retry');
  t.equal(rx.accepted().length, 1);
  const retry = of('retrying')[0] as Extract<Ev, { e: 'retrying' }>;
  t.match(retry.error, /HTTP 500/);
  t.equal(retry.endpoint, rx.url());
  t.equal(retry.nextAt - retry.now, 20, 'first retry: initialMs 40 with full jitter (random 0.5)');
  t.ok(rx.received[1]!.at >= retry.nextAt - 1, 'the retry waited for its time');
  t.same(outbox.ops(row.key).map((w) => w.op), ['retryLater', 'delivered']);
  t.equal(outbox.get(row.key)!.tries, 1);
});

t.test('backoff: exponential, full jitter, capped; Retry-After when longer, up to maxMs', async (t) => {
  const b = { initialMs: 100, maxMs: 1000 };
  t.same([0, 1, 2, 3, 4, 10].map((n) => retryDelay(n, b, () => 0.999999)), [99, 199, 399, 799, 999, 999]);
  t.same([0, 1, 2].map((n) => retryDelay(n, b, () => 0.5)), [50, 100, 200]);
  t.equal(retryDelay(3, b, () => 0), 0, 'full jitter reaches down to 0');
  t.equal(retryDelay(0, b, () => 0.5, 700), 700, 'Retry-After when larger');
  t.equal(retryDelay(3, b, () => 0.5, 100), 400, 'the backoff when larger');
  t.equal(retryDelay(0, b, () => 0.5, 86_400_000), 1000, 'a day-long Retry-After is capped at maxMs');
  t.equal(retryDelay(5000, b, () => 0.5), 500, 'no overflow with many tries');
});

t.test('a late 2xx after our timeout: retried, the region keeps one copy by key', async (t) => {
  const rx = await startReceiver(t, { script: (r) => (r.n === 1 ? { status: 200, delayMs: 300 } : { status: 200 }) });
  const outbox = new MemOutbox();
  const { d, of } = harness(t, outbox, { timeoutMs: 100 });
  d.start();
  const row = commit(outbox, [rx.url()]);
  d.kick();
  await until('delivered', () => of('delivered').length === 1);
  await until('the late answer went out', () => rx.received[0]!.status !== null);
  t.match((of('retrying')[0] as Extract<Ev, { e: 'retrying' }>).error, /timeout after 100 ms/);
  t.equal(rx.received.length, 2, 'two copies arrived');
  t.same(rx.accepted().map((r) => r.key), [row.key], 'one accepted message');
});

t.test('400: permanent, escalated at once, the secondary takes it', async (t) => {
  const primary = await startReceiver(t, { script: () => ({ status: 400, body: '{"error":"bad field"}' }) });
  const secondary = await startReceiver(t);
  const outbox = new MemOutbox();
  const { d, of, events } = harness(t, outbox);
  d.start();
  const row = commit(outbox, [primary.url(), secondary.url()]);
  d.kick();
  await until('delivered', () => of('delivered').length === 1);

  t.same(events.map((e) => e.e), ['escalated', 'delivered']);
  const esc = of('escalated')[0] as Extract<Ev, { e: 'escalated' }>;
  t.equal(esc.reason, 'permanent-failure');
  t.match(esc.detail, /HTTP 400 Bad Request: \{"error":"bad field"\}/);
  t.equal((of('delivered')[0] as Extract<Ev, { e: 'delivered' }>).endpoint, secondary.url());
  t.equal(primary.received.length, 1, 'the primary is not asked again');
  t.equal(secondary.accepted().length, 1);
  const after = outbox.get(row.key)!;
  t.same(after.failedEndpoints, [primary.url()]);
  t.equal(after.escalated, true);
  t.equal(after.deliveredTo, secondary.url());
  t.same(outbox.ops(row.key).map((w) => w.op), ['endpointFailed', 'escalated', 'delivered'], 'secondary tried in the same try');
});

t.test('every endpoint refuses: failed, retries stop until an operator retries', async (t) => {
  const primary = await startReceiver(t, { script: () => ({ status: 403 }) });
  const secondary = await startReceiver(t, { script: () => ({ status: 301, headers: { Location: 'https://elsewhere.example/' } }) });
  const outbox = new MemOutbox();
  const { d, of } = harness(t, outbox);
  d.start();
  const row = commit(outbox, [primary.url(), secondary.url()]);
  d.kick();
  await until('failed', () => of('failed').length === 1);
  t.match((of('failed')[0] as Extract<Ev, { e: 'failed' }>).error, /HTTP 301/);
  t.equal(outbox.get(row.key)!.state, 'failed');
  t.equal(of('escalated').length, 1, 'escalated once');
  await T(150); // several polls
  t.equal(primary.received.length + secondary.received.length, 2, 'no retries while failed');

  // The operator fixed the region's side and retries from the CLI (another process): the poll picks it up.
  primary.setScript(() => ({ status: 202 }));
  t.same(outbox.retry(row.key), [row.key]);
  await until('delivered', () => of('delivered').length === 1);
  t.equal(outbox.get(row.key)!.deliveredTo, primary.url());
});

t.test('receiver down: deadline escalation, secondary used; the primary takes messages again when back', async (t) => {
  const down = await closedUrl(t);
  const secondary = await startReceiver(t);
  const outbox = new MemOutbox();
  const { d, of } = harness(t, outbox);
  d.start();
  const row = commit(outbox, [down.url, secondary.url()], { escalateAfterMs: 200 });
  d.kick();
  await until('delivered', () => of('delivered').length === 1);

  const retries = of('retrying') as Extract<Ev, { e: 'retrying' }>[];
  t.ok(retries.length >= 1, 'retried the primary');
  t.match(retries[0]!.error, /ECONNREFUSED/);
  const esc = of('escalated') as Extract<Ev, { e: 'escalated' }>[];
  t.equal(esc.length, 1);
  t.equal(esc[0]!.reason, 'deadline');
  t.match(esc[0]!.detail, /ECONNREFUSED/, 'the detail names the last error');
  t.equal(secondary.received.length, 1, 'the secondary got it once');
  t.ok(secondary.received[0]!.at >= esc[0]!.at - 1, 'and only after the escalation');
  t.ok(secondary.received[0]!.at >= row.escalateAt, 'not before the deadline');
  t.equal(outbox.get(row.key)!.deliveredTo, secondary.url());
  t.same(outbox.get(row.key)!.failedEndpoints, [], 'a connection error is not a refusal');

  // The primary comes back on its port: a new message goes there, first try, no escalation.
  const back = await startReceiver(t, { port: down.port });
  const row2 = commit(outbox, [back.url(), secondary.url()], { escalateAfterMs: 200 });
  d.kick();
  await until('second delivered', () => of('delivered').length === 2);
  t.equal(outbox.get(row2.key)!.deliveredTo, back.url());
  t.equal(outbox.get(row2.key)!.escalated, false);
  t.equal(secondary.received.length, 1);
});

t.test('receiver down, no secondary: escalation, and delivery goes on until the primary is back', async (t) => {
  const down = await closedUrl(t);
  const outbox = new MemOutbox();
  const { d, of } = harness(t, outbox);
  d.start();
  const row = commit(outbox, [down.url], { escalateAfterMs: 100 });
  d.kick();
  await until('escalated', () => of('escalated').length === 1);
  t.equal((of('escalated')[0] as Extract<Ev, { e: 'escalated' }>).reason, 'deadline');
  const before = of('retrying').length;
  await until('more retries after the escalation', () => of('retrying').length >= before + 2);
  t.equal(outbox.get(row.key)!.state, 'pending');

  const back = await startReceiver(t, { port: down.port });
  await until('delivered', () => of('delivered').length === 1);
  t.equal(back.accepted().length, 1);
  t.equal(outbox.get(row.key)!.deliveredTo, back.url());
  t.equal(of('escalated').length, 1, 'escalated once');
});

t.test('deadline passes while the primary POST is in flight: the same try goes on to the secondary', async (t) => {
  const primary = await startReceiver(t, { script: () => ({ status: 503, delayMs: 250 }) });
  const secondary = await startReceiver(t);
  const outbox = new MemOutbox();
  const { d, of, events } = harness(t, outbox);
  d.start();
  const row = commit(outbox, [primary.url(), secondary.url()], { escalateAfterMs: 50 });
  d.kick();
  await until('delivered', () => of('delivered').length === 1);
  t.same(events.map((e) => e.e), ['escalated', 'delivered']);
  t.equal(primary.received.length, 1);
  t.equal(outbox.get(row.key)!.deliveredTo, secondary.url());
  t.same(outbox.ops(row.key).map((w) => w.op), ['escalated', 'delivered'], 'no backoff in between');
});

t.test('deadline passes during a try before any poll sees it: escalated there, secondary at once', async (t) => {
  const primary = await startReceiver(t, { script: () => ({ status: 503, delayMs: 150 }) });
  const secondary = await startReceiver(t);
  const outbox = new MemOutbox();
  const { d, of, events } = harness(t, outbox, { pollMs: 60_000, backoff: { initialMs: 10_000, maxMs: 10_000 } });
  d.start();
  const row = commit(outbox, [primary.url(), secondary.url()], { escalateAfterMs: 50 });
  d.kick();
  await until('delivered', () => of('delivered').length === 1);
  t.same(events.map((e) => e.e), ['escalated', 'delivered']);
  const esc = of('escalated')[0] as Extract<Ev, { e: 'escalated' }>;
  t.equal(esc.reason, 'deadline');
  t.match(esc.detail, /HTTP 503/);
  t.equal(outbox.get(row.key)!.deliveredTo, secondary.url());
  t.same(outbox.ops(row.key).map((w) => w.op), ['escalated', 'delivered']);
});

t.test('429 with Retry-After: the next try waits for it', async (t) => {
  const rx = await startReceiver(t, { script: (r) => (r.n === 1 ? { status: 429, headers: { 'Retry-After': '1' } } : { status: 200 }) });
  const outbox = new MemOutbox();
  const { d, of } = harness(t, outbox, { backoff: { initialMs: 20, maxMs: 5000 } });
  d.start();
  commit(outbox, [rx.url()]);
  d.kick();
  await until('delivered', () => of('delivered').length === 1);
  const retry = of('retrying')[0] as Extract<Ev, { e: 'retrying' }>;
  t.match(retry.error, /HTTP 429/);
  t.equal(retry.nextAt - retry.now, 1000, 'Retry-After: 1 s rather than the 10 ms backoff');
  t.ok(rx.received[1]!.at - rx.received[0]!.at >= 990, 'the second try came after the asked-for second');
  t.equal(rx.received.length, 2);
});

t.test('a follow-up waits for its no-contact; other requests go in parallel', async (t) => {
  let ncTries = 0;
  const rx = await startReceiver(t, {
    script: (r) => (r.key?.endsWith(':no-contact') && r.key.startsWith('req-A') && ++ncTries <= 2 ? { status: 503 } : { status: 200 }),
  });
  const outbox = new MemOutbox();
  const { d, of } = harness(t, outbox);
  d.start();
  const nc = commit(outbox, [rx.url()], { requestId: 'req-A-1' });
  const fu = commit(outbox, [rx.url()], { requestId: 'req-A-1', type: 'citizen-hangup' });
  d.kick();
  const other = commit(outbox, [rx.url()], { requestId: 'req-B-1' });
  d.kick();
  await until('all delivered', () => of('delivered').length === 3);

  const keys = rx.received.map((r) => r.key);
  const firstFollowUp = keys.indexOf(fu.key);
  const ncAccepted = rx.received.findIndex((r) => r.key === nc.key && r.status === 200);
  t.ok(ncAccepted >= 0 && firstFollowUp > ncAccepted, 'the follow-up went out only after its no-contact was accepted');
  t.equal(keys.filter((k) => k === fu.key).length, 1, 'and once');
  t.ok(keys.indexOf(other.key) < ncAccepted, 'another request\'s message did not wait');
  const fuJson = rx.received[firstFollowUp]!.json as { refersTo: string; text?: string };
  t.equal(fuJson.refersTo, nc.key);
  t.notOk(rx.received[firstFollowUp]!.body.includes(NO_CONTACT_TEXT));
  t.ok(validate(fuJson), 'the follow-up validates', { errors: validate.errors });
  t.equal(rx.accepted().length, 3);
});

t.test('one row is never in flight twice', async (t) => {
  const rx = await startReceiver(t, { script: () => ({ status: 200, delayMs: 150 }) });
  const outbox = new MemOutbox();
  const { d, of } = harness(t, outbox, { pollMs: 10 });
  d.start();
  commit(outbox, [rx.url()]);
  for (let i = 0; i < 5; i++) d.kick();
  t.equal(d.inFlight(), 1);
  await until('delivered', () => of('delivered').length === 1);
  t.equal(rx.received.length, 1, 'polls and kicks during the POST did not double it');
});

t.test('start() picks up rows committed before it (a restart)', async (t) => {
  const rx = await startReceiver(t);
  const outbox = new MemOutbox();
  const a = commit(outbox, [rx.url()]);
  const b = commit(outbox, [rx.url()]);
  const { d, of } = harness(t, outbox);
  d.start();
  await until('delivered', () => of('delivered').length === 2);
  t.same(rx.accepted().map((r) => r.key).sort(), [a.key, b.key].sort());
});

t.test('HTTPS with the configured CA; a wrong CA is retried, not refused', async (t) => {
  const rx = await startReceiver(t, { tls: true });
  t.match(rx.url(), /^https:\/\/127\.0\.0\.1:\d+\//);
  const dir = mkdtempSync(join(tmpdir(), 'amk-ca-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const goodCa = join(dir, 'good.pem');
  const wrongCa = join(dir, 'wrong.pem');
  writeFileSync(goodCa, rx.caPem!);
  writeFileSync(wrongCa, makeCert('other-ca').certPem);

  t.test('right CA: delivered', async (t) => {
    const outbox = new MemOutbox();
    const { d, of } = harness(t, outbox, { caFile: goodCa, authorization: 'Bearer tls' });
    const row = commit(outbox, [rx.url()]);
    d.kick();
    await until('delivered', () => of('delivered').length === 1);
    t.equal(outbox.get(row.key)!.state, 'delivered');
    const got = rx.received.find((r) => r.key === row.key)!;
    t.equal(got.headers.authorization, 'Bearer tls');
    t.equal(got.body, row.payload);
  });

  t.test('wrong CA: retried, never a permanent failure', async (t) => {
    const outbox = new MemOutbox();
    const { d, of } = harness(t, outbox, { caFile: wrongCa });
    d.start();
    const before = rx.received.length;
    const row = commit(outbox, [rx.url()]);
    d.kick();
    await until('two retries', () => of('retrying').length >= 2);
    t.match((of('retrying')[0] as Extract<Ev, { e: 'retrying' }>).error, /certificate|self.signed|verify/i);
    t.same(outbox.ops(row.key, 'endpointFailed'), []);
    t.same(of('failed'), []);
    t.equal(outbox.get(row.key)!.state, 'pending');
    t.equal(rx.received.length, before, 'nothing reached the receiver');
  });

  t.test('no CA file configured: the system CAs do not know the test CA', async (t) => {
    const outbox = new MemOutbox();
    const { d, of } = harness(t, outbox);
    commit(outbox, [rx.url()]);
    d.kick();
    await until('a retry', () => of('retrying').length >= 1);
    t.match((of('retrying')[0] as Extract<Ev, { e: 'retrying' }>).error, /certificate|self.signed|verify/i);
  });

  t.test('unreadable CA file: logged, not thrown', async (t) => {
    const outbox = new MemOutbox();
    const { logs } = harness(t, outbox, { caFile: join(dir, 'missing.pem') });
    t.ok(logs.some((l) => l.level === 'error' && /CA file/.test(l.m ?? '')));
  });
});

t.test('stop() while a POST hangs: bounded, aborted, the row stays pending', async (t) => {
  const rx = await startReceiver(t, { script: () => 'hang' });
  const outbox = new MemOutbox();
  const { d, events, logs } = harness(t, outbox, { stopTimeoutMs: 100, timeoutMs: 10_000 });
  d.start();
  const row = commit(outbox, [rx.url()]);
  d.kick();
  await until('the receiver has it', () => rx.received.length === 1);
  t.equal(d.inFlight(), 1);
  await d.stop();
  t.equal(d.inFlight(), 0);
  t.same(events, [], 'no outcome reported');
  t.same(outbox.ops(row.key), [], 'no outbox write: it is tried again after the restart');
  t.equal(outbox.get(row.key)!.state, 'pending');
  t.ok(logs.some((l) => l.level === 'warn' && /aborted/.test(l.m ?? '')));
  // stopped means stopped
  commit(outbox, [rx.url()]);
  d.kick();
  await T(60);
  t.equal(rx.received.length, 1);
});

t.test('stop() waits for a POST that finishes within the bound', async (t) => {
  const rx = await startReceiver(t, { script: () => ({ status: 200, delayMs: 80 }) });
  const outbox = new MemOutbox();
  const { d, of } = harness(t, outbox, { stopTimeoutMs: 2000 });
  const row = commit(outbox, [rx.url()]);
  d.kick();
  await until('the receiver has it', () => rx.received.length === 1);
  await d.stop();
  t.equal(of('delivered').length, 1);
  t.equal(outbox.get(row.key)!.state, 'delivered');
});

t.test('never throws into the caller', async (t) => {
  const rx = await startReceiver(t);
  const broken = new MemOutbox();
  broken.due = () => {
    throw new Error('disk I/O error');
  };
  const h1 = harness(t, broken);
  t.doesNotThrow(() => h1.d.kick());
  t.doesNotThrow(() => h1.d.start());
  t.ok(h1.logs.some((l) => l.level === 'error'));

  // A throwing event handler and a throwing outbox write are logged; delivery state stays sane.
  const outbox = new MemOutbox();
  const events: string[] = [];
  const logs: string[] = [];
  const d = new MessageDelivery(outbox, { timeoutMs: 1000, backoff: { initialMs: 40, maxMs: 400 }, caFile: null, authorization: null, pollMs: 20 }, {
    delivered: () => {
      events.push('delivered');
      throw new Error('listener bug');
    },
    retrying: () => {},
    escalated: () => {},
    failed: () => {},
  }, { info: () => {}, warn: () => {}, error: (_o, m) => logs.push(m ?? '') });
  t.teardown(() => d.stop());
  const row = commit(outbox, [rx.url()]);
  d.kick();
  await until('delivered', () => events.length === 1);
  await until('logged', () => logs.some((m) => /event handler threw/.test(m)));
  t.equal(outbox.get(row.key)!.state, 'delivered');

  // A pending row with no endpoints is marked failed (alarm), not retried forever.
  const none = commit(outbox, []);
  d.kick();
  await until('failed', () => outbox.get(none.key)!.state === 'failed');
});

t.test('an outbox write failure does not turn into a POST storm', async (t) => {
  const rx = await startReceiver(t, { script: () => ({ status: 500 }) });
  const outbox = new MemOutbox();
  outbox.retryLater = () => {
    throw new Error('disk full');
  };
  const { d, logs } = harness(t, outbox, { backoff: { initialMs: 1000, maxMs: 1000 }, pollMs: 5 });
  d.start();
  commit(outbox, [rx.url()]);
  d.kick();
  await T(150); // 30 polls
  t.equal(rx.received.length, 1, 'held until the computed retry time (500 ms) though the row still looks due');
  t.ok(logs.some((l) => l.level === 'error' && /write failed/.test(l.m ?? '')));
  await until('retried later', () => rx.received.length >= 2);
});

// ---------------------------------------------------------------------------------------------

t.test('postJson: how answers are classified', async (t) => {
  const cases: Array<[number, string]> = [
    [200, 'delivered'], [201, 'delivered'], [202, 'delivered'], [204, 'delivered'],
    [408, 'retry'], [429, 'retry'], [500, 'retry'], [502, 'retry'], [503, 'retry'], [504, 'retry'],
    [301, 'permanent'], [302, 'permanent'], [400, 'permanent'], [401, 'permanent'], [403, 'permanent'], [404, 'permanent'], [409, 'permanent'], [413, 'permanent'],
  ];
  let want = 200;
  const rx = await startReceiver(t, { script: () => ({ status: want }) });
  for (const [status, kind] of cases) {
    want = status;
    const r = await postJson(rx.url(), '{}', { 'Idempotency-Key': 'k' }, { timeoutMs: 1000 });
    t.equal(r.kind, kind, `${status} → ${kind}`);
    if (r.kind !== 'delivered') t.match(r.error, new RegExp(`^HTTP ${status}`));
  }

  const date = new Date(Date.now() + 5000).toUTCString();
  rx.setScript(() => ({ status: 503, headers: { 'Retry-After': date } }));
  const r503 = await postJson(rx.url(), '{}', {}, { timeoutMs: 1000 });
  t.ok(r503.kind === 'retry' && r503.retryAfterMs !== undefined && r503.retryAfterMs > 3000 && r503.retryAfterMs <= 5000, 'Retry-After as an HTTP-date', { r503 });
  rx.setScript(() => ({ status: 500, headers: { 'Retry-After': '7' } }));
  const r500 = await postJson(rx.url(), '{}', {}, { timeoutMs: 1000 });
  t.ok(r500.kind === 'retry' && r500.retryAfterMs === undefined, 'Retry-After only on 429 and 503');
  t.equal(retryAfterMs('120'), 120_000);
  t.equal(retryAfterMs('soon'), undefined);
  t.equal(retryAfterMs('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('Wed, 21 Oct 2015 07:28:10 GMT')), 0, 'a date in the past: now');

  rx.setScript(() => 'close');
  const closed = await postJson(rx.url(), '{}', {}, { timeoutMs: 1000 });
  t.equal(closed.kind, 'retry', 'connection closed without an answer');

  rx.setScript(() => 'hang');
  const hung = await postJson(rx.url(), '{}', {}, { timeoutMs: 80 });
  t.same(hung, { kind: 'retry', error: 'timeout after 80 ms' });

  const ac = new AbortController();
  const pending = postJson(rx.url(), '{}', {}, { timeoutMs: 5000, signal: ac.signal });
  ac.abort();
  t.same(await pending, { kind: 'retry', error: 'aborted' });

  t.same(await postJson('not a url', '{}', {}, { timeoutMs: 100 }), { kind: 'permanent', status: 0, error: 'invalid URL: not a url' });
  t.equal((await postJson('ftp://127.0.0.1/x', '{}', {}, { timeoutMs: 100 })).kind, 'permanent');

  const down = await closedUrl(t);
  const refused = await postJson(down.url, '{}', {}, { timeoutMs: 1000 });
  t.ok(refused.kind === 'retry' && /ECONNREFUSED/.test(refused.error), 'connection refused → retry');
});

t.test('postJson: a kept-alive connection that dies under a request is replaced at once', async (t) => {
  // The second request rides the kept-alive socket and the server drops it (as when its idle
  // timeout crosses our request): one fresh connection at once, not a retry after backoff.
  const rx = await startReceiver(t, { script: (r) => (r.n === 2 ? 'close' : { status: 200 }) });
  t.equal((await postJson(rx.url(), '{}', {}, { timeoutMs: 1000 })).kind, 'delivered');
  t.equal((await postJson(rx.url(), '{}', {}, { timeoutMs: 1000 })).kind, 'delivered');
  t.equal(rx.received.length, 3);
  t.equal(rx.connections(), 2);

  // Only once: a fresh connection that dies is a retry.
  rx.setScript(() => 'close');
  await T(20);
  t.equal((await postJson(rx.url(), '{}', {}, { timeoutMs: 1000 })).kind, 'retry');
});
