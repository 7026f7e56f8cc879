// Run baresip (Debian baresip-core 1.0.0, /usr/bin/baresip) as a headless SIP peer in media
// tests: it plays a WAV file as its microphone and records what it hears.
//
//   const b = await startBaresip(t, { name: 'taker', answer: true, tone: tone600, seconds: 8, record: true, quitAfterCall: true });
//   const a = await startBaresip(t, { name: 'citizen', dial: b.uri, tone: tone1000_3s, seconds: 8, quitAfterCall: true });
//   const r = await b.done;                  // the call ended (A's 3 s tone ran out), B quit
//   const { samples, sampleRate } = readWav(b.recordings()[0]!);   // read before teardown
//
// What was found by trying (see also /work/shared/STACK.md):
// - Audio: `audio_source aufile,FILE` plays FILE once; when it ends baresip hangs the call up
//   (menu: "audio error (0,end of file)"), on the answering side too. So make tones at least
//   as long as the call must last; the default source is silence as long as `seconds`.
//   `audio_player aubridge,x` plays nowhere; the `sndfile` audio filter records, in `snd_path`,
//   dump-YYYY-MM-DD-HH-MM-SS-dec.wav (what it heard, after decoding) and …-enc.wav (what it
//   sent), 8 kHz mono 16-bit PCM; the header is fixed up when the call ends.
// - SIP: `sip_listen 127.0.0.1:P` binds UDP and TCP on P and TLS (TCP) on P+1.
//   `-n 127.0.0.1` is needed (`-n lo` fails).
// - DTMF: the menu command `/sndcode DIGITS` sends RFC 4733 events (payload type 101,
//   telephone-event/8000 is always offered), 180 ms per digit, back to back, while the audio
//   stream goes on. Commands reach the menu through the `stdio` module reading stdin, which
//   works from a pipe ("could not setup terminal" is harmless); `-e` runs commands only at
//   start. With -v baresip logs received RFC 4733 events ("received event: '1' (end=0)"):
//   BaresipResult.receivedDtmf.
// - Calls: answermode=auto answers at once; a manual peer rings until the `/accept` command.
//   "Call established" is always logged; the "Call with … terminated" summary is not for calls
//   under a second, so the end of a call is also recognised by "call: terminate call" (-v, local
//   hangup) and "session closed: …" (BYE or a final error response from the peer).
// - SIGTERM: baresip hangs up (sends BYE), closes its recordings (headers fixed up) and exits
//   in ~20 ms, with code 0 ("terminated by signal 15" in its log).
// - Timing on this machine: startBaresip() resolves (listening) 70–260 ms after it is called;
//   a `dial` peer's call to an auto-answering baresip is established 60–180 ms after its spawn
//   (a few ms after it is listening); the callee's recording holds the caller's tone from its
//   first 50 ms frame.
//
// Every process ends on its own (-t), is killed by t.teardown (SIGTERM, a second SIGTERM after
// 500 ms, SIGKILL after 1 s), by a watchdog after seconds+5 s, and by a process 'exit' hook as a
// last resort. Its config dir
// (a mkdtempSync dir) is removed on teardown unless KEEP_BARESIP=1 (then its path is printed).
import { trackChild } from './children.js';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, freeUdpPortBlock, releaseUdpPortBlock } from './ports.js';
import { processHasPort, type Teardownable } from './sipp.js';
import { writeWav } from './audio.js';

export const BARESIP_BIN = process.env['BARESIP_BIN'] ?? '/usr/bin/baresip';
export const BARESIP_MODULE_PATH = process.env['BARESIP_MODULE_PATH'] ?? '/usr/lib/baresip/modules';
/** UDP ports reserved per instance for RTP/RTCP (`rtp_ports`). */
export const RTP_BLOCK = 10;

export type BaresipCodec = 'PCMU' | 'PCMA';

export interface BaresipOptions {
  /** User part of its SIP address (sip:NAME@127.0.0.1:PORT). */
  name: string;
  /** Answer incoming calls at once (answermode=auto); otherwise they ring unanswered. */
  answer?: boolean;
  /** SIP URI to call at start (`-e "/dial URI"`). With transport 'tcp', ";transport=tcp" is
   *  appended unless the URI has a transport parameter. */
  dial?: string;
  /** WAV file played as the microphone (8 kHz mono best). Default: silence as long as `seconds`.
   *  The call is hung up when the file ends. */
  tone?: string;
  /** baresip -t: it quits (hanging up) after this many seconds. */
  seconds: number;
  /** Record what it hears (and what it sends): recordings() / sentRecordings(). */
  record?: boolean;
  /** Audio codecs offered/accepted, in order (default PCMU, PCMA). */
  codecs?: BaresipCodec[];
  /** SIP transport of its account and dialled URI (default udp; it listens on both). */
  transport?: 'udp' | 'tcp';
  /** Send these RFC 4733 digits (0-9 * # A-D) `afterS` seconds after its call is established. */
  sendDtmf?: { digits: string; afterS: number };
  /** SIP port; a free one (with port+1 free) is picked when absent. */
  port?: number;
  /** Quit (menu /quit) as soon as its first call has ended (after being established or not:
   *  a rejected INVITE counts), instead of waiting for `seconds`. */
  quitAfterCall?: boolean;
  /** Log every SIP message (-s) into the log. */
  sipTrace?: boolean;
}

export interface BaresipResult {
  /** Exit code (0 after -t), null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stdout and stderr, without colour codes and the once-per-50 ms status line. */
  log: string;
  /** How many calls got established ("Call established"). */
  established: number;
  /** Milliseconds from spawn to the first established call; null if none. */
  establishedAfterMs: number | null;
  /** Digits received as RFC 4733 events, in order. */
  receivedDtmf: string;
  /** Digits it sent (from "send DTMF digit" lines). */
  sentDtmf: string;
  /** The command that was run, for messages. */
  command: string;
}

export interface BaresipHandle {
  /** SIP port (UDP and TCP; TLS is on port+1). */
  port: number;
  /** sip:NAME@127.0.0.1:PORT (with ;transport=tcp for a TCP peer). */
  uri: string;
  /** Its config dir (config, accounts, rec/ with recordings). Gone after teardown. */
  dir: string;
  pid: number | undefined;
  /** Its RTP port range (`rtp_ports`, first and last; RTP_BLOCK ports reserved for it alone). */
  rtpPorts: [number, number];
  /** Resolves when baresip has exited. Never rejects. */
  done: Promise<BaresipResult>;
  /** Resolves true when a call is established, false if baresip exits before. */
  established: Promise<boolean>;
  /** SIGTERM now (baresip hangs up and closes its recordings), again after 500 ms (baresip then
   *  exits at once), SIGKILL if still alive after 1 s. Safe to call more than once. */
  kill(): void;
  /** Send a menu command through stdin, e.g. "/accept" (answer a ringing call when `answer` is
   *  false), "/hangup", "/sndcode 123", "/quit". */
  command(cmd: string): void;
  /** The log so far. */
  log(): string;
  /** Resolves true once the (cleaned) log matches `re`, false on timeout or exit without it. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<boolean>;
  /** Recordings of what it heard (dump-…-dec.wav), oldest first; read them before teardown. */
  recordings(): string[];
  /** Recordings of what it sent (dump-…-enc.wav), oldest first. */
  sentRecordings(): string[];
}


const keep = (): boolean => process.env['KEEP_BARESIP'] === '1';

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*[A-Za-z\]]/g; // colours, and the stdio module's console-beep codes
const STATUS = /\[\d+:\d\d:\d\d\] audio=\d+\/\d+ \(bit\/s\)\s*/g;
export function cleanLog(text: string): string {
  return text.replace(ANSI, '').replace(STATUS, '').replace(/\r/g, '');
}

/** Digits from baresip -v "received event: 'D' (end=0|1)" lines: one per start. */
export function parseReceivedDtmf(log: string): string {
  let out = '';
  let active = '';
  for (const m of log.matchAll(/received event: '(.)' \(end=([01])\)/g)) {
    const [, key, end] = m;
    if (end === '0') {
      if (active !== key) out += key;
      active = key!;
    } else {
      active = '';
    }
  }
  return out;
}

/** A call ended: hung up here (-v), closed by the peer (BYE, or a final error response to our
 *  INVITE), or the menu's summary line (which baresip omits for calls under a second). */
const CALL_ENDED = /call: terminate call |: session closed: |: Call with \S+ terminated/;

const DTMF_OK = /^[0-9*#A-Da-d]+$/;

/** Start baresip; resolves once it listens on its SIP port. With `t`, its teardown kills the
 *  process, waits for it and removes its directory. */
export async function startBaresip(t: Teardownable | null, opts: BaresipOptions): Promise<BaresipHandle> {
  if (!/^[A-Za-z0-9_.+-]+$/.test(opts.name)) throw new Error(`startBaresip: bad name ${JSON.stringify(opts.name)}`);
  if (!(opts.seconds > 0)) throw new Error(`startBaresip: seconds must be > 0`);
  if (opts.sendDtmf && !DTMF_OK.test(opts.sendDtmf.digits)) throw new Error(`startBaresip: bad DTMF digits ${opts.sendDtmf.digits}`);
  if (opts.tone && /[\s,;]/.test(resolve(opts.tone))) throw new Error(`startBaresip: tone path must not contain spaces, ',' or ';': ${opts.tone}`);
  if (opts.tone && !existsSync(opts.tone)) throw new Error(`startBaresip: no tone file ${opts.tone}`);
  const transport = opts.transport ?? 'udp';
  const codecs = opts.codecs ?? ['PCMU', 'PCMA'];
  const port = opts.port ?? await freePort('both');
  const rtpBase = await freeUdpPortBlock(RTP_BLOCK);
  const rtpPorts: [number, number] = [rtpBase, rtpBase + RTP_BLOCK - 1];
  const tp = transport === 'tcp' ? ';transport=tcp' : '';
  const uri = `sip:${opts.name}@127.0.0.1:${port}${tp}`;

  const dir = mkdtempSync(join(tmpdir(), `baresip-${opts.name}-`));
  const recDir = join(dir, 'rec');
  mkdirSync(recDir);
  const source = opts.tone ? resolve(opts.tone) : join(dir, 'silence.wav');
  if (!opts.tone) writeWav(source, new Float32Array(Math.ceil((opts.seconds + 1) * 8000)), 8000);

  const modules = ['g711.so', 'aubridge.so', 'aufile.so', 'stdio.so', ...(opts.record ? ['sndfile.so'] : [])];
  const config = [
    'poll_method epoll',
    `sip_listen 127.0.0.1:${port}`,
    'audio_player aubridge,x',
    'audio_alert aubridge,x',
    `audio_source aufile,${source}`,
    'ausrc_srate 8000',
    'auplay_srate 8000',
    'ausrc_channels 1',
    'auplay_channels 1',
    `rtp_ports ${rtpPorts[0]}-${rtpPorts[1]}`,
    `module_path ${BARESIP_MODULE_PATH}`,
    ...modules.map((m) => `module ${m}`),
    'module_app account.so',
    'module_app menu.so',
    ...(opts.record ? [`snd_path ${recDir}`] : []),
    '',
  ].join('\n');
  writeFileSync(join(dir, 'config'), config);
  writeFileSync(join(dir, 'accounts'),
    `<sip:${opts.name}@127.0.0.1:${port}${tp}>;regint=0;answermode=${opts.answer ? 'auto' : 'manual'};audio_codecs=${codecs.join(',')}\n`);

  const args = ['-n', '127.0.0.1', '-f', dir, '-t', String(opts.seconds), '-v'];
  if (opts.sipTrace) args.push('-s');
  if (opts.dial) {
    const target = transport === 'tcp' && !/;transport=/i.test(opts.dial) ? `${opts.dial};transport=tcp` : opts.dial;
    args.push('-e', `/dial ${target}`);
  }
  const command = [BARESIP_BIN, ...args].map((a) => (/[\s"'$]/.test(a) ? JSON.stringify(a) : a)).join(' ');

  const started = Date.now();
  // stdin is a pipe kept open for the process' life: the stdio module reads menu commands
  // from it (with /dev/null it cannot poll fd 0 and fails to load).
  const child = spawn(BARESIP_BIN, args, { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
  trackChild(child);
  child.stdin?.on('error', () => { /* EPIPE after exit */ });
  const MAX = 4 << 20;
  let raw = '';
  let establishedAt: number | null = null;
  let establishedCount = 0;
  let onEstablished: ((ok: boolean) => void) | undefined;
  const established = new Promise<boolean>((res) => { onEstablished = res; });
  let dtmfTimer: NodeJS.Timeout | undefined;
  let quitSent = false;
  const onData = (s: string): void => {
    if (raw.length < MAX) raw += s;
    const n = (raw.match(/Call established/g) ?? []).length;
    if (n > establishedCount) {
      if (establishedCount === 0) {
        establishedAt = Date.now();
        onEstablished?.(true);
        if (opts.sendDtmf) {
          const { digits, afterS } = opts.sendDtmf;
          dtmfTimer = setTimeout(() => sendCommand(`/sndcode ${digits}`), Math.max(0, afterS * 1000));
        }
      }
      establishedCount = n;
    }
    if (opts.quitAfterCall && !quitSent && CALL_ENDED.test(raw)) {
      quitSent = true;
      sendCommand('/quit');
    }
  };
  child.stdout?.setEncoding('utf8').on('data', onData);
  child.stderr?.setEncoding('utf8').on('data', onData);

  let exited = false;
  let killTimer: NodeJS.Timeout | undefined;
  const watchdog = setTimeout(() => kill(), (opts.seconds + 5) * 1000);
  watchdog.unref();

  const done: Promise<BaresipResult> = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.once('error', (err) => { raw += `\nspawn error: ${err.message}`; exited = true; res({ code: null, signal: null }); });
    child.once('exit', (code, signal) => { exited = true; res({ code, signal }); });
  }).then(async ({ code, signal }) => {
    // 'exit' can come before the last output: wait for the streams to close (briefly).
    await Promise.race([
      Promise.all([child.stdout, child.stderr].map((s) => new Promise<void>((r) => {
        if (!s || s.readableEnded || s.destroyed) r(); else s.once('close', () => r());
      }))),
      new Promise<void>((r) => setTimeout(r, 500)),
    ]);
    clearTimeout(watchdog);
    if (killTimer) clearTimeout(killTimer);
    if (termTimer) clearTimeout(termTimer);
    if (dtmfTimer) clearTimeout(dtmfTimer);
    try { child.stdin?.end(); } catch { /* closed */ }
    onEstablished?.(false);
    const log = cleanLog(raw);
    try { writeFileSync(join(dir, 'baresip.log'), raw); } catch { /* dir removed */ }
    return {
      code, signal, log,
      established: establishedCount,
      establishedAfterMs: establishedAt === null ? null : establishedAt - started,
      receivedDtmf: parseReceivedDtmf(log),
      sentDtmf: [...log.matchAll(/send DTMF digit: '(.)'/g)].map((m) => m[1]).join(''),
      command,
    };
  });

  function sendCommand(cmd: string): void {
    if (exited || !child.stdin || child.stdin.destroyed) return;
    child.stdin.write(`${cmd}\n`);
  }

  // SIGTERM makes baresip hang up and wait for its BYE transactions (usually ~20–60 ms); when
  // both ends of a call are killed at once over TCP it can wait for seconds, so a second
  // SIGTERM after 500 ms (baresip then exits at once), SIGKILL after 1 s.
  let termTimer: NodeJS.Timeout | undefined;
  function kill(): void {
    if (exited || child.exitCode !== null || child.signalCode !== null) return;
    if (killTimer) return;
    try { child.kill('SIGTERM'); } catch { /* gone */ }
    termTimer = setTimeout(() => {
      if (!exited) { try { child.kill('SIGTERM'); } catch { /* gone */ } }
    }, 500);
    termTimer.unref();
    killTimer = setTimeout(() => {
      if (!exited) { try { child.kill('SIGKILL'); } catch { /* gone */ } }
    }, 1000);
    killTimer.unref();
  }

  const listRec = (suffix: string): string[] => {
    let names: string[];
    try { names = readdirSync(recDir); } catch { return []; }
    return names.filter((f) => f.startsWith('dump-') && f.endsWith(suffix)).sort().map((f) => join(recDir, f));
  };

  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    kill();
    await done;
    if (cleaned) return;
    cleaned = true;
    releaseUdpPortBlock(rtpBase, RTP_BLOCK);
    if (keep()) process.stderr.write(`# baresip ${opts.name} kept in ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  };
  t?.teardown(cleanup);

  // Ready: it has bound its SIP port (UDP for a UDP peer, TCP LISTEN for a TCP peer).
  const started2 = Date.now();
  await new Promise<void>((res, rej) => {
    const poll = (): void => {
      if (exited) {
        void done.then((r) => rej(new Error(`baresip ${opts.name} exited (code ${r.code}, signal ${r.signal}) before listening on ${port}:\n${r.log}`)));
        return;
      }
      if (child.pid !== undefined && processHasPort(child.pid, port, transport === 'tcp' ? 't1' : 'u1')) { res(); return; }
      if (Date.now() - started2 > 5000) {
        kill();
        rej(new Error(`baresip ${opts.name} did not bind port ${port} within 5 s:\n${cleanLog(raw)}`));
        return;
      }
      setTimeout(poll, 10);
    };
    poll();
  }).catch(async (err: unknown) => {
    if (!t) await cleanup();
    throw err;
  });

  return {
    port, uri, dir, pid: child.pid, rtpPorts, done, established, kill,
    command: sendCommand,
    log: () => cleanLog(raw),
    waitForLog: (re, timeoutMs = 5000) => new Promise<boolean>((res) => {
      const until = Date.now() + timeoutMs;
      const poll = (): void => {
        if (re.test(cleanLog(raw))) res(true);
        else if (exited || Date.now() > until) res(re.test(cleanLog(raw)));
        else setTimeout(poll, 20);
      };
      poll();
    }),
    recordings: () => listRec('-dec.wav'),
    sentRecordings: () => listRec('-enc.wav'),
  };
}
