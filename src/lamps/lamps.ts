// Builds the lamp layer from the configuration: profiles from their directory, one LampPort per
// configured port (rendering through its profile), and the service that follows the bus.
import { resolve } from 'node:path';
import type { EventBus } from '../core/events.js';
import { loadProfiles, commandsFor, initCommands, shownMode } from './profile.js';
import { LampPort } from './lamp-port.js';
import { LampPorts } from './lamp-ports.js';
import { LampService, type LampSettings } from './lamp-service.js';
import type { LampProfile, OutputKey } from './types.js';

export interface LampsConfig extends LampSettings {
  profilesDir: string;
  ports: { id: string; path: string; profile: string }[];
  reopen: { initialMs: number; maxMs: number };
}

export interface Lamps {
  service: LampService;
  ports: LampPorts;
  profiles: Map<string, LampProfile>;
  stop(): Promise<void>;
}

export interface LampsLog {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
  debug(o: object, m?: string): void;
}

/** Load every profile the config names; an unknown profile or a bad output is a start error. */
export async function loadLampProfiles(c: LampsConfig): Promise<Map<string, LampProfile>> {
  const wanted = new Set(c.ports.map((p) => p.profile));
  if (!wanted.size) return new Map();
  const dir = resolve(c.profilesDir);
  const all = new Map((await loadProfiles(dir)).map((p) => [p.id, p]));
  for (const p of c.ports) {
    if (!all.has(p.profile)) throw new Error(`lamps.ports "${p.id}": no profile "${p.profile}" in ${dir} (have: ${[...all.keys()].join(', ') || 'none'})`);
  }
  // Every mapped output must exist on its device: a typo must fail at start, not at the first call.
  const byPort = new Map(c.ports.map((p) => [p.id, all.get(p.profile)!]));
  const check = (where: string, port: string, outputs: Partial<Record<string, OutputKey>>) => {
    const profile = byPort.get(port);
    if (!profile) return;
    for (const [colour, output] of Object.entries(outputs)) {
      try {
        commandsFor(profile, output!, 'off');
      } catch (err) {
        throw new Error(`${where}.outputs.${colour}: ${(err as Error).message}`);
      }
    }
  };
  c.desks.forEach((d, i) => check(`lamps.desks[${i}]`, d.port, d.outputs));
  if (c.system) check('lamps.system', c.system.port, c.system.outputs);
  return all;
}

export async function startLamps(c: LampsConfig, bus: EventBus, log: LampsLog): Promise<Lamps> {
  const profiles = await loadLampProfiles(c);
  const ports = new LampPorts();
  for (const p of c.ports) {
    const profile = profiles.get(p.profile)!;
    const init = initCommands(profile);
    ports.add(new LampPort({
      id: p.id, path: p.path, profile, reopen: c.reopen,
      init: init.length ? Buffer.concat(init) : null,
      render: (output, mode, all) => commandsFor(profile, output, mode, Object.fromEntries(all)),
    }, {
      opened: (id) => bus.emit('lamp.port', { id, path: p.path, open: true, error: null, at: Date.now() }),
      lost: (id, error) => bus.emit('lamp.port', { id, path: p.path, open: false, error, at: Date.now() }),
      commandFailed: (id, command, why) => log.warn({ port: id, command: command.toString('hex'), why }, 'lamp command given up'),
    }, log));
  }
  const profileOf = new Map(c.ports.map((p) => [p.id, profiles.get(p.profile)!]));
  const service = new LampService(bus, c, {
    // What the device can show (flash is steady on relays): a picture that looks the same on
    // the device sends nothing.
    set: (portId, output, mode) => {
      const profile = profileOf.get(portId);
      if (profile) ports.get(portId)?.set(output, shownMode(profile, mode));
    },
  }, log);
  ports.startAll();
  return {
    service, ports, profiles,
    async stop() {
      service.stop();
      await ports.stopAll();
    },
  };
}
