// sd_notify(3) for the `run` command under systemd (Type=notify): READY=1 once SIP listens and
// the journal is open, RELOADING=1/READY=1 around a SIGHUP reload, STOPPING=1 before the drain,
// STATUS= for `systemctl status`, and WATCHDOG=1 keep-alives.
//
// The watchdog proves only that the event loop is alive: the keep-alive is sent from a timer, and
// the timer firing is the proof. Unhealthy dependencies (AMK endpoints, MQTT, lamps) raise alarms
// and light lamps; they must never make systemd restart the bridge and drop calls in progress.
//
// Without NOTIFY_SOCKET (not started by systemd) every method is a no-op. Sending errors are
// logged once and never thrown: a notify problem must not take the bridge down.
//
// Datagrams go through `unix-dgram` (native, CommonJS). It copies the socket path with strncpy,
// so an abstract socket name ("@name", i.e. a leading NUL) cannot be addressed through it: the
// notifier reports that once and stays silent. systemd itself always hands system services a
// filesystem path (/run/systemd/notify).
import { createRequire } from 'node:module';

interface DgramSocket {
  send(buf: Buffer, offset: number, length: number, path: string, cb: (err?: Error) => void): void;
  on(event: 'error', fn: (err: Error) => void): unknown;
  close(): void;
}
interface UnixDgram {
  createSocket(type: 'unix_dgram'): DgramSocket;
}

/** The part of the logger the notifier uses. */
export interface NotifyLogger {
  warn(obj: object, msg: string): void;
}

export interface NotifierOptions {
  logger?: NotifyLogger;
  /** Our pid (tests). */
  pid?: number;
}

/** The socket address from NOTIFY_SOCKET: "@name" is an abstract name (leading NUL). */
export function notifySocketAddress(value: string): { path: string; abstract: boolean } {
  if (value.startsWith('@')) return { path: `\0${value.slice(1)}`, abstract: true };
  return { path: value, abstract: value.startsWith('\0') };
}

/** The keep-alive interval in ms: half of WATCHDOG_USEC, or null when the watchdog is not for us. */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | null {
  const usec = env.WATCHDOG_USEC;
  if (usec === undefined || usec === '') return null;
  const n = Number(usec);
  if (!Number.isFinite(n) || n <= 0) return null;
  const wpid = env.WATCHDOG_PID;
  if (wpid !== undefined && wpid !== '' && Number(wpid) !== pid) return null;
  return Math.max(1, Math.floor(n / 2 / 1000));
}

let unixDgram: UnixDgram | null | undefined;
function loadUnixDgram(): UnixDgram {
  if (unixDgram === undefined) unixDgram = createRequire(import.meta.url)('unix-dgram') as UnixDgram;
  return unixDgram!;
}

export class SystemdNotifier {
  private socket: DgramSocket | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private errorLogged = false;
  private closed = false;
  private readonly pid: number;
  private readonly logger: NotifyLogger | undefined;

  /** `socketPath` null: a no-op notifier. */
  constructor(
    readonly socketPath: string | null,
    private readonly env: NodeJS.ProcessEnv = {},
    opts: NotifierOptions = {},
  ) {
    this.pid = opts.pid ?? process.pid;
    this.logger = opts.logger;
  }

  /** A notifier for NOTIFY_SOCKET (a no-op one when it is unset). */
  static fromEnv(env: NodeJS.ProcessEnv = process.env, opts: NotifierOptions = {}): SystemdNotifier {
    const value = env.NOTIFY_SOCKET;
    return new SystemdNotifier(value === undefined || value === '' ? null : value, env, opts);
  }

  /** True when there is a notify socket to talk to. */
  get enabled(): boolean {
    return this.socketPath !== null && !this.closed;
  }

  ready(): void {
    this.send('READY=1');
  }

  reloading(): void {
    this.send('RELOADING=1');
  }

  stopping(): void {
    this.send('STOPPING=1');
  }

  /** One line for `systemctl status` (newlines become spaces). */
  status(text: string): void {
    this.send(`STATUS=${text.replace(/[\r\n]+/g, ' ')}`);
  }

  /**
   * WATCHDOG=1 every WATCHDOG_USEC/2 from an unref'd timer, if WATCHDOG_USEC is set and
   * WATCHDOG_PID is unset or ours. The timer firing is the whole health check.
   */
  startWatchdog(): void {
    if (!this.enabled || this.watchdog !== null) return;
    const ms = watchdogIntervalMs(this.env, this.pid);
    if (ms === null) return;
    this.send('WATCHDOG=1');
    this.watchdog = setInterval(() => this.send('WATCHDOG=1'), ms);
    this.watchdog.unref();
  }

  close(): void {
    if (this.watchdog !== null) clearInterval(this.watchdog);
    this.watchdog = null;
    this.closed = true;
    const s = this.socket;
    this.socket = null;
    if (s !== null) {
      try {
        s.close();
      } catch {
        // already closed
      }
    }
  }

  /** Sends one datagram; errors are logged once and swallowed. */
  send(message: string): void {
    if (!this.enabled) return;
    const { path, abstract } = notifySocketAddress(this.socketPath!);
    if (abstract) {
      this.fail(new Error('abstract notify socket names are not supported by the unix-dgram binding'));
      return;
    }
    try {
      if (this.socket === null) {
        const s = loadUnixDgram().createSocket('unix_dgram');
        s.on('error', (err) => this.fail(err));
        this.socket = s;
      }
      const buf = Buffer.from(message, 'utf8');
      this.socket.send(buf, 0, buf.length, path, (err) => {
        if (err) this.fail(err);
      });
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    if (this.errorLogged) return;
    this.errorLogged = true;
    this.logger?.warn({ err, notifySocket: this.socketPath }, 'systemd notify failed; further notify errors are not logged');
  }
}
