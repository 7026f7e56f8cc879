// A few RTP endpoints bound ahead of need, so a new call's SDP answer does not wait for the
// worker to bind sockets: the INVITE path stays on the main thread.
import type { MediaEngine } from './engine.js';
import type { EndpointInfo } from './types.js';

export class SpareEndpoints {
  private readonly spare: EndpointInfo[] = [];
  private filling = 0;
  private stopped = false;

  constructor(
    private readonly engine: MediaEngine,
    private readonly target: number,
  ) {
    this.refill();
  }

  /** A ready endpoint, or a freshly allocated one when none is spare. */
  take(): Promise<EndpointInfo> {
    const ready = this.spare.pop();
    this.refill();
    return ready ? Promise.resolve(ready) : this.engine.allocate();
  }

  get count(): number {
    return this.spare.length;
  }

  private refill(): void {
    while (!this.stopped && this.spare.length + this.filling < this.target) {
      this.filling++;
      this.engine.allocate().then(
        (info) => {
          this.filling--;
          if (this.stopped) this.engine.release(info.id);
          else this.spare.push(info);
        },
        // Range used up: calls take what is left; spare ones come back as calls end.
        () => {
          this.filling--;
        },
      );
      if (this.filling > this.target) break;
    }
  }

  /** Give the spare endpoints back (shutdown). */
  stop(): void {
    this.stopped = true;
    for (const e of this.spare.splice(0)) this.engine.release(e.id);
  }
}
