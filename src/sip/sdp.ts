// Minimal SDP we originate ourselves (RFC 4566). Media anchoring replaces the placeholder.
import net from 'node:net';

let version = 1;

/** An inactive G.711 offer on the discard port: signalling works, no media flows yet. */
export function placeholderSdp(address: string): Buffer {
  const ip = net.isIPv6(address) ? 'IP6' : 'IP4';
  const id = Date.now();
  return Buffer.from(
    'v=0\r\n' +
      `o=amk-bridge ${id} ${version++} IN ${ip} ${address}\r\n` +
      's=amk-bridge\r\n' +
      `c=IN ${ip} ${address}\r\n` +
      't=0 0\r\n' +
      'm=audio 9 RTP/AVP 0 8 101\r\n' +
      'a=rtpmap:0 PCMU/8000\r\n' +
      'a=rtpmap:8 PCMA/8000\r\n' +
      'a=rtpmap:101 telephone-event/8000\r\n' +
      'a=fmtp:101 0-15\r\n' +
      'a=ptime:20\r\n' +
      'a=inactive\r\n',
  );
}
