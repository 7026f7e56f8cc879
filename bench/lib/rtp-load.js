// The phones of the media benchmarks (bench/media.js, bench/sip-under-media.js): a child process
// that sends every target one 172-byte PCMU packet (a 1 kHz tone) every 20 ms, spread over 4
// slots of 5 ms (target i in slot i % 4), from a few sockets. The engine latches to those
// sockets (symmetric RTP) and sends its mix back to them; they do not read it (the kernel drops
// what overflows their receive buffers), so the return traffic costs the phones nothing. The
// monitor targets are played from a separate socket that does read: their streams are checked
// for sequence continuity and arrival lateness at the receiver.
//
// Two implementations of the same traffic and the same checks:
//   - 'c': bench/lib/rtp-load.c, built with `cc -O2` into the temp directory the first time
//     (one sendmmsg(2) per socket and slot, no per-packet JavaScript): on a 2-core machine the
//     phones must not take the CPU the engine under test needs;
//   - 'node': a forked Node process (dgram, one send per packet; it stops libuv reading the
//     phone sockets through dgram internals — if that fails it reads and counts the returns,
//     and its report says so).
// startRtpLoad() takes the C one when it builds (RTP_LOAD=node forces Node) and says which ran.
//
// Commands (ask(cmd) resolves with the answer): open {sockets} → {ports, monitorPort},
// targets {targets: [{port, sock, monitor}]}, go, reset, report → {elapsedMs, sent, slots,
// slotsLate, maxSlotLateMs, cpuPct, returnedRead, monitor: {streams, received, gaps,
// lateArrivals, maxArrivalLateMs}}, stop.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { spawnTracked } from './procs.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const C_SOURCE = join(HERE, 'rtp-load.c');
const SLOTS = 4;
const SLOT_MS = 20 / SLOTS;

/** G.711 µ-law encode (bias 0x84, clip 32635). */
function ulaw(sample) {
  const sign = sample < 0 ? 0x80 : 0;
  const s = Math.min(Math.abs(sample), 32635) + 0x84;
  let exp = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exp > 0; mask >>= 1) exp--;
  const mant = (s >> (exp + 3)) & 0x0f;
  return ~(sign | (exp << 4) | mant) & 0xff;
}

/** 1 kHz PCMU, exactly 20 cycles in 160 samples: the same payload every packet. */
export function tonePayload() {
  const payload = Buffer.alloc(160);
  for (let i = 0; i < 160; i++) payload[i] = ulaw(Math.round(8000 * Math.sin((2 * Math.PI * 1000 * i) / 8000)));
  return payload;
}

function within(p, ms, what) {
  let timer;
  return Promise.race([p, new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// C implementation

/** Path of the built C load generator, or null (with the reason) when it cannot be built. */
function buildC() {
  if (process.platform !== 'linux') return { bin: null, why: 'not Linux' };
  const src = readFileSync(C_SOURCE);
  const hash = createHash('sha256').update(src).digest('hex').slice(0, 12);
  const dir = join(tmpdir(), 'amk-bench-rtp-load');
  const bin = join(dir, `rtp-load-${hash}`);
  if (existsSync(bin)) return { bin, why: null };
  try {
    mkdirSync(dir, { recursive: true });
    const tmp = `${bin}.${process.pid}`;
    execFileSync(process.env.CC ?? 'cc', ['-O2', '-o', tmp, C_SOURCE], { stdio: ['ignore', 'ignore', 'pipe'] });
    renameSync(tmp, bin);
    return { bin, why: null };
  } catch (err) {
    return { bin: null, why: `cc failed: ${String(err.stderr ?? err.message).trim().split('\n')[0]}` };
  }
}

function startC(bin) {
  const child = spawnTracked('rtp-load', bin, [], { stdio: ['pipe', 'pipe', 'inherit'] });
  let buf = '';
  const waiting = []; // { word, resolve, reject }
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  void exited.then((st) => { for (const w of waiting.splice(0)) w.reject(new Error(`rtp-load exited (${st.code ?? st.signal})`)); });
  child.stdout.setEncoding('utf8').on('data', (s) => {
    buf += s;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const w = waiting.shift();
      if (!w) continue;
      if (line.startsWith('error')) w.reject(new Error(`rtp-load: ${line}`));
      else w.resolve(line);
    }
  });
  const call = (lines) => new Promise((resolve, reject) => {
    waiting.push({ resolve, reject });
    child.stdin.write(lines);
  });
  return {
    kind: 'c',
    child,
    exited,
    async ask(msg, ms = 30_000) {
      const answer = async () => {
        switch (msg.cmd) {
          case 'open': {
            const words = (await call(`payload ${tonePayload().toString('hex')}\n`), await call(`open ${msg.sockets}\n`)).split(' ');
            const m = words.indexOf('monitor');
            return { cmd: 'open', ports: words.slice(1, m).map(Number), monitorPort: Number(words[m + 1]), readingStopped: true };
          }
          case 'targets': {
            const lines = msg.targets.map((tg) => `target ${tg.port} ${tg.monitor ? 'm' : tg.sock}\n`).join('');
            await call(`${lines}targets\n`);
            return { cmd: 'targets' };
          }
          case 'report': {
            const line = await call('report\n');
            return { cmd: 'report', ...JSON.parse(line.slice('report '.length)) };
          }
          case 'go':
          case 'reset':
            await call(`${msg.cmd}\n`);
            return { cmd: msg.cmd };
          default:
            throw new Error(`rtp-load: unknown command ${msg.cmd}`);
        }
      };
      return within(answer(), ms, `rtp-load ${msg.cmd}`);
    },
    stop() {
      try { child.stdin.end('stop\n'); } catch { /* gone */ }
      const t = setTimeout(() => { try { child.kill('SIGKILL'); } catch { /* gone */ } }, 2000);
      return exited.finally(() => clearTimeout(t));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Node implementation (the child side runs when this file is executed with --sender)

function startNode() {
  const child = spawnTracked('rtp-load (node)', process.execPath, [fileURLToPath(import.meta.url), '--sender'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const askRaw = (msg) => new Promise((resolve, reject) => {
    const onMsg = (m) => {
      if (m.cmd === msg.cmd) {
        child.off('message', onMsg);
        resolve(m);
      }
    };
    child.on('message', onMsg);
    void exited.then((st) => reject(new Error(`sender exited (${st.code ?? st.signal})`)));
    child.send(msg);
  });
  return {
    kind: 'node',
    child,
    exited,
    ask: (msg, ms = 30_000) => within(askRaw(msg), ms, `sender ${msg.cmd}`),
    stop() {
      try { child.send({ cmd: 'stop' }); } catch { /* gone */ }
      const t = setTimeout(() => { try { child.kill('SIGKILL'); } catch { /* gone */ } }, 2000);
      return exited.finally(() => clearTimeout(t));
    },
  };
}

function syncLookup(address, _family, cb) {
  cb(null, address, 4);
}

/** Stops libuv reading a bound dgram socket (bench-only hack; false when the internals differ). */
function stopReading(sock) {
  for (const sym of Object.getOwnPropertySymbols(sock)) {
    const handle = sock[sym]?.handle;
    if (handle && typeof handle.recvStop === 'function') {
      handle.recvStop();
      return true;
    }
  }
  return false;
}

function runNodeSender() {
  let returned = 0;
  const bindSock = (reading) => new Promise((resolve, reject) => {
    const s = createSocket({ type: 'udp4', lookup: syncLookup });
    s.once('error', reject);
    s.bind({ address: '127.0.0.1', port: 0 }, () => {
      s.off('error', reject);
      s.on('error', () => {});
      if (!reading && !stopReading(s)) s.on('message', () => { returned++; });
      resolve(s);
    });
  });
  let socks = [];
  let monitor = null;
  let targets = []; // { port, sock, buf, seq, ts }
  let running = false;
  let t0 = 0;
  let slot = 0;
  const c = { slots: 0, slotsLate: 0, maxLate: 0, sent: 0, cpu: process.cpuUsage(), since: performance.now() };
  const mon = new Map(); // ssrc -> { lastSeq, firstAt, firstTs, received, gaps, late, maxLate }
  const payload = tonePayload();

  function resetCounters() {
    c.slots = 0; c.slotsLate = 0; c.maxLate = 0; c.sent = 0; c.cpu = process.cpuUsage(); c.since = performance.now();
    for (const m of mon.values()) { m.received = 0; m.gaps = 0; m.late = 0; m.maxLate = 0; }
  }

  function onMonitor(msg) {
    if (msg.length < 12 || (msg[1] >= 192 && msg[1] <= 223)) return;
    const now = performance.now();
    const seq = msg.readUInt16BE(2);
    const ts = msg.readUInt32BE(4);
    const ssrc = msg.readUInt32BE(8);
    let m = mon.get(ssrc);
    if (!m) {
      m = { lastSeq: seq, firstAt: now, firstTs: ts, received: 0, gaps: 0, late: 0, maxLate: 0 };
      mon.set(ssrc, m);
    } else if (((seq - m.lastSeq) & 0xffff) !== 1) m.gaps++;
    m.lastSeq = seq;
    m.received++;
    // Expected arrival from the timestamp; the earliest arrival so far defines the baseline.
    let late = now - (m.firstAt + ((ts - m.firstTs) >>> 0) / 8);
    if (late < 0) { m.firstAt += late; late = 0; }
    if (late > 20) m.late++;
    if (late > m.maxLate) m.maxLate = late;
  }

  function tick() {
    if (!running) return;
    const due = t0 + slot * SLOT_MS;
    const now = performance.now();
    const late = now - due;
    c.slots++;
    if (late > 20) c.slotsLate++;
    if (late > c.maxLate) c.maxLate = late;
    const k = slot % SLOTS;
    for (let i = k; i < targets.length; i += SLOTS) {
      const tg = targets[i];
      const b = tg.buf;
      b[2] = tg.seq >> 8; b[3] = tg.seq & 0xff;
      b.writeUInt32BE(tg.ts >>> 0, 4);
      tg.sock.send(b, tg.port, '127.0.0.1');
      tg.seq = (tg.seq + 1) & 0xffff;
      tg.ts = (tg.ts + 160) >>> 0;
      c.sent++;
    }
    slot++;
    const delay = t0 + slot * SLOT_MS - performance.now();
    if (delay >= 1) setTimeout(tick, delay);
    else setImmediate(tick);
  }

  process.on('message', async (msg) => {
    if (msg.cmd === 'open') {
      socks = await Promise.all(Array.from({ length: msg.sockets }, () => bindSock(false)));
      monitor = await bindSock(true);
      monitor.on('message', onMonitor);
      process.send({ cmd: 'open', ports: socks.map((s) => s.address().port), monitorPort: monitor.address().port, readingStopped: returned === 0 });
    } else if (msg.cmd === 'targets') {
      targets = msg.targets.map((tg, i) => {
        const buf = Buffer.alloc(172);
        buf[0] = 0x80; buf[1] = 0;
        buf.writeUInt32BE((0x10000000 + i) >>> 0, 8);
        payload.copy(buf, 12);
        return { port: tg.port, sock: tg.monitor ? monitor : socks[tg.sock % socks.length], buf, seq: i & 0xffff, ts: i * 1000 };
      });
      process.send({ cmd: 'targets' });
    } else if (msg.cmd === 'go') {
      running = true;
      t0 = performance.now();
      slot = 0;
      resetCounters();
      tick();
      process.send({ cmd: 'go' });
    } else if (msg.cmd === 'reset') {
      resetCounters();
      process.send({ cmd: 'reset' });
    } else if (msg.cmd === 'report') {
      const cpu = process.cpuUsage(c.cpu);
      const elapsed = performance.now() - c.since;
      const m = [...mon.values()];
      process.send({
        cmd: 'report',
        elapsedMs: elapsed,
        sent: c.sent,
        sendErrors: 0,
        slots: c.slots,
        slotsLate: c.slotsLate,
        maxSlotLateMs: c.maxLate,
        cpuPct: ((cpu.user + cpu.system) / 1000 / elapsed) * 100,
        returnedRead: returned,
        monitor: {
          streams: m.length,
          received: m.reduce((n, x) => n + x.received, 0),
          gaps: m.reduce((n, x) => n + x.gaps, 0),
          lateArrivals: m.reduce((n, x) => n + x.late, 0),
          maxArrivalLateMs: m.reduce((n, x) => Math.max(n, x.maxLate), 0),
        },
      });
    } else if (msg.cmd === 'stop') {
      running = false;
      for (const s of socks) s.close();
      monitor?.close();
      process.exit(0);
    }
  });
}

// ---------------------------------------------------------------------------------------------

let built = null;

/**
 * Starts the phones. `prefer`: 'c' (default; falls back to Node when it cannot be built) or
 * 'node' (env RTP_LOAD overrides). Returns { kind, why, child, ask(cmd), stop() }; `why` says
 * why the C one was not used.
 */
export function startRtpLoad(prefer = process.env.RTP_LOAD ?? 'c') {
  if (prefer === 'c') {
    built ??= buildC();
    if (built.bin) return { ...startC(built.bin), why: null };
    return { ...startNode(), why: built.why };
  }
  return { ...startNode(), why: `RTP_LOAD=${prefer}` };
}

if (process.argv[2] === '--sender' && process.argv[1] === fileURLToPath(import.meta.url)) runNodeSender();
