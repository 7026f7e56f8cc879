// The technicians' commands (MQTT requests) carried out on the running bridge. Part of the
// composition root: it reaches into the adapters the way the CLI does, through their own APIs.
import type { BridgeCommands, HealthSnapshot } from './mqtt/types.js';
import type { ConferenceService } from './core/conference.js';
import type { Journal } from './journal/journal.js';
import type { Lamps } from './lamps/lamps.js';
import { MESSAGE_ORDER } from './journal/types.js';

export interface CommandDeps {
  conference: ConferenceService;
  journal: Journal;
  lamps: Lamps;
  health(): HealthSnapshot;
  /** Re-read, validate and apply the config file; throws with the errors when invalid. */
  reload(): Promise<void>;
}

const DAY = 24 * 3600 * 1000;

export function bridgeCommands(d: CommandDeps): BridgeCommands {
  const callFor = (args: { desk?: string; callId?: string }): string => {
    if (args.callId) return args.callId;
    if (!args.desk) throw new Error('give desk or callId');
    const call = d.conference.callOfDesk(args.desk);
    if (!call) throw new Error(`no call in progress at desk ${args.desk}`);
    return call;
  };
  return {
    healthCheck: () => d.health(),
    async lampTest({ stepMs }) {
      let steps = 0;
      await d.lamps.service.lampTest(stepMs ?? 1500, () => steps++);
      return { steps };
    },
    async reload() {
      await d.reload();
      return { applied: true };
    },
    conferenceIn(args) {
      const r = d.conference.requestConferenceIn(callFor(args), { region: args.region, trigger: 'cti' });
      if (!r.ok) throw new Error(r.error);
      return { requestId: r.requestId, region: r.region };
    },
    abort(args) {
      const r = d.conference.abort(callFor(args));
      if (!r.ok) throw new Error(r.error);
      return { requestId: r.requestId };
    },
    stats({ from, to }) {
      const end = to ? Date.parse(to) : Date.now();
      const start = from ? Date.parse(from) : end - DAY;
      // The national counting method, as `amk-bridge stats` prints it, by day; plus raw counts.
      const stats = d.journal.stats({ from: start, to: end, by: 'day', now: Date.now() });
      return { from: new Date(start).toISOString(), to: new Date(end).toISOString(), ...d.journal.summary(start, end), totals: stats.totals, buckets: stats.buckets };
    },
    outbox({ state, limit }) {
      const rows = state ? d.journal.list(state, limit ?? 100) : [...d.journal.list('pending', limit ?? 100), ...d.journal.list('failed', limit ?? 100)];
      // Metadata only: payloads carry the caller's number.
      return { backlog: d.journal.backlog(), messages: rows.map(({ payload: _p, ...meta }) => meta) };
    },
    outboxRetry({ key }) {
      return { keys: d.journal.retry(key) };
    },
    incident({ id }) {
      const found = d.journal.find(id);
      if (!found.length) throw new Error(`no request matches ${id}`);
      if (found.length > 1) throw new Error(`${found.length} requests match ${id}: ${found.map((r) => r.requestId).join(', ')}`);
      const r = found[0]!;
      const { context: _c, policy: _p, ...request } = r;
      return {
        request,
        attempts: d.journal.attempts(r.requestId),
        messages: d.journal.messages(r.requestId).sort((a, b) => MESSAGE_ORDER[a.type] - MESSAGE_ORDER[b.type]).map(({ payload: _x, ...meta }) => meta),
      };
    },
  };
}
