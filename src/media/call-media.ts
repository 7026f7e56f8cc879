// The anchored media of one call: an RTP endpoint per leg, its SDP offer/answer state, and its
// place in the call's mix. Implements the core's CallMediaPort on top of the media engine.
import type { MediaEngine } from './engine.js';
import type { Codec, EndpointInfo, EndpointMedia } from './types.js';
import { parseSdp, answerOffer, createOffer, applyAnswer, SdpSession, type OfferWeSent } from './sdp.js';
import type { CallMediaPort, MediaLegName, SdpAnswer } from '../core/media-port.js';

export interface CallMediaOptions {
  /** Address written into our SDP (the engine's bind address or the public one). */
  sdpAddress: string;
  codecs: Codec[];
  latchNetworks: string[];
}

interface LegState {
  endpoint: Promise<EndpointInfo>;
  info: EndpointInfo | null;
  session: SdpSession;
  /** Our last SDP on this leg. */
  local: Buffer | null;
  /** The o= line of the peer's last SDP. */
  remoteOrigin: string | null;
  offered: OfferWeSent | null;
  media: EndpointMedia | null;
  joined: boolean;
  released: boolean;
}

const TELEPHONE_EVENT = 101;

export class CallMedia implements CallMediaPort {
  private readonly legs = new Map<MediaLegName, LegState>();
  private closed = false;

  constructor(
    private readonly engine: MediaEngine,
    readonly callId: string,
    private readonly opts: CallMediaOptions,
    private readonly hooks: { endpointAdded(id: string, leg: MediaLegName): void; endpointRemoved(id: string): void },
    private readonly allocate: () => Promise<EndpointInfo> = () => engine.allocate(),
  ) {}

  private leg(name: MediaLegName): LegState {
    let s = this.legs.get(name);
    if (!s) {
      const endpoint = this.allocate();
      s = { endpoint, info: null, session: new SdpSession(), local: null, remoteOrigin: null, offered: null, media: null, joined: false, released: false };
      const state = s;
      endpoint.then((info) => {
        state.info = info;
        this.hooks.endpointAdded(info.id, name);
        if (state.released || this.closed) this.engine.release(info.id);
      }, () => {});
      this.legs.set(name, s);
    }
    return s;
  }

  /** Endpoint id of a leg, if allocated. */
  endpointId(name: MediaLegName): string | null {
    return this.legs.get(name)?.info?.id ?? null;
  }

  async answer(name: MediaLegName, body: Buffer): Promise<SdpAnswer> {
    const text = body.toString('utf8');
    const offer = parseSdp(text);
    if (!offer) return { ok: false, status: 400, reason: 'unreadable SDP' };
    const s = this.leg(name);
    const info = await s.endpoint;
    const origin = originLine(text);
    // The same offer version again (a session refresh): same answer, nothing reconfigured.
    if (s.local && origin !== null && origin === s.remoteOrigin && !s.offered) return { ok: true, sdp: s.local };
    if (s.local) s.session.bump();
    const res = answerOffer(offer, { address: this.opts.sdpAddress, port: info.port, codecs: this.opts.codecs, session: s.session.origin() });
    if (!res.ok) return { ok: false, status: res.status, reason: res.reason };
    s.remoteOrigin = origin;
    s.offered = null;
    s.local = Buffer.from(res.sdp);
    this.configure(s, info, res.media);
    return { ok: true, sdp: s.local };
  }

  async offer(name: MediaLegName, opts: { direction?: EndpointMedia['direction'] } = {}): Promise<Buffer> {
    const s = this.leg(name);
    const info = await s.endpoint;
    if (s.local) s.session.bump();
    const sdp = createOffer({
      address: this.opts.sdpAddress, port: info.port, codecs: this.opts.codecs,
      telephoneEvent: TELEPHONE_EVENT, ptimeMs: 20, direction: opts.direction ?? 'sendrecv', session: s.session.origin(),
    });
    s.offered = { codecs: this.opts.codecs, telephoneEvent: TELEPHONE_EVENT };
    s.local = Buffer.from(sdp);
    return s.local;
  }

  accept(name: MediaLegName, body: Buffer): { ok: true } | { ok: false; reason: string } {
    const s = this.legs.get(name);
    if (!s?.offered || !s.info) return { ok: false, reason: 'no offer outstanding on this leg' };
    const text = body.toString('utf8');
    const answer = parseSdp(text);
    if (!answer) return { ok: false, reason: 'unreadable SDP answer' };
    const res = applyAnswer(s.offered, answer);
    if (!res.ok) return res;
    s.remoteOrigin = originLine(text);
    s.offered = null;
    this.configure(s, s.info, res.media);
    return { ok: true };
  }

  current(name: MediaLegName): Buffer | null {
    return this.legs.get(name)?.local ?? null;
  }

  peerDirection(name: MediaLegName): EndpointMedia['direction'] | null {
    const d = this.legs.get(name)?.media?.direction;
    if (!d) return null;
    // Stored from our point of view; the peer's is the mirror image.
    return d === 'sendonly' ? 'recvonly' : d === 'recvonly' ? 'sendonly' : d;
  }

  join(name: MediaLegName): void {
    const s = this.legs.get(name);
    if (!s || s.released) return;
    s.joined = true;
    s.endpoint.then(() => this.remix(), () => {});
  }

  release(name: MediaLegName): void {
    const s = this.legs.get(name);
    if (!s) return;
    // Forget the leg so its name can be used again (a new call-taker leg after a transfer).
    this.legs.delete(name);
    if (s.released) return;
    s.released = true;
    if (s.info) {
      this.hooks.endpointRemoved(s.info.id);
      this.engine.release(s.info.id);
    }
    this.remix();
  }

  rename(from: MediaLegName, to: MediaLegName): void {
    const s = this.legs.get(from);
    if (!s) return;
    this.release(to);
    this.legs.delete(from);
    this.legs.set(to, s);
    if (s.info) this.hooks.endpointAdded(s.info.id, to);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.engine.setConference(this.callId, []);
    for (const name of [...this.legs.keys()]) this.release(name);
  }

  private configure(s: LegState, info: EndpointInfo, media: EndpointMedia): void {
    s.media = { ...media, latchNetworks: this.opts.latchNetworks };
    if (!s.released) this.engine.configure(info.id, s.media);
  }

  private remix(): void {
    if (this.closed) return;
    const ids: string[] = [];
    for (const s of this.legs.values()) if (s.joined && !s.released && s.info) ids.push(s.info.id);
    this.engine.setConference(this.callId, ids);
  }
}

function originLine(sdp: string): string | null {
  const m = /^o=(.*)$/m.exec(sdp);
  return m ? m[1]!.trim() : null;
}
