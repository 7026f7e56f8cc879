// The back-to-back user agent: a 112 call from a trunk (leg "citizen") is bridged to the
// call-taker platform (leg "calltaker"); conference-in legs to regions are dialled on request
// of the core. Each leg is its own dialog with its own timers; in-dialog requests are relayed.
import type { Peer, SipRequest, SipResponse } from './message.js';
import { Headers, response, REASONS } from './message.js';
import { parseNameAddr, parseUri, newTag, optionTags, tagOf, parseCSeq } from './grammar.js';
import type { SipEndpoint, TransactionUser } from './endpoint.js';
import { ALLOWED_METHODS, SUPPORTED } from './endpoint.js';
import type { ServerTransaction, Timers } from './transactions.js';
import type { SipResolver } from './resolver.js';
import type { Credentials } from './digest.js';
import { Dialog } from './dialog.js';
import { OutboundInvite } from './uac.js';
import { Leg, sessionExpiresOf } from './leg.js';
import { SessionTimer } from './session-timer.js';
import { ReliableProvisionals } from './reliable-provisional.js';
import { SourceAcl } from './acl.js';
import { passThrough } from './passthrough.js';
import { infoDigit, isDtmfInfo } from './info-digits.js';
import { buildMultipart, contentTypeOf, nonSdpParts } from './multipart.js';
import type { EventBus, CallFacts } from '../core/events.js';
import { CALLTAKER, CITIZEN, MediaUnavailableError, type CallMediaPort, type MediaPort } from '../core/media-port.js';
import { sdpOf } from './multipart.js';

export interface B2buaOptions {
  callTakerTarget: string;
  trunks: { id: string; networks: string[] }[];
  callTakerNetworks: string[];
  /** Desk id by the user part seen on the answering leg (Contact, To or PAI). */
  deskByUser: Map<string, string>;
  prack: 'supported' | 'required' | 'off';
  sessionTimer: { enabled: boolean; expiresS: number; minSeS: number };
  timers: Timers;
  drainRetryAfterS: number;
}

export interface Log {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

const ALLOW = ALLOWED_METHODS.join(', ');
const SDP = 'application/sdp';

/** An outbound leg to a region, as the core sees it. */
export interface RegionLeg {
  readonly attemptId: string;
  /** Mix the answered region into the call. */
  join(): void;
  cancel(reason?: string): void;
  hangup(): void;
  readonly answered: boolean;
}

export interface DialOutOptions {
  attemptId: string;
  target: string;
  credentials?: Credentials | null;
  outboundProxy?: string | null;
  /** Extra headers (Resource-Priority, Call-Info, re-contact…). */
  headers: [string, string][];
}

export interface DialOutEvents {
  ringing(res: SipResponse): void;
  answered(res: SipResponse, crossedCancel: boolean): void;
  failed(status: number, reason: string, info: { local?: string; retryAfterS?: number; cancelled: boolean }): void;
  /** The region hung up after answering. */
  ended(): void;
}

interface RegionLegState {
  leg: Leg;
  out?: OutboundInvite;
  events: DialOutEvents;
  handle: RegionLeg;
}

export class Call {
  readonly citizen = new Leg('citizen');
  readonly calltaker = new Leg('calltaker');
  readonly regions = new Map<string, RegionLegState>();
  state: 'setup' | 'active' | 'ended' = 'setup';
  out: OutboundInvite | null = null;
  reliable: ReliableProvisionals | null = null;
  desk: string | null = null;
  media!: CallMediaPort;
  /** Our SDP for the citizen: the answer to its offer, or our offer when it sent none. */
  citizenSdp: Buffer | null = null;
  citizenLateOffer = false;
  /** The citizen's INVITE: its identity and location headers feed the region legs. */
  constructor(
    readonly id: string,
    readonly invite: SipRequest,
    readonly tx: ServerTransaction,
    readonly src: Peer,
    readonly localTag: string,
    readonly trunk: string | null,
  ) {}

  get regionConnected(): boolean {
    for (const r of this.regions.values()) if (r.handle.answered && !r.leg.ended) return true;
    return false;
  }

  get regionPending(): boolean {
    for (const r of this.regions.values()) if (!r.out || !r.out.isDone) if (!r.leg.ended) return true;
    return false;
  }
}

type LegRef = { call: Call; leg: Leg; region?: RegionLegState };

export interface B2buaCounters {
  callsStarted: number;
  callsAnswered: number;
  /** INVITEs refused, by reason (source not allowed, draining, too many hops…). */
  rejected: Record<string, number>;
}

export class B2bua implements TransactionUser {
  readonly counters: B2buaCounters = { callsStarted: 0, callsAnswered: 0, rejected: {} };
  private readonly calls = new Map<string, Call>();
  /** Every leg's Call-ID → its call and leg, for in-dialog requests. */
  private readonly byCallId = new Map<string, LegRef>();
  private trunkAcls: { id: string; acl: SourceAcl }[];
  private callTakerAcl: SourceAcl;
  draining = false;
  /** Set by the core: keeps the citizen's leg up while a conference-in is still going on. */
  keepCitizenWhile: (callId: string) => boolean = () => false;

  constructor(
    private readonly ep: SipEndpoint,
    private readonly resolver: SipResolver,
    private readonly bus: EventBus,
    private opts: B2buaOptions,
    private readonly log: Log,
    private readonly media: MediaPort,
  ) {
    this.trunkAcls = opts.trunks.map((t) => ({ id: t.id, acl: new SourceAcl(t.networks) }));
    this.callTakerAcl = new SourceAcl(opts.callTakerNetworks);
    ep.setUser(this);
  }

  /** New options for new calls (a reload); calls in progress keep theirs where it matters. */
  reconfigure(opts: B2buaOptions): void {
    this.opts = opts;
    this.trunkAcls = opts.trunks.map((t) => ({ id: t.id, acl: new SourceAcl(t.networks) }));
    this.callTakerAcl = new SourceAcl(opts.callTakerNetworks);
  }

  get activeCalls(): number {
    return this.calls.size;
  }

  call(id: string): Call | undefined {
    return this.calls.get(id);
  }

  // -------------------------------------------------------------------------------------------
  // Transaction user

  onRequest(req: SipRequest, tx: ServerTransaction): void {
    const callId = req.headers.get('call-id') ?? '';
    const ref = this.byCallId.get(callId);
    if (ref) return this.inDialog(ref, req, tx);
    const toTag = /;\s*tag=/i.test(req.headers.get('to') ?? '');
    if (toTag) {
      // In-dialog request for a dialog we do not know (RFC 3261 12.2.2).
      this.ep.reply(tx, 481);
      return;
    }
    switch (req.method) {
      case 'INVITE':
        return this.newCall(req, tx);
      case 'OPTIONS':
        // Draining: the edge's OPTIONS probe sees 503 and sends new 112 calls around us.
        if (this.draining) {
          this.ep.reply(tx, 503, { headers: [['Retry-After', String(this.opts.drainRetryAfterS)]] });
          return;
        }
        this.ep.reply(tx, 200, {
          headers: [['Allow', ALLOW], ['Accept', `${SDP}, multipart/mixed, application/dtmf-relay`], ['Supported', SUPPORTED.join(', ')]],
        });
        return;
      case 'BYE':
      case 'INFO':
      case 'UPDATE':
      case 'PRACK':
      case 'NOTIFY':
        this.ep.reply(tx, 481);
        return;
      default:
        this.ep.reply(tx, 405, { headers: [['Allow', ALLOW]] });
    }
  }

  onAck(): void {
    // ACK for a 2xx we no longer track: nothing to do (RFC 3261 13.3.1.4 absorbs it).
  }

  onStray2xx(res: SipResponse, src: Peer): void {
    // A 2xx to an INVITE whose transaction is gone. Only our own legs' Call-IDs are ours to
    // answer; anything else is a stray response and is dropped (RFC 4475 3.1.1.12).
    const callId = res.headers.get('call-id') ?? '';
    const ref = this.byCallId.get(callId);
    if (!ref) return;
    const d = ref.leg.dialog;
    if (d && !ref.leg.ended && d.remoteTag === tagOf(res.headers.get('to') ?? '')) {
      const seq = parseCSeq(res.headers.get('cseq') ?? '')?.seq ?? d.localSeq;
      this.ep.sendAck(d.createRequest('ACK', { cseq: seq }), d.nextHop());
      return;
    }
    // A late or forked 2xx for a leg we gave up on: ACK it, then hang it up (RFC 3261 13.2.2.4).
    this.log.debug({ callId, status: res.status }, 'late 2xx: ACK and BYE');
    const h = res.headers;
    const fake: SipRequest = {
      kind: 'request', method: 'INVITE', uri: parseNameAddr(h.get('to') ?? '')?.uri ?? 'sip:unknown', version: 'SIP/2.0',
      headers: new Headers([['From', h.get('from') ?? ''], ['To', h.get('to') ?? ''], ['Call-ID', callId], ['CSeq', h.get('cseq') ?? '1 INVITE'], ['Contact', `<sip:amk-bridge@${this.ep.sentBy(src.transport)}>`]]),
      body: Buffer.alloc(0),
    };
    const late = Dialog.asUac(fake, res, src, fake.headers.get('contact')!);
    this.ep.sendAck(late.createRequest('ACK'), late.nextHop());
    this.ep.sendRequest(late.createRequest('BYE'), late.nextHop(), { onFinal: () => {} });
  }

  // -------------------------------------------------------------------------------------------
  // New 112 call

  private trunkOf(address: string): string | null {
    for (const t of this.trunkAcls) if (t.acl.allows(address)) return t.id;
    return null;
  }

  private reject(tx: ServerTransaction, status: number, reason: string, headers: [string, string][] = []): void {
    this.ep.reply(tx, status, { headers });
    this.counters.rejected[reason] = (this.counters.rejected[reason] ?? 0) + 1;
    this.bus.emit('call.rejected', { source: `${tx.source.address}:${tx.source.port}`, status, reason });
  }

  private newCall(req: SipRequest, tx: ServerTransaction): void {
    const src = tx.source;
    const trunk = this.trunkOf(src.address);
    if (!trunk && !this.callTakerAcl.allows(src.address)) {
      this.log.warn({ source: src.address }, 'INVITE from a source that is not an allowed trunk: 403');
      return this.reject(tx, 403, 'source not allowed');
    }
    if (this.draining) {
      return this.reject(tx, 503, 'draining', [['Retry-After', String(this.opts.drainRetryAfterS)]]);
    }
    const mf = Number(req.headers.get('max-forwards') ?? '70');
    if (mf <= 0) return this.reject(tx, 483, 'too many hops');
    const requireTags = optionTags(req.headers, 'require');
    if (requireTags.includes('100rel') && this.opts.prack === 'off') {
      return this.reject(tx, 420, '100rel off', [['Unsupported', '100rel']]);
    }

    const callId = req.headers.get('call-id') ?? '';
    const localTag = newTag();
    const call = new Call(callId, req, tx, src, localTag, trunk);
    const contact = `<sip:amk-bridge@${this.ep.sentBy(src.transport)}${src.transport === 'udp' ? '' : `;transport=${src.transport}`}>`;
    call.citizen.dialog = Dialog.asUas(req, src, localTag, contact);
    call.citizen.learnPeer(req);

    // Session timer on the citizen's leg (we are its UAS).
    const st = this.opts.sessionTimer;
    const asked = sessionExpiresOf(req);
    if (st.enabled && asked && asked.seconds < st.minSeS) {
      this.ep.reply(tx, 422, { headers: [['Min-SE', String(st.minSeS)]] });
      return;
    }
    this.calls.set(callId, call);
    this.byCallId.set(callId, { call, leg: call.citizen });

    const wantsReliable = this.opts.prack !== 'off' && (requireTags.includes('100rel') || optionTags(req.headers, 'supported').includes('100rel'));
    if (wantsReliable) {
      call.reliable = new ReliableProvisionals(tx, this.opts.timers, () => this.endCall(call, 'no PRACK', 'timeout', 504));
    }
    tx.onCancel = () => this.citizenCancelled(call);
    tx.onAckTimeout = () => this.endCall(call, 'no ACK from the citizen leg', 'timeout');

    try {
      call.media = this.media.open(callId);
    } catch (err) {
      if (!(err instanceof MediaUnavailableError)) throw err;
      this.calls.delete(callId);
      this.byCallId.delete(callId);
      this.log.warn({ callId, reason: err.message }, 'no media resources: 503');
      return this.reject(tx, 503, 'no RTP ports', [['Retry-After', '5']]);
    }
    this.counters.callsStarted++;
    const facts = callFacts(req, trunk, src);
    this.bus.emit('call.started', { callId, facts, at: Date.now() });
    void this.setupMedia(call).catch((err: Error) => {
      this.log.warn({ callId, err: err.message }, 'media setup failed');
      this.endCall(call, `media: ${err.message}`, 'bridge', 503);
    });
  }

  /** Anchor the citizen's media (answer its offer, or prepare ours), then dial the call taker. */
  private async setupMedia(call: Call): Promise<void> {
    const req = call.invite;
    const offer = sdpOf(req.body, req.headers.get('content-type'));
    if (offer) {
      const ans = await call.media.answer(CITIZEN, offer);
      if (call.state !== 'setup') return;
      if (!ans.ok) {
        this.log.warn({ callId: call.id, reason: ans.reason }, 'citizen SDP not acceptable');
        call.tx.respond(this.ep.decorate(withWarning(this.citizenResponse(call, ans.status, REASONS[ans.status] ?? 'Not Acceptable Here'), ans.reason)));
        return this.finish(call, `SDP: ${ans.reason}`, 'bridge');
      }
      call.citizenSdp = ans.sdp;
    } else {
      // Late offer: our 200 carries the offer, the citizen's ACK the answer.
      call.citizenLateOffer = true;
      call.citizenSdp = await call.media.offer(CITIZEN);
      if (call.state !== 'setup') return;
    }
    call.media.join(CITIZEN);
    const ctOffer = await call.media.offer(CALLTAKER);
    if (call.state !== 'setup') return;
    call.media.join(CALLTAKER);
    this.dialCallTaker(call, ctOffer);
  }

  private dialCallTaker(call: Call, sdp: Buffer): void {
    const req = call.invite;
    const from = stripTag(req.headers.get('from') ?? '<sip:anonymous@anonymous.invalid>');
    const headers = passThrough(req.headers);
    // Our SDP in place of the citizen's; location and additional-data parts travel unchanged.
    const { body, contentType } = bodyWithSdp(req, sdp);
    const out = new OutboundInvite(this.ep, this.resolver, {
      target: this.opts.callTakerTarget,
      from,
      headers,
      body,
      contentType,
      prack: this.opts.prack,
      sessionTimer: this.sessionTimerRequest(),
    }, {
      onProvisional: (res) => this.calltakerProvisional(call, res),
      onAnswer: (res, dialog, crossed) => this.calltakerAnswered(call, res, dialog, crossed),
      onFailure: (status, reason, info) => this.calltakerFailed(call, status, reason, info.cancelled),
    });
    call.out = out;
    call.calltaker.lastBody = { body, contentType };
    this.byCallId.set(out.callId, { call, leg: call.calltaker });
    void out.start();
  }

  /** Take the call taker's SDP (from an 18x or the 200) into its media leg. */
  private acceptCalltakerSdp(call: Call, res: SipResponse): boolean {
    const sdp = sdpOf(res.body, res.headers.get('content-type'));
    if (!sdp) return false;
    const r = call.media.accept(CALLTAKER, sdp);
    if (!r.ok && r.reason !== 'no offer outstanding on this leg') this.log.warn({ callId: call.id, reason: r.reason }, 'call-taker SDP answer not usable');
    return r.ok;
  }

  private calltakerProvisional(call: Call, res: SipResponse): void {
    if (call.state !== 'setup') return;
    // Early media from the platform (183 with SDP) reaches the citizen through the mixer.
    const early = this.acceptCalltakerSdp(call, res) || (res.body.length > 0 && sdpOf(res.body, res.headers.get('content-type')) !== null);
    const r = this.citizenResponse(call, res.status, res.reason, res);
    if (early && call.citizenSdp && !call.citizenLateOffer) setBody(r, call.citizenSdp, SDP);
    if (call.reliable && res.status !== 100) call.reliable.sendProvisional(r);
    else call.tx.respond(r);
  }

  /** A response on the citizen's leg mirroring one from the call-taker leg (SDP is ours, added by the caller). */
  private citizenResponse(call: Call, status: number, reason: string, from?: SipResponse): SipResponse {
    const res = call.tx.makeResponse(status, reason, call.localTag);
    if (status > 100) res.headers.append('Contact', call.citizen.dialog!.contact);
    if (from) for (const [n, v] of passThrough(from.headers, ['P-Asserted-Identity', 'Privacy'])) res.headers.append(n, v);
    return this.ep.decorate(res);
  }

  private calltakerAnswered(call: Call, res: SipResponse, dialog: Dialog, crossed: boolean): void {
    call.calltaker.dialog = dialog;
    call.calltaker.learnPeer(res);
    if (call.state !== 'setup' || crossed) {
      // The citizen gave up while the call taker answered: the 2xx crossed our CANCEL.
      this.sendBye(call.calltaker, 'Q.850;cause=16;text="caller gave up"');
      return;
    }
    call.state = 'active';
    this.acceptCalltakerSdp(call, res);
    this.startUacSessionTimer(call, call.calltaker, res);
    const ok = this.citizenResponse(call, 200, 'OK', res);
    ok.headers.append('Allow', ALLOW);
    ok.headers.append('Supported', SUPPORTED.join(', '));
    if (call.citizenSdp) setBody(ok, call.citizenSdp, SDP);
    this.addUasSessionTimer(call, ok);
    if (call.reliable) call.reliable.sendFinal(ok);
    else call.tx.respond(ok);
    call.citizen.lastBody = call.citizenSdp ? { body: call.citizenSdp, contentType: SDP } : null;
    call.tx.onAck = (ack) => {
      if (!call.citizenLateOffer) return;
      const sdp = sdpOf(ack.body, ack.headers.get('content-type'));
      const r = sdp ? call.media.accept(CITIZEN, sdp) : { ok: false as const, reason: 'ACK without SDP answer' };
      if (!r.ok) this.log.warn({ callId: call.id, reason: r.reason }, 'citizen late-offer answer not usable');
    };
    const { desk, user } = this.deskOf(res);
    call.desk = desk;
    this.counters.callsAnswered++;
    this.bus.emit('call.answered', { callId: call.id, desk, user, at: Date.now() });
  }

  private calltakerFailed(call: Call, status: number, reason: string, cancelled: boolean): void {
    if (call.state !== 'setup') return;
    call.reliable?.stop();
    if (!cancelled) {
      // Auth challenges and redirects from the platform are not the trunk's business.
      const relayed = status === 401 || status === 407 || (status >= 300 && status < 400) ? 480 : status;
      call.tx.respond(this.citizenResponse(call, relayed, REASONS[relayed] ?? reason));
    }
    this.finish(call, `call-taker leg failed: ${status} ${reason}`, 'bridge');
  }

  private citizenCancelled(call: Call): void {
    if (call.state !== 'setup') return;
    call.reliable?.stop();
    call.tx.respond(this.citizenResponse(call, 487, 'Request Terminated'));
    call.out?.cancel('SIP;cause=487;text="caller cancelled"');
    this.finish(call, 'citizen cancelled', 'citizen');
  }

  // -------------------------------------------------------------------------------------------
  // Session timers

  private sessionTimerRequest(): { expiresS: number; minSeS: number } | null {
    const st = this.opts.sessionTimer;
    return st.enabled ? { expiresS: st.expiresS, minSeS: st.minSeS } : null;
  }

  private addUasSessionTimer(call: Call, ok: SipResponse): void {
    const st = this.opts.sessionTimer;
    if (!st.enabled) return;
    const asked = sessionExpiresOf(call.invite);
    const interval = asked?.seconds ?? st.expiresS;
    const refresher = asked?.refresher ?? (call.citizen.peerSupportsTimer ? 'uac' : 'uas');
    ok.headers.append('Session-Expires', `${interval};refresher=${refresher}`);
    if (call.citizen.peerSupportsTimer) ok.headers.append('Require', 'timer');
    call.citizen.timer = new SessionTimer(interval, refresher === 'uas', this.timerHandlers(call, call.citizen));
  }

  private startUacSessionTimer(call: Call, leg: Leg, res: SipResponse): void {
    const st = this.opts.sessionTimer;
    if (!st.enabled) return;
    const se = sessionExpiresOf(res);
    const interval = se?.seconds ?? st.expiresS;
    const weRefresh = se ? se.refresher !== 'uas' : true;
    leg.timer = new SessionTimer(interval, weRefresh, this.timerHandlers(call, leg));
  }

  private timerHandlers(call: Call, leg: Leg) {
    return {
      refresh: () => this.refreshLeg(call, leg),
      expired: () => {
        this.log.info({ callId: call.id, leg: leg.role }, 'session timer expired: ending call');
        this.endCall(call, `session expired on ${leg.role} leg`, 'timeout');
      },
    };
  }

  /** We are the refresher: UPDATE if the peer allows it, else re-INVITE with our last body. */
  private refreshLeg(call: Call, leg: Leg): void {
    if (!leg.dialog || leg.ended) return;
    if (leg.busy) {
      leg.timer?.reset(); // an offer/answer is in progress; it refreshes the session anyway
      return;
    }
    const interval = leg.timer?.intervalS ?? this.opts.sessionTimer.expiresS;
    const headers: [string, string][] = [['Session-Expires', `${interval};refresher=uac`], ['Supported', 'timer']];
    const useUpdate = leg.canUpdate;
    const req = useUpdate
      ? leg.dialog.createRequest('UPDATE', { headers })
      : leg.dialog.createRequest('INVITE', { headers, body: leg.lastBody?.body, contentType: leg.lastBody?.contentType });
    leg.busy = true;
    let ack: SipRequest | null = null;
    this.ep.sendRequest(req, leg.dialog.nextHop(), {
      // Our ACK was lost: the same ACK again, or the peer ends the call after 64 × T1.
      onRetransmitted2xx: () => {
        if (ack && leg.dialog && !leg.ended) this.ep.resendAck(ack, leg.dialog.nextHop());
      },
      onFinal: (res) => {
        leg.busy = false;
        if (!useUpdate && res.status < 300 && leg.dialog) {
          ack = leg.dialog.createRequest('ACK', { cseq: leg.dialog.localSeq });
          this.ep.sendAck(ack, leg.dialog.nextHop());
        }
        if (res.status < 300) leg.timer?.reset();
        else if (res.status === 481 || res.status === 408) this.endCall(call, `refresh failed on ${leg.role} leg: ${res.status}`, 'timeout');
        else leg.timer?.reset(); // 491/5xx: try again next interval rather than dropping an emergency call
      },
    });
  }

  // -------------------------------------------------------------------------------------------
  // In-dialog requests

  private inDialog(ref: LegRef, req: SipRequest, tx: ServerTransaction): void {
    const { call, leg } = ref;
    if (req.method === 'INVITE' && leg === call.citizen && call.state === 'setup') {
      // Same Call-ID, no To-tag: a second INVITE of the setup (a loop or a broken peer).
      this.ep.reply(tx, 482);
      return;
    }
    if (req.method === 'PRACK' && leg === call.citizen) {
      if (call.reliable?.prack(req)) this.ep.reply(tx, 200, { toTag: call.localTag });
      else this.ep.reply(tx, 481);
      return;
    }
    if (!leg.dialog || leg.ended) {
      this.ep.reply(tx, 481);
      return;
    }
    if (!leg.dialog.acceptRemoteSeq(req)) {
      this.ep.reply(tx, 500, { reason: 'CSeq out of order', headers: [['Retry-After', '1']] });
      return;
    }
    switch (req.method) {
      case 'BYE':
        this.ep.reply(tx, 200, { toTag: leg.dialog.localTag });
        return this.byeFrom(ref);
      case 'INVITE':
      case 'UPDATE':
        this.offerAnswer(ref, req, tx).catch((err: Error) => {
          this.log.warn({ callId: call.id, err: err.message }, 're-INVITE handling failed');
          if (!tx.finished) this.ep.reply(tx, 500);
        });
        return;
      case 'INFO':
        return this.info(ref, req, tx);
      case 'REFER':
        return this.refer(ref, req, tx);
      case 'OPTIONS':
        this.ep.reply(tx, 200, { headers: [['Allow', ALLOW]] });
        return;
      case 'NOTIFY':
        this.ep.reply(tx, 200);
        return;
      default:
        this.ep.reply(tx, 405, { headers: [['Allow', ALLOW]] });
    }
  }

  private otherOf(call: Call, leg: Leg): Leg | null {
    if (leg === call.citizen) return call.calltaker.ended || !call.calltaker.dialog ? null : call.calltaker;
    if (leg === call.calltaker) return call.citizen.ended ? null : call.citizen;
    return null;
  }

  /**
   * re-INVITE or UPDATE on the citizen's or the call taker's leg. Media is anchored, so the offer
   * is answered on its own leg; the other leg is re-INVITEd only when the peer put the call on
   * hold or took it off (a direction change), so the far end sees the hold. 491 on glare.
   */
  private async offerAnswer(ref: LegRef, req: SipRequest, tx: ServerTransaction): Promise<void> {
    const { call, leg, region } = ref;
    const legName = region ? region.handle.attemptId : leg === call.citizen ? CITIZEN : CALLTAKER;
    if (leg.busy) {
      this.ep.reply(tx, 491, { toTag: leg.dialog!.localTag, headers: [['Retry-After', '1']] });
      return;
    }
    leg.learnPeer(req);
    leg.dialog!.updateTarget(req);
    if (leg === call.calltaker) this.checkDeskChange(call, req, req.method === 'INVITE' ? 're-invite' : 'update');
    const asked = sessionExpiresOf(req);
    const headers: [string, string][] = [['Contact', leg.dialog!.contact]];
    if (asked || leg.timer) {
      const secs = asked?.seconds ?? leg.timer!.intervalS;
      const refresher = asked?.refresher ?? (leg.timer?.weRefresh ? 'uas' : 'uac');
      headers.push(['Session-Expires', `${secs};refresher=${refresher}`]);
      if (leg.timer) leg.timer.reset(secs, refresher === 'uas');
    }
    const offer = sdpOf(req.body, req.headers.get('content-type'));
    const before = call.media.peerDirection(legName);
    let body: Buffer | null = null;
    if (offer) {
      leg.busy = true;
      const ans = await call.media.answer(legName, offer);
      leg.busy = false;
      if (!ans.ok) {
        this.ep.reply(tx, ans.status, { toTag: leg.dialog!.localTag, headers: [['Warning', `399 amk-bridge "${ans.reason.replace(/"/g, "'")}"`]] });
        return;
      }
      body = ans.sdp;
    } else if (req.method === 'INVITE') {
      // Late-offer re-INVITE: we offer our current SDP; the answer comes in the ACK.
      body = call.media.current(legName);
      if (body) await call.media.offer(legName).then((b) => (body = b));
      tx.onAck = (ack) => {
        const sdp = sdpOf(ack.body, ack.headers.get('content-type'));
        if (sdp) call.media.accept(legName, sdp);
      };
    }
    this.ep.reply(tx, 200, { toTag: leg.dialog!.localTag, headers, body: body ?? undefined, contentType: body ? SDP : undefined });
    if (body) leg.lastBody = { body, contentType: SDP };
    const after = call.media.peerDirection(legName);
    if (!region && offer && before !== null && after !== before) this.propagateDirection(call, leg, after ?? 'sendrecv');
  }

  /** Tell the other party of the citizen/call-taker pair that the call was put on hold or resumed. */
  private async propagateDirection(call: Call, from: Leg, peerDir: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive'): Promise<void> {
    const other = this.otherOf(call, from);
    if (!other?.dialog || other.busy) return;
    const otherName = other === call.citizen ? CITIZEN : CALLTAKER;
    // The holder sends only (or nothing): the other side is asked to receive only (or nothing).
    const direction = peerDir === 'sendonly' ? 'recvonly' : peerDir === 'inactive' ? 'inactive' : peerDir === 'recvonly' ? 'sendonly' : 'sendrecv';
    other.busy = true;
    const sdp = await call.media.offer(otherName, { direction });
    if (!other.dialog || other.ended) {
      other.busy = false;
      return;
    }
    const req = other.dialog.createRequest('INVITE', { body: sdp, contentType: SDP });
    let ack: SipRequest | null = null;
    this.ep.sendRequest(req, other.dialog.nextHop(), {
      onRetransmitted2xx: () => {
        if (ack && other.dialog && !other.ended) this.ep.resendAck(ack, other.dialog.nextHop());
      },
      onFinal: (res) => {
        other.busy = false;
        if (res.status >= 200 && res.status < 300 && other.dialog) {
          const ans = sdpOf(res.body, res.headers.get('content-type'));
          if (ans) call.media.accept(otherName, ans);
          other.lastBody = { body: sdp, contentType: SDP };
          other.timer?.reset();
          ack = other.dialog.createRequest('ACK', { cseq: other.dialog.localSeq });
          this.ep.sendAck(ack, other.dialog.nextHop());
        } else if (res.status === 481) this.endCall(call, `${other.role} leg lost its dialog`, 'bridge');
      },
    });
  }

  private info(ref: LegRef, req: SipRequest, tx: ServerTransaction): void {
    const { call, leg } = ref;
    const ct = req.headers.get('content-type');
    if (isDtmfInfo(ct)) {
      const digit = infoDigit(ct, req.body);
      this.ep.reply(tx, digit ? 200 : 400, { toTag: leg.dialog!.localTag, reason: digit ? undefined : 'Unreadable DTMF' });
      // Only the call taker's digits drive the bridge; the citizen's are not feature codes.
      if (digit && leg === call.calltaker) this.bus.emit('call.digit', { callId: call.id, digit, via: 'info' });
      return;
    }
    const other = this.otherOf(call, leg);
    if (!other?.dialog) {
      this.ep.reply(tx, 200, { toTag: leg.dialog!.localTag });
      return;
    }
    const fwd = other.dialog.createRequest('INFO', { body: req.body, contentType: ct, headers: passThrough(req.headers, ['Info-Package']) });
    this.ep.sendRequest(fwd, other.dialog.nextHop(), {
      onFinal: (res) => this.ep.reply(tx, res.status, { reason: res.reason, toTag: leg.dialog!.localTag }),
    });
  }

  /**
   * REFER from the call-taker platform: the platform moves the call to another desk. We dial
   * the Refer-To target with a fresh media leg; once it answers, it replaces the call-taker leg
   * (the citizen's media is anchored on the bridge and does not change).
   */
  private refer(ref: LegRef, req: SipRequest, tx: ServerTransaction): void {
    const { call, leg } = ref;
    const referTo = req.headers.get('refer-to');
    const target = referTo ? parseNameAddr(referTo)?.uri : undefined;
    if (leg !== call.calltaker || !target || !/^sips?:/i.test(target)) {
      this.ep.reply(tx, leg !== call.calltaker ? 403 : 400, { toTag: leg.dialog!.localTag });
      return;
    }
    const cleanTarget = target.split('?')[0]!;
    this.ep.reply(tx, 202, { toTag: leg.dialog!.localTag });
    const notify = (frag: string, terminated: boolean) => {
      if (!leg.dialog || leg.ended) return;
      const n = leg.dialog.createRequest('NOTIFY', {
        headers: [['Event', 'refer'], ['Subscription-State', terminated ? 'terminated;reason=noresource' : 'active;expires=60']],
        body: Buffer.from(`SIP/2.0 ${frag}\r\n`), contentType: 'message/sipfrag;version=2.0',
      });
      this.ep.sendRequest(n, leg.dialog.nextHop(), { onFinal: () => {} });
    };
    notify('100 Trying', false);
    const transferLeg = `transfer-${newTag()}`;
    void call.media.offer(transferLeg).then((sdp) => {
      if (call.state === 'ended') return call.media.release(transferLeg);
      const { body, contentType } = bodyWithSdp(call.invite, sdp);
      const out = new OutboundInvite(this.ep, this.resolver, {
        target: cleanTarget,
        from: stripTag(call.invite.headers.get('from') ?? ''),
        headers: [...passThrough(call.invite.headers), ['Referred-By', `<${leg.dialog!.remoteTarget}>`]],
        body,
        contentType,
        prack: this.opts.prack,
        sessionTimer: this.sessionTimerRequest(),
      }, {
        onAnswer: (res, dialog) => {
          notify('200 OK', true);
          const old = call.calltaker;
          const ans = sdpOf(res.body, res.headers.get('content-type'));
          if (ans) call.media.accept(transferLeg, ans);
          // Swap the call-taker leg: the new dialog and media take its place, the old ones go.
          const fresh = new Leg('calltaker');
          fresh.dialog = dialog;
          fresh.learnPeer(res);
          fresh.lastBody = { body, contentType };
          this.byCallId.set(out.callId, { call, leg: fresh });
          (call as { calltaker: Leg }).calltaker = fresh;
          this.startUacSessionTimer(call, fresh, res);
          if (old.dialog) {
            this.sendBye(old, 'SIP;cause=200;text="transferred"');
            this.byCallId.delete(old.dialog.callId);
          }
          call.media.release(CALLTAKER);
          call.media.rename(transferLeg, CALLTAKER);
          call.media.join(CALLTAKER);
          this.checkDeskChange(call, res, 'refer');
        },
        onFailure: (status) => {
          call.media.release(transferLeg);
          notify(`${status} ${REASONS[status] ?? 'Failed'}`, true);
        },
      });
      this.byCallId.set(out.callId, { call, leg: new Leg('calltaker') });
      void out.start();
    });
  }

  private deskOf(msg: SipRequest | SipResponse): { desk: string | null; user: string | null } {
    const candidates = [msg.headers.getList('contact')[0], msg.headers.get('to'), msg.headers.getList('p-asserted-identity')[0]];
    let firstUser: string | null = null;
    for (const c of candidates) {
      const uri = c ? parseNameAddr(c)?.uri : undefined;
      const user = uri ? parseUri(uri)?.user ?? null : null;
      if (!user) continue;
      firstUser ??= user;
      const desk = this.opts.deskByUser.get(user);
      if (desk) return { desk, user };
    }
    return { desk: null, user: firstUser };
  }

  private checkDeskChange(call: Call, msg: SipRequest | SipResponse, via: 'refer' | 're-invite' | 'update'): void {
    const { desk, user } = this.deskOf(msg);
    if (desk && desk !== call.desk) {
      call.desk = desk;
      this.bus.emit('call.desk-changed', { callId: call.id, desk, user, via, at: Date.now() });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Hang-up

  private byeFrom(ref: LegRef): void {
    const { call, leg, region } = ref;
    leg.stop();
    if (region) {
      call.media.release(region.handle.attemptId);
      region.events.ended();
      return this.maybeFinish(call);
    }
    if (leg === call.calltaker) call.media.release(CALLTAKER);
    if (leg === call.citizen) return this.endCall(call, 'citizen hung up', 'citizen');
    // The call taker left. The citizen stays connected to a region that answered, and while a
    // conference-in is still going on (the procedure continues without the call taker).
    this.bus.emit('call.calltaker-left', { callId: call.id, at: Date.now() });
    if (call.regionConnected || call.regionPending || this.keepCitizenWhile(call.id)) return;
    this.endCall(call, 'call taker hung up', 'calltaker');
  }

  /** The call taker has left earlier: end the call when no region leg keeps the citizen. */
  private maybeFinish(call: Call): void {
    if (call.state === 'ended') return;
    if (call.calltaker.ended && !call.regionConnected && !call.regionPending && !this.keepCitizenWhile(call.id)) {
      this.endCall(call, 'no one left with the citizen', 'bridge');
    }
  }

  /** Re-check a call whose citizen was kept for the procedure (the core calls this). */
  release(callId: string): void {
    const call = this.calls.get(callId);
    if (call) this.maybeFinish(call);
  }

  /** End every leg of a call. */
  endCall(call: Call, reason: string, by: 'citizen' | 'calltaker' | 'bridge' | 'timeout', status = 480): void {
    if (call.state === 'ended') return;
    if (call.state === 'setup') {
      call.reliable?.stop();
      if (!call.tx.finished && by !== 'citizen') call.tx.respond(this.citizenResponse(call, status, REASONS[status] ?? 'Error'));
      call.out?.cancel();
    }
    for (const leg of [call.citizen, call.calltaker]) if (!leg.ended && leg.dialog && call.state === 'active') this.sendBye(leg, `SIP;text="${reason}"`);
    for (const r of call.regions.values()) r.handle.hangup();
    this.finish(call, reason, by);
  }

  private sendBye(leg: Leg, reason?: string): void {
    if (leg.ended || !leg.dialog) return;
    leg.stop();
    const bye = leg.dialog.createRequest('BYE', { headers: reason ? [['Reason', reason]] : [] });
    this.ep.sendRequest(bye, leg.dialog.nextHop(), { onFinal: () => {} });
  }

  private finish(call: Call, reason: string, by: 'citizen' | 'calltaker' | 'bridge' | 'timeout'): void {
    if (call.state === 'ended') return;
    call.state = 'ended';
    call.citizen.stop();
    call.calltaker.stop();
    // Forget the legs at once: retransmitted BYEs are answered by their server transactions,
    // and keeping whole calls alive for 32 s would only feed the garbage collector.
    for (const id of [call.id, call.out?.callId, call.calltaker.dialog?.callId, ...[...call.regions.values()].map((r) => r.out?.callId)]) {
      if (id && this.byCallId.get(id)?.call === call) this.byCallId.delete(id);
    }
    this.calls.delete(call.id);
    // Legs still pending keep their handlers: their final response is still reported (journal).
    if (call.out?.isDone) call.out.detach();
    for (const r of call.regions.values()) if (r.out?.isDone) r.out.detach();
    call.media?.close();
    this.log.info({ callId: call.id, reason, by }, 'call ended');
    this.bus.emit('call.ended', { callId: call.id, reason, by, at: Date.now() });
  }

  /** Hang up every call (shutdown). */
  hangupAll(reason = 'bridge shutting down'): void {
    for (const call of [...this.calls.values()]) this.endCall(call, reason, 'bridge', 503);
  }

  // -------------------------------------------------------------------------------------------
  // Conference-in legs (dialled on behalf of the core)

  dialOut(callId: string, opts: DialOutOptions, events: DialOutEvents): RegionLeg | null {
    const call = this.calls.get(callId);
    if (!call || call.state === 'ended') return null;
    const leg = new Leg('region');
    const legName = opts.attemptId;
    let answered = false;
    let out: OutboundInvite | null = null;
    let cancelled: string | undefined | null = null;
    const state = { leg, events } as RegionLegState;
    const handle: RegionLeg = {
      attemptId: opts.attemptId,
      join: () => {
        if (answered && !leg.ended) call.media.join(legName);
      },
      cancel: (reason) => {
        if (out) out.cancel(reason);
        else cancelled = reason;
      },
      hangup: () => {
        if (leg.dialog && !leg.ended) this.sendBye(leg, 'SIP;text="released"');
        else {
          leg.ended = true;
          if (out) out.cancel();
          else cancelled = 'released';
        }
        call.media.release(legName);
      },
      get answered() {
        return answered;
      },
    };
    state.handle = handle;
    call.regions.set(opts.attemptId, state);
    const headers = [...passThrough(call.invite.headers, ['Geolocation', 'Geolocation-Routing']), ...opts.headers];
    void call.media.offer(legName).then((sdp) => {
      if (cancelled !== null || leg.ended || call.state === 'ended') {
        call.media.release(legName);
        events.failed(487, 'cancelled before sending', { cancelled: true });
        return;
      }
      const { body, contentType } = bodyWithSdp(call.invite, sdp);
      out = new OutboundInvite(this.ep, this.resolver, {
        target: opts.target,
        from: stripTag(call.invite.headers.get('from') ?? '<sip:anonymous@anonymous.invalid>'),
        headers,
        body,
        contentType,
        outboundProxy: opts.outboundProxy,
        credentials: opts.credentials,
        prack: this.opts.prack,
        sessionTimer: this.sessionTimerRequest(),
      }, {
        onProvisional: (res) => {
          // The region's early media (announcements) is not mixed: only an answer is contact.
          const early = sdpOf(res.body, res.headers.get('content-type'));
          if (early) call.media.accept(legName, early);
          events.ringing(res);
        },
        onAnswer: (res, dialog, crossed) => {
          leg.dialog = dialog;
          leg.learnPeer(res);
          leg.lastBody = { body, contentType };
          if (call.state === 'ended' || leg.ended) {
            this.sendBye(leg, 'SIP;text="call already ended"');
            call.media.release(legName);
            return;
          }
          const ans = sdpOf(res.body, res.headers.get('content-type'));
          if (ans) call.media.accept(legName, ans);
          answered = true;
          this.startUacSessionTimer(call, leg, res);
          events.answered(res, crossed);
        },
        onFailure: (status, reason, info) => {
          call.media.release(legName);
          events.failed(status, reason, info);
          this.maybeFinish(call);
        },
      });
      state.out = out;
      this.byCallId.set(out.callId, { call, leg, region: state });
      void out.start();
    });
    return handle;
  }
}

/**
 * The body for an outgoing leg: our SDP plus the citizen's location (PIDF-LO) and additional-data
 * parts, so a Geolocation `cid:` reference still resolves on that leg.
 */
export function bodyWithSdp(invite: SipRequest, sdp: Buffer): { body: Buffer; contentType: string } {
  const extra = nonSdpParts(invite.body, invite.headers.get('content-type'));
  if (!extra.length) return { body: sdp, contentType: SDP };
  return buildMultipart([{ headers: [['Content-Type', SDP]], body: sdp }, ...extra]);
}

function setBody(msg: SipRequest | SipResponse, body: Buffer, contentType: string): void {
  msg.body = body;
  msg.headers.set('Content-Type', contentType);
}

function withWarning(res: SipResponse, text: string): SipResponse {
  res.headers.append('Warning', `399 amk-bridge "${text.replace(/"/g, "'").slice(0, 160)}"`);
  return res;
}

function stripTag(v: string): string {
  return v.replace(/;\s*tag=[^;]*/i, '');
}

function userOf(value: string | undefined): string | null {
  if (!value) return null;
  const uri = parseNameAddr(value)?.uri ?? value;
  return parseUri(uri)?.user ?? null;
}

function numberOf(value: string | undefined): string | null {
  const u = userOf(value);
  if (!u) return null;
  const n = u.split(';')[0]!;
  return /^\+?[0-9*#-]+$/.test(n) ? n.replace(/-/g, '') : n;
}

/** The PIDF-LO location part of a multipart INVITE body (RFC 6442), as text. */
function pidfLoOf(req: SipRequest): string | null {
  const part = nonSdpParts(req.body, req.headers.get('content-type')).find((p) => contentTypeOf(p) === 'application/pidf+xml');
  return part ? part.body.toString('utf8') : null;
}

function callFacts(req: SipRequest, trunk: string | null, src: Peer): CallFacts {
  return {
    requestUri: req.uri,
    requestUriUser: parseUri(req.uri)?.user ?? null,
    toUser: userOf(req.headers.get('to')),
    fromNumber: numberOf(req.headers.get('from')),
    paiNumber: numberOf(req.headers.getList('p-asserted-identity')[0]),
    trunk,
    source: src.address,
    header: (name) => req.headers.getRaw(name),
    pidfLo: pidfLoOf(req),
  };
}

export { response };
