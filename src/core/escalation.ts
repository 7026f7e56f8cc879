// The `delivery-escalated` follow-up of a request that is no longer running here (its call
// ended long ago, or the bridge restarted since): rebuilt from the stored no-contact message,
// which is still in the outbox because it has not been delivered.
import type { OutboxRow } from '../journal/types.js';
import type { RequestJournal } from './ports.js';
import { buildMessage, type AmkMessage, type AttemptLogEntry, type MessageContext } from '../domain/message.js';

const ms = (iso: string | null): number | null => (iso === null ? null : Date.parse(iso));

export function contextFromMessage(m: AmkMessage): { ctx: MessageContext; attempts: AttemptLogEntry[] } {
  const loc = m.location;
  return {
    ctx: {
      requestId: m.requestId, incidentId: m.incident.id, emergencyCallId: m.call.id,
      node: m.psap.node, desk: m.psap.desk, region: m.region,
      caller: { number: m.call.callerNumber, uri: m.call.callbackUri },
      location: loc === null ? null : { pidfLo: 'pidfLo' in loc ? loc.pidfLo : null, reference: 'reference' in loc ? loc.reference : null },
      recontact: m.recontact === null ? null : { count: m.recontact.count, lastAt: Date.parse(m.recontact.last) },
      test: m.test,
    },
    attempts: m.attempts.map((a) => ({
      attemptId: a.attemptId, n: a.n, stage: a.stage, region: a.region, target: a.target,
      startedAt: Date.parse(a.started), firstResponseAt: ms(a.firstResponse), answeredAt: ms(a.answered), endedAt: ms(a.ended),
      outcome: a.outcome, status: a.sipStatus, reason: a.reason,
    })),
  };
}

/** Commit the follow-up; false when the no-contact payload is gone (then it was delivered). */
export function escalationFollowUp(journal: RequestJournal, noContact: OutboxRow, e: { at: number; reason: 'deadline' | 'permanent-failure'; detail: string }): boolean {
  const row = journal.get(noContact.key) ?? noContact;
  if (!row.payload) return false;
  const { ctx, attempts } = contextFromMessage(JSON.parse(row.payload) as AmkMessage);
  const msg = buildMessage(ctx, { type: 'delivery-escalated', createdAt: e.at, updatedAt: e.at, attempts, escalation: e });
  journal.commitMessage({
    requestId: row.requestId, type: 'delivery-escalated', region: row.region, endpoints: row.endpoints,
    payload: JSON.stringify(msg), createdAt: e.at, escalateAt: e.at + Math.max(0, row.escalateAt - row.createdAt), test: row.test,
  });
  return true;
}
