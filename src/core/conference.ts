// The conference-in entry point. Triggers (feature code in RTP or SIP INFO, the CTI command,
// `auto` routes) all come here; each accepted trigger becomes a request run by the procedure.
// A second trigger while one runs is refused with a tone; the abort and retry keys act on the
// running request.
import { randomBytes, randomUUID } from 'node:crypto';
import type { EventBus, CallFacts, RequestTrigger } from './events.js';
import { RequestRun, type RegionReach, type RunDeps } from './request-run.js';
import { Router, type Routing } from '../domain/routing.js';
import { FeatureCodeCollector } from '../domain/feature-code.js';
import type { ProcedurePolicy, RegionPlan } from '../domain/policy.js';
import { callIdentity, type CallIdentity } from '../domain/call-identity.js';
import type { MessageContext } from '../domain/message.js';
import { recontactHeader } from '../recontact/header.js';
import type { Credentials } from '../sip/digest.js';

export type { ToneControl, Dialer } from './ports.js';

export interface RegionPolicy {
  id: string;
  name: string;
  code: string;
  targets: string[];
  bufferTargets: string[];
  attempts: number;
  bufferAttempts: number;
  ringTimerS: number;
  spacingS: number;
  escalationS: number;
  messageEndpoints: { primary: string; secondary: string | null };
  overflow: { policy: 'none' | 'before-message' | 'after-message'; regions: { region: string; attempts: number | null; ringTimerS: number | null }[] };
  auth: Credentials | null;
  outboundProxy: string | null;
}

export interface ConferenceOptions {
  node: string;
  regions: RegionPolicy[];
  routing: Routing;
  featureCode: string;
  abortCode: string;
  retryCode: string;
  interDigitMs: number;
  infoTrigger: boolean;
  rtpTrigger: boolean;
  /** Mark every message test: true. */
  test: boolean;
  /** How long a cancelled attempt may take to end (its 487 or a crossing 200). */
  cancelGraceMs?: number;
}

interface CallState {
  facts: CallFacts;
  identity: CallIdentity;
  recontact: Recontact | null;
  home: string;
  auto: boolean;
  desk: string | null;
  callTakerPresent: boolean;
  collector: FeatureCodeCollector;
  digitTimer: NodeJS.Timeout | null;
  /** Every request of the call; the last one is the current. Kept for late answers until the call ends. */
  runs: RequestRun[];
  ended: boolean;
  opts: ConferenceOptions;
}

const RECENT_REQUESTS = 10_000;

export type ConferenceResult = { ok: true; requestId: string; region: string } | { ok: false; error: string };

export interface Recontact {
  count: number;
  lastAt: number;
}

/** The adapters the conference-in service drives (the runner's, plus the re-contact check). */
export interface ConferenceDeps extends RunDeps {
  /** Once per call: earlier contacts of this caller within the window (null: none, or withheld). */
  recontact?: (callerNumber: string | null, at: number) => Recontact | null;
}

export class ConferenceService {
  private readonly calls = new Map<string, CallState>();
  private readonly runsById = new Map<string, RequestRun>();
  private router: Router;
  private opts: ConferenceOptions;

  constructor(
    private readonly deps: ConferenceDeps,
    opts: ConferenceOptions,
  ) {
    this.opts = opts;
    this.router = new Router(opts.routing);
    const { bus } = deps;
    bus.on('call.started', (e) => this.onCallStarted(e.callId, e.facts));
    bus.on('call.answered', (e) => this.onAnswered(e.callId, e.desk));
    bus.on('call.desk-changed', (e) => this.onDesk(e.callId, e.desk));
    bus.on('call.calltaker-left', (e) => this.onCallTakerLeft(e.callId));
    bus.on('call.digit', (e) => {
      const st = this.calls.get(e.callId);
      const o = st?.opts ?? this.opts;
      if (e.via === 'info' ? o.infoTrigger : o.rtpTrigger) this.onDigit(e.callId, e.digit, e.via);
    });
    bus.on('call.ended', (e) => this.onCallEnded(e.callId, e.by));
  }

  /** New policy for new calls and requests; requests in progress keep their snapshot. */
  reconfigure(opts: ConferenceOptions): void {
    this.opts = opts;
    this.router = new Router(opts.routing);
  }

  /** True while a request of this call has no outcome yet (keeps the citizen's leg up). */
  inProgress(callId: string): boolean {
    const st = this.calls.get(callId);
    const run = st?.runs[st.runs.length - 1];
    return run !== undefined && !run.finished;
  }

  /** The call in progress at a desk (the latest answered there), for CTI commands by desk. */
  callOfDesk(desk: string): string | null {
    let found: string | null = null;
    for (const [callId, st] of this.calls) if (st.desk === desk && !st.ended) found = callId;
    return found;
  }

  /** The call a live request belongs to (for message events). */
  callOf(requestId: string): string | null {
    return this.runsById.get(requestId)?.callId ?? null;
  }

  // -------------------------------------------------------------------------------------------
  // Calls

  private onCallStarted(callId: string, facts: CallFacts): void {
    const { region, auto } = this.router.route(facts);
    const opts = this.opts;
    const identity = callIdentity(facts, opts.node, () => randomBytes(16).toString('hex'));
    const startedAt = Date.now();
    const st: CallState = {
      facts, identity, recontact: null,
      home: region, auto, desk: null, callTakerPresent: false,
      collector: new FeatureCodeCollector(opts.featureCode, { abort: opts.abortCode, retry: opts.retryCode }),
      digitTimer: null, runs: [], ended: false, opts,
    };
    this.calls.set(callId, st);
    // The journal and re-contact writes wait for the next turn, so the INVITE to the call
    // takers is not held up by them; nothing can ask for a conference-in before then.
    setImmediate(() => {
      try {
        st.recontact = this.deps.recontact?.(identity.callerNumber, startedAt) ?? null;
      } catch (err) {
        // A failing re-contact store must never touch the call: it is just not flagged.
        this.deps.log.error({ err, callId }, 're-contact check failed');
      }
      if (st.recontact) this.deps.log.info({ callId, recontact: { count: st.recontact.count } }, 're-contact');
      try {
        this.deps.journal.callSeen?.({ callId, startedAt, trunk: facts.trunk, region, recontact: st.recontact !== null });
      } catch (err) {
        this.deps.log.error({ err, callId }, 'could not record the call in the journal');
      }
    });
  }

  private onAnswered(callId: string, desk: string | null): void {
    const st = this.calls.get(callId);
    if (!st) return;
    st.callTakerPresent = true;
    this.onDesk(callId, desk);
    if (st.auto && st.runs.length === 0) this.requestConferenceIn(callId, { trigger: 'auto' });
  }

  private onDesk(callId: string, desk: string | null): void {
    const st = this.calls.get(callId);
    if (!st) return;
    st.desk = desk;
    for (const r of st.runs) r.setDesk(desk);
  }

  private onCallTakerLeft(callId: string): void {
    const st = this.calls.get(callId);
    if (!st) return;
    st.callTakerPresent = false;
    // The procedure goes on: the message is still sent, and an answering region gets the citizen.
    if (this.inProgress(callId)) this.deps.log.info({ callId }, 'call taker left; the conference-in goes on');
  }

  private onCallEnded(callId: string, by: string): void {
    const st = this.calls.get(callId);
    if (!st) return;
    st.ended = true;
    if (st.digitTimer) clearTimeout(st.digitTimer);
    for (const run of st.runs) {
      if (!run.finished) run.callEnded(by === 'bridge' ? 'bridge-restart' : 'citizen-hangup');
      run.dispose();
    }
    this.calls.delete(callId);
  }

  // -------------------------------------------------------------------------------------------
  // Triggers

  private onDigit(callId: string, digit: string, via: 'info' | 'rtp'): void {
    const st = this.calls.get(callId);
    if (!st) return;
    if (st.digitTimer) clearTimeout(st.digitTimer);
    st.digitTimer = null;
    const trigger: RequestTrigger = via === 'info' ? 'info' : 'dtmf';
    const r = st.collector.push(digit);
    switch (r.kind) {
      case 'pending':
        st.digitTimer = setTimeout(() => {
          st.digitTimer = null;
          const t = st.collector.timeout();
          if (t.kind === 'conference') this.requestConferenceIn(callId, { trigger });
        }, st.opts.interDigitMs);
        return;
      case 'conference': {
        const region = r.regionCode ? st.opts.regions.find((x) => x.code === r.regionCode)?.id : undefined;
        if (r.regionCode && !region) {
          this.refuse(callId, `no region with code ${r.regionCode}`);
          return;
        }
        this.requestConferenceIn(callId, { region, trigger });
        return;
      }
      case 'abort':
        this.abort(callId);
        return;
      case 'retry':
        this.retry(callId);
        return;
      case 'invalid':
        this.deps.log.debug({ callId, digits: r.digits }, 'digits are not a feature code');
        return;
      case 'none':
        return;
    }
  }

  /** The entry point: conference the region (home region unless named) into the call. */
  requestConferenceIn(callId: string, opts: { region?: string; trigger?: RequestTrigger }): ConferenceResult {
    const st = this.calls.get(callId);
    if (!st || st.ended) return this.refuse(callId, 'no such call');
    if (this.inProgress(callId)) return this.refuse(callId, 'a conference-in is already running');
    // A new request takes the policy in force now (a reload applies to new requests).
    const policyOpts = this.opts;
    const regionId = opts.region ?? st.home;
    const home = policyOpts.regions.find((r) => r.id === regionId);
    if (!home) return this.refuse(callId, `unknown region ${regionId}`);
    const requestId = randomUUID();
    const context: MessageContext = {
      requestId, incidentId: st.identity.incidentId, emergencyCallId: st.identity.emergencyCallId,
      node: policyOpts.node, desk: st.desk, region: { id: home.id, name: home.name },
      caller: { number: st.identity.callerNumber, uri: st.identity.callbackUri },
      location: st.identity.location, recontact: st.recontact, test: policyOpts.test,
    };
    const run = new RequestRun(this.deps, {
      callId, trigger: opts.trigger ?? 'cti', policy: procedurePolicy(policyOpts, home), reach: reachOf(policyOpts),
      context, headers: st.recontact ? [...regionHeaders(st.facts, st.identity), recontactHeader(st.recontact)] : regionHeaders(st.facts, st.identity),
    });
    st.runs.push(run);
    this.remember(run);
    this.deps.log.info({ callId, requestId, region: home.id, trigger: opts.trigger }, 'conference-in requested');
    run.start();
    return { ok: true, requestId, region: home.id };
  }

  /** The abort key or command: the running request of the call ends as aborted. */
  abort(callId: string): ConferenceResult {
    const run = this.current(callId);
    if (!run || run.finished) return this.refuse(callId, 'no conference-in is running');
    run.abort();
    return { ok: true, requestId: run.requestId, region: run.home };
  }

  /** The retry key: the waiting attempt starts now. */
  retry(callId: string): ConferenceResult {
    const run = this.current(callId);
    if (!run || run.finished) return this.refuse(callId, 'no conference-in is running');
    run.retry();
    return { ok: true, requestId: run.requestId, region: run.home };
  }

  /** Recent requests stay reachable after their call ended: their messages may still escalate. */
  private remember(run: RequestRun): void {
    this.runsById.set(run.requestId, run);
    if (this.runsById.size > RECENT_REQUESTS) this.runsById.delete(this.runsById.keys().next().value!);
  }

  /** Delivery news about a message of a request (false: the request is not known here). */
  messageDelivered(requestId: string, type: string): boolean {
    const run = this.runsById.get(requestId);
    if (!run) return false;
    if (type === 'no-contact') run.messageDelivered();
    return true;
  }

  messageEscalated(requestId: string, type: string, reason: 'deadline' | 'permanent-failure', detail: string): boolean {
    const run = this.runsById.get(requestId);
    if (!run) return false;
    if (type === 'no-contact') run.messageEscalated(Date.now(), reason, detail);
    return true;
  }

  private current(callId: string): RequestRun | undefined {
    const st = this.calls.get(callId);
    return st?.runs[st.runs.length - 1];
  }

  private refuse(callId: string, reason: string): ConferenceResult {
    this.deps.bus.emit('conference.refused', { callId, reason });
    this.deps.tones.tone(callId, 'refused');
    return { ok: false, error: reason };
  }

  /** Stop every timer (shutdown); the journal keeps what is unfinished for the next start. */
  stop(): void {
    for (const st of this.calls.values()) {
      if (st.digitTimer) clearTimeout(st.digitTimer);
      for (const r of st.runs) r.dispose();
    }
  }
}

/** The policy snapshot of a new request on `home`. */
export function procedurePolicy(o: ConferenceOptions, home: RegionPolicy): ProcedurePolicy {
  const plan = (r: RegionPolicy, attempts?: number | null, ringTimerS?: number | null): RegionPlan => ({
    id: r.id, name: r.name, targets: r.targets, attempts: attempts ?? r.attempts,
    ringTimerMs: Math.round((ringTimerS ?? r.ringTimerS) * 1000),
    // An overflow region's own ring timer also sets its spacing when the spacing is the default.
    spacingMs: Math.round((ringTimerS ?? r.spacingS) * 1000),
  });
  const byId = new Map(o.regions.map((r) => [r.id, r]));
  return {
    home: {
      ...plan(home),
      bufferTargets: home.bufferTargets,
      bufferAttempts: home.bufferAttempts,
      messageEndpoints: [home.messageEndpoints.primary, ...(home.messageEndpoints.secondary ? [home.messageEndpoints.secondary] : [])],
      escalationMs: Math.round(home.escalationS * 1000),
    },
    overflow: {
      policy: home.overflow.policy,
      regions: home.overflow.policy === 'none' ? [] : home.overflow.regions.flatMap((x) => {
        const r = byId.get(x.region);
        return r ? [plan(r, x.attempts, x.ringTimerS)] : [];
      }),
    },
    cancelGraceMs: o.cancelGraceMs ?? 4000,
  };
}

function reachOf(o: ConferenceOptions): Map<string, RegionReach> {
  return new Map(o.regions.map((r) => [r.id, { name: r.name, auth: r.auth, outboundProxy: r.outboundProxy }]));
}

/** Resource priority, emergency identifiers (the call's URNs) and the citizen's identity. */
export function regionHeaders(f: CallFacts, id: CallIdentity): [string, string][] {
  const h: [string, string][] = [['Resource-Priority', 'esnet.1']];
  const callInfo = f.header('call-info');
  const has = (purpose: string) => callInfo.some((v) => new RegExp(`purpose\\s*=\\s*"?${purpose}\\b`, 'i').test(v));
  for (const v of callInfo) h.push(['Call-Info', v]);
  if (!has('emergency-IncidentId')) h.push(['Call-Info', `<${id.incidentId}>;purpose=emergency-IncidentId`]);
  if (!has('emergency-CallId')) h.push(['Call-Info', `<${id.emergencyCallId}>;purpose=emergency-CallId`]);
  const pai = f.header('p-asserted-identity');
  for (const v of pai) h.push(['P-Asserted-Identity', v]);
  // A trunk that sent no PAI: the PSAP asserts the identity it received in From.
  const from = f.header('from')[0];
  if (!pai.length && from && !/anonymous/i.test(from)) h.push(['P-Asserted-Identity', from.replace(/;\s*tag=[^;]*/i, '')]);
  for (const v of f.header('privacy')) h.push(['Privacy', v]);
  for (const v of f.header('history-info')) h.push(['History-Info', v]);
  return h;
}
