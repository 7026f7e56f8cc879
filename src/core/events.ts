// Typed events between the adapters and the core. Adapters publish what happened on the wire;
// the core (and later lamps, MQTT, statistics) subscribe. Nothing here does I/O.
import { EventEmitter } from 'node:events';

/** What the routing rules may look at on an inbound 112 call. */
export interface CallFacts {
  requestUri: string;
  requestUriUser: string | null;
  toUser: string | null;
  fromNumber: string | null;
  paiNumber: string | null;
  trunk: string | null;
  source: string;
  /** Raw values of every header line, by lower-case name. */
  header(name: string): string[];
}

export interface BridgeEvents {
  'call.started': { callId: string; facts: CallFacts; at: number };
  'call.answered': { callId: string; desk: string | null; user: string | null; at: number };
  'call.desk-changed': { callId: string; desk: string | null; user: string | null; via: 'refer' | 're-invite' | 'update'; at: number };
  'call.calltaker-left': { callId: string; at: number };
  'call.ended': { callId: string; reason: string; by: 'citizen' | 'calltaker' | 'bridge' | 'timeout'; at: number };
  'call.digit': { callId: string; digit: string; via: 'info' | 'rtp' };
  'call.rejected': { source: string; status: number; reason: string };
  'target.health': { id: string; kind: 'trunk' | 'calltaker' | 'region'; uri: string; up: boolean; since: number; lastStatus: number | null };
  'conference.attempt': { callId: string; attemptId: string; region: string; target: string; phase: 'started' | 'ringing' | 'answered' | 'failed' | 'cancelled'; status?: number; reason?: string; crossedCancel?: boolean; at: number };
  'conference.refused': { callId: string; reason: string };
}

export type BridgeEventName = keyof BridgeEvents;

export class EventBus {
  private readonly ee = new EventEmitter();

  constructor() {
    this.ee.setMaxListeners(100);
  }

  emit<K extends BridgeEventName>(name: K, payload: BridgeEvents[K]): void {
    this.ee.emit(name, payload);
  }

  on<K extends BridgeEventName>(name: K, fn: (payload: BridgeEvents[K]) => void): () => void {
    this.ee.on(name, fn);
    return () => this.ee.off(name, fn);
  }

  once<K extends BridgeEventName>(name: K, fn: (payload: BridgeEvents[K]) => void): void {
    this.ee.once(name, fn);
  }
}
