// A whole conference-in over real SIP on loopback: a SIPp trunk (the citizen), a SIPp call-taker
// platform that presses *1 by INFO, SIPp regions, the bridge in-process with its own journal, and
// a real HTTP receiver for the messages.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import Ajv from 'ajv';
import type { Test } from 'tap';
import { startSipp, runSipp, type SippHandle, type SippResult } from '../helpers/sipp.js';
import { startTestBridge, waitFor } from '../helpers/bridge.js';
import { startReceiver } from '../helpers/receiver.js';
import type { BridgeEvents } from '../../src/core/events.js';
import type { Config, RegionInput } from '../../src/config/schema.js';
import type { Bridge } from '../../src/app.js';

export { waitFor };

const schema = JSON.parse(readFileSync(resolve(import.meta.dirname, '../../config/message.schema.json'), 'utf8'));
const ajv = new Ajv.default({ allErrors: true, strict: false });
export const validateMessage = ajv.compile(schema);

export interface RegionPeer {
  scenario: string;
  calls?: number;
  keys?: Record<string, string | number>;
}

export interface FlowOptions {
  /** The home region's targets (one SIPp each). */
  home: RegionPeer;
  homeBuffer?: RegionPeer;
  /** An overflow region ("sjaelland", code 02). */
  overflow?: RegionPeer & { policy: 'before-message' | 'after-message' };
  /** Keys merged into the home region's config. */
  region?: Partial<RegionInput>;
  calltaker?: { scenario: string; keys?: Record<string, string | number>; calls?: number };
  trunkHoldMs?: number;
  /** Replace the receiver as the primary endpoint (e.g. a closed port). */
  primaryUrl?: (receiverUrl: string) => string;
  secondary?: boolean;
  messages?: Record<string, unknown>;
  /** Any other config keys (e.g. lamps). */
  config?: Record<string, unknown>;
}

export interface Flow {
  bridge: Bridge;
  /** The configuration the bridge started with (validated, defaults applied). */
  config: Config;
  receiver: Awaited<ReturnType<typeof startReceiver>>;
  home: SippHandle;
  buffer: SippHandle | null;
  overflow: SippHandle | null;
  calltaker: SippHandle;
  trunk: Promise<SippResult>;
  events: { [K in keyof BridgeEvents]?: BridgeEvents[K][] };
  attempts(): BridgeEvents['conference.attempt'][];
  requestId(): Promise<string>;
}

export async function flow(t: Test, o: FlowOptions): Promise<Flow> {
  const receiver = await startReceiver(t);
  const uas = (p: RegionPeer) => startSipp(t, { scenario: p.scenario, calls: p.calls ?? 1, keys: p.keys ?? {}, timeoutS: 30 });
  const home = uas(o.home);
  const buffer = o.homeBuffer ? uas(o.homeBuffer) : null;
  const overflow = o.overflow ? uas(o.overflow) : null;
  const calltaker = startSipp(t, { scenario: o.calltaker?.scenario ?? 'calltaker-info-trigger.xml', calls: o.calltaker?.calls ?? 1, keys: { pause_ms: 200, ...o.calltaker?.keys }, timeoutS: 30 });
  await Promise.all([home.ready, buffer?.ready, overflow?.ready, calltaker.ready]);
  const primary = o.primaryUrl ? o.primaryUrl(receiver.url('/primary')) : receiver.url('/primary');
  const regions: RegionInput[] = [
    {
      id: 'hovedstaden', name: 'Region Hovedstaden', code: '01', probe: false,
      targets: [`sip:amk@127.0.0.1:${home.port}`],
      bufferTargets: buffer ? [`sip:buffer@127.0.0.1:${buffer.port}`] : [],
      ringTimerS: 0.6,
      messageEndpoints: { primary, secondary: o.secondary ? receiver.url('/secondary') : null },
      overflow: o.overflow ? { policy: o.overflow.policy, regions: [{ region: 'sjaelland' }] } : { policy: 'none', regions: [] },
      ...o.region,
    },
    {
      id: 'sjaelland', name: 'Region Sjælland', code: '02', probe: false,
      targets: [`sip:amk@127.0.0.1:${overflow?.port ?? 9}`], ringTimerS: 0.6, attempts: 1,
      messageEndpoints: { primary: receiver.url('/sjaelland') },
    },
  ];
  const { bridge, config } = await startTestBridge(t, {
    callTakerTarget: `sip:1001@127.0.0.1:${calltaker.port}`,
    regions,
    conference: { interDigitMs: 150 },
    ...(o.messages ? { messages: o.messages } : {}),
    ...o.config,
  } as never);
  const events: Flow['events'] = {};
  const record = <K extends keyof BridgeEvents>(k: K) => bridge.bus.on(k, (e) => ((events[k] ??= [] as never) as BridgeEvents[K][]).push(e));
  for (const k of ['lamp.changed', 'lamp.port', 'conference.attempt', 'request.started', 'request.state', 'request.ended', 'message.committed', 'message.delivered', 'message.escalated', 'alarm', 'conference.refused'] as const) record(k);
  const trunk = runSipp(t, { scenario: 'trunk-call.xml', remote: `127.0.0.1:${bridge.port('udp')}`, keys: { hold_ms: o.trunkHoldMs ?? 4000 }, timeoutS: 30 });
  return {
    bridge, config, receiver, home, buffer, overflow, calltaker, trunk, events,
    attempts: () => events['conference.attempt'] ?? [],
    async requestId() {
      await waitFor(() => (events['request.started']?.length ?? 0) > 0, 8000, 'request started');
      return events['request.started']![0]!.requestId;
    },
  };
}

/** The ended attempts in order, as [n, outcome, status]. */
export function attemptLog(f: Flow): [number, string, number | null][] {
  return f.attempts().filter((a) => a.phase !== 'started' && a.phase !== 'ringing').map((a) => [a.n, a.outcome ?? a.phase, a.status ?? null]);
}

export const TEXT = 'Ingen kontakt til AMK';

/** Every message the receiver took: schema-valid, in order, one text-carrying per request. */
export function checkMessages(t: Test, f: Flow, expected: string[]): Record<string, unknown>[] {
  const msgs = f.receiver.accepted().map((r) => r.json as Record<string, unknown>);
  t.same(msgs.map((m) => m.type), expected, 'the expected messages, in order');
  for (const m of msgs) t.ok(validateMessage(m), `schema-valid ${String(m.type)}: ${JSON.stringify(validateMessage.errors)}`);
  const carrying = f.receiver.received.filter((r) => JSON.stringify(r.json).includes(TEXT));
  t.ok(carrying.every((r) => (r.json as { type: string }).type === 'no-contact'), 'only no-contact carries the text');
  t.ok(new Set(carrying.map((r) => r.key)).size <= 1, 'one text-carrying message per request');
  for (const m of msgs) t.equal(m.test, true, 'test messages say so');
  return msgs;
}

export async function settle(f: Flow): Promise<void> {
  await f.trunk;
  await waitFor(() => f.bridge.b2bua.activeCalls === 0, 8000, 'calls ended');
}
