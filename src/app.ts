// The composition root: builds every adapter around the core and wires them with events.
import type { Config } from './config/schema.js';
import type { Logger } from './log.js';
import { SipTransport, type BoundListener } from './sip/transport.js';
import { SipEndpoint } from './sip/endpoint.js';
import { SipResolver } from './sip/resolver.js';
import { B2bua } from './sip/b2bua.js';
import { TargetProber, type ProbeTarget } from './sip/prober.js';
import { EventBus } from './core/events.js';
import { ConferenceService, type ConferenceOptions } from './core/conference.js';
import { recoverUnfinished } from './core/recovery.js';
import { escalationFollowUp } from './core/escalation.js';
import { Journal } from './journal/journal.js';
import { scheduleJournalPrune } from './journal/prune.js';
import { MessageDelivery } from './notify/delivery.js';
import { EndpointProber } from './notify/endpoint-prober.js';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { RecontactStore } from './recontact/store.js';
import { loadRecontactKeys } from './recontact/keys.js';
import { toE164 } from './domain/e164.js';
import { startLamps, type Lamps } from './lamps/lamps.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './mqtt/broker.js';
import { MqttDiagnostics } from './mqtt/diagnostics.js';
import { EventLoopMonitor, Counters } from './mqtt/health.js';
import type { HealthSnapshot } from './mqtt/types.js';
import type { MetricsServer } from './metrics/metrics.js';
import { bridgeCommands } from './commands.js';
import { redactSecrets } from './config/secrets.js';
import { configJsonSchema } from './config/json-schema.js';
import { loadConfig, formatConfigErrors } from './config/load.js';
import { VERSION } from './version.js';
import { MediaAdapter, type MediaSettings } from './media/media-adapter.js';

export interface Bridge {
  readonly bus: EventBus;
  readonly listeners: readonly BoundListener[];
  /** Port of the first listener of a transport (tests bind port 0). */
  port(transport: 'udp' | 'tcp'): number;
  readonly b2bua: B2bua;
  readonly conference: ConferenceService;
  readonly prober: TargetProber;
  readonly transport: SipTransport;
  readonly endpoint: SipEndpoint;
  readonly media: MediaAdapter;
  readonly journal: Journal;
  readonly delivery: MessageDelivery;
  readonly endpoints: EndpointProber;
  readonly lamps: Lamps;
  readonly mqtt: MqttDiagnostics | null;
  /** The embedded broker's port (null: none runs). */
  readonly brokerPort: number | null;
  readonly metricsPort: number | null;
  health(): HealthSnapshot;
  /** Apply a new, already validated config to new calls. */
  reload(config: Config): void;
  /**
   * Stop. With `drain`, first refuse new calls (503 + Retry-After, OPTIONS 503 for the edge)
   * and wait, with no time limit, until the calls in progress have ended.
   */
  /** A reload was refused (invalid file): fault lamp and alarm; the running config stays. */
  reloadRefused(reason: string): void;
  stop(opts?: { drain?: boolean }): Promise<void>;
}

export interface StartOptions {
  logger: Logger;
  configPath?: string;
  /** DNS servers for SIP resolution (tests); default: the system's. */
  dnsServers?: string[];
}

function conferenceOptions(c: Config): ConferenceOptions {
  return {
    node: c.node,
    regions: c.regions.map((r) => ({
      id: r.id, name: r.name, code: r.code, targets: r.targets, bufferTargets: r.bufferTargets,
      attempts: r.attempts, bufferAttempts: r.bufferAttempts, ringTimerS: r.ringTimerS, spacingS: r.spacingS,
      escalationS: r.escalationS, messageEndpoints: r.messageEndpoints, overflow: r.overflow,
      auth: r.auth ? { username: r.auth.username, password: r.auth.password, realm: r.auth.realm ?? undefined } : null,
      outboundProxy: r.outboundProxy,
    })),
    routing: c.routing,
    featureCode: c.conference.featureCode,
    abortCode: c.conference.abortCode,
    retryCode: c.conference.retryCode,
    interDigitMs: c.conference.interDigitMs,
    infoTrigger: c.conference.trigger.info,
    rtpTrigger: c.conference.trigger.rtp,
    test: c.messages.test,
  };
}

function messageEndpointUrls(c: Config): string[] {
  const urls = new Set<string>();
  for (const r of c.regions) {
    urls.add(r.messageEndpoints.primary);
    if (r.messageEndpoints.secondary) urls.add(r.messageEndpoints.secondary);
  }
  return [...urls];
}

function probeTargets(c: Config): ProbeTarget[] {
  const out: ProbeTarget[] = [];
  for (const t of c.trunks) if (t.probe) out.push({ id: t.id, kind: 'trunk', uri: t.probe });
  if (c.callTakers.probe) out.push({ id: 'calltakers', kind: 'calltaker', uri: c.callTakers.target });
  for (const r of c.regions) {
    if (!r.probe) continue;
    r.targets.forEach((uri, i) => out.push({ id: `${r.id}#${i + 1}`, kind: 'region', uri }));
  }
  return out;
}

export async function startBridge(config: Config, opts: StartOptions): Promise<Bridge> {
  const log = opts.logger;
  const t = config.sip.timers;
  const timers = { t1: t.t1Ms, t2: t.t2Ms, t4: t.t4Ms, timeout: t.timerBMs };
  const transport = await SipTransport.listen(config.sip.listen, {
    maxMessageBytes: config.sip.maxMessageBytes,
    onLog: (level, msg, extra) => log[level](extra ?? {}, msg),
  });
  const endpoint = new SipEndpoint(transport, timers, {
    userAgent: `${config.sip.userAgent}/${VERSION}`,
    publicAddress: config.sip.publicAddress,
  });
  const resolver = new SipResolver({ servers: opts.dnsServers });
  const bus = new EventBus();
  let media: MediaAdapter;
  try {
    media = await MediaAdapter.start(mediaSettings(config), bus, log);
  } catch (err) {
    await transport.close();
    throw err;
  }

  let journal: Journal;
  try {
    // The context key file is created when missing; a bad one stops the start, naming the file.
    journal = Journal.open(config.journal.path, { contextKeyFile: config.journal.contextKeyFile, warn: (obj, msg) => log.warn(obj, msg) });
  } catch (err) {
    await media.stop();
    await transport.close();
    throw new Error(`cannot open the journal ${config.journal.path}: ${(err as Error).message}`);
  }
  const ca = config.messages.caFile ? readFileSync(config.messages.caFile) : null;

  let lamps: Lamps;
  try {
    lamps = await startLamps(config.lamps, bus, log);
  } catch (err) {
    journal.close();
    await media.stop();
    await transport.close();
    throw err;
  }
  // Messages undelivered past their escalation deadline light the system lamp.
  const backlogTimer = setInterval(() => {
    const now = Date.now();
    lamps.service.backlog(journal.list('pending', 1000).filter((r) => r.escalateAt <= now).length + journal.backlog().failed);
  }, 5000);
  backlogTimer.unref();

  const b2bua = new B2bua(endpoint, resolver, bus, b2buaOptions(config, timers), log, media);
  // Delivery reports go to the bus and back to the request that committed the message.
  let conference: ConferenceService | null = null;
  const delivery = new MessageDelivery(journal, {
    timeoutMs: config.messages.timeoutMs, backoff: config.messages.backoff, caFile: config.messages.caFile,
    authorization: config.messages.authorization,
  }, {
    delivered: (row, url, latencyMs) => {
      bus.emit('message.delivered', { requestId: row.requestId, callId: conference?.callOf(row.requestId) ?? null, key: row.key, type: row.type, endpoint: url, latencyMs, at: Date.now() });
      conference?.messageDelivered(row.requestId, row.type);
    },
    retrying: (row, url, error, nextAt) => log.warn({ key: row.key, endpoint: url, error, retryInMs: nextAt - Date.now() }, 'message delivery failed; will retry'),
    escalated: (row, reason, detail) => {
      const at = Date.now();
      bus.emit('message.escalated', { requestId: row.requestId, callId: conference?.callOf(row.requestId) ?? null, key: row.key, type: row.type, reason, detail, at });
      bus.emit('alarm', { kind: 'message-escalated', text: `message ${row.key} not delivered (${reason}: ${detail}); phone the region`, requestId: row.requestId, at });
      if (!conference?.messageEscalated(row.requestId, row.type, reason, detail) && row.type === 'no-contact') {
        escalationFollowUp(journal, row, { at, reason, detail });
        delivery.kick();
      }
    },
    failed: (row, error) => {
      const at = Date.now();
      bus.emit('message.failed', { requestId: row.requestId, callId: conference?.callOf(row.requestId) ?? null, key: row.key, type: row.type, error, at });
      bus.emit('alarm', { kind: 'message-failed', text: `message ${row.key} refused by every endpoint: ${error}; run "amk-bridge outbox retry" when fixed`, requestId: row.requestId, at });
    },
  }, log);
  let recontact: RecontactStore | null = null;
  if (config.recontact.enabled) {
    try {
      recontact = openRecontact(config);
    } catch (err) {
      // Re-contact flagging is advice for the region; without it calls go on unflagged.
      log.error({ err }, 're-contact flagging off: its store or key could not be opened');
      bus.emit('alarm', { kind: 'recontact', text: `re-contact flagging off: ${(err as Error).message}`, at: Date.now() });
    }
  }
  // Hourly: forget expired re-contact sightings, and fold the journal's WAL into the file so
  // purged payloads do not linger in old WAL frames.
  const pruneTimer = setInterval(() => {
    recontact?.prune(Date.now());
    journal.checkpoint();
  }, 3600_000);
  pruneTimer.unref();
  // Retention: journal rows older than journal.retentionDays go, shortly after the start and then
  // every journal.pruneIntervalMin (a failure is logged and tried again at the next interval).
  const journalPrune = scheduleJournalPrune(journal, config.journal, log);
  const cc = config.recontact.defaultCountryCode;
  conference = new ConferenceService({
    bus, dialer: b2bua, tones: media, journal, delivery, log,
    recontact: recontact ? (number, at) => recontact!.seen(toE164(number, cc), at) : undefined,
  }, conferenceOptions(config));
  const conf = conference;
  b2bua.keepCitizenWhile = (callId) => conf.inProgress(callId);

  // Nothing ends in silence: unfinished requests of a previous run get their message now, and
  // the outbox is replayed.
  const recovered = recoverUnfinished(journal, delivery, bus, log);
  if (recovered) log.warn({ recovered }, 'unfinished requests from before the restart: messages committed');
  delivery.start();

  let endpoints = new EndpointProber(messageEndpointUrls(config), { intervalS: config.messages.probeIntervalS, timeoutMs: config.messages.timeoutMs, ca }, (s) => bus.emit('endpoint.health', s));
  endpoints.start();

  let prober = new TargetProber(endpoint, resolver, bus, probeTargets(config), config.probes);
  prober.start();

  bus.on('call.started', (e) => log.info({ callId: e.callId, trunk: e.facts.trunk, from: e.facts.paiNumber ?? e.facts.fromNumber }, '112 call'));
  bus.on('call.answered', (e) => log.info({ callId: e.callId, desk: e.desk, user: e.user }, 'answered by call taker'));
  bus.on('call.desk-changed', (e) => log.info({ callId: e.callId, desk: e.desk, via: e.via }, 'desk changed'));
  bus.on('call.rejected', (e) => log.warn(e, 'call rejected'));
  bus.on('conference.attempt', (e) => log.info(e, `attempt ${e.n} ${e.phase}`));
  bus.on('conference.refused', (e) => log.warn(e, 'conference-in refused'));
  bus.on('message.delivered', (e) => log.info(e, `message ${e.type} delivered`));
  bus.on('alarm', (e) => log.error(e, `alarm: ${e.text}`));
  bus.on('endpoint.health', (e) => (e.up ? log.info(e, 'message endpoint up') : log.warn(e, 'message endpoint down')));
  bus.on('target.health', (e) => (e.up ? log.info(e, 'target up') : log.warn(e, 'target down')));

  // Diagnostics for technicians: health from real state, MQTT and (opt-in) Prometheus. A broker
  // that is down never holds up the start or a call: the client connects in the background.
  const startedAt = Date.now();
  const loop = new EventLoopMonitor();
  loop.start();
  const counters = new Counters();
  counters.attach(bus);
  let mqtt: MqttDiagnostics | null = null;
  let currentConfig = config;
  const health = (): HealthSnapshot => {
    const b = journal.backlog();
    const mem = process.memoryUsage();
    const sys = lamps.service.systemState();
    return {
      node: currentConfig.node, version: VERSION, at: new Date().toISOString(), uptimeS: Math.round((Date.now() - startedAt) / 1000),
      targets: prober.states().map((x) => ({ id: x.id, kind: x.kind, uri: x.uri, up: x.up, since: x.since, lastStatus: x.lastStatus })),
      messageEndpoints: endpoints.status().map((x) => ({ url: x.url, up: x.up, since: x.since, lastStatus: x.lastStatus, lastError: x.lastError })),
      serialPorts: lamps.ports.status().map((x) => ({ id: x.id, path: x.path, open: x.open, since: x.since, lastError: x.lastError })),
      outbox: { pending: b.pending, failed: b.failed, oldestAgeS: b.oldestCreatedAt === null ? null : Math.round((Date.now() - b.oldestCreatedAt) / 1000) },
      eventLoopLagMs: loop.snapshot(),
      memory: { rssMb: Math.round(mem.rss / 1048576), heapUsedMb: Math.round(mem.heapUsed / 1048576) },
      calls: { active: b2bua.activeCalls },
      lamps: { system: sys.state, faults: sys.faults },
      counters: counters.snapshot(),
      mqtt: mqtt ? { dropped: mqtt.stats().dropped, queued: mqtt.stats().queued } : { dropped: 0, queued: 0 },
    };
  };
  let bridge: Bridge | null = null;
  const reloadFromFile = async (): Promise<void> => {
    if (!opts.configPath) throw new Error('no configuration file to reload (started without one)');
    const loaded = await loadConfig(opts.configPath);
    if (!loaded.ok) {
      const text = formatConfigErrors(opts.configPath, loaded.errors);
      bridge?.reloadRefused(text);
      throw new Error(text);
    }
    bridge?.reload(loaded.config);
  };
  const commands = bridgeCommands({ conference: conf, journal, lamps, health, reload: reloadFromFile });
  let broker: EmbeddedBroker | null = null;
  const m = config.mqtt;
  if (m.enabled) {
    try {
      if (m.embedded.enabled) broker = await startEmbeddedBroker({ host: m.embedded.host, port: m.embedded.port });
      const url = broker ? `mqtt://${m.embedded.host}:${broker.port}` : m.url;
      if (!url) throw new Error('mqtt.url is required when mqtt.embedded.enabled is false');
      mqtt = new MqttDiagnostics({
        url, username: m.username, password: m.password, ca: m.caFile ? readFileSync(m.caFile) : null,
        // The embedded broker (aedes) speaks MQTT 3.1.1 only.
        protocolVersion: broker ? 4 : 5,
        baseTopic: m.baseTopic ?? `amk-bridge/${config.node}`, commandPrefix: m.commandPrefix,
        healthIntervalS: m.healthIntervalS, pseudonymise: m.pseudonymise, queueLimit: m.queueLimit,
        clientId: `amk-bridge-${config.node}-${process.pid}`,
      }, {
        bus, health, commands,
        info: () => ({ version: VERSION, node: currentConfig.node, startedAt: new Date(startedAt).toISOString(), config: redactSecrets(currentConfig), configSchema: configJsonSchema() }),
      }, log);
      mqtt.start();
    } catch (err) {
      // Diagnostics must never stop the bridge: report and go on without them.
      log.error({ err }, 'MQTT diagnostics not started');
      bus.emit('alarm', { kind: 'mqtt', text: `MQTT diagnostics not started: ${(err as Error).message}`, at: Date.now() });
    }
  }
  let metrics: MetricsServer | null = null;
  if (config.metrics.enabled) {
    try {
      // Loaded only when enabled: prom-client and its default collectors cost memory and start time.
      const { startMetrics } = await import('./metrics/metrics.js');
      metrics = await startMetrics(config.metrics, bus, {
        activeCalls: () => b2bua.activeCalls,
        backlog: () => health().outbox,
        targets: () => prober.states().map((x) => ({ id: x.id, kind: x.kind, up: x.up })),
        eventLoopLagMs: () => loop.snapshot().p99,
        stats: (from, to) => journal.stats({ from, to, by: 'day', now: to }),
      });
    } catch (err) {
      log.error({ err }, 'metrics listener not started');
      bus.emit('alarm', { kind: 'metrics', text: `metrics not started: ${(err as Error).message}`, at: Date.now() });
    }
  }

  const listeners = transport.bound;
  log.info({ listeners, version: VERSION }, 'amk-bridge listening');

  bridge = {
    bus, listeners, b2bua, conference: conf, transport, endpoint, media, journal, delivery, lamps, mqtt, health,
    brokerPort: broker?.port ?? null,
    metricsPort: metrics?.port ?? null,
    get prober() {
      return prober;
    },
    get endpoints() {
      return endpoints;
    },
    port(kind) {
      const l = listeners.find((x) => x.transport === kind);
      if (!l) throw new Error(`no ${kind} listener`);
      return l.port;
    },
    reload(next: Config) {
      // Listeners and timers need a restart; routing, regions, desks and probes apply at once
      // to new calls, while calls in progress keep the policy they started with.
      b2bua.reconfigure(b2buaOptions(next, timers));
      media.reconfigure(mediaSettings(next));
      conf.reconfigure(conferenceOptions(next));
      endpoints.stop();
      endpoints = new EndpointProber(messageEndpointUrls(next), { intervalS: next.messages.probeIntervalS, timeoutMs: next.messages.timeoutMs, ca }, (s) => bus.emit('endpoint.health', s));
      endpoints.start();
      prober.stop();
      prober = new TargetProber(endpoint, resolver, bus, probeTargets(next), next.probes);
      prober.start();
      lamps.service.reconfigure(next.lamps);
      currentConfig = next;
      bus.emit('config.applied', { at: Date.now() });
      log.info({ node: next.node }, 'configuration reloaded');
    },
    reloadRefused(reason: string) {
      bus.emit('alarm', { kind: 'config-error', text: `reload refused, running configuration kept: ${reason.split('\n')[0]}`, at: Date.now() });
    },
    async stop(o: { drain?: boolean } = {}) {
      if (o.drain) {
        b2bua.draining = true;
        log.info({ calls: b2bua.activeCalls }, 'draining: new calls get 503; waiting for the calls in progress to end');
        while (b2bua.activeCalls > 0) await new Promise((r) => setTimeout(r, 200));
      }
      prober.stop();
      endpoints.stop();
      b2bua.hangupAll();
      // Give the BYEs a moment to leave before the sockets close.
      await new Promise((r) => setTimeout(r, 50));
      conf.stop();
      endpoint.shutdown();
      await transport.close();
      await media.stop();
      // Deliveries in flight finish (bounded); anything left is replayed at the next start.
      await delivery.stop();
      clearInterval(backlogTimer);
      await lamps.stop();
      // Last: the retained "offline" state and the broker.
      await mqtt?.stop();
      await broker?.close();
      await metrics?.close();
      loop.stop();
      clearInterval(pruneTimer);
      journalPrune.stop();
      recontact?.close();
      journal.close();
    },
  };
  return bridge;
}

/** The re-contact store; a missing key file gets a fresh random key (readable by us only). */
function openRecontact(c: Config): RecontactStore {
  const r = c.recontact;
  if (!existsSync(r.keyFile)) {
    mkdirSync(dirname(r.keyFile), { recursive: true });
    writeFileSync(r.keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  }
  const store = RecontactStore.open(r.path, { windowMs: r.windowH * 3600_000, keys: loadRecontactKeys(r.keyFile, r.previousKeyFile) });
  store.prune(Date.now());
  return store;
}

function mediaSettings(c: Config): MediaSettings {
  return { ...c.media };
}

function b2buaOptions(config: Config, timers: { t1: number; t2: number; t4: number; timeout: number }) {
  const deskByUser = new Map<string, string>();
  for (const d of config.desks) for (const u of d.users) deskByUser.set(u, d.id);
  return {
    callTakerTarget: config.callTakers.target,
    trunks: config.trunks.map((x) => ({ id: x.id, networks: x.networks })),
    callTakerNetworks: config.callTakers.networks,
    deskByUser,
    prack: config.sip.prack,
    sessionTimer: config.sip.sessionTimer,
    timers,
    drainRetryAfterS: config.sip.drainRetryAfterS,
  };
}
