// RFC 3261 section 17 transactions (with the RFC 6026 "accepted" states), driven by timers.
// The server INVITE transaction also retransmits its 2xx until the ACK arrives, which RFC 3261
// leaves to the UAS core; keeping it here means every UAS leg of the B2BUA gets it for free.
import type { Peer, SipRequest, SipResponse } from './message.js';
import { Headers, request, response, REASONS, EMPTY } from './message.js';
import { parseVia } from './grammar.js';

export interface Timers {
  t1: number;
  t2: number;
  t4: number;
  /** Timer B / F: INVITE and non-INVITE transaction timeout (default 64 × T1). */
  timeout: number;
}

export const DEFAULT_TIMERS: Timers = { t1: 500, t2: 4000, t4: 5000, timeout: 32_000 };

/** The subset of the transport the transactions need. */
export interface Sender {
  send(msg: SipRequest | SipResponse, dest: Peer, onError?: (err: Error) => void): void;
  sendResponseTo(res: SipResponse, src: Peer): void;
}

type State = 'calling' | 'trying' | 'proceeding' | 'accepted' | 'completed' | 'confirmed' | 'terminated';

/** Why a client transaction ended without a response from the peer. */
export type LocalFailure = 'timeout' | 'transport';

abstract class Transaction {
  state: State;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  onTerminated?: () => void;

  constructor(initial: State) {
    this.state = initial;
  }

  protected timer(name: string, ms: number, fn: () => void): void {
    this.clearTimer(name);
    const h = setTimeout(() => {
      this.timers.delete(name);
      fn();
    }, ms);
    this.timers.set(name, h);
  }

  protected clearTimer(name: string): void {
    const h = this.timers.get(name);
    if (h) {
      clearTimeout(h);
      this.timers.delete(name);
    }
  }

  terminate(): void {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    for (const h of this.timers.values()) clearTimeout(h);
    this.timers.clear();
    this.onTerminated?.();
  }
}

export function isReliable(p: Peer): boolean {
  return p.transport !== 'udp';
}

// ---------------------------------------------------------------------------------------------
// Server transactions

export class ServerTransaction extends Transaction {
  lastResponse?: SipResponse;
  /** Set by the TU: called when a CANCEL matches this pending INVITE. */
  onCancel?: (cancel: SipRequest) => void;
  /** Set by the TU: the ACK for our 2xx never came (64 × T1). */
  onAckTimeout?: () => void;
  /** Set by the TU: the ACK for our 2xx came. */
  onAck?: (ack: SipRequest) => void;
  /** Set by the endpoint: a 2xx was sent, so an ACK with a new branch must find us. */
  onAccepted?: () => void;
  readonly isInvite: boolean;

  constructor(
    readonly request: SipRequest,
    readonly source: Peer,
    private readonly sender: Sender,
    private readonly t: Timers,
  ) {
    super(request.method === 'INVITE' ? 'proceeding' : 'trying');
    this.isInvite = request.method === 'INVITE';
  }

  /** True once a final response has been sent. */
  get finished(): boolean {
    return this.state !== 'proceeding' && this.state !== 'trying';
  }

  /** Build a response to this request with the mandatory headers copied (RFC 3261 8.2.6). */
  makeResponse(status: number, reason?: string, toTag?: string): SipResponse {
    const req = this.request.headers;
    const h = new Headers();
    for (const v of req.getRaw('via')) h.append('Via', v);
    const from = req.get('from');
    if (from !== undefined) h.append('From', from);
    let to = req.get('to') ?? '';
    if (toTag && status > 100 && !/;\s*tag=/i.test(to)) to += `;tag=${toTag}`;
    h.append('To', to);
    h.append('Call-ID', req.get('call-id') ?? '');
    h.append('CSeq', req.get('cseq') ?? '');
    // Dialog-forming responses carry the request's Record-Route (RFC 3261 12.1.1).
    if (this.isInvite && status > 100 && status < 300) for (const rr of req.getRaw('record-route')) h.append('Record-Route', rr);
    return response(status, reason ?? REASONS[status] ?? 'Unknown', h, EMPTY);
  }

  respond(res: SipResponse): void {
    if (this.state === 'terminated' || this.finished) return;
    this.lastResponse = res;
    this.sender.sendResponseTo(res, this.source);
    if (res.status < 200) {
      if (!this.isInvite) this.state = 'proceeding';
      return;
    }
    const reliable = isReliable(this.source);
    // A CANCEL can no longer matter once a final response went out.
    this.onCancel = undefined;
    if (this.isInvite && res.status < 300) {
      // RFC 6026 accepted: the 2xx is retransmitted end to end until the ACK, on any transport.
      this.state = 'accepted';
      this.onAccepted?.();
      this.onAccepted = undefined;
      this.retransmit('G2xx', res);
      this.timer('L', this.t.timeout, () => {
        this.onAckTimeout?.();
        this.terminate();
      });
    } else if (this.isInvite) {
      this.state = 'completed';
      this.releaseTu();
      if (!reliable) this.retransmit('G', res);
      this.timer('H', this.t.timeout, () => this.terminate());
    } else {
      this.state = 'completed';
      this.releaseTu();
      this.timer('J', reliable ? 0 : this.t.timeout, () => this.terminate());
    }
  }

  /**
   * Drops the TU's callbacks: the transaction lingers (up to 64 × T1) only to absorb
   * retransmissions, and the callbacks' closures would keep whole calls alive that long.
   */
  private releaseTu(): void {
    this.onCancel = undefined;
    this.onAck = undefined;
    this.onAckTimeout = undefined;
    this.onAccepted = undefined;
  }

  override terminate(): void {
    this.releaseTu();
    super.terminate();
  }

  /** Re-send a final response at T1, 2·T1, … capped at T2 (timer G) until a timer clears it. */
  private retransmit(name: string, res: SipResponse): void {
    let interval = this.t.t1;
    const again = () => {
      this.sender.sendResponseTo(res, this.source);
      interval = Math.min(interval * 2, this.t.t2);
      this.timer(name, interval, again);
    };
    this.timer(name, interval, again);
  }

  /** Re-send a reliable provisional (RFC 3262) without changing state. */
  retransmitProvisional(res: SipResponse): void {
    if (!this.finished) this.sender.sendResponseTo(res, this.source);
  }

  /** A retransmission of the request arrived. */
  retransmitted(): void {
    if (this.lastResponse && this.state !== 'terminated' && this.state !== 'confirmed') {
      this.sender.sendResponseTo(this.lastResponse, this.source);
    }
  }

  /** An ACK matched this INVITE transaction. Returns true if it acknowledged a 2xx. */
  ack(ackReq: SipRequest): boolean {
    if (this.state === 'completed') {
      this.state = 'confirmed';
      this.clearTimer('G');
      this.clearTimer('H');
      this.timer('I', isReliable(this.source) ? 0 : this.t.t4, () => this.terminate());
      return false;
    }
    if (this.state === 'accepted') {
      this.clearTimer('G2xx');
      this.clearTimer('L');
      const cb = this.onAck;
      this.releaseTu();
      // Keep absorbing retransmitted ACKs/INVITEs for a while (RFC 6026 timer L).
      this.state = 'confirmed';
      this.timer('L', this.t.timeout, () => this.terminate());
      cb?.(ackReq);
      return true;
    }
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Client transactions

export interface ClientHandlers {
  onProvisional?(res: SipResponse): void;
  /** Final response: a real one, or a synthesized 408/503 with `local` set. */
  onFinal(res: SipResponse, local?: LocalFailure): void;
  /** INVITE only: a retransmitted (or forked) 2xx after the first, so the TU can re-ACK. */
  onRetransmitted2xx?(res: SipResponse): void;
}

/** The handlers of a client transaction whose final response was delivered. */
const DONE: ClientHandlers = { onFinal: () => {} };

export class ClientTransaction extends Transaction {
  readonly branch: string;
  readonly isInvite: boolean;
  gotProvisional = false;
  finalResponse?: SipResponse;
  private cancelWanted: Headers | null = null;
  cancelSent = false;

  constructor(
    readonly request: SipRequest,
    readonly dest: Peer,
    private handlers: ClientHandlers,
    private readonly sender: Sender,
    private readonly t: Timers,
    private readonly startCancel: (tx: ClientTransaction, extra: Headers) => void,
  ) {
    super(request.method === 'INVITE' ? 'calling' : 'trying');
    this.isInvite = request.method === 'INVITE';
    const top = request.headers.getList('via')[0];
    this.branch = (top && parseVia(top)?.branch) || '';
  }

  start(): void {
    const fail = () => this.localFailure('transport');
    this.sender.send(this.request, this.dest, fail);
    const reliable = isReliable(this.dest);
    if (!reliable) {
      let interval = this.t.t1;
      const again = () => {
        if (this.state !== 'calling' && this.state !== 'trying' && this.state !== 'proceeding') return;
        this.sender.send(this.request, this.dest, fail);
        // INVITE doubles without cap (timer A); non-INVITE caps at T2, and keeps T2 once proceeding.
        interval = this.isInvite ? interval * 2 : this.state === 'proceeding' ? this.t.t2 : Math.min(interval * 2, this.t.t2);
        this.timer('A', interval, again);
      };
      this.timer('A', interval, again);
    }
    this.timer('B', this.t.timeout, () => this.localFailure('timeout'));
  }

  private localFailure(kind: LocalFailure): void {
    if (this.state === 'terminated' || this.state === 'completed' || this.state === 'accepted') return;
    if (this.isInvite && this.state === 'proceeding' && kind === 'timeout') return;
    const status = kind === 'timeout' ? 408 : 503;
    const res = response(status, kind === 'timeout' ? 'Request Timeout (no response)' : 'Service Unavailable (transport error)');
    res.headers.append('CSeq', this.request.headers.get('cseq') ?? '');
    this.finalResponse = res;
    this.terminate();
    this.finalDelivered(res, kind);
  }

  /** A response matched this transaction (by branch and CSeq method). */
  receive(res: SipResponse): void {
    if (this.state === 'terminated') return;
    if (res.status < 200) {
      if (this.state === 'calling' || this.state === 'trying' || this.state === 'proceeding') {
        const first = !this.gotProvisional;
        this.gotProvisional = true;
        this.state = 'proceeding';
        if (this.isInvite) {
          this.clearTimer('A');
          this.clearTimer('B');
        }
        if (first && this.cancelWanted) this.sendCancel();
        this.handlers.onProvisional?.(res);
      }
      return;
    }
    if (this.isInvite) return this.receiveInviteFinal(res);
    if (this.state === 'completed') return;
    this.state = 'completed';
    this.finalResponse = res;
    this.clearTimer('A');
    this.clearTimer('B');
    this.timer('K', isReliable(this.dest) ? 0 : this.t.t4, () => this.terminate());
    this.finalDelivered(res);
  }

  /** Hands the final response to the TU, then lets go of the TU (only retransmissions follow). */
  private finalDelivered(res: SipResponse, local?: LocalFailure): void {
    const h = this.handlers;
    this.handlers = DONE;
    h.onFinal(res, local);
  }

  private receiveInviteFinal(res: SipResponse): void {
    if (res.status < 300) {
      if (this.state === 'accepted') {
        this.handlers.onRetransmitted2xx?.(res);
        return;
      }
      if (this.state === 'completed') return;
      this.state = 'accepted';
      this.finalResponse = res;
      this.clearTimer('A');
      this.clearTimer('B');
      this.timer('M', this.t.timeout, () => this.terminate());
      this.handlers.onFinal(res);
      return;
    }
    // Non-2xx: the transaction ACKs it itself (same branch) and absorbs retransmissions.
    this.sender.send(this.buildAck(res), this.dest);
    if (this.state === 'completed' || this.state === 'accepted') return;
    this.state = 'completed';
    this.finalResponse = res;
    this.clearTimer('A');
    this.clearTimer('B');
    this.timer('D', isReliable(this.dest) ? 0 : 32_000, () => this.terminate());
    this.finalDelivered(res);
  }

  /** The ACK for a non-2xx final response (RFC 3261 17.1.1.3). */
  private buildAck(res: SipResponse): SipRequest {
    const rq = this.request.headers;
    const h = new Headers();
    const via = rq.getList('via')[0];
    if (via) h.append('Via', via);
    for (const r of rq.getRaw('route')) h.append('Route', r);
    h.append('Max-Forwards', '70');
    h.append('From', rq.get('from') ?? '');
    h.append('To', res.headers.get('to') ?? rq.get('to') ?? '');
    h.append('Call-ID', rq.get('call-id') ?? '');
    const seq = (rq.get('cseq') ?? '').trim().split(/\s+/)[0] ?? '1';
    h.append('CSeq', `${seq} ACK`);
    return request('ACK', this.request.uri, h, EMPTY);
  }

  /**
   * Cancel a pending INVITE. RFC 3261 9.1: no CANCEL before a provisional response; it is sent
   * when the first 1xx arrives. Returns false when the INVITE already got its final response.
   */
  cancel(extra: Headers = new Headers()): boolean {
    if (!this.isInvite || this.finalResponse || this.state === 'terminated') return false;
    if (this.cancelWanted || this.cancelSent) return true;
    this.cancelWanted = extra;
    if (this.gotProvisional) this.sendCancel();
    return true;
  }

  get cancelPending(): boolean {
    return this.cancelWanted !== null && !this.cancelSent;
  }

  private sendCancel(): void {
    if (this.cancelSent || !this.cancelWanted) return;
    this.cancelSent = true;
    this.startCancel(this, this.cancelWanted);
    // If the UAS never answers the INVITE after our CANCEL, give up after 64 × T1 (RFC 3261 9.1).
    this.timer('C', this.t.timeout, () => {
      if (!this.finalResponse) {
        this.state = 'proceeding';
        const res = response(408, 'Request Timeout (no final response after CANCEL)');
        res.headers.append('CSeq', this.request.headers.get('cseq') ?? '');
        this.finalResponse = res;
        this.terminate();
        this.finalDelivered(res, 'timeout');
      }
    });
  }
}

/** Build the CANCEL for a client INVITE transaction (RFC 3261 9.1). */
export function buildCancel(invite: SipRequest, extra: Headers): SipRequest {
  const rq = invite.headers;
  const h = new Headers();
  const via = rq.getList('via')[0];
  if (via) h.append('Via', via);
  for (const r of rq.getRaw('route')) h.append('Route', r);
  h.append('Max-Forwards', '70');
  h.append('From', rq.get('from') ?? '');
  h.append('To', rq.get('to') ?? '');
  h.append('Call-ID', rq.get('call-id') ?? '');
  const seq = (rq.get('cseq') ?? '').trim().split(/\s+/)[0] ?? '1';
  h.append('CSeq', `${seq} CANCEL`);
  for (const f of extra.fields) h.append(f.name, f.value);
  return request('CANCEL', invite.uri, h, EMPTY);
}
