// The electronic message to the region, as JSON shaped after NENA EIDO (NENA-STA-021).
// Pure: the same context and details always give the same message (no clock, no randomness).
//
// Regions count "no contact" cases by searching their inbox for the exact text
// `Ingen kontakt til AMK`, so the text travels in the `text` field of the `no-contact` message
// and nowhere else: every other string that ends up in any message is neutralised first.
import type { AttemptOutcome, MessageType } from '../journal/types.js';

export const NO_CONTACT_TEXT = 'Ingen kontakt til AMK';
export const MESSAGE_SCHEMA_VERSION = '1.0';

export interface AttemptLogEntry {
  attemptId: string;
  n: number;
  stage: 'home' | 'buffer' | 'overflow';
  region: string;
  target: string;
  startedAt: number;
  firstResponseAt: number | null;
  answeredAt: number | null;
  endedAt: number | null;
  outcome: AttemptOutcome | null;
  status: number | null;
  reason: string | null;
}

export interface MessageContext {
  requestId: string;
  /** URNs like urn:emergency:uid:incidentid:<hex>:<node> (and …:callid:…). */
  incidentId: string;
  emergencyCallId: string;
  node: string;
  desk: string | null;
  region: { id: string; name: string };
  /** null when withheld or anonymous. */
  caller: { number: string | null; uri: string | null };
  location: { pidfLo: string | null; reference: string | null } | null;
  /** null until the statistics feature fills it. */
  recontact: { count: number; lastAt: number } | null;
  test: boolean;
}

export type NoContactReason = 'attempts-exhausted' | 'citizen-hangup' | 'bridge-restart';

export interface MessageDetails {
  type: MessageType;
  createdAt: number;
  updatedAt: number;
  attempts: AttemptLogEntry[];
  /** no-contact only (required there). */
  reason?: NoContactReason;
  /** contact-via-overflow only (required there). */
  overflow?: { region: { id: string; name: string }; answeredAt: number };
  /** delivery-escalated only (required there). */
  escalation?: { at: number; reason: 'deadline' | 'permanent-failure'; detail: string };
  /** citizen-hangup only (required there). */
  hangupAt?: number;
}

export interface AmkAttempt {
  attemptId: string;
  n: number;
  stage: 'home' | 'buffer' | 'overflow';
  region: string;
  target: string;
  started: string;
  firstResponse: string | null;
  answered: string | null;
  ended: string | null;
  /** Start to first provisional/final response. */
  firstResponseMs: number | null;
  /** Start to answer (200). */
  answerMs: number | null;
  /** Start to end. */
  durationMs: number | null;
  outcome: AttemptOutcome | null;
  sipStatus: number | null;
  reason: string | null;
}

export interface AmkMessage {
  schemaVersion: typeof MESSAGE_SCHEMA_VERSION;
  /** `${requestId}:${type}`, also the Idempotency-Key. */
  messageId: string;
  type: MessageType;
  /** no-contact only: exactly NO_CONTACT_TEXT. */
  text?: typeof NO_CONTACT_TEXT;
  /** no-contact only. */
  reason?: NoContactReason;
  /** Follow-ups only: the messageId of the request's no-contact message. */
  refersTo?: string;
  created: string;
  updated: string;
  requestId: string;
  incident: { id: string };
  call: { id: string; callerNumber: string | null; callbackUri: string | null };
  psap: { node: string; desk: string | null };
  region: { id: string; name: string };
  location: { pidfLo: string } | { reference: string } | null;
  recontact: { count: number; last: string } | null;
  attempts: AmkAttempt[];
  /** contact-via-overflow only. */
  overflow?: { region: { id: string; name: string }; answered: string; homeDispatchStands: true; note: string };
  /** citizen-hangup only. */
  hangup?: { at: string };
  /** delivery-escalated only. */
  escalation?: { at: string; reason: 'deadline' | 'permanent-failure'; detail: string };
  test: boolean;
}

/** The outbox key and Idempotency-Key of a message. */
export function messageKey(requestId: string, type: MessageType): string {
  return `${requestId}:${type}`;
}

/**
 * The text as a region's search might find it: any case, any whitespace between the words
 * (a newline or a non-breaking space in a hostile name must not slip through).
 */
const CARRIES_TEXT = /ingen\s+kontakt\s+til\s+amk/giu;

/** What replaces the text wherever it appears outside `text`. Shares no phrase with it. */
export const NEUTRALISED_TEXT = '[tekst fjernet]';

/** Whether a string (or a serialised message) contains the no-contact text as a region would find it. */
export function carriesNoContactText(s: string): boolean {
  CARRIES_TEXT.lastIndex = 0;
  const found = CARRIES_TEXT.test(s);
  CARRIES_TEXT.lastIndex = 0;
  return found;
}

export function buildMessage(ctx: MessageContext, d: MessageDetails): AmkMessage {
  const iso = (ms: number) => new Date(ms).toISOString();
  const isNoContact = d.type === 'no-contact';

  // Built in the order a person reads it; everything except `text` goes through `neutral()`.
  const head: Pick<AmkMessage, 'schemaVersion' | 'messageId' | 'type' | 'reason' | 'refersTo'> = {
    schemaVersion: MESSAGE_SCHEMA_VERSION,
    messageId: messageKey(ctx.requestId, d.type),
    type: d.type,
  };
  // A missing reason is a bug upstream, but it must never hold the no-contact message back.
  if (isNoContact) head.reason = d.reason ?? 'attempts-exhausted';
  else head.refersTo = messageKey(ctx.requestId, 'no-contact');

  const m: AmkMessage = {
    ...head,
    created: iso(d.createdAt),
    updated: iso(d.updatedAt),
    requestId: ctx.requestId,
    incident: { id: ctx.incidentId },
    call: { id: ctx.emergencyCallId, callerNumber: ctx.caller.number, callbackUri: ctx.caller.uri },
    psap: { node: ctx.node, desk: ctx.desk },
    region: { id: ctx.region.id, name: ctx.region.name },
    location: location(ctx.location),
    recontact: ctx.recontact === null ? null : { count: ctx.recontact.count, last: iso(ctx.recontact.lastAt) },
    attempts: d.attempts.map((a) => attempt(a, iso)),
    ...typeSpecific(ctx, d, iso),
    test: ctx.test,
  };

  const out = neutral(m) as AmkMessage;
  if (!isNoContact) return out;
  // `text` goes in after neutralising, right after `type`.
  const { schemaVersion, messageId, type, ...rest } = out;
  return { schemaVersion, messageId, type, text: NO_CONTACT_TEXT, ...rest };
}

/** The part only one type carries. */
function typeSpecific(ctx: MessageContext, d: MessageDetails, iso: (ms: number) => string): Pick<AmkMessage, 'overflow' | 'hangup' | 'escalation'> {
  switch (d.type) {
    case 'contact-via-overflow': {
      const o = required(d.overflow, 'overflow', d.type);
      return {
        overflow: {
          region: { id: o.region.id, name: o.region.name },
          answered: iso(o.answeredAt),
          homeDispatchStands: true,
          // Worded so that it shares no phrase with the no-contact text.
          note: `Opkaldet blev besvaret af ${o.region.name} via overløb. Disponeringen fra ${ctx.region.name} står ved magt.`,
        },
      };
    }
    case 'citizen-hangup':
      return { hangup: { at: iso(required(d.hangupAt, 'hangupAt', d.type)) } };
    case 'delivery-escalated': {
      const e = required(d.escalation, 'escalation', d.type);
      return { escalation: { at: iso(e.at), reason: e.reason, detail: e.detail } };
    }
    case 'no-contact':
      return {};
  }
}

function location(l: MessageContext['location']): AmkMessage['location'] {
  if (l === null) return null;
  // The PIDF-LO by value is what a dispatcher can use without dereferencing anything.
  if (l.pidfLo !== null) return { pidfLo: l.pidfLo };
  if (l.reference !== null) return { reference: l.reference };
  return null;
}

function attempt(a: AttemptLogEntry, iso: (ms: number) => string): AmkAttempt {
  const since = (t: number | null) => (t === null ? null : Math.max(0, t - a.startedAt));
  return {
    attemptId: a.attemptId,
    n: a.n,
    stage: a.stage,
    region: a.region,
    target: a.target,
    started: iso(a.startedAt),
    firstResponse: a.firstResponseAt === null ? null : iso(a.firstResponseAt),
    answered: a.answeredAt === null ? null : iso(a.answeredAt),
    ended: a.endedAt === null ? null : iso(a.endedAt),
    firstResponseMs: since(a.firstResponseAt),
    answerMs: since(a.answeredAt),
    durationMs: since(a.endedAt),
    outcome: a.outcome,
    sipStatus: a.status,
    reason: a.reason,
  };
}

function required<T>(v: T | undefined, what: string, type: MessageType): T {
  if (v === undefined) throw new TypeError(`a ${type} message needs details.${what}`);
  return v;
}

/**
 * A copy with the no-contact text replaced in every string. Names, desk ids, SIP reason
 * phrases, PIDF-LO and error details come from configuration and from the network; any of them
 * could contain the text, and a follow-up carrying it would be counted as a second case.
 */
function neutral(v: unknown): unknown {
  if (typeof v === 'string') return v.replace(CARRIES_TEXT, NEUTRALISED_TEXT);
  if (Array.isArray(v)) return v.map(neutral);
  if (v !== null && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = neutral(x);
    return o;
  }
  return v;
}
