// RTP/RTCP port pairs for the media engine: even RTP ports in [portMin, portMax), each paired
// with the odd RTCP port above it (both inside the range). Allocation and release are O(1): the
// free pairs sit in a ring buffer, taken from the front and returned to the back, so a port that
// was just released is the last one handed out again (a late packet for a finished call does not
// reach the next call at once). Pure: binding (and skipping ports that fail to bind) is the
// caller's business.

export class PortPool {
  readonly portMin: number;
  readonly portMax: number;
  /** Number of pairs in the range. */
  readonly capacity: number;
  /** Ring of free pair indexes (pair i = RTP port base + 2i). */
  private readonly ring: Int32Array;
  private head = 0;
  private count: number;
  /** 1 where pair i is handed out. */
  private readonly used: Uint8Array;
  private readonly base: number;

  constructor(portMin: number, portMax: number) {
    if (!Number.isInteger(portMin) || !Number.isInteger(portMax)) throw new RangeError('port range bounds must be integers');
    if (portMin < 1 || portMax > 65536 || portMin >= portMax) throw new RangeError(`bad port range [${portMin}, ${portMax})`);
    this.portMin = portMin;
    this.portMax = portMax;
    this.base = portMin % 2 === 0 ? portMin : portMin + 1;
    // Pair i: RTP base+2i and RTCP base+2i+1, both < portMax.
    this.capacity = Math.max(0, Math.floor((portMax - this.base) / 2));
    if (this.capacity === 0) throw new RangeError(`port range [${portMin}, ${portMax}) holds no even/odd pair`);
    this.ring = new Int32Array(this.capacity);
    for (let i = 0; i < this.capacity; i++) this.ring[i] = i;
    this.count = this.capacity;
    this.used = new Uint8Array(this.capacity);
  }

  /** Pairs free right now. */
  get free(): number {
    return this.count;
  }

  /** Pairs handed out right now. */
  get inUse(): number {
    return this.capacity - this.count;
  }

  /** The RTP port (even; RTCP is port + 1) of the pair free longest, or null when none is free. */
  allocate(): number | null {
    if (this.count === 0) return null;
    const i = this.ring[this.head]!;
    this.head = this.head + 1 === this.capacity ? 0 : this.head + 1;
    this.count--;
    this.used[i] = 1;
    return this.base + 2 * i;
  }

  /** Returns a pair (by its RTP port) to the back of the free list. Throws if it is not handed out. */
  release(port: number): void {
    const i = this.index(port);
    if (i < 0 || this.used[i] !== 1) throw new Error(`port ${port} is not allocated from this pool`);
    this.used[i] = 0;
    let tail = this.head + this.count;
    if (tail >= this.capacity) tail -= this.capacity;
    this.ring[tail] = i;
    this.count++;
  }

  isAllocated(port: number): boolean {
    const i = this.index(port);
    return i >= 0 && this.used[i] === 1;
  }

  private index(port: number): number {
    if (!Number.isInteger(port) || port < this.base || (port - this.base) % 2 !== 0) return -1;
    const i = (port - this.base) / 2;
    return i < this.capacity ? i : -1;
  }
}
