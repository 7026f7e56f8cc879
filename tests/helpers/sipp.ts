// Run SIPp (3.6.1, /usr/bin/sipp) as a SIP peer in tests: the trunk (UAC), the call-taker
// platform and the region targets (UAS). Scenarios live in tests/scenarios (see README.md there).
//
//   const ct = startSipp(t, { scenario: 'calltaker-answer.xml' });      // UAS on a free port
//   await ct.ready;                                                     // it is listening
//   const trunk = await runSipp(t, { scenario: 'trunk-call.xml', remote: `127.0.0.1:${bridgePort}` });
//   t.equal(trunk.successful, 1, trunk.errors);
//   const r = await ct.done; t.equal(r.failed, 0, r.errors);
//
// Every process is started with -timeout/-timeout_error so it always ends on its own, is killed
// by t.teardown (SIGTERM, SIGKILL after 1 s), and by a process 'exit' hook as a last resort.
// Traces (-trace_err, -trace_msg, -trace_stat, -trace_logs) go to a fs.mkdtempSync directory
// that is removed once read, unless KEEP_SIPP_TRACES=1 (then its path is printed) or
// opts.traceDir was given.
import { trackChild } from './children.js';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePortSync } from './ports.js';

export const SIPP_BIN = process.env['SIPP_BIN'] ?? '/usr/bin/sipp';
export const SCENARIO_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'scenarios');

/**
 * Defaults for the `-key` parameters the scenarios use (all passed on every run; SIPp ignores
 * keys a scenario does not use, and fails to load a scenario that uses an unknown one).
 * SIPp does not expand keywords inside <pause milliseconds="...">, so the scenarios turn these
 * into variables (assignstr + todouble) and use <pause variable="..."/>: values are milliseconds.
 */
export const DEFAULT_KEYS: Readonly<Record<string, string | number>> = {
  /** trunk: how long the answered call is held before the trunk sends BYE. */
  hold_ms: 500,
  /** UAS: delay between its 180 and its 200. */
  answer_ms: 0,
  /** UAS (…-answer-bye, …-answer-then-bye): how long the answered call lasts before the UAS hangs up. */
  bye_ms: 500,
  /** trunk-reinvite / calltaker-reinvite / calltaker-info-*: wait after the ACK before acting. */
  pause_ms: 300,
  /** session timer scenarios: wait after the ACK before the refreshing re-INVITE. */
  refresh: 2000,
  /** region-no-1xx: how long the UAS stays silent before it finally sends 180. */
  silence_ms: 3000,
  /** UAS (and trunk-wait-bye): how long a finished call is kept to re-answer a retransmitted BYE. */
  linger_ms: 0,
  /** calltaker-info-*: the two digits sent by INFO (default: the conference-in code *1). */
  dtmf1: '*',
  dtmf2: '1',
  /** region-401: the credentials the second INVITE's Authorization must verify against. */
  auth_user: 'amk-bridge',
  auth_pass: 'secret',
};

export type SippTransport = 'u1' | 't1';

export interface SippOptions {
  /** Scenario file name in tests/scenarios (or an absolute path). */
  scenario: string;
  /** host:port of the peer; a UAC scenario needs it, a UAS has none. */
  remote?: string;
  /** Local SIP port (-p); a free one is picked when absent. */
  localPort?: number;
  /** Local address (-i), default 127.0.0.1. */
  localIp?: string;
  /** -t: u1 (UDP, default) or t1 (one TCP connection). */
  transport?: SippTransport;
  /** -m: number of calls before SIPp exits (default 1). */
  calls?: number;
  /** -r: calls per second (SIPp default 10). */
  rate?: number;
  /** -rate_max. */
  rateMax?: number;
  /** -key name value, merged over DEFAULT_KEYS. */
  keys?: Record<string, string | number>;
  /** -s: user part of the request URI (default 112). */
  service?: string;
  /** -lost: percentage of messages SIPp drops (on send and receive) to exercise retransmission. */
  lost?: number;
  /** -timeout with -timeout_error: SIPp fails and exits after this many seconds (default 15). */
  timeoutS?: number;
  /** More command line arguments, appended last. */
  extra?: string[];
  /** Write the traces here (kept afterwards) instead of a temporary directory. */
  traceDir?: string;
}

export interface SippResult {
  /** Exit code: 0 all calls successful, 1 at least one failed, 97 exit on internal command, 99
   *  normal exit without calls processed, 255 fatal error (also -timeout_error), 254 bind error;
   *  null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** SuccessfulCall(C) / FailedCall(C) from the final -trace_stat line. */
  successful: number;
  failed: number;
  /** Calls still running when SIPp stopped (CurrentCall): non-zero after a timeout or a kill. */
  running: number;
  /** The global -timeout expired (the error log says "timed out"). */
  timedOut: boolean;
  stdout: string;
  stderr: string;
  /** The -trace_err log, one event per line, without the "receive timeout ... jumping to label"
   *  events that the scenarios' timed waits produce on purpose (SIPp writes why calls failed here). */
  errors: string;
  /** Contents of the -trace_msg log (every message sent and received). */
  messages: string;
  /** Contents of the -trace_logs log (<log> actions in the scenario). */
  logs: string;
  /** Where the traces were (deleted after reading unless kept). */
  traceDir: string;
  /** The command that was run, for messages. */
  command: string;
}

export interface SippHandle {
  /** Local SIP port SIPp binds (UDP and/or TCP per transport). */
  port: number;
  pid: number | undefined;
  /** Resolves once SIPp has bound its SIP port (listening, for TCP); rejects if it exits first
   *  with an error, or after 5 s. Useful for a UAS before the call is placed. */
  ready: Promise<void>;
  /** Resolves when SIPp has exited and its traces are read. Never rejects. */
  done: Promise<SippResult>;
  /** SIGTERM now, SIGKILL if still alive after 1 s. Safe to call more than once. */
  kill(): void;
}

/** Something with tap's t.teardown (a tap Test). */
export interface Teardownable {
  teardown(fn: () => unknown): void;
}


const keepTraces = (): boolean => process.env['KEEP_SIPP_TRACES'] === '1';

/** SIPp events that are control flow, not errors: a <recv timeout=... ontimeout=...> that fired. */
const EXPECTED_EVENT = /receive timeout on message .*jumping to label/;
const EVENT_START = /(?=\d{4}-\d{2}-\d{2}\t\d{2}:\d{2}:\d{2}\.\d+\t\d+\.\d+: )/;

/** The events of a -trace_err log (SIPp concatenates them without newlines), expected ones dropped. */
export function parseErrorLog(text: string): string[] {
  return text.replace(/^The following events occurred:\s*/, '').split(EVENT_START)
    .map((e) => e.trim()).filter((e) => e.length > 0 && !EXPECTED_EVENT.test(e));
}

function cleanStderr(text: string): string {
  return text.split('\n').filter((l) => !/^Resolving remote host |jumping to label|^There were more errors/.test(l.trim()))
    .join('\n').trim();
}

function readText(file: string): string {
  try { return readFileSync(file, 'utf8'); } catch { return ''; }
}

/** The last data line of a -trace_stat CSV, as column name → value. */
export function parseStatCsv(text: string): Record<string, string> {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  const header = lines[0]?.split(';') ?? [];
  const last = lines.length > 1 ? lines[lines.length - 1]!.split(';') : [];
  const out: Record<string, string> = {};
  header.forEach((name, i) => { if (name) out[name] = last[i] ?? ''; });
  return out;
}

function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  let fds: string[];
  try { fds = readdirSync(`/proc/${pid}/fd`); } catch { return out; }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]!);
    } catch { /* fd closed meanwhile */ }
  }
  return out;
}

/** Does process `pid` own a socket bound to local `port` (UDP) / listening on it (TCP)? */
export function processHasPort(pid: number, port: number, transport: SippTransport): boolean {
  const inodes = socketInodes(pid);
  if (inodes.size === 0) return false;
  const files = transport === 't1' ? ['tcp', 'tcp6'] : ['udp', 'udp6'];
  for (const file of files) {
    const text = readText(`/proc/net/${file}`);
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const local = cols[1];
      const state = cols[3];
      const inode = cols[9];
      if (!local || !inode) continue;
      if (parseInt(local.split(':').pop() ?? '', 16) !== port) continue;
      if (transport === 't1' && state !== '0A') continue; // TCP LISTEN
      if (inodes.has(inode)) return true;
    }
  }
  return false;
}

function scenarioPath(scenario: string): string {
  return isAbsolute(scenario) ? scenario : join(SCENARIO_DIR, scenario);
}

/** Start SIPp. With `t`, its teardown kills the process and waits for it. */
export function startSipp(t: Teardownable | null, opts: SippOptions): SippHandle {
  const transport: SippTransport = opts.transport ?? 'u1';
  const port = opts.localPort ?? freePortSync();
  const localIp = opts.localIp ?? '127.0.0.1';
  const timeoutS = opts.timeoutS ?? 15;
  const sf = scenarioPath(opts.scenario);
  if (!existsSync(sf)) throw new Error(`startSipp: no scenario ${sf}`);

  const userDir = opts.traceDir !== undefined;
  let dir: string;
  if (opts.traceDir !== undefined) {
    mkdirSync(opts.traceDir, { recursive: true });
    dir = opts.traceDir;
  } else {
    dir = mkdtempSync(join(tmpdir(), 'sipp-'));
  }
  const base = opts.scenario.replace(/^.*\//, '').replace(/\.xml$/, '') + `-${port}`;
  const files = {
    stat: join(dir, `${base}-stat.csv`),
    err: join(dir, `${base}-errors.log`),
    msg: join(dir, `${base}-messages.log`),
    logs: join(dir, `${base}-logs.log`),
  };

  const keys = { ...DEFAULT_KEYS, ...(opts.keys ?? {}) };
  const args: string[] = ['-sf', sf];
  if (opts.remote) args.push(opts.remote);
  args.push(
    '-i', localIp, '-p', String(port), '-t', transport,
    '-m', String(opts.calls ?? 1),
    '-s', opts.service ?? '112',
    '-nostdin',
    '-timeout', `${timeoutS}s`, '-timeout_error',
    '-trace_stat', '-stf', files.stat,
    '-trace_err', '-error_file', files.err,
    '-trace_msg', '-message_file', files.msg,
    '-trace_logs', '-log_file', files.logs,
  );
  // SIPp 3.6.1 fails every call on a TCP connection the peer closes, even one that has ended
  // and only lingers in its <timewait>: a SIPp UAS would fail whenever the bridge (or the UAC)
  // closes the connection after the call. Calls then end by their scenario or by -timeout.
  if (transport === 't1') args.push('-reconnect_close', 'false');
  if (opts.rate !== undefined) args.push('-r', String(opts.rate));
  if (opts.rateMax !== undefined) args.push('-rate_max', String(opts.rateMax));
  if (opts.lost !== undefined) args.push('-lost', String(opts.lost));
  for (const [k, v] of Object.entries(keys)) args.push('-key', k, String(v));
  if (opts.extra) args.push(...opts.extra);
  const command = [SIPP_BIN, ...args].map((a) => (/[\s"'$]/.test(a) ? JSON.stringify(a) : a)).join(' ');

  const child = spawn(SIPP_BIN, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  const MAX = 1 << 20;
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => { if (stdout.length < MAX) stdout += s; });
  child.stderr?.setEncoding('utf8').on('data', (s: string) => { if (stderr.length < MAX) stderr += s; });

  let exited = false;
  let killTimer: NodeJS.Timeout | undefined;
  // Hard stop in case SIPp ignores its own -timeout (it should not with -timeout_error).
  const watchdog = setTimeout(() => kill(), (timeoutS + 5) * 1000);
  watchdog.unref();

  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.once('error', (err) => { stderr += `\nspawn error: ${err.message}`; exited = true; res({ code: null, signal: null }); });
    child.once('exit', (code, signal) => { exited = true; res({ code, signal }); });
  }).then((x) => {
    clearTimeout(watchdog);
    if (killTimer) clearTimeout(killTimer);
    return x;
  });

  const done: Promise<SippResult> = exit.then(({ code, signal }) => {
    const stat = parseStatCsv(readText(files.stat));
    const num = (k: string): number => Number(stat[k] ?? 0) || 0;
    const rawErrors = readText(files.err);
    const errors = parseErrorLog(rawErrors).join('\n');
    const result: SippResult = {
      code, signal,
      successful: num('SuccessfulCall(C)'),
      failed: num('FailedCall(C)'),
      running: num('CurrentCall'),
      timedOut: /timed out after/.test(rawErrors),
      stdout, stderr: cleanStderr(stderr), errors,
      messages: readText(files.msg),
      logs: readText(files.logs),
      traceDir: dir,
      command,
    };
    if (!userDir) {
      if (keepTraces()) process.stderr.write(`# SIPp traces kept in ${dir}\n`);
      else rmSync(dir, { recursive: true, force: true });
    }
    return result;
  });

  const ready = new Promise<void>((res, rej) => {
    const started = Date.now();
    const poll = (): void => {
      if (exited) {
        void done.then((r) => {
          if (r.code === 0 || r.code === 1) res();
          else rej(new Error(`SIPp ${opts.scenario} exited (code ${r.code}, signal ${r.signal}) before it was ready:\n${r.errors}${r.stderr}`));
        });
        return;
      }
      if (child.pid !== undefined && processHasPort(child.pid, port, transport)) { res(); return; }
      if (Date.now() - started > 5000) { rej(new Error(`SIPp ${opts.scenario} did not bind port ${port} within 5 s`)); return; }
      setTimeout(poll, 10);
    };
    poll();
  });
  ready.catch(() => { /* reported to whoever awaits it */ });

  function kill(): void {
    if (exited || child.exitCode !== null || child.signalCode !== null) return;
    try { child.kill('SIGTERM'); } catch { /* gone */ }
    if (!killTimer) {
      killTimer = setTimeout(() => {
        if (!exited) { try { child.kill('SIGKILL'); } catch { /* gone */ } }
      }, 1000);
      killTimer.unref();
    }
  }

  t?.teardown(async () => {
    kill();
    await done;
  });

  return { port, pid: child.pid, ready, done, kill };
}

/** Start SIPp and wait for it to finish. */
export function runSipp(t: Teardownable | null, opts: SippOptions): Promise<SippResult> {
  return startSipp(t, opts).done;
}

/** One-line summary of a result for assertion messages. */
export function describeSipp(r: SippResult): string {
  return `code=${r.code} signal=${r.signal} ok=${r.successful} failed=${r.failed} running=${r.running}`
    + `${r.timedOut ? ' TIMED OUT' : ''}${r.errors ? `\n${r.errors}` : ''}${r.stderr ? `\nstderr: ${r.stderr}` : ''}`;
}

/** One SIP message from a -trace_msg log. */
export interface SippMessage {
  direction: 'sent' | 'received';
  /** UDP, TCP, … as SIPp logs it. */
  transport: string;
  /** SIPp's timestamp line (local time). */
  time: string;
  /** The message as on the wire (CRLF line ends). */
  text: string;
  /** Request line or status line. */
  firstLine: string;
}

/** The messages of a -trace_msg log (SippResult.messages), in order. */
export function parseMessages(log: string): SippMessage[] {
  const out: SippMessage[] = [];
  const buf = Buffer.from(log, 'utf8');
  // Not anchored at a line start: SIPp glues its "... lost (recv)." notes to the next separator.
  const head = /-{20,} (.+)\n(\w+) message (sent|received) (?:\((\d+) bytes\)|\[(\d+)\] bytes) ?:\n\n/g;
  for (let m = head.exec(log); m; m = head.exec(log)) {
    const bytes = Number(m[4] ?? m[5]);
    const start = Buffer.byteLength(log.slice(0, m.index + m[0].length), 'utf8');
    const text = buf.subarray(start, start + bytes).toString('utf8');
    const eol = text.indexOf('\r\n');
    out.push({
      direction: m[3] as 'sent' | 'received', transport: m[2]!, time: m[1]!,
      text, firstLine: eol >= 0 ? text.slice(0, eol) : text,
    });
  }
  return out;
}

/** How many messages SIPp dropped on purpose (-lost), sending or receiving, per a -trace_msg log. */
export function countLost(log: string): number {
  return (log.match(/message (?:\(retrans\) )?(?:voluntary )?lost \((?:recv|while sending)\)/g) ?? []).length;
}

/** Values of every `name:` header line of a message (name case-insensitive; no compact forms). */
export function headerValues(message: string, name: string): string[] {
  const end = message.indexOf('\r\n\r\n');
  const lines = (end >= 0 ? message.slice(0, end) : message).split('\r\n').slice(1);
  const want = name.toLowerCase();
  const out: string[] = [];
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i > 0 && line.slice(0, i).trim().toLowerCase() === want) out.push(line.slice(i + 1).trim());
  }
  return out;
}

/** The body of a message (after the first empty line). */
export function messageBody(message: string): string {
  const end = message.indexOf('\r\n\r\n');
  return end >= 0 ? message.slice(end + 4) : '';
}
