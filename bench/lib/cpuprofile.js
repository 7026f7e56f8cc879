// Summarise a V8 .cpuprofile (node --cpu-prof): self time per function, mapped from dist/*.js
// back to src/*.ts through the build's source maps, and self time per area (the bridge's own
// code, each npm package, Node internals, GC, native).
import { readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const maps = new Map();
function sourceMapFor(file) {
  if (!maps.has(file)) {
    let map = null;
    try { map = new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8'))); } catch { /* no map */ }
    maps.set(file, map);
  }
  return maps.get(file);
}

/** file:line (1-based) of a call frame, relative to `root`, via the source map when there is one. */
function location(frame, root) {
  const url = frame.url ?? '';
  if (!url) return '';
  if (!url.startsWith('file://')) return `${url}:${frame.lineNumber + 1}`;
  const file = fileURLToPath(url);
  const map = sourceMapFor(file);
  if (map && frame.lineNumber >= 0) {
    const e = map.findEntry(frame.lineNumber, Math.max(0, frame.columnNumber));
    if (e && e.originalSource) {
      const src = e.originalSource.startsWith('file://') ? fileURLToPath(e.originalSource) : resolve(dirname(file), e.originalSource);
      return `${relative(root, src)}:${e.originalLine + 1}`;
    }
  }
  return `${relative(root, file)}:${frame.lineNumber + 1}`;
}

function areaOf(frame, root) {
  const url = frame.url ?? '';
  const name = frame.functionName;
  if (name === '(garbage collector)') return 'GC';
  if (name === '(idle)') return 'idle';
  if (name === '(program)') return 'native (program)';
  if (!url) return 'native / builtins';
  if (url.startsWith('node:')) return 'node internals';
  if (!url.startsWith('file://')) return url;
  const rel = relative(root, fileURLToPath(url));
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(rel);
  if (pkg) return `npm: ${pkg[1]}`;
  if (rel.startsWith('dist/')) return 'amk-bridge (dist/)';
  return rel;
}

/**
 * { windowed, totalMs, idleMs, busyMs, top: [{ fn, at, selfMs, pct }], areas: [{ area, selfMs, pct }] }
 * `pct` is of the busy (non-idle) time.
 */
export function summariseProfile(path, root, topN = 15, windowUs = null) {
  const prof = JSON.parse(readFileSync(path, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  // Only the samples inside `windowUs` ([from, to] on the monotonic clock V8 and
  // process.hrtime share), when given and when it holds samples at all.
  const inWindow = [];
  let ts = prof.startTime;
  for (let i = 0; i < prof.samples.length; i++) {
    ts += prof.timeDeltas[i] ?? 0;
    inWindow.push(!windowUs || (ts >= windowUs[0] && ts <= windowUs[1]));
  }
  const windowed = Boolean(windowUs) && inWindow.some(Boolean);
  const selfUs = new Map();
  // timeDeltas[i] is the time since the previous sample: charge it to sample i's node.
  for (let i = 0; i < prof.samples.length; i++) {
    if (windowed && !inWindow[i]) continue;
    const id = prof.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
  }
  const perFn = new Map();
  const perArea = new Map();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const f = node.callFrame;
    total += us;
    const area = areaOf(f, root);
    if (area === 'idle') { idle += us; continue; }
    perArea.set(area, (perArea.get(area) ?? 0) + us);
    const at = location(f, root);
    const key = `${f.functionName || '(anonymous)'}\u0000${at}`;
    perFn.set(key, (perFn.get(key) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us) => (busy > 0 ? (100 * us) / busy : 0);
  const top = [...perFn.entries()].sort((a, b) => b[1] - a[1]).slice(0, topN).map(([k, us]) => {
    const [fn, at] = k.split('\u0000');
    return { fn, at, selfMs: us / 1000, pct: pct(us) };
  });
  const areas = [...perArea.entries()].sort((a, b) => b[1] - a[1]).map(([area, us]) => ({ area, selfMs: us / 1000, pct: pct(us) }));
  return { windowed, totalMs: total / 1000, idleMs: idle / 1000, busyMs: busy / 1000, top, areas };
}
