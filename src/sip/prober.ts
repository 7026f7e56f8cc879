// SIP OPTIONS health probes of every configured target (trunks, call-taker platform, region
// targets), with up/down thresholds so one lost datagram does not flap the state.
import type { SipEndpoint } from './endpoint.js';
import type { SipResolver } from './resolver.js';
import { Headers, request } from './message.js';
import { parseUri, newTag, newCallId } from './grammar.js';
import type { EventBus } from '../core/events.js';

export interface ProbeTarget {
  id: string;
  kind: 'trunk' | 'calltaker' | 'region';
  uri: string;
}

export interface ProbeOptions {
  intervalS: number;
  timeoutMs: number;
  upAfter: number;
  downAfter: number;
}

export interface TargetHealth extends ProbeTarget {
  /** null until enough probes have been seen to decide. */
  up: boolean | null;
  since: number;
  lastStatus: number | null;
  lastProbeAt: number | null;
  lastRttMs: number | null;
}

interface Tracked {
  health: TargetHealth;
  ok: number;
  bad: number;
  timer: NodeJS.Timeout | null;
}

export class TargetProber {
  private readonly tracked: Tracked[];
  private stopped = false;

  constructor(
    private readonly ep: SipEndpoint,
    private readonly resolver: SipResolver,
    private readonly bus: EventBus,
    targets: ProbeTarget[],
    private readonly opts: ProbeOptions,
  ) {
    this.tracked = targets.map((t) => ({
      health: { ...t, up: null, since: Date.now(), lastStatus: null, lastProbeAt: null, lastRttMs: null },
      ok: 0, bad: 0, timer: null,
    }));
  }

  start(): void {
    // Spread the first probes over the first second so a large config does not burst.
    this.tracked.forEach((t, i) => {
      t.timer = setTimeout(() => this.probe(t), Math.min(1000, i * 50));
      t.timer.unref();
    });
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.tracked) if (t.timer) clearTimeout(t.timer);
  }

  states(): TargetHealth[] {
    return this.tracked.map((t) => ({ ...t.health }));
  }

  private schedule(t: Tracked): void {
    if (this.stopped) return;
    t.timer = setTimeout(() => this.probe(t), this.opts.intervalS * 1000);
    t.timer.unref();
  }

  private async probe(t: Tracked): Promise<void> {
    if (this.stopped) return;
    const started = Date.now();
    let settled = false;
    const finish = (status: number | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      t.health.lastProbeAt = started;
      t.health.lastStatus = status;
      // Any answer shows a live SIP element, except 5xx (overloaded or unavailable).
      const alive = status !== null && status < 500;
      if (alive) t.health.lastRttMs = Date.now() - started;
      this.record(t, alive);
      this.schedule(t);
    };
    const guard = setTimeout(() => finish(null), this.opts.timeoutMs);
    try {
      const u = parseUri(t.health.uri);
      if (!u || (u.scheme !== 'sip' && u.scheme !== 'sips')) return finish(null);
      const hops = await this.resolver.resolve({ scheme: u.scheme as 'sip' | 'sips', host: u.host, port: u.port, transportParam: u.params.get('transport') ?? undefined });
      const hop = hops[0];
      if (!hop || settled) return finish(null);
      const h = new Headers();
      h.append('From', `<sip:probe@${this.ep.sentBy(hop.transport)}>;tag=${newTag()}`);
      h.append('To', `<${t.health.uri}>`);
      h.append('Call-ID', newCallId('probe'));
      h.append('CSeq', '1 OPTIONS');
      h.append('Accept', 'application/sdp');
      this.ep.sendRequest(request('OPTIONS', t.health.uri, h), { transport: hop.transport, address: hop.address, port: hop.port }, {
        onFinal: (res, local) => finish(local ? null : res.status),
      });
    } catch {
      finish(null);
    }
  }

  private record(t: Tracked, alive: boolean): void {
    if (alive) {
      t.ok++;
      t.bad = 0;
    } else {
      t.bad++;
      t.ok = 0;
    }
    const h = t.health;
    let next = h.up;
    if (alive && t.ok >= this.opts.upAfter) next = true;
    if (!alive && t.bad >= this.opts.downAfter) next = false;
    if (next !== h.up) {
      h.up = next;
      h.since = Date.now();
      this.bus.emit('target.health', { id: h.id, kind: h.kind, uri: h.uri, up: next!, since: h.since, lastStatus: h.lastStatus });
    }
  }
}
