// Small measurements for bridge/health and /metrics: event-loop lag and counts of bus events.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { BridgeEventName, EventBus } from '../core/events.js';

const RESOLUTION_MS = 10;

function ms(ns: number): number {
  return Math.round(ns / 1e4) / 100; // ns → ms, two decimals
}

/**
 * Event-loop lag from perf_hooks (10 ms sampling timer). The histogram records the timer's
 * actual period, so the resolution is taken off: an idle loop reads 0, not 10 ms.
 */
export class EventLoopMonitor {
  private readonly h: IntervalHistogram;
  private running = false;

  constructor() {
    this.h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.start();
  }

  start(): void {
    if (this.running) return;
    this.h.enable();
    this.running = true;
  }

  stop(): void {
    if (!this.running) return;
    this.h.disable();
    this.running = false;
  }

  /**
   * Lag since the previous snapshot (p50, p99, max in ms), then starts a new period. (Node drops
   * the first sample after a reset: a stall that starts within one 10 ms tick of a snapshot is
   * not seen.)
   */
  snapshot(): { p50: number; p99: number; max: number } {
    const lag = (ns: number) => Math.max(0, ms(ns) - RESOLUTION_MS);
    const out = this.h.count === 0
      ? { p50: 0, p99: 0, max: 0 }
      : { p50: lag(this.h.percentile(50)), p99: lag(this.h.percentile(99)), max: lag(this.h.max) };
    this.h.reset();
    return { p50: round(out.p50), p99: round(out.p99), max: round(out.max) };
  }
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}

/** The bus events that are counted (and published on bridge/event). */
export const COUNTED_EVENTS = [
  'call.started',
  'request.started', 'request.state', 'request.ended',
  'conference.attempt',
  'message.committed', 'message.delivered', 'message.escalated', 'message.failed',
  'alarm',
  'lamp.changed', 'lamp.port',
  'target.health', 'endpoint.health',
] as const satisfies readonly BridgeEventName[];

/** Counts by name (bus events once attached, plus anything `inc`remented by hand). */
export class Counters {
  private readonly counts = new Map<string, number>();

  inc(name: string, by = 1): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + by);
  }

  /** Counts every event of COUNTED_EVENTS under its name; returns the detach function. */
  attach(bus: EventBus): () => void {
    const offs = COUNTED_EVENTS.map((name) => bus.on(name, () => this.inc(name)));
    return () => { for (const off of offs) off(); };
  }

  /** A copy, names sorted. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of [...this.counts.keys()].sort()) out[name] = this.counts.get(name)!;
    return out;
  }
}
