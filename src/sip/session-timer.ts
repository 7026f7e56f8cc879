// RFC 4028 session timer for one leg: the refresher refreshes at half the interval; the other
// side tears the session down if no refresh came by interval − min(32 s, interval / 3).

export interface SessionTimerHandlers {
  /** We are the refresher and a refresh is due: send UPDATE or re-INVITE. */
  refresh(): void;
  /** The peer was the refresher and did not refresh: end the call. */
  expired(): void;
}

export class SessionTimer {
  private handle: NodeJS.Timeout | null = null;

  constructor(
    public intervalS: number,
    public weRefresh: boolean,
    private readonly handlers: SessionTimerHandlers,
  ) {
    this.arm();
  }

  /** A refresh (re-INVITE/UPDATE 2xx, either direction) succeeded: start a new interval. */
  reset(intervalS = this.intervalS, weRefresh = this.weRefresh): void {
    this.intervalS = intervalS;
    this.weRefresh = weRefresh;
    this.arm();
  }

  private arm(): void {
    this.stop();
    const ms = this.weRefresh
      ? (this.intervalS * 1000) / 2
      : (this.intervalS - Math.min(32, this.intervalS / 3)) * 1000;
    this.handle = setTimeout(() => {
      this.handle = null;
      if (this.weRefresh) this.handlers.refresh();
      else this.handlers.expired();
    }, ms);
    this.handle.unref?.();
  }

  stop(): void {
    if (this.handle) clearTimeout(this.handle);
    this.handle = null;
  }
}
