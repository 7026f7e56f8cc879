// What the lamps show. A desk lamp follows the conference-in request on that desk; the system
// lamp shows faults a technician must look at. Pure: states in, colours and modes out.
import type { LampMode } from '../lamps/types.js';

/** The desk lamp's states, as the call taker reads them. */
export const DESK_STATES = [
  'idle',
  'dialing',
  'redialing',
  'connected',
  'no-contact-pending',
  'no-contact-delivered',
  'escalation',
  'overflow-dialing',
  'overflow-connected',
] as const;
export type DeskState = (typeof DESK_STATES)[number];

export const SYSTEM_STATES = ['ok', 'fault', 'alarm'] as const;
export type SystemState = (typeof SYSTEM_STATES)[number];

/** Logical lamp colours; a desk maps each to an output of its device. */
export const COLOURS = ['red', 'amber', 'green', 'blue', 'white', 'buzzer'] as const;
export type Colour = (typeof COLOURS)[number];

/** A lamp picture: the colours that are lit and how; any other colour is off. */
export type Appearance = Partial<Record<Colour, LampMode>>;

/** Defaults for a three-colour tower (red/amber/green); config may override any state. */
export const DEFAULT_DESK_APPEARANCE: Record<DeskState, Appearance> = {
  idle: {},
  dialing: { amber: 'flash' },
  redialing: { amber: 'on' },
  connected: { green: 'on' },
  'no-contact-pending': { red: 'flash' },
  'no-contact-delivered': { red: 'on' },
  escalation: { red: 'flash', amber: 'flash', buzzer: 'on' },
  'overflow-dialing': { amber: 'flash', green: 'flash' },
  'overflow-connected': { green: 'flash' },
};

export const DEFAULT_SYSTEM_APPEARANCE: Record<SystemState, Appearance> = {
  ok: { green: 'on' },
  fault: { red: 'on' },
  alarm: { red: 'flash', buzzer: 'on' },
};

/** The request events the desk lamp follows (see core/events.ts `request.state`). */
export type RequestDisplay =
  | 'dialing' | 'waiting' | 'connected' | 'no-contact' | 'overflow-dialing' | 'overflow-connected' | 'aborted'
  | 'message-delivered' | 'escalation';

/** The desk lamp for a request's news. `attempt` is the attempt number the news is about. */
export function deskStateFor(display: RequestDisplay, attempt: number, current: DeskState): DeskState {
  switch (display) {
    case 'dialing':
      return attempt > 1 ? 'redialing' : 'dialing';
    case 'waiting':
      return 'redialing';
    case 'connected':
      return 'connected';
    case 'no-contact':
      // An escalation already shown stays until the message is delivered.
      return current === 'escalation' ? current : 'no-contact-pending';
    case 'message-delivered':
      // A delivery after an overflow contact does not take the overflow picture away.
      return current === 'overflow-connected' || current === 'overflow-dialing' ? current : 'no-contact-delivered';
    case 'escalation':
      return 'escalation';
    case 'overflow-dialing':
      return 'overflow-dialing';
    case 'overflow-connected':
      return 'overflow-connected';
    case 'aborted':
      return 'idle';
  }
}

/**
 * When the call ends, the desk lamp goes dark, except for what the call taker must still act on:
 * an escalation (phone the region) or a message not yet delivered.
 */
export function deskStateAfterCall(current: DeskState): DeskState {
  return current === 'escalation' || current === 'no-contact-pending' ? current : 'idle';
}

/** The system lamp from the faults present: any alarm wins over faults. */
export function systemStateFor(faults: ReadonlyMap<string, 'fault' | 'alarm'>): SystemState {
  let s: SystemState = 'ok';
  for (const level of faults.values()) {
    if (level === 'alarm') return 'alarm';
    s = 'fault';
  }
  return s;
}

/** The mode of every mapped output for an appearance (outputs not lit are off). */
export function outputsFor<O>(appearance: Appearance, outputs: Partial<Record<Colour, O>>): [O, LampMode][] {
  const out: [O, LampMode][] = [];
  for (const c of COLOURS) {
    const o = outputs[c];
    if (o !== undefined) out.push([o, appearance[c] ?? 'off']);
  }
  return out;
}
