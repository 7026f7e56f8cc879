// The delivery worker: takes committed messages from the outbox to the region's endpoints.
//
// At-least-once: a row leaves `pending` only when an endpoint answered 2xx (or every endpoint
// refused it for good); the receiver de-duplicates by the Idempotency-Key (the row's key).
// Before escalation a row goes to its primary endpoint only. Escalation (the deadline passed,
// or an endpoint refused the message) tells people to phone the region, and from then on each
// try goes to every endpoint that has not refused it, in order, until one takes it.
import { readFileSync } from 'node:fs';
import type { Outbox, OutboxRow } from '../journal/types.js';
import { AgentPool, postJson, type PostResult } from './http-post.js';

export interface DeliveryOptions {
  /** One POST, whole exchange. */
  timeoutMs: number;
  backoff: { initialMs: number; maxMs: number };
  /** PEM file of the CA(s) of the endpoints' TLS certificates; null: the system CAs. */
  caFile: string | null;
  /** Authorization header value; null: none. */
  authorization: string | null;
  /** Outbox poll period (default 1000). */
  pollMs?: number;
  /** How long stop() waits for POSTs in flight before aborting them (default 2000). */
  stopTimeoutMs?: number;
  now?: () => number;
  random?: () => number;
}

export interface DeliveryEvents {
  delivered(row: OutboxRow, endpoint: string, latencyMs: number): void;
  retrying(row: OutboxRow, endpoint: string, error: string, nextAt: number): void;
  escalated(row: OutboxRow, reason: 'deadline' | 'permanent-failure', detail: string): void;
  /** Every endpoint refused it permanently; retries stop until an operator runs `outbox retry`. */
  failed(row: OutboxRow, error: string): void;
}

export interface DeliveryLog {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
  error(o: object, m?: string): void;
}

/** Rows fetched per look at the outbox (beyond those already in flight). */
const BATCH = 100;

/** Delay before try `tries + 1`: exponential, full jitter, capped; Retry-After when longer (up to maxMs). */
export function retryDelay(tries: number, backoff: { initialMs: number; maxMs: number }, random: () => number, retryAfterMs?: number): number {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(Math.max(tries, 0), 30));
  const jittered = Math.floor(random() * ceiling);
  // An endpoint asking for a day must not park an emergency message for a day: capped at maxMs.
  const asked = retryAfterMs === undefined ? 0 : Math.min(retryAfterMs, backoff.maxMs);
  return Math.max(jittered, asked);
}

interface Flight {
  /** Flipped by a deadline escalation while the POST runs: the same try then goes on to the other endpoints. */
  escalated: boolean;
  abort: AbortController;
  done: Promise<void>;
}

export class MessageDelivery {
  private readonly flights = new Map<string, Flight>();
  /**
   * Rows whose outcome could not be written (outbox write failed): not relaunched before this
   * time, or a failing disk would turn into a POST storm.
   */
  private readonly held = new Map<string, number>();
  private readonly agents: AgentPool;
  private readonly now: () => number;
  private readonly random: () => number;
  private poll: NodeJS.Timeout | null = null;
  private wake: { at: number; timer: NodeJS.Timeout } | null = null;
  private stopped = false;

  constructor(
    private readonly outbox: Outbox,
    private readonly opts: DeliveryOptions,
    private readonly events: DeliveryEvents,
    private readonly log: DeliveryLog,
  ) {
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    let ca: Buffer | null = null;
    if (opts.caFile !== null) {
      try {
        ca = readFileSync(opts.caFile);
      } catch (err) {
        // Deliveries to https endpoints then fail TLS verification and escalate: loud, not silent.
        log.error({ err, caFile: opts.caFile }, 'message endpoint CA file unreadable; using the system CAs');
      }
    }
    this.agents = new AgentPool(ca);
  }

  start(): void {
    if (this.stopped || this.poll !== null) return;
    this.poll = setInterval(() => this.pump(true), this.opts.pollMs ?? 1000);
    this.poll.unref();
    this.pump(true); // rows left from before a restart
  }

  /** A row was just committed: start it now (the POST is issued before this returns). */
  kick(): void {
    this.pump(false);
  }

  inFlight(): number {
    return this.flights.size;
  }

  /** Stops the timers and waits for the POSTs in flight (bounded; then they are aborted). No outbox writes after it resolves. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.poll !== null) clearInterval(this.poll);
    this.poll = null;
    if (this.wake !== null) clearTimeout(this.wake.timer);
    this.wake = null;
    const all = () => Promise.allSettled([...this.flights.values()].map((f) => f.done));
    let bound: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      all().then(() => false),
      new Promise<boolean>((r) => (bound = setTimeout(() => r(true), this.opts.stopTimeoutMs ?? 2000))),
    ]);
    clearTimeout(bound);
    if (timedOut) {
      this.log.warn({ inFlight: this.flights.size }, 'message POSTs still running at stop; aborted (they stay pending)');
      for (const f of this.flights.values()) f.abort.abort();
      await all();
    }
    this.agents.destroy();
  }

  private pump(withEscalations: boolean): void {
    if (this.stopped) return;
    try {
      const now = this.now();
      // The kick path goes straight to the POST; deadlines are the poll's business.
      if (withEscalations) this.escalateDue(now);
      for (const [key, until] of this.held) if (until <= now) this.held.delete(key);
      for (const row of this.outbox.due(now, BATCH + this.flights.size + this.held.size)) {
        if (!this.flights.has(row.key) && !this.held.has(row.key)) this.launch(row);
      }
      const next = this.outbox.nextDueAt();
      if (next !== null && next > now) this.wakeAt(next);
    } catch (err) {
      this.log.error({ err }, 'message outbox unavailable');
    }
  }

  private escalateDue(now: number): void {
    for (const row of this.outbox.escalationsDue(now)) this.escalateForDeadline(row, now, row.lastError);
  }

  /** false when it could not be recorded (tried again on the next poll). */
  private escalateForDeadline(row: OutboxRow, now: number, lastError: string | null): boolean {
    if (!this.write(() => this.outbox.escalated(row.key, now))) return false;
    const flight = this.flights.get(row.key);
    if (flight) flight.escalated = true;
    const detail = `not delivered ${Math.round((now - row.createdAt) / 1000)} s after commit${lastError ? ` (last error: ${lastError})` : ''}`;
    this.log.warn({ key: row.key, region: row.region, detail }, 'message delivery escalated: deadline');
    this.emit('escalated', () => this.events.escalated(row, 'deadline', detail));
    return true;
  }

  private wakeAt(at: number): void {
    if (this.stopped || (this.wake !== null && this.wake.at <= at)) return;
    if (this.wake !== null) clearTimeout(this.wake.timer);
    const timer = setTimeout(() => {
      this.wake = null;
      this.pump(true);
    }, Math.max(0, at - this.now()));
    timer.unref();
    this.wake = { at, timer };
  }

  private launch(row: OutboxRow): void {
    const flight: Flight = { escalated: row.escalated, abort: new AbortController(), done: Promise.resolve() };
    // In the map before the first POST, so nothing started from inside it can double it.
    this.flights.set(row.key, flight);
    flight.done = this.deliver(row, flight)
      .catch((err: unknown) => {
        this.log.error({ err, key: row.key }, 'message delivery failed unexpectedly');
        this.hold(row.key, this.now() + this.opts.backoff.initialMs);
      })
      .finally(() => {
        this.flights.delete(row.key);
        // A follow-up waiting for this no-contact (or a row due meanwhile) goes now.
        this.pump(false);
      });
  }

  /** One try of one row. Runs synchronously up to the first POST. */
  private async deliver(row: OutboxRow, flight: Flight): Promise<void> {
    const { key } = row;
    const primary = row.endpoints[0];
    if (row.payload === null || primary === undefined) {
      const error = row.payload === null ? 'pending message has no payload' : 'no message endpoints';
      if (!this.write(() => this.outbox.failed(key, error))) this.hold(key, this.now() + this.opts.backoff.maxMs);
      this.log.error({ key, region: row.region, error }, 'message cannot be delivered');
      this.emit('failed', () => this.events.failed(row, error));
      return;
    }
    const refused = new Set(row.failedEndpoints);
    if (!flight.escalated && refused.has(primary)) this.escalateRefused(row, flight, `${primary} refused it earlier`);

    const headers: Record<string, string> = { 'Idempotency-Key': key };
    if (this.opts.authorization !== null) headers.Authorization = this.opts.authorization;
    let lastError = 'no endpoint left';
    let lastEndpoint = primary;
    let retryAfterMs: number | undefined;

    for (const endpoint of row.endpoints) {
      if (refused.has(endpoint)) continue;
      if (endpoint !== primary && !flight.escalated) {
        // The deadline passed during this try, before the poll saw it: escalate here, so
        // the next endpoint gets the message now rather than after a backoff.
        const now = this.now();
        if (row.escalateAt > now || !this.escalateForDeadline(row, now, lastError)) break;
      }
      const started = this.now();
      const r: PostResult = await postJson(endpoint, row.payload, headers, { timeoutMs: this.opts.timeoutMs, agent: this.agentFor(endpoint), signal: flight.abort.signal });
      if (this.stopped && flight.abort.signal.aborted) return; // stays pending as it was
      const at = this.now();
      lastEndpoint = endpoint;
      if (r.kind === 'delivered') {
        if (!this.write(() => this.outbox.delivered(key, endpoint, at))) this.hold(key, at + this.opts.backoff.maxMs);
        this.log.info({ key, region: row.region, endpoint, status: r.status, latencyMs: at - started }, 'message delivered');
        this.emit('delivered', () => this.events.delivered(row, endpoint, at - started));
        return;
      }
      lastError = `${endpoint}: ${r.error}`;
      if (r.kind === 'permanent') {
        refused.add(endpoint);
        this.write(() => this.outbox.endpointFailed(key, endpoint, r.error));
        this.log.warn({ key, region: row.region, endpoint, status: r.status, error: r.error }, 'message endpoint refused the message');
        if (!flight.escalated) this.escalateRefused(row, flight, lastError);
      } else if (r.retryAfterMs !== undefined) {
        retryAfterMs = Math.max(retryAfterMs ?? 0, r.retryAfterMs);
      }
    }

    if (row.endpoints.every((e) => refused.has(e))) {
      if (!this.write(() => this.outbox.failed(key, lastError))) this.hold(key, this.now() + this.opts.backoff.maxMs);
      this.log.error({ key, region: row.region, error: lastError }, 'every message endpoint refused the message');
      this.emit('failed', () => this.events.failed(row, lastError));
      return;
    }
    const at = this.now();
    let nextAt = at + retryDelay(row.tries, this.opts.backoff, this.random, retryAfterMs);
    // The deadline escalation must find the row due, so that its first escalated try is not
    // held back by a long backoff.
    if (!flight.escalated && row.escalateAt > at) nextAt = Math.min(nextAt, row.escalateAt);
    if (!this.write(() => this.outbox.retryLater(key, nextAt, lastError))) this.hold(key, nextAt);
    this.log.warn({ key, region: row.region, endpoint: lastEndpoint, error: lastError, tries: row.tries + 1, nextAt }, 'message delivery will be retried');
    this.emit('retrying', () => this.events.retrying(row, lastEndpoint, lastError, nextAt));
    this.wakeAt(nextAt);
  }

  private escalateRefused(row: OutboxRow, flight: Flight, detail: string): void {
    flight.escalated = true;
    this.write(() => this.outbox.escalated(row.key, this.now()));
    this.log.warn({ key: row.key, region: row.region, detail }, 'message delivery escalated: permanent failure');
    this.emit('escalated', () => this.events.escalated(row, 'permanent-failure', detail));
  }

  private agentFor(endpoint: string) {
    try {
      return this.agents.get(new URL(endpoint));
    } catch {
      return undefined; // postJson reports the bad URL
    }
  }

  private hold(key: string, until: number): void {
    this.held.set(key, until);
    this.wakeAt(until);
  }

  /** false when the outbox write failed: the row stays as it was and is tried again (the receiver de-duplicates). */
  private write(f: () => void): boolean {
    try {
      f();
      return true;
    } catch (err) {
      this.log.error({ err }, 'message outbox write failed');
      return false;
    }
  }

  private emit(name: keyof DeliveryEvents, f: () => void): void {
    try {
      f();
    } catch (err) {
      this.log.error({ err, event: name }, 'message delivery event handler threw');
    }
  }
}
