#!/usr/bin/env node
// amk-bridge benchmarks: `npm run bench` (builds, then runs this file against dist/).
//
//  1. Start to ready and idle RSS: `node dist/cli/main.js run --config <tmp yaml>` is spawned 5
//     times; the time from spawn to its "amk-bridge listening" log line (median of 5), and the
//     daemon's VmRSS 5 s after the last start became ready.            Targets: < 1 s, < 80 MB.
//  2. Call setup throughput: the daemon (a child process) between a SIPp trunk UAC
//     (bench/trunk-call-signalling.xml, 1 s calls) and a SIPp call-taker UAS
//     (bench/calltaker-answer-signalling.xml). Both copies offer a=inactive media: this part
//     measures signalling; the cost of anchored RTP is bench/media.js's. The rate is stepped (10 s of calls per step, a fresh
//     daemon and fresh SIPp per step); a call counts as failed unless the trunk SIPp finished it
//     successfully (calls whose 200 takes longer than 5 s fail: -recv_timeout 5000). Result: the
//     highest rate with < 1 % failures.                                 Target: >= 400 calls/s.
//  3. Added latency at 100 calls/s: tcpdump on lo captures 1000 calls (bench/trunk-call-subject.xml,
//     whose INVITE carries `Subject: [call_id]`, a header the bridge passes through); the pcap is
//     parsed here and each INVITE trunk→bridge is paired with the INVITE bridge→call taker (by
//     Subject), each 200 call taker→bridge with the 200 bridge→trunk (by the Call-ID mapping the
//     INVITE pair gives). First occurrences only (retransmissions ignored). Targets: p50 < 1 ms,
//     p99 < 5 ms for both.
//  4. CPU profile: one more 400 calls/s run (5 s) with the daemon under `node --cpu-prof`; the top
//     self-time functions (mapped to src/*.ts through the source maps) and self time per area.
//
// Prints a table (TARGET MISSED next to any figure that misses its target) and writes
// bench/results.json. The exit code is 0 whatever the figures (also after an error in one part,
// which is reported); only Ctrl-C/SIGTERM exit non-zero (130/143), after killing every child.
// Every child (daemons, SIPp, tcpdump) is killed on exit, on an error and on Ctrl-C.
//
// When the last of the default steps passes, the bench keeps stepping up (+100/s) to find the
// limit, up to BENCH_MAX_RATE (default 1000) and only while SIPp keeps up.
//
// Environment knobs: BENCH_RATES=100,200,… (steps; no extension then), BENCH_STEP_S=10 (seconds of calls per step),
// BENCH_PROFILE=0 (skip the profile), BENCH_LOG_LEVEL=info (the daemon's log level under load),
// BENCH_KEEP=1 (keep the temporary directories with logs, SIPp stats and the pcap),
// BENCH_TRACE_ERR=1 (the trunk SIPp writes -trace_err; with BENCH_KEEP=1 to read it),
// BENCH_PROFILE_RATE=400 (calls/s of the profiled run), BENCH_ONLY=startup,latency,throughput,profile (run only these parts), BENCH_DAEMON_ARGS="…"
// (extra node options for the daemon in the load runs, e.g. --trace-gc; its log is in the kept dir).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { benchConfigInput, CLI, liveDirs, ROOT, startDaemon, startDaemonTimed, stopDaemon, tempDir, writeConfig } from './lib/bridge.js';
import { summariseProfile } from './lib/cpuprofile.js';
import { tcpdumpCapture } from './lib/capture.js';
import { gcPauses } from './lib/gc.js';
import { pairAcrossBridge, readPcap, stats } from './lib/pcap.js';
import { counterDelta, cpuSeconds, freeUdpPorts, systemCpu, udpCounters, udpSocketDrops, installExitHooks, procStatusMb, sleep, spawnTracked, stopChild, which } from './lib/procs.js';
import { machineInfo, sourceInfo } from './lib/about.js';
import { readStatRows, SIPP_BIN, sippListening, startSipp, summariseUac, summariseUas, TEST_SCENARIOS } from './lib/sipp.js';

const BENCH_DIR = join(ROOT, 'bench');
const RESULTS = join(BENCH_DIR, 'results.json');
const TARGETS = { readyMs: 1000, rssMb: 80, rate: 400, p50Ms: 1, p99Ms: 5 };
const RATES = (process.env.BENCH_RATES ?? '100,200,300,400,500,600').split(',').map(Number).filter((n) => n > 0);
const MAX_RATE = Number(process.env.BENCH_MAX_RATE ?? 1000) || 1000;
const STEP_S = Number(process.env.BENCH_STEP_S ?? 10) || 10;
const HOLD_MS = 1000;
const RECV_TIMEOUT_MS = 5000;
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL ?? 'info';
const LOGS_INFO = ['info', 'debug', 'trace'].includes(LOG_LEVEL);
const TRACE_ERR = process.env.BENCH_TRACE_ERR === '1';
const KEEP = process.env.BENCH_KEEP === '1';
const PROFILE = process.env.BENCH_PROFILE !== '0';
const DAEMON_ARGS = (process.env.BENCH_DAEMON_ARGS ?? '').split(/\s+/).filter(Boolean);
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',')) : null;
const MISSED = 'TARGET MISSED';

const results = {
  startedAt: new Date().toISOString(),
  machine: machineInfo({ note: '' }),
  source: sourceInfo(),
  targets: TARGETS,
  startup: null,
  throughput: null,
  latency: null,
  profile: null,
  errors: [],
};


const log = (s = '') => process.stdout.write(`${s}\n`);
const progress = (s) => { if (!interrupted) process.stdout.write(`# ${s}\n`); };
const f = (v, d = 1) => (v === null || v === undefined || Number.isNaN(v) ? '-' : Number(v).toFixed(d));
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);

function writeResults() {
  results.finishedAt = new Date().toISOString();
  try { writeFileSync(RESULTS, `${JSON.stringify(results, null, 2)}\n`); } catch (e) { process.stderr.write(`cannot write ${RESULTS}: ${e.message}\n`); }
}

function cleanup(dir) {
  if (!dir) return;
  liveDirs.delete(dir);
  if (KEEP) progress(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}

let interrupted = false;

// ---------------------------------------------------------------------------------------------
// 1. Start to ready, idle RSS

async function benchStartup() {
  const dir = tempDir();
  try {
    const cfg = writeConfig(dir, benchConfigInput({ logLevel: 'info' }));
    const runs = [];
    const inProcess = [];
    let rssMb = null;
    for (let i = 0; i < 5; i++) {
      const d = await startDaemonTimed(cfg);
      runs.push(d.readyMs);
      inProcess.push(d.startingToReadyMs);
      if (i === 4) {
        await sleep(5000);
        rssMb = procStatusMb(d.child.pid, 'VmRSS');
      }
      await stopChild(d.child, 'SIGTERM', 3000);
    }
    const sorted = [...runs].sort((a, b) => a - b);
    // For scale: a bare `node -e 0` (spawn → exit), median of 5.
    const bare = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const c = spawnTracked('node -e 0', process.execPath, ['-e', '0'], { stdio: 'ignore' });
      await c.exited;
      bare.push(performance.now() - t);
    }
    bare.sort((a, b) => a - b);
    const ip = inProcess.filter((x) => x !== null).sort((a, b) => a - b);
    return { runsMs: runs, medianMs: sorted[2], startingToReadyMs: ip[Math.floor(ip.length / 2)] ?? null, bareNodeMs: bare[2], rssMb, readyOk: sorted[2] < TARGETS.readyMs, rssOk: rssMb !== null && rssMb < TARGETS.rssMb };
  } finally {
    cleanup(dir);
  }
}

// ---------------------------------------------------------------------------------------------
// One load run: a fresh daemon, a SIPp UAS as call-taker platform, a SIPp UAC as trunk.

async function runLoad({ rate, calls, scenario, nodeArgs = [], label, withCapture = null, afterStop = null }) {
  const dir = tempDir();
  const out = { rate, calls };
  const started = []; // children of this run, stopped in `finally` whatever happens
  try {
    const [uasPort, uacPort] = await freeUdpPorts(2);
    const cfg = writeConfig(dir, benchConfigInput({ callTakerPort: uasPort, logLevel: LOG_LEVEL }));
    const daemon = await startDaemon(cfg, dir, { nodeArgs: [...DAEMON_ARGS, ...(typeof nodeArgs === 'function' ? nodeArgs(dir) : nodeArgs)], name: 'daemon', logsInfo: LOGS_INFO });
    started.push(daemon.child);
    out.ports = { bridge: daemon.udpPort, trunk: uacPort, callTaker: uasPort };
    const timeoutS = Math.ceil(calls / rate + HOLD_MS / 1000 + RECV_TIMEOUT_MS / 1000 + 10);
    const limit = Math.max(200, rate * 5);
    const uas = startSipp({
      scenario: join(BENCH_DIR, 'calltaker-answer-signalling.xml'), port: uasPort, calls, limit,
      keys: { answer_ms: 0, linger_ms: 0 }, timeoutS: timeoutS + 10, dir, name: 'uas',
    });
    started.push(uas.child);
    await sippListening(uas);
    const capture = withCapture ? await withCapture.start({ bridgePort: daemon.udpPort, dir }) : null;
    if (capture) started.push(capture.child);

    const pids = { bridge: daemon.child.pid, uas: uas.child.pid };
    const udp0 = udpCounters();
    const t0 = performance.now();
    const hrUs = () => Number(process.hrtime.bigint() / 1000n);
    out.loadWindowUs = [hrUs(), null];
    const uac = startSipp({
      scenario, remote: `127.0.0.1:${daemon.udpPort}`, port: uacPort, calls, rate, limit,
      keys: { hold_ms: HOLD_MS }, timeoutS, dir, name: 'uac',
      extra: ['-recv_timeout', String(RECV_TIMEOUT_MS)], traceErrors: TRACE_ERR,
    });
    started.push(uac.child);
    pids.uac = uac.child.pid;
    // CPU samples every 250 ms (the UAC's /proc entry is gone once it exits).
    const samples = [];
    const sockPorts = [daemon.udpPort, uacPort, uasPort];
    const maxDrops = {};
    const sample = () => {
      const sys = systemCpu();
      samples.push({ t: (performance.now() - t0) / 1000, bridge: cpuSeconds(pids.bridge), uac: cpuSeconds(pids.uac), uas: cpuSeconds(pids.uas), bench: cpuSeconds(process.pid), sys: sys?.busy ?? null });
      for (const [port, n] of Object.entries(udpSocketDrops(sockPorts))) maxDrops[port] = Math.max(maxDrops[port] ?? 0, n);
    };
    sample();
    const sampler = setInterval(sample, 250);
    const uacStatus = await uac.done;
    clearInterval(sampler);
    out.loadWindowUs[1] = hrUs();
    out.wallS = (performance.now() - t0) / 1000;
    out.uacExit = uacStatus.code ?? uacStatus.signal;
    out.peakRssMb = procStatusMb(pids.bridge, 'VmHWM');
    const udp = counterDelta(udp0, udpCounters());
    // System-wide: datagrams the kernel dropped because a socket's receive buffer was full.
    out.udpDrops = udp ? { rcvbufErrors: udp.RcvbufErrors, inErrors: udp.InErrors, noPorts: udp.NoPorts } : null;

    // The UAS ends by itself after `calls` calls; give stragglers a moment, then stop it.
    await Promise.race([uas.done, sleep(3000)]);
    await stopChild(uas.child, 'SIGTERM', 1000);
    if (capture) out.capture = await withCapture.stop(capture);
    await stopDaemon(daemon);

    const uacSum = summariseUac(readStatRows(uac.statPath), calls);
    const uasSum = summariseUas(readStatRows(uas.statPath));
    out.uac = uacSum;
    out.uas = uasSum;
    const ok = uacSum?.successful ?? 0;
    out.successful = ok;
    out.failed = calls - ok; // SIPp failures, calls still running at its timeout, calls never placed
    out.failurePct = (100 * out.failed) / calls;
    out.achievedRate = uacSum?.achievedRate ?? null;
    out.keptUp = out.achievedRate !== null && out.achievedRate >= 0.95 * rate && (uacSum?.placed ?? 0) >= calls;
    out.cpuPct = cpuWindow(samples, 1, calls / rate);
    // Everything else on the machine (other users' work, tcpdump, the kernel's softirqs…), not
    // this bench process either.
    const c = out.cpuPct;
    out.cpuPct.other = c.sys !== null && c.bridge !== null ? Math.max(0, c.sys - c.bridge - (c.uac ?? 0) - (c.uas ?? 0) - (c.bench ?? 0)) : null;
    // Datagrams dropped at each socket's receive queue (full buffer), sampled during the run.
    out.socketDrops = { bridge: maxDrops[daemon.udpPort] ?? null, trunk: maxDrops[uacPort] ?? null, callTaker: maxDrops[uasPort] ?? null };
    const errs = uac.stderr();
    if (errs) out.uacStderr = errs.slice(0, 2000);
    if (afterStop) await afterStop(dir, out);
    progress(`${label}: ${out.successful}/${calls} ok, ${out.failed} failed (${f(out.failurePct, 2)} %), placed at ${f(out.achievedRate)}/s, bridge CPU ${f(out.cpuPct.bridge, 0)} %`);
    return out;
  } finally {
    await Promise.all(started.map((c) => stopChild(c, 'SIGTERM', 2000)));
    cleanup(dir);
  }
}

/** CPU use (% of one core) of each process over [fromS, toS] of the run (the steady state). */
function cpuWindow(samples, fromS, toS) {
  const valid = (k) => samples.filter((s) => s[k] !== null);
  const out = {};
  for (const k of ['bridge', 'uac', 'uas', 'bench', 'sys']) {
    const v = valid(k);
    if (v.length < 2) { out[k] = null; continue; }
    let a = v.find((s) => s.t >= fromS) ?? v[0];
    let b = [...v].reverse().find((s) => s.t <= toS) ?? v[v.length - 1];
    if (b.t - a.t < 0.5) { a = v[0]; b = v[v.length - 1]; }
    out[k] = b.t > a.t ? (100 * (b[k] - a[k])) / (b.t - a.t) : null;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// 2. Throughput steps

async function benchThroughput() {
  const steps = [];
  let failingInARow = 0;
  const rates = [...RATES];
  for (let i = 0; i < rates.length; i++) {
    const rate = rates[i];
    if (failingInARow >= 2) {
      steps.push({ rate, skipped: 'two lower steps already had >= 1 % failures' });
      continue;
    }
    const step = await runLoad({ rate, calls: rate * STEP_S, scenario: join(BENCH_DIR, 'trunk-call-signalling.xml'), label: `throughput ${rate}/s` });
    steps.push(step);
    failingInARow = step.failurePct < 1 ? 0 : failingInARow + 1;
    // The last planned step passed: keep stepping up (by the last increment) to find the limit,
    // as long as SIPp keeps up and up to BENCH_MAX_RATE.
    if (i === rates.length - 1 && !process.env.BENCH_RATES && step.failurePct < 1 && step.keptUp) {
      const next = rate + (rates.length > 1 ? rate - rates[i - 1] : rate);
      if (next <= MAX_RATE) rates.push(next);
    }
    await sleep(500);
  }
  const passing = steps.filter((s) => !s.skipped && s.failurePct < 1);
  const best = passing.length ? Math.max(...passing.map((s) => s.rate)) : null;
  return { holdMs: HOLD_MS, stepS: STEP_S, recvTimeoutMs: RECV_TIMEOUT_MS, logLevel: LOG_LEVEL, steps, maxRateUnder1Pct: best, ok: best !== null && best >= TARGETS.rate, otherCpu: otherCpu(steps) };
}

/** Mean and max CPU (% of one core) that other processes used during load runs. */
function otherCpu(runs) {
  const v = runs.map((r) => r.cpuPct?.other).filter((x) => typeof x === 'number');
  return v.length ? { meanPct: v.reduce((a, b) => a + b, 0) / v.length, maxPct: Math.max(...v) } : null;
}

const NOISY_PCT = 20;
function noiseWarning(o) {
  if (!o || o.maxPct < NOISY_PCT) return null;
  return `   WARNING: other processes on this machine used up to ${f(o.maxPct, 0)} % of a core (mean ${f(o.meanPct, 0)} %) during the load: these figures are disturbed; re-run on a quiet machine.`;
}

// ---------------------------------------------------------------------------------------------
// 3. Latency through the bridge, from a packet capture

function ensureTcpdump() {
  if (which('tcpdump')) return true;
  if (process.getuid?.() !== 0) return false;
  progress('tcpdump missing: apt-get install -y tcpdump');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    execFileSync('apt-get', ['install', '-y', 'tcpdump'], { stdio: 'inherit', env });
  } catch {
    try {
      execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
      execFileSync('apt-get', ['install', '-y', 'tcpdump'], { stdio: 'inherit', env });
    } catch { /* reported below */ }
  }
  return which('tcpdump') !== null;
}

async function benchLatency() {
  if (!ensureTcpdump()) return { skipped: 'tcpdump is not installed (and the bench is not root, or apt-get failed)' };
  let analysis = null;
  const run = await runLoad({
    rate: 100, calls: 1000, scenario: join(BENCH_DIR, 'trunk-call-subject.xml'), label: 'latency 100/s',
    withCapture: tcpdumpCapture,
    nodeArgs: ['--trace-gc'], // one stdout line per GC: pauses explain latency tails
    afterStop: async (dir, out) => {
      const pcap = readPcap(readFileSync(out.capture.file));
      const ports = out.ports;
      const pairs = pairAcrossBridge(pcap.packets, ports);
      analysis = {
        linkType: pcap.linkType, nanosecondTimestamps: pcap.nanos, packets: pcap.packets.length, skipped: pcap.skipped,
        ports, sipMessages: pairs.sipMessages,
        invitesFromTrunk: pairs.invitesIn, invitesToCallTaker: pairs.invitesOut, okFromCallTaker: pairs.okIn, okToTrunk: pairs.okOut,
        invite: stats(pairs.inviteMs), ok: stats(pairs.okMs),
        over1ms: { invite: pairs.inviteMs.filter((x) => x >= 1).length, ok: pairs.okMs.filter((x) => x >= 1).length },
        daemonGc: gcPauses(readFileSync(join(dir, 'daemon.log'), 'utf8')),
      };
    },
  });
  const { capture, ...load } = run;
  const a = analysis;
  const okFor = (s) => s && s.n > 0 && s.p50 < TARGETS.p50Ms && s.p99 < TARGETS.p99Ms;
  return { load, capture, analysis: a, ok: a ? okFor(a.invite) && okFor(a.ok) : false };
}

// ---------------------------------------------------------------------------------------------
// 4. CPU profile of the daemon at 400 calls/s

async function benchProfile() {
  const rate = Number(process.env.BENCH_PROFILE_RATE ?? 400) || 400;
  let summary = null;
  const run = await runLoad({
    rate, calls: rate * 5, scenario: join(BENCH_DIR, 'trunk-call-signalling.xml'), label: `profile ${rate}/s (--cpu-prof)`,
    nodeArgs: (dir) => ['--cpu-prof', '--cpu-prof-dir', dir],
    afterStop: async (dir, out) => {
      // One profile per thread: CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile, thread 0 = main
      // (the SIP event loop); the others are worker threads (the media engine).
      const files = readdirSync(dir).filter((n) => n.endsWith('.cpuprofile')).sort();
      if (!files.length) throw new Error('the daemon wrote no .cpuprofile');
      summary = files.map((file) => {
        const tid = Number(/\.(\d+)\.\d+\.cpuprofile$/.exec(file)?.[1] ?? 0);
        // Only while the trunk SIPp ran (not the daemon's start and stop).
        return { thread: tid === 0 ? 'main' : `worker ${tid}`, ...summariseProfile(join(dir, file), ROOT, 15, out.loadWindowUs) };
      });
    },
  });
  return { rate, calls: run.calls, failed: run.failed, bridgeCpuPct: run.cpuPct?.bridge ?? null, threads: summary };
}

// ---------------------------------------------------------------------------------------------
// Report

/** Why a part has no figures: it failed (with its error) or was not run. */
function absent(name) {
  const e = results.errors.find((x) => x.part === name);
  return e ? `   FAILED: ${e.message.split('\n')[0]}` : '   (not run)';
}

const drops = (st) => (st.socketDrops ? ['bridge', 'trunk', 'callTaker'].map((k) => st.socketDrops[k] ?? '-').join('/') : '-');

function printReport() {
  const m = results.machine;
  log('');
  const src = results.source;
  log(`amk-bridge bench  ${results.startedAt}  commit ${src.commit ?? '?'}${src.srcUncommittedChanges ? ' + uncommitted changes in src/' : ''}  node ${m.node}  SIPp ${m.sipp ?? '?'}  ${m.cpus} × ${m.cpuModel ?? 'CPU'}`);
  log(`NOTE: ${m.note}`);

  log('');
  log('1. Start to ready and idle RSS');
  const s = results.startup;
  if (!s) log(absent('startup'));
  else {
    log(`   spawn → "amk-bridge listening", median of 5   ${lpad(f(s.medianMs, 0), 6)} ms   target < ${TARGETS.readyMs} ms${s.readyOk ? '' : `   ${MISSED}`}`);
    log(`     runs: ${s.runsMs.map((x) => f(x, 0)).join(', ')} ms; of which "amk-bridge starting" → listening ${f(s.startingToReadyMs, 0)} ms (median); a bare \`node -e 0\` takes ${f(s.bareNodeMs, 0)} ms`);
    log(`   VmRSS 5 s after ready                        ${lpad(f(s.rssMb, 1), 6)} MB   target < ${TARGETS.rssMb} MB${s.rssOk ? '' : `   ${MISSED}`}`);
  }

  log('');
  const t = results.throughput;
  log(`2. Call setup throughput (UDP, ${HOLD_MS / 1000} s calls, ${STEP_S} s of calls per step, fresh daemon per step, daemon log level ${LOG_LEVEL})`);
  if (!t) log(absent('throughput'));
  else {
    log(`   ${pad('rate/s', 7)}${lpad('calls', 7)}${lpad('ok', 7)}${lpad('failed', 8)}${lpad('fail %', 8)}${lpad('placed/s', 10)}  ${pad('SIPp kept up', 13)}${lpad('setup ms', 9)}${lpad('CPU% bridge', 12)}${lpad('UAC', 6)}${lpad('UAS', 6)}${lpad('other', 7)}  ${pad('RSS MB', 7)}${pad('drops b/t/c', 13)} failure causes`);
    for (const st of t.steps) {
      if (st.skipped) { log(`   ${pad(st.rate, 7)}skipped: ${st.skipped}`); continue; }
      const causes = Object.entries(st.uac?.failureCauses ?? {}).map(([k, v]) => `${k} ${v}`).join(', ');
      const running = st.uac?.stillRunning ? ` running at timeout ${st.uac.stillRunning}` : '';
      log(`   ${pad(st.rate, 7)}${lpad(st.calls, 7)}${lpad(st.successful, 7)}${lpad(st.failed, 8)}${lpad(f(st.failurePct, 2), 8)}${lpad(f(st.achievedRate), 10)}  ${pad(st.keptUp ? 'yes' : 'NO', 13)}${lpad(f(st.uac?.setupMeanMs, 0), 9)}${lpad(f(st.cpuPct?.bridge, 0), 12)}${lpad(f(st.cpuPct?.uac, 0), 6)}${lpad(f(st.cpuPct?.uas, 0), 6)}${lpad(f(st.cpuPct?.other, 0), 7)}  ${pad(f(st.peakRssMb, 0), 7)}${pad(drops(st), 13)} ${causes}${running}`);
    }
    const warnT = noiseWarning(t.otherCpu);
    if (warnT) log(warnT);
    const top = t.maxRateUnder1Pct !== null && t.maxRateUnder1Pct === Math.max(...t.steps.map((x) => x.rate)) ? ' (the highest rate tested: the limit is above it)' : '';
    log(`   highest rate with < 1 % failures: ${t.maxRateUnder1Pct ?? 'none'} calls/s${top}   target >= ${TARGETS.rate} calls/s${t.ok ? '' : `   ${MISSED}`}`);
    log('   (setup ms: SIPp\'s mean INVITE → 200 at the trunk; CPU%: of one core, steady state; RSS: daemon peak VmHWM;');
    log('    other: CPU used by everything else on the machine; drops b/t/c: datagrams dropped at the bridge\'s / trunk\'s /');
    log('    call taker\'s full UDP receive queue; failure causes: SIPp\'s Failed* counters; kept up: placed >= 95 % of the');
    log('    rate — NO means SIPp could not, or its -l limit of 5 s worth of open calls held it back)');
  }

  log('');
  const l = results.latency;
  log('3. Added latency at 100 calls/s (1000 calls, tcpdump -i lo, first occurrences only)');
  if (!l) log(absent('latency'));
  else if (l.skipped) log(`   skipped: ${l.skipped}`);
  else if (!l.analysis) log('   (no analysis, see errors)');
  else {
    const a = l.analysis;
    const warnL = noiseWarning(otherCpu([l.load]));
    const row = (name, st) => {
      const miss = (v, tgt) => (v === null || v >= tgt ? ` ${MISSED}` : '');
      return `   ${pad(name, 44)} n=${lpad(st.n, 5)}  p50 ${lpad(f(st.p50, 3), 7)} ms${miss(st.p50, TARGETS.p50Ms)}  p99 ${lpad(f(st.p99, 3), 7)} ms${miss(st.p99, TARGETS.p99Ms)}  max ${lpad(f(st.max, 3), 7)} ms`;
    };
    log(row('INVITE trunk→bridge → INVITE bridge→taker', a.invite));
    log(row('200 taker→bridge → 200 bridge→trunk', a.ok));
    log(`   targets: p50 < ${TARGETS.p50Ms} ms, p99 < ${TARGETS.p99Ms} ms; calls ok ${l.load.successful}/1000; CPU % bridge ${f(l.load.cpuPct?.bridge, 0)}, other ${f(l.load.cpuPct?.other, 0)}; drops b/t/c ${drops(l.load)}; link type ${a.linkType}${a.nanosecondTimestamps ? ' (ns timestamps)' : ' (µs timestamps)'}; ${a.packets} UDP packets, kernel drops ${l.capture?.droppedByKernel ?? '?'}`);
    if (warnL) log(warnL);
    log(`   pairs >= 1 ms: INVITE ${a.over1ms.invite}, 200 ${a.over1ms.ok};  daemon GC pauses (--trace-gc): ${Object.entries(a.daemonGc).map(([k, g]) => `${g.count} × ${k} (max ${f(g.maxMs, 1)} ms, ${g.atLeast1ms} >= 1 ms)`).join(', ') || 'none logged'}`);
  }

  const p = results.profile;
  if (p && p.threads) {
    log('');
    log(`4. Daemon CPU profile at ${p.rate} calls/s (node --cpu-prof, ${p.calls} calls, ${p.failed} failed; process CPU ${f(p.bridgeCpuPct, 0)} % of a core; % below: of each thread's busy time)`);
    for (const th of p.threads) {
      log(`   thread ${th.thread}${th.windowed ? ', while the trunk ran' : ', whole run'}: busy ${f(th.busyMs / 1000, 2)} s of ${f(th.totalMs / 1000, 2)} s`);
      log('     by area:  ' + th.areas.slice(0, 8).map((x) => `${x.area} ${f(x.pct, 1)}%`).join(' · '));
      log('     top self time:');
      for (const x of th.top.slice(0, th.thread === 'main' ? 12 : 8)) log(`     ${lpad(f(x.pct, 1), 6)} %  ${lpad(f(x.selfMs, 0), 6)} ms  ${pad(x.fn, 34)} ${x.at}`);
    }
  } else if (PROFILE && (!ONLY || ONLY.has('profile'))) {
    log('');
    log('4. Daemon CPU profile');
    log(absent('profile'));
  }

  if (results.errors.length) {
    log('');
    log('Errors:');
    for (const e of results.errors) log(`   ${e.part}: ${e.message}`);
  }
  log('');
  log(`results: ${RESULTS}`);
}

async function part(name, fn) {
  if (interrupted || (ONLY && !ONLY.has(name))) return;
  const load = loadavg()[0];
  try {
    results[name] = await fn();
    if (results[name] && typeof results[name] === 'object') results[name].loadAvg1mBefore = load;
  } catch (err) {
    results.errors.push({ part: name, message: err instanceof Error ? err.message : String(err) });
    progress(`${name} failed: ${err instanceof Error ? err.stack : err}`);
  }
  writeResults();
}

async function main() {
  installExitHooks(() => {
    interrupted = true;
    results.interrupted = true;
    writeResults();
  });
  process.once('exit', () => {
    if (KEEP) return;
    for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  });
  if (!existsSync(CLI)) {
    results.errors.push({ part: 'setup', message: `${CLI} missing: run npm run build first` });
    printReport();
    writeResults();
    return;
  }
  const m = results.machine;
  m.note = `this machine has ${m.cpus} CPU core(s), shared by the bridge, the SIPp trunk (UAC) and the SIPp call-taker (UAS); `
    + 'the throughput and latency figures are therefore a lower bound for the bridge on a host of its own.';
  progress(m.note);
  const t0 = performance.now();
  await part('startup', benchStartup);
  await part('latency', benchLatency);
  await part('throughput', benchThroughput);
  if (PROFILE) await part('profile', benchProfile);
  results.durationS = (performance.now() - t0) / 1000;
  printReport();
  writeResults();
  progress(`bench took ${f(results.durationS, 0)} s`);
}

main().catch((err) => {
  results.errors.push({ part: 'main', message: err instanceof Error ? err.stack ?? err.message : String(err) });
  try { printReport(); } catch { /* best effort */ }
  writeResults();
}).finally(async () => {
  const { stopAll } = await import('./lib/procs.js');
  await stopAll(1500);
  process.exit(0);
});
