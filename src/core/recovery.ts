// After a restart (a crash, kill -9, power loss): every request the journal holds without an
// outcome gets its no-contact message now, reason `bridge-restart`. The calls themselves are
// gone with the process; the region must call the citizen back. Nothing ends in silence.
import type { EventBus } from './events.js';
import type { Log, MessageSink, RequestJournal } from './ports.js';
import type { ProcedurePolicy } from '../domain/policy.js';
import { buildMessage, messageKey, type AttemptLogEntry, type MessageContext } from '../domain/message.js';

export function recoverUnfinished(journal: RequestJournal, delivery: MessageSink, bus: EventBus, log: Log, now = Date.now()): number {
  let n = 0;
  for (const req of journal.openRequests()) {
    const ctx = journal.context(req.requestId) as MessageContext | null;
    const policy = req.policy as ProcedurePolicy | null;
    if (!ctx || !policy?.home) {
      // Cannot happen with a journal this version wrote; say so loudly rather than guess.
      log.error({ requestId: req.requestId }, 'unfinished request without context: cannot build its message');
      bus.emit('alarm', { kind: 'recovery', text: `request ${req.requestId} has no stored context`, requestId: req.requestId, at: now });
      continue;
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
