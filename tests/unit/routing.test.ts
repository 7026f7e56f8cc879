import t from 'tap';
import { Router } from '../../src/domain/routing.js';
import type { CallFacts } from '../../src/core/events.js';

function facts(p: Partial<Omit<CallFacts, 'header'>> & { headers?: Record<string, string[]> } = {}): CallFacts {
  const headers = p.headers ?? {};
  return {
    requestUri: p.requestUri ?? 'sip:112@psap', requestUriUser: p.requestUriUser ?? '112', toUser: p.toUser ?? '112',
    fromNumber: p.fromNumber ?? null, paiNumber: p.paiNumber ?? null, trunk: p.trunk ?? null, source: p.source ?? '127.0.0.1',
    header: (n) => headers[n.toLowerCase()] ?? [],
    pidfLo: null,
  };
}

t.test('first matching rule wins; default otherwise', async (t) => {
  const r = new Router({
    defaultRegion: 'hovedstaden',
    rules: [
      { region: 'sjaelland', match: { fromNumber: { prefix: '+4557' } } },
      { region: 'syddanmark', match: { trunk: 'trunk-b' } },
      { region: 'nord', match: { header: { name: 'X-Area', regex: '^north' }, trunk: 'trunk-a' } },
      { region: 'midt', match: { requestUriUser: { equals: '112' }, toUser: { regex: '^11' } } },
    ],
  });
  t.same(r.route(facts({ paiNumber: '+4557001122' })), { region: 'sjaelland', rule: 0, auto: false });
  t.equal(r.route(facts({ fromNumber: '+4557001122' })).region, 'sjaelland', 'From number when no PAI');
  t.equal(r.route(facts({ paiNumber: '+4512345678', fromNumber: '+4557001122' })).region, 'midt', 'PAI wins over From');
  t.equal(r.route(facts({ trunk: 'trunk-b', paiNumber: '+4557000000' })).region, 'sjaelland', 'earlier rule first');
  t.equal(r.route(facts({ trunk: 'trunk-b' })).region, 'syddanmark');
  t.equal(r.route(facts({ trunk: 'trunk-a', headers: { 'x-area': ['northern'] } })).region, 'nord');
  t.equal(r.route(facts({ trunk: 'trunk-c', headers: { 'x-area': ['northern'] } })).region, 'midt', 'all conditions must hold');
  t.same(r.route(facts({ requestUriUser: '1813', toUser: '1813' })), { region: 'hovedstaden', rule: -1, auto: false });
});
