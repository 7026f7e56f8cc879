// `amk-bridge lamp-test`: cycles every configured lamp through its states so a technician can
// check wiring, profiles and colours at the desks. Opens the serial ports itself: run it while
// the daemon is stopped (the MQTT command does the same inside the running daemon).

import { parseArgs } from 'node:util';
import { EventBus } from '../core/events.js';
import { formatConfigErrors, loadConfig } from '../config/load.js';
import { startLamps } from '../lamps/lamps.js';
import type { CliIO } from './check-config.js';

export const LAMP_TEST_USAGE = `Usage: amk-bridge lamp-test [--config FILE] [--step-ms MS]

Shows every desk lamp in each of its states (idle, dialing, redialing, connected,
no-contact-pending, no-contact-delivered, escalation, overflow-dialing,
overflow-connected), then the system lamp (ok, fault, alarm), each for --step-ms
(default 1500), and prints each step. Stop the daemon first: a serial port has one user.

Options:
  -c, --config FILE   Configuration file (default /etc/amk-bridge/amk-bridge.yaml).
  --step-ms MS        How long each state is shown.
  -h, --help          Show this help.

Exit status: 0 done; 1 configuration, profile or port error; 2 usage error.
`;

export async function lampTestCommand(argv: readonly string[], io: CliIO): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      options: { config: { type: 'string', short: 'c' }, 'step-ms': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (err) {
    io.stderr.write(`amk-bridge lamp-test: ${(err as Error).message}\n\n${LAMP_TEST_USAGE}`);
    return 2;
  }
  if (values.help) {
    io.stdout.write(LAMP_TEST_USAGE);
    return 0;
  }
  const stepMs = values['step-ms'] === undefined ? 1500 : Number(values['step-ms']);
  if (!Number.isInteger(stepMs) || stepMs < 0) {
    io.stderr.write(`amk-bridge lamp-test: --step-ms must be a whole number of milliseconds\n`);
    return 2;
  }
  const file = values.config ?? '/etc/amk-bridge/amk-bridge.yaml';
  const loaded = await loadConfig(file);
  if (!loaded.ok) {
    io.stderr.write(`${formatConfigErrors(file, loaded.errors)}\n`);
    return 1;
  }
  const c = loaded.config.lamps;
  if (!c.desks.length && !c.system) {
    io.stdout.write('no lamps configured (lamps.desks and lamps.system are empty)\n');
    return 0;
  }
  const bus = new EventBus();
  const lost: string[] = [];
  bus.on('lamp.port', (e) => {
    io.stdout.write(`port ${e.id} (${e.path}): ${e.open ? 'open' : `NOT OPEN: ${e.error}`}\n`);
    if (!e.open) lost.push(e.id);
  });
  const quiet = { info() {}, warn() {}, debug() {} };
  let lamps;
  try {
    lamps = await startLamps(c, bus, quiet);
  } catch (err) {
    io.stderr.write(`amk-bridge lamp-test: ${(err as Error).message}\n`);
    return 1;
  }
  try {
    await lamps.service.lampTest(stepMs, (lamp, state) => io.stdout.write(`${lamp.padEnd(16)} ${state}\n`));
    await Promise.race([lamps.ports.idle(), new Promise((r) => setTimeout(r, 3000))]);
  } finally {
    await lamps.stop();
  }
  if (lost.length) {
    io.stderr.write(`amk-bridge lamp-test: ports not usable: ${lost.join(', ')}\n`);
    return 1;
  }
  return 0;
}
