// Lamp devices for tests: a socat pty pair stands in for the USB serial port, and an emulator on
// one end plays the device a profile describes (hardware/profiles/*.yaml).
//
//   const pty = await startPtyPair(t);                  // pty.devPath: what the code under test opens
//   const emu = await startEmulator(t, profile, pty.emuPath);
//   ... code under test writes to pty.devPath ...
//   await emu.waitForFrames(2);
//   t.same(emu.state(), { on: [2], colours: {} });
//   emu.setAnswer((frame, i) => (i === 0 ? 'nak' : 'ack'));   // ack profiles: script the replies
//   await pty.unplug(); await pty.replug();             // same link paths; the emulator reopens
//
// The emulator cuts the byte stream into frames (fixed length, end byte, or start...end, inferred
// from the profile's commands or given), records every frame, and keeps the device state from
// the frames it recognises: which relay channels are on, which mode each tower colour shows.
// Profiles with `ack` get the ack bytes back for a recognised frame and nak for anything else,
// unless setAnswer says otherwise ('silent' sends nothing); only acked frames change the state.
// socat is killed and the temporary directory removed in t.teardown, and socat is killed by a
// process 'exit' hook as a last resort.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialPort } from 'serialport';
import type { Test } from 'tap';
import { ackBytes } from '../../src/lamps/profile.js';
import { compileTemplate, formatHex } from '../../src/lamps/template.js';
import type { LampMode, LampProfile } from '../../src/lamps/types.js';
import { trackChild } from './children.js';

export const SOCAT_BIN = process.env['SOCAT_BIN'] ?? 'socat';

// ---------------------------------------------------------------------------------------------
// pty pair

export interface PtyPair {
  /** The temporary directory holding the two links. */
  readonly dir: string;
  /** The "device" path the code under test opens (a symlink to a pty, like a udev name). */
  readonly devPath: string;
  /** The other end, for the emulator. */
  readonly emuPath: string;
  /** socat is running (between replug and unplug). */
  readonly plugged: boolean;
  /** Like pulling the USB plug: kill socat (both ptys go away) and remove the links. */
  unplug(): Promise<void>;
  /** Plug it back in: start socat again with the same link paths; resolves once both exist. */
  replug(): Promise<void>;
}

const LINK_TIMEOUT_MS = 5000;

/** A socat pty pair in a fresh temporary directory: DIR/dev and DIR/emu. Torn down with `t`. */
export async function startPtyPair(t: Test): Promise<PtyPair> {
  const dir = mkdtempSync(join(tmpdir(), 'amk-lamp-'));
  const devPath = join(dir, 'dev');
  const emuPath = join(dir, 'emu');
  let child: ChildProcess | null = null;

  const start = async (): Promise<void> => {
    rmSync(devPath, { force: true });
    rmSync(emuPath, { force: true });
    const c = spawn(SOCAT_BIN, ['-d', '-d', `pty,raw,echo=0,link=${devPath}`, `pty,raw,echo=0,link=${emuPath}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    trackChild(c);
    child = c;
    let log = '';
    let ready = false;
    c.stderr?.setEncoding('utf8');
    c.stderr?.on('data', (s: string) => {
      log += s;
      if (log.includes('starting data transfer loop')) ready = true;
    });
    const exited = new Promise<never>((_, reject) => {
      c.once('error', (err) => reject(new Error(`cannot start ${SOCAT_BIN}: ${err.message}`)));
      c.once('exit', (code, signal) => reject(new Error(`socat exited (${signal ?? code}) before the ptys were ready: ${log.trim()}`)));
    });
    exited.catch(() => undefined);
    const deadline = Date.now() + LINK_TIMEOUT_MS;
    const linked = (async () => {
      while (!(ready && existsSync(devPath) && existsSync(emuPath))) {
        if (Date.now() > deadline) throw new Error(`socat pty links did not appear within ${LINK_TIMEOUT_MS} ms: ${log.trim()}`);
        await sleep(10);
      }
    })();
    await Promise.race([linked, exited]);
  };

  const stop = async (): Promise<void> => {
    const c = child;
    child = null;
    if (c !== null && c.exitCode === null && c.signalCode === null) {
      const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      c.kill('SIGTERM');
      const timer = setTimeout(() => c.kill('SIGKILL'), 1000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(devPath, { force: true });
    rmSync(emuPath, { force: true });
  };

  t.teardown(async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await start();
  return {
    dir,
    devPath,
    emuPath,
    get plugged() {
      return child !== null;
    },
    unplug: stop,
    replug: async () => {
      if (child !== null) throw new Error('replug: the pty pair is still plugged in');
      await start();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Framing

/** How the emulator cuts received bytes into frames. */
export type Framing =
  /** Every `length` bytes is a frame (LCUS 4, KMtronic 3, Devantech 1). */
  | { type: 'fixed'; length: number }
  /** A frame ends with `end` (included): Numato's "\r". */
  | { type: 'delimited'; end: Buffer }
  /** A frame runs from `start` to `end` (both included); bytes before `start` are dropped: Patlite's @...!. */
  | { type: 'bracketed'; start: Buffer; end: Buffer };

type Effect = { type: 'relay'; ch: number; on: boolean } | { type: 'tower'; colours: Record<string, LampMode> } | { type: 'init' };

const MAX_TOWER_COMBINATIONS = 100_000;

/** Every command the profile can send, with what it does to the device. */
function commandTable(profile: LampProfile): Map<string, Effect> {
  const table = new Map<string, Effect>();
  const add = (bytes: Buffer, effect: Effect): void => {
    const key = formatHex(bytes);
    if (!table.has(key)) table.set(key, effect);
  };
  const c = profile.commands;
  if (profile.kind === 'relay') {
    const on = compileTemplate(c.on ?? '');
    const off = compileTemplate(c.off ?? '');
    for (let ch = 1; ch <= (profile.channels ?? 0); ch++) {
      add(on({ ch }), { type: 'relay', ch, on: true });
      add(off({ ch }), { type: 'relay', ch, on: false });
    }
  } else {
    const colours = profile.colours ?? [];
    const set = compileTemplate(c.set ?? '');
    const modes = (['off', 'on', 'flash'] as const).filter((m) => c.modes?.[m] !== undefined);
    const codes = Object.fromEntries(modes.map((m) => [m, compileTemplate(c.modes?.[m] ?? '')()])) as Record<LampMode, Buffer>;
    const total = modes.length ** colours.length;
    if (total > MAX_TOWER_COMBINATIONS) throw new Error(`emulator: ${total} tower states are too many to tabulate`);
    for (let n = 0; n < total; n++) {
      const state: Record<string, LampMode> = {};
      const vars: Record<string, Buffer> = {};
      let k = n;
      for (const colour of colours) {
        const mode = modes[k % modes.length] as LampMode;
        k = Math.floor(k / modes.length);
        state[colour] = mode;
        vars[colour] = codes[mode];
      }
      add(set(vars), { type: 'tower', colours: state });
    }
  }
  if (c.init !== undefined) add(compileTemplate(c.init)(), { type: 'init' });
  return table;
}

/** The framing the profile's commands imply: an end byte \r or \n, a common start and end byte, or one length. */
export function inferFraming(profile: LampProfile): Framing {
  const samples = [...commandTable(profile).keys()].map((hex) => Buffer.from(hex.replace(/ /g, ''), 'hex'));
  const first = samples[0];
  if (first === undefined) throw new Error('emulator: the profile has no commands');
  const last = (b: Buffer): number => b[b.length - 1] ?? -1;
  const sameEnd = samples.every((s) => last(s) === last(first));
  if (sameEnd && (last(first) === 0x0d || last(first) === 0x0a)) return { type: 'delimited', end: Buffer.from([last(first)]) };
  const sameStart = samples.every((s) => s[0] === first[0]);
  if (sameEnd && sameStart && first.length > 1 && first[0] !== last(first) && samples.every((s) => s.indexOf(last(first)) === s.length - 1)) {
    return { type: 'bracketed', start: first.subarray(0, 1), end: first.subarray(first.length - 1) };
  }
  if (samples.every((s) => s.length === first.length)) return { type: 'fixed', length: first.length };
  throw new Error(`emulator: cannot infer the framing of profile ${profile.id}; pass opts.framing`);
}

/** Cuts complete frames off the front of `buf`; returns them and the rest. */
function cutFrames(framing: Framing, buf: Buffer): { frames: Buffer[]; rest: Buffer; dropped: Buffer[] } {
  const frames: Buffer[] = [];
  const dropped: Buffer[] = [];
  let rest = buf;
  for (;;) {
    if (framing.type === 'fixed') {
      if (rest.length < framing.length) break;
      frames.push(Buffer.from(rest.subarray(0, framing.length)));
      rest = rest.subarray(framing.length);
    } else if (framing.type === 'delimited') {
      const at = rest.indexOf(framing.end);
      if (at < 0) break;
      frames.push(Buffer.from(rest.subarray(0, at + framing.end.length)));
      rest = rest.subarray(at + framing.end.length);
    } else {
      const s = rest.indexOf(framing.start);
      if (s < 0) {
        if (rest.length > 0) dropped.push(Buffer.from(rest));
        rest = rest.subarray(rest.length);
        break;
      }
      if (s > 0) {
        dropped.push(Buffer.from(rest.subarray(0, s)));
        rest = rest.subarray(s);
      }
      const e = rest.indexOf(framing.end, framing.start.length);
      if (e < 0) break;
      frames.push(Buffer.from(rest.subarray(0, e + framing.end.length)));
      rest = rest.subarray(e + framing.end.length);
    }
  }
  return { frames, rest: Buffer.from(rest), dropped };
}

// ---------------------------------------------------------------------------------------------
// Emulator

/** What an acknowledging device answers to one frame. */
export type EmulatorAnswer = 'ack' | 'nak' | 'silent';

/** The device's outputs: relay channels that are on (sorted), tower colours' modes. */
export interface EmulatedState {
  on: number[];
  colours: Record<string, LampMode>;
}

export interface EmulatorOptions {
  /** How frames are cut; default: inferred from the profile (see inferFraming). */
  framing?: Framing;
  /**
   * Whether the state goes back to all off when the port goes away (the device loses power).
   * Default: true for relay boards (USB powered), false for towers (own power supply).
   */
  resetOnUnplug?: boolean;
  /** Echo every received byte back, as a Numato command line does. Default false. */
  echo?: boolean;
}

export interface LampEmulator {
  readonly profile: LampProfile;
  readonly framing: Framing;
  /** Every frame received, in order, across unplug/replug. */
  readonly frames: Buffer[];
  /** Received frames that are no command of the profile. */
  readonly unknown: Buffer[];
  /** Bytes dropped while looking for a frame start (bracketed framing). */
  readonly dropped: Buffer[];
  /** ack profiles: the answer given to each frame (same index as frames). */
  readonly answers: EmulatorAnswer[];
  /** How many times the port has been opened (1 after start, +1 per replug seen). */
  readonly opens: number;
  readonly isOpen: boolean;
  /** The current device outputs. */
  state(): EmulatedState;
  /** ack profiles: decide the answer per frame (0-based index over all frames); undefined = default (ack if recognised, else nak). */
  setAnswer(fn: ((frame: Buffer, index: number) => EmulatorAnswer | undefined) | null): void;
  /** Resolves with `frames` once at least n frames have arrived; rejects after timeoutMs (default 5000). */
  waitForFrames(n: number, timeoutMs?: number): Promise<Buffer[]>;
  /** Resolves once the port has been opened at least `count` times (default: the next open if closed, else now). */
  waitForOpen(count?: number, timeoutMs?: number): Promise<void>;
  /** Stop reopening and close the port. */
  close(): Promise<void>;
}

function initialState(profile: LampProfile): EmulatedState {
  return { on: [], colours: Object.fromEntries((profile.colours ?? []).map((c) => [c, 'off' as LampMode])) };
}

/**
 * Opens the emulator end of a pty pair as the device `profile` describes. When the pty goes away
 * (unplug), the emulator waits for the path to come back and opens it again (replug).
 */
export async function startEmulator(t: Test, profile: LampProfile, path: string, opts: EmulatorOptions = {}): Promise<LampEmulator> {
  const table = commandTable(profile);
  const framing = opts.framing ?? inferFraming(profile);
  const acks = ackBytes(profile);
  const resetOnUnplug = opts.resetOnUnplug ?? profile.kind === 'relay';
  const frames: Buffer[] = [];
  const unknown: Buffer[] = [];
  const dropped: Buffer[] = [];
  const answers: EmulatorAnswer[] = [];
  let current = initialState(profile);
  let answerFn: ((frame: Buffer, index: number) => EmulatorAnswer | undefined) | null = null;
  let port: SerialPort | null = null;
  let pending: Buffer = Buffer.alloc(0);
  let opens = 0;
  let closed = false;
  let retryTimer: NodeJS.Timeout | null = null;
  const waiters = new Set<() => void>();
  const notify = (): void => {
    for (const w of [...waiters]) w();
  };

  const apply = (effect: Effect): void => {
    if (effect.type === 'relay') {
      const on = new Set(current.on);
      if (effect.on) on.add(effect.ch);
      else on.delete(effect.ch);
      current = { ...current, on: [...on].sort((a, b) => a - b) };
    } else if (effect.type === 'tower') {
      current = { ...current, colours: { ...effect.colours } };
    }
  };

  const onFrame = (p: SerialPort, frame: Buffer): void => {
    const index = frames.length;
    frames.push(frame);
    const effect = table.get(formatHex(frame));
    if (effect === undefined) unknown.push(frame);
    if (acks === null) {
      if (effect) apply(effect);
    } else {
      const answer = answerFn?.(frame, index) ?? (effect ? 'ack' : 'nak');
      answers.push(answer);
      if (answer === 'ack' && effect) apply(effect);
      if (answer !== 'silent') p.write(answer === 'ack' ? acks.ack : acks.nak);
    }
    notify();
  };

  const open = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const p = new SerialPort({
        path,
        baudRate: profile.serial.baudRate,
        dataBits: profile.serial.dataBits,
        parity: profile.serial.parity,
        stopBits: profile.serial.stopBits,
        autoOpen: false,
      });
      p.open((err) => {
        if (err) {
          reject(err);
          return;
        }
        if (closed) {
          p.close();
          resolve();
          return;
        }
        port = p;
        pending = Buffer.alloc(0);
        opens++;
        p.on('data', (data: Buffer) => {
          if (opts.echo) p.write(data);
          const cut = cutFrames(framing, Buffer.concat([pending, data]));
          pending = cut.rest;
          dropped.push(...cut.dropped);
          for (const f of cut.frames) onFrame(p, f);
        });
        // A pty whose other end went away does not always give serialport a disconnect: the
        // read may fail with EIO (an 'error', the port stays "open"), or the open may race the
        // unplug. So any port error, or the link pointing elsewhere (or nowhere), is an unplug.
        const unplugged = (): void => {
          if (p.isOpen) p.close(() => undefined);
          else p.emit('close');
        };
        p.on('error', unplugged);
        const target = targetOf(path);
        const watch = setInterval(() => {
          if (targetOf(path) !== target) unplugged();
        }, 25);
        watch.unref();
        p.once('close', () => {
          clearInterval(watch);
          if (port === p) port = null;
          if (closed) return;
          if (resetOnUnplug) current = initialState(profile);
          scheduleReopen();
        });
        notify();
        resolve();
      });
    });

  const scheduleReopen = (): void => {
    if (closed || retryTimer !== null) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      if (closed || port !== null) return;
      if (!existsSync(path)) {
        scheduleReopen();
        return;
      }
      open().catch(() => scheduleReopen());
    }, 20);
  };

  await open();

  const emu: LampEmulator = {
    profile,
    framing,
    frames,
    unknown,
    dropped,
    answers,
    get opens() {
      return opens;
    },
    get isOpen() {
      return port !== null;
    },
    state: () => ({ on: [...current.on], colours: { ...current.colours } }),
    setAnswer(fn) {
      answerFn = fn;
    },
    waitForFrames(n, timeoutMs = 5000) {
      return waitFor(() => frames.length >= n, timeoutMs, () => `${n} frames (got ${frames.length}: ${frames.map((f) => formatHex(f)).join(' | ')})`).then(() => frames);
    },
    waitForOpen(count, timeoutMs = 5000) {
      const want = count ?? (port === null ? opens + 1 : opens);
      return waitFor(() => opens >= want && port !== null, timeoutMs, () => `the emulator port to open (${opens} opens, want ${want})`);
    },
    async close() {
      closed = true;
      if (retryTimer !== null) clearTimeout(retryTimer);
      retryTimer = null;
      const p = port;
      port = null;
      if (p?.isOpen) await new Promise<void>((resolve) => p.close(() => resolve()));
      notify();
    },
  };

  function waitFor(done: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!done()) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`));
      }, timeoutMs);
      waiters.add(check);
    });
  }

  t.teardown(() => emu.close());
  return emu;
}

/** Where a link points now, or null when it is gone. */
function targetOf(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
