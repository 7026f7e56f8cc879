import t, { type Test } from 'tap';
import { parseMessage, StreamFramer, type ParseResult } from '../../src/sip/parser.js';
import { serialize } from '../../src/sip/serializer.js';
import { validateRequest, validateResponse, errorResponseHeaders } from '../../src/sip/validate.js';
import { Headers, request, response, type SipMessage, type SipRequest, type SipResponse } from '../../src/sip/message.js';
import { parseVia } from '../../src/sip/grammar.js';

const crlf = (lines: string[]): string => lines.join('\r\n');

const INVITE_HEAD = [
  'INVITE sip:112@amk.example.dk SIP/2.0',
  'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds',
  'Max-Forwards: 70',
  'To: <sip:112@amk.example.dk>',
  'From: "Caller" <sip:caller@example.net>;tag=1928301774',
  'Call-ID: a84b4c76e66710@pc33.example.net',
  'CSeq: 314159 INVITE',
  'Contact: <sip:caller@192.0.2.1>',
];

function msg(head: string[], body = '', extra: string[] = []): Buffer {
  const b = Buffer.from(body, 'utf8');
  return Buffer.concat([Buffer.from(crlf([...head, ...extra, `Content-Length: ${b.length}`, '', '']), 'utf8'), b]);
}

function ok(t: Test, r: ParseResult): SipMessage {
  if (!r.ok) {
    t.fail(`parse failed: ${r.reason}`);
    throw new Error(r.reason);
  }
  return r.msg;
}

function req(t: Test, r: ParseResult): SipRequest {
  const m = ok(t, r);
  if (m.kind !== 'request') throw new Error('not a request');
  return m;
}

const OPTS = { supported: ['100rel', 'timer', 'replaces', 'norefersub'], allowedMethods: ['INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS'] };

t.test('simple request', async (t) => {
  const m = req(t, parseMessage(msg(INVITE_HEAD, 'v=0\r\n')));
  t.equal(m.method, 'INVITE');
  t.equal(m.uri, 'sip:112@amk.example.dk');
  t.equal(m.version, 'SIP/2.0');
  t.equal(m.headers.get('call-id'), 'a84b4c76e66710@pc33.example.net');
  t.equal(m.headers.fields[0]!.name, 'Via', 'name kept as written');
  t.equal(m.body.toString(), 'v=0\r\n');
  t.equal(validateRequest(m, OPTS), null);
});

t.test('response with empty and UTF-8 reason phrases', async (t) => {
  const r = ok(t, parseMessage(Buffer.from('SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n')));
  t.equal(r.kind, 'response');
  t.equal((r as SipResponse).status, 180);
  t.equal((r as SipResponse).reason, 'Ringing');
  const e = ok(t, parseMessage(Buffer.from('SIP/2.0 100 \r\nContent-Length: 0\r\n\r\n'))) as SipResponse;
  t.equal(e.reason, '');
  const n = ok(t, parseMessage(Buffer.from('SIP/2.0 100\r\nContent-Length: 0\r\n\r\n'))) as SipResponse;
  t.equal(n.reason, '', 'no SP after the code tolerated');
  const u = ok(t, parseMessage(Buffer.from('SIP/2.0 486 Optaget – prøv igen\r\nl: 0\r\n\r\n'))) as SipResponse;
  t.equal(u.reason, 'Optaget – prøv igen');
});

t.test('bad status codes are dropped, never answered', async (t) => {
  for (const line of ['SIP/2.0 4294967301 better not break', 'SIP/2.0 20 OK', 'SIP/2.0 2000 OK', 'SIP/2.0 099 x', 'SIP/2.0 700 x', 'SIP/2.0 2x0 x', 'SIP/2.0', 'SIP/x 200 OK']) {
    const r = parseMessage(Buffer.from(`${line}\r\nContent-Length: 0\r\n\r\n`));
    t.equal(r.ok, false, line);
    if (!r.ok) {
      t.equal(r.status, undefined, `${line}: no status`);
      t.equal(r.request, undefined);
    }
  }
});

t.test('garbage is dropped', async (t) => {
  for (const g of ['', '\r\n\r\n', 'hello', 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 'INVITE sip:x\r\n\r\n', 'IN<VITE sip:x SIP/2.0\r\n\r\n', '\u0000\u0001\u0002']) {
    const r = parseMessage(Buffer.from(g));
    t.equal(r.ok, false, JSON.stringify(g));
    if (!r.ok) t.equal(r.status, undefined, JSON.stringify(g));
  }
});

t.test('start line liberalities', async (t) => {
  const base = INVITE_HEAD.slice(1);
  const lws = req(t, parseMessage(msg(['INVITE  sip:112@amk.example.dk  SIP/2.0', ...base])));
  t.equal(lws.uri, 'sip:112@amk.example.dk', 'multiple SP');
  const trail = req(t, parseMessage(msg(['INVITE sip:112@amk.example.dk SIP/2.0  ', ...base])));
  t.equal(trail.version, 'SIP/2.0', 'trailing SP');
  const ltgt = req(t, parseMessage(msg(['INVITE <sip:112@amk.example.dk> SIP/2.0', ...base])));
  t.equal(ltgt.uri, 'sip:112@amk.example.dk', '<> stripped, never forwarded');
  const lead = req(t, parseMessage(Buffer.concat([Buffer.from('\r\n\r\n'), msg(INVITE_HEAD)])));
  t.equal(lead.method, 'INVITE', 'leading CRLFs skipped');
  const lower = req(t, parseMessage(msg(['INVITE sip:112@amk.example.dk sip/2.0', ...base])));
  t.equal(lower.version, 'sip/2.0');
});

t.test('start line errors answered with a status', async (t) => {
  const base = INVITE_HEAD.slice(1);
  const r1 = parseMessage(msg(['INVITE sip:user@example.com; lr SIP/2.0', ...base]));
  t.equal(r1.ok, false);
  if (!r1.ok) {
    t.equal(r1.status, 400, 'LWS inside the Request-URI');
    t.equal(r1.request?.method, 'INVITE');
    t.equal(r1.request?.headers.get('call-id'), 'a84b4c76e66710@pc33.example.net', 'headers still parsed');
  }
  const r2 = parseMessage(msg(['OPTIONS sip:t.watson@example.org SIP/7.0', ...base]));
  t.equal(!r2.ok && r2.status, 505);
  t.equal(!r2.ok && r2.request?.headers.getRaw('via').length, 1);
  const r3 = parseMessage(msg(['OPTIONS sip:x SIP/2', ...base]));
  t.equal(!r3.ok && r3.status, 505);
});

t.test('headers: folding, whitespace, compact forms, empty values', async (t) => {
  const raw = crlf([
    'INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0',
    'TO :',
    ' sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n',
    'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>',
    '  ;',
    '  tag = 98asjd8',
    'MaX-fOrWaRdS: 0068',
    'i: wsinv.ndaksdj@192.0.2.1',
    'Content-Length   : 4',
    'cseq: 0009',
    '  INVITE',
    'v  : SIP  /   2.0',
    ' /UDP',
    '    192.0.2.2;branch=390skdjuw',
    's :',
    'NewFangledHeader:   newfangled value',
    ' continued newfangled value',
    'X-Tab:\tvalue\t',
    'm:"Q" <sip:a@b>',
    'Empty:',
    '',
    'body',
  ]);
  const m = req(t, parseMessage(Buffer.from(raw)));
  const h = m.headers;
  t.equal(h.get('to'), 'sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n');
  t.equal(h.get('from'), '"J Rosenberg \\\\\\""       <sip:jdrosen@example.com> ; tag = 98asjd8', 'fold joined with one SP, inner LWS kept');
  t.equal(h.get('max-forwards'), '0068');
  t.equal(h.get('call-id'), 'wsinv.ndaksdj@192.0.2.1');
  t.equal(h.fields.find((f) => f.key === 'call-id')!.name, 'i', 'compact name kept');
  t.equal(h.get('cseq'), '0009 INVITE');
  t.equal(h.get('via'), 'SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw');
  t.equal(parseVia(h.get('via')!)!.branch, '390skdjuw');
  t.equal(h.get('subject'), '');
  t.equal(h.get('newfangledheader'), 'newfangled value continued newfangled value');
  t.equal(h.get('x-tab'), 'value');
  t.equal(h.get('contact'), '"Q" <sip:a@b>');
  t.equal(h.get('empty'), '');
  t.equal(m.body.toString(), 'body');
  t.equal(validateRequest(m, OPTS), null);
});

t.test('header errors give 400 with what was parsed', async (t) => {
  const r = parseMessage(msg(INVITE_HEAD, '', ['This line has no colon']));
  t.equal(r.ok, false);
  if (!r.ok) {
    t.equal(r.status, 400);
    t.match(r.reason, /colon/);
    t.equal(r.request?.headers.get('cseq'), '314159 INVITE');
    t.equal(r.request?.headers.has('content-length'), true, 'headers after the bad line kept');
  }
  const bn = parseMessage(msg(INVITE_HEAD, '', ['Bad Name: x']));
  t.equal(!bn.ok && bn.status, 400, 'space inside a header name');
  const fold = parseMessage(Buffer.from('OPTIONS sip:x SIP/2.0\r\n folded\r\nContent-Length: 0\r\n\r\n'));
  t.equal(!fold.ok && fold.status, 400, 'continuation line without a header');
  const resp = parseMessage(Buffer.from('SIP/2.0 200 OK\r\nno colon\r\nContent-Length: 0\r\n\r\n'));
  t.equal(resp.ok, false);
  t.equal(!resp.ok && resp.status, undefined, 'responses are never answered');
});

t.test('body: binary bytes, Content-Length in bytes', async (t) => {
  const body = Buffer.from([0x00, 0x0a, 0x0d, 0x0a, 0xff, 0x00, 0x0d, 0x0a, 0x0d, 0x0a, 0x41]);
  const head = Buffer.from(crlf([...INVITE_HEAD, 'Content-Type: application/octet-stream', `Content-Length: ${body.length}`, '', '']));
  const m = ok(t, parseMessage(Buffer.concat([head, body])));
  t.same(m.body, body, 'NUL, bare LF and CRLFCRLF inside the body kept');

  // Multibyte characters in the header section do not shift the body offset.
  const utf = Buffer.concat([
    Buffer.from(crlf([...INVITE_HEAD, 'Subject: Ulykke på Østerbro – 112 ☎', 'Content-Type: text/plain;charset=utf-8', 'Content-Length: 7', '', ''])),
    Buffer.from('blå€'), // 4 characters, 1 + 1 + 2 + 3 = 7 bytes
  ]);
  const u = ok(t, parseMessage(utf));
  t.equal(u.headers.get('subject'), 'Ulykke på Østerbro – 112 ☎');
  t.equal(u.body.length, 7);
  t.equal(u.body.toString('utf8'), 'blå€', 'Content-Length counted in bytes');
});

t.test('invalid UTF-8 in headers falls back to latin1', async (t) => {
  const head = Buffer.concat([
    Buffer.from('OPTIONS sip:x@example.com SIP/2.0\r\nSubject: caf'),
    Buffer.from([0xe9]),
    Buffer.from('\r\nContent-Length: 0\r\n\r\n'),
  ]);
  const m = ok(t, parseMessage(head));
  t.equal(m.headers.get('subject'), 'café');
});

t.test('datagram Content-Length rules', async (t) => {
  const noCl = Buffer.from(crlf([...INVITE_HEAD, '', 'v=0', '']));
  const d = ok(t, parseMessage(noCl, { datagram: true }));
  t.equal(d.body.toString(), 'v=0\r\n', 'no Content-Length on UDP: rest of datagram');
  const s = parseMessage(noCl);
  t.equal(!s.ok && s.status, 400, 'no Content-Length on a stream: 400');

  const extra = Buffer.concat([msg(INVITE_HEAD, 'abc'), Buffer.from('\r\nINVITE sip:joe@example.com SIP/2.0\r\n\r\n')]);
  const x = ok(t, parseMessage(extra, { datagram: true }));
  t.equal(x.body.toString(), 'abc', 'extra octets ignored');

  const cases: [string[], string][] = [
    [['Content-Length: 9999'], 'larger than the message'],
    [['Content-Length: -999'], 'negative'],
    [['Content-Length: 12abc'], 'non-numeric'],
    [['Content-Length: 0x10'], 'hex'],
    [['Content-Length: 13', 'Content-Length: 5'], 'conflicting'],
  ];
  for (const [cl, what] of cases) {
    const r = parseMessage(Buffer.from(crlf([...INVITE_HEAD, ...cl, '', 'There is no way to know how many octets'])), { datagram: true });
    t.equal(!r.ok && r.status, 400, what);
    t.ok(!r.ok && r.request?.headers.has('via'), `${what}: headers for the 400`);
  }
  const same = parseMessage(Buffer.from(crlf([...INVITE_HEAD, 'Content-Length: 3', 'l: 003', '', 'abc'])), { datagram: true });
  t.equal(same.ok, true, 'repeated identical Content-Length parses (validate rejects it)');
  if (same.ok) t.equal(validateRequest(same.msg as SipRequest, OPTS)?.status, 400);

  const resp = parseMessage(Buffer.from('SIP/2.0 200 OK\r\nContent-Length: 99\r\n\r\nshort'), { datagram: true });
  t.equal(!resp.ok && resp.status, undefined, 'bad response framing: drop');
});

t.test('missing empty line after headers', async (t) => {
  const r = parseMessage(Buffer.from(crlf(INVITE_HEAD) + '\r\n'), { datagram: true });
  t.equal(!r.ok && r.status, 400);
});

t.test('413 when too large', async (t) => {
  const big = 'x'.repeat(2000);
  const r = parseMessage(msg(INVITE_HEAD, big), { datagram: true, maxBytes: 1500 });
  t.equal(!r.ok && r.status, 413);
  t.equal(parseMessage(msg(INVITE_HEAD, big), { datagram: true }).ok, true, 'default limit 65535');
});

t.test('body is a zero-copy slice', async (t) => {
  const buf = msg(INVITE_HEAD, 'hello');
  const m = ok(t, parseMessage(buf));
  t.equal(m.body.buffer, buf.buffer);
  const empty = ok(t, parseMessage(msg(INVITE_HEAD)));
  t.equal(empty.body.length, 0);
});

// ----------------------------------------------------------------------------------------------
// StreamFramer

function framer(maxBytes?: number) {
  const out: string[] = [];
  const errors: string[] = [];
  let pings = 0;
  const f = new StreamFramer((b) => out.push(b.toString('latin1')), (e) => errors.push(e), maxBytes);
  f.onKeepAlive = () => pings++;
  return { f, out, errors, pings: () => pings };
}

const M1 = msg(INVITE_HEAD, 'v=0\r\n\r\n\r\nx').toString('latin1');
const M2 = crlf(['OPTIONS sip:a@b SIP/2.0', 'Via: SIP/2.0/TCP h;branch=z9hG4bK2', 'l: 0', '', '']);
const M3 = crlf(['SIP/2.0 200 OK', 'Via: SIP/2.0/TCP h;branch=z9hG4bK2', 'content-length  :', '  2', '', 'ok']);

t.test('framer: several messages in one chunk', async (t) => {
  const { f, out, errors } = framer();
  f.push(Buffer.from(M1 + M2 + M3, 'latin1'));
  t.same(out, [M1, M2, M3]);
  t.same(errors, []);
});

t.test('framer: byte by byte', async (t) => {
  const { f, out, errors, pings } = framer();
  const all = Buffer.from('\r\n\r\n' + M1 + '\r\n' + M2 + '\r\n\r\n' + M3, 'latin1');
  for (let i = 0; i < all.length; i++) f.push(all.subarray(i, i + 1));
  t.same(out, [M1, M2, M3]);
  t.same(errors, []);
  t.equal(pings(), 2, 'CRLFCRLF pings seen, lone CRLF pong ignored');
});

t.test('framer: random chunking gives the same messages', async (t) => {
  const all = Buffer.from(M1 + M2 + M3 + M1, 'latin1');
  let seed = 7;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let round = 0; round < 50; round++) {
    const { f, out, errors } = framer();
    let i = 0;
    while (i < all.length) {
      const n = 1 + Math.floor(rnd() * 200);
      f.push(all.subarray(i, i + n));
      i += n;
    }
    if (out.length !== 4 || out[3] !== M1 || errors.length) {
      t.fail(`round ${round}`);
      return;
    }
  }
  t.pass('50 random chunkings');
});

t.test('framer: emitted messages parse, bodies exact', async (t) => {
  const bufs: Buffer[] = [];
  const f = new StreamFramer((b) => bufs.push(b), () => t.fail('error'));
  f.push(Buffer.from(M1 + M3, 'latin1'));
  t.equal(bufs.length, 2);
  t.equal(ok(t, parseMessage(bufs[0]!)).body.toString('latin1'), 'v=0\r\n\r\n\r\nx');
  t.equal(ok(t, parseMessage(bufs[1]!)).body.toString(), 'ok');
});

t.test('framer: emitted buffers are not overwritten by later data', async (t) => {
  const kept: Buffer[] = [];
  const f = new StreamFramer((b) => kept.push(b), () => t.fail('error'));
  const all = Buffer.from(M2 + M1 + M3, 'latin1');
  for (let round = 0; round < 20; round++) for (let i = 0; i < all.length; i += 300) f.push(all.subarray(i, i + 300));
  t.equal(kept.length, 60);
  t.ok(kept.every((b, i) => b.toString('latin1') === [M2, M1, M3][i % 3]));
});

t.test('pathological input stays linear', async (t) => {
  const t0 = Date.now();
  const lines = 'x\r\n'.repeat(30000);
  const r = parseMessage(Buffer.from(`OPTIONS sip:a@b SIP/2.0\r\n${lines}Via: SIP/2.0/UDP h\r\nl: 0\r\n\r\n`));
  t.equal(!r.ok && r.status, 400);
  const { f, errors } = framer(200000);
  const big = Buffer.from(`OPTIONS sip:a@b SIP/2.0\r\n${lines}l: 0\r\n\r\n`);
  for (let i = 0; i < big.length; i++) f.push(big.subarray(i, i + 1));
  t.same(errors, []);
  t.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
});

t.test('framer: keep-alive only', async (t) => {
  const { f, out, pings } = framer();
  f.push(Buffer.from('\r\n'));
  f.push(Buffer.from('\r\n'));
  t.equal(pings(), 1);
  f.push(Buffer.from('\r\n\r\n\r\n\r\n'));
  t.equal(pings(), 3);
  t.same(out, []);
});

t.test('framer: errors stop processing', async (t) => {
  const bad: [string, string][] = [
    [crlf(['OPTIONS sip:a@b SIP/2.0', 'Via: SIP/2.0/TCP h', '', '']), 'missing'],
    [crlf(['OPTIONS sip:a@b SIP/2.0', 'Content-Length: -999', '', '']), 'invalid'],
    [crlf(['OPTIONS sip:a@b SIP/2.0', 'Content-Length: abc', '', '']), 'invalid'],
    [crlf(['OPTIONS sip:a@b SIP/2.0', 'Content-Length: 13', 'Content-Length: 5', '', '']), 'invalid'],
    [crlf(['OPTIONS sip:a@b SIP/2.0', 'l: 1 2', '', '']), 'invalid'],
  ];
  for (const [text, what] of bad) {
    const { f, out, errors } = framer();
    f.push(Buffer.from(text + M2));
    t.equal(errors.length, 1, text);
    t.match(errors[0], what);
    f.push(Buffer.from(M2));
    t.same(out, [], 'nothing after the error');
    t.equal(errors.length, 1);
  }
});

t.test('framer: size limits', async (t) => {
  const hdr = framer(1000);
  hdr.f.push(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nX: ' + 'a'.repeat(1200)));
  t.match(hdr.errors, [/too large/], 'endless header section');
  const body = framer(1000);
  body.f.push(Buffer.from(crlf(['OPTIONS sip:a@b SIP/2.0', 'Content-Length: 5000', '', ''])));
  t.match(body.errors, [/too large/], 'announced body too large');
  const wait = framer();
  wait.f.push(Buffer.from(crlf(['INVITE sip:a@b SIP/2.0', 'Content-Length: 9999', '', 'v=0'])));
  t.same(wait.errors, [], 'clerr over TCP: waits for more data');
  t.same(wait.out, []);
});

// ----------------------------------------------------------------------------------------------
// Serializer

t.test('serialize: round trip', async (t) => {
  const original = msg(INVITE_HEAD, 'v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n');
  const m = ok(t, parseMessage(original));
  t.equal(serialize(m).toString(), original.toString());
  const again = ok(t, parseMessage(serialize(m)));
  t.same(again.headers.fields, m.headers.fields);
  t.same(again.body, m.body);
});

t.test('serialize: Content-Length recomputed in bytes', async (t) => {
  const h = new Headers([['Via', 'SIP/2.0/UDP h;branch=z9hG4bK1'], ['Content-Length', '999'], ['Subject', 'Ø'], ['l', '5']]);
  const body = Buffer.from('blåbærgrød ☎', 'utf8');
  const out = serialize(request('MESSAGE', 'sip:a@b', h, body));
  const text = out.toString('utf8');
  t.match(text, /^MESSAGE sip:a@b SIP\/2\.0\r\nVia: SIP\/2.0\/UDP h;branch=z9hG4bK1\r\nContent-Length: 17\r\nSubject: Ø\r\n\r\nblåbærgrød ☎$/);
  t.equal(body.length, 17);
  const back = ok(t, parseMessage(out));
  t.same(back.body, body);
  t.equal(back.headers.count('content-length'), 1, 'duplicates dropped');

  const added = serialize(response(200, 'OK', new Headers([['CSeq', '1 OPTIONS']]))).toString();
  t.equal(added, 'SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n');
  const compact = serialize(request('OPTIONS', 'sip:a@b', new Headers([['l', '7']]))).toString();
  t.equal(compact, 'OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n', 'compact name kept');
});

t.test('serialize: binary body', async (t) => {
  const body = Buffer.from([0, 1, 2, 0x0a, 0xff]);
  const out = serialize(request('INFO', 'sip:a@b', new Headers(), body));
  t.same(out.subarray(out.length - 5), body);
});

// ----------------------------------------------------------------------------------------------
// Validation

function parsedReq(head: string[], extra: string[] = []): SipRequest {
  const r = parseMessage(msg(head, '', extra));
  if (!r.ok || r.msg.kind !== 'request') throw new Error('setup');
  return r.msg;
}

t.test('validateRequest: header presence and uniqueness', async (t) => {
  const without = (name: string): string[] => INVITE_HEAD.filter((l) => !l.toLowerCase().startsWith(name));
  t.match(validateRequest(parsedReq(without('call-id')), OPTS), { status: 400, reason: /Call-ID/ });
  t.match(validateRequest(parsedReq(without('from')), OPTS), { status: 400, reason: /From/ });
  t.match(validateRequest(parsedReq(without('to')), OPTS), { status: 400, reason: /To/ });
  t.match(validateRequest(parsedReq(without('cseq')), OPTS), { status: 400, reason: /CSeq/ });
  t.match(validateRequest(parsedReq(without('via')), OPTS), { status: 400, reason: /Via/ });
  t.equal(validateRequest(parsedReq(without('max-forwards')), OPTS), null, 'RFC 2543 peers omit Max-Forwards');
  t.match(validateRequest(parsedReq(INVITE_HEAD, ['To: <sip:other@example.net>']), OPTS), { status: 400, reason: /To/ });
  t.match(validateRequest(parsedReq(INVITE_HEAD, ['i: second']), OPTS), { status: 400, reason: /Call-ID/ });
  t.match(validateRequest(parsedReq(INVITE_HEAD, ['Max-Forwards: 5']), OPTS), { status: 400, reason: /Max-Forwards/ });
  t.match(validateRequest(parsedReq(INVITE_HEAD, ['c: a/b', 'Content-Type: c/d']), OPTS), { status: 400, reason: /Content-Type/ });
});

t.test('validateRequest: malformed values', async (t) => {
  const swap = (name: string, line: string): string[] => INVITE_HEAD.map((l) => (l.toLowerCase().startsWith(name) ? line : l));
  t.match(validateRequest(parsedReq(swap('via', 'Via: SIP/2.0/UDP 192.0.2.15;;,;,,')), OPTS), { status: 400, reason: /Via/ });
  t.match(validateRequest(parsedReq(swap('via', 'Via: SIP/2.0/UDP a,,SIP/2.0/UDP b')), OPTS), { status: 400, reason: /Via/ });
  t.match(validateRequest(parsedReq(swap('contact', 'Contact: "Joe" <sip:joe@example.org>;;;;')), OPTS), { status: 400, reason: /Contact/ });
  t.equal(validateRequest(parsedReq(swap('contact', 'Contact: <sip:a@b>;expires=60, "B" <sip:b@c>')), OPTS), null);
  t.match(validateRequest(parsedReq(swap('cseq', 'CSeq: 4294967296 INVITE')), OPTS), { status: 400, reason: /CSeq/ });
  t.match(validateRequest(parsedReq(swap('cseq', 'CSeq: 1 OPTIONS')), OPTS), { status: 400, reason: 'CSeq method does not match' });
  t.match(validateRequest(parsedReq(swap('max-forwards', 'Max-Forwards: 300')), OPTS), { status: 400, reason: /Max-Forwards/ });
  t.equal(validateRequest(parsedReq(swap('max-forwards', 'Max-Forwards: 0')), OPTS), null, 'endpoint processes MF 0');
  t.match(validateRequest(parsedReq(swap('from', 'From: nobody')), OPTS), { status: 400, reason: /From/ });
  t.match(validateRequest(parsedReq(swap('to', 'To: <sip:a@b')), OPTS), { status: 400, reason: /To/ });
});

t.test('validateRequest: version, scheme, extensions', async (t) => {
  const m = parsedReq(INVITE_HEAD);
  t.match(validateRequest({ ...m, version: 'SIP/3.0' }, OPTS), { status: 505 });
  t.match(validateRequest({ ...m, uri: 'mailto:a@b' }, OPTS), { status: 416 });
  t.equal(validateRequest({ ...m, uri: 'tel:+4512345678' }, OPTS), null);
  t.equal(validateRequest({ ...m, uri: 'sips:a@b' }, OPTS), null);
  t.match(validateRequest({ ...m, uri: 'sip:' }, OPTS), { status: 400 });

  t.equal(validateRequest(parsedReq(INVITE_HEAD, ['Require: 100rel, Timer']), OPTS), null);
  t.same(validateRequest(parsedReq(INVITE_HEAD, ['Require: 100rel, foo', 'Require: Bar']), OPTS), {
    status: 420, reason: 'Bad Extension', headers: [['Unsupported', 'foo, Bar']],
  });
  t.same(validateRequest(parsedReq(INVITE_HEAD, ['Proxy-Require: sec-agree']), OPTS)?.headers, [['Unsupported', 'sec-agree']]);
  const ack = parsedReq(INVITE_HEAD.map((l) => l.replace('INVITE', 'ACK')), ['Require: foo']);
  t.equal(validateRequest(ack, OPTS), null, 'Require ignored on ACK');
  const unknown = parsedReq(INVITE_HEAD.map((l) => l.replace(/INVITE/g, 'NEWMETHOD')));
  t.equal(validateRequest(unknown, OPTS), null, 'unknown methods left to the endpoint');
});

t.test('validateResponse', async (t) => {
  const good = crlf(['SIP/2.0 200 OK', 'Via: SIP/2.0/UDP h;branch=z9hG4bK1', 'From: <sip:a@b>;tag=1', 'To: <sip:c@d>;tag=2', 'Call-ID: x', 'CSeq: 1 INVITE', 'Content-Length: 0', '', '']);
  const res = ok(t, parseMessage(Buffer.from(good))) as SipResponse;
  t.equal(validateResponse(res), null);
  for (const drop of ['via', 'from', 'to', 'call-id', 'cseq']) {
    const h = res.headers.clone().remove(drop);
    t.type(validateResponse({ ...res, headers: h }), 'string', `missing ${drop}`);
  }
  t.type(validateResponse({ ...res, headers: res.headers.clone().set('CSeq', '9292394834772304023312 OPTIONS') }), 'string');
  t.type(validateResponse({ ...res, status: 4294967301 }), 'string');
  t.type(validateResponse({ ...res, status: 99 }), 'string');
});

t.test('errorResponseHeaders', async (t) => {
  const h = new Headers([
    ['v', 'SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2'],
    ['To', 'sip:user@example.com'],
    ['Via', 'SIP/2.0/UDP c;branch=z9hG4bK3'],
    ['From', 'sip:caller@example.net;tag=1'],
    ['i', 'call-1'],
    ['CSeq', 'garbage'],
    ['Subject', 'not copied'],
  ]);
  const out = errorResponseHeaders({ headers: h }, 'tt');
  t.same(out.fields.map((f) => [f.name, f.value]), [
    ['Via', 'SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2'],
    ['Via', 'SIP/2.0/UDP c;branch=z9hG4bK3'],
    ['From', 'sip:caller@example.net;tag=1'],
    ['To', 'sip:user@example.com;tag=tt'],
    ['Call-ID', 'call-1'],
    ['CSeq', 'garbage'],
  ]);
  const tagged = errorResponseHeaders({ headers: new Headers([['To', '<sip:a@b>;tag=x']]) }, 'tt');
  t.equal(tagged.get('to'), '<sip:a@b>;tag=x', 'existing tag kept');
  t.equal(errorResponseHeaders({ headers: new Headers() }, 'tt').fields.length, 0, 'nothing to copy, no throw');
  t.equal(errorResponseHeaders({ headers: new Headers([['To', '"unterminated <sip:a@b']]) }).get('to'), '"unterminated <sip:a@b');
});
