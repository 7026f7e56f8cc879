// SIPp as load generator (trunk UAC) and call-taker platform (UAS) for the bench. A plain-JS
// cut of tests/helpers/sipp.ts: the same keys and -trace_stat reading, tuned for load (stats
// every second with -fd 1, no message trace, screen output discarded).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './bridge.js';
import { spawnTracked, stopChild, udpPortBound, waitFor } from './procs.js';

export const SIPP_BIN = process.env.SIPP_BIN ?? '/usr/bin/sipp';
export const TEST_SCENARIOS = join(ROOT, 'tests', 'scenarios');

/** The -key values the test scenarios read (SIPp refuses a scenario that uses an unknown key). */
export const DEFAULT_KEYS = {
  hold_ms: 500, answer_ms: 0, bye_ms: 500, pause_ms: 300, refresh: 2000, silence_ms: 3000,
  linger_ms: 0, dtmf1: '*', dtmf2: '1', auth_user: 'amk-bridge', auth_pass: 'secret',
};

/**
 * Start SIPp. opts: scenario (path), remote (host:port, UAC only), port, calls (-m), rate (-r),
 * limit (-l), keys, timeoutS (-timeout with -timeout_error), dir (traces), name, extra.
 * Returns { child, port, statPath, errPath, stderr(), done } where done resolves once it exited.
 */
export function startSipp(opts) {
  if (!existsSync(opts.scenario)) throw new Error(`no SIPp scenario ${opts.scenario}`);
  const name = opts.name ?? 'sipp';
  const statPath = join(opts.dir, `${name}-stat.csv`);
  const errPath = join(opts.dir, `${name}-errors.log`);
  const args = ['-sf', opts.scenario];
  if (opts.remote) args.push(opts.remote);
  args.push(
    '-i', '127.0.0.1', '-p', String(opts.port), '-t', 'u1',
    '-s', '112', '-nostdin',
    '-trace_stat', '-stf', statPath, '-fd', '1',
    '-timeout', `${opts.timeoutS ?? 60}s`, '-timeout_error',
  );
  if (opts.calls !== undefined) args.push('-m', String(opts.calls));
  if (opts.rate !== undefined) args.push('-r', String(opts.rate));
  if (opts.limit !== undefined) args.push('-l', String(opts.limit));
  if (opts.traceErrors) args.push('-trace_err', '-error_file', errPath);
  for (const [k, v] of Object.entries({ ...DEFAULT_KEYS, ...(opts.keys ?? {}) })) args.push('-key', k, String(v));
  if (opts.extra) args.push(...opts.extra);
  const child = spawnTracked(name, SIPP_BIN, args, { cwd: opts.dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s) => { if (stderr.length < 65536) stderr += s; });
  // Hard stop in case SIPp ignores its own -timeout.
  const watchdog = setTimeout(() => void stopChild(child, 'SIGTERM', 1000), ((opts.timeoutS ?? 60) + 10) * 1000);
  watchdog.unref();
  const done = child.exited.then((status) => { clearTimeout(watchdog); return status; });
  return {
    child, port: opts.port, statPath, errPath, done,
    command: [SIPP_BIN, ...args].join(' '),
    stderr: () => stderr.split('\n').filter((l) => l.trim() && !/^Resolving remote host|jumping to label|^There were more errors/.test(l.trim())).join('\n'),
  };
}

/** Resolves once a SIPp UAS has bound its UDP port (rejects if it exits first or after 5 s). */
export async function sippListening(s) {
  let exited = null;
  void s.done.then((st) => { exited = st; });
  await waitFor(() => {
    if (exited) throw new Error(`SIPp (${SIPP_BIN}) ${exited.error ? `could not start: ${exited.error.message}` : `exited (code ${exited.code}, signal ${exited.signal}) before binding port ${s.port}`}: ${s.stderr()}`);
    return udpPortBound(s.port);
  }, 5000, `SIPp to bind UDP port ${s.port}`);
}

/** Every data row of a -trace_stat CSV as column → string. */
export function readStatRows(path) {
  let text;
  try { text = readFileSync(path, 'utf8'); } catch { return []; }
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const header = lines[0]?.split(';') ?? [];
  return lines.slice(1).map((line) => {
    const cols = line.split(';');
    const row = {};
    header.forEach((h, i) => { if (h) row[h] = cols[i] ?? ''; });
    return row;
  });
}

/** "date\ttime\tepoch" → epoch seconds. */
export function statEpoch(v) {
  const parts = String(v ?? '').split('\t');
  return Number(parts[parts.length - 1]);
}

/** "HH:MM:SS:uuuuuu" → milliseconds. */
export function statDurationMs(v) {
  const m = /^(\d+):(\d+):(\d+):(\d+)$/.exec(String(v ?? ''));
  if (!m) return null;
  return ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 + Number(m[4]) / 1000;
}

/**
 * Summary of a UAC run from its per-second stat rows: totals from the last row, the achieved
 * call-placing rate (time until OutgoingCall(C) reached the calls placed, interpolated between
 * the one-second rows), non-zero failure causes, and the mean INVITE → 200 time SIPp measured.
 */
export function summariseUac(rows, callsWanted) {
  const last = rows[rows.length - 1];
  if (!last) return null;
  const n = (row, k) => Number(row?.[k] ?? 0) || 0;
  const start = statEpoch(last.StartTime);
  const placed = n(last, 'OutgoingCall(C)');
  let placingS = null;
  let prev = { t: start, out: 0 };
  for (const row of rows) {
    const t = statEpoch(row.CurrentTime);
    const out = n(row, 'OutgoingCall(C)');
    if (out >= placed && placed > 0) {
      const frac = out > prev.out ? (placed - prev.out) / (out - prev.out) : 1;
      placingS = prev.t - start + frac * (t - prev.t);
      break;
    }
    prev = { t, out };
  }
  const causes = {};
  for (const k of Object.keys(last)) {
    const m = /^Failed(.+)\(C\)$/.exec(k);
    if (m && m[1] !== 'Call' && n(last, k) > 0) causes[m[1]] = n(last, k);
  }
  return {
    wanted: callsWanted,
    placed,
    successful: n(last, 'SuccessfulCall(C)'),
    failed: n(last, 'FailedCall(C)'),
    stillRunning: n(last, 'CurrentCall'),
    placingS,
    achievedRate: placingS ? placed / placingS : null,
    setupMeanMs: statDurationMs(last['ResponseTime1(C)']),
    failureCauses: causes,
    deadCallMsgs: n(last, 'DeadCallMsgs(C)'),
    outOfCallMsgs: n(last, 'OutOfCallMsgs(C)'),
  };
}

/** Summary of a UAS run (last stat row). */
export function summariseUas(rows) {
  const last = rows[rows.length - 1];
  if (!last) return null;
  const n = (k) => Number(last[k] ?? 0) || 0;
  return {
    incoming: n('IncomingCall(C)'),
    successful: n('SuccessfulCall(C)'),
    failed: n('FailedCall(C)'),
    // The UAS retransmits its 200 until the ACK comes: a sign of a slow bridge.
    retransmissions: n('Retransmissions(C)'),
  };
}
