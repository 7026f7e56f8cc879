// What the journal stores, as the rest of the bridge sees it. The journal is the durable
// record of conference-in requests, their attempts and outcomes, and the message outbox.
// Every write is synchronous and durable (WAL, synchronous=FULL) when the call returns.

export type MessageType = 'no-contact' | 'contact-via-overflow' | 'citizen-hangup' | 'delivery-escalated';

/** Delivery order within a request: the text-carrying `no-contact` message first. */
export const MESSAGE_ORDER: Record<MessageType, number> = {
  'no-contact': 0,
  'contact-via-overflow': 1,
  'citizen-hangup': 2,
  'delivery-escalated': 3,
};

export type RequestOutcome = 'contact' | 'no-contact' | 'aborted';
export type ContactStage = 'home' | 'buffer' | 'overflow';
export type AttemptOutcome = 'answered' | 'busy' | 'no-answer' | 'rejected' | 'unreachable' | 'cancelled' | 'citizen-hangup';

export interface RequestStart {
  requestId: string;
  callId: string;
  /** URNs (created when the inbound call had none). */
  incidentId: string;
  emergencyCallId: string;
  node: string;
  desk: string | null;
  /** Home region of the request (routing, or named by the trigger). */
  region: string;
  trigger: 'dtmf' | 'info' | 'cti' | 'auto' | 'restart';
  startedAt: number;
  test: boolean;
  /** The policy snapshot the request runs with (JSON-serialisable). */
  policy: unknown;
  /** What a message needs later (caller number, location…), JSON-serialisable. Cleared when the request gets its outcome. */
  context: unknown;
}

export interface AttemptStart {
  attemptId: string;
  requestId: string;
  /** 1-based over the whole request. */
  n: number;
  stage: ContactStage;
  region: string;
  target: string;
  startedAt: number;
}

export interface AttemptEnd {
  outcome: AttemptOutcome;
  /** SIP status of the final response, when there was one. */
  status: number | null;
  reason: string | null;
  endedAt: number;
  /** Time of the 200 (answer), when answered. */
  answeredAt: number | null;
  crossedCancel: boolean;
}

export interface RequestRow extends RequestStart {
  outcome: RequestOutcome | null;
  outcomeStage: ContactStage | null;
  outcomeRegion: string | null;
  outcomeAt: number | null;
}

export interface AttemptRow extends AttemptStart {
  firstResponseAt: number | null;
  outcome: AttemptOutcome | null;
  status: number | null;
  reason: string | null;
  endedAt: number | null;
  answeredAt: number | null;
  crossedCancel: boolean;
}

export type OutboxState = 'pending' | 'delivered' | 'failed';

export interface OutboxCommit {
  requestId: string;
  type: MessageType;
  region: string;
  /** Message endpoints of the region: primary first, then the secondary (if any). */
  endpoints: string[];
  /** The message JSON (text). */
  payload: string;
  createdAt: number;
  /** When undelivered by then, the delivery escalates. */
  escalateAt: number;
  test: boolean;
}

export interface OutboxRow {
  /** `${requestId}:${type}`: the Idempotency-Key. */
  key: string;
  requestId: string;
  type: MessageType;
  region: string;
  endpoints: string[];
  /** null once delivered (purged to metadata). */
  payload: string | null;
  state: OutboxState;
  tries: number;
  nextAt: number;
  escalateAt: number;
  escalated: boolean;
  /** Endpoints that answered a permanent failure (4xx other than 408/429) for this message. */
  failedEndpoints: string[];
  lastError: string | null;
  createdAt: number;
  deliveredAt: number | null;
  deliveredTo: string | null;
  test: boolean;
}

/** The outbox, as the delivery worker and the core use it. */
export interface Outbox {
  /** Durably store a message before anything else happens. Idempotent on the key: returns the existing row (and false) if already there. */
  commitMessage(m: OutboxCommit): { row: OutboxRow; created: boolean };
  /** Pending messages due at `now`, oldest first. A follow-up is not due while its request's `no-contact` message is undelivered. */
  due(now: number, limit?: number): OutboxRow[];
  /** Earliest nextAt of the pending rows that could become due (null: none). */
  nextDueAt(): number | null;
  /** Pending rows whose escalateAt has passed and that are not yet escalated. */
  escalationsDue(now: number): OutboxRow[];
  delivered(key: string, endpoint: string, at: number): void;
  retryLater(key: string, nextAt: number, error: string): void;
  endpointFailed(key: string, endpoint: string, error: string): void;
  escalated(key: string, at: number): void;
  /** Every endpoint failed permanently: state 'failed' until an operator retries. */
  failed(key: string, error: string): void;
  get(key: string): OutboxRow | null;
  list(filter: 'pending' | 'failed' | 'delivered' | 'all', limit?: number): OutboxRow[];
  /** Operator retry: failed (and pending) rows back to pending, due now, endpoint failures forgotten. Returns the keys touched. */
  retry(key?: string, now?: number): string[];
  backlog(): { pending: number; failed: number; oldestCreatedAt: number | null };
}
