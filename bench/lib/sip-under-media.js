// SIP call-setup latency through the daemon while its media worker carries a standing load of
// three-party conferences (the last part of bench/media.js).
//
// What runs, per step (conferences: 0 as the control, then SIP_MEDIA_CONFS, default 200):
//   - the daemon (dist/cli/main.js run, a child process) with bench/lib/media-preload.js loaded
//     through --import: when the daemon starts its own media engine, N three-party conferences
//     (3N endpoints, PCMU 20 ms, sendrecv) are set up on it — the same engine and worker thread
//     the calls use. Its code is not changed; only MediaEngine.start is wrapped;
//   - the phones of those conferences (bench/lib/rtp-load.js: one 20 ms packet per endpoint
//     every 20 ms, 50 × 3N packets/s in, as many out), started 3 s before the calls;
//   - the signalling load of bench/run.js's latency part: a SIPp trunk UAC at 100 calls/s, 1000
//     calls of 1 s (bench/trunk-call-subject.xml, `Subject: [call_id]`), a SIPp call-taker UAS
//     (bench/calltaker-answer-signalling.xml), both with a=inactive media, so every call also
//     allocates and configures its two anchored endpoints in the same worker;
//   - tcpdump on lo (SIP port only): INVITE trunk→bridge paired with INVITE bridge→call taker,
//     200 call taker→bridge with 200 bridge→trunk (bench/lib/pcap.js pairAcrossBridge, first
//     occurrences only).
// Reported per step: p50/p99/max of both latencies (targets: p50 < 1 ms, p99 < 5 ms, as
// bench/run.js), calls ok, and the media worker's own figures over the same window (ticks and
// packets late by > 20 ms, worker CPU, per-packet cost, what the phones received), the daemon's
// main-thread CPU and GC pauses.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { benchConfigInput, CLI, ROOT, startDaemon, stopDaemon, tempDir, writeConfig, liveDirs } from './bridge.js';
import { tcpdumpCapture } from './capture.js';
import { gcPauses } from './gc.js';
import { pairAcrossBridge, readPcap, stats } from './pcap.js';
import { cpuSeconds, freeUdpPorts, sleep, spawnTracked, stopChild, systemCpu, udpSocketDrops, waitFor, which } from './procs.js';
import { SIPP_BIN, readStatRows, sippListening, startSipp, summariseUac, summariseUas } from './sipp.js';
import { startRtpLoad } from './rtp-load.js';
import { cpus } from 'node:os';

const BENCH_DIR = join(ROOT, 'bench');
const PRELOAD = pathToFileURL(join(ROOT, 'bench', 'lib', 'media-preload.js')).href;
export const SIP_TARGETS = { p50Ms: 1, p99Ms: 5 };
const RATE = 100;
const CALLS = 1000;
const HOLD_MS = 1000;
const RECV_TIMEOUT_MS = 5000;
const WARMUP_MS = 3000;
const PHONE_SOCKETS = 4;
const LATE_MS = 20;


/** CPU ticks of every thread of `pid`. */
function threadTicks(pid) {
  const out = new Map();
  let tids = [];
  try { tids = readdirSync(`/proc/${pid}/task`); } catch { /* gone */ }
  for (const tid of tids) {
    try {
      const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      out.set(tid, Number(f[11]) + Number(f[12]));
    } catch { /* ended */ }
  }
  return out;
}

/** The media engine's per-second rows whose period lies inside [fromUs, toUs], summed. */
function mediaWindow(rows, fromUs, toUs) {
  const inside = rows.filter((r) => r.atUs - r.elapsedMs * 1000 >= fromUs - 200_000 && r.atUs <= toUs + 200_000);
  if (!inside.length) return null;
  const sum = (k) => inside.reduce((a, r) => a + (r[k] ?? 0), 0);
  const elapsedMs = sum('elapsedMs');
  const cpuMs = inside.every((r) => r.cpuMs !== null) ? sum('cpuMs') : null;
  const packets = sum('packetsIn') + sum('packetsOut');
  return {
    rows: inside.length,
    seconds: elapsedMs / 1000,
    ticks: sum('ticks'),
    ticksLatePct: (100 * sum('ticksLate')) / Math.max(1, sum('ticks')),
    maxTickLateMs: Math.max(...inside.map((r) => r.maxTickLateMs)),
    ticksSkipped: sum('ticksSkipped'),
    maxTickWorkMs: Math.max(...inside.map((r) => r.maxTickWorkMs)),
    packetsInPerS: sum('packetsIn') / (elapsedMs / 1000),
    packetsOutPerS: sum('packetsOut') / (elapsedMs / 1000),
    packetsOutLatePct: (100 * sum('packetsOutLate')) / Math.max(1, sum('packetsOut')),
    workerCpuPct: cpuMs === null ? null : (100 * cpuMs) / elapsedMs,
    perPacketUs: cpuMs === null || !packets ? null : (cpuMs * 1000) / packets,
    replyP50Ms: median(inside.map((r) => r.replyMs?.p50).filter((x) => typeof x === 'number')),
    replyMaxMs: Math.max(0, ...inside.map((r) => r.replyMs?.max ?? 0)),
    endpoints: Math.max(...inside.map((r) => r.endpoints)),
    conferences: Math.max(...inside.map((r) => r.conferences)),
  };
}

function median(v) {
  if (!v.length) return null;
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function runStep(conferences, progress) {
  const dir = tempDir('amk-bench-sipmedia-');
  const started = [];
  const out = { conferences, rate: RATE, calls: CALLS };
  let phones = null;
  try {
    const [uasPort, uacPort] = await freeUdpPorts(2);
    const input = benchConfigInput({ callTakerPort: uasPort, logLevel: 'info' });
    // A range of its own inside the default one: 3N endpoints for the conferences, two per call.
    input.media = { portMin: 24000, portMax: 28000 };
    const cfg = writeConfig(dir, input);
    const env = {
      AMK_BENCH_CONFERENCES: String(conferences),
      AMK_BENCH_MEDIA_READY: join(dir, 'media-ready.json'),
      AMK_BENCH_MEDIA_STATS: join(dir, 'media-stats.jsonl'),
    };
    if (conferences > 0) {
      phones = startRtpLoad();
      out.phones = { kind: phones.kind, fallbackReason: phones.why };
      const open = await phones.ask({ cmd: 'open', sockets: PHONE_SOCKETS });
      env.AMK_BENCH_PHONES = JSON.stringify({ ports: open.ports, monitorPort: open.monitorPort });
    }
    const daemon = await startDaemon(cfg, dir, { nodeArgs: ['--import', PRELOAD, '--trace-gc'], name: 'daemon', env });
    started.push(daemon.child);
    out.ports = { bridge: daemon.udpPort, trunk: uacPort, callTaker: uasPort };
    const ready = await waitFor(() => existsSync(env.AMK_BENCH_MEDIA_READY) && JSON.parse(readFileSync(env.AMK_BENCH_MEDIA_READY, 'utf8')), 60_000, 'the standing conferences in the daemon', 50);
    if (ready.error) throw new Error(`media load in the daemon: ${ready.error}`);
    if (conferences > 0) {
      await phones.ask({ cmd: 'targets', targets: ready.ports.map((port, i) => ({ port, sock: i % PHONE_SOCKETS, monitor: i < 3 })) });
      await phones.ask({ cmd: 'go' });
      await sleep(WARMUP_MS);
      await phones.ask({ cmd: 'reset' });
    }
    const timeoutS = Math.ceil(CALLS / RATE + HOLD_MS / 1000 + RECV_TIMEOUT_MS / 1000 + 10);
    const limit = Math.max(200, RATE * 5);
    const uas = startSipp({
      scenario: join(BENCH_DIR, 'calltaker-answer-signalling.xml'), port: uasPort, calls: CALLS, limit,
      keys: { answer_ms: 0, linger_ms: 0 }, timeoutS: timeoutS + 10, dir, name: 'uas',
    });
    started.push(uas.child);
    await sippListening(uas);
    const capture = await tcpdumpCapture.start({ bridgePort: daemon.udpPort, dir });
    started.push(capture.child);

    const hrUs = () => Number(process.hrtime.bigint() / 1000n);
    const pid = daemon.child.pid;
    const threads0 = threadTicks(pid);
    const cpu0 = cpuSeconds(pid);
    const t0 = performance.now();
    const fromUs = hrUs();
    const uac = startSipp({
      scenario: join(BENCH_DIR, 'trunk-call-subject.xml'), remote: `127.0.0.1:${daemon.udpPort}`, port: uacPort, calls: CALLS, rate: RATE, limit,
      keys: { hold_ms: HOLD_MS }, timeoutS, dir, name: 'uac', extra: ['-recv_timeout', String(RECV_TIMEOUT_MS)],
    });
    started.push(uac.child);
    let maxDrops = 0;
    // CPU of the rig (SIPp, tcpdump) and of the whole machine over the same window; the UAC's
    // /proc entry is gone once it exits, so it is sampled while it runs.
    const rigPids = { uac: uac.child.pid, uas: uas.child.pid, tcpdump: capture.child.pid };
    const rig0 = Object.fromEntries(Object.entries(rigPids).map(([k, p]) => [k, cpuSeconds(p)]));
    const rigLast = { ...rig0 };
    const sys0 = systemCpu();
    const sampler = setInterval(() => {
      maxDrops = Math.max(maxDrops, udpSocketDrops([daemon.udpPort])[daemon.udpPort] ?? 0);
      for (const [k, p] of Object.entries(rigPids)) rigLast[k] = cpuSeconds(p) ?? rigLast[k];
    }, 250);
    await uac.done;
    clearInterval(sampler);
    const sys1 = systemCpu();
    const toUs = hrUs();
    const wallS = (performance.now() - t0) / 1000;
    const threads1 = threadTicks(pid);
    const cpu1 = cpuSeconds(pid);
    out.wallS = wallS;
    out.daemonCpuPct = cpu0 !== null && cpu1 !== null ? (100 * (cpu1 - cpu0)) / wallS : null;
    const main0 = threads0.get(String(pid));
    const main1 = threads1.get(String(pid));
    out.mainThreadCpuPct = main0 !== undefined && main1 !== undefined ? ((main1 - main0) * 10 * 100) / (wallS * 1000) : null;
    out.bridgeSocketDrops = maxDrops;
    out.rigCpuPct = Object.fromEntries(Object.keys(rigPids).map((k) => [k, rig0[k] !== null && rigLast[k] !== null ? (100 * (rigLast[k] - rig0[k])) / wallS : null]));
    // Busy share of all CPUs (100 % = every core busy), and of how many cores.
    out.machine = sys0 && sys1 ? { busyPctOfAll: (100 * (sys1.busy - sys0.busy)) / Math.max(1e-9, sys1.total - sys0.total), cores: cpus().length } : null;
    if (phones) out.phoneReport = await phones.ask({ cmd: 'report' });

    await Promise.race([uas.done, sleep(3000)]);
    await stopChild(uas.child, 'SIGTERM', 1000);
    out.capture = await tcpdumpCapture.stop(capture);
    // The engine's per-second rows, read before the daemon stops (the file stays).
    const rows = existsSync(env.AMK_BENCH_MEDIA_STATS) ? readFileSync(env.AMK_BENCH_MEDIA_STATS, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
    out.media = mediaWindow(rows, fromUs, toUs);
    await stopDaemon(daemon);
    if (phones) await phones.stop();

    out.uac = summariseUac(readStatRows(uac.statPath), CALLS);
    out.uas = summariseUas(readStatRows(uas.statPath));
    out.successful = out.uac?.successful ?? 0;
    const pcap = readPcap(readFileSync(join(dir, 'latency.pcap')));
    const pairs = pairAcrossBridge(pcap.packets, out.ports);
    out.latency = {
      invite: stats(pairs.inviteMs), ok: stats(pairs.okMs),
      over1ms: { invite: pairs.inviteMs.filter((x) => x >= 1).length, ok: pairs.okMs.filter((x) => x >= 1).length },
      over5ms: { invite: pairs.inviteMs.filter((x) => x >= 5).length, ok: pairs.okMs.filter((x) => x >= 5).length },
      nanosecondTimestamps: pcap.nanos, packets: pcap.packets.length,
    };
    out.daemonGc = gcPauses(readFileSync(join(dir, 'daemon.log'), 'utf8'));
    const okFor = (s) => s.n > 0 && s.p50 < SIP_TARGETS.p50Ms && s.p99 < SIP_TARGETS.p99Ms;
    out.ok = okFor(out.latency.invite) && okFor(out.latency.ok) && out.successful >= 0.99 * CALLS;
    progress(`${conferences} conferences: ${out.successful}/${CALLS} calls ok; INVITE p50 ${fmt(out.latency.invite.p50, 3)} p99 ${fmt(out.latency.invite.p99, 3)} ms; 200 p50 ${fmt(out.latency.ok.p50, 3)} p99 ${fmt(out.latency.ok.p99, 3)} ms`);
    return out;
  } finally {
    if (phones) await phones.stop();
    await Promise.all(started.map((c) => stopChild(c, 'SIGTERM', 2000)));
    if (process.env.BENCH_KEEP === '1') progress(`kept ${dir}`);
    else {
      liveDirs.delete(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

function fmt(v, d = 1) {
  return v === null || v === undefined || Number.isNaN(v) ? '-' : Number(v).toFixed(d);
}

/** Why the part cannot run here, or null. */
export function sipUnderMediaMissing() {
  if (!existsSync(CLI)) return `${CLI} missing: run npm run build first`;
  if (!existsSync(SIPP_BIN)) return `SIPp (${SIPP_BIN}) is not installed: apt-get install sip-tester`;
  if (!which('tcpdump')) return 'tcpdump is not installed: apt-get install tcpdump';
  return null;
}

/**
 * Runs the steps (conference counts) one after the other; returns { steps, ... }. Each step's
 * error is reported in its row, the others still run.
 */
export async function runSipUnderMedia(counts, progress = () => {}) {
  const steps = [];
  for (const n of counts) {
    progress(`SIP under media: ${n} three-party conferences in the daemon's media worker, ${RATE} calls/s × ${CALLS} calls…`);
    try {
      steps.push(await runStep(n, progress));
    } catch (err) {
      progress(`SIP under media, ${n} conferences: ERROR ${err?.stack ?? err}`);
      steps.push({ conferences: n, error: String(err?.message ?? err) });
    }
    await sleep(500);
  }
  return {
    what: `daemon (dist/cli/main.js) with N standing three-party conferences in its own media engine (bench/lib/media-preload.js), `
      + `their phones sending 50 packets/s per endpoint; SIPp trunk UAC ${RATE} calls/s × ${CALLS} calls of ${HOLD_MS} ms (trunk-call-subject.xml) `
      + 'and SIPp call-taker UAS; latencies from tcpdump -i lo on the bridge\'s SIP port (first occurrences)',
    rate: RATE, calls: CALLS, holdMs: HOLD_MS, targets: SIP_TARGETS, steps,
  };
}

/** The part's lines of the report. */
export function sipUnderMediaReport(r, MISSED) {
  const lines = [];
  lines.push(`SIP call-setup latency while the daemon's media worker carries N three-party conferences (${r.rate} calls/s, ${r.calls} calls, tcpdump -i lo)`);
  lines.push(`  ${r.what}`);
  const header = ['confs', 'calls ok', 'INVITE p50/p99/max ms', '200 p50/p99/max ms', 'media ticks late', 'pkts late', 'worker CPU', 'µs/pkt', 'pkts in/out per s', 'worker reply p50/max', 'main thread CPU', 'phones', ''];
  const rows = r.steps.map((s) => {
    if (s.error) return [String(s.conferences), '', '', '', '', '', '', '', '', '', '', '', `ERROR ${s.error}`];
    const l = s.latency;
    const trip = (x) => `${fmt(x.p50, 3)}/${fmt(x.p99, 3)}/${fmt(x.max, 2)}`;
    const m = s.media;
    const notes = [];
    const miss = (x) => x.n === 0 || x.p50 >= r.targets.p50Ms || x.p99 >= r.targets.p99Ms;
    if (miss(l.invite) || miss(l.ok)) notes.push(`${MISSED} (p50 < ${r.targets.p50Ms} ms, p99 < ${r.targets.p99Ms} ms)`);
    if (s.successful < 0.99 * r.calls) notes.push(`${r.calls - s.successful} calls failed`);
    if (m && (m.ticksLatePct >= 1 || m.packetsOutLatePct >= 1)) notes.push('media late >= 1 %');
    if (s.phoneReport && (100 * s.phoneReport.slotsLate) / Math.max(1, s.phoneReport.slots) >= 1) notes.push('phones fell behind');
    return [
      s.conferences === 0 ? '0 (control)' : String(s.conferences),
      `${s.successful}/${r.calls}`, trip(l.invite), trip(l.ok),
      m ? `${fmt(m.ticksLatePct, 2)} %` : '-', m ? `${fmt(m.packetsOutLatePct, 2)} %` : '-',
      m ? `${fmt(m.workerCpuPct)} %` : '-', m ? fmt(m.perPacketUs, 2) : '-',
      m ? `${fmt(m.packetsInPerS, 0)}/${fmt(m.packetsOutPerS, 0)}` : '-',
      m ? `${fmt(m.replyP50Ms, 2)}/${fmt(m.replyMaxMs, 1)} ms` : '-',
      `${fmt(s.mainThreadCpuPct)} %`,
      s.phones ? `${s.phones.kind} ${fmt(s.phoneReport?.cpuPct)} %` : '-',
      notes.join('; '),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((x) => x[i].length)));
  const line = (cells) => `  ${cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()}`;
  lines.push(line(header));
  for (const x of rows) lines.push(line(x));
  for (const s of r.steps) {
    if (s.error) continue;
    const gc = Object.entries(s.daemonGc).map(([k, g]) => `${g.count} × ${k} (max ${fmt(g.maxMs)} ms)`).join(', ') || 'none logged';
    const mon = s.phoneReport?.monitor;
    lines.push(`  # ${s.conferences}: pairs >= 1 ms INVITE ${s.latency.over1ms.invite}, 200 ${s.latency.over1ms.ok}; >= 5 ms INVITE ${s.latency.over5ms.invite}, 200 ${s.latency.over5ms.ok}; `
      + `daemon CPU ${fmt(s.daemonCpuPct)} % (all threads), SIPp UAC ${fmt(s.rigCpuPct?.uac)} %, UAS ${fmt(s.rigCpuPct?.uas)} %, tcpdump ${fmt(s.rigCpuPct?.tcpdump)} %, `
      + `machine busy ${fmt(s.machine?.busyPctOfAll)} % of ${s.machine?.cores ?? '?'} cores; UAS retransmissions ${s.uas?.retransmissions ?? '-'}; SIP socket drops ${s.bridgeSocketDrops}; `
      + `${s.media ? `media max tick late ${fmt(s.media.maxTickLateMs)} ms, skipped ${s.media.ticksSkipped}, ${s.media.endpoints} endpoints; ` : ''}`
      + `${mon ? `monitor ${mon.lateArrivals}/${mon.gaps} late/gaps of ${mon.received}; ` : ''}`
      + `${s.phones?.fallbackReason ? `phones in Node (${s.phones.fallbackReason}); ` : ''}daemon GC ${gc}`);
  }
  return lines;
}
