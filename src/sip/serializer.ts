// Wire form of a SIP message. Header names and values are written as stored (compact names
// included); Content-Length is always recomputed from the body's byte length, because a value
// copied from another leg or counted in characters would break framing.
import type { SipMessage } from './message.js';

export function serialize(msg: SipMessage): Buffer {
  const version = msg.version || 'SIP/2.0';
  let head =
    msg.kind === 'request' ? `${msg.method} ${msg.uri} ${version}\r\n` : `${version} ${msg.status} ${msg.reason}\r\n`;
  const len = msg.body.length;
  let hasLength = false;
  for (const f of msg.headers.fields) {
    if (f.key === 'content-length') {
      if (hasLength) continue; // duplicates dropped: one authoritative value
      hasLength = true;
      head += `${f.name}: ${len}\r\n`;
    } else head += `${f.name}: ${f.value}\r\n`;
  }
  if (!hasLength) head += `Content-Length: ${len}\r\n`;
  head += '\r\n';
  // One allocation for the whole message instead of Buffer.from + Buffer.concat.
  const headLen = Buffer.byteLength(head, 'utf8');
  const out = Buffer.allocUnsafe(headLen + len);
  out.write(head, 0, headLen, 'utf8');
  if (len > 0) msg.body.copy(out, headLen);
  return out;
}
