// The lamp serial ports of the bridge, by id: started, watched and stopped together.

import type { LampPort } from './lamp-port.js';
import type { LampPortStatus } from './types.js';

export class LampPorts {
  private readonly ports = new Map<string, LampPort>();

  /** Adds a port; ids are unique. A port added after startAll() is started by the caller. */
  add(port: LampPort): void {
    if (this.ports.has(port.id)) throw new Error(`lamp port "${port.id}" is already defined`);
    this.ports.set(port.id, port);
  }

  get(id: string): LampPort | undefined {
    return this.ports.get(id);
  }

  /** Every port, in the order added. */
  list(): LampPort[] {
    return [...this.ports.values()];
  }

  status(): LampPortStatus[] {
    return this.list().map((p) => p.status());
  }

  /** Opens every port in the background; never throws. */
  startAll(): void {
    for (const p of this.ports.values()) p.start();
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.list().map((p) => p.stop()));
  }

  /** Resolves when every port's queue is empty and nothing is in flight. */
  async idle(): Promise<void> {
    await Promise.all(this.list().map((p) => p.idle()));
  }
}
