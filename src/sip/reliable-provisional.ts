// RFC 3262 on our UAS legs: reliable provisional responses (RSeq, Require: 100rel),
// retransmitted until PRACKed; the final response waits for outstanding PRACKs.
import type { SipRequest, SipResponse } from './message.js';
import type { ServerTransaction, Timers } from './transactions.js';
import { parseRAck } from './grammar.js';

interface Pending {
  rseq: number;
  res: SipResponse;
  timer: NodeJS.Timeout | null;
}

export class ReliableProvisionals {
  private rseq = Math.floor(Math.random() * 1000) + 1;
  private pending: Pending | null = null;
  private readonly queue: SipResponse[] = [];
  private finalQueued: SipResponse | null = null;

  constructor(
    private readonly tx: ServerTransaction,
    private readonly t: Timers,
    private readonly onGiveUp: () => void,
  ) {}

  /** Send a 1xx reliably (queued if one is still un-PRACKed: RFC 3262 3). */
  sendProvisional(res: SipResponse): void {
    if (this.pending) {
      this.queue.push(res);
      return;
    }
    const rseq = this.rseq++;
    res.headers.set('RSeq', String(rseq));
    if (!res.headers.getList('require').some((t) => t.toLowerCase() === '100rel')) res.headers.append('Require', '100rel');
    const p: Pending = { rseq, res, timer: null };
    this.pending = p;
    this.tx.respond(res);
    let interval = this.t.t1;
    let elapsed = 0;
    const again = () => {
      if (this.pending !== p || this.tx.finished) return;
      elapsed += interval;
      if (elapsed >= this.t.timeout) {
        // RFC 3262 3: no PRACK in 64 × T1 → reject the INVITE with a 5xx.
        this.pending = null;
        this.onGiveUp();
        return;
      }
      this.tx.retransmitProvisional(res);
      interval = Math.min(interval * 2, this.t.t2);
      p.timer = setTimeout(again, interval);
    };
    p.timer = setTimeout(again, interval);
  }

  /**
   * Send the final response now, or once the outstanding reliable 1xx is PRACKed.
   * Error responses go at once (they end the transaction anyway).
   */
  sendFinal(res: SipResponse): void {
    if (this.pending && res.status < 300) {
      this.finalQueued = res;
      return;
    }
    this.stop();
    this.tx.respond(res);
  }

  /** A PRACK arrived: true if it matched the outstanding reliable provisional. */
  prack(req: SipRequest): boolean {
    const rack = parseRAck(req.headers.get('rack') ?? '');
    const p = this.pending;
    if (!rack || !p || rack.rseq !== p.rseq) return false;
    if (p.timer) clearTimeout(p.timer);
    this.pending = null;
    const next = this.queue.shift();
    if (next) this.sendProvisional(next);
    else if (this.finalQueued) {
      const f = this.finalQueued;
      this.finalQueued = null;
      this.tx.respond(f);
    }
    return true;
  }

  stop(): void {
    if (this.pending?.timer) clearTimeout(this.pending.timer);
    this.pending = null;
    this.queue.length = 0;
  }
}
