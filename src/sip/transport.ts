// UDP and TCP listeners for SIP. Frames and parses messages, answers broken requests with a
// stateless error response, and sends messages back over the connection they came on.
import dgram from 'node:dgram';
import net from 'node:net';
import { EventEmitter } from 'node:events';
import type { Peer, SipMessage, Transport } from './message.js';
import { response, REASONS, EMPTY } from './message.js';
import { parseMessage, StreamFramer } from './parser.js';
import { serialize } from './serializer.js';
import { errorResponseHeaders } from './validate.js';
import { parseVia } from './grammar.js';

export interface ListenSpec {
  transport: 'udp' | 'tcp';
  address: string;
  port: number;
}

export interface BoundListener {
  transport: 'udp' | 'tcp';
  address: string;
  port: number;
}

export interface TransportCounters {
  received: number;
  sent: number;
  /** Datagrams or stream data that could not be parsed at all (dropped). */
  unparseable: number;
  /** Requests answered with a stateless 4xx/5xx by the transport. */
  rejected: number;
  sendErrors: number;
}

export interface TransportOptions {
  maxMessageBytes: number;
  /** Close TCP connections idle this long (ms). */
  tcpIdleMs?: number;
  onLog?: (level: 'debug' | 'warn', msg: string, extra?: Record<string, unknown>) => void;
}

/** Raised when a listener cannot bind: a fatal start-up error with a clear message. */
export class BindError extends Error {
  constructor(spec: ListenSpec, cause: Error) {
    super(`cannot listen on ${spec.transport.toUpperCase()} ${spec.address}:${spec.port}: ${cause.message}`);
    this.name = 'BindError';
  }
}

type MessageHandler = (msg: SipMessage, src: Peer) => void;

export class SipTransport extends EventEmitter {
  readonly counters: TransportCounters = { received: 0, sent: 0, unparseable: 0, rejected: 0, sendErrors: 0 };
  readonly listeners_: BoundListener[] = [];
  /** UDP sockets with their bound address, cached: address() is a system call per send. */
  private readonly udp: { sock: dgram.Socket; port: number; v6: boolean }[] = [];
  private readonly servers: net.Server[] = [];
  /** Open TCP connections by "address:port" of the remote end. */
  private readonly conns = new Map<string, net.Socket>();
  private handler: MessageHandler = () => {};
  private closed = false;

  private constructor(private readonly opts: TransportOptions) {
    super();
  }

  static async listen(specs: ListenSpec[], opts: TransportOptions): Promise<SipTransport> {
    const t = new SipTransport(opts);
    try {
      for (const spec of specs) {
        if (spec.transport === 'udp') await t.bindUdp(spec);
        else await t.bindTcp(spec);
      }
    } catch (err) {
      await t.close();
      throw err;
    }
    return t;
  }

  onMessage(handler: MessageHandler): void {
    this.handler = handler;
  }

  get bound(): readonly BoundListener[] {
    return this.listeners_;
  }

  /** The first bound listener of a transport (address/port for Via and Contact). */
  local(transport: Transport): BoundListener | undefined {
    const want = transport === 'tls' ? 'tcp' : transport;
    return this.listeners_.find((l) => l.transport === want) ?? this.listeners_[0];
  }

  private log(level: 'debug' | 'warn', msg: string, extra?: Record<string, unknown>): void {
    this.opts.onLog?.(level, msg, extra);
  }

  private bindUdp(spec: ListenSpec): Promise<void> {
    return new Promise((resolve, reject) => {
      // A large receive buffer rides out event-loop pauses (GC) at call peaks instead of
      // dropping INVITEs in the kernel; Linux caps it at net.core.rmem_max.
      const sock = dgram.createSocket({ type: net.isIPv6(spec.address) ? 'udp6' : 'udp4', reuseAddr: false, recvBufferSize: 4 * 1024 * 1024 });
      const onBindError = (err: Error) => reject(new BindError(spec, err));
      sock.once('error', onBindError);
      sock.bind(spec.port, spec.address, () => {
        sock.off('error', onBindError);
        // After bind, socket errors (ICMP unreachable on some platforms, ENOBUFS) are logged, never fatal.
        sock.on('error', (err) => this.log('warn', 'udp socket error', { err: err.message }));
        const a = sock.address();
        this.listeners_.push({ transport: 'udp', address: a.address, port: a.port });
        const local = { address: a.address, port: a.port };
        sock.on('message', (buf, rinfo) => this.onDatagram(local, buf, rinfo));
        this.udp.push({ sock, port: a.port, v6: a.family === 'IPv6' });
        resolve();
      });
    });
  }

  private bindTcp(spec: ListenSpec): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = net.createServer((s) => this.adoptConnection(s));
      const onBindError = (err: Error) => reject(new BindError(spec, err));
      server.once('error', onBindError);
      server.listen(spec.port, spec.address, () => {
        server.off('error', onBindError);
        server.on('error', (err) => this.log('warn', 'tcp server error', { err: err.message }));
        const a = server.address() as net.AddressInfo;
        this.listeners_.push({ transport: 'tcp', address: a.address, port: a.port });
        this.servers.push(server);
        resolve();
      });
    });
  }

  private onDatagram(local: { address: string; port: number }, buf: Buffer, rinfo: dgram.RemoteInfo): void {
    const src: Peer = { transport: 'udp', address: rinfo.address, port: rinfo.port, localAddress: local.address, localPort: local.port };
    // A lone CRLF (or CRLFCRLF) is a keep-alive, not a message.
    if (buf.length <= 4 && buf.every((b) => b === 13 || b === 10)) return;
    if (buf.length > this.opts.maxMessageBytes) {
      this.counters.unparseable++;
      return;
    }
    this.deliver(buf, src, true);
  }

  private adoptConnection(s: net.Socket, remote?: { address: string; port: number }): void {
    const address = remote?.address ?? s.remoteAddress ?? '';
    const port = remote?.port ?? s.remotePort ?? 0;
    const key = `${address}:${port}`;
    this.conns.set(key, s);
    s.setNoDelay(true);
    s.setTimeout(this.opts.tcpIdleMs ?? 300_000, () => s.destroy());
    const src: Peer = { transport: 'tcp', address, port, localAddress: s.localAddress, localPort: s.localPort };
    const framer = new StreamFramer(
      (buf) => this.deliver(buf, src, false),
      (reason) => {
        this.counters.unparseable++;
        this.log('debug', 'closing tcp connection after framing error', { peer: key, reason });
        s.destroy();
      },
      this.opts.maxMessageBytes,
    );
    framer.onKeepAlive = () => {
      if (!s.destroyed) s.write('\r\n');
    };
    s.on('data', (chunk) => framer.push(chunk));
    s.on('error', (err) => this.log('debug', 'tcp connection error', { peer: key, err: err.message }));
    s.on('close', () => {
      if (this.conns.get(key) === s) this.conns.delete(key);
    });
  }

  private deliver(buf: Buffer, src: Peer, datagram: boolean): void {
    const parsed = parseMessage(buf, { datagram });
    if (!parsed.ok) {
      if (parsed.request && parsed.status && parsed.request.method !== 'ACK') {
        this.counters.rejected++;
        this.rejectBroken(parsed.request.headers, parsed.status, parsed.reason, src);
      } else {
        this.counters.unparseable++;
      }
      this.log('debug', 'malformed SIP message', { from: `${src.address}:${src.port}`, reason: parsed.reason });
      return;
    }
    this.counters.received++;
    try {
      this.handler(parsed.msg, src);
    } catch (err) {
      // A bug in one call's handling must not take the listener down.
      this.log('warn', 'message handler threw', { err: (err as Error).stack });
    }
  }

  private rejectBroken(headers: import('./message.js').Headers, status: number, reason: string, src: Peer): void {
    const h = errorResponseHeaders({ headers }, 'bad' + Math.random().toString(36).slice(2, 8));
    h.append('Warning', `399 amk-bridge "${reason.replace(/"/g, "'").slice(0, 120)}"`);
    const res = response(status, REASONS[status] ?? 'Bad Request', h, EMPTY);
    this.sendResponseTo(res, src);
  }

  /**
   * Where a response goes (RFC 3261 18.2.2, RFC 3581): back on the connection for streams;
   * for UDP to the source address, at the rport or the top Via's sent-by port.
   */
  responseDestination(res: SipMessage, src: Peer): Peer {
    if (src.transport !== 'udp') return src;
    const top = res.headers.getList('via')[0];
    const via = top ? parseVia(top) : null;
    if (!via) return src;
    if (via.params.has('maddr')) {
      const maddr = via.params.get('maddr');
      if (maddr) return { ...src, address: maddr, port: via.port ?? 5060 };
    }
    if (via.params.has('rport')) return src;
    return { ...src, port: via.port ?? 5060 };
  }

  sendResponseTo(res: SipMessage, src: Peer): void {
    this.send(res, this.responseDestination(res, src));
  }

  /** Send a message. Errors are counted and reported through the callback, never thrown. */
  send(msg: SipMessage, dest: Peer, onError?: (err: Error) => void): void {
    if (this.closed) return;
    let buf: Buffer;
    try {
      buf = serialize(msg);
    } catch (err) {
      this.counters.sendErrors++;
      onError?.(err as Error);
      return;
    }
    const fail = (err: Error) => {
      this.counters.sendErrors++;
      this.log('debug', 'send failed', { to: `${dest.transport}:${dest.address}:${dest.port}`, err: err.message });
      onError?.(err);
    };
    this.counters.sent++;
    if (dest.transport === 'udp') {
      const sock = this.pickUdp(dest);
      if (!sock) return fail(new Error('no UDP listener'));
      sock.send(buf, dest.port, dest.address, (err) => {
        if (err) fail(err);
      });
      return;
    }
    this.sendStream(buf, dest, fail);
  }

  private pickUdp(dest: Peer): dgram.Socket | undefined {
    if (dest.localPort !== undefined) {
      for (const u of this.udp) if (u.port === dest.localPort) return u.sock;
    }
    const v6 = dest.address.includes(':');
    return (this.udp.find((u) => u.v6 === v6) ?? this.udp[0])?.sock;
  }

  private sendStream(buf: Buffer, dest: Peer, fail: (err: Error) => void): void {
    const key = `${dest.address}:${dest.port}`;
    const existing = this.conns.get(key);
    if (existing && !existing.destroyed) {
      existing.write(buf);
      return;
    }
    const local = this.listeners_.find((l) => l.transport === 'tcp');
    const s = net.connect({ host: dest.address, port: dest.port, localAddress: local?.address });
    s.once('error', (err) => fail(err));
    s.write(buf);
    this.adoptConnection(s, dest);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const s of this.conns.values()) s.destroy();
    this.conns.clear();
    await Promise.all([
      ...this.udp.map((u) => new Promise<void>((r) => u.sock.close(() => r()))),
      ...this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))),
    ]);
  }
}
