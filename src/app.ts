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
  /** Apply a new, already validated config to new calls. */
  reload(config: Config): void;
  stop(): Promise<void>;
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
      id: r.id, name: r.name, code: r.code, targets: r.targets, ringTimerS: r.ringTimerS,
      auth: r.auth ? { username: r.auth.username, password: r.auth.password, realm: r.auth.realm ?? undefined } : null,
      outboundProxy: r.outboundProxy,
    })),
    routing: c.routing,
    featureCode: c.conference.featureCode,
    interDigitMs: c.conference.interDigitMs,
    infoTrigger: c.conference.trigger.info,
    rtpTrigger: c.conference.trigger.rtp,
  };
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

  const b2bua = new B2bua(endpoint, resolver, bus, b2buaOptions(config, timers), log, media);
  const conference = new ConferenceService(bus, b2bua, media, conferenceOptions(config), log);
  b2bua.keepCitizenWhile = (callId) => conference.inProgress(callId);

  let prober = new TargetProber(endpoint, resolver, bus, probeTargets(config), config.probes);
  prober.start();

  bus.on('call.started', (e) => log.info({ callId: e.callId, trunk: e.facts.trunk, from: e.facts.paiNumber ?? e.facts.fromNumber }, '112 call'));
  bus.on('call.answered', (e) => log.info({ callId: e.callId, desk: e.desk, user: e.user }, 'answered by call taker'));
  bus.on('call.desk-changed', (e) => log.info({ callId: e.callId, desk: e.desk, via: e.via }, 'desk changed'));
  bus.on('call.rejected', (e) => log.warn(e, 'call rejected'));
  bus.on('conference.attempt', (e) => log.info(e, `attempt ${e.phase}`));
  bus.on('conference.refused', (e) => log.warn(e, 'conference-in refused'));
  bus.on('target.health', (e) => (e.up ? log.info(e, 'target up') : log.warn(e, 'target down')));

  const listeners = transport.bound;
  log.info({ listeners, version: VERSION }, 'amk-bridge listening');

  return {
    bus, listeners, b2bua, conference, transport, endpoint, media,
    get prober() {
      return prober;
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
      conference.reconfigure(conferenceOptions(next));
      prober.stop();
      prober = new TargetProber(endpoint, resolver, bus, probeTargets(next), next.probes);
      prober.start();
      log.info({ node: next.node }, 'configuration reloaded');
    },
    async stop() {
      prober.stop();
      b2bua.hangupAll();
      // Give the BYEs a moment to leave before the sockets close.
      await new Promise((r) => setTimeout(r, 50));
      endpoint.shutdown();
      await transport.close();
      await media.stop();
    },
  };
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
