import t from 'tap';
import { infoDigit } from '../../src/sip/info-digits.js';
import { SourceAcl } from '../../src/sip/acl.js';
import { parseMultipart, buildMultipart, sdpOf, nonSdpParts } from '../../src/sip/multipart.js';
import { bodyWithSdp } from '../../src/sip/b2bua.js';
import { request, Headers } from '../../src/sip/message.js';

t.test('INFO DTMF bodies', async (t) => {
  t.equal(infoDigit('application/dtmf-relay', Buffer.from('Signal=*\r\nDuration=160\r\n')), '*');
  t.equal(infoDigit('Application/DTMF-Relay; x=1', Buffer.from('signal= 5\r\n')), '5');
  t.equal(infoDigit('application/dtmf', Buffer.from('#')), '#');
  t.equal(infoDigit('application/dtmf', Buffer.from('10')), '*');
  t.equal(infoDigit('application/dtmf-relay', Buffer.from('Duration=160')), null);
  t.equal(infoDigit('text/plain', Buffer.from('1')), null);
});

t.test('source ACL by CIDR', async (t) => {
  const acl = new SourceAcl(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32']);
  t.ok(acl.allows('10.1.2.3'));
  t.ok(acl.allows('::ffff:10.1.2.3'), 'IPv4-mapped');
  t.ok(acl.allows('192.0.2.7'));
  t.notOk(acl.allows('192.0.2.8'));
  t.ok(acl.allows('2001:db8::1'));
  t.notOk(acl.allows('2001:db9::1'));
});

t.test('multipart: SDP + PIDF-LO survive a round trip byte for byte', async (t) => {
  const sdp = Buffer.from('v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n');
  const pidf = Buffer.from('<?xml version="1.0"?>\n<presence xmlns="urn:ietf:params:xml:ns:pidf"/>\n');
  const { body, contentType } = buildMultipart([
    { headers: [['Content-Type', 'application/sdp']], body: sdp },
    { headers: [['Content-Type', 'application/pidf+xml'], ['Content-ID', '<loc@x>']], body: pidf },
  ], 'b1');
  t.equal(contentType, 'multipart/mixed;boundary=b1');
  const parts = parseMultipart(body, contentType)!;
  t.equal(parts.length, 2);
  t.same(parts[1]!.body, pidf);
  t.same(sdpOf(body, contentType), sdp);
  t.same(sdpOf(sdp, 'application/sdp'), sdp);
  t.equal(nonSdpParts(body, contentType).length, 1);
  t.equal(parseMultipart(body, 'multipart/mixed'), null, 'no boundary');

  const invite = request('INVITE', 'sip:112@x', new Headers([['Content-Type', contentType]]), body);
  const ours = Buffer.from('v=0\r\n');
  const region = bodyWithSdp(invite, ours);
  const rp = parseMultipart(region.body, region.contentType)!;
  t.same(rp[0]!.body, ours, 'our SDP first');
  t.same(rp[1]!.body, pidf, 'location part kept');
  t.same(rp[1]!.headers.find(([n]) => n === 'Content-ID')?.[1], '<loc@x>', 'Content-ID kept for the cid: reference');
  const plain = bodyWithSdp(request('INVITE', 'sip:x', new Headers([['Content-Type', 'application/sdp']]), sdp), ours);
  t.equal(plain.contentType, 'application/sdp');
});
