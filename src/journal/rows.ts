// Mapping between the journal's SQLite rows (snake_case, 0/1 booleans, JSON text) and the
// types of ./types.ts.

import type { AttemptOutcome, AttemptRow, ContactStage, MessageType, OutboxRow, OutboxState, RequestOutcome, RequestRow, RequestStart } from './types.js';

export interface RequestRecord {
  request_id: string;
  call_id: string;
  incident_id: string;
  emergency_call_id: string;
  node: string;
  desk: string | null;
  region: string;
  trigger: string;
  started_at: number;
  test: number;
  policy: string;
  context: string | null;
  outcome: string | null;
  outcome_stage: string | null;
  outcome_region: string | null;
  outcome_at: number | null;
}

export interface AttemptRecord {
  attempt_id: string;
  request_id: string;
  n: number;
  stage: string;
  region: string;
  target: string;
  started_at: number;
  first_response_at: number | null;
  outcome: string | null;
  status: number | null;
  reason: string | null;
  ended_at: number | null;
  answered_at: number | null;
  crossed_cancel: number;
}

export interface OutboxRecord {
  key: string;
  request_id: string;
  type: string;
  region: string;
  endpoints: string;
  payload: string | null;
  state: string;
  tries: number;
  next_at: number;
  escalate_at: number;
  escalated: number;
  escalated_at: number | null;
  failed_endpoints: string;
  last_error: string | null;
  created_at: number;
  delivered_at: number | null;
  delivered_to: string | null;
  test: number;
}

/** JSON text or NULL; `undefined` (a missing context) is stored as NULL too. */
export function toJson(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(value);
}

export function fromJson(text: string | null): unknown {
  return text === null ? null : (JSON.parse(text) as unknown);
}

export function requestParams(r: RequestStart): Record<string, unknown> {
  return {
    request_id: r.requestId,
    call_id: r.callId,
    incident_id: r.incidentId,
    emergency_call_id: r.emergencyCallId,
    node: r.node,
    desk: r.desk,
    region: r.region,
    trigger: r.trigger,
    started_at: r.startedAt,
    test: r.test ? 1 : 0,
    policy: JSON.stringify(r.policy ?? null),
    context: toJson(r.context),
  };
}

export function toRequestRow(r: RequestRecord): RequestRow {
  return {
    requestId: r.request_id,
    callId: r.call_id,
    incidentId: r.incident_id,
    emergencyCallId: r.emergency_call_id,
    node: r.node,
    desk: r.desk,
    region: r.region,
    trigger: r.trigger as RequestRow['trigger'],
    startedAt: r.started_at,
    test: r.test !== 0,
    policy: fromJson(r.policy),
    context: fromJson(r.context),
    outcome: r.outcome as RequestOutcome | null,
    outcomeStage: r.outcome_stage as ContactStage | null,
    outcomeRegion: r.outcome_region,
    outcomeAt: r.outcome_at,
  };
}

export function toAttemptRow(r: AttemptRecord): AttemptRow {
  return {
    attemptId: r.attempt_id,
    requestId: r.request_id,
    n: r.n,
    stage: r.stage as ContactStage,
    region: r.region,
    target: r.target,
    startedAt: r.started_at,
    firstResponseAt: r.first_response_at,
    outcome: r.outcome as AttemptOutcome | null,
    status: r.status,
    reason: r.reason,
    endedAt: r.ended_at,
    answeredAt: r.answered_at,
    crossedCancel: r.crossed_cancel !== 0,
  };
}

export function toOutboxRow(r: OutboxRecord): OutboxRow {
  return {
    key: r.key,
    requestId: r.request_id,
    type: r.type as MessageType,
    region: r.region,
    endpoints: JSON.parse(r.endpoints) as string[],
    payload: r.payload,
    state: r.state as OutboxState,
    tries: r.tries,
    nextAt: r.next_at,
    escalateAt: r.escalate_at,
    escalated: r.escalated !== 0,
    failedEndpoints: JSON.parse(r.failed_endpoints) as string[],
    lastError: r.last_error,
    createdAt: r.created_at,
    deliveredAt: r.delivered_at,
    deliveredTo: r.delivered_to,
    test: r.test !== 0,
  };
}
