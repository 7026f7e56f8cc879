// Desk lamps over real serial ports (socat pty pairs) during SIPp-driven conference-ins: the
// device emulators check the exact bytes of every transition, the Patlite ACK/NAK handshake,
// and the replay of the whole state when a port is unplugged and plugged in again.
import t, { type Test } from 'tap';
import { flow, waitFor, settle, type Flow } from '../procedure/helpers.js';
import { startPtyPair, startEmulator, type LampEmulator } from '../helpers/lamp-emulator.js';
import { loadProfile, commandsFor } from '../../src/lamps/profile.js';
import { freePort } from '../helpers/ports.js';

const lcus = await loadProfile('hardware/profiles/lcus.yaml');
const patlite = await loadProfile('hardware/profiles/patlite-phe-3fb3.yaml');

const hex = (frames: Buffer[]) => frames.map((f) => f.toString('hex').toUpperCase().replace(/(..)(?!$)/g, '$1 '));
const ascii = (frames: Buffer[]) => frames.map((f) => f.toString('latin1'));

/** Frames that arrive after `from`, once the emulator has at least `n` more (and a short quiet moment). */
async function framesAfter(emu: LampEmulator, from: number, n: number): Promise<Buffer[]> {
  await emu.waitForFrames(from + n, 8000);
  await new Promise((r) => setTimeout(r, 150));
  return emu.frames.slice(from);
}

/** Wait until the desk lamp has shown `state` (in order of lamp.changed events). */
async function shown(f: Flow, lamp: string, state: string): Promise<void> {
  await waitFor(() => (f.events['lamp.changed'] ?? []).some((e) => e.lamp === lamp && e.state === state), 10_000, `${lamp} ${state}`);
}

async function lampPort(t: Test, profile: typeof lcus) {
  const pty = await startPtyPair(t);
  const emu = await startEmulator(t, profile, pty.emuPath);
  return { pty, emu };
}

t.test('LCUS relay desk lamp through a request nobody answers: the exact bytes of each transition', async (t) => {
  const { pty, emu } = await lampPort(t, lcus);
  const f = await flow(t, {
    home: { scenario: 'region-ring.xml', calls: 2 },
    trunkHoldMs: 3500,
    config: {
      lamps: {
        ports: [{ id: 'relays', path: pty.devPath, profile: 'lcus' }],
        desks: [{ desk: 'desk-1', port: 'relays', outputs: { red: 1, amber: 2, green: 3 } }],
        system: { port: 'relays', outputs: { red: 8, green: 7 } },
        idleAfterS: 0.3,
      },
    },
  });
  // At start: desk dark, system lamp ok (green).
  let seen = await framesAfter(emu, 0, 5);
  t.same(new Set(hex(seen)), new Set(['A0 08 00 A8', 'A0 07 01 A8', 'A0 01 00 A1', 'A0 02 00 A2', 'A0 03 00 A3']), 'initial picture');
  let mark = emu.frames.length;
  await shown(f, 'desk-1', 'dialing');
  seen = await framesAfter(emu, mark, 1);
  t.same(hex(seen), ['A0 02 01 A3'], 'dialing: amber (flash is steady on a relay)');
  mark = emu.frames.length;
  await shown(f, 'desk-1', 'no-contact-pending');
  seen = await framesAfter(emu, mark, 2);
  t.same(hex(seen), ['A0 01 01 A2', 'A0 02 00 A2'], 'attempt 2 looked the same; no contact: red on, amber off');
  mark = emu.frames.length;
  await shown(f, 'desk-1', 'no-contact-delivered');
  await settle(f);
  await shown(f, 'desk-1', 'idle');
  seen = await framesAfter(emu, mark, 1);
  t.same(hex(seen), ['A0 01 00 A1'], 'delivered looks the same on a relay; dark after the call');
  t.same(emu.unknown, [], 'nothing but profile commands on the wire');
  t.same(emu.state(), { on: [7], colours: {} });
});

t.test('one desk, four relay boards (LCUS, KMtronic, Numato, Devantech): each gets its own exact bytes', async (t) => {
  const ids = ['lcus', 'kmtronic-usb-relay', 'numato-usb-relay', 'devantech-usb-rly08'];
  const boards = await Promise.all(ids.map(async (id) => {
    const profile = await loadProfile(`hardware/profiles/${id}.yaml`);
    return { id, profile, ...(await lampPort(t, profile)) };
  }));
  const f = await flow(t, {
    home: { scenario: 'region-ring.xml', calls: 2 },
    trunkHoldMs: 3500,
    config: {
      lamps: {
        ports: boards.map((b) => ({ id: b.id, path: b.pty.devPath, profile: b.id })),
        desks: boards.map((b) => ({ desk: 'desk-1', port: b.id, outputs: { red: 1, amber: 2, green: 3 } })),
        idleAfterS: 0.3,
      },
    },
  });
  await shown(f, 'desk-1', 'no-contact-pending');
  await settle(f);
  await shown(f, 'desk-1', 'idle');
  for (const b of boards) {
    const cmd = (ch: number, on: boolean) => commandsFor(b.profile, ch, on ? 'on' : 'off')[0]!.toString('hex');
    const expected = [
      [cmd(1, false), cmd(2, false), cmd(3, false)].sort(), // dark at start (any order)
      [cmd(2, true)], // dialing: amber
      [cmd(1, true), cmd(2, false)], // no contact: red, amber off
      [cmd(1, false)], // dark after the call
    ];
    await b.emu.waitForFrames(7, 8000);
    const got = b.emu.frames.map((x) => x.toString('hex'));
    t.same([got.slice(0, 3).sort(), got.slice(3, 4), got.slice(4, 6), got.slice(6)], expected, `${b.id}: ${got.join(' | ')}`);
    t.same(b.emu.unknown, [], `${b.id}: only profile commands`);
  }
});

t.test('Patlite tower: escalation pictures, each command acknowledged, a NAK answered by sending again', async (t) => {
  const { pty, emu } = await lampPort(t, patlite);
  const dead = await freePort('tcp');
  emu.setAnswer((_frame, i) => (i === 2 ? 'nak' : undefined));
  const f = await flow(t, {
    // The attempt rings a while, so the dialing picture is on the wire before the next one
    // (a picture that changes while the previous command awaits its ACK is coalesced).
    home: { scenario: 'region-ring.xml' },
    region: { attempts: 1, ringTimerS: 0.6, escalationS: 1 },
    primaryUrl: () => `http://127.0.0.1:${dead}/down`,
    secondary: true,
    trunkHoldMs: 4000,
    config: {
      lamps: {
        ports: [{ id: 'tower', path: pty.devPath, profile: 'patlite-phe-3fb3' }],
        desks: [{ desk: 'desk-1', port: 'tower', outputs: { red: 'red', amber: 'amber', green: 'green', buzzer: 'buzzer' } }],
        idleAfterS: 0.3,
      },
    },
  });
  await shown(f, 'desk-1', 'escalation');
  await shown(f, 'desk-1', 'no-contact-delivered');
  await settle(f);
  await shown(f, 'desk-1', 'idle');
  await new Promise((r) => setTimeout(r, 300));
  // Each frame sets the whole tower: @??S <red><amber><green> 00 <buzzer> !  (0 off, 1 on, 2 flash)
  const frames = ascii(emu.frames);
  const distinct = frames.filter((x, i) => x !== frames[i - 1]);
  t.same(distinct, [
    '@??S000000!', // idle at start
    '@??S020000!', // dialing: amber flashes
    '@??S200000!', // no contact, message pending: red flashes
    '@??S220001!', // escalation: red and amber flash, buzzer (phone the region)
    '@??S100000!', // delivered through the secondary: red steady
    '@??S000000!', // dark after the call
  ]);
  t.equal(emu.answers[2], 'nak');
  t.equal(frames[3], frames[2], 'the NAKed command was sent again');
  t.ok(emu.answers.slice(3).every((a) => a === 'ack'));
  t.same(emu.unknown, []);
});

t.test('unplug during a connected call: the port is reported lost, and on replug the whole state is replayed', async (t) => {
  const { pty, emu } = await lampPort(t, lcus);
  const f = await flow(t, {
    home: { scenario: 'region-answer.xml' },
    trunkHoldMs: 4000,
    config: {
      lamps: {
        ports: [{ id: 'relays', path: pty.devPath, profile: 'lcus' }],
        desks: [{ desk: 'desk-1', port: 'relays', outputs: { red: 1, amber: 2, green: 3 } }],
        reopen: { initialMs: 100, maxMs: 400 },
      },
    },
  });
  await shown(f, 'desk-1', 'connected');
  await waitFor(() => emu.state().on.join() === '3', 5000, 'green on the device');
  await pty.unplug();
  await waitFor(() => (f.events['lamp.port'] ?? []).some((e) => !e.open), 5000, 'port lost');
  t.ok(f.bridge.lamps.service.systemState().faults.includes('port:relays'), 'the system lamp knows');
  const mark = emu.frames.length;
  await pty.replug();
  await waitFor(() => (f.events['lamp.port'] ?? []).filter((e) => e.open).length >= 2, 8000, 'port back');
  // The emulator reopens its end as the link comes back; bytes the bridge writes before that
  // are lost in the pty (the exact replay order is checked in lamp-port.test.ts).
  await waitFor(() => emu.state().on.join() === '3', 8000, 'green on again after the replug');
  const replay = hex(emu.frames.slice(mark));
  t.ok(replay.includes('A0 03 01 A4'), `the lit output was written again: ${replay.join(' | ')}`);
  t.ok(replay.every((f) => ['A0 01 00 A1', 'A0 02 00 A2', 'A0 03 01 A4'].includes(f)), 'only the desired state was replayed');
  t.same(emu.state().on, [3], 'the lamp shows the truth again');
  t.notOk(f.bridge.lamps.service.systemState().faults.includes('port:relays'));
  await settle(f);
});
