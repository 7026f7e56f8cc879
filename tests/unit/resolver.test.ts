import t from 'tap';
import { SipResolver, ResolveError, orderSrv, type Hop } from '../../src/sip/resolver.js';
import { startDnsServer, type TestRecord, type TestDnsServer } from '../helpers/dns-server.js';

const records: TestRecord[] = [
  // explicit-port / A-only host that also has SRV records (which must be ignored with a port)
  { type: 'A', name: 'example.test', address: '192.0.2.10' },
  { type: 'SRV', name: '_sip._udp.example.test', priority: 10, weight: 0, port: 5080, target: 'srv.example.test' },
  { type: 'A', name: 'srv.example.test', address: '192.0.2.11' },

  // two priorities, weights 0 vs 100 at the first, one record at the second
  { type: 'SRV', name: '_sip._udp.multi.test', priority: 10, weight: 0, port: 5060, target: 'a.multi.test' },
  { type: 'SRV', name: '_sip._udp.multi.test', priority: 10, weight: 100, port: 5062, target: 'b.multi.test' },
  { type: 'SRV', name: '_sip._udp.multi.test', priority: 20, weight: 50, port: 5064, target: 'c.multi.test' },
  { type: 'A', name: 'a.multi.test', address: '10.0.0.1' },
  { type: 'A', name: 'b.multi.test', address: '10.0.0.2' },
  { type: 'A', name: 'c.multi.test', address: '10.0.0.3' },
  { type: 'SRV', name: '_sip._tcp.multi.test', priority: 5, weight: 0, port: 5070, target: 'a.multi.test' },

  // SRV target with two A records and an AAAA record
  { type: 'SRV', name: '_sip._udp.twin.test', priority: 1, weight: 1, port: 5090, target: 'pool.twin.test' },
  { type: 'A', name: 'pool.twin.test', address: '10.1.0.1' },
  { type: 'A', name: 'pool.twin.test', address: '10.1.0.2' },
  { type: 'AAAA', name: 'pool.twin.test', address: '2001:db8::1' },

  // no SRV at all: A/AAAA fallback (short TTL for the cache test)
  { type: 'A', name: 'plain.test', address: '198.51.100.7', ttl: 5 },

  // sips: only _sips._tcp may be used
  { type: 'SRV', name: '_sips._tcp.secure.test', priority: 1, weight: 0, port: 5061, target: 'tls.secure.test' },
  { type: 'SRV', name: '_sip._udp.secure.test', priority: 1, weight: 0, port: 5060, target: 'udp.secure.test' },
  { type: 'A', name: 'tls.secure.test', address: '10.2.0.1' },
  { type: 'A', name: 'udp.secure.test', address: '10.2.0.2' },

  // transport param
  { type: 'SRV', name: '_sip._udp.tp.test', priority: 1, weight: 0, port: 5060, target: 'udp.tp.test' },
  { type: 'SRV', name: '_sip._tcp.tp.test', priority: 1, weight: 0, port: 5070, target: 'tcp.tp.test' },
  { type: 'A', name: 'udp.tp.test', address: '10.3.0.1' },
  { type: 'A', name: 'tcp.tp.test', address: '10.3.0.2' },

  // failover: two priorities
  { type: 'SRV', name: '_sip._udp.fo.test', priority: 1, weight: 0, port: 5060, target: 'one.fo.test' },
  { type: 'SRV', name: '_sip._udp.fo.test', priority: 2, weight: 0, port: 5060, target: 'two.fo.test' },
  { type: 'A', name: 'one.fo.test', address: '10.4.0.1' },
  { type: 'A', name: 'two.fo.test', address: '10.4.0.2' },

  // "." target: service decidedly not available, no A fallback
  { type: 'SRV', name: '_sip._udp.none.test', priority: 0, weight: 0, port: 0, target: '.' },
  { type: 'A', name: 'none.test', address: '10.5.0.1' },

  // partial failure: udp SRV dropped, tcp SRV answers
  { type: 'SRV', name: '_sip._tcp.part.test', priority: 1, weight: 0, port: 5070, target: 'tcp.part.test' },
  { type: 'A', name: 'tcp.part.test', address: '10.6.0.1' },

  // SRV queries fail but the host has an A record
  { type: 'A', name: 'srvfail.test', address: '10.7.0.1' },
];

let dns: TestDnsServer;
t.before(async () => {
  dns = await startDnsServer(records);
  dns.drop.add('slow.test');
  dns.drop.add('_sip._udp.part.test');
  dns.drop.add('_sip._udp.srvfail.test');
  dns.drop.add('_sip._tcp.srvfail.test');
  dns.servfail.add('broken.test');
  dns.servfail.add('_sip._udp.broken.test');
  dns.servfail.add('_sip._tcp.broken.test');
});
t.teardown(() => dns.close());

const make = (extra: ConstructorParameters<typeof SipResolver>[0] = {}): SipResolver =>
  new SipResolver({ servers: [`127.0.0.1:${dns.port}`], timeoutMs: 100, tries: 1, ...extra });
const brief = (hops: Hop[]): string[] => hops.map((h) => `${h.transport}:${h.address}:${h.port}`);

t.test('IP literals need no DNS', async (t) => {
  const r = make();
  const before = dns.queries.length;
  t.same(await r.resolve({ scheme: 'sip', host: '192.0.2.1' }), [{ transport: 'udp', address: '192.0.2.1', port: 5060, target: '192.0.2.1' }]);
  t.same(brief(await r.resolve({ scheme: 'sips', host: '192.0.2.1' })), ['tls:192.0.2.1:5061']);
  t.same(brief(await r.resolve({ scheme: 'sip', host: '[2001:db8::5]', transportParam: 'TCP' })), ['tcp:2001:db8::5:5060']);
  t.same(brief(await r.resolve({ scheme: 'sip', host: '192.0.2.1', port: 5099, transportParam: 'tls' })), ['tls:192.0.2.1:5099']);
  t.same(brief(await r.resolve({ scheme: 'sips', host: '192.0.2.1', transportParam: 'tcp' })), ['tls:192.0.2.1:5061'], 'sips + tcp = TLS');
  t.equal(dns.queries.length, before);
});

t.test('unusable transport', async (t) => {
  const r = make();
  await t.rejects(r.resolve({ scheme: 'sip', host: 'example.test', transportParam: 'sctp' }), { name: 'ResolveError', code: 'EBADTRANSPORT' });
  await t.rejects(r.resolve({ scheme: 'sips', host: '192.0.2.1', transportParam: 'udp' }), { code: 'EBADTRANSPORT' });
});

t.test('host name with explicit port: A/AAAA only', async (t) => {
  const r = make();
  const srvBefore = dns.count('_sip._udp.example.test', 'SRV');
  const hops = await r.resolve({ scheme: 'sip', host: 'example.test', port: 5070 });
  t.same(hops, [{ transport: 'udp', address: '192.0.2.10', port: 5070, target: 'example.test' }]);
  t.equal(dns.count('_sip._udp.example.test', 'SRV'), srvBefore, 'no SRV query');
  t.same(brief(await r.resolve({ scheme: 'sips', host: 'example.test', port: 5071 })), ['tls:192.0.2.10:5071']);
  t.same(brief(await r.resolve({ scheme: 'sip', host: 'example.test', port: 5072, transportParam: 'tcp' })), ['tcp:192.0.2.10:5072']);
});

t.test('SRV priorities and weights', async (t) => {
  const r = make();
  let bFirst = 0;
  for (let i = 0; i < 200; i++) {
    const hops = brief(await r.resolve({ scheme: 'sip', host: 'multi.test' }));
    t.equal(hops.length, 4);
    // priority 10 (a, b) before priority 20 (c), all UDP before the TCP service
    t.same(new Set(hops.slice(0, 2)), new Set(['udp:10.0.0.1:5060', 'udp:10.0.0.2:5062']));
    t.equal(hops[2], 'udp:10.0.0.3:5064');
    t.equal(hops[3], 'tcp:10.0.0.1:5070');
    if (hops[0] === 'udp:10.0.0.2:5062') bFirst++;
  }
  t.ok(bFirst > 180, `weight 100 came first in ${bFirst}/200 draws`);
  t.equal(dns.count('_sip._udp.multi.test', 'SRV'), 1, 'SRV answer cached across the 200 resolves');
});

t.test('orderSrv', async (t) => {
  const recs = [
    { priority: 2, weight: 0, id: 'z' },
    { priority: 1, weight: 10, id: 'a' },
    { priority: 1, weight: 30, id: 'b' },
    { priority: 1, weight: 0, id: 'c' },
  ];
  // random 0 picks the first record of the running sum: the zero-weight one.
  t.same(orderSrv(recs, () => 0).map((r) => r.id), ['c', 'a', 'b', 'z']);
  // random close to 1 picks the last (heaviest at the end of the list).
  t.same(orderSrv(recs, () => 0.999).map((r) => r.id), ['b', 'a', 'c', 'z']);
  t.same(orderSrv([], Math.random), []);
});

t.test('SRV target with two A records (and AAAA)', async (t) => {
  const r = make();
  const hops = await r.resolve({ scheme: 'sip', host: 'twin.test' });
  t.same(brief(hops), ['udp:10.1.0.1:5090', 'udp:10.1.0.2:5090', 'udp:2001:db8::1:5090']);
  t.ok(hops.every((h) => h.target === 'pool.twin.test'));
  const v4only = make({ ipv6: false });
  t.same(brief(await v4only.resolve({ scheme: 'sip', host: 'twin.test' })), ['udp:10.1.0.1:5090', 'udp:10.1.0.2:5090']);
});

t.test('no SRV: A fallback with the default port', async (t) => {
  const r = make();
  t.same(await r.resolve({ scheme: 'sip', host: 'plain.test' }), [{ transport: 'udp', address: '198.51.100.7', port: 5060, target: 'plain.test' }]);
  t.same(brief(await r.resolve({ scheme: 'sips', host: 'plain.test' })), ['tls:198.51.100.7:5061']);
  t.same(brief(await r.resolve({ scheme: 'sip', host: 'plain.test', transportParam: 'tcp' })), ['tcp:198.51.100.7:5060']);
});

t.test('NXDOMAIN gives an empty list', async (t) => {
  const r = make();
  t.same(await r.resolve({ scheme: 'sip', host: 'nowhere.test' }), []);
  t.same(await r.resolve({ scheme: 'sip', host: 'nowhere.test', port: 5060 }), []);
});

t.test('SRV target "." means not available: no A fallback', async (t) => {
  const r = make();
  t.same(await r.resolve({ scheme: 'sip', host: 'none.test', transportParam: 'udp' }), []);
});

t.test('sips uses _sips._tcp only', async (t) => {
  const r = make();
  const hops = await r.resolve({ scheme: 'sips', host: 'secure.test' });
  t.same(hops, [{ transport: 'tls', address: '10.2.0.1', port: 5061, target: 'tls.secure.test' }]);
  t.equal(dns.count('_sip._udp.secure.test'), 0, 'plain SIP SRV never asked for a sips URI');
  t.equal(dns.count('_sips._tcp.secure.test', 'SRV'), 1);
});

t.test('transport param selects the SRV service', async (t) => {
  const r = make();
  t.same(brief(await r.resolve({ scheme: 'sip', host: 'tp.test', transportParam: 'tcp' })), ['tcp:10.3.0.2:5070']);
  t.equal(dns.count('_sip._udp.tp.test'), 0);
  t.same(brief(await r.resolve({ scheme: 'sip', host: 'tp.test', transportParam: 'udp' })), ['udp:10.3.0.1:5060']);
  t.same(brief(await r.resolve({ scheme: 'sip', host: 'tp.test' })), ['udp:10.3.0.1:5060', 'tcp:10.3.0.2:5070'], 'both, UDP preferred');
  t.same(await r.resolve({ scheme: 'sip', host: 'tp.test', transportParam: 'tls' }), [], '_sips._tcp absent, host has no A');
});

t.test('cache by TTL (injected clock)', async (t) => {
  let now = 1_000_000;
  const r = make({ now: () => now });
  const count = (): [number, number, number] => [
    dns.count('_sip._udp.plain.test'), dns.count('_sip._tcp.plain.test'), dns.count('plain.test', 'A'),
  ];
  const [u0, t0, a0] = count();
  await r.resolve({ scheme: 'sip', host: 'plain.test' });
  t.same(count(), [u0 + 1, t0 + 1, a0 + 1]);
  await r.resolve({ scheme: 'sip', host: 'plain.test' });
  t.same(count(), [u0 + 1, t0 + 1, a0 + 1], 'cache hit: no new queries');
  now += 6_000; // past the A record's 5 s TTL, within the 60 s for (negative) SRV answers
  await r.resolve({ scheme: 'sip', host: 'plain.test' });
  t.same(count(), [u0 + 1, t0 + 1, a0 + 2], 'A re-queried after its TTL');
  now += 60_000;
  await r.resolve({ scheme: 'sip', host: 'plain.test' });
  t.same(count(), [u0 + 2, t0 + 2, a0 + 3], 'SRV re-queried after 60 s');

  // cacheMaxTtlS caps every lifetime
  const capped = make({ now: () => now, cacheMaxTtlS: 1 });
  await capped.resolve({ scheme: 'sip', host: 'plain.test' });
  now += 2_000;
  await capped.resolve({ scheme: 'sip', host: 'plain.test' });
  t.same(count(), [u0 + 4, t0 + 4, a0 + 5]);

  // concurrent resolves share the queries in flight
  const fresh = make();
  const beforeA = dns.count('plain.test', 'A');
  await Promise.all([1, 2, 3].map(() => fresh.resolve({ scheme: 'sip', host: 'plain.test', port: 5060 })));
  t.equal(dns.count('plain.test', 'A'), beforeA + 1);
});

t.test('markFailed moves a hop to the end until the penalty expires', async (t) => {
  let now = 0;
  const r = make({ now: () => now });
  const first = await r.resolve({ scheme: 'sip', host: 'fo.test' });
  t.same(brief(first), ['udp:10.4.0.1:5060', 'udp:10.4.0.2:5060']);
  r.markFailed(first[0]!);
  t.equal(r.isFailed(first[0]!), true);
  t.same(brief(await r.resolve({ scheme: 'sip', host: 'fo.test' })), ['udp:10.4.0.2:5060', 'udp:10.4.0.1:5060'], 'failed hop last');
  now += 29_999;
  t.same(brief(await r.resolve({ scheme: 'sip', host: 'fo.test' })), ['udp:10.4.0.2:5060', 'udp:10.4.0.1:5060'], 'still penalised');
  now += 2;
  t.same(brief(await r.resolve({ scheme: 'sip', host: 'fo.test' })), ['udp:10.4.0.1:5060', 'udp:10.4.0.2:5060'], 'penalty expired');

  // both failed: original order kept among the penalised; custom duration; clearFailed
  r.markFailed(first[1]!, 5_000);
  r.markFailed(first[0]!, 1_000);
  t.same(brief(await r.resolve({ scheme: 'sip', host: 'fo.test' })), ['udp:10.4.0.1:5060', 'udp:10.4.0.2:5060']);
  now += 1_001;
  t.same(brief(await r.resolve({ scheme: 'sip', host: 'fo.test' })), ['udp:10.4.0.1:5060', 'udp:10.4.0.2:5060']);
  r.markFailed(first[0]!);
  r.clearFailed(first[1]!);
  t.same(brief(await r.resolve({ scheme: 'sip', host: 'fo.test' })), ['udp:10.4.0.2:5060', 'udp:10.4.0.1:5060']);

  // IP literals are reordered too (single hop stays, obviously)
  r.markFailed({ transport: 'udp', address: '192.0.2.1', port: 5060 });
  t.same(brief(await r.resolve({ scheme: 'sip', host: '192.0.2.1' })), ['udp:192.0.2.1:5060']);
});

t.test('timeouts and server failures', async (t) => {
  const r = make();
  const started = Date.now();
  const err = await r.resolve({ scheme: 'sip', host: 'slow.test', port: 5060 }).then(() => null, (e: unknown) => e);
  t.type(err, ResolveError);
  t.equal((err as ResolveError).code, 'ETIMEOUT');
  t.equal((err as ResolveError).host, 'slow.test');
  t.ok(Date.now() - started < 5_000, 'gave up promptly');

  await t.rejects(r.resolve({ scheme: 'sip', host: 'broken.test' }), { code: 'ESERVFAIL' });

  // one SRV query times out, the other answers: the answer is used, no exception
  t.same(brief(await r.resolve({ scheme: 'sip', host: 'part.test' })), ['tcp:10.6.0.1:5070']);

  // both SRV queries time out: the host's A record is still tried at the default port
  t.same(brief(await r.resolve({ scheme: 'sip', host: 'srvfail.test' })), ['udp:10.7.0.1:5060']);

  // failures are not cached: once the server answers, the name resolves
  dns.drop.delete('slow.test');
  dns.setRecords([...records, { type: 'A', name: 'slow.test', address: '10.8.0.1' }]);
  t.same(brief(await r.resolve({ scheme: 'sip', host: 'slow.test', port: 5060 })), ['udp:10.8.0.1:5060']);
  dns.setRecords(records);
});
