// The RTP media engine as the main thread sees it. Every socket, the jitter buffers, the mixer
// and the 20 ms clock live in a worker thread (worker.ts); this class validates requests, sends
// them to the worker (protocol.ts) and turns its answers into promises and events.
//
// The port pool lives in the worker: it binds the sockets, so it is the one that can skip a
// pair that fails to bind (EADDRINUSE) and try the next. This side keeps the set of live
// endpoint ids, so calls naming an unknown endpoint throw at once.
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { parseNetworks } from './latch.js';
import type { Command, EngineStats, Reply, WorkerInit } from './protocol.js';
import type { EndpointInfo, EndpointMedia, EndpointStats, MediaEvent, ToneName } from './types.js';

export type { EngineStats } from './protocol.js';

export class PortsExhaustedError extends Error {
  constructor(message = 'no free RTP port pair') {
    super(message);
    this.name = 'PortsExhaustedError';
  }
}

export interface MediaEngineOptions {
  /** Local address the RTP/RTCP sockets bind to (and that goes into our SDP). */
  address: string;
  /** RTP port range [portMin, portMax): even RTP ports, RTCP on port + 1. */
  portMin: number;
  portMax: number;
  /** Jitter buffer delay (default 40 ms). */
  jitterDelayMs?: number;
  /** Mean RTCP report interval (default 5000 ms; each interval is randomised 0.5–1.5×). */
  rtcpIntervalMs?: number;
  /** 'rtp-timeout' after this long without RTP from a peer that was sending (default 30 s; 0 disables). */
  rtpTimeoutMs?: number;
  /** RTCP SDES CNAME (default amk-bridge@<address>). */
  cname?: string;
}

/** How long stop() waits for the worker to release everything before terminating it. */
const STOP_TIMEOUT_MS = 5000;

const TONES: ReadonlySet<string> = new Set<ToneName>(['ringing', 'busy', 'connected', 'message-sent', 'message-failed', 'refused']);
const DIRECTIONS: ReadonlySet<string> = new Set(['sendrecv', 'sendonly', 'recvonly', 'inactive']);

interface Pending {
  resolve: (value: never) => void;
  reject: (err: Error) => void;
}

function workerUrl(): URL {
  // Built: dist/media/worker.js next to this file. Under a TypeScript loader (tests run src/
  // directly), only worker.ts exists; the worker inherits the loader through execArgv.
  const js = new URL('./worker.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) return js;
  const ts = new URL('./worker.ts', import.meta.url);
  if (existsSync(fileURLToPath(ts))) return ts;
  return js;
}

export class MediaEngine extends EventEmitter {
  private readonly worker: Worker;
  private readonly ids = new Set<string>();
  private readonly pending = new Map<number, Pending>();
  private nextReq = 1;
  private nextId = 1;
  private stopped = false;
  private dead: Error | null = null;

  private constructor(worker: Worker) {
    super();
    this.worker = worker;
  }

  static async start(opts: MediaEngineOptions): Promise<MediaEngine> {
    if (isIP(opts.address) === 0) throw new RangeError(`media address "${opts.address}" is not an IP address`);
    if (!Number.isInteger(opts.portMin) || !Number.isInteger(opts.portMax) || opts.portMin < 1 || opts.portMax > 65536 || opts.portMax - opts.portMin < 2) {
      throw new RangeError(`bad RTP port range [${opts.portMin}, ${opts.portMax})`);
    }
    const init: WorkerInit = {
      address: opts.address,
      portMin: opts.portMin,
      portMax: opts.portMax,
      jitterDelayMs: opts.jitterDelayMs ?? 40,
      rtcpIntervalMs: opts.rtcpIntervalMs ?? 5000,
      rtpTimeoutMs: opts.rtpTimeoutMs ?? 30_000,
      cname: opts.cname ?? `amk-bridge@${opts.address}`,
    };
    if (!(init.rtcpIntervalMs > 0)) throw new RangeError('rtcpIntervalMs must be > 0');
    if (!(init.rtpTimeoutMs >= 0)) throw new RangeError('rtpTimeoutMs must be >= 0');
    if (!(init.jitterDelayMs >= 0)) throw new RangeError('jitterDelayMs must be >= 0');
    const worker = new Worker(workerUrl(), { workerData: init, name: 'amk-media' });
    const engine = new MediaEngine(worker);
    await new Promise<void>((resolve, reject) => {
      const onMessage = (msg: Reply): void => {
        if (msg.op === 'ready') {
          cleanup();
          resolve();
        } else if (msg.op === 'fatal') {
          cleanup();
          reject(new Error(msg.message));
        }
      };
      const onError = (err: Error): void => {
        cleanup();
        reject(err);
      };
      const onExit = (code: number): void => {
        cleanup();
        reject(new Error(`media worker exited (${code}) before it was ready`));
      };
      const cleanup = (): void => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
    worker.on('message', (msg: Reply) => engine.onReply(msg));
    worker.on('error', (err) => engine.onDeath(err));
    worker.on('exit', (code) => {
      if (!engine.stopped) engine.onDeath(new Error(`media worker exited (${code})`));
    });
    return engine;
  }

  /** Endpoints allocated and not released. */
  get activeEndpoints(): number {
    return this.ids.size;
  }

  /** An even RTP port and the RTCP port above it, bound in the worker. Rejects with PortsExhaustedError when none is free. */
  async allocate(): Promise<EndpointInfo> {
    this.alive();
    const id = `ep${this.nextId++}`;
    return this.request<EndpointInfo>({ op: 'allocate', req: 0, id });
  }

  /** (Re)configures an endpoint from the negotiated SDP. Throws on an unknown id or invalid media. */
  configure(id: string, media: EndpointMedia): void {
    this.known(id);
    validateMedia(media);
    this.send({
      op: 'configure',
      id,
      media: {
        remote: media.remote === null ? null : { address: media.remote.address, port: media.remote.port, rtcpPort: media.remote.rtcpPort },
        codec: media.codec,
        payloadType: media.payloadType,
        telephoneEvent: media.telephoneEvent,
        ptimeMs: media.ptimeMs,
        direction: media.direction,
        latchNetworks: [...media.latchNetworks],
      },
    });
  }

  /**
   * Members hear the sum of the other members. An endpoint is in at most one conference: naming
   * it here moves it out of any other. An empty list removes the conference.
   */
  setConference(conferenceId: string, endpointIds: string[]): void {
    this.alive();
    for (const id of endpointIds) this.known(id);
    this.send({ op: 'conference', conferenceId, endpointIds: [...new Set(endpointIds)] });
  }

  /** Mixes a private tone into what this endpoint hears; null stops it. */
  playTone(id: string, tone: ToneName | null): void {
    this.known(id);
    if (tone !== null && !TONES.has(tone)) throw new RangeError(`unknown tone "${String(tone)}"`);
    this.send({ op: 'tone', id, tone });
  }

  /** Sends RTCP BYE, closes the endpoint's sockets and returns its ports to the pool. */
  release(id: string): void {
    this.known(id);
    this.ids.delete(id);
    this.send({ op: 'release', id });
  }

  async stats(): Promise<EndpointStats[]> {
    this.alive();
    return this.request<EndpointStats[]>({ op: 'stats', req: 0 });
  }

  /** Clock and load figures of the worker since start (or the last reset). */
  async engineStats(reset = false): Promise<EngineStats> {
    this.alive();
    return this.request<EngineStats>({ op: 'engine-stats', req: 0, reset });
  }

  /** Releases every endpoint (RTCP BYE), stops the clock and ends the worker. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    if (this.dead === null) {
      // The worker sends BYEs and closes its sockets; one that does not answer in time (wedged
      // under overload) is terminated all the same, which closes its sockets too.
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          this.request<void>({ op: 'stop', req: 0 }),
          new Promise<void>((resolve) => { timer = setTimeout(resolve, STOP_TIMEOUT_MS); }),
        ]);
      } catch {
        /* the worker died: nothing left to close */
      } finally {
        clearTimeout(timer);
      }
    }
    this.stopped = true;
    this.ids.clear();
    await this.worker.terminate();
    this.failPending(new Error('media engine stopped'));
  }

  // -------------------------------------------------------------------------------------------

  private request<T>(cmd: Extract<Command, { req: number }>): Promise<T> {
    const req = this.nextReq++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(req, { resolve: resolve as (v: never) => void, reject });
      this.send({ ...cmd, req });
    });
  }

  /**
   * Commands are batched into one postMessage per turn of the event loop: a call set-up issues
   * several (configure, conference, allocate) and each postMessage costs tens of µs here. The
   * flush runs after the current I/O callback, so the SIP message being handled leaves first.
   */
  private send(cmd: Command): void {
    this.outbox.push(cmd);
    if (this.outbox.length === 1) setImmediate(this.flush);
  }

  private readonly outbox: Command[] = [];

  private readonly flush = (): void => {
    if (!this.outbox.length) return;
    const batch = this.outbox.splice(0);
    this.worker.postMessage(batch.length === 1 ? batch[0] : batch);
  };

  private settle(req: number, value: unknown, err?: Error): void {
    const p = this.pending.get(req);
    if (!p) return;
    this.pending.delete(req);
    if (err) p.reject(err);
    else p.resolve(value as never);
  }

  private onReply(msg: Reply): void {
    switch (msg.op) {
      case 'allocated':
        this.ids.add(msg.id);
        this.settle(msg.req, { id: msg.id, address: msg.address, port: msg.port } satisfies EndpointInfo);
        break;
      case 'allocate-failed':
        this.settle(msg.req, null, msg.exhausted ? new PortsExhaustedError(msg.message) : new Error(msg.message));
        break;
      case 'stats':
        this.settle(msg.req, msg.stats);
        break;
      case 'engine-stats':
        this.settle(msg.req, msg.stats);
        break;
      case 'stopped':
        this.settle(msg.req, undefined);
        break;
      case 'event':
        this.emit('event', msg.event satisfies MediaEvent);
        break;
      case 'error': {
        const err = new Error(msg.message) as Error & { endpointId?: string };
        if (msg.id !== undefined) err.endpointId = msg.id;
        if (this.listenerCount('error') > 0) this.emit('error', err);
        break;
      }
      case 'released':
      case 'ready':
      case 'fatal':
        break;
    }
  }

  private onDeath(err: Error): void {
    if (this.dead !== null) return;
    this.dead = err;
    this.ids.clear();
    this.failPending(err);
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  private failPending(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private alive(): void {
    if (this.stopped) throw new Error('media engine stopped');
    if (this.dead !== null) throw new Error(`media engine failed: ${this.dead.message}`);
  }

  private known(id: string): void {
    this.alive();
    if (!this.ids.has(id)) throw new Error(`unknown media endpoint ${id}`);
  }
}

function validateMedia(m: EndpointMedia): void {
  if (m.codec !== 'PCMU' && m.codec !== 'PCMA') throw new RangeError(`unsupported codec ${String(m.codec)}`);
  if (!Number.isInteger(m.payloadType) || m.payloadType < 0 || m.payloadType > 127) throw new RangeError(`bad payload type ${m.payloadType}`);
  if (m.telephoneEvent !== null && (!Number.isInteger(m.telephoneEvent) || m.telephoneEvent < 0 || m.telephoneEvent > 127 || m.telephoneEvent === m.payloadType)) {
    throw new RangeError(`bad telephone-event payload type ${m.telephoneEvent}`);
  }
  if (!Number.isInteger(m.ptimeMs) || m.ptimeMs < 10 || m.ptimeMs > 60 || m.ptimeMs % 10 !== 0) throw new RangeError(`unsupported ptime ${m.ptimeMs} (10–60 ms in steps of 10)`);
  if (!DIRECTIONS.has(m.direction)) throw new RangeError(`bad direction ${String(m.direction)}`);
  if (m.remote !== null) {
    if (isIP(m.remote.address) === 0) throw new RangeError(`remote address "${m.remote.address}" is not an IP address`);
    for (const p of [m.remote.port, m.remote.rtcpPort]) {
      if (!Number.isInteger(p) || p < 1 || p > 65535) throw new RangeError(`bad remote port ${p}`);
    }
  }
  parseNetworks(m.latchNetworks);
}
