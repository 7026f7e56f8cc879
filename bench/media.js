#!/usr/bin/env node
// Media engine benchmark: `npm run build && node bench/media.js`.
//
// The engine (dist/media/engine.js: its worker thread owns every socket and the 20 ms clock) runs
// in this process. For each step, N three-party conferences are set up (3N endpoints, each
// configured sendrecv PCMU 20 ms), and a sender child process plays the 3N phones: every 20 ms it
// sends one 172-byte PCMU packet to every endpoint, spread over 4 slots of 5 ms, from a few
// sockets (SENDER_SOCKETS). The engine latches to those sockets (symmetric RTP) and sends the
// mix back to them; the sender does not read them (it stops libuv's reading through dgram
// internals — bench-only; if that hack fails it reads and counts them, and the summary says so;
// the kernel drops what overflows their receive buffers), so the return traffic costs it nothing. Three endpoints (conference 0) are
// played from a separate monitor socket that does read: their streams are checked for sequence
// continuity and arrival lateness at the receiver.
//
// After a 2 s warm-up, each step runs MEDIA_BENCH_S (10) seconds and reports:
//   - ticks late by > 20 ms (%): mixer ticks that started > 20 ms after their due time;
//   - packets sent late (%): RTP packets handed to the socket > 20 ms after their due time;
//   - worker CPU %: the worker thread's CPU time (/proc/thread-self/stat, user+system) per
//     wall time, and its event-loop utilisation;
//   - per-packet cost (µs): worker CPU time / (RTP packets received + sent);
//   - the sender's own CPU % and its slots late by > 20 ms (the sending side must not be the
//     bottleneck: a sender that falls behind makes the step invalid, and is flagged);
//   - at the monitor: received packets, sequence gaps, arrivals > 20 ms late.
// Target: >= 500 conferences with < 1 % of ticks and < 1 % of packets late. Rows at or below 500
// that miss it, and a summary whose best passing N is below 500, print TARGET MISSED. Exit 0.
//
// Env: MEDIA_BENCH_N=100,250,500,750  MEDIA_BENCH_S=10  SENDER_SOCKETS=4  MEDIA_BENCH_PORT=20000
// (first port of the engine's range). Results also go to bench/media-results.json.
import { fork } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const HERE = dirname(fileURLToPath(import.meta.url));
const TARGET_CONFS = 500;
const TARGET_LATE_PCT = 1;
const MISSED = 'TARGET MISSED';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (process.argv[2] === '--sender') runSender();
else await main();

// ---------------------------------------------------------------------------------------------
// Sender child: plays every phone.

function syncLookup(address, _family, cb) {
  cb(null, address, 4);
}

/** Stops libuv reading a bound dgram socket (bench-only hack; null when the internals differ). */
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

function bindSock(reading) {
  return new Promise((resolve, reject) => {
    const s = createSocket({ type: 'udp4', lookup: syncLookup });
    s.once('error', reject);
    s.bind({ address: '127.0.0.1', port: 0 }, () => {
      s.off('error', reject);
      s.on('error', () => {});
      let readingStopped = false;
      if (!reading) readingStopped = stopReading(s);
      if (!reading && !readingStopped) s.on('message', () => { returned++; });
      resolve(s);
    });
  });
}

let returned = 0;

function runSender() {
  const SLOTS = 4;
  const SLOT_MS = 20 / SLOTS;
  let socks = [];
  let monitor = null;
  let targets = []; // { port, sock, buf, seq, ts }
  let running = false;
  let t0 = 0;
  let slot = 0;
  const c = { slots: 0, slotsLate: 0, maxLate: 0, sent: 0, sendErrors: 0, cpu: process.cpuUsage(), since: performance.now() };
  const mon = new Map(); // ssrc -> { lastSeq, firstAt, firstTs, received, gaps, late, maxLate }
  // 1 kHz PCMU, exactly 20 cycles in 160 samples: the same payload every packet.
  const payload = Buffer.alloc(160);
  for (let i = 0; i < 160; i++) payload[i] = ulaw(Math.round(8000 * Math.sin((2 * Math.PI * 1000 * i) / 8000)));

  function resetCounters() {
    c.slots = 0; c.slotsLate = 0; c.maxLate = 0; c.sent = 0; c.sendErrors = 0; c.cpu = process.cpuUsage(); c.since = performance.now();
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
        return { port: tg.port, sock: tg.monitor ? monitor : socks[tg.sock], buf, seq: i & 0xffff, ts: i * 1000 };
      });
      process.send({ cmd: 'targets' });
    } else if (msg.cmd === 'go') {
      running = true;
      t0 = performance.now();
      slot = 0;
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

/** G.711 µ-law encode (bias 0x84, clip 32635). */
function ulaw(sample) {
  const sign = sample < 0 ? 0x80 : 0;
  let s = Math.min(Math.abs(sample), 32635) + 0x84;
  let exp = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exp > 0; mask >>= 1) exp--;
  const mant = (s >> (exp + 3)) & 0x0f;
  return ~(sign | (exp << 4) | mant) & 0xff;
}

// ---------------------------------------------------------------------------------------------
// Main: the engine and the steps.

/** Rejects when `p` does not settle within `ms`. */
function within(p, ms, what) {
  let timer;
  return Promise.race([p, new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(timer));
}

function ask(child, msg, ms = 30_000) {
  return within(askRaw(child, msg), ms, `sender ${msg.cmd}`);
}

function askRaw(child, msg) {
  return new Promise((resolve, reject) => {
    const onMsg = (m) => {
      if (m.cmd === msg.cmd) {
        child.off('message', onMsg);
        child.off('exit', onExit);
        resolve(m);
      }
    };
    const onExit = (code) => reject(new Error(`sender exited (${code})`));
    child.on('message', onMsg);
    child.once('exit', onExit);
    child.send(msg);
  });
}

async function runStep(MediaEngine, n, seconds, sockets, portBase) {
  const endpoints = 3 * n;
  const engine = await MediaEngine.start({
    address: '127.0.0.1', portMin: portBase, portMax: portBase + 2 * endpoints + 400, rtcpIntervalMs: 5000,
  });
  const errors = [];
  engine.on('error', (e) => errors.push(e.message));
  const sender = fork(fileURLToPath(import.meta.url), ['--sender'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const open = await ask(sender, { cmd: 'open', sockets });
    const eps = [];
    for (let i = 0; i < endpoints; i++) eps.push(await engine.allocate());
    const targets = eps.map((ep, i) => ({ port: ep.port, sock: i % sockets, monitor: i < 3 }));
    eps.forEach((ep, i) => {
      const port = i < 3 ? open.monitorPort : open.ports[i % sockets];
      engine.configure(ep.id, {
        remote: { address: '127.0.0.1', port, rtcpPort: port }, codec: 'PCMU', payloadType: 0, telephoneEvent: 101,
        ptimeMs: 20, direction: 'sendrecv', latchNetworks: [],
      });
    });
    for (let c = 0; c < n; c++) engine.setConference(`conf${c}`, [eps[3 * c].id, eps[3 * c + 1].id, eps[3 * c + 2].id]);
    await ask(sender, { cmd: 'targets', targets });
    await ask(sender, { cmd: 'go' });
    await sleep(2000);
    await within(engine.engineStats(true), 30_000, 'engine stats');
    await ask(sender, { cmd: 'reset' });
    const taskBefore = threadTimes();
    const loadBefore = loadavg()[0];
    await sleep(seconds * 1000);
    const loadAfter = loadavg()[0];
    const s = await within(engine.engineStats(true), 30_000, 'engine stats');
    const snd = await ask(sender, { cmd: 'report' });
    const taskAfter = threadTimes();
    const epStats = await within(engine.stats(), 30_000, 'endpoint stats');
    const latched = epStats.filter((x) => x.latchedTo !== null).length;
    const procThreads = diffThreads(taskBefore, taskAfter, s.elapsedMs);
    sender.send({ cmd: 'stop' });
    await engine.stop();
    const rtpPackets = s.packetsIn + s.packetsOut;
    const cpuMs = s.cpuMs ?? s.utilisation * s.elapsedMs;
    return {
      conferences: n,
      endpoints,
      seconds: s.elapsedMs / 1000,
      packetsInPerS: s.packetsIn / (s.elapsedMs / 1000),
      packetsOutPerS: s.packetsOut / (s.elapsedMs / 1000),
      expectedPerS: endpoints * 50,
      ticks: s.ticks,
      ticksLatePct: (100 * s.ticksLate) / Math.max(1, s.ticks),
      maxTickLateMs: s.maxTickLateMs,
      meanTickLateMs: s.meanTickLateMs,
      ticksSkipped: s.ticksSkipped,
      meanTickWorkMs: s.meanTickWorkMs,
      maxTickWorkMs: s.maxTickWorkMs,
      packetsOutLatePct: (100 * s.packetsOutLate) / Math.max(1, s.packetsOut),
      workerCpuPct: (100 * cpuMs) / s.elapsedMs,
      workerSysPct: s.cpuSysMs === null ? null : (100 * s.cpuSysMs) / s.elapsedMs,
      workerUtilisationPct: 100 * s.utilisation,
      perPacketUs: (cpuMs * 1000) / Math.max(1, rtpPackets),
      latched,
      rejectedSource: s.rejectedSource,
      unknownPayload: s.unknownPayload,
      processThreads: procThreads,
      sender: {
        cpuPct: snd.cpuPct,
        sentPerS: snd.sent / (snd.elapsedMs / 1000),
        slotsLatePct: (100 * snd.slotsLate) / Math.max(1, snd.slots),
        maxSlotLateMs: snd.maxSlotLateMs,
        readingReturnTraffic: snd.returnedRead > 0,
      },
      monitor: snd.monitor,
      loadAvg: [loadBefore, loadAfter],
      errors: errors.slice(0, 5),
    };
  } catch (err) {
    try { sender.kill('SIGKILL'); } catch { /* gone */ }
    try { await engine.stop(); } catch { /* gone */ }
    throw err;
  }
}

/** CPU ticks (user+system) of every thread of this process, by tid. */
function threadTimes() {
  const out = new Map();
  try {
    for (const tid of readdirSyncSafe('/proc/self/task')) {
      const s = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      out.set(tid, { name, ticks: Number(f[11]) + Number(f[12]) });
    }
  } catch { /* not Linux */ }
  return out;
}

function readdirSyncSafe(dir) {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function diffThreads(before, after, elapsedMs) {
  const rows = [];
  for (const [tid, a] of after) {
    const b = before.get(tid);
    const d = a.ticks - (b ? b.ticks : 0);
    if (d > 0) rows.push({ tid, name: a.name, cpuPct: Math.round((d * 10 * 100) / elapsedMs) });
  }
  return rows.sort((x, y) => y.cpuPct - x.cpuPct).slice(0, 4);
}

function fmt(x, d = 1) {
  return Number.isFinite(x) ? x.toFixed(d) : String(x);
}

async function main() {
  let MediaEngine;
  try {
    ({ MediaEngine } = await import('../dist/media/engine.js'));
  } catch (err) {
    console.error(`cannot load ../dist/media/engine.js (run npm run build first): ${err.message}`);
    process.exit(0);
  }
  const steps = (process.env.MEDIA_BENCH_N ?? '100,250,500,750').split(',').map(Number).filter((x) => x > 0);
  const seconds = Number(process.env.MEDIA_BENCH_S ?? 10) || 10;
  const sockets = Number(process.env.SENDER_SOCKETS ?? 4) || 4;
  const portBase = Number(process.env.MEDIA_BENCH_PORT ?? 20000) || 20000;
  console.log(`# media engine benchmark: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, node ${process.version}, ${seconds} s per step, ${sockets} sender sockets`);
  const results = [];
  for (const n of steps) {
    process.stdout.write(`# ${n} conferences (${3 * n} endpoints)…\n`);
    try {
      const r = await runStep(MediaEngine, n, seconds, sockets, portBase);
      results.push(r);
    } catch (err) {
      console.log(`# ${n} conferences: ERROR ${err.stack ?? err}`);
      results.push({ conferences: n, error: String(err.message ?? err) });
    }
    await sleep(500);
  }

  const header = ['confs', 'endpts', 'pkts in/s', 'pkts out/s', 'ticks late>20ms', 'max tick late', 'pkts sent late', 'worker CPU', 'µs/packet', 'sender CPU', 'sender late', 'monitor late/gaps', ''];
  const rows = results.map((r) => {
    if (r.error) return [String(r.conferences), '', '', '', '', '', '', '', '', '', '', '', `ERROR ${r.error}`];
    const late = r.ticksLatePct >= TARGET_LATE_PCT || r.packetsOutLatePct >= TARGET_LATE_PCT;
    const senderBad = r.sender.slotsLatePct >= TARGET_LATE_PCT;
    const notes = [];
    if (late && r.conferences <= TARGET_CONFS) notes.push(MISSED);
    else if (late) notes.push('(over target load)');
    if (senderBad) notes.push('SENDER SATURATED: step invalid');
    if (r.packetsInPerS < 0.95 * r.expectedPerS) notes.push('engine received < 95 % of what was sent');
    return [
      String(r.conferences), String(r.endpoints), fmt(r.packetsInPerS, 0), fmt(r.packetsOutPerS, 0),
      `${fmt(r.ticksLatePct, 2)} %`, `${fmt(r.maxTickLateMs)} ms`, `${fmt(r.packetsOutLatePct, 2)} %`,
      `${fmt(r.workerCpuPct)} % (sys ${fmt(r.workerSysPct)} %, elu ${fmt(r.workerUtilisationPct)} %)`, fmt(r.perPacketUs, 2),
      `${fmt(r.sender.cpuPct)} %`, `${fmt(r.sender.slotsLatePct, 2)} %`,
      `${r.monitor.lateArrivals}/${r.monitor.gaps} of ${r.monitor.received}`, notes.join('; '),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  console.log(line(header));
  for (const r of rows) console.log(line(r));
  const passing = results.filter((r) => !r.error && r.ticksLatePct < TARGET_LATE_PCT && r.packetsOutLatePct < TARGET_LATE_PCT && r.sender.slotsLatePct < TARGET_LATE_PCT);
  const best = passing.reduce((m, r) => Math.max(m, r.conferences), 0);
  console.log(`best: ${best} three-party conferences with < ${TARGET_LATE_PCT} % late (target >= ${TARGET_CONFS})${best >= TARGET_CONFS ? '' : `  ${MISSED}`}`);
  for (const r of results) {
    if (r.error) continue;
    console.log(`# ${r.conferences}: tick work mean ${fmt(r.meanTickWorkMs, 2)} ms max ${fmt(r.maxTickWorkMs)} ms; mean tick lateness ${fmt(r.meanTickLateMs, 2)} ms; skipped ${r.ticksSkipped}; latched ${r.latched}/${r.endpoints}; sender ${fmt(r.sender.sentPerS, 0)} pkt/s, max slot late ${fmt(r.sender.maxSlotLateMs)} ms${r.sender.readingReturnTraffic ? ' (sender had to read the return traffic)' : ''}; monitor max arrival late ${fmt(r.monitor.maxArrivalLateMs)} ms; load average ${fmt(r.loadAvg[0], 2)} → ${fmt(r.loadAvg[1], 2)}; busiest threads ${r.processThreads.map((x) => `${x.name}:${x.cpuPct}%`).join(' ')}${r.errors.length ? `; errors: ${r.errors.join(' | ')}` : ''}`);
  }
  try {
    writeFileSync(join(HERE, 'media-results.json'), JSON.stringify({ at: new Date().toISOString(), node: process.version, cpus: cpus().length, seconds, results, best }, null, 2) + '\n');
  } catch { /* read-only checkout */ }
  process.exit(0);
}
