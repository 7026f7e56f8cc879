// One serial port with lamp devices on it (relay boards, signal towers): the desired state per
// output, a serialised write queue with per-output coalescing, optional ACK/NAK handling, and
// reopening with backoff (state replayed) when the device disappears. Nothing on the caller's
// path waits for the device: set() records the wish and returns; a background pump writes.

import { read as fsRead } from 'node:fs';
import { SerialPort } from 'serialport';
import type { LampMode, LampPortStatus, LampProfile, OutputKey } from './types.js';

/** Builds the command(s) for one change; `all` is the whole desired state at that moment. */
export type LampRender = (output: OutputKey, mode: LampMode, all: ReadonlyMap<OutputKey, LampMode>) => Buffer[];

export interface LampPortOptions {
  id: string;
  /** Device path: /dev/ttyS*, /dev/ttyUSB*, /dev/ttyACM*, a by-id link or a pty link. */
  path: string;
  profile: LampProfile;
  render: LampRender;
  /** Sent once after every open, before the state is replayed. */
  init?: Buffer | null;
  /** Reopen backoff: initialMs doubling up to maxMs (default 500 / 30000), plus up to 10 % jitter. */
  reopen?: { initialMs: number; maxMs: number };
}

export interface LampPortEvents {
  /** The port opened (first time or after a loss); init and the full state follow. */
  opened(id: string): void;
  /** The port is not usable (first failed open, unplugged, I/O error); once per outage. */
  lost(id: string, error: string): void;
  /** A command was given up after the profile's retries. */
  commandFailed(id: string, command: Buffer, why: 'nak' | 'timeout'): void;
}

export interface LampPortLog {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
  debug(o: object, m?: string): void;
}

/** An open that lasted at least this long restarts the reopen backoff at initialMs. */
const STABLE_OPEN_MS = 10_000;
/** Fraction of the backoff delay added at random, so several ports do not retry in lockstep. */
const JITTER = 0.1;
/**
 * A write whose drain has not completed after this (plus ten times its time on the wire) is
 * taken as a wedged device or adapter: the port is closed and reopened. Generous, because the
 * drain runs on libuv's thread pool, which a busy host may hold up for a while.
 */
const WRITE_STALL_MS = 10_000;
/** Received bytes kept while waiting for an acknowledgement. */
const RX_LIMIT = 256;

type WriteResult = 'ok' | 'lost';
type AckResult = 'ack' | 'nak' | 'timeout' | 'lost';
type SendResult = 'ok' | 'failed' | 'lost';

interface Job {
  output: OutputKey;
  mode: LampMode;
  /** The desired state the commands were rendered from. */
  all: Map<OutputKey, LampMode>;
  commands: Buffer[];
}

interface AckSpec {
  ack: Buffer;
  nak: Buffer;
  timeoutMs: number;
  retries: number;
}

/**
 * Acknowledgement bytes from a profile: hex bytes ("06", "0x06", "06 0D", "060D"); anything
 * else is taken as literal text (e.g. "OK\r").
 */
export function parseAckBytes(text: string): Buffer {
  const tokens = text.trim().split(/[\s,]+/).filter((s) => s !== '');
  const hex = tokens.map((s) => s.replace(/^0x/i, ''));
  if (hex.length > 0 && hex.every((s) => /^(?:[0-9a-f]{2})+$/i.test(s))) return Buffer.from(hex.join(''), 'hex');
  return Buffer.from(text, 'latin1');
}

// --- the serial binding, with hang-ups reported ---

type Binding = typeof SerialPort.binding;
type BindingPort = Awaited<ReturnType<Binding['open']>>;
type OpenOptions = Parameters<Binding['open']>[0];

/** What the Unix bindings (Linux, macOS) expose of an open port. */
export interface UnixPortInternals {
  readonly isOpen: boolean;
  fd: number | null;
  poller?: { once(event: 'readable', cb: (err: Error | null) => void): unknown };
}

function canceled(message: string): Error {
  return Object.assign(new Error(message), { canceled: true });
}

function readOnce(fd: number, buffer: Buffer, offset: number, length: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fsRead(fd, buffer, offset, length, null, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/**
 * A Unix read that treats end of file as a disconnect. The port is opened with VMIN=1 and
 * O_NONBLOCK, so "no data" is EAGAIN and 0 bytes only happens on a hung-up tty (USB adapter
 * unplugged, pty master gone). bindings-cpp 13 retries such a read at once, forever
 * (serialport/bindings-cpp#162): a CPU core spins and the loss is never reported.
 * Exported for its own test.
 */
export async function readUntilHangup(
  port: UnixPortInternals,
  buffer: Buffer,
  offset: number,
  length: number,
): Promise<{ buffer: Buffer; bytesRead: number }> {
  for (;;) {
    if (!port.isOpen || port.fd === null) throw canceled('Port is not open');
    try {
      const bytesRead = await readOnce(port.fd, buffer, offset, length);
      if (bytesRead === 0) throw Object.assign(new Error('device hung up (end of file)'), { disconnect: true });
      return { buffer, bytesRead };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK' && code !== 'EINTR') throw err;
      if (!port.isOpen || !port.poller) throw canceled('Port is not open');
      const poller = port.poller;
      await new Promise<void>((resolve, reject) => poller.once('readable', (e) => (e ? reject(e) : resolve())));
    }
  }
}

/** The platform's binding, with hang-ups on Unix reported as disconnects (see above). */
const hangupSafeBinding = {
  list: (): ReturnType<Binding['list']> => SerialPort.binding.list(),
  async open(options: OpenOptions): Promise<BindingPort> {
    const port = await (SerialPort.binding.open as (o: OpenOptions) => Promise<BindingPort>)(options);
    const unix = port as unknown as UnixPortInternals;
    if (typeof unix.fd === 'number' && unix.poller) {
      port.read = (buffer: Buffer, offset: number, length: number) => readUntilHangup(unix, buffer, offset, length);
    }
    return port;
  },
};

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

export class LampPort {
  readonly id: string;
  readonly path: string;
  private readonly profile: LampProfile;
  private readonly render: LampRender;
  private readonly init: Buffer | null;
  private readonly reopenMs: { initialMs: number; maxMs: number };
  private readonly ack: AckSpec | null;

  /** What each output should show (insertion order = replay order). */
  private readonly wanted = new Map<OutputKey, LampMode>();
  /** What the device was last told successfully (cleared on open and after a failed command). */
  private readonly written = new Map<OutputKey, LampMode>();
  /** Outputs whose change still has to be written; at most one entry per output. */
  private readonly pending = new Set<OutputKey>();
  private initPending = false;

  private port: SerialPort | null = null;
  /** Bumped on every open, loss and stop: work started under an older session is abandoned. */
  private session = 0;
  private opening: Promise<void> | null = null;
  private started = false;
  private stopped = false;
  private stopping: Promise<void> | null = null;
  private reopenTimer: NodeJS.Timeout | null = null;
  private attempt = 0;
  private openedAt = 0;
  private lostReported = false;

  private busy = false;
  private kickScheduled = false;
  private inFlight: Job | null = null;
  private inFlightRemaining = 0;
  /** Settles the write or ack wait in progress (with 'lost' when the port goes away). */
  private abortWait: (() => void) | null = null;
  private expectingAck = false;
  private rx: Buffer = Buffer.alloc(0);
  private onRx: (() => void) | null = null;

  private openState = false;
  private since = Date.now();
  private lastError: string | null = null;
  private failedCommands = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    opts: LampPortOptions,
    private readonly events: LampPortEvents,
    private readonly log: LampPortLog,
  ) {
    this.id = opts.id;
    this.path = opts.path;
    this.profile = opts.profile;
    this.render = opts.render;
    this.init = opts.init ?? null;
    const initialMs = Math.max(1, opts.reopen?.initialMs ?? 500);
    this.reopenMs = { initialMs, maxMs: Math.max(initialMs, opts.reopen?.maxMs ?? 30_000) };
    const a = opts.profile.ack;
    this.ack = a
      ? { ack: parseAckBytes(a.ack), nak: parseAckBytes(a.nak), timeoutMs: Math.max(1, a.timeoutMs), retries: Math.max(0, Math.floor(a.retries)) }
      : null;
  }

  /** Opens in the background; never throws; retries with backoff while the device is missing. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.tryOpen();
  }

  /** Records the desired state of one output; the change is written in the background. */
  set(output: OutputKey, mode: LampMode): void {
    this.wanted.set(output, mode);
    if (this.stopped || !this.port) return; // replayed in full when the port opens
    if (this.written.get(output) !== mode || this.inFlight) this.pending.add(output);
    else this.pending.delete(output);
    if (this.pending.size > 0) this.kick();
    else this.checkIdle();
  }

  desired(): ReadonlyMap<OutputKey, LampMode> {
    return this.wanted;
  }

  status(): LampPortStatus {
    const queued = this.port ? this.pending.size + this.inFlightRemaining + (this.initPending ? 1 : 0) : 0;
    return {
      id: this.id,
      path: this.path,
      open: this.openState,
      since: this.since,
      lastError: this.lastError,
      queued,
      failedCommands: this.failedCommands,
    };
  }

  /** Closes the port and stops reopening; no events afterwards. */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopped = true;
    this.stopping = (async () => {
      if (this.reopenTimer) clearTimeout(this.reopenTimer);
      this.reopenTimer = null;
      const port = this.port;
      this.dropSession();
      if (this.openState) {
        this.openState = false;
        this.since = Date.now();
      }
      if (port?.isOpen) await closeQuietly(port);
      if (this.opening) await this.opening;
      this.checkIdle();
    })();
    return this.stopping;
  }

  /** Resolves when the queue is empty and nothing is in flight (for tests and lamp-test). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  // --- opening and losing the port ---

  private tryOpen(): void {
    this.reopenTimer = null;
    if (this.stopped) return;
    let port: SerialPort;
    try {
      const options = {
        path: this.path,
        baudRate: this.profile.serial.baudRate,
        dataBits: this.profile.serial.dataBits,
        parity: this.profile.serial.parity,
        stopBits: this.profile.serial.stopBits,
        autoOpen: false,
        binding: hangupSafeBinding, // SerialPort's options override its default binding
      };
      port = new SerialPort(options as ConstructorParameters<typeof SerialPort>[0]);
    } catch (err) {
      this.openFailed(errorText(err));
      return;
    }
    // Errors of a port we no longer use must not become uncaught 'error' events.
    port.on('error', (err) => this.onLost(port, errorText(err)));
    this.opening = new Promise<void>((resolve) => {
      port.open((err) => {
        if (this.stopped) {
          // stop() waits for this: a port that opened too late is closed before it returns.
          const done = (): void => {
            this.opening = null;
            resolve();
          };
          if (!err) void closeQuietly(port).then(done);
          else done();
          return;
        }
        this.opening = null;
        if (err) this.openFailed(errorText(err));
        else this.onOpened(port);
        resolve();
      });
    });
  }

  private onOpened(port: SerialPort): void {
    this.session++;
    this.port = port;
    this.openState = true;
    this.since = Date.now();
    this.openedAt = this.since;
    this.lostReported = false;
    port.on('data', (data: Buffer) => this.onData(port, data));
    port.on('close', (err: Error | null) => this.onLost(port, err ? errorText(err) : 'port closed'));
    port.on('end', () => this.onLost(port, 'end of stream'));
    this.log.info({ port: this.id, path: this.path, attempt: this.attempt }, 'lamp port opened');
    this.emit(() => this.events.opened(this.id));
    if (this.port !== port) return; // an event handler stopped us
    // Replay: the device may have been replugged or power-cycled; show the whole truth again.
    this.written.clear();
    this.pending.clear();
    for (const output of this.wanted.keys()) this.pending.add(output);
    this.initPending = this.init !== null;
    this.kick();
  }

  private openFailed(why: string): void {
    this.lastError = why;
    if (!this.lostReported) {
      this.lostReported = true;
      this.log.warn({ port: this.id, path: this.path, err: why }, 'lamp port cannot be opened; retrying with backoff');
      this.emit(() => this.events.lost(this.id, why));
    } else {
      this.log.debug({ port: this.id, path: this.path, err: why, attempt: this.attempt }, 'lamp port still missing');
    }
    this.scheduleReopen();
    this.checkIdle();
  }

  private onLost(port: SerialPort, why: string): void {
    if (this.port !== port || this.stopped) return; // an old port, or our own close
    this.dropSession();
    this.openState = false;
    this.since = Date.now();
    this.lastError = why;
    if (port.isOpen) void closeQuietly(port);
    if (this.since - this.openedAt >= STABLE_OPEN_MS) this.attempt = 0;
    if (!this.lostReported) {
      this.lostReported = true;
      this.log.warn({ port: this.id, path: this.path, err: why }, 'lamp port lost; reopening with backoff');
      this.emit(() => this.events.lost(this.id, why));
    }
    this.scheduleReopen();
    this.checkIdle();
  }

  /** Forgets the current port: pending work is abandoned (the next open replays everything). */
  private dropSession(): void {
    this.session++;
    this.port = null;
    this.pending.clear();
    this.initPending = false;
    this.expectingAck = false;
    this.rx = Buffer.alloc(0);
    const abort = this.abortWait;
    this.abortWait = null;
    abort?.();
  }

  private scheduleReopen(): void {
    if (this.stopped || this.reopenTimer) return;
    const base = Math.min(this.reopenMs.maxMs, this.reopenMs.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    const delay = Math.round(base * (1 + JITTER * Math.random()));
    this.reopenTimer = setTimeout(() => this.tryOpen(), delay);
  }

  // --- the write pump ---

  private kick(): void {
    if (this.kickScheduled || this.busy) return;
    this.kickScheduled = true;
    // Never on the caller's stack: changes made in the same tick are coalesced, too.
    setImmediate(() => {
      this.kickScheduled = false;
      this.pump().catch((err: unknown) => {
        this.log.warn({ port: this.id, err: errorText(err) }, 'lamp port write loop failed');
      });
    });
  }

  private async pump(): Promise<void> {
    if (this.busy || !this.port || this.stopped) {
      this.checkIdle();
      return;
    }
    this.busy = true;
    const session = this.session;
    try {
      while (session === this.session) {
        if (this.initPending && this.init) {
          this.initPending = false;
          if ((await this.send(session, this.init)) === 'lost') return;
          continue;
        }
        const job = this.nextJob();
        if (!job) break;
        this.inFlight = job;
        let ok = true;
        for (let i = 0; i < job.commands.length; i++) {
          this.inFlightRemaining = job.commands.length - i - 1;
          const result = await this.send(session, job.commands[i]!);
          if (result === 'lost') return;
          if (result === 'failed') ok = false;
        }
        if (this.profile.kind === 'tower') {
          // One tower command carries every colour.
          this.written.clear();
          if (ok) for (const [k, v] of job.all) this.written.set(k, v);
        } else if (ok) {
          this.written.set(job.output, job.mode);
        } else {
          this.written.delete(job.output); // unknown: the next set() writes it again
        }
        this.inFlight = null;
        this.inFlightRemaining = 0;
      }
    } finally {
      this.busy = false;
      this.inFlight = null;
      this.inFlightRemaining = 0;
      // The port may have been lost and reopened while the last await was settling.
      if (this.port && session !== this.session && (this.pending.size > 0 || this.initPending)) this.kick();
      this.checkIdle();
    }
  }

  private nextJob(): Job | null {
    for (const output of this.pending) {
      this.pending.delete(output);
      const mode = this.wanted.get(output);
      if (mode === undefined || this.written.get(output) === mode) continue;
      const all = new Map(this.wanted);
      let commands: Buffer[];
      try {
        commands = this.render(output, mode, all);
      } catch (err) {
        this.log.warn({ port: this.id, output, mode, err: errorText(err) }, 'lamp command cannot be built');
        continue;
      }
      if (this.profile.kind === 'tower') this.pending.clear(); // covered by this command
      return { output, mode, all, commands };
    }
    return null;
  }

  /** Writes one command; with ack, waits for it and retries on nak/timeout. */
  private async send(session: number, command: Buffer): Promise<SendResult> {
    const ack = this.ack;
    const attempts = ack ? 1 + ack.retries : 1;
    let why: 'nak' | 'timeout' = 'timeout';
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) {
        this.log.debug({ port: this.id, command: command.toString('hex'), why, attempt }, 'lamp command re-sent');
      }
      this.rx = Buffer.alloc(0);
      this.expectingAck = ack !== null;
      if ((await this.writeOne(session, command)) === 'lost') return 'lost';
      if (!ack) return 'ok';
      const result = await this.waitAck(session, ack);
      this.expectingAck = false;
      if (result === 'ack') return 'ok';
      if (result === 'lost') return 'lost';
      why = result;
    }
    this.failedCommands++;
    this.log.warn({ port: this.id, command: command.toString('hex'), why, attempts }, 'lamp command given up');
    this.emit(() => this.events.commandFailed(this.id, command, why));
    return 'failed';
  }

  /** Resolves when the bytes have left (drain); a write that hangs is treated as a lost port. */
  private writeOne(session: number, command: Buffer): Promise<WriteResult> {
    const port = this.port;
    if (!port || session !== this.session) return Promise.resolve('lost');
    const s = this.profile.serial;
    const bitsPerByte = 1 + s.dataBits + (s.parity === 'none' ? 0 : 1) + s.stopBits;
    const limitMs = WRITE_STALL_MS + Math.ceil(((command.length * bitsPerByte) / s.baudRate) * 1000) * 10;
    return new Promise<WriteResult>((resolve) => {
      let done = false;
      const finish = (r: WriteResult): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (this.abortWait === abort) this.abortWait = null;
        resolve(r);
      };
      const abort = (): void => finish('lost');
      this.abortWait = abort;
      const timer = setTimeout(() => this.onLost(port, `write did not complete within ${limitMs} ms`), limitMs);
      port.write(command, (err) => {
        if (err) this.onLost(port, errorText(err));
      });
      port.drain((err) => {
        if (err) this.onLost(port, errorText(err));
        else if (this.port === port) finish('ok');
        finish('lost');
      });
    });
  }

  private waitAck(session: number, ack: AckSpec): Promise<AckResult> {
    if (!this.port || session !== this.session) return Promise.resolve('lost');
    return new Promise<AckResult>((resolve) => {
      let done = false;
      const finish = (r: AckResult): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (this.abortWait === abort) this.abortWait = null;
        if (this.onRx === check) this.onRx = null;
        resolve(r);
      };
      const abort = (): void => finish('lost');
      const check = (): void => {
        const a = this.rx.indexOf(ack.ack);
        const n = this.rx.indexOf(ack.nak);
        if (a >= 0 && (n < 0 || a <= n)) finish('ack');
        else if (n >= 0) finish('nak');
      };
      this.abortWait = abort;
      this.onRx = check;
      const timer = setTimeout(() => finish('timeout'), ack.timeoutMs);
      check(); // the answer may have arrived before the drain callback
    });
  }

  private onData(port: SerialPort, data: Buffer): void {
    if (this.port !== port) return;
    if (!this.expectingAck) {
      this.log.debug({ port: this.id, data: data.toString('hex') }, 'lamp port: unexpected bytes ignored');
      return;
    }
    const rx = Buffer.concat([this.rx, data]);
    this.rx = rx.length > RX_LIMIT ? rx.subarray(rx.length - RX_LIMIT) : rx;
    this.onRx?.();
  }

  // --- helpers ---

  private isIdle(): boolean {
    if (this.busy || this.kickScheduled || this.opening) return false;
    return !this.port || (this.pending.size === 0 && !this.initPending);
  }

  private checkIdle(): void {
    if (this.idleWaiters.length === 0 || !this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Runs an event handler; a throwing handler must not break the port. */
  private emit(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.warn({ port: this.id, err: errorText(err) }, 'lamp port event handler failed');
    }
  }
}

function closeQuietly(port: SerialPort): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!port.isOpen) return resolve();
    port.close(() => resolve());
  });
}
