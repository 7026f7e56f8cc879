// The lamp port driver against real pseudo-terminals: socat makes a pty pair, the driver opens
// one end (a link, as it would open /dev/ttyUSB0), and a plain serialport on the other end plays
// the device: it records the bytes and answers ACK (06) / NAK (15) where a test needs it.
// Unplugging is killing socat (the links vanish); replugging is starting it again on the same links.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants as fsc, existsSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { SerialPort } from 'serialport';
import {
  LampPort,
  parseAckBytes,
  readUntilHangup,
  type LampPortEvents,
  type LampRender,
  type UnixPortInternals,
} from '../../src/lamps/lamp-port.js';
import { LampPorts } from '../../src/lamps/lamp-ports.js';
import type { LampMode, LampProfile } from '../../src/lamps/types.js';
import { trackChild } from '../helpers/children.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls until `cond` holds; fails with `what` after a generous timeout (waiting only). */
async function until(cond: () => boolean, what: string, timeoutMs = 8000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

// --- profiles and render functions of our own (the real ones come from profile files) ---

const OP: Record<LampMode, number> = { off: 0x00, on: 0x01, flash: 0x02 };

/** LCUS-style relay frame: A0 ch op sum. */
function lcus(ch: number, mode: LampMode): Buffer {
  const op = OP[mode];
  return Buffer.from([0xa0, ch, op, (0xa0 + ch + op) & 0xff]);
}
const relayRender: LampRender = (output, mode) => [lcus(Number(output), mode)];

const COLOURS = ['red', 'amber', 'green'];
/** Tower frame: 57 r a g, the whole state in one command. */
const towerRender: LampRender = (_output, _mode, all) => [
  Buffer.from([0x57, ...COLOURS.map((c) => OP[all.get(c) ?? 'off'])]),
];

function relayProfile(ack: LampProfile['ack'] = null): LampProfile {
  return {
    id: 'test-relay',
    name: 'test relay board',
    manual: 'test',
    serial: { baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1 },
    kind: 'relay',
    channels: 8,
    selfFlash: false,
    commands: { on: 'A0 {ch} 01 {sum}', off: 'A0 {ch} 00 {sum}' },
    ack,
  };
}

function towerProfile(ack: LampProfile['ack'] = null): LampProfile {
  return {
    id: 'test-tower',
    name: 'test tower',
    manual: 'test',
    serial: { baudRate: 19200, dataBits: 8, parity: 'none', stopBits: 1 },
    kind: 'tower',
    colours: COLOURS,
    selfFlash: true,
    commands: { set: '57 {red} {amber} {green}', modes: { off: '00', on: '01', flash: '02' } },
    ack,
  };
}

const ACK = (timeoutMs: number, retries: number): LampProfile['ack'] => ({ ack: '06', nak: '15', timeoutMs, retries });

// --- the pty pair and the device on its far end ---

interface Pair {
  dir: string;
  a: string;
  b: string;
  proc: ChildProcess | null;
}

/**
 * Starts socat. The driver's link appears only after `beforeExpose` (the far end's device opens
 * first), atomically, as a device node would: a driver retrying in the background must not
 * write into a pty nobody listens on yet.
 */
async function plug(pair: Pair, beforeExpose?: () => Promise<void>): Promise<void> {
  const hidden = `${pair.a}.new`;
  const proc = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${hidden}`, `pty,raw,echo=0,link=${pair.b}`], {
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  trackChild(proc);
  pair.proc = proc;
  await until(() => existsSync(hidden) && existsSync(pair.b), 'socat links');
  await beforeExpose?.();
  await rename(hidden, pair.a);
}

/**
 * Removes the links first, then ends socat: a link left behind would point at a pty number the
 * kernel hands out again (to another test's socat), and the driver retrying would open that.
 */
async function unplug(pair: Pair): Promise<void> {
  for (const p of [pair.a, `${pair.a}.new`, pair.b]) await rm(p, { force: true });
  const proc = pair.proc;
  pair.proc = null;
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill('SIGTERM');
    await exited;
  }
}

/** Answers to one received frame: bytes to send back (after delayMs), or null for silence. */
type Responder = (frame: Buffer, index: number) => { reply: number[]; delayMs?: number } | null;

class Device {
  readonly frames: Buffer[] = [];
  /** rx:<hex> and tx:<hex> in the order they happened on the device side. */
  readonly trace: string[] = [];
  private buf = Buffer.alloc(0);
  private constructor(
    private readonly port: SerialPort,
    private readonly frameLen: number,
    private readonly respond: Responder | null,
  ) {}

  static async open(path: string, frameLen: number, respond: Responder | null = null): Promise<Device> {
    const port = new SerialPort({ path, baudRate: 9600, autoOpen: false });
    port.on('error', () => {});
    await new Promise<void>((res, rej) => port.open((e) => (e ? rej(e) : res())));
    const d = new Device(port, frameLen, respond);
    port.on('data', (data: Buffer) => d.onData(data));
    return d;
  }

  bytes(): string {
    return Buffer.concat(this.frames).toString('hex');
  }

  private onData(data: Buffer): void {
    this.buf = Buffer.concat([this.buf, data]);
    while (this.buf.length >= this.frameLen) {
      const frame = this.buf.subarray(0, this.frameLen);
      this.buf = this.buf.subarray(this.frameLen);
      const index = this.frames.length;
      this.frames.push(Buffer.from(frame));
      this.trace.push(`rx:${frame.toString('hex')}`);
      const answer = this.respond?.(frame, index);
      if (!answer) continue;
      const send = (): void => {
        if (!this.port.isOpen) return;
        this.trace.push(`tx:${Buffer.from(answer.reply).toString('hex')}`);
        this.port.write(Buffer.from(answer.reply));
      };
      if (answer.delayMs) setTimeout(send, answer.delayMs);
      else send();
    }
  }

  close(): Promise<void> {
    return new Promise((r) => (this.port.isOpen ? this.port.close(() => r()) : r()));
  }
}

// --- the driver with recorded events ---

interface Recorded {
  opened: number;
  lost: string[];
  failed: Array<{ command: string; why: 'nak' | 'timeout' }>;
}

const noop = (): void => {};
const print = (o: object, m?: string): void => console.error(Date.now() % 100000, m, JSON.stringify(o));
/** LAMP_TEST_LOG=1 prints the driver's log lines (for a failing run). */
const quietLog = process.env.LAMP_TEST_LOG ? { info: print, warn: print, debug: print } : { info: noop, warn: noop, debug: noop };

function makePort(
  t: Test,
  opts: { id?: string; path: string; profile: LampProfile; render: LampRender; init?: Buffer | null },
): { port: LampPort; ev: Recorded } {
  const ev: Recorded = { opened: 0, lost: [], failed: [] };
  const events: LampPortEvents = {
    opened: () => void ev.opened++,
    lost: (_id, error) => void ev.lost.push(error),
    commandFailed: (_id, command, why) => void ev.failed.push({ command: command.toString('hex'), why }),
  };
  const port = new LampPort(
    { id: opts.id ?? 'desk', path: opts.path, profile: opts.profile, render: opts.render, init: opts.init ?? null, reopen: { initialMs: 40, maxMs: 200 } },
    events,
    quietLog,
  );
  t.teardown(() => port.stop());
  return { port, ev };
}

/** A fresh directory and pty pair for one test; socat killed and files removed afterwards. */
async function pairFor(t: Test, name = 'dev'): Promise<Pair> {
  const dir = await mkdtemp(join(tmpdir(), 'lamp-port-'));
  const pair: Pair = { dir, a: join(dir, `${name}-a`), b: join(dir, `${name}-b`), proc: null };
  t.teardown(async () => {
    await unplug(pair);
    await rm(dir, { recursive: true, force: true });
  });
  await plug(pair);
  return pair;
}

async function deviceFor(t: Test, pair: Pair, frameLen: number, respond: Responder | null = null): Promise<Device> {
  const d = await Device.open(pair.b, frameLen, respond);
  t.teardown(() => d.close());
  return d;
}

/** Plugs the device back in (or for the first time): the device end is open before the link appears. */
async function replug(t: Test, pair: Pair, frameLen: number, respond: Responder | null = null): Promise<Device> {
  const held: { dev?: Device } = {};
  await plug(pair, async () => {
    held.dev = await deviceFor(t, pair, frameLen, respond);
  });
  return held.dev!;
}

const hex = (...frames: Buffer[]): string => Buffer.concat(frames).toString('hex');

// --- tests ---

t.test('ack bytes from a profile: hex in several spellings, else literal text', async (t) => {
  t.same([...parseAckBytes('06')], [0x06]);
  t.same([...parseAckBytes('0x15')], [0x15]);
  t.same([...parseAckBytes('06 0D')], [0x06, 0x0d]);
  t.same([...parseAckBytes('060d')], [0x06, 0x0d]);
  t.same(parseAckBytes('OK\r').toString('latin1'), 'OK\r');
});

t.test('a read that hits end of file (hung-up tty) is a disconnect, not an endless re-read', async (t) => {
  // A FIFO behaves like a hung-up tty here: non-blocking reads give EAGAIN while the writer is
  // there and nothing is waiting, and 0 bytes (end of file) once it has gone.
  const dir = await mkdtemp(join(tmpdir(), 'lamp-port-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'fifo');
  await new Promise<void>((res, rej) =>
    spawn('mkfifo', [fifo]).once('exit', (code) => (code === 0 ? res() : rej(new Error(`mkfifo: ${code}`)))),
  );
  const rfd = openSync(fifo, fsc.O_RDONLY | fsc.O_NONBLOCK);
  const wfd = openSync(fifo, fsc.O_WRONLY);
  let waits = 0;
  const port: UnixPortInternals = {
    isOpen: true,
    fd: rfd,
    // Stands in for the binding's poll handle: "readable" a moment after being asked.
    poller: {
      once: (_event, cb) => {
        waits++;
        setTimeout(() => cb(null), 20);
      },
    },
  };
  t.teardown(() => closeSync(rfd));
  const buf = Buffer.alloc(16);
  writeSync(wfd, Buffer.from([0x06]));
  t.same(await readUntilHangup(port, buf, 0, 16).then((r) => [...r.buffer.subarray(0, r.bytesRead)]), [0x06]);
  const later = readUntilHangup(port, buf, 0, 16); // nothing there yet: waits for readable
  await sleep(50);
  writeSync(wfd, Buffer.from([0x15, 0x06]));
  const r = await later;
  t.same([...r.buffer.subarray(0, r.bytesRead)], [0x15, 0x06]);
  t.ok(waits >= 1, 'waited for readable on EAGAIN');
  closeSync(wfd); // the other end hangs up
  const err = await readUntilHangup(port, buf, 0, 16).then(
    () => null,
    (e: unknown) => e as Error & { disconnect?: boolean; canceled?: boolean },
  );
  t.match(err?.message, /hung up/);
  t.equal(err?.disconnect, true);
  t.notOk(err?.canceled, 'a disconnect, so the stream closes the port');
  port.fd = null;
  const closed = await readUntilHangup(port, buf, 0, 16).then(
    () => null,
    (e: unknown) => e as Error & { canceled?: boolean },
  );
  t.equal(closed?.canceled, true, 'a closed port cancels quietly');
});

t.test('writes exact bytes in order for a sequence of set() calls, init first', async (t) => {
  const pair = await pairFor(t);
  const dev = await deviceFor(t, pair, 4);
  const init = Buffer.from([0xa0, 0x00, 0x00, 0xa0]);
  const { port, ev } = makePort(t, { path: pair.a, profile: relayProfile(), render: relayRender, init });
  port.start();
  await until(() => ev.opened >= 1, 'open');
  await port.idle();
  port.set(1, 'on');
  await port.idle();
  port.set(2, 'on');
  port.set(3, 'flash'); // same tick, different outputs: both written, in order
  await port.idle();
  port.set(1, 'off');
  await port.idle();
  port.set('4', 'on');
  await port.idle();
  const expected = hex(init, lcus(1, 'on'), lcus(2, 'on'), lcus(3, 'flash'), lcus(1, 'off'), lcus(4, 'on'));
  await until(() => dev.bytes().length >= expected.length, 'all bytes on the device');
  t.equal(dev.bytes(), expected);
  t.same(
    [...port.desired()],
    [
      [1, 'off'],
      [2, 'on'],
      [3, 'flash'],
      ['4', 'on'],
    ],
  );
  const st = port.status();
  t.equal(st.open, true);
  t.equal(st.queued, 0);
  t.equal(st.failedCommands, 0);
  t.equal(st.path, pair.a);
  t.same(ev.lost, []);
});

t.test('only changes are written', async (t) => {
  const pair = await pairFor(t);
  const dev = await deviceFor(t, pair, 4);
  const { port, ev } = makePort(t, { path: pair.a, profile: relayProfile(), render: relayRender });
  port.start();
  await until(() => ev.opened >= 1, 'open');
  port.set(1, 'on');
  await port.idle();
  port.set(1, 'on');
  await port.idle();
  port.set(1, 'off');
  await port.idle();
  port.set(1, 'off');
  port.set(2, 'on');
  port.set(2, 'off'); // back to nothing new for 2 within one tick: only its latest (off) once
  await port.idle();
  port.set(2, 'off');
  await port.idle();
  // Serial order: once the sentinel arrives, everything written before it has arrived too.
  port.set(9, 'on');
  await port.idle();
  await until(() => dev.frames.some((f) => f.equals(lcus(9, 'on'))), 'sentinel');
  t.equal(dev.bytes(), hex(lcus(1, 'on'), lcus(1, 'off'), lcus(2, 'off'), lcus(9, 'on')));
});

t.test('a slow device: changes queued behind it are coalesced per output, queue bounded', async (t) => {
  const pair = await pairFor(t);
  // Acks every frame, slowly.
  const dev = await deviceFor(t, pair, 4, () => ({ reply: [0x06], delayMs: 300 }));
  const { port, ev } = makePort(t, { path: pair.a, profile: relayProfile(ACK(3000, 1)), render: relayRender });
  port.start();
  await until(() => ev.opened >= 1, 'open');
  port.set(1, 'on');
  await until(() => dev.frames.length >= 1, 'first frame (its ack is pending)');
  for (let i = 0; i < 50; i++) {
    port.set(2, i % 2 ? 'on' : 'off');
    port.set(3, i % 3 === 0 ? 'flash' : 'on');
  }
  port.set(2, 'flash');
  port.set(3, 'off');
  port.set(1, 'off');
  port.set(1, 'on'); // back to what is being written: nothing more for 1
  t.ok(port.status().queued <= 3, `at most one queued entry per output (${port.status().queued})`);
  await port.idle();
  await until(() => dev.frames.length >= 3, 'frames');
  t.equal(dev.bytes(), hex(lcus(1, 'on'), lcus(2, 'flash'), lcus(3, 'off')));
  t.equal(port.status().queued, 0);
});

t.test('ACK: the next command goes only after the ack of the previous one', async (t) => {
  const pair = await pairFor(t);
  const dev = await deviceFor(t, pair, 4, () => ({ reply: [0x06], delayMs: 150 }));
  const { port, ev } = makePort(t, { path: pair.a, profile: relayProfile(ACK(2000, 2)), render: relayRender });
  port.start();
  await until(() => ev.opened >= 1, 'open');
  port.set(1, 'on');
  port.set(2, 'on');
  port.set(3, 'on');
  await port.idle();
  await until(() => dev.trace.length >= 6, 'three frames and three acks');
  t.same(dev.trace, [
    `rx:${lcus(1, 'on').toString('hex')}`,
    'tx:06',
    `rx:${lcus(2, 'on').toString('hex')}`,
    'tx:06',
    `rx:${lcus(3, 'on').toString('hex')}`,
    'tx:06',
  ]);
  t.same(ev.failed, []);
  t.equal(port.status().failedCommands, 0);
});

t.test('NAK then ACK: the command is re-sent once', async (t) => {
  const pair = await pairFor(t);
  const dev = await deviceFor(t, pair, 4, (_f, i) => ({ reply: [i === 0 ? 0x15 : 0x06], delayMs: 20 }));
  const { port, ev } = makePort(t, { path: pair.a, profile: relayProfile(ACK(2000, 2)), render: relayRender });
  port.start();
  await until(() => ev.opened >= 1, 'open');
  port.set(1, 'on');
  port.set(2, 'off');
  await port.idle();
  await until(() => dev.frames.length >= 3, 'three frames');
  t.equal(dev.bytes(), hex(lcus(1, 'on'), lcus(1, 'on'), lcus(2, 'off')));
  t.same(ev.failed, []);
  t.equal(port.status().failedCommands, 0);
});

t.test('silence: retried `retries` times, then commandFailed and the next command goes', async (t) => {
  const pair = await pairFor(t);
  // Channel 1 is never answered; everything else is acked.
  const dev = await deviceFor(t, pair, 4, (f) => (f[1] === 1 ? null : { reply: [0x06] }));
  const { port, ev } = makePort(t, { path: pair.a, profile: relayProfile(ACK(800, 2)), render: relayRender });
  port.start();
  await until(() => ev.opened >= 1, 'open');
  port.set(1, 'on');
  port.set(2, 'on');
  await port.idle();
  await until(() => dev.frames.length >= 4, 'four frames');
  t.equal(dev.bytes(), hex(lcus(1, 'on'), lcus(1, 'on'), lcus(1, 'on'), lcus(2, 'on')));
  t.same(ev.failed, [{ command: lcus(1, 'on').toString('hex'), why: 'timeout' }]);
  t.equal(port.status().failedCommands, 1);
  // A failed output is not taken as written: asking for it again writes it again.
  port.set(1, 'on');
  await port.idle();
  await until(() => dev.frames.length >= 7, 'three more frames');
  t.equal(ev.failed.length, 2);
});

t.test('NAK every time: retried, then commandFailed with "nak"', async (t) => {
  const pair = await pairFor(t);
  const dev = await deviceFor(t, pair, 4, (f) => ({ reply: [f[1] === 5 ? 0x15 : 0x06] }));
  const { port, ev } = makePort(t, { path: pair.a, profile: relayProfile(ACK(2000, 1)), render: relayRender });
  port.start();
  await until(() => ev.opened >= 1, 'open');
  port.set(5, 'on');
  port.set(6, 'on');
  await port.idle();
  await until(() => dev.frames.length >= 3, 'three frames');
  t.equal(dev.bytes(), hex(lcus(5, 'on'), lcus(5, 'on'), lcus(6, 'on')));
  t.same(ev.failed, [{ command: lcus(5, 'on').toString('hex'), why: 'nak' }]);
});

t.test('unplug: lost once, closed, set() returns at once; replug: reopened, full state replayed', async (t) => {
  const pair = await pairFor(t);
  let dev = await deviceFor(t, pair, 4);
  const init = Buffer.from([0xa0, 0x00, 0x00, 0xa0]);
  const { port, ev } = makePort(t, { path: pair.a, profile: relayProfile(), render: relayRender, init });
  port.start();
  await until(() => ev.opened >= 1, 'open');
  port.set(1, 'on');
  port.set(2, 'flash');
  port.set(3, 'on');
  await port.idle();
  await until(() => dev.frames.length >= 4, 'init and three frames');

  await dev.close();
  await unplug(pair);
  await until(() => ev.lost.length >= 1, 'lost event');
  let st = port.status();
  t.equal(st.open, false);
  t.type(st.lastError, 'string');
  t.ok((st.lastError ?? '').length > 0, `lastError: ${st.lastError}`);

  // While unplugged: set() records and returns; nothing queues up.
  t.equal(port.set(2, 'off'), undefined);
  port.set(4, 'on');
  for (let i = 0; i < 100; i++) port.set(5, i % 2 ? 'on' : 'off');
  t.equal(port.status().queued, 0);
  await port.idle(); // nothing in flight while the device is gone
  await sleep(300); // several reopen attempts fail meanwhile (backoff 40 ms .. 200 ms)
  t.equal(ev.lost.length, 1, 'lost is reported once per outage');
  t.equal(ev.opened, 1);

  dev = await replug(t, pair, 4);
  await until(() => ev.opened >= 2, 'reopened');
  await port.idle();
  await until(() => dev.frames.length >= 6, 'init and the five outputs');
  t.equal(
    dev.bytes(),
    hex(init, lcus(1, 'on'), lcus(2, 'off'), lcus(3, 'on'), lcus(4, 'on'), lcus(5, 'on')),
    'init, then every output in its current mode',
  );
  st = port.status();
  t.equal(st.open, true);
  t.equal(ev.lost.length, 1);

  // And it keeps working after the replug.
  port.set(3, 'off');
  await port.idle();
  await until(() => dev.frames.length >= 7, 'one more frame');
  t.equal(dev.frames[6]!.toString('hex'), lcus(3, 'off').toString('hex'));
});

t.test('unplugged while waiting for an ack: lost, and the replug replays everything', async (t) => {
  const pair = await pairFor(t);
  let dev = await deviceFor(t, pair, 4, () => null); // never answers
  const { port, ev } = makePort(t, { path: pair.a, profile: relayProfile(ACK(5000, 3)), render: relayRender });
  port.start();
  await until(() => ev.opened >= 1, 'open');
  port.set(1, 'on');
  port.set(2, 'on');
  await until(() => dev.frames.length >= 1, 'first frame in flight');
  await dev.close();
  await unplug(pair);
  await until(() => ev.lost.length >= 1, 'lost');
  await port.idle();
  t.same(ev.failed, [], 'a lost port is not a failed command');
  dev = await replug(t, pair, 4, () => ({ reply: [0x06] }));
  await until(() => ev.opened >= 2, 'reopened');
  await port.idle();
  await until(() => dev.frames.length >= 2, 'replay');
  t.equal(dev.bytes(), hex(lcus(1, 'on'), lcus(2, 'on')));
});

t.test('start() with the device missing: never throws, retries, replays when it appears', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lamp-port-'));
  const pair: Pair = { dir, a: join(dir, 'ttyUSB-a'), b: join(dir, 'ttyUSB-b'), proc: null };
  t.teardown(async () => {
    await unplug(pair);
    await rm(dir, { recursive: true, force: true });
  });
  const { port, ev } = makePort(t, { path: pair.a, profile: relayProfile(), render: relayRender });
  t.doesNotThrow(() => port.start());
  port.set(7, 'on');
  await until(() => ev.lost.length >= 1, 'lost (cannot open)');
  t.match(ev.lost[0], /ENOENT|no such file/i);
  t.equal(port.status().open, false);
  await port.idle();
  const dev = await replug(t, pair, 4);
  await until(() => ev.opened >= 1, 'opened');
  await port.idle();
  await until(() => dev.frames.length >= 1, 'replayed');
  t.equal(dev.bytes(), hex(lcus(7, 'on')));
  t.equal(ev.lost.length, 1);
});

t.test('tower: one command carries every colour; changes in one tick and while slow coalesce', async (t) => {
  const pair = await pairFor(t);
  const dev = await deviceFor(t, pair, 4, () => ({ reply: [0x06], delayMs: 200 }));
  const { port, ev } = makePort(t, { path: pair.a, profile: towerProfile(ACK(3000, 1)), render: towerRender });
  port.set('red', 'on'); // before open: replayed as one command
  port.set('green', 'flash');
  port.start();
  await until(() => ev.opened >= 1, 'open');
  await until(() => dev.frames.length >= 1, 'replay in flight');
  port.set('amber', 'on');
  port.set('red', 'off');
  port.set('green', 'off');
  port.set('amber', 'flash');
  await port.idle();
  await until(() => dev.frames.length >= 2, 'two frames');
  t.same(
    dev.frames.map((f) => f.toString('hex')),
    ['57010002', '57000200'],
  );
  port.set('amber', 'flash'); // no change
  port.set('red', 'on');
  await port.idle();
  await until(() => dev.frames.length >= 3, 'three frames');
  t.equal(dev.frames[2]!.toString('hex'), '57010200');
});

t.test('several ports at once: each its own bytes; one unplugged does not disturb the others', async (t) => {
  const pairs = await Promise.all([pairFor(t, 'p1'), pairFor(t, 'p2'), pairFor(t, 'p3')]);
  const devs = await Promise.all([
    deviceFor(t, pairs[0]!, 4),
    deviceFor(t, pairs[1]!, 4, () => ({ reply: [0x06], delayMs: 30 })),
    deviceFor(t, pairs[2]!, 4),
  ]);
  const ports = new LampPorts();
  const p1 = makePort(t, { id: 'relay-a', path: pairs[0]!.a, profile: relayProfile(), render: relayRender });
  const p2 = makePort(t, { id: 'relay-ack', path: pairs[1]!.a, profile: relayProfile(ACK(2000, 1)), render: relayRender });
  const p3 = makePort(t, { id: 'tower', path: pairs[2]!.a, profile: towerProfile(), render: towerRender });
  ports.add(p1.port);
  ports.add(p2.port);
  ports.add(p3.port);
  t.throws(() => ports.add(p1.port), /already defined/);
  t.equal(ports.get('relay-ack'), p2.port);
  t.equal(ports.get('nope'), undefined);
  ports.startAll();
  await until(() => p1.ev.opened + p2.ev.opened + p3.ev.opened >= 3, 'all open');

  // Several desks per port: desk A on channels 1-2, desk B on 3-4.
  p1.port.set(1, 'on');
  p1.port.set(3, 'on');
  p2.port.set(2, 'flash');
  p2.port.set(4, 'on');
  p3.port.set('red', 'on');
  await ports.idle();
  await until(() => devs[0]!.frames.length >= 2 && devs[1]!.frames.length >= 2 && devs[2]!.frames.length >= 1, 'frames');
  t.equal(devs[0]!.bytes(), hex(lcus(1, 'on'), lcus(3, 'on')));
  t.equal(devs[1]!.bytes(), hex(lcus(2, 'flash'), lcus(4, 'on')));
  t.equal(devs[2]!.bytes(), '57010000');
  t.same(
    ports.status().map((s) => [s.id, s.open]),
    [
      ['relay-a', true],
      ['relay-ack', true],
      ['tower', true],
    ],
  );

  await devs[1]!.close();
  await unplug(pairs[1]!);
  await until(() => p2.ev.lost.length >= 1, 'relay-ack lost');
  p1.port.set(1, 'off');
  p2.port.set(2, 'off');
  p3.port.set('green', 'on');
  await ports.idle();
  await until(() => devs[0]!.frames.length >= 3 && devs[2]!.frames.length >= 2, 'the others keep working');
  t.equal(devs[0]!.frames[2]!.toString('hex'), lcus(1, 'off').toString('hex'));
  t.equal(devs[2]!.frames[1]!.toString('hex'), '57010001');
  t.same(
    ports.status().map((s) => [s.id, s.open]),
    [
      ['relay-a', true],
      ['relay-ack', false],
      ['tower', true],
    ],
  );

  await ports.stopAll();
  t.same(
    ports.status().map((s) => s.open),
    [false, false, false],
  );
  t.equal(p1.ev.lost.length + p3.ev.lost.length, 0, 'stopping is not losing');
});

t.test('stop(): closes cleanly, no events after, the device can be opened again', async (t) => {
  const pair = await pairFor(t);
  const dev = await deviceFor(t, pair, 4, () => null);
  const { port, ev } = makePort(t, { path: pair.a, profile: relayProfile(ACK(10_000, 5)), render: relayRender });
  port.start();
  await until(() => ev.opened >= 1, 'open');
  port.set(1, 'on');
  await until(() => dev.frames.length >= 1, 'a command waiting for an ack');
  await port.stop(); // does not wait for the silent device
  await port.idle();
  const st = port.status();
  t.equal(st.open, false);
  t.same(ev.lost, []);
  t.same(ev.failed, []);
  port.set(2, 'on'); // harmless after stop
  port.start(); // no restart after stop
  await port.stop(); // twice is fine

  // The port is released: another driver opens the same path and writes.
  const again = makePort(t, { id: 'again', path: pair.a, profile: relayProfile(), render: relayRender });
  again.port.start();
  await until(() => again.ev.opened >= 1, 'reopened by another driver');
  again.port.set(8, 'on');
  await again.port.idle();
  await until(() => dev.frames.length >= 2, 'its frame');
  t.equal(dev.frames[1]!.toString('hex'), lcus(8, 'on').toString('hex'));
  t.equal(ev.opened, 1);
});

t.test('stop() while the device is missing ends the reopen attempts', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lamp-port-'));
  const pair: Pair = { dir, a: join(dir, 'ttyACM-a'), b: join(dir, 'ttyACM-b'), proc: null };
  t.teardown(async () => {
    await unplug(pair);
    await rm(dir, { recursive: true, force: true });
  });
  const { port, ev } = makePort(t, { path: pair.a, profile: relayProfile(), render: relayRender });
  port.start();
  await until(() => ev.lost.length >= 1, 'lost');
  await port.stop();
  await plug(pair);
  await sleep(400); // longer than the backoff ceiling (200 ms): it would have reopened by now
  t.equal(ev.opened, 0);
  t.equal(port.status().open, false);
});

t.test('a throwing render or event handler does not break the port', async (t) => {
  const pair = await pairFor(t);
  const dev = await deviceFor(t, pair, 4);
  const render: LampRender = (output, mode) => {
    if (output === 'bad') throw new Error('no such output');
    return [lcus(Number(output), mode)];
  };
  const port = new LampPort(
    { id: 'x', path: pair.a, profile: relayProfile(), render },
    {
      opened: () => {
        throw new Error('handler bug');
      },
      lost: () => {},
      commandFailed: () => {},
    },
    quietLog,
  );
  t.teardown(() => port.stop());
  port.set('bad', 'on');
  port.set(2, 'on');
  port.start();
  await until(() => port.status().open, 'open');
  await port.idle();
  await until(() => dev.frames.length >= 1, 'the good output');
  t.equal(dev.bytes(), hex(lcus(2, 'on')));
});
