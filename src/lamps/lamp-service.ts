// The lamps adapter: follows the bus (requests, calls, health, alarms), keeps every desk lamp's
// state and the system lamp's faults, and sets the outputs of the serial devices. A slow or
// absent device never reaches back here: LampPort.set() only records and queues.
import type { EventBus } from '../core/events.js';
import {
  DEFAULT_DESK_APPEARANCE, DEFAULT_SYSTEM_APPEARANCE, DESK_STATES, SYSTEM_STATES,
  deskStateAfterCall, deskStateFor, outputsFor, systemStateFor,
  type Appearance, type Colour, type DeskState, type SystemState,
} from '../domain/lamp-state.js';
import type { OutputKey } from './types.js';

export interface LampOutputsConfig {
  port: string;
  outputs: Partial<Record<Colour, OutputKey>>;
}

export interface LampSettings {
  desks: (LampOutputsConfig & { desk: string })[];
  system: LampOutputsConfig | null;
  deskStates: Partial<Record<DeskState, Appearance>>;
  systemStates: Partial<Record<SystemState, Appearance>>;
  idleAfterS: number;
  outboxBacklogAlarm: number;
}

/** What the service needs of the serial ports (LampPorts implements it). */
export interface LampOutputs {
  set(portId: string, output: OutputKey, mode: 'off' | 'on' | 'flash'): void;
}

export interface LampLog {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
}

type Level = 'fault' | 'alarm';

export class LampService {
  private readonly desk = new Map<string, DeskState>();
  private readonly deskOfCall = new Map<string, string>();
  private readonly idleTimers = new Map<string, NodeJS.Timeout>();
  private readonly faults = new Map<string, Level>();
  private system: SystemState = 'ok';
  private readonly off: (() => void)[] = [];
  private testing = false;

  constructor(
    private readonly bus: EventBus,
    private settings: LampSettings,
    private readonly outputs: LampOutputs,
    private readonly log: LampLog,
  ) {
    const on = bus.on.bind(bus);
    this.off.push(
      on('call.answered', (e) => e.desk && this.deskOfCall.set(e.callId, e.desk)),
      on('call.desk-changed', (e) => e.desk && this.deskOfCall.set(e.callId, e.desk)),
      on('request.state', (e) => {
        const desk = e.desk ?? this.deskOfCall.get(e.callId);
        if (!desk) return;
        this.deskOfCall.set(e.callId, desk);
        this.showDesk(desk, deskStateFor(e.state, e.attempt, this.desk.get(desk) ?? 'idle'));
      }),
      on('call.ended', (e) => {
        const desk = this.deskOfCall.get(e.callId);
        this.deskOfCall.delete(e.callId);
        if (desk) this.afterCall(desk);
      }),
      on('target.health', (e) => this.fault(`${e.kind}:${e.id}`, e.up ? null : 'fault')),
      on('endpoint.health', (e) => this.fault(`endpoint:${e.url}`, e.up ? null : 'fault')),
      on('message.escalated', (e) => this.fault(`message:${e.key}`, 'alarm')),
      on('message.failed', (e) => this.fault(`message:${e.key}`, 'alarm')),
      on('message.delivered', (e) => this.fault(`message:${e.key}`, null)),
      on('alarm', (e) => e.kind === 'config-error' && this.fault('config', 'fault')),
      on('config.applied', () => this.fault('config', null)),
      on('lamp.port', (e) => this.fault(`port:${e.id}`, e.open ? null : 'fault')),
    );
    this.renderSystem();
    for (const d of new Set(settings.desks.map((x) => x.desk))) this.showDesk(d, 'idle');
  }

  reconfigure(settings: LampSettings): void {
    this.settings = settings;
    for (const d of new Set(settings.desks.map((x) => x.desk))) this.showDesk(d, this.desk.get(d) ?? 'idle');
    this.renderSystem();
  }

  /** Outbox backlog past escalation (polled by the composition root): a fault while any. */
  backlog(undeliveredPastEscalation: number): void {
    this.fault('outbox', undeliveredPastEscalation >= this.settings.outboxBacklogAlarm ? 'fault' : null);
  }

  deskState(desk: string): DeskState {
    return this.desk.get(desk) ?? 'idle';
  }

  systemState(): { state: SystemState; faults: string[] } {
    return { state: this.system, faults: [...this.faults.keys()] };
  }

  /** Cycle every lamp through its states (`stepMs` each), then show the real state again. */
  async lampTest(stepMs: number, onStep?: (lamp: string, state: string) => void): Promise<void> {
    this.testing = true;
    try {
      for (const state of DESK_STATES) {
        for (const d of this.settings.desks) {
          this.render(d, this.appearanceOfDesk(state));
          onStep?.(d.desk, state);
        }
        await sleep(stepMs);
      }
      if (this.settings.system) {
        for (const state of SYSTEM_STATES) {
          this.render(this.settings.system, this.appearanceOfSystem(state));
          onStep?.('system', state);
          await sleep(stepMs);
        }
      }
    } finally {
      this.testing = false;
      for (const d of this.settings.desks) this.render(d, this.appearanceOfDesk(this.deskState(d.desk)));
      this.renderSystem();
    }
  }

  stop(): void {
    for (const f of this.off) f();
    for (const t of this.idleTimers.values()) clearTimeout(t);
    this.idleTimers.clear();
  }

  // -------------------------------------------------------------------------------------------

  private afterCall(desk: string): void {
    const next = deskStateAfterCall(this.deskState(desk));
    if (next !== 'idle') return;
    // The last picture stays a moment so the call taker sees how it ended.
    const old = this.idleTimers.get(desk);
    if (old) clearTimeout(old);
    const timer = setTimeout(() => {
      this.idleTimers.delete(desk);
      if (deskStateAfterCall(this.deskState(desk)) === 'idle') this.showDesk(desk, 'idle');
    }, this.settings.idleAfterS * 1000);
    timer.unref();
    this.idleTimers.set(desk, timer);
  }

  private showDesk(desk: string, state: DeskState): void {
    const prev = this.desk.get(desk);
    this.desk.set(desk, state);
    if (state !== 'idle') {
      const t = this.idleTimers.get(desk);
      if (t) clearTimeout(t);
      this.idleTimers.delete(desk);
    }
    // A desk may have several lamps (a tower on the desk, a relay panel for the supervisor).
    const lamps = this.settings.desks.filter((d) => d.desk === desk);
    if (!this.testing) for (const lamp of lamps) this.render(lamp, this.appearanceOfDesk(state));
    if (prev !== state) {
      this.bus.emit('lamp.changed', { lamp: desk, state, at: Date.now() });
      if (!lamps.length) this.log.info({ desk, state }, 'desk has no lamp configured');
    }
  }

  private fault(key: string, level: Level | null): void {
    const had = this.faults.get(key);
    if (level === null) this.faults.delete(key);
    else this.faults.set(key, level);
    if (had !== (level ?? undefined)) this.renderSystem();
  }

  private renderSystem(): void {
    const state = systemStateFor(this.faults);
    const changed = state !== this.system;
    this.system = state;
    if (this.settings.system && !this.testing) this.render(this.settings.system, this.appearanceOfSystem(state));
    if (changed) {
      this.bus.emit('lamp.changed', { lamp: 'system', state, at: Date.now() });
      this.log[state === 'ok' ? 'info' : 'warn']({ state, faults: [...this.faults.keys()] }, 'system lamp');
    }
  }

  private appearanceOfDesk(state: DeskState): Appearance {
    return this.settings.deskStates[state] ?? DEFAULT_DESK_APPEARANCE[state];
  }

  private appearanceOfSystem(state: SystemState): Appearance {
    return this.settings.systemStates[state] ?? DEFAULT_SYSTEM_APPEARANCE[state];
  }

  private render(lamp: LampOutputsConfig, a: Appearance): void {
    for (const [output, mode] of outputsFor(a, lamp.outputs)) this.outputs.set(lamp.port, output, mode);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
