import t, { type Test } from 'tap';
import { EndpointProber, type EndpointStatus } from '../../src/notify/endpoint-prober.js';
import { makeCert, startReceiver } from '../helpers/receiver.js';

const T = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await T(5);
  }
}

function prober(t: Test, urls: string[], p: { intervalS?: number; timeoutMs?: number; ca?: Buffer | null } = {}) {
  const changes: EndpointStatus[] = [];
  const pr = new EndpointProber(urls, { intervalS: p.intervalS ?? 0.02, timeoutMs: p.timeoutMs ?? 500, ca: p.ca ?? null }, (s) => changes.push(s));
  t.teardown(() => pr.stop());
  return { pr, changes };
}

t.test('OPTIONS; any answer below 500 is up; one change event for the first result', async (t) => {
  const rx = await startReceiver(t, { script: (r) => ({ status: r.method === 'OPTIONS' ? 405 : 200 }) });
  const { pr, changes } = prober(t, [rx.url()]);
  t.same(pr.status().map((s) => [s.url, s.up, s.lastStatus]), [[rx.url(), false, null]], 'before the first probe');
  pr.start();
  await until('first result', () => changes.length === 1);
  await until('several probes', () => rx.received.length >= 4);
  t.equal(changes.length, 1, 'no event while nothing changes');
  t.equal(changes[0]!.up, true, 'a 405 still proves an HTTP server');
  t.equal(changes[0]!.lastStatus, 405);
  t.equal(changes[0]!.lastError, null);
  t.ok(rx.received.every((r) => r.method === 'OPTIONS' && r.path === '/amk/messages' && r.headers['user-agent'] === 'amk-bridge'));
  t.same(pr.status()[0]!.up, true);
});

t.test('5xx is down; back up; connection refused is down', async (t) => {
  const rx = await startReceiver(t, { script: () => ({ status: 503 }) });
  const { pr, changes } = prober(t, [rx.url()]);
  pr.start();
  await until('first result', () => changes.length === 1);
  t.match(changes[0], { up: false, lastStatus: 503, lastError: 'HTTP 503 Service Unavailable' });

  rx.setScript(() => ({ status: 204 }));
  await until('up', () => changes.length === 2);
  t.match(changes[1], { up: true, lastStatus: 204, lastError: null });
  t.ok(changes[1]!.since >= changes[0]!.since);

  await rx.stop();
  await until('down', () => changes.length === 3);
  t.match(changes[2], { up: false, lastStatus: null });
  t.match(changes[2]!.lastError, /ECONNREFUSED/);
  await T(100);
  t.equal(changes.length, 3, 'still down: no more events');
  t.match(pr.status()[0], { up: false, lastError: /ECONNREFUSED/ });
});

t.test('a probe that gets no answer times out as down, and is not doubled meanwhile', async (t) => {
  const rx = await startReceiver(t, { script: () => 'hang' });
  const { pr, changes } = prober(t, [rx.url()], { intervalS: 0.02, timeoutMs: 150 });
  pr.start();
  await until('first result', () => changes.length === 1);
  t.match(changes[0], { up: false, lastStatus: null, lastError: 'timeout after 150 ms' });
  t.ok(rx.received.length <= 2, 'one probe at a time per URL (plus the next one after the timeout)');
});

t.test('several URLs are probed independently', async (t) => {
  const a = await startReceiver(t);
  const b = await startReceiver(t, { script: () => ({ status: 500 }) });
  const { pr, changes } = prober(t, [a.url(), b.url()]);
  pr.start();
  await until('both', () => changes.length === 2);
  const by = new Map(changes.map((c) => [c.url, c.up]));
  t.same([by.get(a.url()), by.get(b.url())], [true, false]);
  t.same(pr.status().map((s) => s.up), [true, false], 'status() in the given order');
});

t.test('HTTPS: up with the right CA, down with a wrong one', async (t) => {
  const rx = await startReceiver(t, { tls: true });
  const good = prober(t, [rx.url()], { ca: Buffer.from(rx.caPem!) });
  good.pr.start();
  await until('result', () => good.changes.length === 1);
  t.match(good.changes[0], { up: true, lastStatus: 200 });

  const wrong = prober(t, [rx.url()], { ca: Buffer.from(makeCert('other-ca').certPem) });
  wrong.pr.start();
  await until('result', () => wrong.changes.length === 1);
  t.match(wrong.changes[0], { up: false, lastStatus: null });
  t.match(wrong.changes[0]!.lastError, /certificate|self.signed|verify/i);
});

t.test('intervalS 0: no probing; stop() stops', async (t) => {
  const rx = await startReceiver(t);
  const off = prober(t, [rx.url()], { intervalS: 0 });
  off.pr.start();
  await T(60);
  t.equal(rx.received.length, 0);
  t.same(off.changes, []);

  const on = prober(t, [rx.url()]);
  on.pr.start();
  await until('probed', () => rx.received.length >= 1);
  on.pr.stop();
  await T(30); // a probe on the wire at stop() may still arrive
  const n = rx.received.length;
  await T(100);
  t.equal(rx.received.length, n, 'no probes after stop()');
});

t.test('a throwing listener does not stop probing', async (t) => {
  const rx = await startReceiver(t, { script: (r) => ({ status: r.n % 2 ? 200 : 500 }) });
  let calls = 0;
  const pr = new EndpointProber([rx.url()], { intervalS: 0.02, timeoutMs: 500, ca: null }, () => {
    calls++;
    throw new Error('listener bug');
  });
  t.teardown(() => pr.stop());
  pr.start();
  await until('several changes', () => calls >= 3);
  t.pass('still probing');
});
