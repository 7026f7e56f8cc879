// One side of a bridged call: its dialog, its own session timer (RFC 4028 is per leg in a
// B2BUA), whether an offer/answer transaction is in progress (for 491 on glare), and the last
// body we sent on it (re-used for session refreshes by re-INVITE).
import type { SipRequest, SipResponse } from './message.js';
import type { Dialog } from './dialog.js';
import type { SessionTimer } from './session-timer.js';
import { optionTags, parseSessionExpires } from './grammar.js';

export type LegRole = 'citizen' | 'calltaker' | 'region';

export class Leg {
  dialog: Dialog | null = null;
  timer: SessionTimer | null = null;
  /** An INVITE/UPDATE offer-answer exchange is in progress on this leg (either direction). */
  busy = false;
  lastBody: { body: Buffer; contentType?: string } | null = null;
  /** Methods the peer said it allows (Allow header), upper case. */
  peerAllows: string[] = [];
  peerSupportsTimer = false;
  ended = false;

  constructor(readonly role: LegRole) {}

  /** Learn what the peer supports from one of its requests or responses. */
  learnPeer(msg: SipRequest | SipResponse): void {
    const allow = msg.headers.getList('allow');
    if (allow.length) this.peerAllows = allow.map((a) => a.trim().toUpperCase());
    if (optionTags(msg.headers, 'supported').includes('timer') || optionTags(msg.headers, 'require').includes('timer')) {
      this.peerSupportsTimer = true;
    }
  }

  get canUpdate(): boolean {
    return this.peerAllows.includes('UPDATE');
  }

  stop(): void {
    this.ended = true;
    this.timer?.stop();
    this.timer = null;
  }
}

/** The interval and refresher a request or response asks for, if any. */
export function sessionExpiresOf(msg: SipRequest | SipResponse): { seconds: number; refresher?: 'uac' | 'uas' } | null {
  const v = msg.headers.get('session-expires');
  return v ? parseSessionExpires(v) : null;
}
