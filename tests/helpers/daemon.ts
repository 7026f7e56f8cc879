// The real daemon as a child process (`node dist/cli/main.js run --config FILE`), for tests that
// kill it (-9) and start it again. Its JSON log lines are collected; its SIP ports are read from
// the "amk-bridge listening" line (the config listens on port 0).
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { childEnv, trackChild } from './children.js';

export const CLI = resolve(import.meta.dirname, '../../dist/cli/main.js');

export interface LogLine {
  msg?: string;
  level?: number;
  [k: string]: unknown;
}

export interface Daemon {
  proc: ChildProcess;
  lines: LogLine[];
  /** The UDP SIP port, once listening. */
  ready: Promise<{ udp: number; tcp: number | null }>;
  /** Resolves with the first log line (seen or future) that matches. */
  waitForLog(pred: (l: LogLine) => boolean, ms?: number, what?: string): Promise<LogLine>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function startDaemon(t: { teardown(fn: () => unknown): void }, configPath: string, env: Record<string, string> = {}): Daemon {
  const proc = spawn(process.execPath, [CLI, 'run', '--config', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: childEnv({ LOG_FORMAT: 'json', LOG_LEVEL: 'debug', ...env }),
  });
  trackChild(proc);
  const lines: LogLine[] = [];
  const waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => proc.once('exit', (code, signal) => res({ code, signal })));
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  createInterface({ input: proc.stdout! }).on('line', (text) => {
    let l: LogLine;
    try {
      l = JSON.parse(text) as LogLine;
    } catch {
      l = { msg: text };
    }
    lines.push(l);
    for (const w of [...waiters]) {
      if (w.pred(l)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(l);
      }
    }
  });
  const waitForLog = (pred: (l: LogLine) => boolean, ms = 15_000, what = 'log line'): Promise<LogLine> => {
    const seen = lines.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`timed out waiting for ${what}; stderr: ${stderr.slice(-2000)}; last lines: ${JSON.stringify(lines.slice(-5))}`)), ms);
      waiters.push({ pred, resolve: (l) => { clearTimeout(timer); res(l); } });
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        rej(new Error(`daemon exited (${code ?? signal}) before ${what}; stderr: ${stderr.slice(-2000)}`));
      });
    });
  };
  const ready = waitForLog((l) => l.msg === 'amk-bridge listening', 15_000, 'listening').then((l) => {
    const ls = l.listeners as { transport: string; port: number }[];
    return { udp: ls.find((x) => x.transport === 'udp')!.port, tcp: ls.find((x) => x.transport === 'tcp')?.port ?? null };
  });
  ready.catch(() => undefined);
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    await exited;
  };
  t.teardown(() => kill('SIGKILL'));
  return { proc, lines, ready, waitForLog, exited, kill };
}
