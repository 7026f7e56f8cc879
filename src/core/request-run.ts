// One conference-in request at run time: feeds what happens on the wire into the procedure
// (src/domain/procedure.ts) and carries out its commands through the adapters — the SIP dialer,
// tones, timers, the journal and the outbox. The decisions are all in the procedure.
import { randomUUID } from 'node:crypto';
import type { EventBus, RequestTrigger } from './events.js';
import type { Dialer, Log, MessageSink, RequestJournal, ToneControl } from './ports.js';
import { Procedure, type Command, type TimerName } from '../domain/procedure.js';
import type { ProcedurePolicy, Stage } from '../domain/policy.js';
import { buildMessage, messageKey, type AttemptLogEntry, type MessageContext, type NoContactReason } from '../domain/message.js';
import type { MessageType } from '../journal/types.js';
import type { RegionLeg } from '../sip/b2bua.js';
import type { Credentials } from '../sip/digest.js';

/** How to reach a region's targets (digest credentials, outbound proxy). */
export interface RegionReach {
  name: string;
  auth: Credentials | null;
  outboundProxy: string | null;
}

export interface RunDeps {
  bus: EventBus;
  dialer: Dialer;
  tones: ToneControl;
  journal: RequestJournal;
  delivery: MessageSink;
  log: Log;
}

export interface RunSpec {
  callId: string;
  trigger: RequestTrigger;
  policy: ProcedurePolicy;
  reach: ReadonlyMap<string, RegionReach>;
  /** Everything the message says about the call; desk may change while the request runs. */
  context: MessageContext;
  /** Headers of the conference-in INVITE (priority, identifiers, identity, privacy). */
  headers: [string, string][];
}

interface AttemptLegs {
  targets: string[];
  index: number;
  leg: RegionLeg | null;
}

export class RequestRun {
  readonly requestId: string;
  readonly callId: string;
  private readonly proc: Procedure;
  private readonly timers = new Map<TimerName, NodeJS.Timeout>();
  private readonly legs = new Map<string, AttemptLegs>();
  private readonly attemptLog = new Map<string, AttemptLogEntry>();
  private readonly queue: Command[] = [];
  private applying = false;
  private disposed = false;

  constructor(
    private readonly deps: RunDeps,
    private readonly spec: RunSpec,
  ) {
    this.requestId = spec.context.requestId;
    this.callId = spec.callId;
    this.proc = new Procedure(spec.policy, randomUUID);
  }

  get finished(): boolean {
    return this.proc.finished;
  }

  get outcome() {
    return this.proc.outcome;
  }

  get home(): string {
    return this.spec.policy.home.id;
  }

  start(): void {
    const now = Date.now();
    const c = this.spec.context;
    this.deps.journal.requestStarted({
      requestId: c.requestId, callId: this.callId, incidentId: c.incidentId, emergencyCallId: c.emergencyCallId,
      node: c.node, desk: c.desk, region: this.home, trigger: this.spec.trigger, startedAt: now, test: c.test,
      policy: this.spec.policy, context: c,
    });
    this.deps.bus.emit('request.started', { requestId: this.requestId, callId: this.callId, region: this.home, desk: c.desk, trigger: this.spec.trigger, at: now });
    this.apply(this.proc.start(now));
  }

  setDesk(desk: string | null): void {
    this.spec.context.desk = desk;
  }

  abort(): void {
    this.apply(this.proc.abort(Date.now()));
  }

  retry(): void {
    this.apply(this.proc.retryNow(Date.now()));
  }

  /** The inbound call is gone (citizen hung up, or the bridge lost it). */
  callEnded(reason: NoContactReason): void {
    this.apply(this.proc.citizenHungUp(Date.now(), reason));
  }

  /** The no-contact message reached the region. */
  messageDelivered(): void {
    if (!this.disposed) this.deps.tones.tone(this.callId, 'message-sent');
    this.show('message-delivered');
  }

  /**
   * The no-contact message was not delivered in time, or was refused: the call taker must phone
   * the region on the backup line; the region is told by a follow-up once it can be reached.
   */
  messageEscalated(at: number, reason: 'deadline' | 'permanent-failure', detail: string): void {
    if (!this.disposed) this.deps.tones.tone(this.callId, 'message-failed');
    this.show('escalation');
    this.commit('delivery-escalated', at, undefined, undefined, { at, reason, detail });
  }

  private show(state: 'message-delivered' | 'escalation'): void {
    this.deps.bus.emit('request.state', { requestId: this.requestId, callId: this.callId, desk: this.spec.context.desk, state, attempt: this.proc.attemptsStarted, region: this.home, at: Date.now() });
  }

  /** Forget timers once the call is gone and nothing is left to do. */
  dispose(): void {
    this.disposed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  // -------------------------------------------------------------------------------------------

  private apply(cmds: Command[]): void {
    this.queue.push(...cmds);
    if (this.applying) return; // a command's side effect fed the procedure: run in order
    this.applying = true;
    try {
      for (let c = this.queue.shift(); c; c = this.queue.shift()) {
        try {
          this.run(c);
        } catch (err) {
          this.deps.log.error({ err, requestId: this.requestId, command: c.do }, 'conference-in command failed');
        }
      }
    } finally {
      this.applying = false;
    }
  }

  private run(c: Command): void {
    const { bus, tones, journal, log } = this.deps;
    switch (c.do) {
      case 'dial':
        return this.dial(c.attemptId, c.n, c.stage, c.region, c.targets);
      case 'cancel':
        this.legs.get(c.attemptId)?.leg?.cancel(`SIP;cause=487;text="${c.reason}"`);
        return;
      case 'release':
        this.legs.get(c.attemptId)?.leg?.hangup();
        return;
      case 'join':
        this.legs.get(c.attemptId)?.leg?.join();
        return;
      case 'set-timer': {
        const old = this.timers.get(c.timer);
        if (old) clearTimeout(old);
        if (this.disposed) return;
        this.timers.set(c.timer, setTimeout(() => {
          this.timers.delete(c.timer);
          this.apply(this.proc.timer(c.timer, Date.now()));
        }, c.ms));
        return;
      }
      case 'clear-timer': {
        const t = this.timers.get(c.timer);
        if (t) clearTimeout(t);
        this.timers.delete(c.timer);
        return;
      }
      case 'attempt-ended': {
        journal.attemptEnded(c.attemptId, { outcome: c.outcome, status: c.status, reason: c.reason, endedAt: c.at, answeredAt: c.answeredAt, crossedCancel: c.crossedCancel });
        const entry = this.attemptLog.get(c.attemptId);
        if (entry) Object.assign(entry, { outcome: c.outcome, status: c.status, reason: c.reason, endedAt: c.at, answeredAt: c.answeredAt });
        bus.emit('conference.attempt', {
          callId: this.callId, requestId: this.requestId, attemptId: c.attemptId, n: entry?.n ?? 0, region: entry?.region ?? '', target: entry?.target ?? '',
          // Cancelled: we ended it (ring timer, abort, citizen gone); failed: the target did.
          phase: c.outcome === 'answered' ? 'answered' : c.outcome === 'no-answer' || c.outcome === 'cancelled' || c.outcome === 'citizen-hangup' ? 'cancelled' : 'failed',
          outcome: c.outcome, status: c.status ?? undefined, reason: c.reason ?? undefined, crossedCancel: c.crossedCancel, at: c.at,
        });
        if (c.outcome !== 'answered') this.deps.dialer.release(this.callId);
        return;
      }
      case 'commit':
        return this.commit(c.type, c.at, c.reason, c.overflowRegion);
      case 'outcome':
        journal.requestOutcome(this.requestId, c.outcome, c.at, c.stage, c.region);
        bus.emit('request.ended', { requestId: this.requestId, callId: this.callId, outcome: c.outcome, stage: c.stage, region: c.region, attempts: this.proc.attemptsStarted, at: c.at });
        log.info({ callId: this.callId, requestId: this.requestId, outcome: c.outcome, stage: c.stage, region: c.region }, 'conference-in ended');
        return;
      case 'tone':
        tones.tone(this.callId, c.tone);
        return;
      case 'show':
        bus.emit('request.state', { requestId: this.requestId, callId: this.callId, desk: this.spec.context.desk, state: c.display, attempt: c.attempt, region: c.region, at: Date.now() });
        return;
      case 'refuse':
        bus.emit('conference.refused', { callId: this.callId, reason: c.reason });
        tones.tone(this.callId, 'refused');
        return;
    }
  }

  private dial(attemptId: string, n: number, stage: Stage, region: string, targets: string[]): void {
    const now = Date.now();
    this.attemptLog.set(attemptId, {
      attemptId, n, stage, region, target: targets[0]!, startedAt: now,
      firstResponseAt: null, answeredAt: null, endedAt: null, outcome: null, status: null, reason: null,
    });
    this.deps.journal.attemptStarted({ attemptId, requestId: this.requestId, n, stage, region, target: targets[0]!, startedAt: now });
    this.deps.bus.emit('conference.attempt', { callId: this.callId, requestId: this.requestId, attemptId, n, region, target: targets[0]!, phase: 'started', at: now });
    const legs: AttemptLegs = { targets, index: 0, leg: null };
    this.legs.set(attemptId, legs);
    this.dialTarget(attemptId, legs);
  }

  /** One target of the attempt; a transport failure moves on to the next target, same attempt. */
  private dialTarget(attemptId: string, legs: AttemptLegs): void {
    const entry = this.attemptLog.get(attemptId)!;
    const reach = this.spec.reach.get(entry.region);
    const target = legs.targets[legs.index]!;
    let ringing = false;
    const leg = this.deps.dialer.dialOut(this.callId, {
      attemptId: legs.index === 0 ? attemptId : `${attemptId}.${legs.index}`,
      target, credentials: reach?.auth ?? null, outboundProxy: reach?.outboundProxy ?? null,
      headers: this.spec.headers,
    }, {
      ringing: () => {
        if (ringing) return;
        ringing = true;
        const at = Date.now();
        entry.firstResponseAt ??= at;
        this.deps.journal.attemptProvisional(attemptId, at);
        this.deps.bus.emit('conference.attempt', { callId: this.callId, requestId: this.requestId, attemptId, n: entry.n, region: entry.region, target, phase: 'ringing', at });
        this.apply(this.proc.ringing(attemptId));
      },
      answered: (_res, crossed) => {
        entry.firstResponseAt ??= Date.now();
        this.apply(this.proc.answered(attemptId, Date.now(), crossed));
      },
      failed: (status, reason, info) => {
        if (info.local && !info.cancelled && legs.index + 1 < legs.targets.length && this.legs.get(attemptId) === legs && !this.proc.finished) {
          legs.index++;
          entry.target = legs.targets[legs.index]!;
          this.deps.log.warn({ callId: this.callId, attemptId, status, reason, next: entry.target }, 'target unreachable: next target, same attempt');
          this.dialTarget(attemptId, legs);
          return;
        }
        this.apply(this.proc.failed(attemptId, Date.now(), { status, reason, local: info.local, retryAfterS: info.retryAfterS }));
      },
      ended: () => this.deps.dialer.release(this.callId),
    });
    legs.leg = leg;
    if (!leg) this.apply(this.proc.failed(attemptId, Date.now(), { status: 481, reason: 'call is gone', local: 'call-ended' }));
  }

  private commit(type: MessageType, at: number, reason?: NoContactReason, overflowRegion?: string, escalation?: { at: number; reason: 'deadline' | 'permanent-failure'; detail: string }): void {
    const { journal, bus, delivery, log } = this.deps;
    const home = this.spec.policy.home;
    const ctx = this.spec.context;
    const overflowName = overflowRegion ? (this.spec.reach.get(overflowRegion)?.name ?? overflowRegion) : '';
    const msg = buildMessage(ctx, {
      type, createdAt: at, updatedAt: at, attempts: [...this.attemptLog.values()],
      ...(type === 'no-contact' ? { reason: reason ?? 'attempts-exhausted' } : {}),
      ...(type === 'contact-via-overflow' && overflowRegion ? { overflow: { region: { id: overflowRegion, name: overflowName }, answeredAt: at } } : {}),
      ...(type === 'citizen-hangup' ? { hangupAt: at } : {}),
      ...(escalation ? { escalation } : {}),
    });
    const { created } = journal.commitMessage({
      requestId: this.requestId, type, region: home.id, endpoints: home.messageEndpoints,
      payload: JSON.stringify(msg), createdAt: at, escalateAt: at + home.escalationMs, test: ctx.test,
    }, type === 'no-contact' ? { outcome: 'no-contact', at } : undefined);
    // Committed: now it may go on the wire.
    delivery.kick();
    if (!created) return;
    const key = messageKey(this.requestId, type);
    log.info({ callId: this.callId, requestId: this.requestId, key, reason }, `message ${type} committed`);
    bus.emit('message.committed', { requestId: this.requestId, callId: this.callId, key, type, region: home.id, at });
    if (type === 'no-contact') {
      bus.emit('request.ended', { requestId: this.requestId, callId: this.callId, outcome: 'no-contact', stage: null, region: home.id, attempts: this.proc.attemptsStarted, at });
    }
  }
}
