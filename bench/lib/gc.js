// Garbage-collection pauses read from a daemon's --trace-gc output.

/** GC pauses from a --trace-gc log: count, total and the largest, per kind. */
export function gcPauses(text) {
  const kinds = {};
  for (const m of text.matchAll(/ms: (Scavenge|Mark-Compact|Mark-Sweep|Minor Mark-Sweep|Mark-sweep)\b[^,]*, ([\d.]+) \/ [\d.]+ ms/g)) {
    const k = (kinds[m[1]] ??= { count: 0, totalMs: 0, maxMs: 0, atLeast1ms: 0 });
    const ms = Number(m[2]);
    k.count++;
    k.totalMs += ms;
    k.maxMs = Math.max(k.maxMs, ms);
    if (ms >= 1) k.atLeast1ms++;
  }
  return kinds;
}
