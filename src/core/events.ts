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
  /** The PIDF-LO location body part, when the INVITE carried one. */
  pidfLo: string | null;
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
  'conference.attempt': {
    callId: string; requestId: string; attemptId: string; n: number; region: string; target: string;
    phase: 'started' | 'ringing' | 'answered' | 'failed' | 'cancelled';
    outcome?: 'answered' | 'busy' | 'no-answer' | 'rejected' | 'unreachable' | 'cancelled' | 'citizen-hangup';
    status?: number; reason?: string; crossedCancel?: boolean; at: number;
  };
  'conference.refused': { callId: string; reason: string };
  'request.started': { requestId: string; callId: string; region: string; desk: string | null; trigger: RequestTrigger; at: number };
  /** What the call taker's lamp shows about a request. */
  'request.state': { requestId: string; callId: string; desk: string | null; state: RequestDisplayState; attempt: number; region: string; at: number };
  'request.ended': { requestId: string; callId: string; outcome: 'contact' | 'no-contact' | 'aborted'; stage: 'home' | 'buffer' | 'overflow' | null; region: string | null; attempts: number; at: number };
  'message.committed': { requestId: string; callId: string | null; key: string; type: MessageKind; region: string; at: number };
  'message.delivered': { requestId: string; callId: string | null; key: string; type: MessageKind; endpoint: string; latencyMs: number; at: number };
  'message.escalated': { requestId: string; callId: string | null; key: string; type: MessageKind; reason: 'deadline' | 'permanent-failure'; detail: string; at: number };
  'message.failed': { requestId: string; callId: string | null; key: string; type: MessageKind; error: string; at: number };
  'endpoint.health': { url: string; up: boolean; since: number; lastStatus: number | null; lastError: string | null };
  /** A desk lamp (by desk id) or the system lamp ('system') changed state. */
  'lamp.changed': { lamp: string; state: string; at: number };
  /** A lamp serial port opened or was lost. */
  'lamp.port': { id: string; path: string; open: boolean; error: string | null; at: number };
  /** A configuration was applied (start or reload). */
  'config.applied': { at: number };
  /** Something a technician must look at (MQTT, system lamp, logs). */
  alarm: { kind: string; text: string; requestId?: string; at: number };
}

export type RequestTrigger = 'dtmf' | 'info' | 'cti' | 'auto' | 'restart';
export type RequestDisplayState =
  | 'dialing' | 'waiting' | 'connected' | 'no-contact' | 'overflow-dialing' | 'overflow-connected' | 'aborted'
  | 'message-delivered' | 'escalation';
export type MessageKind = 'no-contact' | 'contact-via-overflow' | 'citizen-hangup' | 'delivery-escalated';

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
