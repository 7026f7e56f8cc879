#!/usr/bin/env node
// amk-bridge benchmark of the conference-in procedure (`npm run bench` runs it last; alone:
// `npm run build && node bench/procedure.js`). Uses dist/, never tests/.
//
// The bridge runs in this process (startBridge from dist/, config checked by dist's
// validateConfig), with its journal in a temporary directory: real SQLite, WAL, synchronous=FULL,
// so every commit is an fsync and part of what is measured. Peers are SIPp on loopback:
//   - the region: a UAS answering every INVITE with 486 at once (tests/scenarios/region-busy.xml);
//     the region has attempts: 2 and spacingS: 0, so a request is two instant failures and then
//     the no-contact message, with no waiting anywhere (the 5 s ring timer only runs out if the
//     bridge's event loop stalls that long; the report counts such attempts);
//   - the call-taker platform: tests/scenarios/calltaker-answer.xml (answers every call);
//   - the citizens: tests/scenarios/trunk-call.xml (UAC), held long enough for their requests.
// A request is started for a call the way the CTI command does it:
// bridge.conference.requestConferenceIn(callId, { trigger: 'cti' }).
// The message receiver is a node:http server in a worker thread of this process (answers 200 at
// once); it takes process.hrtime.bigint() when a POST's body has arrived, keyed by its
// Idempotency-Key. That clock is CLOCK_MONOTONIC, the one the bridge's events are stamped with
// here; running the receiver in its own thread keeps its timestamps free of whatever the
// bridge's event loop does next. To timestamp the steps in between, the bench wraps a few
// methods of the running bridge's objects (the journal's, the B2BUA's dialOut callbacks) and
// listens to Node's 'http.client.request.start' diagnostics channel; the code paths are the same.
//
//  1. Latency "last attempt failed → message on the wire" (target < 20 ms; judged on p99):
//     1000 requests (after 50 warm-up ones, not counted), one per citizen call, started as the
//     call is answered; citizens at 20/s, at most 50 requests in flight. 20/s is well under what
//     the procedure sustains (part 2), so this measures the path rather than a queue; part 2
//     shows the same figure under load. From the bridge's `conference.attempt` event for
//     attempt 2 with phase 'failed' to the receiver having the POST; p50/p90/p99/max. Also from
//     the moment the SIP stack reported the 486 to the core, and a breakdown: the attempt's
//     journal write, building the message, the journal commit (commitMessage: one IMMEDIATE
//     transaction + fsync), and commit → receiver (outbox query, HTTP POST, loopback).
//  2. Throughput with instantly failing regions: closed loop over N held calls (N = 1, 10, 50,
//     100, 200, 400 concurrent requests, a fresh bridge and journal per step): each call gets a
//     new request as soon as its previous request's message was delivered (the bridge got the
//     200). Requests completed (message delivered) per second over a 10 s window that opens 3 s
//     after the N first requests started together (so the first burst is not counted); then the
//     requests still running drain, and the receiver's log is checked: every request started
//     must have exactly one no-contact POST (by key); a missing or duplicate message, an
//     unexpected key, an escalation or a refused request fails the step.
//  3. CPU profile of the bridge's event loop (the main thread) during one more closed-loop run
//     (N = 50, 5 s) through the inspector; top self-time functions mapped to src/*.ts.
//
// Prints a summary and writes bench/procedure-results.json. Exit code 0 whatever the figures
// (an error in one part is reported and the next part runs); Ctrl-C/SIGTERM exit 130/143 after
// killing every SIPp. Every SIPp is killed at the end of its part, on errors and on exit.
//
// Environment knobs: BENCH_PROC_N=1000 (measured requests of part 1), BENCH_PROC_WARMUP=50,
// BENCH_PROC_INFLIGHT=50 (cap of part 1), BENCH_PROC_CALL_RATE=20 (citizens/s of part 1),
// BENCH_PROC_CONCURRENCY=1,10,50,100,200,400 (steps of part 2), BENCH_PROC_STEP_S=10,
// BENCH_PROC_PROFILE=0 (skip part 3), BENCH_PROC_PROFILE_N=50, BENCH_PROC_ONLY=latency,throughput,profile,
// BENCH_PROC_JOURNAL_DIR=/dev/shm (put the journal there instead of the temporary directory: on
// tmpfs an fsync costs nothing, which shows what the procedure costs without the disk),
// BENCH_LOG_LEVEL=warn (the bridge's log level; its log is a file in the temporary directory),
// BENCH_KEEP=1 (keep the temporary directories: journal, bridge log, SIPp stats, profile).
import { execFileSync } from 'node:child_process';
import diagnosticsChannel from 'node:diagnostics_channel';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { SourceMap } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ROOT } from './lib/bridge.js';
import { summariseProfile } from './lib/cpuprofile.js';
import { cpuSeconds, freeUdpPorts, installExitHooks, sleep, stopChild, systemCpu, udpSocketDrops, waitFor } from './lib/procs.js';
import { machineInfo, sourceInfo } from './lib/about.js';
import { readStatRows, SIPP_BIN, sippListening, startSipp, summariseUac, summariseUas, TEST_SCENARIOS } from './lib/sipp.js';

const RESULTS = join(ROOT, 'bench', 'procedure-results.json');
const TARGET_MS = 20;
const num = (v, d) => (Number.isFinite(Number(v)) && Number(v) > 0 ? Number(v) : d);
const N = num(process.env.BENCH_PROC_N, 1000);
const WARMUP = Number.isFinite(Number(process.env.BENCH_PROC_WARMUP)) && process.env.BENCH_PROC_WARMUP !== '' ? Math.max(0, Number(process.env.BENCH_PROC_WARMUP)) : 50;
const INFLIGHT = num(process.env.BENCH_PROC_INFLIGHT, 50);
const CALL_RATE = num(process.env.BENCH_PROC_CALL_RATE, 20);
const CONCURRENCY = (process.env.BENCH_PROC_CONCURRENCY ?? '1,10,50,100,200,400').split(',').map(Number).filter((n) => n > 0);
const STEP_S = num(process.env.BENCH_PROC_STEP_S, 10);
const PROFILE = process.env.BENCH_PROC_PROFILE !== '0';
const PROFILE_N = num(process.env.BENCH_PROC_PROFILE_N, 50);
const PROFILE_S = 5;
const ONLY = process.env.BENCH_PROC_ONLY ? new Set(process.env.BENCH_PROC_ONLY.split(',')) : null;
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL ?? 'warn';
const KEEP = process.env.BENCH_KEEP === '1';
/** Citizens' call setup rate for the closed-loop steps (calls are set up before the window). */
const SETUP_RATE = 200;
const DRAIN_S = 10;
/** Seconds of each closed-loop step before its window (the first burst of N requests at once). */
const RAMP_S = 3;
const RING_TIMER_S = 5;
/** Where the journal goes (default the system's temporary directory); e.g. /dev/shm to take fsync out. */
const JOURNAL_BASE = process.env.BENCH_PROC_JOURNAL_DIR || tmpdir();
const LOOPBACK = ['127.0.0.0/8', '::1/128'];
const MISSED = 'TARGET MISSED';

const hr = () => process.hrtime.bigint();
const ms = (a, b) => Number(a - b) / 1e6;

const results = {
  startedAt: new Date().toISOString(),
  machine: machineInfo({ loadAvgAtStart: loadavg()[0] }),
  source: sourceInfo(),
  target: { lastFailureToMessageMs: TARGET_MS, judgedOn: 'p99' },
  journal: null,
  latency: null,
  throughput: null,
  profile: null,
  errors: [],
};



const log = (s = '') => process.stdout.write(`${s}\n`);
const progress = (s) => process.stdout.write(`# ${s}\n`);
const f = (v, d = 1) => (v === null || v === undefined || Number.isNaN(v) ? '-' : Number(v).toFixed(d));
const lpad = (s, n) => String(s).padStart(n);
const pad = (s, n) => String(s).padEnd(n);

function writeResults() {
  results.finishedAt = new Date().toISOString();
  try { writeFileSync(RESULTS, `${JSON.stringify(results, (k, v) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`); } catch (e) { process.stderr.write(`cannot write ${RESULTS}: ${e.message}\n`); }
}

/** Nearest-rank percentiles of a list of numbers. */
function stats(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return { n: 0, p50: null, p90: null, p99: null, max: null, mean: null };
  const p = (q) => v[Math.min(v.length - 1, Math.max(0, Math.ceil(q * v.length) - 1))];
  return { n: v.length, p50: p(0.5), p90: p(0.9), p99: p(0.99), max: v[v.length - 1], mean: v.reduce((a, b) => a + b, 0) / v.length };
}

// ---------------------------------------------------------------------------------------------
// Temporary directories (removed at the end of their part and on exit, unless BENCH_KEEP=1)

const liveDirs = new Set();
function tempDir(base = tmpdir()) {
  const dir = mkdtempSync(join(base, 'amk-bench-proc-'));
  liveDirs.add(dir);
  return dir;
}
function removeDir(dir) {
  liveDirs.delete(dir);
  if (KEEP) progress(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
process.on('exit', () => { if (!KEEP) for (const d of liveDirs) { try { rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ } } });

/** The file system type of a directory (the journal's fsync cost depends on it). */
function fsType(dir) {
  const names = { 0xef53: 'ext2/3/4', 0x01021994: 'tmpfs', 0x58465342: 'xfs', 0x9123683e: 'btrfs', 0x794c7630: 'overlayfs', 0x6969: 'nfs', 0x2fc12fc1: 'zfs' };
  try { const t = statfsSync(dir).type; return names[t] ?? `0x${t.toString(16)}`; } catch { return null; }
}

/**
 * The disk under the journal: 300 single-row commits into a scratch SQLite file with the
 * journal's pragmas (WAL, synchronous=FULL), one fsync each. For scale against the commit figures.
 */
async function fsyncProbe(base) {
  let Database;
  try { ({ default: Database } = await import('better-sqlite3')); } catch { return null; }
  const dir = tempDir(base);
  try {
    const db = new Database(join(dir, 'probe.sqlite'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)');
    const st = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)');
    const payload = 'x'.repeat(2000);
    const d = [];
    for (let i = 0; i < 300; i++) {
      const t0 = hr();
      st.run(i, payload);
      d.push(ms(hr(), t0));
    }
    db.close();
    return stats(d);
  } finally {
    removeDir(dir);
  }
}

/**
 * When each message POST was written to its socket, by Idempotency-Key: Node publishes
 * 'http.client.request.start' from ClientRequest#_finish, i.e. once the whole request (headers
 * and body) has been handed to the socket.
 */
const posts = new Map();
diagnosticsChannel.subscribe('http.client.request.start', ({ request }) => {
  const key = request.getHeader('idempotency-key');
  if (typeof key === 'string' && !posts.has(key)) posts.set(key, hr());
});

// ---------------------------------------------------------------------------------------------
// The message receiver: a worker thread with a plain node:http server.

const RECEIVER_CODE = `
const { parentPort } = require('node:worker_threads');
const http = require('node:http');
let batch = [];
let timer = null;
const flush = () => {
  if (timer) clearTimeout(timer);
  timer = null;
  if (batch.length) { parentPort.postMessage({ cmd: 'arrivals', list: batch }); batch = []; }
};
const server = http.createServer((req, res) => {
  let bytes = 0;
  req.on('data', (c) => { bytes += c.length; });
  req.on('end', () => {
    const t = process.hrtime.bigint();
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' });
    res.end('{}');
    batch.push({ key: req.headers['idempotency-key'] ?? null, method: req.method, t, bytes });
    if (!timer) timer = setTimeout(flush, 250);
  });
});
server.keepAliveTimeout = 120000;
server.headersTimeout = 121000;
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ cmd: 'listening', port: server.address().port }));
parentPort.on('message', (m) => {
  if (m.cmd === 'flush') { flush(); parentPort.postMessage({ cmd: 'flushed', id: m.id }); }
  else if (m.cmd === 'close') { server.closeAllConnections?.(); server.close(() => process.exit(0)); }
});
`;

async function startReceiver() {
  const worker = new Worker(RECEIVER_CODE, { eval: true });
  /** key -> arrival times (hrtime ns) */
  const arrivals = new Map();
  let other = 0;
  const waiters = new Map();
  let nextId = 1;
  const port = await new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.on('message', (m) => {
      if (m.cmd === 'listening') resolve(m.port);
      else if (m.cmd === 'arrivals') {
        for (const a of m.list) {
          if (a.method !== 'POST' || !a.key) { other++; continue; }
          const l = arrivals.get(a.key);
          if (l) l.push(a.t); else arrivals.set(a.key, [a.t]);
        }
      } else if (m.cmd === 'flushed') {
        waiters.get(m.id)?.();
        waiters.delete(m.id);
      }
    });
  });
  return {
    url: `http://127.0.0.1:${port}/amk/messages`,
    arrivals,
    other: () => other,
    flush() {
      const id = nextId++;
      return new Promise((resolve) => { waiters.set(id, resolve); worker.postMessage({ cmd: 'flush', id }); });
    },
    async close() {
      worker.postMessage({ cmd: 'close' });
      await Promise.race([new Promise((r) => worker.once('exit', r)), sleep(2000)]);
      await worker.terminate().catch(() => {});
    },
  };
}

// ---------------------------------------------------------------------------------------------
// A rig: SIPp region + call-taker UAS, the bridge in-process, instrumentation.

let mods = null;
async function loadDist() {
  const [{ startBridge }, { validateConfig, formatConfigErrors }, { createLogger }, { messageKey }] = await Promise.all([
    import('../dist/app.js'), import('../dist/config/load.js'), import('../dist/log.js'), import('../dist/domain/message.js'),
  ]);
  return { startBridge, validateConfig, formatConfigErrors, createLogger, messageKey };
}

const JOURNAL_TIMED = ['requestStarted', 'attemptStarted', 'attemptProvisional', 'attemptEnded', 'requestOutcome', 'commitMessage', 'due', 'nextDueAt', 'delivered'];

/** Everything the bench measures inside one bridge. */
function instrument(bridge) {
  const T = {
    reqs: new Map(), // requestId -> rec
    stackFail: new Map(), // attemptId -> hrtime when the B2BUA reported the failure to the core
    journal: Object.fromEntries(JOURNAL_TIMED.map((m) => [m, { n: 0, totalMs: 0, maxMs: 0, samples: [] }])),
    attemptOutcomes: {},
    committed: 0, delivered: 0, escalated: 0, msgFailed: 0, refused: 0, refusals: {}, alarms: [],
    onDelivered: null,
  };
  const recOf = (requestId) => {
    let r = T.reqs.get(requestId);
    if (!r) { r = { requestId, callId: null, tTrigger: null, tStack: null, tEvent: null, tCommit0: null, tCommit1: null, tDelivered: null, attempts: 0 }; T.reqs.set(requestId, r); }
    return r;
  };
  T.recOf = recOf;
  const bus = bridge.bus;
  bus.on('conference.attempt', (e) => {
    if (e.phase === 'started') { recOf(e.requestId).attempts++; return; }
    if (e.phase === 'ringing') return;
    const now = hr();
    T.attemptOutcomes[e.outcome ?? e.phase] = (T.attemptOutcomes[e.outcome ?? e.phase] ?? 0) + 1;
    const stack = T.stackFail.get(e.attemptId) ?? null;
    T.stackFail.delete(e.attemptId);
    if (e.n === 2) {
      const r = recOf(e.requestId);
      r.lastPhase = e.phase;
      // Only a failure the region reported (486): a ring timer or a cancel takes another path.
      if (e.phase === 'failed') {
        r.tEvent = now;
        r.tStack = stack;
      }
    }
  });
  bus.on('message.committed', (e) => { T.committed++; recOf(e.requestId).key = e.key; });
  bus.on('message.delivered', (e) => {
    T.delivered++;
    const r = recOf(e.requestId);
    r.tDelivered = hr();
    T.onDelivered?.(r);
  });
  bus.on('message.escalated', () => { T.escalated++; });
  bus.on('message.failed', () => { T.msgFailed++; });
  bus.on('conference.refused', (e) => { T.refused++; T.refusals[e.reason] = (T.refusals[e.reason] ?? 0) + 1; });
  bus.on('alarm', (e) => { if (T.alarms.length < 20) T.alarms.push(e.text); });

  // The B2BUA hands the 486 to the core: the earliest moment "the bridge saw the failure".
  const b2bua = bridge.b2bua;
  const dialOut = b2bua.dialOut.bind(b2bua);
  b2bua.dialOut = (callId, opts, events) => {
    const wrapped = Object.create(events);
    wrapped.failed = (...args) => {
      T.stackFail.set(opts.attemptId, hr());
      return events.failed(...args);
    };
    return dialOut(callId, opts, wrapped);
  };

  // Journal writes and outbox reads, timed (the same object is the request journal of the core
  // and the outbox of the delivery worker).
  const journal = bridge.journal;
  for (const m of JOURNAL_TIMED) {
    const orig = journal[m].bind(journal);
    const acc = T.journal[m];
    const keepSamples = m === 'commitMessage' || m === 'attemptEnded';
    journal[m] = (...args) => {
      const t0 = hr();
      if (m === 'commitMessage' && args[0]?.type === 'no-contact') {
        const r = recOf(args[0].requestId);
        r.tCommit0 = t0;
        try { return orig(...args); } finally { r.tCommit1 = hr(); account(acc, r.tCommit1, t0, keepSamples); }
      }
      try { return orig(...args); } finally { account(acc, hr(), t0, keepSamples); }
    };
  }
  return T;
}

function account(acc, t1, t0, keep) {
  const d = ms(t1, t0);
  acc.n++;
  acc.totalMs += d;
  if (d > acc.maxMs) acc.maxMs = d;
  if (keep) acc.samples.push(d);
}

function journalSummary(T, requests) {
  const out = {};
  for (const [m, a] of Object.entries(T.journal)) {
    if (!a.n) continue;
    const s = a.samples.length ? stats(a.samples) : null;
    out[m] = { calls: a.n, perRequest: requests ? a.n / requests : null, meanMs: a.totalMs / a.n, p50Ms: s?.p50 ?? null, p99Ms: s?.p99 ?? null, maxMs: a.maxMs, totalMs: a.totalMs };
  }
  return out;
}

/** SIPp region + call-taker, then the bridge pointing at them and at the receiver. */
async function startRig(receiver, { timeoutS }) {
  const dir = tempDir();
  const journalDir = JOURNAL_BASE === tmpdir() ? dir : tempDir(JOURNAL_BASE);
  const children = [];
  let bridge = null;
  let logStream = null;
  const rig = { dir, children, trunk: null };
  try {
    const [regionPort, ctPort, trunkPort] = await freeUdpPorts(3);
    rig.trunkPort = trunkPort;
    rig.region = startSipp({ scenario: join(TEST_SCENARIOS, 'region-busy.xml'), port: regionPort, calls: 10_000_000, limit: 100_000, timeoutS, dir, name: 'region' });
    children.push(rig.region.child);
    rig.ct = startSipp({ scenario: join(TEST_SCENARIOS, 'calltaker-answer.xml'), port: ctPort, calls: 10_000_000, limit: 100_000, keys: { answer_ms: 0, linger_ms: 0 }, timeoutS, dir, name: 'calltaker' });
    children.push(rig.ct.child);
    await Promise.all([sippListening(rig.region), sippListening(rig.ct)]);
    const input = {
      node: 'bench',
      log: { level: LOG_LEVEL },
      sip: { listen: [{ transport: 'udp', address: '127.0.0.1', port: 0 }, { transport: 'tcp', address: '127.0.0.1', port: 0 }] },
      trunks: [{ id: 'trunk-a', networks: LOOPBACK, probe: null }],
      callTakers: { target: `sip:1001@127.0.0.1:${ctPort}`, networks: LOOPBACK, probe: false },
      desks: [{ id: 'desk-1', name: 'Desk 1', users: ['1001'] }],
      regions: [{
        id: 'hovedstaden', name: 'Region Hovedstaden', code: '01', probe: false,
        targets: [`sip:amk@127.0.0.1:${regionPort}`],
        // The 486 comes at once: the ring timer never runs out unless the event loop stalls for
        // RING_TIMER_S (then the attempt ends as no-answer, which the report shows).
        attempts: 2, spacingS: 0, ringTimerS: RING_TIMER_S,
        messageEndpoints: { primary: receiver.url },
      }],
      routing: { defaultRegion: 'hovedstaden', rules: [] },
      probes: { intervalS: 3600 },
      messages: { probeIntervalS: 0, test: true },
      journal: { path: join(journalDir, 'journal.sqlite') },
    };
    const checked = mods.validateConfig(input);
    if (!checked.ok) throw new Error(`bench config invalid:\n${mods.formatConfigErrors('bench', checked.errors)}`);
    logStream = createWriteStream(join(dir, 'bridge.log'));
    const logger = mods.createLogger({ level: LOG_LEVEL, pretty: false, destination: logStream });
    bridge = await mods.startBridge(checked.config, { logger });
    rig.bridge = bridge;
    rig.T = instrument(bridge);
    rig.journalPath = input.journal.path;
  } catch (err) {
    await Promise.all(children.map((c) => stopChild(c, 'SIGKILL', 1000)));
    removeDir(dir);
    if (journalDir !== dir) removeDir(journalDir);
    throw err;
  }
  rig.startTrunk = ({ calls, rate, holdMs, timeoutS: trunkTimeoutS }) => {
    rig.trunk = startSipp({
      scenario: join(TEST_SCENARIOS, 'trunk-call.xml'), remote: `127.0.0.1:${bridge.port('udp')}`, port: rig.trunkPort,
      calls, rate, limit: Math.max(calls, 10), keys: { hold_ms: holdMs }, timeoutS: trunkTimeoutS, dir, name: 'trunk',
    });
    children.push(rig.trunk.child);
    return rig.trunk;
  };
  rig.stop = async () => {
    const out = {};
    try {
      await Promise.race([bridge.stop(), sleep(10_000).then(() => { throw new Error('bridge.stop() took over 10 s'); })]);
    } catch (err) {
      results.errors.push({ part: 'rig', message: String(err?.message ?? err) });
    }
    await Promise.all(children.map((c) => stopChild(c, 'SIGTERM', 1500)));
    await new Promise((r) => logStream.end(r));
    try {
      out.region = summariseUas(readStatRows(rig.region.statPath));
      out.callTaker = summariseUas(readStatRows(rig.ct.statPath));
      if (rig.trunk) out.trunk = summariseUac(readStatRows(rig.trunk.statPath), null);
      const logText = readFileSync(join(dir, 'bridge.log'), 'utf8');
      const lines = logText.split('\n').filter(Boolean);
      out.bridgeLog = { lines: lines.length, first: lines.slice(0, 3).map((l) => { try { const j = JSON.parse(l); return `${j.level}: ${j.msg}`; } catch { return l.slice(0, 200); } }) };
    } catch { /* stats are a bonus */ }
    removeDir(dir);
    if (journalDir !== dir) removeDir(journalDir);
    return out;
  };
  return rig;
}

/** Start a request on a call as the CTI command does; the request's record, or null if refused. */
function trigger(rig, callId) {
  const t = hr();
  const r = rig.bridge.conference.requestConferenceIn(callId, { trigger: 'cti' });
  if (!r.ok) return null;
  const rec = rig.T.recOf(r.requestId);
  rec.tTrigger = t;
  rec.callId = callId;
  rec.key = mods.messageKey(r.requestId, 'no-contact');
  return rec;
}

// ---------------------------------------------------------------------------------------------
// CPU, event loop and GC during a window

let clkTck = null;
function threadCpuSeconds(tid) {
  clkTck ??= (() => { try { return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100; } catch { return 100; } })();
  try {
    const s = readFileSync(`/proc/${process.pid}/task/${tid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / clkTck;
  } catch {
    return null;
  }
}

/** The main thread's scheduler figures (ns): on CPU, waiting for a CPU (runnable), time slices. */
function schedstat() {
  try {
    const [run, wait] = readFileSync(`/proc/${process.pid}/task/${process.pid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
    return { run, wait };
  } catch {
    return null;
  }
}

function usageStart(rig) {
  const gc = { count: 0, totalMs: 0, maxMs: 0 };
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) { gc.count++; gc.totalMs += e.duration; if (e.duration > gc.maxMs) gc.maxMs = e.duration; }
  });
  obs.observe({ entryTypes: ['gc'] });
  const lag = monitorEventLoopDelay({ resolution: 1 });
  lag.enable();
  const pids = { region: rig.region.child.pid, callTaker: rig.ct.child.pid, trunk: rig.trunk?.child.pid ?? null };
  const ports = { bridge: rig.bridge.port('udp'), region: rig.region.port, callTaker: rig.ct.port, trunk: rig.trunk?.port ?? null };
  return {
    ports, drops0: udpSocketDrops(Object.values(ports).filter(Boolean)),
    t: performance.now(), elu: performance.eventLoopUtilization(), cpu: process.cpuUsage(), main: threadCpuSeconds(process.pid), sched: schedstat(),
    sys: systemCpu(), pids, sipp: Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, p ? cpuSeconds(p) : null])), gc, obs, lag,
  };
}

function usageEnd(s) {
  const wallS = (performance.now() - s.t) / 1000;
  const elu = performance.eventLoopUtilization(s.elu);
  const cpu = process.cpuUsage(s.cpu);
  const main = threadCpuSeconds(process.pid);
  const sys = systemCpu();
  s.obs.disconnect();
  s.lag.disable();
  const pct = (a, b) => (a === null || b === null ? null : (100 * (a - b)) / wallS);
  const sipp = Object.fromEntries(Object.entries(s.pids).map(([k, p]) => [k, p ? pct(cpuSeconds(p), s.sipp[k]) : null]));
  const processPct = (100 * (cpu.user + cpu.system)) / 1e6 / wallS;
  const sysPct = sys && s.sys ? pct(sys.busy, s.sys.busy) : null;
  const sippSum = Object.values(sipp).reduce((a, b) => a + (b ?? 0), 0);
  const sched = schedstat();
  const drops1 = udpSocketDrops(Object.values(s.ports).filter(Boolean));
  const udpDrops = Object.fromEntries(Object.entries(s.ports).map(([k, p]) => [k, p ? (drops1[p] ?? 0) - (s.drops0[p] ?? 0) : null]));
  const onCpuPct = sched && s.sched ? (100 * (sched.run - s.sched.run)) / 1e9 / wallS : null;
  const runnablePct = sched && s.sched ? (100 * (sched.wait - s.sched.wait)) / 1e9 / wallS : null;
  const eluPct = 100 * elu.utilization;
  return {
    wallS,
    eventLoopUtilisationPct: eluPct,
    // The loop's busy time split: on a CPU, runnable but waiting for one (other processes), and
    // the rest: blocked in a system call (fsync of the journal, mostly).
    mainThread: {
      onCpuPct, runnableWaitingPct: runnablePct,
      blockedPct: onCpuPct === null ? null : Math.max(0, eluPct - onCpuPct - runnablePct),
    },
    mainThreadCpuPct: pct(main, s.main),
    processCpuPct: processPct,
    sippCpuPct: sipp,
    machineBusyPct: sysPct,
    otherCpuPct: sysPct === null ? null : Math.max(0, sysPct - processPct - sippSum),
    // Datagrams the kernel dropped at a full socket receive queue during the window.
    udpDrops,
    eventLoopDelayMs: { p50: s.lag.percentile(50) / 1e6, p99: s.lag.percentile(99) / 1e6, max: s.lag.max / 1e6 },
    gc: { ...s.gc },
  };
}

// ---------------------------------------------------------------------------------------------
// Checking the receiver's log: exactly one no-contact message per request.

function exactlyOnce(recs, receiver) {
  let missing = 0;
  let duplicates = 0;
  const examples = [];
  for (const r of recs) {
    const n = receiver.arrivals.get(r.key)?.length ?? 0;
    if (n === 0) { missing++; if (examples.length < 5) examples.push(`missing ${r.key}`); }
    else if (n > 1) { duplicates++; if (examples.length < 5) examples.push(`${n}× ${r.key}`); }
  }
  return { requests: recs.length, missing, duplicates, examples };
}

const allKeys = new Set();
function unexpectedKeys(receiver) {
  let n = 0;
  for (const k of receiver.arrivals.keys()) if (!allKeys.has(k)) n++;
  return n;
}

// ---------------------------------------------------------------------------------------------
// 1. Latency

async function benchLatency(receiver) {
  const total = WARMUP + N;
  const callsS = total / CALL_RATE;
  const holdMs = 4000;
  const rig = await startRig(receiver, { timeoutS: Math.ceil(callsS + holdMs / 1000 + 60) });
  let stopped = null;
  try {
    const { T } = rig;
    const order = [];
    const queue = [];
    let inflight = 0;
    let maxInflight = 0;
    let refused = 0;
    let answered = 0;
    let usage = null;
    let measuring = false;
    const tryStart = () => {
      while (inflight < INFLIGHT && queue.length && order.length < total) {
        const rec = trigger(rig, queue.shift());
        if (!rec) { refused++; continue; }
        allKeys.add(rec.key);
        rec.seq = order.length;
        order.push(rec);
        inflight++;
        if (inflight > maxInflight) maxInflight = inflight;
        if (rec.seq === WARMUP && !measuring) { measuring = true; usage = usageStart(rig); }
      }
    };
    T.onDelivered = (rec) => {
      if (rec.seq === undefined || rec.counted) return;
      rec.counted = true;
      inflight--;
      setImmediate(tryStart);
    };
    rig.bridge.bus.on('call.answered', (e) => {
      answered++;
      queue.push(e.callId);
      setImmediate(tryStart);
    });
    progress(`latency: ${total} citizens at ${CALL_RATE}/s (hold ${holdMs} ms), one request each, at most ${INFLIGHT} in flight`);
    const trunk = rig.startTrunk({ calls: total, rate: CALL_RATE, holdMs, timeoutS: Math.ceil(callsS + holdMs / 1000 + 40) });
    await Promise.race([waitFor(() => order.length >= total, (callsS + 30) * 1000, `${total} requests started`), trunk.done.then(() => sleep(500))]);
    await waitFor(() => order.every((r) => r.tDelivered !== null), 15_000, 'every message delivered').catch((e) => results.errors.push({ part: 'latency', message: e.message }));
    const use = usage ? usageEnd(usage) : null;
    await receiver.flush();
    await sleep(50);
    await receiver.flush();

    const measured = order.filter((r) => r.seq >= WARMUP);
    const first = (r) => receiver.arrivals.get(r.key)?.[0] ?? null;
    const seg = (fn) => stats(measured.map((r) => { try { const v = fn(r); return v === null ? NaN : v; } catch { return NaN; } }));
    const has = (...xs) => xs.every((x) => x !== null && x !== undefined);
    const fromEvent = seg((r) => (has(r.tEvent, first(r)) ? ms(first(r), r.tEvent) : null));
    const fromStack = seg((r) => (has(r.tStack, first(r)) ? ms(first(r), r.tStack) : null));
    const breakdown = {
      stackToEvent: seg((r) => (has(r.tStack, r.tEvent) ? ms(r.tEvent, r.tStack) : null)),
      eventToCommit: seg((r) => (has(r.tEvent, r.tCommit0) ? ms(r.tCommit0, r.tEvent) : null)),
      commit: seg((r) => (has(r.tCommit0, r.tCommit1) ? ms(r.tCommit1, r.tCommit0) : null)),
      commitToReceiver: seg((r) => (has(r.tCommit1, first(r)) ? ms(first(r), r.tCommit1) : null)),
      commitToSocket: seg((r) => (has(r.tCommit1, posts.get(r.key)) ? ms(posts.get(r.key), r.tCommit1) : null)),
      socketToReceiver: seg((r) => (has(posts.get(r.key), first(r)) ? ms(first(r), posts.get(r.key)) : null)),
      receiverToDelivered: seg((r) => (has(r.tDelivered, first(r)) ? ms(r.tDelivered, first(r)) : null)),
    };
    const wholeRequest = seg((r) => (has(r.tTrigger, first(r)) ? ms(first(r), r.tTrigger) : null));
    const warm = stats(order.filter((r) => r.seq < WARMUP).map((r) => (has(r.tEvent, first(r)) ? ms(first(r), r.tEvent) : NaN)));
    const once = exactlyOnce(order, receiver);
    const over = measured.filter((r) => r.tEvent && first(r) && ms(first(r), r.tEvent) >= TARGET_MS).length;
    const notFailed = measured.filter((r) => r.lastPhase !== 'failed').length;
    stopped = await rig.stop();
    const out = {
      requests: measured.length, warmup: WARMUP, callRate: CALL_RATE, holdMs, inflightCap: INFLIGHT, maxInflight, answered, refused,
      fromAttempt2FailedEvent: fromEvent, fromStackFailure: fromStack, over20ms: over, lastAttemptNotBusy: notFailed, breakdown, wholeRequestTriggerToReceiver: wholeRequest,
      warmupFromEvent: warm,
      journal: journalSummary(T, order.length),
      attemptOutcomes: T.attemptOutcomes, escalated: T.escalated, messageFailed: T.msgFailed, refusals: T.refusals, alarms: T.alarms,
      exactlyOnce: once, usage: use, peers: stopped,
      ok: fromEvent.n >= N && fromEvent.p99 !== null && fromEvent.p99 < TARGET_MS,
    };
    progress(`latency: ${fromEvent.n} measured; attempt-2 failed → receiver p50 ${f(fromEvent.p50, 2)} ms, p99 ${f(fromEvent.p99, 2)} ms, max ${f(fromEvent.max, 2)} ms`);
    return out;
  } finally {
    if (!stopped) await rig.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Throughput (closed loop over held calls)

async function closedLoop(receiver, c, seconds, { profileTo = null } = {}) {
  const rate = Math.min(SETUP_RATE, c);
  const setupS = Math.ceil(c / rate) + 2;
  const holdMs = (setupS + RAMP_S + seconds + DRAIN_S + 15) * 1000;
  const rig = await startRig(receiver, { timeoutS: Math.ceil(holdMs / 1000 + 40) });
  let stopped = null;
  try {
    const { T } = rig;
    const answered = [];
    rig.bridge.bus.on('call.answered', (e) => answered.push(e.callId));
    const trunk = rig.startTrunk({ calls: c, rate, holdMs, timeoutS: Math.ceil(holdMs / 1000 + 30) });
    await Promise.race([waitFor(() => answered.length >= c, (setupS + 15) * 1000, `${c} calls answered`), trunk.done]).catch((e) => results.errors.push({ part: `throughput ${c}`, message: e.message }));
    await sleep(500); // the last ACKs
    const calls = answered.slice(0, c);
    const recs = [];
    const buckets = new Array(seconds).fill(0);
    let running = true;
    let refused = 0;
    let t0 = 0n;
    let tEnd = 0n;
    const next = (callId) => {
      if (!running) return;
      const rec = trigger(rig, callId);
      if (!rec) { refused++; return; }
      allKeys.add(rec.key);
      recs.push(rec);
    };
    T.onDelivered = (rec) => {
      const t = rec.tDelivered;
      if (t >= t0 && t < tEnd) buckets[Number((t - t0) / 1_000_000_000n)]++;
      if (running && rec.callId) setImmediate(next, rec.callId);
    };
    // All N requests start at once; the window opens RAMP_S later, when they have spread out.
    for (const id of calls) next(id);
    await sleep(RAMP_S * 1000);
    let session = null;
    if (profileTo) {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 250 });
      await session.post('Profiler.start');
    }
    const usage = usageStart(rig);
    t0 = hr();
    tEnd = t0 + BigInt(seconds) * 1_000_000_000n;
    await sleep(seconds * 1000);
    const use = usageEnd(usage);
    running = false;
    if (session) {
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      writeFileSync(profileTo, JSON.stringify(profile));
    }
    const inWindow = recs.filter((r) => r.tTrigger >= t0 && r.tTrigger < tEnd);
    await waitFor(() => recs.every((r) => r.tDelivered !== null), DRAIN_S * 1000, 'the running requests to drain').catch(() => {});
    await receiver.flush();
    await sleep(50);
    await receiver.flush();
    const first = (r) => receiver.arrivals.get(r.key)?.[0] ?? null;
    const done = buckets.reduce((a, b) => a + b, 0);
    const lat = stats(inWindow.map((r) => (r.tEvent && first(r) ? ms(first(r), r.tEvent) : NaN)));
    const whole = stats(inWindow.map((r) => (r.tTrigger && first(r) ? ms(first(r), r.tTrigger) : NaN)));
    const commit = stats(inWindow.map((r) => (r.tCommit0 && r.tCommit1 ? ms(r.tCommit1, r.tCommit0) : NaN)));
    const once = exactlyOnce(recs, receiver);
    stopped = await rig.stop();
    const out = {
      concurrency: c, callsUp: calls.length, seconds, requestsStarted: recs.length, completedInWindow: done,
      completedPerS: done / seconds, perSecond: buckets,
      latencyFromAttempt2FailedMs: lat, triggerToReceiverMs: whole, commitMs: commit,
      refused, refusals: T.refusals, escalated: T.escalated, messageFailed: T.msgFailed, alarms: T.alarms,
      attemptOutcomes: T.attemptOutcomes, journal: journalSummary(T, recs.length),
      exactlyOnce: once, usage: use, peers: stopped,
    };
    out.ok = calls.length === c && once.missing === 0 && once.duplicates === 0 && refused === 0 && T.escalated === 0 && T.msgFailed === 0 && recs.length > 0;
    return out;
  } finally {
    if (!stopped) await rig.stop();
  }
}

async function benchThroughput(receiver) {
  const steps = [];
  for (const c of CONCURRENCY) {
    if (interrupted) break;
    try {
      progress(`throughput: ${c} concurrent requests (closed loop over ${c} held calls), ${STEP_S} s`);
      const s = await closedLoop(receiver, c, STEP_S);
      steps.push(s);
      progress(`throughput ${c}: ${f(s.completedPerS, 0)} requests/s; ${s.exactlyOnce.missing} missing, ${s.exactlyOnce.duplicates} duplicate of ${s.requestsStarted}; ${s.ok ? 'ok' : 'FAILED'}`);
    } catch (err) {
      steps.push({ concurrency: c, error: String(err?.stack ?? err) });
      progress(`throughput ${c}: ERROR ${err?.message ?? err}`);
    }
    await sleep(500);
  }
  const passing = steps.filter((s) => s.ok);
  const best = passing.reduce((b, s) => (!b || s.completedPerS > b.completedPerS ? s : b), null);
  return { stepS: STEP_S, steps, bestPerS: best?.completedPerS ?? null, bestAtConcurrency: best?.concurrency ?? null };
}

// ---------------------------------------------------------------------------------------------
// 3. CPU profile

const sourceMaps = new Map();
/** src/…ts:line of a dist/ call frame, through the build's source map. */
function srcLocation(frame) {
  const file = fileURLToPath(frame.url);
  let map = sourceMaps.get(file);
  if (map === undefined) {
    try { map = new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8'))); } catch { map = null; }
    sourceMaps.set(file, map);
  }
  if (map && frame.lineNumber >= 0) {
    const e = map.findEntry(frame.lineNumber, Math.max(0, frame.columnNumber));
    if (e && e.originalSource) {
      const src = e.originalSource.startsWith('file://') ? fileURLToPath(e.originalSource) : resolve(dirname(file), e.originalSource);
      return `${relative(ROOT, src)}:${e.originalLine + 1}`;
    }
  }
  return `${relative(ROOT, file)}:${frame.lineNumber + 1}`;
}

/**
 * Busy time charged to the nearest bridge function (dist/) on the stack: a native call such as
 * SQLite's Statement.run (and the fsync inside it) or a UDP send counts for the bridge function
 * that made it. Each entry lists what its time was spent in (its own code: "self").
 */
function byBridgeFrame(file, topN = 15) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map();
  for (let i = 0; i < prof.samples.length; i++) self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + (prof.timeDeltas[i] ?? 0));
  const isBridge = (n) => typeof n.callFrame.url === 'string' && n.callFrame.url.startsWith('file://') && n.callFrame.url.includes('/dist/');
  const groups = new Map();
  let busy = 0;
  for (const [id, us] of self) {
    const leaf = byId.get(id);
    if (!leaf) continue;
    const leafName = leaf.callFrame.functionName || '(anonymous)';
    if (leafName === '(idle)') continue;
    busy += us;
    let n = leaf;
    let inspector = false;
    while (n && !isBridge(n)) {
      if (n.callFrame.url === 'node:inspector') inspector = true;
      n = byId.get(parent.get(n.id));
    }
    const key = n ? `${n.callFrame.functionName || '(anonymous)'}  ${srcLocation(n.callFrame)}` : inspector ? '(the profiler itself: Profiler.stop)' : `(outside the bridge) ${leafName}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { us: 0, leaves: new Map() }));
    g.us += us;
    const url = leaf.callFrame.url ?? '';
    const label = n === leaf ? 'self' : `${leafName}${url.startsWith('node:') ? ` (${url})` : url.startsWith('file://') && !url.includes('/dist/') ? ` (${relative(ROOT, fileURLToPath(url))})` : ''}`;
    g.leaves.set(label, (g.leaves.get(label) ?? 0) + us);
  }
  return [...groups.entries()].sort((a, b) => b[1].us - a[1].us).slice(0, topN).map(([k, g]) => ({
    at: k, selfMs: g.us / 1000, pct: busy > 0 ? (100 * g.us) / busy : 0,
    in: [...g.leaves.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([l, us]) => ({ what: l, pct: (100 * us) / g.us })),
  }));
}

async function benchProfile(receiver) {
  const dir = tempDir();
  try {
    const file = join(dir, 'procedure.cpuprofile');
    progress(`profile: ${PROFILE_N} concurrent requests, ${PROFILE_S} s, inspector CPU profile of the main thread`);
    const s = await closedLoop(receiver, PROFILE_N, PROFILE_S, { profileTo: file });
    const summary = summariseProfile(file, ROOT, 20);
    const bridgeFrames = byBridgeFrame(file, 15);
    return { concurrency: PROFILE_N, seconds: PROFILE_S, completedPerS: s.completedPerS, ok: s.ok, usage: s.usage, ...summary, bridgeFrames, note: 'profiling slows the loop: its requests/s are not the throughput figure' };
  } finally {
    removeDir(dir);
  }
}

// ---------------------------------------------------------------------------------------------
// Report

function absent(name) {
  const e = results.errors.find((x) => x.part === name);
  return e ? `   FAILED: ${e.message.split('\n')[0]}` : '   (not run)';
}

const line3 = (label, s) => `   ${pad(label, 52)}${lpad(f(s.p50, 2), 8)}${lpad(f(s.p90, 2), 8)}${lpad(f(s.p99, 2), 8)}${lpad(f(s.max, 2), 8)}   (n ${s.n})`;

function printReport() {
  const m = results.machine;
  const src = results.source;
  log('');
  log(`amk-bridge procedure bench  ${results.startedAt}  commit ${src.commit ?? '?'}${src.srcUncommittedChanges ? ' + uncommitted changes in src/' : ''}  node ${m.node}  SIPp ${m.sipp ?? '?'}  ${m.cpus} × ${m.cpuModel ?? 'CPU'}`);
  log(`bridge in-process (dist/), log level ${LOG_LEVEL}; journal: SQLite WAL synchronous=FULL on ${results.journal?.fs ?? '?'} (${results.journal?.dir ?? '?'}); region: SIPp 486 at once, attempts 2, spacing 0 s, ring timer ${RING_TIMER_S} s; receiver: node:http in a worker thread`);
  const cp = results.journal?.commitProbeMs;
  if (cp) log(`the disk under the journal: one SQLite commit (WAL, fsync) p50 ${f(cp.p50, 2)} ms, p90 ${f(cp.p90, 2)} ms, p99 ${f(cp.p99, 2)} ms, max ${f(cp.max, 2)} ms (300 commits, before the parts run); load average ${f(m.loadAvgAtStart, 2)} on ${m.cpus} CPUs at start`);

  log('');
  const l = results.latency;
  log(`1. Last attempt failed → no-contact message at the receiver (${N} requests after ${WARMUP} warm-up; citizens at ${CALL_RATE}/s; at most ${INFLIGHT} in flight)`);
  if (!l) log(absent('latency'));
  else {
    log(`   ${pad('ms', 52)}${lpad('p50', 8)}${lpad('p90', 8)}${lpad('p99', 8)}${lpad('max', 8)}`);
    log(`${line3("attempt 2 'failed' event → receiver has the POST", l.fromAttempt2FailedEvent)}   target < ${TARGET_MS} ms (p99)${l.ok ? '   ok' : `   ${MISSED}`}`);
    log(line3('B2BUA reports the 486 → receiver has the POST', l.fromStackFailure));
    log('   where the time goes:');
    log(line3('  486 reported → event (attempt row write, fsync)', l.breakdown.stackToEvent));
    log(line3('  event → commit starts (message built)', l.breakdown.eventToCommit));
    log(line3('  journal commit (outbox row + outcome, fsync)', l.breakdown.commit));
    log(line3('  commit done → receiver (outbox query, POST, wire)', l.breakdown.commitToReceiver));
    log(line3('    commit done → POST written to its socket', l.breakdown.commitToSocket));
    log(line3('    socket → receiver has the body (loopback, thread)', l.breakdown.socketToReceiver));
    log(line3('  (after) receiver → bridge records it delivered', l.breakdown.receiverToDelivered));
    log(line3('whole request: CTI trigger → receiver (2 SIP attempts)', l.wholeRequestTriggerToReceiver));
    log(`   ${l.over20ms} of ${l.fromAttempt2FailedEvent.n} requests at or over ${TARGET_MS} ms${l.lastAttemptNotBusy ? ` (${l.lastAttemptNotBusy} more whose attempt 2 did not end in a 486 are left out)` : ''}; warm-up requests: p50 ${f(l.warmupFromEvent.p50, 2)} ms, max ${f(l.warmupFromEvent.max, 2)} ms; max in flight ${l.maxInflight}; refused ${l.refused}`);
    log(`   messages: ${l.exactlyOnce.requests} requests, ${l.exactlyOnce.missing} missing, ${l.exactlyOnce.duplicates} duplicated; escalations ${l.escalated}; attempt outcomes ${Object.entries(l.attemptOutcomes).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    printJournal(l.journal);
    printUsage(l.usage);
  }

  log('');
  const t = results.throughput;
  log(`2. Throughput with instantly failing regions (closed loop: N held calls, a new request on a call as soon as its message is delivered;`);
  log(`   a ${STEP_S} s window opening ${RAMP_S} s after the N first requests; fresh bridge and journal per step)`);
  if (!t) log(absent('throughput'));
  else {
    log(`   ${lpad('N', 4)}${lpad('started', 9)}${lpad('done/s', 8)}${lpad('per-s min-max', 15)}${lpad('fail→recv p50', 15)}${lpad('p99', 7)}${lpad('commit p50', 12)}${lpad('p99', 7)}${lpad('request p50', 13)}${lpad('missing', 9)}${lpad('dup', 5)}${lpad('refused', 9)}${lpad('loop busy', 10)}${lpad('cpu/wait/blocked', 18)}${lpad('proc CPU', 10)}${lpad('SIPp reg', 10)}${lpad('other', 7)}  result`);
    for (const s of t.steps) {
      if (s.error) { log(`   ${lpad(s.concurrency, 4)}  ERROR ${s.error.split('\n')[0]}`); continue; }
      const u = s.usage;
      const per = s.perSecond.length ? `${Math.min(...s.perSecond)}-${Math.max(...s.perSecond)}` : '-';
      log(`   ${lpad(s.concurrency, 4)}${lpad(s.requestsStarted, 9)}${lpad(f(s.completedPerS, 0), 8)}${lpad(per, 15)}${lpad(f(s.latencyFromAttempt2FailedMs.p50, 2), 15)}${lpad(f(s.latencyFromAttempt2FailedMs.p99, 2), 7)}${lpad(f(s.commitMs.p50, 2), 12)}${lpad(f(s.commitMs.p99, 2), 7)}${lpad(f(s.triggerToReceiverMs.p50, 0), 13)}${lpad(s.exactlyOnce.missing, 9)}${lpad(s.exactlyOnce.duplicates, 5)}${lpad(s.refused, 9)}${lpad(f(u.eventLoopUtilisationPct, 0), 10)}${lpad(`${f(u.mainThread.onCpuPct, 0)}/${f(u.mainThread.runnableWaitingPct, 0)}/${f(u.mainThread.blockedPct, 0)}`, 18)}${lpad(f(u.processCpuPct, 0), 10)}${lpad(f(u.sippCpuPct.region, 0), 10)}${lpad(f(u.otherCpuPct, 0), 7)}  ${s.ok ? 'ok' : `FAILED${s.callsUp !== s.concurrency ? ` (only ${s.callsUp} calls up)` : ''}${s.escalated ? ` (${s.escalated} escalated)` : ''}${s.exactlyOnce.examples.length ? ` e.g. ${s.exactlyOnce.examples[0]}` : ''}`}${u.udpDrops.bridge || u.udpDrops.region ? `  UDP drops bridge/region ${u.udpDrops.bridge}/${u.udpDrops.region}` : ''}${nonBusy(s)}`);
    }
    log(`   best: ${t.bestPerS === null ? 'none passed' : `${f(t.bestPerS, 0)} requests/s at ${t.bestAtConcurrency} concurrent, every request exactly one message`}`);
    log('   (done/s: messages delivered (200 seen by the bridge) inside the window; fail→recv: attempt 2 failed → receiver, ms; commit: commitMessage, ms;');
    log('    request: CTI trigger → receiver, ms (two SIP attempts and the message; with N in the loop it is about N / done/s);');
    log('    loop busy: the bridge\'s event loop utilisation, %; cpu/wait/blocked: of that, its thread on a CPU / runnable but waiting for a CPU / blocked in a');
    log('    system call (the journal\'s fsync), % of wall time; CPU in % of one core: proc = this whole process (media worker, receiver thread), SIPp reg = the region UAS,');
    log('    other = everything else on the machine; missing/dup: requests without / with more than one no-contact POST at the receiver, after a drain)');
    const noisy = t.steps.filter((s) => s.usage?.otherCpuPct > 20);
    if (noisy.length) log(`   WARNING: other processes used > 20 % of a core during ${noisy.map((s) => `N=${s.concurrency}`).join(', ')}: those figures are disturbed.`);
  }

  if (PROFILE) {
    log('');
    const p = results.profile;
    log(`3. CPU profile of the bridge's event loop (main thread, ${PROFILE_N} concurrent requests, ${PROFILE_S} s, sampling 250 µs)`);
    if (!p) log(absent('profile'));
    else {
      log(`   busy ${f(p.busyMs, 0)} ms of ${f(p.totalMs, 0)} ms sampled (${f((100 * p.busyMs) / Math.max(1, p.totalMs), 0)} %); ${f(p.completedPerS, 0)} requests/s while profiled`);
      log(`   by area: ${p.areas.slice(0, 8).map((a) => `${a.area} ${f(a.pct, 1)} %`).join(', ')}`);
      log('   top self time:');
      for (const x of p.top.slice(0, 10)) log(`     ${lpad(f(x.pct, 1), 5)} %  ${lpad(f(x.selfMs, 0), 6)} ms  ${x.fn}  ${x.at}`);
      log('   charged to the nearest bridge function on the stack (natives it called included):');
      for (const x of p.bridgeFrames.slice(0, 12)) log(`     ${lpad(f(x.pct, 1), 5)} %  ${lpad(f(x.selfMs, 0), 6)} ms  ${x.at}   in: ${x.in.map((l) => `${l.what} ${f(l.pct, 0)} %`).join(', ')}`);
    }
  }
  if (results.errors.length) {
    log('');
    log('Errors:');
    for (const e of results.errors) log(`   ${e.part}: ${e.message.split('\n')[0]}`);
  }
  log('');
  log(`written: ${RESULTS}`);
}

/** Attempts that did not end in the region's 486 (ring timer under a stalled loop, cancels). */
function nonBusy(s) {
  const o = Object.entries(s.attemptOutcomes ?? {}).filter(([k]) => k !== 'busy');
  return o.length ? `  attempts not busy: ${o.map(([k, v]) => `${k} ${v}`).join(', ')}` : '';
}

function printJournal(j) {
  if (!j) return;
  const order = ['requestStarted', 'attemptStarted', 'attemptEnded', 'commitMessage', 'delivered', 'due', 'nextDueAt', 'requestOutcome', 'attemptProvisional'];
  const parts = order.filter((k) => j[k]).map((k) => `${k} ×${f(j[k].perRequest, 1)} mean ${f(j[k].meanMs, 2)}${j[k].p99Ms !== null ? ` p99 ${f(j[k].p99Ms, 2)}` : ''} max ${f(j[k].maxMs, 2)}`);
  log(`   journal calls per request, ms: ${parts.slice(0, 4).join('; ')}`);
  if (parts.length > 4) log(`                                  ${parts.slice(4).join('; ')}`);
}

function printUsage(u) {
  if (!u) return;
  log(`   during the measured requests: event loop busy ${f(u.eventLoopUtilisationPct, 0)} % = on CPU ${f(u.mainThread.onCpuPct, 0)} % + waiting for a CPU ${f(u.mainThread.runnableWaitingPct, 0)} % + blocked (fsync…) ${f(u.mainThread.blockedPct, 0)} %; process ${f(u.processCpuPct, 0)} %, SIPp trunk/call taker/region ${f(u.sippCpuPct.trunk, 0)}/${f(u.sippCpuPct.callTaker, 0)}/${f(u.sippCpuPct.region, 0)} %, other ${f(u.otherCpuPct, 0)} % (of one core);`);
  log(`   the main thread's CPU from /proc: ${f(u.mainThreadCpuPct, 0)} %; event-loop delay p50 ${f(u.eventLoopDelayMs.p50, 2)} ms, p99 ${f(u.eventLoopDelayMs.p99, 2)} ms, max ${f(u.eventLoopDelayMs.max, 2)} ms; GC ${u.gc.count} pauses, ${f(u.gc.totalMs, 0)} ms in all, longest ${f(u.gc.maxMs, 2)} ms; UDP drops bridge/region ${u.udpDrops.bridge ?? '-'}/${u.udpDrops.region ?? '-'}`);
}

// ---------------------------------------------------------------------------------------------

let interrupted = false;

async function main() {
  installExitHooks(() => {
    interrupted = true;
    results.errors.push({ part: 'bench', message: 'interrupted' });
    writeResults();
  });
  process.on('unhandledRejection', (err) => { results.errors.push({ part: 'unhandled', message: String(err?.stack ?? err) }); });
  try {
    mods = await loadDist();
  } catch (err) {
    process.stderr.write(`cannot load dist/ (run npm run build first): ${err.message}\n`);
    process.exit(0);
  }
  // CLK_TCK is read once (a child process): before any measured window.
  threadCpuSeconds(process.pid);
  cpuSeconds(process.pid);
  const probeDir = tempDir(JOURNAL_BASE);
  results.journal = { dir: JOURNAL_BASE, fs: fsType(probeDir), pragmas: 'journal_mode=WAL, synchronous=FULL', commitProbeMs: null };
  removeDir(probeDir);
  results.journal.commitProbeMs = await fsyncProbe(JOURNAL_BASE);
  progress(`procedure bench: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, node ${process.version}, journal on ${results.journal.fs}`);
  const receiver = await startReceiver();
  const parts = [
    ['latency', () => benchLatency(receiver)],
    ['throughput', () => benchThroughput(receiver)],
    ...(PROFILE ? [['profile', () => benchProfile(receiver)]] : []),
  ];
  for (const [name, fn] of parts) {
    if (interrupted) break;
    if (ONLY && !ONLY.has(name)) continue;
    try {
      results[name] = await fn();
    } catch (err) {
      results.errors.push({ part: name, message: String(err?.stack ?? err) });
      progress(`${name}: ERROR ${err?.message ?? err}`);
    }
    writeResults();
  }
  results.unexpectedKeysAtReceiver = unexpectedKeys(receiver);
  results.nonPostRequestsAtReceiver = receiver.other();
  await receiver.close();
  writeResults();
  printReport();
  process.exit(0);
}

await main();
