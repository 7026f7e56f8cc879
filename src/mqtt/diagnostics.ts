// Diagnostics and commands over MQTT, zigbee2mqtt style, under a base topic:
//
//   bridge/state            retained {"state":"online"|"offline"} (offline is also the last will)
//   bridge/info             retained source.info() (version, node, config without secrets, ...)
//   bridge/health           retained source.health(), every healthIntervalS
//   bridge/event            {type: <bus event>, ...payload}: requests, attempts, messages, alarms
//   lamp/<desk>             retained {state, at}
//   <commandPrefix>/<cmd>   requests, answered on bridge/response/<cmd> {status, data, error?, transaction?}
//
// The broker is never on the call path: bus handlers only serialise and hand over (or queue),
// every error is logged and swallowed, and nothing waits for the broker. While it is away,
// events and responses wait in a bounded queue that drops the oldest first (and counts the
// drops); the retained topics are not queued but published afresh on every connect.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import './packet-numbers.js';
import type { BridgeEventName, BridgeEvents, EventBus } from '../core/events.js';
import { COMMANDS, type BridgeCommands, type CommandName, type CommandResponse, type HealthSnapshot } from './types.js';
import { Pseudonymiser, scrub } from './pseudonym.js';

export interface MqttDiagnosticsOptions {
  /** mqtt://host:port or mqtts://host:port */
  url: string;
  username?: string | null;
  password?: string | null;
  /** CA certificate(s) for mqtts; null: the system CAs. */
  ca?: Buffer | null;
  /** 4 (MQTT 3.1.1; required by the embedded aedes broker) or 5. */
  protocolVersion: 4 | 5;
  baseTopic: string;
  /** Under the base topic; '' takes commands directly under it. */
  commandPrefix: string;
  healthIntervalS: number;
  pseudonymise: boolean;
  /** Events and responses kept while the broker is away. */
  queueLimit: number;
  clientId?: string;
}

export interface DiagnosticsSource {
  bus: EventBus;
  info(): object;
  health(): HealthSnapshot;
  commands: BridgeCommands;
}

export interface DiagnosticsLog {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
  error(o: object, m?: string): void;
}

/** Bus events published on bridge/event as they are (scrubbed). */
export const PUBLISHED_EVENTS = [
  'request.started', 'request.state', 'request.ended',
  'conference.attempt',
  'message.committed', 'message.delivered', 'message.escalated', 'message.failed',
  'alarm',
  'target.health', 'endpoint.health', 'lamp.port',
] as const satisfies readonly BridgeEventName[];

/** Publications awaiting their PUBACK beyond which events wait in the queue (a stalled broker). */
const MAX_INFLIGHT = 64;
const RECONNECT_MS = 1000;
const STOP_TIMEOUT_MS = 2000;
/** A repeated connection error is logged again after this long. */
const ERROR_LOG_REPEAT_MS = 60_000;

interface Pending {
  topic: string;
  payload: string;
}

/** A FIFO with O(1) push and shift (the queue may hold up to a million entries). */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(v: T): void {
    this.items.push(v);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const v = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return v;
  }
}

type Args = Record<string, unknown>;
type Check = (v: unknown, name: string) => string | null;

interface CommandSpec {
  args: Record<string, Check>;
  /** Checks across arguments, after each argument passed its own check. */
  check?(a: Args): string | null;
  run(c: BridgeCommands, a: Args): unknown;
}

const text: Check = (v, n) => (typeof v === 'string' && v.trim() !== '' && v.length <= 200 ? null : `"${n}" must be a non-empty string`);
const integer = (lo: number, hi: number): Check => (v, n) =>
  (typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi ? null : `"${n}" must be an integer from ${lo} to ${hi}`);
const oneOf = (...values: string[]): Check => (v, n) =>
  (typeof v === 'string' && values.includes(v) ? null : `"${n}" must be one of ${values.join(', ')}`);
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;
const isoDate: Check = (v, n) =>
  (typeof v === 'string' && ISO_DATE.test(v) && !Number.isNaN(Date.parse(v)) ? null : `"${n}" must be an ISO 8601 date or time, e.g. 2025-01-31 or 2025-01-31T08:00:00Z`);
const deskOrCall = (a: Args) => (a.desk === undefined && a.callId === undefined ? 'needs "desk" or "callId"' : null);

const SPECS: Record<CommandName, CommandSpec> = {
  health_check: { args: {}, run: (c) => c.healthCheck() },
  lamp_test: { args: { stepMs: integer(10, 10_000) }, run: (c, a) => c.lampTest(a as { stepMs?: number }) },
  reload: { args: {}, run: (c) => c.reload() },
  conference_in: {
    args: { desk: text, callId: text, region: text },
    check: deskOrCall,
    run: (c, a) => c.conferenceIn(a as { desk?: string; callId?: string; region?: string }),
  },
  abort: { args: { desk: text, callId: text }, check: deskOrCall, run: (c, a) => c.abort(a as { desk?: string; callId?: string }) },
  stats: {
    args: { from: isoDate, to: isoDate },
    check: (a) => (typeof a.from === 'string' && typeof a.to === 'string' && Date.parse(a.from) > Date.parse(a.to) ? '"from" must not be after "to"' : null),
    run: (c, a) => c.stats(a as { from?: string; to?: string }),
  },
  outbox: {
    args: { state: oneOf('pending', 'failed', 'delivered', 'all'), limit: integer(1, 10_000) },
    run: (c, a) => c.outbox(a as { state?: 'pending' | 'failed' | 'delivered' | 'all'; limit?: number }),
  },
  'outbox/retry': { args: { key: text }, run: (c, a) => c.outboxRetry(a as { key?: string }) },
  incident: {
    args: { id: text },
    check: (a) => (a.id === undefined ? 'needs "id" (a request id)' : null),
    run: (c, a) => c.incident(a as { id: string }),
  },
};

/** Validates a request's arguments (without `transaction`); the error text, or null. */
export function validateCommand(cmd: CommandName, args: Args): string | null {
  const spec = SPECS[cmd];
  const known = Object.keys(spec.args);
  for (const [k, v] of Object.entries(args)) {
    const check = spec.args[k];
    if (!check) return `unknown argument "${k}" (${cmd} takes ${known.length ? known.join(', ') : 'no arguments'})`;
    if (v === undefined) continue;
    const err = check(v, k);
    if (err) return err;
  }
  return spec.check?.(args) ?? null;
}

function isCommand(s: string): s is CommandName {
  return (COMMANDS as readonly string[]).includes(s);
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function trimSlashes(s: string): string {
  return s.replace(/^\/+|\/+$/g, '');
}

export class MqttDiagnostics {
  private readonly base: string;
  /** Commands are the remainder of topics that start with this (it ends with '/'). */
  private readonly cmdTopic: string;
  private readonly pseudo: Pseudonymiser | null;
  private readonly queue = new Fifo<Pending>();
  private readonly queueLimit: number;
  private readonly lamps = new Map<string, { state: string; at: number }>();
  private client: MqttClient | null = null;
  private online = false;
  private started = false;
  private stopping: Promise<void> | null = null;
  private inflight = 0;
  private dropped = 0;
  private timer: NodeJS.Timeout | null = null;
  private offs: (() => void)[] = [];
  private lastError: { text: string; at: number } | null = null;

  constructor(
    private readonly opts: MqttDiagnosticsOptions,
    private readonly source: DiagnosticsSource,
    private readonly log: DiagnosticsLog,
  ) {
    this.base = trimSlashes(opts.baseTopic);
    const prefix = trimSlashes(opts.commandPrefix);
    this.cmdTopic = prefix === '' ? `${this.base}/` : `${this.base}/${prefix}/`;
    this.pseudo = opts.pseudonymise ? new Pseudonymiser() : null;
    this.queueLimit = Math.max(1, Math.floor(opts.queueLimit));
    // Listening from here on: lamps and events before the first connect are not missed.
    this.listen();
  }

  /** Connects in the background and keeps reconnecting; never throws. */
  start(): void {
    if (this.started || this.stopping) return;
    this.started = true;
    try {
      const o = this.opts;
      const options: IClientOptions = {
        protocolVersion: o.protocolVersion,
        clientId: o.clientId ?? `amk-bridge_${hostname()}_${randomBytes(4).toString('hex')}`,
        clean: true,
        keepalive: 30,
        connectTimeout: 10_000,
        reconnectPeriod: RECONNECT_MS,
        reconnectOnConnackError: true,
        resubscribe: false, // subscribed on every connect below
        will: { topic: this.topic('bridge/state'), payload: Buffer.from(JSON.stringify({ state: 'offline' })), qos: 1, retain: true },
      };
      if (o.username) options.username = o.username;
      if (o.password) options.password = o.password;
      if (o.ca) options.ca = o.ca;
      const client = connect(o.url, options);
      this.client = client;
      client.on('connect', () => this.guard('connect', () => this.onConnect(client)));
      client.on('close', () => this.guard('close', () => this.onClose()));
      client.on('error', (err) => this.guard('error', () => this.onError(err)));
      client.on('message', (topic, payload, packet) => this.guard('message', () => this.onMessage(topic, payload, packet.retain)));
      this.timer = setInterval(() => this.guard('health', () => this.publishHealth()), Math.max(1, this.opts.healthIntervalS) * 1000);
      this.timer.unref();
    } catch (err) {
      this.log.error({ err: errText(err), url: this.opts.url }, 'MQTT diagnostics cannot start');
    }
  }

  /** Publishes the retained offline state (when connected), then disconnects cleanly. Never rejects. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  stats(): { connected: boolean; dropped: number; queued: number } {
    return { connected: this.online, dropped: this.dropped, queued: this.queue.length };
  }

  // ---- the bus --------------------------------------------------------------------------------

  private listen(): void {
    const bus = this.source.bus;
    for (const name of PUBLISHED_EVENTS) {
      this.offs.push(bus.on(name, (p: BridgeEvents[typeof name]) => this.guard(name, () => this.event(name, p))));
    }
    this.offs.push(bus.on('call.started', (p) => this.guard('call.started', () => {
      const number = p.facts.paiNumber ?? p.facts.fromNumber;
      const caller = number === null ? null : this.pseudo ? this.pseudo.of(number) : number;
      this.enqueue(this.topic('bridge/event'), { type: 'call.started', callId: p.callId, trunk: p.facts.trunk, caller, at: p.at });
    })));
    this.offs.push(bus.on('lamp.changed', (p) => this.guard('lamp.changed', () => {
      const lamp = { state: p.state, at: p.at };
      this.lamps.set(p.lamp, lamp);
      if (this.online) this.send(this.lampTopic(p.lamp), lamp, true);
    })));
    this.offs.push(bus.on('config.applied', () => this.guard('config.applied', () => {
      if (this.online) this.publishInfo();
    })));
  }

  private event(name: string, payload: object): void {
    const { type, ...rest } = scrub(payload, this.pseudo) as Record<string, unknown>;
    // Message events carry their own `type` (the message kind): it becomes messageType.
    const body: Record<string, unknown> = { type: name, ...rest };
    if (type !== undefined) body.messageType = type;
    this.enqueue(this.topic('bridge/event'), body);
  }

  // ---- the connection -------------------------------------------------------------------------

  private onConnect(client: MqttClient): void {
    if (this.stopping || client !== this.client) return;
    this.online = true;
    this.lastError = null;
    this.log.info({ url: this.opts.url, queued: this.queue.length, dropped: this.dropped }, 'MQTT broker connected');
    const sub = `${this.cmdTopic}#`;
    client.subscribe(sub, { qos: 1 }, (err, granted) => this.guard('subscribe', () => {
      if (err) this.log.warn({ err: errText(err), topic: sub }, 'MQTT command subscription failed');
      else if (granted?.some((g) => g.qos === 128)) this.log.error({ topic: sub }, 'the MQTT broker refused the command subscription (ACL?): no commands are taken');
    }));
    this.send(this.topic('bridge/state'), { state: 'online' }, true);
    this.publishInfo();
    this.publishHealth();
    for (const [lamp, state] of this.lamps) this.send(this.lampTopic(lamp), state, true);
    this.pump();
  }

  private onClose(): void {
    if (this.online && !this.stopping) this.log.warn({ url: this.opts.url }, 'MQTT broker connection lost; diagnostics are queued until it is back');
    this.online = false;
  }

  private onError(err: Error): void {
    if (this.stopping) return;
    const text = errText(err);
    const now = Date.now();
    if (this.lastError && this.lastError.text === text && now - this.lastError.at < ERROR_LOG_REPEAT_MS) return;
    this.lastError = { text, at: now };
    this.log.warn({ err: text, url: this.opts.url }, 'MQTT broker unavailable; retrying');
  }

  private async shutdown(): Promise<void> {
    for (const off of this.offs) off();
    this.offs = [];
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const client = this.client;
    if (!client) return;
    try {
      if (this.online) {
        await this.within(STOP_TIMEOUT_MS, (done) => {
          client.publish(this.topic('bridge/state'), JSON.stringify({ state: 'offline' }), { qos: 1, retain: true }, () => done());
        });
      }
      this.online = false;
      const ended = await this.within(STOP_TIMEOUT_MS, (done) => client.end(false, {}, () => done()));
      if (!ended) await this.within(STOP_TIMEOUT_MS, (done) => client.end(true, {}, () => done()));
    } catch (err) {
      this.log.warn({ err: errText(err) }, 'MQTT diagnostics did not stop cleanly');
      try { client.end(true); } catch { /* already ended */ }
    }
    this.online = false;
    this.client = null;
  }

  /** Runs `fn` and waits for its `done`, at most `ms`; true if done came in time. */
  private within(ms: number, fn: (done: () => void) => void): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      try {
        fn(() => { clearTimeout(t); resolve(true); });
      } catch {
        clearTimeout(t);
        resolve(false);
      }
    });
  }

  // ---- publishing -----------------------------------------------------------------------------

  private topic(suffix: string): string {
    return `${this.base}/${suffix}`;
  }

  private lampTopic(lamp: string): string {
    return this.topic(`lamp/${lamp.replace(/[#+\s]/g, '_')}`);
  }

  private stringify(topic: string, value: unknown): string | null {
    try {
      return JSON.stringify(value) ?? 'null';
    } catch (err) {
      this.log.warn({ err: errText(err), topic }, 'MQTT payload cannot be serialised; not published');
      return null;
    }
  }

  /** Publishes now (qos 1). The caller knows we are connected. */
  private send(topic: string, value: unknown, retain: boolean): void {
    const payload = this.stringify(topic, value);
    if (payload !== null) this.write(topic, payload, retain);
  }

  private write(topic: string, payload: string, retain: boolean): void {
    const client = this.client;
    if (!client) return;
    this.inflight++;
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      this.inflight--;
      this.pump();
    };
    try {
      client.publish(topic, payload, { qos: 1, retain }, () => this.guard('published', settle));
    } catch (err) {
      settle();
      this.log.warn({ err: errText(err), topic }, 'MQTT publish failed');
    }
  }

  /** Events and responses: published now if the broker keeps up, else queued (oldest dropped). */
  private enqueue(topic: string, value: unknown): void {
    const payload = this.stringify(topic, value);
    if (payload === null) return;
    if (this.online && this.queue.length === 0 && this.inflight < MAX_INFLIGHT) {
      this.write(topic, payload, false);
      return;
    }
    this.queue.push({ topic, payload });
    while (this.queue.length > this.queueLimit) {
      this.queue.shift();
      this.dropped++;
    }
  }

  private pump(): void {
    while (this.online && this.inflight < MAX_INFLIGHT && this.queue.length > 0) {
      const next = this.queue.shift()!;
      this.write(next.topic, next.payload, false);
    }
  }

  private publishInfo(): void {
    let info: object;
    try {
      info = this.source.info();
    } catch (err) {
      this.log.error({ err: errText(err) }, 'bridge info unavailable; bridge/info not published');
      return;
    }
    this.send(this.topic('bridge/info'), info, true);
  }

  private healthNow(snapshot: HealthSnapshot): HealthSnapshot {
    return scrub({ ...snapshot, mqtt: { dropped: this.dropped, queued: this.queue.length } }, this.pseudo);
  }

  private publishHealth(): void {
    // Skipped while the broker does not keep up: the next one comes soon, and it is retained.
    if (!this.online || this.inflight >= MAX_INFLIGHT) return;
    let health: HealthSnapshot;
    try {
      health = this.source.health();
    } catch (err) {
      this.log.error({ err: errText(err) }, 'health snapshot failed; bridge/health not published');
      return;
    }
    this.send(this.topic('bridge/health'), this.healthNow(health), true);
  }

  // ---- commands -------------------------------------------------------------------------------

  /** Topics we publish ourselves (seen when the command prefix is empty). */
  private ours(topic: string): boolean {
    const rest = topic.slice(this.base.length + 1);
    return rest.startsWith('bridge/response/') || rest.startsWith('lamp/')
      || ['bridge/state', 'bridge/info', 'bridge/health', 'bridge/event'].includes(rest);
  }

  private onMessage(topic: string, payload: Buffer, retained: boolean): void {
    if (!topic.startsWith(this.cmdTopic) || this.ours(topic)) return;
    const cmd = topic.slice(this.cmdTopic.length);
    let args: Args;
    try {
      const raw = payload.toString('utf8').trim();
      const parsed: unknown = raw === '' ? {} : JSON.parse(raw);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        this.respond(cmd, undefined, { error: 'payload must be a JSON object' });
        return;
      }
      args = { ...(parsed as Args) };
    } catch (err) {
      this.respond(cmd, undefined, { error: `payload is not valid JSON: ${errText(err)}` });
      return;
    }
    const transaction = args.transaction;
    delete args.transaction;
    if (transaction !== undefined && typeof transaction !== 'string' && typeof transaction !== 'number') {
      this.respond(cmd, undefined, { error: '"transaction" must be a string or a number' });
      return;
    }
    if (retained) {
      this.respond(cmd, transaction, { error: 'retained request ignored: publish requests without the retain flag' });
      return;
    }
    if (!isCommand(cmd)) {
      this.respond(cmd, transaction, { error: `unknown command "${cmd}"; known commands: ${COMMANDS.join(', ')}` });
      return;
    }
    const invalid = validateCommand(cmd, args);
    if (invalid) {
      this.respond(cmd, transaction, { error: `${cmd}: ${invalid}` });
      return;
    }
    this.log.info({ cmd, args: scrub(args, this.pseudo), transaction }, 'MQTT command');
    const spec = SPECS[cmd];
    // Runs after this handler returns: a slow command never holds up publishing.
    Promise.resolve()
      .then(() => spec.run(this.source.commands, args))
      .then(
        (data) => this.respond(cmd, transaction, { data: cmd === 'health_check' ? this.healthNow(data as HealthSnapshot) : data }),
        (err) => this.respond(cmd, transaction, { error: errText(err) }),
      )
      .catch((err) => this.log.error({ err: errText(err), cmd }, 'MQTT command response failed'));
  }

  private respond(cmd: string, transaction: string | number | undefined, r: { data?: unknown; error?: string }): void {
    const res: CommandResponse = r.error !== undefined
      ? { status: 'error', data: null, error: r.error }
      : { status: 'ok', data: scrub(r.data ?? null, this.pseudo) };
    if (transaction !== undefined) res.transaction = transaction;
    if (res.status === 'error') this.log.warn({ cmd, error: res.error, transaction }, 'MQTT command refused or failed');
    if (!this.stopping) this.enqueue(this.topic(`bridge/response/${cmd}`), res);
  }

  /** Runs `fn`; anything it throws is logged, never passed on (to the bus, or to mqtt.js). */
  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ err: errText(err), what }, 'MQTT diagnostics error (ignored)');
    }
  }
}
