// What the SIP adapter and the core need from the media layer, as interfaces the composition
// root fills in. The SIP adapter never imports the media adapter, and vice versa.
import type { ToneName } from '../media/types.js';

/** A leg of a call as the media layer knows it: the citizen, the call taker, or a region attempt. */
export type MediaLegName = string;
export const CITIZEN: MediaLegName = 'citizen';
export const CALLTAKER: MediaLegName = 'calltaker';

export type SdpAnswer = { ok: true; sdp: Buffer } | { ok: false; status: number; reason: string };

/** The anchored media of one call: one RTP endpoint per leg, mixed on the bridge. */
export interface CallMediaPort {
  /** Answer an offer received on a leg (allocates the leg's endpoint on first use). The same
   *  offer version again returns the same answer and changes nothing (session refresh). */
  answer(leg: MediaLegName, sdp: Buffer): Promise<SdpAnswer>;
  /** Our offer for a leg (allocates its endpoint on first use). */
  offer(leg: MediaLegName, opts?: { direction?: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive' }): Promise<Buffer>;
  /** The peer's answer to our offer. */
  accept(leg: MediaLegName, sdp: Buffer): { ok: true } | { ok: false; reason: string };
  /** The SDP we last sent on a leg (re-sent unchanged on a session refresh). */
  current(leg: MediaLegName): Buffer | null;
  /** Direction the peer of a leg last asked for (to mirror hold across legs). */
  peerDirection(leg: MediaLegName): 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive' | null;
  /** This leg takes part in the mix (the citizen and call taker from the start; a region once answered). */
  join(leg: MediaLegName): void;
  /** Release a leg's endpoint (the leg ended); the others keep talking. */
  release(leg: MediaLegName): void;
  /** Give a leg's media another name (a transferred call-taker leg takes the old one's place). */
  rename(from: MediaLegName, to: MediaLegName): void;
  /** Release everything. */
  close(): void;
}

export interface MediaPort {
  /** Anchored media for a new call; throws `MediaUnavailableError` when no RTP port is free. */
  open(callId: string): CallMediaPort;
  /** A private tone to the call taker of a call (null: stop). */
  tone(callId: string, tone: ToneName | null): void;
}

export class MediaUnavailableError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'MediaUnavailableError';
  }
}
