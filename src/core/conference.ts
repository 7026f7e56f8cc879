// The conference-in entry point. Reached from the call taker's feature code (SIP INFO digits
// now; RTP digits and MQTT later). This first version dials the region's target once with a
// ring timer; the counted two-attempt procedure with the no-contact message replaces the body
// of `run` while the entry point and its events stay.
import { randomUUID } from 'node:crypto';
import type { EventBus, CallFacts } from './events.js';
import { Router, type Routing } from '../domain/routing.js';
import { FeatureCodeCollector } from '../domain/feature-code.js';
import type { DialOutEvents, DialOutOptions, RegionLeg } from '../sip/b2bua.js';
import type { Credentials } from '../sip/digest.js';
import type { ToneName } from '../media/types.js';

/** Private tones to the call taker (the media adapter implements it). */
export interface ToneControl {
  tone(callId: string, tone: ToneName | null): void;
}

/** What the core needs from the SIP adapter. */
export interface Dialer {
  dialOut(callId: string, opts: DialOutOptions, events: DialOutEvents): RegionLeg | null;
  /** Re-check whether a call with no call taker can end now. */
  release(callId: string): void;
}

export interface RegionPolicy {
  id: string;
  name: string;
  code: string;
  targets: string[];
  ringTimerS: number;
  auth: Credentials | null;
  outboundProxy: string | null;
}

export interface ConferenceOptions {
  node: string;
  regions: RegionPolicy[];
  routing: Routing;
  featureCode: string;
  interDigitMs: number;
  infoTrigger: boolean;
  rtpTrigger: boolean;
}

export interface Log {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

interface CallState {
  facts: CallFacts;
  home: string;
  collector: FeatureCodeCollector;
  digitTimer: NodeJS.Timeout | null;
  running: Running | null;
  ended: boolean;
}

interface Running {
  requestId: string;
  region: RegionPolicy;
  leg: RegionLeg | null;
  ringTimer: NodeJS.Timeout | null;
  outcome: 'pending' | 'contact' | 'no-contact' | 'aborted';
}

export type ConferenceResult = { ok: true; requestId: string; region: string } | { ok: false; error: string };

export class ConferenceService {
  private readonly calls = new Map<string, CallState>();
  private router: Router;
  private opts: ConferenceOptions;

  constructor(
    private readonly bus: EventBus,
    private readonly dialer: Dialer,
    private readonly tones: ToneControl,
    opts: ConferenceOptions,
    private readonly log: Log,
  ) {
    this.opts = opts;
    this.router = new Router(opts.routing);
    bus.on('call.started', (e) => this.onCallStarted(e.callId, e.facts));
    bus.on('call.digit', (e) => {
      if (e.via === 'info' ? this.opts.infoTrigger : this.opts.rtpTrigger) this.onDigit(e.callId, e.digit);
    });
    bus.on('call.ended', (e) => this.onCallEnded(e.callId));
  }

  /** New policy for new calls; calls in progress keep the one they started with. */
  reconfigure(opts: ConferenceOptions): void {
    this.opts = opts;
    this.router = new Router(opts.routing);
  }

  /** True while a conference-in of this call has no outcome yet (keeps the citizen's leg up). */
  inProgress(callId: string): boolean {
    return this.calls.get(callId)?.running?.outcome === 'pending';
  }

  private onCallStarted(callId: string, facts: CallFacts): void {
    const { region } = this.router.route(facts);
    this.calls.set(callId, {
      facts, home: region, collector: new FeatureCodeCollector(this.opts.featureCode),
      digitTimer: null, running: null, ended: false,
    });
  }

  private onDigit(callId: string, digit: string): void {
    const st = this.calls.get(callId);
    if (!st) return;
    if (st.digitTimer) clearTimeout(st.digitTimer);
    st.digitTimer = null;
    const r = st.collector.push(digit);
    if (r.kind === 'pending') {
      st.digitTimer = setTimeout(() => {
        st.digitTimer = null;
        const t = st.collector.timeout();
        if (t.kind === 'conference') this.requestConferenceIn(callId, {});
      }, this.opts.interDigitMs);
    } else if (r.kind === 'conference') {
      const region = r.regionCode ? this.opts.regions.find((x) => x.code === r.regionCode)?.id : undefined;
      if (r.regionCode && !region) {
        this.bus.emit('conference.refused', { callId, reason: `no region with code ${r.regionCode}` });
        return;
      }
      this.requestConferenceIn(callId, { region });
    } else if (r.kind === 'invalid') {
      this.log.debug({ callId, digits: r.digits }, 'digits are not a feature code');
    }
  }

  /** The entry point: conference the region (home region unless named) into the call. */
  requestConferenceIn(callId: string, opts: { region?: string }): ConferenceResult {
    const st = this.calls.get(callId);
    if (!st || st.ended) return this.refuse(callId, 'no such call');
    if (st.running?.outcome === 'pending') return this.refuse(callId, 'a conference-in is already running');
    const regionId = opts.region ?? st.home;
    const region = this.opts.regions.find((r) => r.id === regionId);
    if (!region) return this.refuse(callId, `unknown region ${regionId}`);
    const run: Running = { requestId: randomUUID(), region, leg: null, ringTimer: null, outcome: 'pending' };
    st.running = run;
    this.log.info({ callId, requestId: run.requestId, region: region.id }, 'conference-in requested');
    this.attempt(callId, st, run);
    return { ok: true, requestId: run.requestId, region: region.id };
  }

  private refuse(callId: string, reason: string): ConferenceResult {
    this.bus.emit('conference.refused', { callId, reason });
    this.tones.tone(callId, 'refused');
    return { ok: false, error: reason };
  }

  private attempt(callId: string, st: CallState, run: Running): void {
    const region = run.region;
    const target = region.targets[0]!;
    const attemptId = randomUUID();
    const emit = (phase: 'started' | 'ringing' | 'answered' | 'failed' | 'cancelled', extra: { status?: number; reason?: string; crossedCancel?: boolean } = {}) =>
      this.bus.emit('conference.attempt', { callId, attemptId, region: region.id, target, phase, at: Date.now(), ...extra });
    let ringing = false;
    const leg = this.dialer.dialOut(callId, {
      attemptId, target, credentials: region.auth, outboundProxy: region.outboundProxy,
      headers: this.regionHeaders(st.facts),
    }, {
      ringing: () => {
        if (!ringing) emit('ringing');
        ringing = true;
      },
      answered: (_res, crossed) => {
        if (run.ringTimer) clearTimeout(run.ringTimer);
        // A 200 that crossed our CANCEL is contact: no later attempt started, no message committed.
        run.outcome = 'contact';
        leg?.join();
        this.tones.tone(callId, 'connected');
        emit('answered', { crossedCancel: crossed });
      },
      failed: (status, reason, info) => {
        if (run.ringTimer) clearTimeout(run.ringTimer);
        if (run.outcome === 'pending') run.outcome = 'no-contact';
        this.tones.tone(callId, status === 486 || status === 600 ? 'busy' : 'message-failed');
        emit(info.cancelled ? 'cancelled' : 'failed', { status, reason });
        this.dialer.release(callId);
      },
      ended: () => this.dialer.release(callId),
    });
    if (!leg) {
      run.outcome = 'aborted';
      return;
    }
    run.leg = leg;
    this.tones.tone(callId, 'ringing');
    emit('started');
    run.ringTimer = setTimeout(() => {
      run.ringTimer = null;
      this.log.info({ callId, attemptId }, 'ring timer expired: cancelling attempt');
      leg.cancel('SIP;cause=408;text="ring timer"');
    }, region.ringTimerS * 1000);
  }

  /** Resource priority, emergency identifiers (created as URNs when missing) and identity. */
  private regionHeaders(f: CallFacts): [string, string][] {
    const h: [string, string][] = [['Resource-Priority', 'esnet.1']];
    const callInfo = f.header('call-info');
    const has = (purpose: string) => callInfo.some((v) => new RegExp(`purpose\\s*=\\s*${purpose}\\b`, 'i').test(v));
    for (const v of callInfo) h.push(['Call-Info', v]);
    if (!has('emergency-IncidentId')) h.push(['Call-Info', `<urn:emergency:uid:incidentid:${randomUUID().replace(/-/g, '')}:${this.opts.node}>;purpose=emergency-IncidentId`]);
    if (!has('emergency-CallId')) h.push(['Call-Info', `<urn:emergency:uid:callid:${randomUUID().replace(/-/g, '')}:${this.opts.node}>;purpose=emergency-CallId`]);
    const pai = f.header('p-asserted-identity');
    for (const v of pai) h.push(['P-Asserted-Identity', v]);
    // A trunk that sent no PAI: the PSAP asserts the identity it received in From.
    const from = f.header('from')[0];
    if (!pai.length && from && !/anonymous/i.test(from)) h.push(['P-Asserted-Identity', from.replace(/;\s*tag=[^;]*/i, '')]);
    for (const v of f.header('privacy')) h.push(['Privacy', v]);
    return h;
  }

  private onCallEnded(callId: string): void {
    const st = this.calls.get(callId);
    if (!st) return;
    st.ended = true;
    if (st.digitTimer) clearTimeout(st.digitTimer);
    const run = st.running;
    if (run?.outcome === 'pending') {
      if (run.ringTimer) clearTimeout(run.ringTimer);
      run.leg?.cancel('SIP;cause=487;text="call ended"');
    }
    this.calls.delete(callId);
  }
}
