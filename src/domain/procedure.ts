// The conference-in procedure of one request, as the Danish 112 procedure reads:
//
//   1. Call the region's AMK (attempt 1). An attempt ends in an answer, a final error, the ring
//      timer, or the call taker aborting.
//   2. Not answered: try again (attempt 2), no earlier than the spacing after attempt 1 started,
//      so an instant 486/503 does not burn both attempts; then the buffer queue, if the region
//      has one.
//   3. Overflow regions, when the region's policy tries them before the message.
//   4. Still no contact: commit the message "Ingen kontakt til AMK" (before anything else).
//   5. Overflow regions, when the policy tries them after the message; contact there is a
//      follow-up saying that the home region's dispatch stands.
//
// Pure state machine: inputs are what happened (with the time), outputs are commands for the
// adapters (dial, cancel, timers, tones, journal, outbox). No I/O, no clock, no randomness.
import type { AttemptOutcome, ContactStage, MessageType } from '../journal/types.js';
import type { NoContactReason } from './message.js';
import { planSteps, type ProcedurePolicy, type RegionPlan, type Stage, type Step } from './policy.js';

export type TimerName = 'ring' | 'next' | 'grace';

/** What the call taker's lamp (and MQTT) can show about a request. */
export type RequestDisplay = 'dialing' | 'waiting' | 'connected' | 'no-contact' | 'overflow-dialing' | 'overflow-connected' | 'aborted';

export type Tone = 'ringing' | 'busy' | 'connected' | 'refused' | null;

export type Command =
  | { do: 'dial'; attemptId: string; n: number; stage: Stage; region: string; targets: string[] }
  | { do: 'cancel'; attemptId: string; reason: string }
  /** An answer that came too late: ACK it (done by the stack) and hang up. */
  | { do: 'release'; attemptId: string }
  | { do: 'join'; attemptId: string }
  | { do: 'set-timer'; timer: TimerName; ms: number }
  | { do: 'clear-timer'; timer: TimerName }
  | { do: 'attempt-ended'; attemptId: string; outcome: AttemptOutcome; status: number | null; reason: string | null; at: number; answeredAt: number | null; crossedCancel: boolean }
  | { do: 'commit'; type: MessageType; reason?: NoContactReason; overflowRegion?: string; at: number }
  | { do: 'outcome'; outcome: 'contact' | 'aborted'; stage: ContactStage | null; region: string | null; at: number }
  | { do: 'tone'; tone: Tone }
  | { do: 'show'; display: RequestDisplay; attempt: number; region: string }
  | { do: 'refuse'; reason: string };

export interface AttemptFailure {
  status: number;
  reason: string;
  /** The stack's own failure (no response, transport, DNS) rather than the target's answer. */
  local?: string;
  retryAfterS?: number;
}

type CancelWhy = 'ring-timer' | 'abort' | 'citizen-hangup';

interface Attempt {
  id: string;
  n: number;
  stage: Stage;
  region: string;
  ringing: boolean;
  cancelled: CancelWhy | null;
  ended: boolean;
}

type Phase = 'idle' | 'attempting' | 'cancelling' | 'waiting' | 'done';

export class Procedure {
  private readonly steps: Step[];
  private stepIndex = 0;
  private phase: Phase = 'idle';
  private current: Attempt | null = null;
  private readonly attempts = new Map<string, Attempt>();
  private readonly lastStart = new Map<string, number>();
  private started = 0;
  private messageCommitted = false;
  private result: 'contact' | 'no-contact' | 'aborted' | null = null;

  constructor(
    readonly policy: ProcedurePolicy,
    private readonly newId: () => string,
  ) {
    this.steps = planSteps(policy);
  }

  /** contact, no-contact (message committed) or aborted; null while it runs. */
  get outcome(): 'contact' | 'no-contact' | 'aborted' | null {
    return this.result;
  }

  get finished(): boolean {
    return this.phase === 'done';
  }

  get attemptsStarted(): number {
    return this.started;
  }

  get messageSent(): boolean {
    return this.messageCommitted;
  }

  // -------------------------------------------------------------------------------------------
  // The procedure

  /** The call taker asked for the region. */
  start(now: number): Command[] {
    if (this.phase !== 'idle') return [];
    return this.next(now, 0);
  }

  /** After an attempt without contact: the next step of the plan, in order. */
  private next(now: number, retryAfterMs: number): Command[] {
    const out: Command[] = [];
    for (;;) {
      const step = this.steps[this.stepIndex];
      if (!step) {
        // Nothing left to try: the request ends with its message.
        this.phase = 'done';
        return out;
      }
      if (step.kind === 'message') {
        this.stepIndex++;
        out.push(...this.commitNoContact(now, 'attempts-exhausted'));
        continue;
      }
      // Attempt n on a region starts no earlier than the spacing after the previous one started;
      // a Retry-After is honoured, but never beyond the spacing.
      const last = this.lastStart.get(step.region.id);
      const bySpacing = last === undefined ? now : last + step.spacingMs;
      const at = Math.max(bySpacing, now + Math.min(retryAfterMs, step.spacingMs));
      if (at > now) {
        this.phase = 'waiting';
        out.push({ do: 'set-timer', timer: 'next', ms: at - now });
        out.push({ do: 'show', display: this.messageCommitted || step.stage === 'overflow' ? 'overflow-dialing' : 'waiting', attempt: this.started, region: step.region.id });
        return out;
      }
      out.push(...this.dial(now));
      return out;
    }
  }

  private dial(now: number): Command[] {
    const step = this.steps[this.stepIndex] as Extract<Step, { kind: 'attempt' }>;
    this.stepIndex++;
    const a: Attempt = { id: this.newId(), n: ++this.started, stage: step.stage, region: step.region.id, ringing: false, cancelled: null, ended: false };
    this.attempts.set(a.id, a);
    this.current = a;
    this.phase = 'attempting';
    this.lastStart.set(step.region.id, now);
    return [
      { do: 'dial', attemptId: a.id, n: a.n, stage: a.stage, region: a.region, targets: step.targets },
      { do: 'set-timer', timer: 'ring', ms: step.ringTimerMs },
      { do: 'tone', tone: 'ringing' },
      { do: 'show', display: step.stage === 'overflow' ? 'overflow-dialing' : 'dialing', attempt: a.n, region: a.region },
    ];
  }

  private commitNoContact(now: number, reason: NoContactReason): Command[] {
    this.messageCommitted = true;
    this.result = 'no-contact';
    return [
      { do: 'commit', type: 'no-contact', reason, at: now },
      { do: 'show', display: 'no-contact', attempt: this.started, region: this.policy.home.id },
    ];
  }

  // -------------------------------------------------------------------------------------------
  // What the region's side did

  /** A 1xx other than 100 (182 Queued included: it is not contact). */
  ringing(attemptId: string): Command[] {
    const a = this.attempts.get(attemptId);
    if (a) a.ringing = true;
    return [];
  }

  /** A 200 from the target (the stack has ACKed it). */
  answered(attemptId: string, now: number, crossedCancel: boolean): Command[] {
    const a = this.attempts.get(attemptId);
    if (!a) return [{ do: 'release', attemptId }];
    if (this.phase === 'done') return this.late(a, now, crossedCancel);
    if (a.cancelled === 'abort' || a.cancelled === 'citizen-hangup') return this.late(a, now, crossedCancel);
    // A 200 that crosses our CANCEL (or comes after the ring timer) is contact if no later
    // attempt has started and no message is committed.
    const latest = a.n === this.started;
    if (a.ended && (!latest || this.messageCommitted)) return this.late(a, now, crossedCancel);
    if (!a.ended && a !== this.current) return this.late(a, now, crossedCancel);
    return this.contact(a, now, crossedCancel);
  }

  private late(a: Attempt, now: number, crossedCancel: boolean): Command[] {
    const out: Command[] = [];
    if (!a.ended) {
      a.ended = true;
      out.push({ do: 'attempt-ended', attemptId: a.id, outcome: a.cancelled === 'citizen-hangup' ? 'citizen-hangup' : 'cancelled', status: 200, reason: 'answered too late', at: now, answeredAt: now, crossedCancel });
    }
    out.push({ do: 'release', attemptId: a.id });
    return out;
  }

  private contact(a: Attempt, now: number, crossedCancel: boolean): Command[] {
    const out: Command[] = [{ do: 'clear-timer', timer: 'ring' }, { do: 'clear-timer', timer: 'grace' }, { do: 'clear-timer', timer: 'next' }];
    // An attempt that already ended at the ring timer is answered after all: record the answer.
    a.ended = true;
    out.push({ do: 'attempt-ended', attemptId: a.id, outcome: 'answered', status: 200, reason: null, at: now, answeredAt: now, crossedCancel });
    this.current = null;
    this.phase = 'done';
    out.push({ do: 'join', attemptId: a.id }, { do: 'tone', tone: 'connected' });
    const overflow = a.stage === 'overflow';
    if (this.messageCommitted) {
      // After the message: the home region's dispatch stands; tell it who took the call.
      out.push({ do: 'commit', type: 'contact-via-overflow', overflowRegion: a.region, at: now });
    } else {
      this.result = 'contact';
      out.push({ do: 'outcome', outcome: 'contact', stage: a.stage, region: a.region, at: now });
    }
    out.push({ do: 'show', display: overflow ? 'overflow-connected' : 'connected', attempt: a.n, region: a.region });
    return out;
  }

  /** The attempt ended without an answer (final error, 487 after our CANCEL, no response). */
  failed(attemptId: string, now: number, f: AttemptFailure): Command[] {
    const a = this.attempts.get(attemptId);
    if (!a || a.ended) return [];
    a.ended = true;
    const outcome = this.classify(a, f);
    const out: Command[] = [{ do: 'attempt-ended', attemptId, outcome, status: f.status, reason: f.reason, at: now, answeredAt: null, crossedCancel: false }];
    if (a !== this.current || this.phase === 'done') return out;
    this.current = null;
    out.push({ do: 'clear-timer', timer: 'ring' }, { do: 'clear-timer', timer: 'grace' });
    if (outcome === 'busy') out.push({ do: 'tone', tone: 'busy' });
    const retryAfterMs = f.retryAfterS !== undefined && !f.local ? f.retryAfterS * 1000 : 0;
    out.push(...this.next(now, retryAfterMs));
    return out;
  }

  private classify(a: Attempt, f: AttemptFailure): AttemptOutcome {
    if (a.cancelled === 'ring-timer') return 'no-answer';
    if (a.cancelled === 'abort') return 'cancelled';
    if (a.cancelled === 'citizen-hangup') return 'citizen-hangup';
    if (f.status === 486 || f.status === 600) return 'busy';
    if (f.local) return 'unreachable';
    return 'rejected';
  }

  // -------------------------------------------------------------------------------------------
  // Timers

  timer(name: TimerName, now: number): Command[] {
    const a = this.current;
    switch (name) {
      case 'ring': {
        if (!a || this.phase !== 'attempting') return [];
        a.cancelled = 'ring-timer';
        if (!a.ringing) {
          // No 1xx yet: no CANCEL may be sent (RFC 3261 §9.1). The attempt ends here; the
          // stack sends the CANCEL after the first 1xx, and a later 200 is released.
          a.ended = true;
          this.current = null;
          return [
            { do: 'cancel', attemptId: a.id, reason: 'ring timer' },
            { do: 'attempt-ended', attemptId: a.id, outcome: 'no-answer', status: null, reason: 'ring timer, no response', at: now, answeredAt: null, crossedCancel: false },
            ...this.next(now, 0),
          ];
        }
        this.phase = 'cancelling';
        return [
          { do: 'cancel', attemptId: a.id, reason: 'ring timer' },
          { do: 'set-timer', timer: 'grace', ms: this.policy.cancelGraceMs },
        ];
      }
      case 'grace': {
        if (!a || this.phase !== 'cancelling') return [];
        a.ended = true;
        this.current = null;
        return [
          { do: 'attempt-ended', attemptId: a.id, outcome: 'no-answer', status: null, reason: 'no final response to CANCEL', at: now, answeredAt: null, crossedCancel: false },
          ...this.next(now, 0),
        ];
      }
      case 'next':
        if (this.phase !== 'waiting') return [];
        return this.dial(now);
    }
  }

  // -------------------------------------------------------------------------------------------
  // What the people did

  /**
   * The citizen hung up (or the call was lost): no one left to conference; the region must call
   * back, so the message goes out now if it has not.
   */
  citizenHungUp(now: number, reason: NoContactReason = 'citizen-hangup'): Command[] {
    if (this.phase === 'done' || this.phase === 'idle') return [];
    const out = this.stopAttempt('citizen-hangup', now);
    this.phase = 'done';
    if (this.messageCommitted) out.push({ do: 'commit', type: 'citizen-hangup', at: now });
    else out.push(...this.commitNoContact(now, reason));
    return out;
  }

  /** The call taker hung up before contact: the procedure goes on (documented, intended). */
  callTakerLeft(): Command[] {
    return [];
  }

  /** The abort key: before a message is committed, the request ends as aborted. */
  abort(now: number): Command[] {
    if (this.phase === 'done' || this.phase === 'idle') return [{ do: 'refuse', reason: 'no conference-in is running' }];
    const out = this.stopAttempt('abort', now);
    this.phase = 'done';
    out.push({ do: 'tone', tone: null });
    if (!this.messageCommitted) {
      this.result = 'aborted';
      out.push({ do: 'outcome', outcome: 'aborted', stage: null, region: null, at: now });
      out.push({ do: 'show', display: 'aborted', attempt: this.started, region: this.policy.home.id });
    }
    return out;
  }

  /** The retry key: start the next attempt now instead of waiting out the spacing. */
  retryNow(now: number): Command[] {
    if (this.phase !== 'waiting') return [{ do: 'refuse', reason: 'no attempt is waiting' }];
    return [{ do: 'clear-timer', timer: 'next' }, ...this.dial(now)];
  }

  private stopAttempt(why: CancelWhy, now: number): Command[] {
    const out: Command[] = [{ do: 'clear-timer', timer: 'ring' }, { do: 'clear-timer', timer: 'grace' }, { do: 'clear-timer', timer: 'next' }];
    const a = this.current;
    this.current = null;
    if (a && !a.ended) {
      a.cancelled = why;
      a.ended = true;
      out.push({ do: 'cancel', attemptId: a.id, reason: why === 'abort' ? 'aborted by call taker' : 'citizen hung up' });
      out.push({ do: 'attempt-ended', attemptId: a.id, outcome: why === 'abort' ? 'cancelled' : 'citizen-hangup', status: null, reason: why, at: now, answeredAt: null, crossedCancel: false });
    }
    return out;
  }
}

export type { ProcedurePolicy, RegionPlan, Stage };
