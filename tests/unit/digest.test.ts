import t from 'tap';
import { createHash } from 'node:crypto';
import {
  authorize, parseChallenge, parseChallenges, isSupported, DigestSession, DigestError,
  type DigestChallenge,
} from '../../src/sip/digest.js';
import { Headers } from '../../src/sip/message.js';

/** Parse a credentials value back into its params (for assertions). */
function params(value: string): Record<string, string> {
  if (!value.startsWith('Digest ')) throw new Error(`not a Digest credentials value: ${value}`);
  const out: Record<string, string> = {};
  const re = /([a-z]+)=("((?:[^"\\]|\\.)*)"|[^,\s]+)/gi;
  for (const m of value.slice(7).matchAll(re)) out[m[1]!] = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : m[2]!;
  return out;
}

const md5 = (s: string | Buffer): string => createHash('md5').update(s).digest('hex');
const sha256 = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');

t.test('parseChallenge', async (t) => {
  t.same(
    parseChallenge('Digest realm="x", nonce="y", qop="auth,auth-int", algorithm=MD5, opaque="z", stale=TRUE'),
    { realm: 'x', nonce: 'y', qop: ['auth', 'auth-int'], algorithm: 'MD5', opaque: 'z', stale: true },
  );
  t.same(
    parseChallenge('dIgEsT   NONCE = "n,1" ,\tRealm="a \\"quoted\\" realm\\\\" , QOP="Auth-Int , auth", stale=false'),
    { realm: 'a "quoted" realm\\', nonce: 'n,1', qop: ['auth-int', 'auth'], stale: false },
    'case-insensitive scheme and names, LWS, escapes, commas inside quotes',
  );
  t.same(parseChallenge('Digest realm=biloxi.com, nonce=abc'), { realm: 'biloxi.com', nonce: 'abc' }, 'token values');
  t.same(parseChallenge('Digest realm="r", nonce=ab/c+d=='), { realm: 'r', nonce: 'ab/c+d==' }, 'unquoted non-token tolerated');
  t.equal(parseChallenge('Digest realm="r", nonce=a b'), null, 'junk after a value');
  t.equal(parseChallenge('Basic realm="x"'), null, 'other scheme');
  t.equal(parseChallenge('Digest realm="x"'), null, 'no nonce');
  t.equal(parseChallenge('Digest nonce="x"'), null, 'no realm');
  t.equal(parseChallenge('Digest realm="x, nonce="y"'), null, 'unterminated quote');
  t.equal(parseChallenge('Digest realm="x", realm="z", nonce="y"'), null, 'duplicate param');
  t.equal(parseChallenge(''), null);
  t.same(
    parseChallenge('Basic realm="b", Digest realm="d", nonce="n"'),
    { realm: 'd', nonce: 'n' }, 'first Digest challenge after another scheme',
  );
  const many = parseChallenges(
    'Digest realm="r1", nonce="n1", algorithm=SHA-256, Negotiate, Digest realm="r1", nonce="n2", algorithm=MD5, Basic abc==',
  );
  t.same(many.map((c) => [c.nonce, c.algorithm]), [['n1', 'SHA-256'], ['n2', 'MD5']], 'several challenges in one value');
  t.equal(isSupported({ realm: 'r', nonce: 'n', algorithm: 'SHA-512' }), false);
  t.equal(isSupported({ realm: 'r', nonce: 'n', qop: ['auth-conf'] }), false);
  t.equal(isSupported({ realm: 'r', nonce: 'n', algorithm: 'sha-256-SESS', qop: ['auth-int'] }), true);
});

t.test('RFC 2617 section 3.5 example', async (t) => {
  const challenge = parseChallenge(
    'Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
  )!;
  const value = authorize({
    challenge, credentials: { username: 'Mufasa', password: 'Circle Of Life' },
    method: 'GET', uri: '/dir/index.html', nc: 1, cnonce: '0a4f113b',
  });
  t.equal(
    value,
    'Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", ' +
      'uri="/dir/index.html", response="6629fae49393a05397450978507c4ef1", algorithm=MD5, cnonce="0a4f113b", ' +
      'nc=00000001, qop=auth, opaque="5ccc069c403ebaf9f0171e9517f40e41"',
  );
});

t.test('RFC 7616 section 3.9.1 examples', async (t) => {
  const expected: Record<string, string> = {
    'SHA-256': '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1',
    'MD5': '8ca523f5e9506fed4657c9700eebdbec',
  };
  for (const [alg, response] of Object.entries(expected)) {
    const challenge = parseChallenge(
      `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=${alg}, ` +
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
    )!;
    const p = params(authorize({
      challenge, credentials: { username: 'Mufasa', password: 'Circle of Life' }, method: 'GET',
      uri: '/dir/index.html', nc: 1, cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ',
    }));
    t.equal(p.response, response, alg);
    t.equal(p.algorithm, alg);
    t.equal(p.qop, 'auth');
    t.equal(p.nc, '00000001');
    t.equal(p.opaque, 'FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS');
  }
});

t.test('SIP examples computed independently', async (t) => {
  const creds = { username: 'bob', password: 'zanzibar' };
  const uri = 'sip:bob@biloxi.com';

  // RFC 2069 form (no qop), as many SIP servers still send.
  const plain: DigestChallenge = { realm: 'biloxi.com', nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093' };
  const p1 = params(authorize({ challenge: plain, credentials: creds, method: 'INVITE', uri, nc: 1 }));
  const ha1 = md5('bob:biloxi.com:zanzibar');
  t.equal(p1.response, md5(`${ha1}:${plain.nonce}:${md5(`INVITE:${uri}`)}`));
  t.notOk('cnonce' in p1 || 'nc' in p1 || 'qop' in p1 || 'opaque' in p1, 'no qop fields in RFC 2069 form');
  t.equal(p1.algorithm, 'MD5');

  // MD5 with qop=auth, nc=3.
  const auth: DigestChallenge = { realm: 'biloxi.com', nonce: 'n0nce', qop: ['auth'], opaque: 'op' };
  const p2 = params(authorize({ challenge: auth, credentials: creds, method: 'REGISTER', uri: 'sip:biloxi.com', nc: 3, cnonce: 'cn' }));
  t.equal(p2.nc, '00000003');
  t.equal(p2.response, md5(`${ha1}:n0nce:00000003:cn:auth:${md5('REGISTER:sip:biloxi.com')}`));

  // SHA-256-sess with auth-int only: body hashed into HA2, session key in HA1.
  const body = Buffer.from('v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n');
  const sess: DigestChallenge = { realm: 'biloxi.com', nonce: 'abc', qop: ['auth-int'], algorithm: 'SHA-256-sess' };
  const p3 = params(authorize({ challenge: sess, credentials: creds, method: 'INVITE', uri, body, nc: 1, cnonce: 'xyz' }));
  const sha1 = sha256(`${sha256('bob:biloxi.com:zanzibar')}:abc:xyz`);
  const sha2 = sha256(`INVITE:${uri}:${sha256(body)}`);
  t.equal(p3.response, sha256(`${sha1}:abc:00000001:xyz:auth-int:${sha2}`));
  t.equal(p3.qop, 'auth-int');
  t.equal(p3.algorithm, 'SHA-256-sess');

  // MD5-sess, qop offers both → auth preferred.
  const md5sess: DigestChallenge = { realm: 'r', nonce: 'n', qop: ['auth-int', 'auth'], algorithm: 'md5-sess' };
  const p4 = params(authorize({ challenge: md5sess, credentials: creds, method: 'BYE', uri, nc: 1, cnonce: 'c' }));
  t.equal(p4.qop, 'auth');
  t.equal(p4.algorithm, 'MD5-sess');
  t.equal(p4.response, md5(`${md5(`${md5('bob:r:zanzibar')}:n:c`)}:n:00000001:c:auth:${md5(`BYE:${uri}`)}`));

  // Quoting of awkward values survives a round trip.
  const q = params(authorize({
    challenge: { realm: 'we "quote"', nonce: 'n' }, credentials: { username: 'a\\b', password: 'p' }, method: 'OPTIONS', uri, nc: 1,
  }));
  t.equal(q.realm, 'we "quote"');
  t.equal(q.username, 'a\\b');

  t.throws(() => authorize({ challenge: { realm: 'r', nonce: 'n', algorithm: 'SHA-1' }, credentials: creds, method: 'X', uri, nc: 1 }), DigestError);
  t.throws(() => authorize({ challenge: plain, credentials: creds, method: 'X', uri, nc: 0 }), DigestError);
});

const invite = { method: 'INVITE', uri: 'sip:112@amk.example', body: Buffer.from('sdp') };
const creds = { username: 'bridge', password: 's3cret' };

t.test('DigestSession: 401 and 407, nc, loop guard', async (t) => {
  const s = new DigestSession({ cnonce: () => 'fixed' });
  const h407 = new Headers([['Proxy-Authenticate', 'Digest realm="proxy", nonce="n1", qop="auth"']]);
  const a1 = s.answer(h407, invite, creds);
  t.equal(a1?.length, 1);
  t.equal(a1![0]!.header, 'Proxy-Authorization');
  const p = params(a1![0]!.value);
  t.equal(p.nc, '00000001');
  t.equal(p.uri, 'sip:112@amk.example');
  t.equal(s.nonceCount('proxy', 'n1'), 1);

  t.equal(s.answer(h407, invite, creds), null, 'same realm+nonce again, not stale: credentials rejected');

  const h401 = new Headers([['WWW-Authenticate', 'Digest realm="uas", nonce="u1"']]);
  const a2 = s.answer(h401, invite, creds);
  t.equal(a2![0]!.header, 'Authorization');
  t.equal(params(a2![0]!.value).realm, 'uas');
});

t.test('DigestSession: stale=true allows a retry and increments nc', async (t) => {
  const s = new DigestSession();
  const first = new Headers([['WWW-Authenticate', 'Digest realm="r", nonce="n", qop="auth"']]);
  t.equal(params(s.answer(first, invite, creds)![0]!.value).nc, '00000001');
  const stale = new Headers([['WWW-Authenticate', 'Digest realm="r", nonce="n", qop="auth", stale=true']]);
  const again = s.answer(stale, invite, creds);
  t.ok(again, 'stale re-challenge answered');
  t.equal(params(again![0]!.value).nc, '00000002', 'same nonce → nc incremented');
  t.equal(s.nonceCount('r', 'n'), 2);
  const fresh = new Headers([['WWW-Authenticate', 'Digest realm="r", nonce="n2", qop="auth", stale=TRUE']]);
  t.equal(params(s.answer(fresh, invite, creds)![0]!.value).nc, '00000001', 'new nonce → nc restarts');
  // Cap per realm (default 3): a fourth answer for realm r is refused.
  const fresh3 = new Headers([['WWW-Authenticate', 'Digest realm="r", nonce="n3", qop="auth"']]);
  t.equal(s.answer(fresh3, invite, creds), null, 'per-realm cap stops fresh-nonce rejections looping');
});

t.test('DigestSession: several challenges', async (t) => {
  const s = new DigestSession();
  const h = new Headers([
    ['Proxy-Authenticate', 'Digest realm="a.example", nonce="na", algorithm=SHA-256, qop="auth"'],
    ['Proxy-Authenticate', 'Digest realm="a.example", nonce="na2", algorithm=MD5, qop="auth"'],
    ['Proxy-Authenticate', 'Basic realm="x", Digest realm="b.example", nonce="nb"'],
    ['WWW-Authenticate', 'Digest realm="c.example", nonce="nc", algorithm=AKAv1-MD5'],
  ]);
  const answers = s.answer(h, invite, [
    { username: 'ua', password: 'pa', realm: 'a.example' },
    { username: 'ub', password: 'pb' },
  ]);
  t.equal(answers?.length, 2, 'one per realm; unsupported algorithm skipped');
  const [a, b] = answers!.map((x) => ({ header: x.header, ...params(x.value) }));
  t.match(a, { header: 'Proxy-Authorization', realm: 'a.example', username: 'ua', nonce: 'na', algorithm: 'SHA-256' });
  t.match(b, { header: 'Proxy-Authorization', realm: 'b.example', username: 'ub', nonce: 'nb', algorithm: 'MD5' });

  // Credentials restricted to another realm answer nothing.
  const s2 = new DigestSession();
  t.equal(s2.answer(h, invite, { username: 'u', password: 'p', realm: 'other' }), null);
  // No challenge at all.
  t.equal(s2.answer(new Headers([['WWW-Authenticate', 'Basic realm="x"']]), invite, creds), null);
  t.equal(s2.answer(new Headers(), invite, creds), null);
});
