// The lamp device emulator on a real socat pty pair: a plain serialport on the device side writes
// the bytes each shipped profile gives, and the emulator must cut them into frames, keep the
// device state, answer ACK/NAK for the Patlite, and survive unplug/replug on the same link path.
import { readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SerialPort } from 'serialport';
import t, { type Test } from 'tap';
import { commandsFor, loadProfiles } from '../../src/lamps/profile.js';
import { formatHex } from '../../src/lamps/template.js';
import type { LampMode, LampProfile } from '../../src/lamps/types.js';
import { inferFraming, startEmulator, startPtyPair, type LampEmulator } from '../helpers/lamp-emulator.js';

const PROFILE_DIR = fileURLToPath(new URL('../../hardware/profiles', import.meta.url));
const profiles = await loadProfiles(PROFILE_DIR);

function profile(id: string): LampProfile {
  const p = profiles.find((x) => x.id === id);
  if (!p) throw new Error(`no profile ${id}`);
  return p;
}

interface Device {
  port: SerialPort;
  /** Everything the emulator sent back. */
  received(): Buffer;
  write(bytes: Buffer | readonly Buffer[]): Promise<void>;
  waitForBytes(n: number, timeoutMs?: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** The code-under-test side: a plain serialport on the device path. */
async function openDevice(t: Test, path: string, p: LampProfile): Promise<Device> {
  const port = new SerialPort({ path, baudRate: p.serial.baudRate, dataBits: p.serial.dataBits, parity: p.serial.parity, stopBits: p.serial.stopBits, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  let rx = Buffer.alloc(0);
  port.on('data', (d: Buffer) => {
    rx = Buffer.concat([rx, d]);
  });
  port.on('error', () => undefined);
  const close = (): Promise<void> => (port.isOpen ? new Promise<void>((resolve) => port.close(() => resolve())) : Promise.resolve());
  t.teardown(close);
  return {
    port,
    received: () => rx,
    async write(bytes) {
      const data = Buffer.isBuffer(bytes) ? bytes : Buffer.concat(bytes as Buffer[]);
      await new Promise<void>((resolve, reject) => port.write(data, (err) => (err ? reject(err) : resolve())));
      await new Promise<void>((resolve) => port.drain(() => resolve()));
    },
    async waitForBytes(n, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      while (rx.length < n) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} bytes, got ${formatHex(rx)}`);
        await sleep(5);
      }
      return rx;
    },
    close,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function cmd(p: LampProfile, output: number | string, mode: LampMode, state?: Record<string, LampMode>): Buffer {
  return commandsFor(p, output, mode, state)[0] as Buffer;
}

function hexes(frames: readonly Buffer[]): string[] {
  return frames.map((f) => formatHex(f));
}

async function setup(t: Test, id: string, opts?: Parameters<typeof startEmulator>[3]): Promise<{ p: LampProfile; emu: LampEmulator; dev: Device; pty: Awaited<ReturnType<typeof startPtyPair>> }> {
  const p = profile(id);
  const pty = await startPtyPair(t);
  const emu = await startEmulator(t, p, pty.emuPath, opts);
  const dev = await openDevice(t, pty.devPath, p);
  return { p, emu, dev, pty };
}

t.test('framing inferred from each shipped profile', async (t) => {
  t.same(inferFraming(profile('lcus')), { type: 'fixed', length: 4 });
  t.same(inferFraming(profile('kmtronic-usb-relay')), { type: 'fixed', length: 3 });
  t.same(inferFraming(profile('devantech-usb-rly08')), { type: 'fixed', length: 1 });
  t.same(inferFraming(profile('numato-usb-relay')), { type: 'delimited', end: Buffer.from('\r') });
  t.same(inferFraming(profile('patlite-phe-3fb3')), { type: 'bracketed', start: Buffer.from('@'), end: Buffer.from('!') });
});

for (const id of ['lcus', 'kmtronic-usb-relay', 'devantech-usb-rly08', 'numato-usb-relay']) {
  t.test(`${id}: frames and relay state from a real pty`, async (t) => {
    const { p, emu, dev } = await setup(t, id);
    t.same(emu.state(), { on: [], colours: {} }, 'all off at start');
    // Several commands in one write, then one split across writes.
    const batch = [cmd(p, 1, 'on'), cmd(p, 3, 'on'), cmd(p, 8, 'on'), cmd(p, 1, 'off')];
    await dev.write(batch);
    await emu.waitForFrames(4);
    t.same(hexes(emu.frames), hexes(batch), 'one frame per command, in order');
    t.same(emu.state().on, [3, 8]);
    const flash = cmd(p, 2, 'flash');
    t.same(formatHex(flash), formatHex(cmd(p, 2, 'on')), 'flash is sent as on');
    if (flash.length > 1) {
      await dev.write(flash.subarray(0, 1));
      await sleep(30);
      t.equal(emu.frames.length, 4, 'half a command is no frame yet');
      await dev.write(flash.subarray(1));
    } else await dev.write(flash);
    await emu.waitForFrames(5);
    t.equal(formatHex(emu.frames[4] as Buffer), formatHex(flash), 'the split command is one frame');
    t.same(emu.state().on, [2, 3, 8]);
    await dev.write(cmd(p, 8, 'off'));
    await emu.waitForFrames(6);
    t.same(emu.state(), { on: [2, 3], colours: {} });
    t.same(emu.unknown, [], 'every frame was a known command');
    t.same(emu.answers, [], 'relay boards do not answer');
    await sleep(50);
    t.equal(dev.received().length, 0, 'nothing came back');
  });
}

t.test('unknown frames are recorded and change nothing', async (t) => {
  const { emu, dev } = await setup(t, 'lcus');
  await dev.write(Buffer.from([0xa0, 0x01, 0x01, 0x00]));
  await emu.waitForFrames(1);
  t.same(hexes(emu.unknown), ['A0 01 01 00'], 'a bad checksum is no command');
  t.same(emu.state().on, []);
});

t.test('Numato with echo: the command line echoes what it gets', async (t) => {
  const { p, emu, dev } = await setup(t, 'numato-usb-relay', { echo: true });
  const on = cmd(p, 4, 'on');
  await dev.write(on);
  await emu.waitForFrames(1);
  t.equal((emu.frames[0] as Buffer).toString(), 'relay on 3\r');
  t.same(emu.state().on, [4]);
  t.equal((await dev.waitForBytes(on.length)).toString(), 'relay on 3\r');
});

t.test('Patlite: @...! frames, tower state, ACK by default, NAK and silence by script', async (t) => {
  const { p, emu, dev } = await setup(t, 'patlite-phe-3fb3');
  t.same(emu.state(), { on: [], colours: { red: 'off', amber: 'off', green: 'off', buzzer: 'off' } });

  await dev.write(cmd(p, 'red', 'flash'));
  await emu.waitForFrames(1);
  t.equal(formatHex(await dev.waitForBytes(1)), '06', 'ACK');
  t.same(emu.state().colours, { red: 'flash', amber: 'off', green: 'off', buzzer: 'off' }, 'the tower flashes by itself');

  emu.setAnswer((_frame, i) => (i === 1 ? 'nak' : i === 2 ? 'silent' : undefined));
  await dev.write(cmd(p, 'green', 'on', { red: 'flash' }));
  await emu.waitForFrames(2);
  t.equal(formatHex(await dev.waitForBytes(2)), '06 15', 'NAK');
  t.equal(emu.state().colours['green'], 'off', 'a NAK-ed command changes nothing');

  await dev.write(cmd(p, 'green', 'on', { red: 'flash' }));
  await emu.waitForFrames(3);
  await sleep(100);
  t.equal(formatHex(dev.received()), '06 15', 'silence: no answer');
  t.equal(emu.state().colours['green'], 'off', 'an unanswered command changes nothing');

  await dev.write(cmd(p, 'green', 'on', { red: 'flash' }));
  await emu.waitForFrames(4);
  t.equal(formatHex(await dev.waitForBytes(3)), '06 15 06', 'back to the default: ACK');
  t.same(emu.state().colours, { red: 'flash', amber: 'off', green: 'on', buzzer: 'off' });
  t.same(emu.answers, ['ack', 'nak', 'silent', 'ack']);

  // Noise before the header is dropped; an unknown command gets NAK like the real device.
  emu.setAnswer(null);
  await dev.write(Buffer.concat([Buffer.from([0x00, 0xff]), Buffer.from('@??X!')]));
  await emu.waitForFrames(5);
  t.equal(formatHex(await dev.waitForBytes(4)), '06 15 06 15', 'unknown command: NAK');
  t.same(hexes(emu.dropped), ['00 FF']);
  t.same(hexes(emu.unknown), [formatHex(Buffer.from('@??X!'))]);
  t.equal(emu.state().colours['green'], 'on');

  // Two commands back to back (a driver that does not wait would do this): both answered.
  await dev.write([cmd(p, 'amber', 'on', { red: 'flash', green: 'on' }), cmd(p, 'buzzer', 'flash', { red: 'flash', green: 'on', amber: 'on' })]);
  await emu.waitForFrames(7);
  t.equal(formatHex(await dev.waitForBytes(6)), '06 15 06 15 06 06');
  t.same(emu.state().colours, { red: 'flash', amber: 'on', green: 'on', buzzer: 'flash' });
});

t.test('waitForFrames times out with what it got', async (t) => {
  const { emu } = await setup(t, 'kmtronic-usb-relay');
  await t.rejects(emu.waitForFrames(1, 100), /timed out after 100 ms waiting for 1 frames \(got 0/);
});

t.test('unplug/replug: same link path, the emulator reopens, a relay board comes back all off', async (t) => {
  const { p, emu, dev, pty } = await setup(t, 'kmtronic-usb-relay');
  await dev.write([cmd(p, 1, 'on'), cmd(p, 2, 'on')]);
  await emu.waitForFrames(2);
  t.same(emu.state().on, [1, 2]);
  const devTarget = readlinkSync(pty.devPath);

  const devClosed = new Promise<void>((resolve) => dev.port.once('close', () => resolve()));
  await pty.unplug();
  t.equal(pty.plugged, false);
  await devClosed;
  t.pass('the device side sees the port go away');
  await sleep(50);
  t.equal(emu.isOpen, false, 'the emulator lost its port');
  t.same(emu.state().on, [], 'a USB-powered board loses its state');
  await t.rejects(openDevice(t, pty.devPath, p), 'nothing to open while unplugged');

  await pty.replug();
  t.equal(pty.plugged, true);
  t.ok(readlinkSync(pty.devPath).startsWith('/dev/pts/'), `same link path ${pty.devPath} (was ${devTarget})`);
  await emu.waitForOpen(2);
  t.equal(emu.opens, 2);
  const dev2 = await openDevice(t, pty.devPath, p);
  await dev2.write([cmd(p, 1, 'on'), cmd(p, 2, 'on')]);
  await emu.waitForFrames(4);
  t.same(emu.state().on, [1, 2], 'the replayed state');
  t.same(hexes(emu.frames), ['FF 01 01', 'FF 02 01', 'FF 01 01', 'FF 02 01'], 'frames are kept across replug');

  await t.rejects(pty.replug(), /still plugged in/);
});

t.test('unplug/replug: a tower on its own power keeps its state; ACKs continue', async (t) => {
  const { p, emu, dev, pty } = await setup(t, 'patlite-phe-3fb3');
  await dev.write(cmd(p, 'red', 'on'));
  await dev.waitForBytes(1);
  await pty.unplug();
  await sleep(50);
  t.same(emu.state().colours['red'], 'on', 'state kept while unplugged');
  await pty.replug();
  await emu.waitForOpen(2);
  const dev2 = await openDevice(t, pty.devPath, p);
  await dev2.write(cmd(p, 'amber', 'on', { red: 'on' }));
  t.equal(formatHex(await dev2.waitForBytes(1)), '06');
  t.same(emu.state().colours, { red: 'on', amber: 'on', green: 'off', buzzer: 'off' });
});

t.test('resetOnUnplug can be set either way', async (t) => {
  const { p, emu, dev, pty } = await setup(t, 'lcus', { resetOnUnplug: false });
  await dev.write(cmd(p, 5, 'on'));
  await emu.waitForFrames(1);
  await pty.unplug();
  await pty.replug();
  await emu.waitForOpen(2);
  t.same(emu.state().on, [5]);
});

t.test('close stops the emulator; teardown kills socat and removes the links', async (t) => {
  let links: string[] = [];
  await t.test('inner', async (t) => {
    const { emu, pty } = await setup(t, 'devantech-usb-rly08');
    links = [pty.devPath, pty.emuPath, pty.dir];
    await emu.close();
    t.equal(emu.isOpen, false);
    await pty.unplug();
    await pty.replug();
    await sleep(100);
    t.equal(emu.isOpen, false, 'a closed emulator does not reopen');
  });
  const { existsSync } = await import('node:fs');
  for (const l of links) t.notOk(existsSync(l), `${l} is gone after teardown`);
});
