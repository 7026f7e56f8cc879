// RFC 4475 torture messages through parseMessage (datagram mode) + validateRequest, checked
// against the `expected` column of INDEX.tsv (see its README), plus content checks per message.
import t, { type Test } from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseMessage, StreamFramer, type ParseResult } from '../../src/sip/parser.js';
import { validateRequest, validateResponse } from '../../src/sip/validate.js';
import {
  parseCSeq, parseMaxForwards, parseNameAddr, parseUri, parseVia, tagOf, unescapeUser,
} from '../../src/sip/grammar.js';
import type { SipRequest, SipResponse } from '../../src/sip/message.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIR = path.resolve(repoRoot, '..', 'shared', 'conformance', 'rfc4475');

const OPTS = {
  supported: ['100rel', 'timer', 'replaces', 'norefersub'],
  allowedMethods: ['INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'INFO', 'UPDATE', 'PRACK', 'REFER', 'NOTIFY'],
};

interface Row { file: string; section: string; kind: string; valid: string; expected: string; note: string }

const rows: Row[] = fs
  .readFileSync(path.join(DIR, 'INDEX.tsv'), 'utf8')
  .split('\n')
  .slice(1)
  .filter((l) => l.trim() !== '')
  .map((l) => {
    const [file, section, kind, valid, expected, note] = l.split('\t');
    return { file: file!, section: section!, kind: kind!, valid: valid!, expected: expected!, note: note ?? '' };
  });

const load = (file: string): Buffer => fs.readFileSync(path.join(DIR, file));
const parse = (file: string): ParseResult => parseMessage(load(file), { datagram: true });

/** What we would send back: a status, or undefined for "nothing". */
function outcome(r: ParseResult): { status?: number; reason: string; parsed: boolean } {
  if (!r.ok) return { status: r.status, reason: r.reason, parsed: false };
  if (r.msg.kind === 'response') return { reason: validateResponse(r.msg) ?? 'response', parsed: true };
  const v = validateRequest(r.msg, OPTS);
  return v ? { status: v.status, reason: v.reason, parsed: true } : { reason: 'accepted', parsed: true };
}

function request(t: Test, file: string): SipRequest {
  const r = parse(file);
  if (!r.ok || r.msg.kind !== 'request') throw new Error(`${file} did not parse as a request`);
  return r.msg;
}

t.test('INDEX covers the corpus', async (t) => {
  t.equal(rows.length, 49);
  for (const r of rows) t.ok(fs.existsSync(path.join(DIR, r.file)), r.file);
});

t.test('expected outcome per message', async (t) => {
  for (const row of rows) {
    const r = parse(row.file);
    const o = outcome(r);
    const label = `${row.file} (${row.expected}) → ${o.status ?? 'no response'}: ${o.reason}`;
    const exp = row.expected;
    if (exp.startsWith('respond')) {
      const allowed = [...exp.matchAll(/\b(\d\d\d|4xx)\b/g)].map((m) => m[1]!);
      const okStatus = o.status !== undefined && allowed.some((a) => (a === '4xx' ? o.status! >= 400 && o.status! < 500 : Number(a) === o.status));
      t.ok(okStatus, label);
    } else if (exp === 'drop') {
      t.equal(o.status, undefined, label);
      // Responses are recognised as responses (then never answered) or are unparseable.
      t.ok(r.ok ? r.msg.kind === 'response' : r.request === undefined, `${row.file}: response or unparseable`);
    } else if (exp.startsWith('parse and process')) {
      t.ok(r.ok && r.msg.kind === 'request', `${row.file}: parsed`);
      if (exp === 'parse and process') t.equal(o.status, undefined, label);
      else {
        // Role-dependent answers (415, 501, 405, 483, ...) are the endpoint's decision; a
        // validator rejection is only acceptable if the note names that status.
        t.ok(o.status === undefined || exp.includes(String(o.status)), label);
      }
    } else if (exp.startsWith('reject 400 or accept')) {
      t.ok(o.status === 400 || (o.parsed && o.status === undefined), label);
    } else {
      t.fail(`unknown expectation: ${exp}`);
    }
  }
});

t.test('every message frames on a stream without breaking the framer', async (t) => {
  for (const row of rows) {
    const buf = load(row.file);
    const out: Buffer[] = [];
    const errors: string[] = [];
    const f = new StreamFramer((b) => out.push(b), (e) => errors.push(e));
    for (let i = 0; i < buf.length; i += 97) f.push(buf.subarray(i, i + 97));
    const udp = parse(row.file);
    if (udp.ok && udp.msg.headers.has('content-length')) {
      t.ok(out.length >= 1, `${row.file}: framed`);
      const tcp = out[0] ? parseMessage(out[0]) : undefined;
      t.ok(tcp?.ok && tcp.msg.body.equals(udp.msg.body), `${row.file}: same body over TCP`);
    } else {
      t.ok(errors.length <= 1, `${row.file}: at most one error, then silence`);
    }
  }
  const errs = (file: string): string[] => {
    const e: string[] = [];
    new StreamFramer(() => {}, (x) => e.push(x)).push(load(file));
    return e;
  };
  t.match(errs('ncl.dat'), [/Content-Length/], 'ncl: negative length closes the connection');
  t.match(errs('mcl01.dat'), [/Content-Length/], 'mcl01: conflicting lengths close the connection');
  t.same(errs('clerr.dat'), [], 'clerr: waits for more data');
});

t.test('wsinv: a short tortuous INVITE', async (t) => {
  const m = request(t, 'wsinv.dat');
  const to = parseNameAddr(m.headers.get('to')!)!;
  t.equal(to.uri, 'sip:vivekg@chair-dnrc.example.com');
  t.equal(to.params.get('tag'), '1918181833n');
  const from = parseNameAddr(m.headers.get('from')!)!;
  t.equal(from.display, 'J Rosenberg \\"');
  t.equal(from.uri, 'sip:jdrosen@example.com');
  t.equal(tagOf(m.headers.get('from')), '98asjd8');
  t.equal(m.headers.get('call-id'), 'wsinv.ndaksdj@192.0.2.1');
  t.same(parseCSeq(m.headers.get('cseq')), { seq: 9, method: 'INVITE' });
  t.equal(parseMaxForwards(m.headers.get('max-forwards')), 68);
  const vias = m.headers.getList('via').map((v) => parseVia(v)!);
  t.same(vias.map((v) => [v.transport, v.host, v.branch]), [
    ['UDP', '192.0.2.2', '390skdjuw'],
    ['TCP', 'spindle.example.com', 'z9hG4bK9ikj8'],
    ['UDP', '192.168.255.111', 'z9hG4bK30239'],
  ]);
  t.equal(m.headers.get('subject'), '');
  t.equal(m.headers.get('newfangledheader'), 'newfangled value continued newfangled value');
  t.equal(m.headers.get('unknownheaderwithunusualvalue'), ';;,,;;,;');
  const contact = parseNameAddr(m.headers.get('contact')!)!;
  t.equal(contact.display, 'Quoted string ""');
  t.same([...contact.params], [['newparam', 'newvalue'], ['secondparam', null], ['q', '0.33']]);
  t.equal(parseUri(m.uri)!.params.has('unknownparam'), true);
  t.equal(m.body.length, 150);
  t.equal(m.headers.get('content-type'), 'application/sdp');
});

t.test('intmeth: wide range of valid characters', async (t) => {
  const m = request(t, 'intmeth.dat');
  const method = "!interesting-Method0123456789_*+`.%indeed'~";
  t.equal(m.method, method, 'method name kept');
  t.equal(parseCSeq(m.headers.get('cseq'))!.method, method);
  t.equal(parseUri(m.uri)!.host, 'example.com');
  const to = parseNameAddr(m.headers.get('to')!)!;
  t.equal(to.display, 'BEL:\u0007 NUL:\u0000 DEL:\u007f');
  t.equal(to.uri, "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com");
  t.equal(tagOf(m.headers.get('from')), "_token~1'+`*%!-.");
  t.equal(m.headers.get('call-id'), 'intmeth.word%ZK-!.*_+\'@word`~)(><:\\/"][?}{');
  t.equal(Buffer.from(m.headers.get("extensionheader-!.%*+_`'~")!, 'utf8').toString('hex'), 'efbbbfe5a4a7e5819ce99bbb', 'UTF-8 value intact');
  t.equal(parseVia(m.headers.get('via')!)!.branch, "z9hG4bK-.!%66*_+`'~");
});

t.test('esc01: % escaping', async (t) => {
  const m = request(t, 'esc01.dat');
  const ruri = parseUri(m.uri)!;
  t.equal(ruri.user, 'sips%3Auser%40example.com');
  t.equal(unescapeUser(ruri.user!), 'sips:user@example.com');
  t.equal(ruri.host, 'example.net');
  t.equal(unescapeUser(parseUri(parseNameAddr(m.headers.get('to')!)!.uri)!.user!), 'user');
  t.equal(unescapeUser(parseUri(parseNameAddr(m.headers.get('from')!)!.uri)!.user!), 'I have spaces');
  const contact = parseUri(parseNameAddr(m.headers.get('contact')!)!.uri)!;
  t.equal(unescapeUser(contact.user!), 'caller');
  t.ok(contact.params.has('lr'));
  t.equal(contact.params.get('name'), 'v%61lue%25%34%31');
  t.equal(unescapeUser(contact.params.get('name')!), 'value%41', 'unescaped once');
});

t.test('escnull: two distinct contacts', async (t) => {
  const m = request(t, 'escnull.dat');
  const contacts = m.headers.getList('contact').map((c) => parseUri(parseNameAddr(c)!.uri)!);
  t.equal(contacts.length, 2);
  const users = contacts.map((c) => unescapeUser(c.user!));
  t.same(users, ['\u0000', '\u0000\u0000']);
  t.not(users[0], users[1]);
  const aor = unescapeUser(parseUri(parseNameAddr(m.headers.get('to')!)!.uri)!.user!);
  t.equal(aor, 'null-\u0000-null', 'AOR not truncated');
});

t.test('esc02: % that is not an escape', async (t) => {
  const m = request(t, 'esc02.dat');
  t.equal(m.method, 'RE%47IST%45R', 'not REGISTER');
  t.equal(m.headers.count('contact'), 2);
  t.equal(m.headers.get('c%6fntact'), '<sip:alias2@host2.example.com>', 'C%6Fntact is an unknown header');
  t.equal(parseNameAddr(m.headers.get('to')!)!.display, '%Z%45');
});

t.test('lwsdisp, semiuri, transports', async (t) => {
  t.equal(parseNameAddr(request(t, 'lwsdisp.dat').headers.get('from')!)!.display, 'caller');
  const s = parseUri(request(t, 'semiuri.dat').uri)!;
  t.equal(s.user, 'user;par=u%40example.net');
  t.equal(s.host, 'example.com');
  t.equal(s.params.size, 0);
  const tr = request(t, 'transports.dat').headers.getList('via').map((v) => parseVia(v)!.transport);
  t.same(tr, ['UDP', 'SCTP', 'TLS', 'UNKNOWN', 'TCP']);
});

t.test('longreq: long values, 34 Via values', async (t) => {
  const m = request(t, 'longreq.dat');
  const vias = m.headers.getList('via');
  t.equal(vias.length, 34);
  t.ok(vias.every((v) => parseVia(v) !== null));
  t.equal(parseVia(vias[33]!)!.received, '192.0.2.5');
  t.match(parseNameAddr(m.headers.get('to')!)!.display, /^I have a user name of (extreme){10} proportion$/);
  t.equal(parseUri(parseNameAddr(m.headers.get('to')!)!.uri)!.port, 6000);
  t.match(m.headers.get('call-id'), /^longreq\.one(really){20}longcallid$/);
  t.equal(m.body.length, 150);
});

t.test('dblreq: trailing INVITE ignored', async (t) => {
  const m = request(t, 'dblreq.dat');
  t.equal(m.method, 'REGISTER');
  t.equal(m.body.length, 0);
  t.equal(m.headers.get('call-id'), 'dblreq.0ha0isndaksdj99sdfafnl3lk233412');
  t.equal(m.headers.count('cseq'), 1);
  t.equal(m.headers.count('to'), 1);
});

t.test('mpart01: binary multipart body', async (t) => {
  const buf = load('mpart01.dat');
  const m = request(t, 'mpart01.dat');
  const start = buf.indexOf('\r\n\r\n') + 4;
  t.equal(m.body.length, 553);
  t.ok(m.body.equals(buf.subarray(start, start + 553)), 'exactly the bytes after the header section');
  t.ok(m.body.includes(0), 'contains NUL');
  t.match(m.headers.get('content-type'), /^multipart\/mixed;boundary=7a9cbec02ceef655$/);
  t.equal(parseVia(m.headers.get('via')!)!.rport, true);
});

t.test('responses', async (t) => {
  const un = parse('unreason.dat');
  t.ok(un.ok && un.msg.kind === 'response');
  const unr = (un as { msg: SipResponse }).msg;
  t.equal(unr.status, 200);
  t.match(unr.reason, /^= 2\*\*3 \* 5\*\*2 но сто девяносто девять/);
  t.equal(unr.body.length, 154);
  const nr = parse('noreason.dat');
  t.ok(nr.ok && nr.msg.kind === 'response' && nr.msg.reason === '' && nr.msg.status === 100);
  const big = parse('bigcode.dat');
  t.ok(!big.ok && big.status === undefined, 'bigcode: unparseable, dropped');
  const lg = parse('scalarlg.dat');
  t.ok(lg.ok && lg.msg.kind === 'response' && validateResponse(lg.msg) !== null, 'scalarlg: discarded');
  const bc = parse('bcast.dat');
  t.ok(bc.ok && bc.msg.headers.getList('via').length === 2);
});

t.test('specific rejections', async (t) => {
  const bext = validateRequest(request(t, 'bext01.dat'), OPTS)!;
  t.equal(bext.status, 420);
  t.same(bext.headers, [['Unsupported', 'nothingSupportsThis, nothingSupportsThisEither, noProxiesSupportThis, norDoAnyProxiesSupportThis']]);
  t.equal(validateRequest(request(t, 'scalar02.dat'), OPTS)!.reason, 'Malformed CSeq header');
  t.equal(validateRequest(request(t, 'mismatch01.dat'), OPTS)!.reason, 'CSeq method does not match');
  t.match(validateRequest(request(t, 'multi01.dat'), OPTS), { status: 400 });
  t.match(validateRequest(request(t, 'insuf.dat'), OPTS), { status: 400 });
  t.match(validateRequest(request(t, 'unkscm.dat'), OPTS), { status: 416 });
  t.match(validateRequest(request(t, 'novelsc.dat'), OPTS), { status: 416 });
  const bv = parse('badvers.dat');
  t.ok(!bv.ok && bv.status === 505 && bv.request?.headers.has('via'), 'badvers: 505 with headers to answer');
  for (const f of ['clerr.dat', 'ncl.dat', 'mcl01.dat']) {
    const r = parse(f);
    t.ok(!r.ok && r.status === 400 && r.request?.headers.get('call-id'), `${f}: 400 with headers to answer`);
  }
});

t.test('liberal acceptances', async (t) => {
  t.equal(request(t, 'ltgtruri.dat').uri, 'sip:user@example.com', 'ltgtruri: <> stripped');
  t.equal(request(t, 'lwsstart.dat').uri, 'sip:user@example.com');
  t.equal(request(t, 'trws.dat').version, 'SIP/2.0');
  t.equal(parseNameAddr(request(t, 'quotbal.dat').headers.get('to')!)!.uri, 'sip:j.user@example.com');
  t.equal(parseNameAddr(request(t, 'baddn.dat').headers.get('from')!)!.display, 'Bell, Alexander');
  t.equal(parseNameAddr(request(t, 'badaspec.dat').headers.get('to')!)!.uri, 'sip:t.watson@example.org');
  t.equal(parseUri(request(t, 'escruri.dat').uri)!.headers.get('Route'), '%3Csip:example.com%3E');
  const ct = parseNameAddr(request(t, 'regbadct.dat').headers.get('contact')!)!;
  t.equal(parseUri(ct.uri)!.headers.get('Route'), '%3Csip:sip.example.com%3E');
  const lws = parse('lwsruri.dat');
  t.ok(!lws.ok && lws.status === 400, 'lwsruri: LWS inside the Request-URI rejected');
});

t.test('header parameters vs URI parameters', async (t) => {
  const c1 = parseNameAddr(request(t, 'cparam01.dat').headers.get('contact')!)!;
  t.ok(c1.params.has('unknownparam'), 'cparam01: contact-param');
  t.equal(parseUri(c1.uri)!.params.size, 0);
  const c2 = parseNameAddr(request(t, 'cparam02.dat').headers.get('contact')!)!;
  t.equal(c2.params.size, 0);
  t.ok(parseUri(c2.uri)!.params.has('unknownparam'), 'cparam02: url-param');
  const rc = parseUri(parseNameAddr(request(t, 'regescrt.dat').headers.get('contact')!)!.uri)!;
  t.equal(rc.headers.get('Route'), '%3Csip:sip.example.com%3E');
  const u2 = request(t, 'unksm2.dat');
  t.equal(parseUri(parseNameAddr(u2.headers.get('to')!)!.uri)!.scheme, 'isbn');
  t.equal(parseUri(parseNameAddr(u2.headers.get('from')!)!.uri)!.scheme, 'http');
  t.equal(parseUri(parseNameAddr(u2.headers.get('contact')!)!.uri)!.scheme, 'name');
});

t.test('inv2543 and badbranch: RFC 2543 leftovers', async (t) => {
  const m = request(t, 'inv2543.dat');
  t.equal(parseVia(m.headers.get('via')!)!.branch, undefined);
  t.equal(tagOf(m.headers.get('from')), undefined);
  t.equal(m.headers.has('max-forwards'), false);
  t.match(m.body.toString(), /^v=0\r\n[\s\S]*m=audio 49217 RTP\/AVP 0\r\n$/, 'body is the rest of the datagram');
  t.equal(parseVia(request(t, 'badbranch.dat').headers.get('via')!)!.branch, 'z9hG4bK');
});
