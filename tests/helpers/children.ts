// Peers a test spawns (SIPp, baresip) are SIGKILLed when the test process exits, whatever
// happened to their teardown: a crashed test must not leave peers holding ports.
import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();
let hooked = false;

/** Track a child until it exits; kill it if the test process exits first. */
export function trackChild(child: ChildProcess): void {
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const c of live) {
        try { c.kill('SIGKILL'); } catch { /* already gone */ }
      }
    });
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
}

/**
 * Environment for a Node child process: the test runner's NODE_OPTIONS (its process-info hook)
 * would be loaded into every child and slow each start by a second or more.
 */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env['NODE_OPTIONS'];
  return env;
}
