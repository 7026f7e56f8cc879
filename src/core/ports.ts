// What the core needs from the adapters around it (the composition root wires them).
import type { DialOutEvents, DialOutOptions, RegionLeg } from '../sip/b2bua.js';
import type { ToneName } from '../media/types.js';
import type { AttemptEnd, AttemptStart, ContactStage, OutboxCommit, OutboxRow, RequestOutcome, RequestRow, AttemptRow, RequestStart } from '../journal/types.js';

/** Private tones to the call taker (the media adapter implements it). */
export interface ToneControl {
  tone(callId: string, tone: ToneName | null): void;
}

/** Conference-in legs (the SIP adapter implements it). */
export interface Dialer {
  dialOut(callId: string, opts: DialOutOptions, events: DialOutEvents): RegionLeg | null;
  /** Re-check whether a call with no call taker can end now. */
  release(callId: string): void;
}

/** The durable record of requests and the outbox (the journal implements it). */
export interface RequestJournal {
  requestStarted(r: RequestStart): void;
  attemptStarted(a: AttemptStart): void;
  attemptProvisional(attemptId: string, at: number): void;
  attemptEnded(attemptId: string, e: AttemptEnd): void;
  requestOutcome(requestId: string, outcome: RequestOutcome, at: number, stage?: ContactStage | null, region?: string | null): boolean;
  commitMessage(m: OutboxCommit, outcome?: { outcome: RequestOutcome; at: number }): { row: OutboxRow; created: boolean };
  openRequests(): RequestRow[];
  attempts(requestId: string): AttemptRow[];
  context(requestId: string): unknown | null;
  get(key: string): OutboxRow | null;
  /** A 112 call seen (the statistics' denominator). */
  callSeen?(c: { callId: string; startedAt: number; trunk: string | null; region: string; recontact: boolean }): void;
}

/** Delivery of committed messages (the notify adapter implements it). */
export interface MessageSink {
  /** Something was committed: deliver it now. */
  kick(): void;
}

export interface Log {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}
