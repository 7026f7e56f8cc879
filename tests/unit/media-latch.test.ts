import t from 'tap';
import { Latch, normalizeAddress, parseCidr, parseNetworks } from '../../src/media/latch.js';

t.test('CIDR parsing', async (t) => {
  t.same(parseCidr('10.1.0.0/16'), { address: '10.1.0.0', prefix: 16, family: 'ipv4' });
  t.same(parseCidr('192.0.2.7'), { address: '192.0.2.7', prefix: 32, family: 'ipv4' });
  t.same(parseCidr('2001:db8::/32'), { address: '2001:db8::', prefix: 32, family: 'ipv6' });
  t.same(parseCidr('::ffff:10.0.0.1/8'), { address: '10.0.0.1', prefix: 8, family: 'ipv4' });
  for (const bad of ['10.0.0.0/33', 'host.example/24', '10.0.0.0/', '10.0.0.0/x', '', '2001:db8::/129']) {
    t.throws(() => parseCidr(bad), RangeError, bad);
  }
  t.throws(() => parseNetworks(['10.0.0.0/8', 'nope']), /nope/);
  t.equal(normalizeAddress('::ffff:127.0.0.1'), '127.0.0.1');
  t.equal(normalizeAddress('::1'), '::1');
});

t.test('accepts the SDP address on any port and latches the first source', async (t) => {
  const l = new Latch();
  l.configure('192.0.2.10', []);
  t.equal(l.latched, null);
  t.equal(l.check('198.51.100.1', 4000, 0), 'reject', 'not in the SDP, no networks');
  t.equal(l.latched, null, 'a rejected packet does not latch');
  t.equal(l.check('192.0.2.10', 31000, 10), 'latch', 'SDP address, another port than the SDP says (NAT)');
  t.same(l.latched, { address: '192.0.2.10', port: 31000 });
  t.equal(l.check('192.0.2.10', 31000, 20), 'accept');
  t.equal(l.check('192.0.2.10', 31002, 30), 'ignore', 'same host, other port while the latched one is live');
  t.equal(l.check('198.51.100.1', 4000, 40), 'reject');
});

t.test('latch networks', async (t) => {
  const l = new Latch();
  l.configure('192.0.2.10', ['10.20.0.0/16', '2001:db8::/32']);
  t.ok(l.allowed('10.20.3.4'));
  t.notOk(l.allowed('10.21.0.1'));
  t.ok(l.allowed('2001:db8:1::5'));
  t.ok(l.allowed('::ffff:10.20.0.1'), 'IPv4-mapped from a dual-stack socket');
  t.notOk(l.allowed('not-an-ip'));
  t.equal(l.check('10.20.9.9', 5000, 0), 'latch', 'SBC pool address');
  t.same(l.latched, { address: '10.20.9.9', port: 5000 });
});

t.test('relatch after the latched source went silent', async (t) => {
  const l = new Latch({ relatchAfterMs: 1000 });
  l.configure('192.0.2.10', []);
  t.equal(l.check('192.0.2.10', 4000, 0), 'latch');
  t.equal(l.check('192.0.2.10', 4000, 500), 'accept');
  t.equal(l.check('192.0.2.10', 4010, 900), 'ignore');
  t.equal(l.check('192.0.2.10', 4010, 1600), 'latch', 'NAT rebinding: the old port has been silent for 1.1 s');
  t.same(l.latched, { address: '192.0.2.10', port: 4010 });
  t.equal(l.check('192.0.2.10', 4000, 1700), 'ignore', 'the old port is no longer the latched one');
});

t.test('a configure with a different address resets the latch; the same one keeps it', async (t) => {
  const l = new Latch();
  l.configure('192.0.2.10', []);
  l.check('192.0.2.10', 4000, 0);
  l.configure('192.0.2.10', []);
  t.same(l.latched, { address: '192.0.2.10', port: 4000 }, 're-INVITE with the same address');
  l.configure('192.0.2.20', []);
  t.equal(l.latched, null, 'new remote address');
  t.equal(l.check('192.0.2.10', 4000, 10), 'reject', 'the old address is no longer allowed');
  t.equal(l.check('192.0.2.20', 6000, 20), 'latch');
  l.configure(null, ['192.0.2.0/24']);
  t.equal(l.latched, null, 'remote gone (hold): reset');
  t.equal(l.check('192.0.2.99', 1, 30), 'latch', 'network still allows');
  l.configure(null, ['10.0.0.0/8']);
  t.equal(l.latched, null, 'networks that no longer allow the latched source reset it');
  t.throws(() => l.configure('192.0.2.1', ['300.0.0.0/8']), RangeError);
});

t.test('no SDP address and no networks: nothing is allowed', async (t) => {
  const l = new Latch();
  l.configure(null, []);
  t.equal(l.check('127.0.0.1', 1000, 0), 'reject');
  l.configure('host.example', []);
  t.equal(l.check('127.0.0.1', 1000, 0), 'reject', 'a name in the SDP matches no source');
});
