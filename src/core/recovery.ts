// After a restart (a crash, kill -9, power loss): every request the journal holds without an
// outcome gets its no-contact message now, reason `bridge-restart`. The calls themselves are
// gone with the process; the region must call the citizen back. Nothing ends in silence.
import type { EventBus } from './events.js';
import type { Log, MessageSink, RequestJournal } from './ports.js';
import type { ProcedurePolicy } from '../domain/policy.js';
import type { RequestRow } from '../journal/types.js';
import { buildMessage, messageKey, type AttemptLogEntry, type MessageContext } from '../domain/message.js';

export function recoverUnfinished(journal: RequestJournal, delivery: MessageSink, bus: EventBus, log: Log, now = Date.now()): number {
  let n = 0;
  for (const req of journal.openRequests()) {
    const policy = req.policy as ProcedurePolicy | null;
    if (!policy?.home) {
      // Without its policy there is no region or endpoint to address. Cannot happen with a
      // journal this version wrote; say so loudly rather than guess.
      log.error({ requestId: req.requestId }, 'unfinished request without policy: cannot build its message');
      bus.emit('alarm', { kind: 'recovery', text: `request ${req.requestId} has no stored policy`, requestId: req.requestId, at: now });
      continue;
    }
    let ctx = journal.context(req.requestId) as MessageContext | null;
    if (!ctx) {
      // The caller data is gone or cannot be unsealed (another key file): the message still goes
      // out with what the request row holds, so the region knows of the case; the call taker
      // must give it the caller's number.
      ctx = contextFromRequest(req, policy);
      log.error({ requestId: req.requestId }, 'unfinished request without readable context: message sent without caller data');
      bus.emit('alarm', { kind: 'recovery', text: `request ${req.requestId}: caller data unreadable; its no-contact message has no caller number`, requestId: req.requestId, at: now });
    }
    const attempts: AttemptLogEntry[] = journal.attempts(req.requestId).map((a) => {
      if (a.endedAt === null) {
        journal.attemptEnded(a.attemptId, { outcome: 'cancelled', status: null, reason: 'bridge restart', endedAt: now, answeredAt: null, crossedCancel: false });
      }
      return {
        attemptId: a.attemptId, n: a.n, stage: a.stage, region: a.region, target: a.target, startedAt: a.startedAt,
        firstResponseAt: a.firstResponseAt, answeredAt: a.answeredAt, endedAt: a.endedAt ?? now,
        outcome: a.outcome ?? 'cancelled', status: a.status, reason: a.reason ?? 'bridge restart',
      };
    });
    const msg = buildMessage(ctx, { type: 'no-contact', reason: 'bridge-restart', createdAt: now, updatedAt: now, attempts });
    journal.commitMessage({
      requestId: req.requestId, type: 'no-contact', region: policy.home.id, endpoints: policy.home.messageEndpoints,
      payload: JSON.stringify(msg), createdAt: now, escalateAt: now + policy.home.escalationMs, test: req.test,
    }, { outcome: 'no-contact', at: now });
    n++;
    log.warn({ requestId: req.requestId, callId: req.callId }, 'request unfinished at restart: no-contact message committed (bridge-restart)');
    bus.emit('message.committed', { requestId: req.requestId, callId: null, key: messageKey(req.requestId, 'no-contact'), type: 'no-contact', region: policy.home.id, at: now });
    bus.emit('request.ended', { requestId: req.requestId, callId: req.callId, outcome: 'no-contact', stage: null, region: policy.home.id, attempts: attempts.length, at: now });
  }
  if (n) delivery.kick();
  return n;
}

/** What a message can say without the stored context: ids, node, desk and region from the row. */
function contextFromRequest(req: RequestRow, policy: ProcedurePolicy): MessageContext {
  return {
    requestId: req.requestId, incidentId: req.incidentId, emergencyCallId: req.emergencyCallId, node: req.node, desk: req.desk,
    region: { id: policy.home.id, name: policy.home.name },
    caller: { number: null, uri: null }, location: null, recontact: null, test: req.test,
  };
}
