// Prometheus metrics (opt-in), GET /metrics on a loopback listener. Counters follow the bus;
// gauges are read from the bridge at each scrape. The registry is our own (not prom-client's
// global one), so several bridges in one process (tests) never share series.
import http from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { EventBus } from '../core/events.js';
import type { RegionStats, Stats } from '../domain/statistics.js';

export interface MetricsGauges {
  activeCalls(): number;
  backlog(): { pending: number; failed: number; oldestAgeS: number | null };
  targets(): { id: string; kind: string; up: boolean | null }[];
  eventLoopLagMs(): number;
  /** Statistics by the national counting method over [from, to) (the journal's `stats`); optional. */
  stats?(from: number, to: number): Stats;
}

/** The statistics gauges cover the last 24 hours and are recomputed at most once a minute. */
export const STATS_WINDOW_MS = 24 * 3_600_000;
export const STATS_REFRESH_MS = 60_000;

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/** Reads a gauge source; a failing source leaves the gauge out of this scrape, never fails it. */
function read<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

export function createMetricsRegistry(bus: EventBus, gauges: MetricsGauges): { registry: Registry; detach(): void } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const calls = new Counter({ name: 'amk_calls_total', help: '112 calls seen by the bridge.', registers });
  const requests = new Counter({ name: 'amk_requests_total', help: 'Conference-in requests ended, by outcome (contact, no-contact, aborted).', labelNames: ['outcome'], registers });
  const attempts = new Counter({ name: 'amk_attempts_total', help: 'Conference-in attempts ended, by outcome.', labelNames: ['outcome'], registers });
  const messages = new Counter({ name: 'amk_messages_total', help: 'Messages to the region by type and state (committed, delivered, escalated, failed).', labelNames: ['type', 'state'], registers });

  new Gauge({
    name: 'amk_outbox_pending', help: 'Messages not yet delivered.', registers,
    collect() { this.reset(); const b = read(gauges.backlog); if (b) this.set(b.pending); },
  });
  new Gauge({
    name: 'amk_outbox_failed', help: 'Messages given up on (escalated or failed).', registers,
    collect() { this.reset(); const b = read(gauges.backlog); if (b) this.set(b.failed); },
  });
  new Gauge({
    name: 'amk_outbox_oldest_age_seconds', help: 'Age of the oldest undelivered message (0: none).', registers,
    collect() { this.reset(); const b = read(gauges.backlog); if (b) this.set(b.oldestAgeS ?? 0); },
  });
  new Gauge({
    name: 'amk_target_up', help: 'SIP target reachable by OPTIONS probe (1 up, 0 down; absent: not probed yet).', labelNames: ['id', 'kind'], registers,
    collect() {
      this.reset();
      for (const t of read(gauges.targets) ?? []) {
        if (t.up !== null) this.set({ id: t.id, kind: t.kind }, t.up ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: 'amk_event_loop_lag_ms', help: 'Event-loop lag of the bridge, milliseconds.', registers,
    collect() { this.reset(); const v = read(gauges.eventLoopLagMs); if (v !== undefined && Number.isFinite(v)) this.set(v); },
  });
  new Gauge({
    name: 'amk_active_calls', help: '112 calls in progress through the bridge.', registers,
    collect() { this.reset(); const v = read(gauges.activeCalls); if (v !== undefined && Number.isFinite(v)) this.set(v); },
  });

  statsGauges(registers, gauges);

  const offs = [
    bus.on('call.started', () => calls.inc()),
    bus.on('request.ended', (e) => requests.inc({ outcome: e.outcome })),
    bus.on('conference.attempt', (e) => {
      if (e.phase === 'answered' || e.phase === 'failed' || e.phase === 'cancelled') attempts.inc({ outcome: e.outcome ?? e.phase });
    }),
    bus.on('message.committed', (e) => messages.inc({ type: e.type, state: 'committed' })),
    bus.on('message.delivered', (e) => messages.inc({ type: e.type, state: 'delivered' })),
    bus.on('message.escalated', (e) => messages.inc({ type: e.type, state: 'escalated' })),
    bus.on('message.failed', (e) => messages.inc({ type: e.type, state: 'failed' })),
  ];
  return { registry, detach: () => { for (const off of offs) off(); } };
}

/**
 * The national counting method's figures over the last 24 h, per home region and `total`:
 * what a dashboard needs for the overflow share and answer times. A scrape reuses the last
 * computation for a minute, so scraping never loads the journal.
 */
function statsGauges(registers: Registry[], gauges: MetricsGauges): void {
  const source = gauges.stats;
  if (!source) return;
  let cached: { at: number; stats: Stats | undefined } | null = null;
  const current = (): Stats | undefined => {
    const now = Date.now();
    if (!cached || now - cached.at >= STATS_REFRESH_MS) cached = { at: now, stats: read(() => source(now - STATS_WINDOW_MS, now)) };
    return cached.stats;
  };
  const perRegion = (s: Stats): [string, RegionStats][] => [...Object.entries(s.totals.regions), ['total', s.totals.total]];
  const gauge = (name: string, help: string, value: (r: RegionStats) => number | null): void => {
    new Gauge({
      name, help: `${help} Last 24 h, by home region ("total": all).`, labelNames: ['region'], registers,
      collect() {
        this.reset();
        const s = current();
        if (!s) return;
        for (const [region, r] of perRegion(s)) {
          const v = value(r);
          if (v !== null) this.set({ region }, v);
        }
      },
    });
  };
  gauge('amk_stats_calls_seen', '112 calls seen.', (r) => r.callsSeen);
  gauge('amk_stats_requests', 'Conference-in requests.', (r) => r.requests);
  gauge('amk_stats_no_contact_messages', '"Ingen kontakt til AMK" messages (one per request).', (r) => r.noContactMessages);
  gauge('amk_stats_no_contact_share_of_requests', 'No-contact messages per conference-in request (the national overflow share); absent without requests.', (r) => r.noContactShareOfRequests);
  gauge('amk_stats_no_contact_share_of_calls', 'No-contact messages per 112 call seen (every call: the bridge cannot tell illness calls); absent without calls.', (r) => r.noContactShareOfCalls);
  gauge('amk_stats_lost_requests', 'Requests without an outcome past the running grace: must be 0.', (r) => r.lostRequests);
  gauge('amk_stats_aborts', 'Requests aborted by the call taker.', (r) => r.aborts);
  gauge('amk_stats_recontacts', 'Calls flagged as a re-contact.', (r) => r.recontacts);
  new Gauge({
    name: 'amk_stats_answered', help: 'Requests answered, by where: attempt1, attempt2, buffer, overflow. Last 24 h, by home region ("total": all).', labelNames: ['region', 'on'], registers,
    collect() {
      this.reset();
      const s = current();
      if (!s) return;
      for (const [region, r] of perRegion(s)) for (const [on, n] of Object.entries(r.answered)) this.set({ region, on }, n);
    },
  });
  const quantiles = (name: string, help: string, pick: (r: RegionStats) => { median: number | null; p90: number | null }): void => {
    new Gauge({
      name, help: `${help} Median (quantile 0.5) and p90 (0.9), nearest rank. Last 24 h, by home region ("total": all).`, labelNames: ['region', 'quantile'], registers,
      collect() {
        this.reset();
        const s = current();
        if (!s) return;
        for (const [region, r] of perRegion(s)) {
          const q = pick(r);
          if (q.median !== null) this.set({ region, quantile: '0.5' }, q.median / 1000);
          if (q.p90 !== null) this.set({ region, quantile: '0.9' }, q.p90 / 1000);
        }
      },
    });
  };
  quantiles('amk_stats_answer_time_seconds', 'Answer time of the regional centre (INVITE to 200).', (r) => r.answerTimeMs);
  quantiles('amk_stats_time_to_contact_seconds', 'Time from the trigger to contact.', (r) => r.timeToContactMs);
  new Gauge({
    name: 'amk_stats_overflow_contacts', help: 'Contacts made via an overflow region, by home region and overflow region. Last 24 h.', labelNames: ['from', 'to'], registers,
    collect() {
      this.reset();
      const s = current();
      if (!s) return;
      for (const [pair, n] of Object.entries(s.totals.total.overflowContacts)) {
        const [from = '', to = ''] = pair.split('→');
        this.set({ from, to }, n);
      }
    },
  });
}

export async function startMetrics(opts: { host: string; port: number }, bus: EventBus, gauges: MetricsGauges): Promise<MetricsServer> {
  const { registry, detach } = createMetricsRegistry(bus, gauges);

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found; try GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (body) => {
        res.writeHead(200, { 'content-type': registry.contentType, 'content-length': Buffer.byteLength(body) });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics failed: ${err instanceof Error ? err.message : String(err)}\n`);
      },
    );
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: opts.host, port: opts.port, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    detach();
    const e = err as NodeJS.ErrnoException;
    throw new Error(`metrics cannot listen on ${opts.host}:${opts.port}: ${e.code === 'EADDRINUSE' ? 'the port is in use' : e.message}${e.code ? ` (${e.code})` : ''}`);
  }
  server.on('error', () => {});

  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : opts.port;
  let closing: Promise<void> | null = null;
  return {
    port,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        detach();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
