// A small pcap reader (classic libpcap format, as `tcpdump -w` writes it) for UDP over IPv4,
// and the pairing of SIP messages across the bridge for the added-latency figures.
//
// Formats: micro- or nanosecond magic, either byte order; link types EN10MB (Linux `lo`),
// LINUX_SLL / LINUX_SLL2 (`-i any`), NULL/LOOP (BSD loopback) and RAW. IPv4 fragments and
// non-UDP packets are counted and skipped.

const LINKTYPE = { NULL: 0, EN10MB: 1, RAW: 101, RAW_ALT: 12, LOOP: 108, LINUX_SLL: 113, LINUX_SLL2: 276 };

/**
 * Parse a pcap file buffer. Returns { linkType, nanos, packets, skipped } where each packet is
 * { ms, src, sport, dst, dport, payload } and `ms` is milliseconds since the first record
 * (a plain double keeps sub-microsecond precision that way).
 */
export function readPcap(buf) {
  if (buf.length < 24) throw new Error('pcap: file shorter than its global header');
  const magicLE = buf.readUInt32LE(0);
  let le;
  let nanos;
  if (magicLE === 0xa1b2c3d4 || magicLE === 0xa1b23c4d) { le = true; nanos = magicLE === 0xa1b23c4d; } else {
    const magicBE = buf.readUInt32BE(0);
    if (magicBE === 0xa1b2c3d4 || magicBE === 0xa1b23c4d) { le = false; nanos = magicBE === 0xa1b23c4d; } else if (magicLE === 0x0a0d0d0a) {
      throw new Error('pcap: this is a pcapng file; write classic pcap (tcpdump -w does by default)');
    } else throw new Error(`pcap: unknown magic 0x${magicLE.toString(16)}`);
  }
  const u32 = (o) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const linkType = u32(20) & 0x0fffffff; // upper bits may carry FCS information
  const packets = [];
  const skipped = { notIpv4: 0, notUdp: 0, fragment: 0, truncated: 0 };
  let sec0 = null;
  let off = 24;
  while (off + 16 <= buf.length) {
    const sec = u32(off);
    const frac = u32(off + 4);
    const incl = u32(off + 8);
    const start = off + 16;
    off = start + incl;
    if (off > buf.length) { skipped.truncated++; break; } // tcpdump killed mid-record
    sec0 ??= sec;
    const ms = (sec - sec0) * 1000 + (nanos ? frac / 1e6 : frac / 1e3);
    const ip = ipv4Offset(buf, start, incl, linkType, le);
    if (ip < 0) { skipped.notIpv4++; continue; }
    const end = start + incl;
    if ((buf[ip] >> 4) !== 4) { skipped.notIpv4++; continue; }
    const ihl = (buf[ip] & 0x0f) * 4;
    const totalLen = buf.readUInt16BE(ip + 2);
    const flagsFrag = buf.readUInt16BE(ip + 6);
    if ((flagsFrag & 0x1fff) !== 0 || (flagsFrag & 0x2000) !== 0) { skipped.fragment++; continue; }
    if (buf[ip + 9] !== 17) { skipped.notUdp++; continue; }
    const udp = ip + ihl;
    if (udp + 8 > end) { skipped.truncated++; continue; }
    const udpLen = buf.readUInt16BE(udp + 4);
    const payloadEnd = Math.min(end, udp + udpLen, ip + totalLen);
    packets.push({
      ms,
      src: `${buf[ip + 12]}.${buf[ip + 13]}.${buf[ip + 14]}.${buf[ip + 15]}`,
      dst: `${buf[ip + 16]}.${buf[ip + 17]}.${buf[ip + 18]}.${buf[ip + 19]}`,
      sport: buf.readUInt16BE(udp),
      dport: buf.readUInt16BE(udp + 2),
      payload: buf.subarray(udp + 8, payloadEnd),
    });
  }
  return { linkType, nanos, packets, skipped };
}

/** Offset of the IPv4 header inside a record, or -1 when the frame does not carry IPv4. */
function ipv4Offset(buf, start, len, linkType, le) {
  switch (linkType) {
    case LINKTYPE.EN10MB: {
      if (len < 14) return -1;
      let type = buf.readUInt16BE(start + 12);
      let o = start + 14;
      while ((type === 0x8100 || type === 0x88a8) && o + 4 <= start + len) { // VLAN tags
        type = buf.readUInt16BE(o + 2);
        o += 4;
      }
      return type === 0x0800 ? o : -1;
    }
    case LINKTYPE.LINUX_SLL:
      return len >= 16 && buf.readUInt16BE(start + 14) === 0x0800 ? start + 16 : -1;
    case LINKTYPE.LINUX_SLL2:
      return len >= 20 && buf.readUInt16BE(start) === 0x0800 ? start + 20 : -1;
    case LINKTYPE.NULL: {
      if (len < 4) return -1;
      const family = le ? buf.readUInt32LE(start) : buf.readUInt32BE(start); // host order of the writer
      return family === 2 ? start + 4 : -1;
    }
    case LINKTYPE.LOOP:
      return len >= 4 && buf.readUInt32BE(start) === 2 ? start + 4 : -1;
    case LINKTYPE.RAW:
    case LINKTYPE.RAW_ALT:
      return start;
    default:
      throw new Error(`pcap: unsupported link type ${linkType}`);
  }
}

const COMPACT = { i: 'call-id', s: 'subject', l: 'content-length', f: 'from', t: 'to', v: 'via', m: 'contact', c: 'content-type' };

/** Start line and the few headers the pairing needs from a SIP datagram, or null. */
export function sipSummary(payload) {
  const text = payload.toString('latin1');
  const headEnd = text.indexOf('\r\n\r\n');
  const lines = (headEnd >= 0 ? text.slice(0, headEnd) : text).split('\r\n');
  const first = lines[0] ?? '';
  let method = null;
  let status = null;
  const resp = /^SIP\/2\.0 (\d{3}) /.exec(first);
  if (resp) status = Number(resp[1]);
  else {
    const req = /^([A-Z]+) \S+ SIP\/2\.0$/.exec(first);
    if (!req) return null; // keep-alive CRLFs and the like
    method = req[1];
  }
  const h = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const c = line.indexOf(':');
    if (c <= 0) continue;
    let name = line.slice(0, c).trim().toLowerCase();
    name = COMPACT[name] ?? name;
    if (h[name] === undefined) h[name] = line.slice(c + 1).trim();
  }
  const cseq = /^(\d+)\s+([A-Z]+)/.exec(h.cseq ?? '');
  return {
    method, status, callId: h['call-id'] ?? '', subject: h.subject ?? null,
    cseqNum: cseq ? Number(cseq[1]) : null, cseqMethod: cseq ? cseq[2] : null,
  };
}

/**
 * Pair the messages across the bridge (first occurrence of each; retransmissions ignored):
 *  - INVITE trunk → bridge  with  INVITE bridge → call taker  (by Subject = trunk Call-ID);
 *  - 200 (INVITE) call taker → bridge  with  200 (INVITE) bridge → trunk (Call-ID mapping
 *    learned from the INVITE pair).
 * `ports`: { bridge, trunk, callTaker } UDP ports. Returns the two latency lists in ms and counts.
 */
export function pairAcrossBridge(packets, ports) {
  const inviteIn = new Map(); // trunk Call-ID → ms
  const inviteOut = new Map(); // trunk Call-ID → ms
  const ctToTrunk = new Map(); // call-taker leg Call-ID → trunk Call-ID
  const okIn = new Map(); // call-taker leg Call-ID → ms
  const okOut = new Map(); // trunk Call-ID → ms
  let sip = 0;
  let unpairedSubject = 0;
  for (const p of packets) {
    const m = sipSummary(p.payload);
    if (!m) continue;
    sip++;
    const fromTrunk = p.sport === ports.trunk && p.dport === ports.bridge;
    const toTrunk = p.sport === ports.bridge && p.dport === ports.trunk;
    const fromCt = p.sport === ports.callTaker && p.dport === ports.bridge;
    const toCt = p.sport === ports.bridge && p.dport === ports.callTaker;
    if (m.method === 'INVITE') {
      // Only the first INVITE of a Call-ID (the initial one; retransmissions come later).
      if (fromTrunk && !inviteIn.has(m.callId)) inviteIn.set(m.callId, p.ms);
      else if (toCt) {
        if (!m.subject) { unpairedSubject++; continue; }
        if (!ctToTrunk.has(m.callId)) ctToTrunk.set(m.callId, m.subject);
        if (!inviteOut.has(m.subject)) inviteOut.set(m.subject, p.ms);
      }
    } else if (m.status === 200 && m.cseqMethod === 'INVITE') {
      if (fromCt && !okIn.has(m.callId)) okIn.set(m.callId, p.ms);
      else if (toTrunk && !okOut.has(m.callId)) okOut.set(m.callId, p.ms);
    }
  }
  const invite = [];
  for (const [id, tIn] of inviteIn) {
    const tOut = inviteOut.get(id);
    if (tOut !== undefined) invite.push(tOut - tIn);
  }
  const ok = [];
  for (const [ctId, trunkId] of ctToTrunk) {
    const tIn = okIn.get(ctId);
    const tOut = okOut.get(trunkId);
    if (tIn !== undefined && tOut !== undefined) ok.push(tOut - tIn);
  }
  return {
    sipMessages: sip,
    invitesIn: inviteIn.size,
    invitesOut: inviteOut.size,
    okIn: okIn.size,
    okOut: okOut.size,
    inviteMs: invite,
    okMs: ok,
    inviteWithoutSubject: unpairedSubject,
  };
}

/** Nearest-rank percentile of an unsorted list (p in 0..100). */
export function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

export function stats(values) {
  if (values.length === 0) return { n: 0, p50: null, p99: null, max: null, mean: null };
  return {
    n: values.length,
    p50: percentile(values, 50),
    p99: percentile(values, 99),
    max: Math.max(...values),
    mean: values.reduce((a, b) => a + b, 0) / values.length,
  };
}
