// The RFC 4475 torture messages against the running daemon, over UDP and over TCP: each gets
// the answer INDEX.tsv names (or none where it says drop), and the daemon still answers a fresh
// OPTIONS afterwards.
import t from 'tap';
import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestBridge } from '../helpers/bridge.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = path.resolve(repo, '..', 'shared', 'conformance', 'rfc4475');
// A loopback address of our own: responses go to the Via port (5060/5050/5070) at the source address.
const HOST = '127.0.44.75';

interface Row { file: string; kind: string; expected: string }
const rows: Row[] = readFileSync(path.join(dir, 'INDEX.tsv'), 'utf8').trim().split('\n').slice(1).map((l) => {
  const [file, , kind, , expected] = l.split('\t');
  return { file: file!, kind: kind!, expected: expected! };
});

function callIdOf(buf: Buffer): string {
  const head = buf.toString('latin1').split(/\r?\n\r?\n/)[0]!;
  const m = /^(?:call-id|i)[ \t]*:[ \t]*(.*)$/im.exec(head);
  return m ? m[1]!.trim() : '';
}

function statusOf(buf: Buffer): number | null {
  const m = /^SIP\/2\.0 (\d{3})/.exec(buf.toString('latin1'));
  return m ? Number(m[1]) : null;
}

/** The statuses the RFC allows for a row, or 'drop', or null when only survival is checked. */
function allowed(expected: string, transport: 'udp' | 'tcp'): number[] | 'drop' | 'any' | null {
  if (expected === 'drop') return 'drop';
  if (/\(over UDP\)/.test(expected) && transport === 'tcp') return null;
  let m = /^respond (\d)xx/.exec(expected);
  if (m) return Array.from({ length: 100 }, (_, i) => Number(m![1]) * 100 + i);
  m = /^respond (\d{3})(?: or (\d{3}))?/.exec(expected);
  if (m) return [Number(m[1]), ...(m[2] ? [Number(m[2])] : [])];
  if (/^reject 400 or accept/.test(expected)) return null;
  return 'any';
}

async function optionsAlive(port: number): Promise<number | null> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const p = s.address().port;
  const msg = `OPTIONS sip:bridge@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${p};branch=z9hG4bK${Math.random().toString(36).slice(2)};rport\r\nMax-Forwards: 70\r\nFrom: <sip:check@127.0.0.1>;tag=a\r\nTo: <sip:bridge@127.0.0.1>\r\nCall-ID: alive-${Math.random()}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`;
  const status = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => resolve(null), 2000);
    s.on('message', (b) => {
      clearTimeout(timer);
      resolve(statusOf(b));
    });
    s.send(msg, port, '127.0.0.1');
  });
  s.close();
  return status;
}

t.test('RFC 4475 over UDP and TCP', async (t) => {
  const { bridge } = await startTestBridge(t, {
    callTakerTarget: 'sip:acd@127.0.0.1:9', // nothing listens: torture INVITEs end without a call taker
    sip: { timers: { t1Ms: 50 } },
  });
  const udpPort = bridge.port('udp');
  const tcpPort = bridge.port('tcp');

  // Receivers at the Via ports the messages name; 5060 doubles as the sender.
  const socks = new Map<number, dgram.Socket>();
  const got: Buffer[] = [];
  for (const p of [5060, 5050, 5070]) {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(p, HOST, () => resolve());
    });
    s.on('message', (b) => got.push(b));
    socks.set(p, s);
  }
  t.teardown(() => socks.forEach((s) => s.close()));
  const sender = socks.get(5060)!;

  for (const row of rows) {
    const bytes = readFileSync(path.join(dir, row.file));
    // UDP
    got.length = 0;
    sender.send(bytes, udpPort, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 250));
    // Late answers to earlier torture INVITEs (their calls time out) are not this message's.
    const cid = callIdOf(bytes);
    const mine = got.filter((b) => callIdOf(b) === cid);
    got.length = 0;
    got.push(...mine);
    const finals = got.map(statusOf).filter((s): s is number => s !== null && s >= 200);
    const anyResponse = got.map(statusOf).filter((s) => s !== null);
    const want = allowed(row.expected, 'udp');
    if (want === 'drop') t.equal(got.length, 0, `udp ${row.file}: dropped (${row.expected})`);
    else if (Array.isArray(want)) t.ok(finals.length === 1 && want.includes(finals[0]!), `udp ${row.file}: ${row.expected}, got ${finals.join(',') || 'nothing'}`);
    else if (want === 'any') t.ok(anyResponse.length >= 1 || row.kind.startsWith('response'), `udp ${row.file}: answered (${anyResponse.join(',')})`);
    if (row.file === 'dblreq.dat') t.equal(finals.length, 1, 'dblreq: only the REGISTER is answered');
    t.equal(await optionsAlive(udpPort), 200, `alive after udp ${row.file}`);

    // TCP: one connection per message; answers come back on the connection.
    const tcpGot: Buffer[] = [];
    const c = net.connect(tcpPort, '127.0.0.1');
    c.on('data', (b) => tcpGot.push(b));
    c.on('error', () => {});
    await new Promise<void>((r) => c.once('connect', () => r()));
    c.write(bytes);
    await new Promise((r) => setTimeout(r, 250));
    c.destroy();
    const text = Buffer.concat(tcpGot.filter((b) => callIdOf(b) === callIdOf(bytes)));
    const tcpStatuses = [...text.toString('latin1').matchAll(/^SIP\/2\.0 (\d{3})/gm)].map((m) => Number(m[1]));
    const tw = allowed(row.expected, 'tcp');
    if (tw === 'drop') t.equal(tcpStatuses.length, 0, `tcp ${row.file}: dropped`);
    else if (Array.isArray(tw)) t.ok(tcpStatuses.some((s) => tw.includes(s)), `tcp ${row.file}: ${row.expected}, got ${tcpStatuses.join(',') || 'nothing'}`);
    t.equal(await optionsAlive(udpPort), 200, `alive after tcp ${row.file}`);
  }
  t.ok(bridge.transport.counters.rejected > 0, 'broken requests were answered by the transport');
});
