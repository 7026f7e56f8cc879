#!/usr/bin/env node
// Media benchmark: `npm run build && node bench/media.js`. Three parts (MEDIA_BENCH_PARTS=engine,floor,sip).
//
// 1. The engine alone. The engine (dist/media/engine.js: its worker thread owns every socket and
//    the 20 ms clock) runs in this process. For each step, N three-party conferences are set up
//    (3N endpoints, each configured sendrecv PCMU 20 ms), and the phones (bench/lib/rtp-load.js,
//    a child process) play the 3N legs: every 20 ms one 172-byte PCMU packet to every endpoint,
//    spread over 4 slots of 5 ms, from a few sockets (SENDER_SOCKETS). The engine latches to
//    those sockets (symmetric RTP) and sends the mix back to them; they do not read it (the
//    kernel drops what overflows their receive buffers), so the return traffic costs the phones
//    nothing. Three endpoints (conference 0) are played from a separate monitor socket that does
//    read: their streams are checked for sequence continuity and arrival lateness at the
//    receiver. The phones are a small C program (one sendmmsg per socket and slot) built with cc
//    on first use, so that on a 2-core machine they leave the engine its core; without a C
//    compiler (or with RTP_LOAD=node) they are a Node process — same traffic, same checks, more
//    CPU; the table says which ran.
//    After a 2 s warm-up, each step runs MEDIA_BENCH_S (10) seconds and reports:
//      - ticks late by > 20 ms (%): mixer ticks that started > 20 ms after their due time;
//      - packets sent late (%): RTP packets handed to the socket > 20 ms after their due time;
//      - worker CPU %: the worker thread's CPU time (/proc/thread-self/stat, user+system) per
//        wall time, and its event-loop utilisation;
//      - per-packet cost (µs): worker CPU time / (RTP packets received + sent);
//      - the phones' own CPU % and their slots late by > 20 ms (the sending side must not be the
//        bottleneck: phones that fall behind make the step invalid, and it is flagged);
//      - at the monitor: received packets, sequence gaps, arrivals > 20 ms late.
//    Target: >= 500 conferences with < 1 % of ticks and < 1 % of packets late. Rows at or below
//    500 that miss it, and a summary whose best passing N is below 500, print TARGET MISSED.
// 2. The floor (bench/lib/dgram-floor.js): the same sockets and traffic in a worker that only
//    receives and sends (one Buffer and one send() per packet, no jitter buffer, no mixing), for
//    FLOOR_N (250,500) conferences: the part of the per-packet cost that is Node's and the
//    kernel's, next to the budget (one core / packets per second at 500 conferences).
// 3. SIP call-setup latency while the daemon's own media worker carries SIP_MEDIA_CONFS (0 as a
//    control, then 200) three-party conferences: see bench/lib/sip-under-media.js. Needs SIPp and
//    tcpdump (skipped, and said so, without them).
// Exit 0 whatever the figures.
//
// Env: MEDIA_BENCH_N=100,250,500,750  MEDIA_BENCH_S=10  SENDER_SOCKETS=4  MEDIA_BENCH_PORT=20000
// (first port of the engine's range)  FLOOR_N=250,500  SIP_MEDIA_CONFS=0,200  RTP_LOAD=c|node
// BENCH_KEEP=1 (keep the SIP part's temporary directories). Results also go to
// bench/media-results.json.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sourceInfo } from './lib/about.js';
import { installExitHooks, stopAll } from './lib/procs.js';
import { startRtpLoad } from './lib/rtp-load.js';
import { runSipUnderMedia, sipUnderMediaMissing, sipUnderMediaReport } from './lib/sip-under-media.js';
import { startFloor } from './lib/dgram-floor.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const TARGET_CONFS = 500;
const TARGET_LATE_PCT = 1;
const MISSED = 'TARGET MISSED';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

await main();

// ---------------------------------------------------------------------------------------------
// Main: the engine and the steps.

/** Rejects when `p` does not settle within `ms`. */
function within(p, ms, what) {
  let timer;
  return Promise.race([p, new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(timer));
}

async function runStep(MediaEngine, n, seconds, sockets, portBase) {
  const endpoints = 3 * n;
  const engine = await MediaEngine.start({
    address: '127.0.0.1', portMin: portBase, portMax: portBase + 2 * endpoints + 400, rtcpIntervalMs: 5000,
  });
  const errors = [];
  engine.on('error', (e) => errors.push(e.message));
  const sender = startRtpLoad();
  const ask = (msg) => sender.ask(msg);
  try {
    const open = await ask({ cmd: 'open', sockets });
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
    await ask({ cmd: 'targets', targets });
    await ask({ cmd: 'go' });
    await sleep(2000);
    await within(engine.engineStats(true), 30_000, 'engine stats');
    await ask({ cmd: 'reset' });
    const taskBefore = threadTimes();
    const loadBefore = loadavg()[0];
    await sleep(seconds * 1000);
    const loadAfter = loadavg()[0];
    const s = await within(engine.engineStats(true), 30_000, 'engine stats');
    const snd = await ask({ cmd: 'report' });
    const taskAfter = threadTimes();
    const epStats = await within(engine.stats(), 30_000, 'endpoint stats');
    const latched = epStats.filter((x) => x.latchedTo !== null).length;
    const procThreads = diffThreads(taskBefore, taskAfter, s.elapsedMs);
    await sender.stop();
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
        kind: sender.kind,
        fallbackReason: sender.why,
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
    await sender.stop();
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
  installExitHooks();
  const parts = new Set((process.env.MEDIA_BENCH_PARTS ?? 'engine,floor,sip').split(','));
  const floorSteps = (process.env.FLOOR_N ?? '250,500').split(',').map(Number).filter((x) => x > 0);
  const steps = (process.env.MEDIA_BENCH_N ?? '100,250,500,750').split(',').map(Number).filter((x) => x > 0);
  const seconds = Number(process.env.MEDIA_BENCH_S ?? 10) || 10;
  const sockets = Number(process.env.SENDER_SOCKETS ?? 4) || 4;
  const portBase = Number(process.env.MEDIA_BENCH_PORT ?? 20000) || 20000;
  const sipCounts = (process.env.SIP_MEDIA_CONFS ?? '0,200').split(',').map(Number).filter((x) => x >= 0);
  const out = { at: new Date().toISOString(), source: sourceInfo(), node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? null, seconds, results: [], best: null, floor: null, sipUnderMedia: null };
  const save = () => {
    try {
      writeFileSync(join(HERE, 'media-results.json'), JSON.stringify(out, null, 2) + '\n');
    } catch { /* read-only checkout */ }
  };
  console.log(`# media benchmark: commit ${out.source.commit ?? '?'}${out.source.srcUncommittedChanges ? ' + uncommitted changes in src/' : ''}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, node ${process.version}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  if (parts.has('engine')) {
    console.log(`# 1. the engine alone: ${seconds} s per step, ${sockets} phone sockets`);
    out.results = await engineSteps(MediaEngine, steps, seconds, sockets, portBase);
    out.best = reportEngine(out.results);
    save();
  }
  if (parts.has('floor')) {
    console.log('');
    console.log(`# 2. the floor: Node's UDP sockets alone with the same traffic (receive, send one packet per socket per 20 ms; no jitter buffer, no mixing), ${seconds} s per step`);
    out.floor = [];
    for (const n of floorSteps) {
      try {
        out.floor.push(await floorStep(n, seconds, sockets, portBase));
      } catch (err) {
        console.log(`# floor ${n}: ERROR ${err.stack ?? err}`);
        out.floor.push({ conferences: n, error: String(err.message ?? err) });
      }
      await sleep(500);
    }
    reportFloor(out.floor, out.results);
    save();
  }
  if (parts.has('sip')) {
    console.log('');
    const missing = sipUnderMediaMissing();
    if (missing) {
      console.log(`3. SIP latency under media: skipped: ${missing}`);
      out.sipUnderMedia = { skipped: missing };
    } else {
      out.sipUnderMedia = await runSipUnderMedia(sipCounts, (s) => console.log(`# ${s}`));
      console.log('');
      for (const [i, l] of sipUnderMediaReport(out.sipUnderMedia, MISSED).entries()) console.log(i === 0 ? `3. ${l}` : l);
    }
    save();
  }
  await stopAll(1500);
  process.exit(0);
}

async function engineSteps(MediaEngine, steps, seconds, sockets, portBase) {
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
  return results;
}

/** Prints the engine table; returns the best passing conference count. */
function reportEngine(results) {
  const header = ['confs', 'endpts', 'pkts in/s', 'pkts out/s', 'ticks late>20ms', 'max tick late', 'pkts sent late', 'worker CPU', 'µs/packet', 'phones CPU', 'phones late', 'monitor late/gaps', ''];
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
      `${r.sender.kind} ${fmt(r.sender.cpuPct)} %`, `${fmt(r.sender.slotsLatePct, 2)} %`,
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
    console.log(`# ${r.conferences}: tick work mean ${fmt(r.meanTickWorkMs, 2)} ms max ${fmt(r.maxTickWorkMs)} ms; mean tick lateness ${fmt(r.meanTickLateMs, 2)} ms; skipped ${r.ticksSkipped}; latched ${r.latched}/${r.endpoints}; phones (${r.sender.kind}${r.sender.fallbackReason ? `: ${r.sender.fallbackReason}` : ''}) ${fmt(r.sender.sentPerS, 0)} pkt/s, max slot late ${fmt(r.sender.maxSlotLateMs)} ms${r.sender.readingReturnTraffic ? ' (they had to read the return traffic)' : ''}; monitor max arrival late ${fmt(r.monitor.maxArrivalLateMs)} ms; load average ${fmt(r.loadAvg[0], 2)} → ${fmt(r.loadAvg[1], 2)}; busiest threads ${r.processThreads.map((x) => `${x.name}:${x.cpuPct}%`).join(' ')}${r.errors.length ? `; errors: ${r.errors.join(' | ')}` : ''}`);
  }
  return best;
}

/** One floor step: N conferences' worth of sockets and traffic through bench/lib/dgram-floor.js. */
async function floorStep(n, seconds, sockets, portBase) {
  const endpoints = 3 * n;
  const floor = await startFloor({ endpoints, portMin: portBase });
  const sender = startRtpLoad();
  try {
    const open = await sender.ask({ cmd: 'open', sockets });
    await sender.ask({ cmd: 'targets', targets: floor.ports.map((port, i) => ({ port, sock: i % sockets, monitor: i < 3 })) });
    await sender.ask({ cmd: 'go' });
    void open;
    await sleep(2000);
    await floor.stats();
    await sender.ask({ cmd: 'reset' });
    await sleep(seconds * 1000);
    const s = await floor.stats();
    const snd = await sender.ask({ cmd: 'report' });
    const packets = s.packetsIn + s.packetsOut;
    return {
      conferences: n, endpoints, seconds: s.elapsedMs / 1000,
      packetsInPerS: s.packetsIn / (s.elapsedMs / 1000), packetsOutPerS: s.packetsOut / (s.elapsedMs / 1000), expectedPerS: endpoints * 50,
      cpuPct: s.cpuMs === null ? null : (100 * s.cpuMs) / s.elapsedMs,
      sysPct: s.cpuSysMs === null ? null : (100 * s.cpuSysMs) / s.elapsedMs,
      perPacketUs: s.cpuMs === null ? null : (s.cpuMs * 1000) / Math.max(1, packets),
      sysPerPacketUs: s.cpuSysMs === null ? null : (s.cpuSysMs * 1000) / Math.max(1, packets),
      sender: { kind: sender.kind, cpuPct: snd.cpuPct, slotsLatePct: (100 * snd.slotsLate) / Math.max(1, snd.slots) },
      loadAvg: loadavg()[0],
    };
  } finally {
    await sender.stop();
    await floor.stop();
  }
}

function reportFloor(floor, engine) {
  const header = ['confs', 'pkts in/s', 'pkts out/s', 'floor CPU', 'µs/packet (sys)', 'engine µs/packet', 'phones', ''];
  const rows = floor.map((r) => {
    if (r.error) return [String(r.conferences), '', '', '', '', '', '', `ERROR ${r.error}`];
    const e = engine.find((x) => !x.error && x.conferences === r.conferences);
    const notes = [];
    if (r.packetsInPerS < 0.95 * r.expectedPerS) notes.push('received < 95 % of what was sent');
    if (r.sender.slotsLatePct >= TARGET_LATE_PCT) notes.push('phones fell behind');
    return [
      String(r.conferences), fmt(r.packetsInPerS, 0), fmt(r.packetsOutPerS, 0), `${fmt(r.cpuPct)} %`,
      `${fmt(r.perPacketUs, 2)} (${fmt(r.sysPerPacketUs, 2)})`, e ? fmt(e.perPacketUs, 2) : '-', `${r.sender.kind} ${fmt(r.sender.cpuPct)} %`, notes.join('; '),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  console.log(line(header));
  for (const r of rows) console.log(line(r));
  const budget = 1e6 / (TARGET_CONFS * 3 * 50 * 2);
  console.log(`# budget for ${TARGET_CONFS} conferences on one core: ${fmt(budget, 2)} µs per packet (in + out) all-in; the floor is what Node and the kernel take before any media work.`);
}
