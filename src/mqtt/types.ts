// The MQTT adapter's contract: what the bridge offers to technicians' commands, and the health
// snapshot it publishes. The composition root implements BridgeCommands over the core.

export type CommandName =
  | 'health_check' | 'lamp_test' | 'reload' | 'conference_in' | 'abort'
  | 'stats' | 'outbox' | 'outbox/retry' | 'incident';

export const COMMANDS: readonly CommandName[] = ['health_check', 'lamp_test', 'reload', 'conference_in', 'abort', 'stats', 'outbox', 'outbox/retry', 'incident'];

/** `bridge/response/<cmd>` payload (zigbee2mqtt style). */
export interface CommandResponse {
  status: 'ok' | 'error';
  data: unknown;
  error?: string;
  transaction?: string | number;
}

export interface TargetHealth {
  id: string;
  kind: 'trunk' | 'calltaker' | 'region';
  uri: string;
  up: boolean | null;
  since: number | null;
  lastStatus: number | null;
}

export interface HealthSnapshot {
  node: string;
  version: string;
  at: string;
  uptimeS: number;
  targets: TargetHealth[];
  messageEndpoints: { url: string; up: boolean | null; since: number | null; lastStatus: number | null; lastError: string | null }[];
  serialPorts: { id: string; path: string; open: boolean; since: number; lastError: string | null }[];
  outbox: { pending: number; failed: number; oldestAgeS: number | null };
  eventLoopLagMs: { p50: number; p99: number; max: number };
  memory: { rssMb: number; heapUsedMb: number };
  calls: { active: number };
  lamps: { system: string; faults: string[] };
  counters: Record<string, number>;
  mqtt: { dropped: number; queued: number };
}

/** What a command may do; each returns the response data or throws an Error whose message is the error text. */
export interface BridgeCommands {
  healthCheck(): HealthSnapshot;
  lampTest(args: { stepMs?: number }): Promise<{ steps: number }>;
  /** Re-read and validate the config file, then apply it; throws with every error if invalid. */
  reload(): Promise<{ applied: true }>;
  conferenceIn(args: { desk?: string; callId?: string; region?: string }): { requestId: string; region: string };
  abort(args: { desk?: string; callId?: string }): { requestId: string };
  stats(args: { from?: string; to?: string }): unknown;
  outbox(args: { state?: 'pending' | 'failed' | 'delivered' | 'all'; limit?: number }): unknown;
  outboxRetry(args: { key?: string }): { keys: string[] };
  incident(args: { id: string }): unknown;
}
