#!/usr/bin/env node
// Lamp benchmark: `npm run build && node bench/lamps.js`.
//
// Event → lamp bytes on the wire. The lamp layer (dist/lamps/lamps.js: profiles, LampService,
// LampPort on a real serial device) runs in this process on a socat pty pair; a plain
// `serialport` reads the other end. Each sample emits one `request.state` event on the bus that
// changes the desk lamp (alternating dialing / connected / no-contact / idle pictures) and
// measures the time until every byte of the change has arrived on the other end of the pty.
// Samples are spaced (LAMP_BENCH_GAP_MS, default 20 ms) so the figure is the path, not a queue.
// Two devices: LCUS relays (no acknowledgement) and a Patlite tower whose emulated end answers
// ACK (06) at once, so the handshake is part of the figure.
// Target: p99 < 10 ms. Env: LAMP_BENCH_N=1000. Results also go to bench/lamps-results.json.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SerialPort } from 'serialport';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const { startLamps } = await import(join(ROOT, 'dist/lamps/lamps.js'));
const { EventBus } = await import(join(ROOT, 'dist/core/events.js'));
const N = Number(process.env.LAMP_BENCH_N ?? 1000);
const GAP_MS = Number(process.env.LAMP_BENCH_GAP_MS ?? 20);
const TARGET_P99_MS = 10;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function ptyPair(dir) {
  const dev = join(dir, 'dev');
  const emu = join(dir, 'emu');
  const socat = spawn('socat', [`pty,raw,echo=0,link=${dev}`, `pty,raw,echo=0,link=${emu}`], { stdio: 'ignore' });
  for (let i = 0; i < 100 && !(existsSync(dev) && existsSync(emu)); i++) await sleep(20);
  if (!existsSync(dev)) throw new Error('socat did not create the pty pair');
  return { dev, emu, socat };
}

// Each picture and the number of bytes its change puts on the wire, per device.
const STATES = ['dialing', 'connected', 'no-contact', 'aborted'];

async function run(device) {
  const dir = mkdtempSync(join(tmpdir(), 'amk-lamp-bench-'));
  const { dev, emu, socat } = await ptyPair(dir);
  const bus = new EventBus();
  const quiet = { info() {}, warn() {}, debug() {} };
  const outputs = device === 'lcus' ? { red: 1, amber: 2, green: 3 } : { red: 'red', amber: 'amber', green: 'green', buzzer: 'buzzer' };
  const profile = device === 'lcus' ? 'lcus' : 'patlite-phe-3fb3';
  const frameEnd = device === 'lcus' ? null : 0x21; // '!'
  const reader = new SerialPort({ path: emu, baudRate: 9600 });
  let received = 0;
  let lastAt = 0n;
  reader.on('data', (d) => {
    lastAt = process.hrtime.bigint();
    received += d.length;
    // Patlite frames end with '!' and are acknowledged at once (06), as the device does.
    if (frameEnd !== null && d.includes(frameEnd)) reader.write(Buffer.from([0x06]));
  });
  const opened = new Promise((r) => bus.on('lamp.port', (e) => e.open && r()));
  const lamps = await startLamps({
    profilesDir: join(ROOT, 'hardware/profiles'), ports: [{ id: 'p', path: dev, profile }],
    desks: [{ desk: 'desk-1', port: 'p', outputs }], system: null, deskStates: {}, systemStates: {},
    idleAfterS: 10, outboxBacklogAlarm: 1, reopen: { initialMs: 100, maxMs: 1000 },
  }, bus, quiet);
  await opened;
  await lamps.ports.idle();
  await sleep(200);
  const samples = [];
  for (let i = 0; i < N + 50; i++) {
    const state = STATES[i % STATES.length];
    const before = received;
    const t0 = process.hrtime.bigint();
    bus.emit('request.state', { requestId: 'r', callId: 'c', desk: 'desk-1', state, attempt: 1, region: 'x', at: Date.now() });
    await lamps.ports.idle();
    // A quiet gap: every byte of this change has arrived; the last one's arrival is the figure.
    await sleep(GAP_MS);
    if (received > before && i >= 50) samples.push(Number(lastAt - t0) / 1e6);
  }
  await lamps.stop();
  await new Promise((r) => reader.close(() => r()));
  socat.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  samples.sort((a, b) => a - b);
  return { device, n: samples.length, p50: pct(samples, 50), p90: pct(samples, 90), p99: pct(samples, 99), max: samples.at(-1) };
}

const results = [];
for (const device of ['lcus', 'patlite']) {
  try {
    results.push(await run(device));
  } catch (err) {
    results.push({ device, error: String(err.message ?? err) });
  }
}
console.log('\nEvent → lamp bytes at the far end of the serial port (ms)');
console.log('device     samples     p50     p90     p99     max   target p99 < 10 ms');
for (const r of results) {
  if (r.error) {
    console.log(`${r.device.padEnd(10)} ERROR ${r.error}`);
    continue;
  }
  const f = (v) => v.toFixed(2).padStart(7);
  console.log(`${r.device.padEnd(10)} ${String(r.n).padStart(7)} ${f(r.p50)} ${f(r.p90)} ${f(r.p99)} ${f(r.max)}   ${r.p99 < TARGET_P99_MS ? 'ok' : 'TARGET MISSED'}`);
}
writeFileSync(join(HERE, 'lamps-results.json'), JSON.stringify({ at: new Date().toISOString(), node: process.version, cpus: cpus().length, results }, null, 2) + '\n');
