import t from 'tap';
import {
  parseUri, formatUri, unescapeUser, parseNameAddr, formatNameAddr, getParam, tagOf, parseVia, formatVia,
  parseCSeq, parseMaxForwards, parseContentLength, parseRAck, parseSessionExpires, parseAuthChallenge,
  parseRetryAfter, optionTags, newBranch, newTag, newCallId, isToken, unquote,
} from '../../src/sip/grammar.js';
import { Headers } from '../../src/sip/message.js';

t.test('parseUri: sip with everything', async (t) => {
  const u = parseUri('sips:alice:secret@Example.COM:5061;transport=TCP;lr;Maddr=10.0.0.1?Subject=hi&Priority=urgent')!;
  t.equal(u.scheme, 'sips');
  t.equal(u.user, 'alice');
  t.equal(u.password, 'secret');
  t.equal(u.host, 'Example.COM', 'host kept as written');
  t.equal(u.port, 5061);
  t.same([...u.params], [['transport', 'TCP'], ['lr', null], ['maddr', '10.0.0.1']]);
  t.same([...u.headers], [['Subject', 'hi'], ['Priority', 'urgent']]);
  t.equal(u.opaque, undefined);
});

t.test('parseUri: host only, scheme case, surrounding spaces', async (t) => {
  const u = parseUri('  SIP:example.com  ')!;
  t.equal(u.scheme, 'sip');
  t.equal(u.user, undefined);
  t.equal(u.host, 'example.com');
  t.equal(u.port, undefined);
  t.equal(u.params.size, 0);
});

t.test('parseUri: IPv6 references', async (t) => {
  const a = parseUri('sip:[::1]')!;
  t.equal(a.host, '[::1]');
  t.equal(a.port, undefined);
  const b = parseUri('sip:bob@[2001:db8::10]:5070;transport=udp')!;
  t.equal(b.user, 'bob');
  t.equal(b.host, '[2001:db8::10]');
  t.equal(b.port, 5070);
  t.equal(b.params.get('transport'), 'udp');
  t.equal(parseUri('sip:[::1'), null, 'unterminated reference');
});

t.test('parseUri: semicolon, ? and : in the user part', async (t) => {
  const u = parseUri('sip:user;par=u%40example.net@example.com')!;
  t.equal(u.user, 'user;par=u%40example.net');
  t.equal(u.host, 'example.com');
  t.equal(u.params.size, 0);
  t.equal(unescapeUser(u.user!), 'user;par=u@example.net');
  // RFC 4475 intmeth: the first ':' of the userinfo starts the password
  const m = parseUri("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com")!;
  t.equal(m.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
  t.equal(m.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
  t.equal(m.host, 'example.com');
});

t.test('parseUri: escaped user and params (esc01)', async (t) => {
  const u = parseUri('sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31')!;
  t.equal(u.user, 'cal%6Cer', 'user stored as written');
  t.equal(unescapeUser(u.user!), 'caller');
  t.ok(u.params.has('lr'), 'escaped param name understood');
  t.equal(u.params.get('name'), 'v%61lue%25%34%31', 'values kept as written');
  const r = parseUri('sip:sips%3Auser%40example.com@example.net')!;
  t.equal(unescapeUser(r.user!), 'sips:user@example.com');
  t.equal(r.host, 'example.net');
});

t.test('unescapeUser: NULs, UTF-8 and invalid escapes', async (t) => {
  t.equal(unescapeUser('null-%00-null'), 'null-\u0000-null');
  t.not(unescapeUser('%00'), unescapeUser('%00%00'));
  t.equal(unescapeUser('%00%00').length, 2);
  t.equal(unescapeUser('J%C3%B8rgen'), 'Jørgen');
  t.equal(unescapeUser('%ZK%4'), '%ZK%4', 'invalid escapes kept');
  t.equal(unescapeUser('plain'), 'plain');
});

t.test('parseUri: tel and other schemes', async (t) => {
  const tel = parseUri('tel:+4512345678;phone-context=example.dk')!;
  t.equal(tel.scheme, 'tel');
  t.equal(tel.user, '+4512345678');
  t.equal(tel.host, '');
  t.equal(tel.params.get('phone-context'), 'example.dk');
  t.equal(parseUri('tel:112')!.user, '112');

  const unk = parseUri('nobodyKnowsThisScheme:totallyopaquecontent')!;
  t.equal(unk.scheme, 'nobodyknowsthisscheme');
  t.equal(unk.host, '');
  t.equal(unk.opaque, 'totallyopaquecontent');
  t.equal(parseUri('soap.beep://192.0.2.103:3002')!.scheme, 'soap.beep');
  t.equal(parseUri('soap.beep://192.0.2.103:3002')!.opaque, '//192.0.2.103:3002');
  t.equal(parseUri('isbn:2983792873')!.opaque, '2983792873');
  t.equal(parseUri('http://www.example.com')!.scheme, 'http');
  t.equal(formatUri(parseUri('urn:service:sos')!), 'urn:service:sos');
});

t.test('parseUri: malformed', async (t) => {
  t.equal(parseUri(''), null);
  t.equal(parseUri('no scheme here'), null);
  t.equal(parseUri('user@example.com'), null);
  t.equal(parseUri('1sip:x'), null, 'scheme must start with a letter');
  t.equal(parseUri('sip:'), null, 'empty host');
  t.equal(parseUri('sip:@example.com'), null, 'empty user');
  t.equal(parseUri('sip:a@example.com:99999'), null, 'port out of range');
  t.equal(parseUri('sip:a@example.com:'), null, 'empty port');
  t.equal(parseUri('sip:a@exa mple.com'), null, 'space in host');
  t.equal(parseUri('sip:a@example.com; lr'), null, 'LWS in params');
  t.equal(parseUri('tel:'), null);
});

t.test('formatUri round trips', async (t) => {
  for (const s of [
    'sip:example.com',
    'sip:alice@example.com:5060;transport=tcp;lr',
    'sips:alice:pw@[2001:db8::1]:5061;maddr=x?Route=%3Csip:a%3E&X=1',
    'tel:+4512345678;phone-context=example.dk',
    'sip:user;par=u%40example.net@example.com',
  ]) t.equal(formatUri(parseUri(s)!), s, s);
  t.equal(formatUri({ scheme: 'sip', host: '::1', port: 5060, params: new Map(), headers: new Map() }), 'sip:[::1]:5060');
});

t.test('parseNameAddr: quoted display with escapes and folded params (wsinv)', async (t) => {
  const n = parseNameAddr('"J Rosenberg \\\\\\""       <sip:jdrosen@example.com> ; tag = 98asjd8')!;
  t.equal(n.display, 'J Rosenberg \\"');
  t.equal(n.uri, 'sip:jdrosen@example.com');
  t.equal(n.params.get('tag'), '98asjd8');
  const c = parseNameAddr('"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =  newvalue ;   secondparam ; q = 0.33')!;
  t.equal(c.display, 'Quoted string ""');
  t.same([...c.params], [['newparam', 'newvalue'], ['secondparam', null], ['q', '0.33']]);
});

t.test('parseNameAddr: display forms', async (t) => {
  t.equal(parseNameAddr('caller<sip:caller@example.com>;tag=323')!.display, 'caller', 'no LWS before <');
  t.equal(parseNameAddr('A. Bell <sip:a.g.bell@example.com>')!.display, 'A. Bell');
  t.equal(parseNameAddr('Bell, Alexander <sip:a.g.bell@example.com>;tag=43')!.display, 'Bell, Alexander', 'baddn');
  const q = parseNameAddr('"Mr. J. User <sip:j.user@example.com>')!;
  t.equal(q.display, 'Mr. J. User', 'quotbal: closing quote inferred');
  t.equal(q.uri, 'sip:j.user@example.com');
  const sp = parseNameAddr('"Watson, Thomas" < sip:t.watson@example.org >')!;
  t.equal(sp.uri, 'sip:t.watson@example.org', 'badaspec: spaces inside <> ignored');
  t.equal(sp.display, 'Watson, Thomas');
  const nul = parseNameAddr('"BEL:\\\u0007 NUL:\\\u0000 DEL:\\\u007f" <sip:x@example.com>')!;
  t.equal(nul.display, 'BEL:\u0007 NUL:\u0000 DEL:\u007f');
  t.equal(parseNameAddr('<sip:a@b>')!.display, undefined);
});

t.test('parseNameAddr: bare addr-spec params belong to the header', async (t) => {
  const n = parseNameAddr('sip:+19725552222@gw1.example.net;unknownparam')!;
  t.equal(n.uri, 'sip:+19725552222@gw1.example.net');
  t.ok(n.params.has('unknownparam'));
  const b = parseNameAddr('<sip:+19725552222@gw1.example.net;unknownparam>')!;
  t.equal(b.uri, 'sip:+19725552222@gw1.example.net;unknownparam');
  t.equal(b.params.size, 0);
  const w = parseNameAddr('sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n')!;
  t.equal(w.uri, 'sip:vivekg@chair-dnrc.example.com');
  t.equal(w.params.get('tag'), '1918181833n');
  const r = parseNameAddr('sip:user@example.com?Route=%3Csip:sip.example.com%3E')!;
  t.equal(r.uri, 'sip:user@example.com?Route=%3Csip:sip.example.com%3E', 'regbadct: <> inferred');
  t.equal(parseNameAddr('isbn:2983792873')!.uri, 'isbn:2983792873');
  t.equal(parseNameAddr('<name:John_Smith>')!.uri, 'name:John_Smith');
});

t.test('parseNameAddr: quoted param values and odd token chars (intmeth)', async (t) => {
  const v = "token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"работающий\";tag=_token~1'+`*%!-.";
  const n = parseNameAddr(v)!;
  t.equal(n.display, "token1~` token2'+_ token3*%!.-");
  t.equal(n.params.get("fromparam''~+*_!.-%"), '"работающий"');
  t.equal(n.params.get('tag'), "_token~1'+`*%!-.");
  t.equal(tagOf(v), "_token~1'+`*%!-.");
});

t.test('parseNameAddr: invalid', async (t) => {
  t.equal(parseNameAddr(''), null);
  t.equal(parseNameAddr('   '), null);
  t.equal(parseNameAddr('*'), null);
  t.equal(parseNameAddr('"Joe" <sip:joe@example.org>;;;;'), null, 'empty params (badinv01)');
  t.equal(parseNameAddr('<sip:a@b>;'), null);
  t.equal(parseNameAddr('<sip:a@b'), null, 'unterminated <');
  t.equal(parseNameAddr('<sip:a@b> junk'), null);
  t.equal(parseNameAddr('"x" sip:a@b'), null, 'quoted display needs <>');
  t.equal(parseNameAddr('<no-scheme>'), null);
  t.equal(parseNameAddr('<sip:a@b>;p="unterminated'), null);
});

t.test('formatNameAddr', async (t) => {
  t.equal(formatNameAddr({ uri: 'sip:a@b', params: new Map([['tag', '1']]) }), '<sip:a@b>;tag=1');
  const s = formatNameAddr({ display: 'He said "hi" \\o/', uri: 'sip:a@b', params: new Map([['lr', null]]) });
  t.equal(s, '"He said \\"hi\\" \\\\o/" <sip:a@b>;lr');
  t.equal(parseNameAddr(s)!.display, 'He said "hi" \\o/');
});

t.test('getParam / tagOf', async (t) => {
  t.equal(tagOf('<sip:a@b;tag=wrong>;tag=right'), 'right', 'URI params are not header params');
  t.equal(tagOf('"a;tag=x" <sip:a@b>'), undefined, 'quoted ; ignored');
  t.equal(tagOf('sip:a@b;TAG=abc'), 'abc');
  t.equal(tagOf('sip:a@b;tag='), undefined);
  t.equal(tagOf('sip:a@b;tag'), undefined);
  t.equal(tagOf(undefined), undefined);
  t.equal(tagOf('"Mr. J. User <sip:j.user@example.com>;tag=x'), 'x', 'unterminated quote tolerated');
  t.equal(tagOf('garbage;;;'), undefined, 'never throws');
  t.equal(getParam('<sip:a@b>;expires=60;q=0.5', 'Q'), '0.5');
  t.equal(getParam('<sip:a@b>;lr', 'lr'), null);
  t.equal(getParam('<sip:a@b>;lr', 'x'), undefined);
  t.equal(getParam('SIP/2.0/UDP h;branch=z9hG4bKx;rport', 'branch'), 'z9hG4bKx');
});

t.test('getParam on hostile values is linear', async (t) => {
  const t0 = Date.now();
  t.equal(tagOf('"' + '\\"'.repeat(30000)), undefined);
  t.equal(tagOf('"'.repeat(60001) + ';tag=x'), undefined);
  t.equal(parseNameAddr('"' + '\\"'.repeat(30000)), null);
  t.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`);
});

t.test('parseVia: plain and with LWS everywhere (wsinv)', async (t) => {
  const v = parseVia('SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;received=10.0.0.1;rport=5070;maddr=224.0.0.1')!;
  t.equal(v.protocol, 'SIP/2.0');
  t.equal(v.transport, 'UDP');
  t.equal(v.host, '192.0.2.1');
  t.equal(v.port, 5060);
  t.equal(v.branch, 'z9hG4bKabc');
  t.equal(v.received, '10.0.0.1');
  t.equal(v.rport, 5070);
  t.equal(v.params.get('maddr'), '224.0.0.1');
  const w = parseVia('SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw')!;
  t.equal(w.protocol, 'SIP/2.0');
  t.equal(w.host, '192.0.2.2');
  t.equal(w.branch, '390skdjuw');
  const x = parseVia('SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8')!;
  t.equal(x.transport, 'TCP');
  t.equal(x.host, 'spindle.example.com');
  t.equal(x.branch, 'z9hG4bK9ikj8');
  const y = parseVia('SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239')!;
  t.equal(y.branch, 'z9hG4bK30239');
  t.equal(parseVia('sip/2.0/tcp h.example.com : 5061')!.port, 5061);
  t.equal(parseVia('SIP/2.0/tls h.example.com')!.transport, 'TLS');
});

t.test('parseVia: rport, IPv6, unknown transport, bare branch', async (t) => {
  t.equal(parseVia('SIP/2.0/UDP h;rport')!.rport, true);
  t.equal(parseVia('SIP/2.0/UDP h;rport=')!.rport, true);
  t.equal(parseVia('SIP/2.0/UDP h')!.rport, undefined);
  const v6 = parseVia('SIP/2.0/TCP [2001:db8::9]:5080;branch=z9hG4bK1;received=2001:db8::8')!;
  t.equal(v6.host, '[2001:db8::9]');
  t.equal(v6.port, 5080);
  t.equal(v6.received, '2001:db8::8');
  t.equal(parseVia('SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en')!.transport, 'UNKNOWN');
  t.equal(parseVia('SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK')!.branch, 'z9hG4bK');
  t.equal(parseVia('SIP/7.0/UDP c.example.com')!.protocol, 'SIP/7.0');
  t.equal(parseVia('SIP/2.0/UDP iftgw.example.com')!.branch, undefined);
});

t.test('parseVia: invalid', async (t) => {
  for (const bad of [
    '', ';', 'SIP/2.0/UDP', 'SIP/2.0/UDP ', 'SIP/2.0 host', 'SIP/2.0/UDPhost', 'SIP/2.0/UDP 192.0.2.15;;',
    'SIP/2.0/UDP h:70000', 'SIP/2.0/UDP h:', 'SIP/2.0/UDP h;rport=abc', 'SIP/2.0/UDP [::1', 'SIP/2.0/UDP h junk',
  ]) t.equal(parseVia(bad), null, JSON.stringify(bad));
});

t.test('formatVia', async (t) => {
  const s = 'SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport;x=1';
  t.equal(formatVia(parseVia(s)!), s);
  const v = parseVia(s)!;
  v.received = '198.51.100.7';
  v.rport = 40000;
  t.equal(formatVia(v), 'SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport=40000;x=1;received=198.51.100.7');
  t.equal(formatVia({ protocol: 'SIP/2.0', transport: 'TCP', host: '::1', params: new Map(), branch: 'z9hG4bKq' }), 'SIP/2.0/TCP [::1];branch=z9hG4bKq');
});

t.test('parseCSeq', async (t) => {
  t.same(parseCSeq('1 INVITE'), { seq: 1, method: 'INVITE' });
  t.same(parseCSeq('0009 INVITE'), { seq: 9, method: 'INVITE' }, 'leading zeros, folded');
  t.same(parseCSeq('  4294967295\tACK  '), { seq: 4294967295, method: 'ACK' });
  t.same(parseCSeq("139122385 !interesting-Method0123456789_*+`.%indeed'~")?.method, "!interesting-Method0123456789_*+`.%indeed'~");
  for (const bad of ['4294967296 INVITE', '36893488147419103232 REGISTER', 'INVITE', '1', '1INVITE', '-1 INVITE', '1 IN VITE', '1 INVITE, 2 INVITE', '']) {
    t.equal(parseCSeq(bad), null, bad);
  }
  t.equal(parseCSeq(undefined), null);
});

t.test('parseMaxForwards / parseContentLength / parseRetryAfter', async (t) => {
  t.equal(parseMaxForwards('70'), 70);
  t.equal(parseMaxForwards('0068'), 68);
  t.equal(parseMaxForwards('0'), 0);
  t.equal(parseMaxForwards('255'), 255);
  t.equal(parseMaxForwards('256'), null);
  t.equal(parseMaxForwards('300'), null);
  t.equal(parseMaxForwards('-1'), null);
  t.equal(parseMaxForwards('7 0'), null);
  t.equal(parseMaxForwards(''), null);
  t.equal(parseContentLength(' 150 '), 150);
  t.equal(parseContentLength('0'), 0);
  t.equal(parseContentLength('-999'), null);
  t.equal(parseContentLength('12abc'), null);
  t.equal(parseContentLength('99999999999999999999999'), null);
  t.equal(parseRetryAfter('120'), 120);
  t.equal(parseRetryAfter('18000;duration=3600'), 18000);
  t.equal(parseRetryAfter('120 (I am in a meeting)'), 120);
  t.equal(parseRetryAfter('949302838503028349304023988'), null);
  t.equal(parseRetryAfter('soon'), null);
  t.equal(parseRetryAfter('12x'), null);
});

t.test('parseRAck / parseSessionExpires', async (t) => {
  t.same(parseRAck('776656 1 INVITE'), { rseq: 776656, cseq: 1, method: 'INVITE' });
  t.equal(parseRAck('0 1 INVITE'), null, 'RSeq starts at 1');
  t.equal(parseRAck('1 INVITE'), null);
  t.equal(parseRAck('1 2'), null);
  t.same(parseSessionExpires('1800;refresher=uac'), { seconds: 1800, refresher: 'uac' });
  t.same(parseSessionExpires('90 ; Refresher = UAS'), { seconds: 90, refresher: 'uas' });
  t.same(parseSessionExpires('4000'), { seconds: 4000 });
  t.same(parseSessionExpires('4000;refresher=proxy'), { seconds: 4000 });
  t.equal(parseSessionExpires('x'), null);
  t.equal(parseSessionExpires('90;;'), null);
});

t.test('parseAuthChallenge', async (t) => {
  const c = parseAuthChallenge('Digest realm="atlanta.com", domain="sip:boxesbybob.com",\tqop="auth,auth-int", nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5')!;
  t.equal(c.scheme, 'Digest');
  t.equal(c.params.get('realm'), 'atlanta.com');
  t.equal(c.params.get('qop'), 'auth,auth-int');
  t.equal(c.params.get('opaque'), '');
  t.equal(c.params.get('stale'), 'FALSE');
  t.equal(c.params.get('algorithm'), 'MD5');
  t.equal(parseAuthChallenge('Digest REALM = "a \\"q\\" b"')!.params.get('realm'), 'a "q" b');
  t.equal(parseAuthChallenge('NoOneKnowsThisScheme opaque-data=here')!.params.get('opaque-data'), 'here');
  t.equal(parseAuthChallenge('Basic')!.params.size, 0);
  t.equal(parseAuthChallenge(''), null);
  t.equal(parseAuthChallenge('Digest realm="open'), null);
  t.equal(parseAuthChallenge('Digest realm="a" nonce="b"'), null, 'missing comma');
});

t.test('optionTags', async (t) => {
  const h = new Headers([['Require', '100rel, Timer'], ['Supported', 'replaces'], ['k', 'norefersub,,TIMER']]);
  t.same(optionTags(h, 'require'), ['100rel', 'timer']);
  t.same(optionTags(h, 'Supported'), ['replaces', 'norefersub', 'timer']);
  t.same(optionTags(h, 'proxy-require'), []);
});

t.test('identifiers', async (t) => {
  const seen = new Set<string>();
  const misshapen: string[] = [];
  for (let i = 0; i < 5000; i++) {
    const b = newBranch();
    if (!b.startsWith('z9hG4bK') || b.length < 7 + 16 || !isToken(b)) misshapen.push(b);
    seen.add(b);
  }
  t.same(misshapen, [], 'z9hG4bK + 16 token chars');
  t.equal(seen.size, 5000, 'no collisions (crosses several random pool refills)');
  const tag = newTag();
  t.ok(isToken(tag) && tag.length >= 8);
  t.not(newTag(), newTag());
  t.match(newCallId('192.0.2.1'), /^[A-Za-z0-9_-]{20}@192\.0\.2\.1$/);
  t.match(newCallId(), /^[A-Za-z0-9_-]{20}$/);
});

t.test('isToken / unquote', async (t) => {
  t.ok(isToken("!interesting-Method0123456789_*+`.%indeed'~"));
  t.notOk(isToken('a b'));
  t.notOk(isToken(''));
  t.notOk(isToken('ø'));
  t.equal(unquote('"a\\"b"'), 'a"b');
  t.equal(unquote('plain'), 'plain');
});
