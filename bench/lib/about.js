// What a benchmark result was measured on: the commit, and the machine.
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SIPP_BIN } from './sipp.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The commit measured (read-only git; GIT_OPTIONAL_LOCKS=0 so nothing in .git is written). */
export function sourceInfo() {
  const git = (args) => {
    try { return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', env: { ...process.env, GIT_OPTIONAL_LOCKS: '0' }, stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { return null; }
  };
  const status = git(['status', '--porcelain', '--', 'src']);
  return { commit: git(['rev-parse', '--short', 'HEAD']), srcUncommittedChanges: status === null ? null : status.length > 0 };
}

/** CPUs, Node and SIPp versions, and the load when the run started. */
export function machineInfo(extra = {}) {
  let sipp = null;
  try { execFileSync(SIPP_BIN, ['-v'], { encoding: 'utf8' }); } catch (e) { sipp = /SIPp (v[\w.-]*\w)/.exec(`${e.stdout ?? ''}`)?.[1] ?? null; }
  return { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? null, node: process.version, sipp, ...extra };
}
