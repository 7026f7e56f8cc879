// `amk-bridge demo` (npm run demo): the whole flow on loopback for newcomers. The daemon on the
// embedded defaults plus simulated peers over real SIP (SIPp): citizens calling 112, a call
// taker pressing *1, one region that answers and one that never does (so the message and the
// overflow show), a local message receiver; a live view of requests, attempts, messages and the
// desk lamp; a statistics summary at the end. Every message says test: true; peers must be on
// loopback. It ends by itself; Ctrl-C stops it cleanly.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateConfig } from '../config/load.js';
import { createLogger } from '../log.js';
import type { CliIO } from './check-config.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const SCENARIOS = join(ROOT, 'tests/scenarios');
const LOOPBACK = '127.0.0.1';
const COLOUR: Record<string, string> = { red: '\x1b[41m', amber: '\x1b[43m', green: '\x1b[42m', off: '\x1b[100m' };
const LAMP: Record<string, string[]> = {
  idle: ['off'], dialing: ['amber'], redialing: ['amber'], connected: ['green'], 'no-contact-pending': ['red'],
  'no-contact-delivered': ['red'], escalation: ['red', 'amber'], 'overflow-dialing': ['amber', 'green'], 'overflow-connected': ['green'],
};

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = netServer().listen(0, LOOPBACK, () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

export async function demoCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const calls = Number(argv[argv.indexOf('--calls') + 1] ?? 0) || 2;
  const peers: ChildProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'amk-demo-'));
  const sipp = (scenario: string, args: string[]) => {
    const p = spawn('sipp', ['-sf', join(SCENARIOS, scenario), '-i', LOOPBACK, '-timeout', '60', '-timeout_error', '-key', 'answer_ms', '500', '-key', 'linger_ms', '0',
      '-key', 'pause_ms', '800', '-key', 'dtmf1', '*', '-key', 'dtmf2', '1', '-key', 'hold_ms', '9000', ...args], { stdio: 'ignore' });
    peers.push(p);
    return p;
  };
  const received: { type: string; key: string }[] = [];
  let receiver: Server | null = null;
  let bridge: Awaited<ReturnType<typeof import('../app.js').startBridge>> | null = null;
  let stopping = false;
  const cleanup = async () => {
    if (stopping) return;
    stopping = true;
    for (const p of peers) p.kill('SIGKILL');
    await bridge?.stop();
    receiver?.close();
    rmSync(dir, { recursive: true, force: true });
  };
  const onSigint = () => void cleanup().then(() => process.exit(130));
  process.once('SIGINT', onSigint);
  try {
    const [ct, home, other, recv] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const m = JSON.parse(body) as { type: string; test: boolean };
        received.push({ type: m.type, key: String(req.headers['idempotency-key']) });
        res.writeHead(m.test ? 201 : 422).end();
      });
    }).listen(recv, LOOPBACK);
    const input = {
      node: 'demo', log: { level: 'silent' },
      sip: { listen: [{ transport: 'udp', address: LOOPBACK, port: 0 }] },
      trunks: [{ id: 'trunk-a', networks: ['127.0.0.0/8'] }],
      callTakers: { target: `sip:1001@${LOOPBACK}:${ct}`, networks: ['127.0.0.0/8'], probe: false },
      regions: [
        { id: 'hovedstaden', name: 'Region Hovedstaden', code: '01', targets: [`sip:amk@${LOOPBACK}:${home}`], ringTimerS: 2, probe: false,
          messageEndpoints: { primary: `http://${LOOPBACK}:${recv}/amk` }, overflow: { policy: 'after-message', regions: [{ region: 'sjaelland' }] } },
        { id: 'sjaelland', name: 'Region Sjælland', code: '02', targets: [`sip:amk@${LOOPBACK}:${other}`], ringTimerS: 3, attempts: 1, probe: false,
          messageEndpoints: { primary: `http://${LOOPBACK}:${recv}/amk` } },
      ],
      journal: { path: join(dir, 'journal.sqlite') },
      recontact: { path: join(dir, 'recontact.sqlite'), keyFile: join(dir, 'recontact.key') },
      messages: { test: true, probeIntervalS: 0 },
      mqtt: { enabled: false },
      conference: { interDigitMs: 300 },
    };
    // Demo peers must be local: nothing leaves this machine.
    for (const r of input.regions) if (!r.targets.every((u) => u.includes(`@${LOOPBACK}:`))) throw new Error('the demo only dials loopback peers');
    const v = validateConfig(input);
    if (!v.ok) throw new Error(`demo configuration invalid: ${JSON.stringify(v.errors)}`);
    const { startBridge } = await import('../app.js');
    bridge = await startBridge(v.config, { logger: createLogger({ level: 'silent', pretty: false }) });
    const b = bridge;
    const line = (s: string) => io.stdout.write(`${new Date().toISOString().slice(11, 19)}  ${s}\n`);
    const lamp = (state: string) => (LAMP[state] ?? ['off']).map((c) => `${COLOUR[c]}  \x1b[0m`).join('');
    b.bus.on('call.started', (e) => line(`112 call ${e.callId.slice(0, 12)} from trunk ${e.facts.trunk}`));
    b.bus.on('request.started', (e) => line(`call taker pressed *1: request ${e.requestId.slice(0, 8)} to ${e.region}`));
    b.bus.on('conference.attempt', (e) => line(`  attempt ${e.n} ${e.region}: ${e.phase}${e.status ? ` (${e.status})` : ''}`));
    b.bus.on('message.committed', (e) => line(`  message ${e.type}${e.type === 'no-contact' ? ' "Ingen kontakt til AMK"' : ''} committed`));
    b.bus.on('message.delivered', (e) => line(`  message ${e.type} delivered in ${e.latencyMs.toFixed(1)} ms`));
    b.bus.on('lamp.changed', (e) => line(`  lamp ${e.lamp.padEnd(8)} ${lamp(e.state)} ${e.state}`));
    // The home region never answers; the overflow region (Sjælland) does.
    sipp('region-ring.xml', ['-p', String(home), '-m', String(2 * calls)]);
    sipp('region-answer.xml', ['-p', String(other), '-m', String(calls)]);
    sipp('calltaker-info-trigger.xml', ['-p', String(ct), '-m', String(calls)]);
    await new Promise((r) => setTimeout(r, 500));
    line(`demo: ${calls} citizens call 112; Hovedstaden never answers, Sjælland takes the overflow`);
    const trunk = sipp('trunk-call.xml', [`${LOOPBACK}:${b.port('udp')}`, '-m', String(calls), '-r', '1', '-rp', '4000']);
    await new Promise<void>((r) => trunk.once('exit', () => r()));
    await new Promise((r) => setTimeout(r, 1500));
    const now = Date.now();
    const s = b.journal.summary(now - 3600_000, now + 1);
    io.stdout.write(`\nsummary: requests ${JSON.stringify(s.requests)}; attempts ${JSON.stringify(s.attempts)}; messages received ${received.length} (${[...new Set(received.map((r) => r.type))].join(', ')}), all test: true\n`);
    return received.some((r) => r.type === 'no-contact') ? 0 : 1;
  } catch (err) {
    io.stderr.write(`amk-bridge demo: ${(err as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
    await cleanup();
  }
}
