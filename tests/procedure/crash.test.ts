// The safety invariant across `kill -9`: the real daemon (dist/, as a child process) runs a
// conference-in against SIPp peers and a real HTTP receiver, is killed at a chosen point, and is
// started again on the same config and journal. Nothing is lost, every copy of a message carries
// the same Idempotency-Key, exactly one "Ingen kontakt til AMK" reaches the region per request,
// and a restart with nothing unfinished sends nothing.
import t from 'tap';
import type { Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Ajv from 'ajv';
import { stringify } from 'yaml';
import { startDaemon, type Daemon, type LogLine } from '../helpers/daemon.js';
import { startSipp, runSipp, type SippHandle, type SippResult } from '../helpers/sipp.js';
import { startReceiver, type Receiver, type ReceivedRequest, type Script } from '../helpers/receiver.js';
import { testConfigInput } from '../helpers/config.js';
import { Journal } from '../../src/journal/journal.js';
import { NO_CONTACT_TEXT } from '../../src/domain/message.js';
import type { RegionInput } from '../../src/config/schema.js';

const schema = JSON.parse(readFileSync(resolve(import.meta.dirname, '../../config/message.schema.json'), 'utf8'));
const validateMessage = new Ajv.default({ allErrors: true, strict: false }).compile(schema);

interface Message {
  type: string;
  text?: string;
  reason?: string;
  requestId: string;
  messageId: string;
  test: boolean;
  attempts: { n: number; outcome: string | null; ended: string | null; reason: string | null }[];
}

interface Rig {
  dir: string;
  configPath: string;
  journalPath: string;
  receiver: Receiver;
  region: SippHandle;
  calltaker: SippHandle;
  daemons: Daemon[];
  /** Starts the daemon on the rig's config and journal; resolves once it listens. */
  start(): Promise<{ daemon: Daemon; udp: number }>;
  /** The citizen's call through the daemon's UDP port (held longer than the test). */
  call(udp: number): Promise<SippResult>;
  /** Every daemon's exit and its last log lines, for failure messages. */
  diag(): string;
  /** The same as assertion extras: shown when the assertion fails. */
  why(): { daemons: string };
}

async function rig(t: Test, o: { region: { scenario: string; calls?: number; keys?: Record<string, string | number> }; regionCfg: Partial<RegionInput>; script?: Script }): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'amk-crash-'));
  const daemons: Daemon[] = [];
  t.teardown(async () => {
    for (const d of daemons) await d.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const receiver = await startReceiver(t, o.script ? { script: o.script } : {});
  const region = startSipp(t, { scenario: o.region.scenario, calls: o.region.calls ?? 1, keys: o.region.keys ?? {}, timeoutS: 40 });
  const calltaker = startSipp(t, { scenario: 'calltaker-info-trigger.xml', keys: { pause_ms: 200 }, timeoutS: 40 });
  await Promise.all([region.ready, calltaker.ready]);

  const journalPath = join(dir, 'journal.sqlite');
  const configPath = join(dir, 'amk-bridge.yaml');
  const input = testConfigInput({
    callTakerTarget: `sip:1001@127.0.0.1:${calltaker.port}`,
    regionTargets: [`sip:amk@127.0.0.1:${region.port}`],
    region: {
      // Longer than any test here: no escalation follow-up muddles the counts.
      escalationS: 600,
      messageEndpoints: { primary: receiver.url('/amk/messages'), secondary: null },
      ...o.regionCfg,
    },
    log: { level: 'debug' },
    journal: { path: journalPath },
    conference: { interDigitMs: 150 },
    messages: { test: true, probeIntervalS: 0, backoff: { initialMs: 50, maxMs: 500 } },
  });
  writeFileSync(configPath, stringify(input));

  const diag = (): string =>
    daemons
      .map((d, i) => {
        const exit = d.proc.exitCode !== null || d.proc.signalCode !== null ? `exited ${d.proc.exitCode ?? d.proc.signalCode}` : 'running';
        const tail = d.lines
          .filter((l) => (l.level ?? 0) >= 40)
          .slice(-8)
          .concat(d.lines.slice(-8))
          .map((l) => JSON.stringify(l).slice(0, 400));
        return `daemon #${i + 1} (${exit}):\n  ${tail.join('\n  ')}`;
      })
      .join('\n') + `\nreceiver saw ${receiver.received.length} POST(s): ${JSON.stringify(receiver.received.map((r) => [r.n, r.key, r.status]))}`;

  return {
    dir, configPath, journalPath, receiver, region, calltaker, daemons, diag,
    why: () => ({ daemons: diag() }),
    async start() {
      const daemon = startDaemon(t, configPath);
      daemons.push(daemon);
      const { udp } = await daemon.ready;
      return { daemon, udp };
    },
    call(udp) {
      return runSipp(t, { scenario: 'trunk-call.xml', remote: `127.0.0.1:${udp}`, keys: { hold_ms: 30_000 }, timeoutS: 40 });
    },
  };
}

async function waitFor(pred: () => boolean, ms: number, what: string, diag: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${diag()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The daemon's first log line with this msg; on a timeout the error tells every daemon's story. */
async function logged(r: Rig, d: Daemon, pred: string | ((l: LogLine) => boolean), ms = 15_000): Promise<LogLine> {
  const what = typeof pred === 'string' ? `"${pred}"` : 'log line';
  try {
    return await d.waitForLog(typeof pred === 'string' ? (l) => l.msg === pred : pred, ms, what);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${r.diag()}`);
  }
}

/** SIGKILL and check that it really died of it. */
async function kill9(t: Test, d: Daemon): Promise<void> {
  await d.kill('SIGKILL');
  t.equal((await d.exited).signal, 'SIGKILL', 'the daemon died of kill -9');
}

/** SIGTERM: the daemon drains, stops and exits 0. */
async function stopCleanly(t: Test, r: Rig, d: Daemon): Promise<void> {
  await d.kill('SIGTERM');
  const { code, signal } = await d.exited;
  t.equal(code, 0, `clean stop exits 0 (got ${code ?? signal})`, r.why());
  t.ok(d.lines.some((l) => l.msg === 'amk-bridge stopped'), 'it says it stopped');
}

/**
 * The invariant on what the receiver saw for one request: every copy that carries the text is
 * that request's no-contact message with its key; exactly one is accepted once de-duplicated;
 * all copies of it are the same message. Returns the accepted message.
 */
function checkOneNoContact(t: Test, r: Rig, requestId: string): Message {
  const key = `${requestId}:no-contact`;
  const all = r.receiver.received;
  t.ok(all.length > 0, `the receiver got the message`, r.why());
  t.same([...new Set(all.map((x) => x.key))], [key], `every copy carries the key ${key}`, r.why());
  const carrying = all.filter((x) => x.body.includes(NO_CONTACT_TEXT));
  t.equal(carrying.length, all.length, 'every copy is the text-carrying no-contact message (no follow-ups here)');
  t.equal(new Set(all.map((x) => x.body)).size, 1, 'every copy is byte-for-byte the same message');
  const accepted = r.receiver.accepted();
  t.equal(accepted.length, 1, `exactly one message accepted after de-duplication`, r.why());
  const m = accepted[0]!.json as Message;
  t.equal(m.type, 'no-contact');
  t.equal(m.text, NO_CONTACT_TEXT);
  t.equal(m.requestId, requestId);
  t.equal(m.messageId, key);
  t.equal(m.test, true, 'a test message says so');
  t.ok(validateMessage(m), `schema-valid: ${JSON.stringify(validateMessage.errors)}`);
  return m;
}

/** The journal after every daemon stopped: the request's outcome, attempts and outbox. */
function readJournal(path: string, requestId: string) {
  const j = Journal.open(path, { create: false });
  try {
    return { request: j.request(requestId), attempts: j.attempts(requestId), messages: j.messages(requestId), open: j.openRequests() };
  } finally {
    j.close();
  }
}

function keysOf(rx: readonly ReceivedRequest[]): string {
  return JSON.stringify(rx.map((x) => x.key));
}

/** kill -9 while attempt `n` rings; the restart sends the no-contact message (bridge-restart). */
async function killWhileRinging(t: Test, o: { n: number; ringTimerS: number; calls: number }): Promise<void> {
  const r = await rig(t, { region: { scenario: 'region-ring.xml', calls: o.calls }, regionCfg: { ringTimerS: o.ringTimerS } });
  const first = await r.start();
  void r.call(first.udp);
  const started = await logged(r, first.daemon, `attempt ${o.n} started`);
  await kill9(t, first.daemon);
  const requestId = String(started.requestId);
  t.notOk(first.daemon.lines.some((l) => l.msg === 'message no-contact committed'), `killed while attempt ${o.n} rang, before any message`, r.why());
  t.same(r.receiver.received, [], 'nothing was sent before the kill');

  const second = await r.start();
  await logged(r, second.daemon, 'message no-contact delivered');
  await waitFor(() => r.receiver.accepted().length >= 1, 10_000, 'the accepted message', r.diag);
  t.ok(second.daemon.lines.some((l) => l.msg === 'request unfinished at restart: no-contact message committed (bridge-restart)' && l.requestId === requestId), 'the restart names the unfinished request');
  await stopCleanly(t, r, second.daemon);

  const m = checkOneNoContact(t, r, requestId);
  t.equal(m.reason, 'bridge-restart');
  t.equal(r.receiver.received[0]!.headers['idempotency-key'], `${requestId}:no-contact`);
  t.same(m.attempts.map((a) => a.n), Array.from({ length: o.n }, (_, i) => i + 1), `the attempt log has ${o.n} attempt(s)`);
  t.ok(m.attempts.every((a) => a.ended !== null && a.outcome !== null), 'every attempt in the message has ended');
  const last = m.attempts[o.n - 1]!;
  t.same([last.outcome, last.reason], ['cancelled', 'bridge restart'], 'the ringing attempt ended by the restart');

  const j = readJournal(r.journalPath, requestId);
  t.equal(j.request?.outcome, 'no-contact', 'the journal has the outcome', r.why());
  t.same(j.open, [], 'no request left without an outcome');
  t.same(j.attempts.map((a) => a.n), Array.from({ length: o.n }, (_, i) => i + 1));
  t.ok(j.attempts.every((a) => a.endedAt !== null), 'every attempt ended in the journal');
  t.equal(j.attempts[o.n - 1]!.outcome, 'cancelled');
  if (o.n > 1) t.equal(j.attempts[0]!.outcome, 'no-answer', 'attempt 1 ended by its ring timer before the crash');
  t.same(j.messages.map((x) => [x.type, x.state]), [['no-contact', 'delivered']], 'one outbox row, delivered', r.why());
}

t.test('kill -9 while attempt 1 rings: the restart sends the no-contact message once', async (t) => {
  await killWhileRinging(t, { n: 1, ringTimerS: 5, calls: 1 });
});

t.test('kill -9 while attempt 2 rings: the message carries both attempts', async (t) => {
  // Attempt 2 must still ring when the kill lands: a ring timer with room for a loaded machine.
  await killWhileRinging(t, { n: 2, ringTimerS: 1.5, calls: 2 });
});

t.test('kill -9 right after the outbox commit, receiver down: the committed message goes out after the restart', async (t) => {
  let up = false;
  const r = await rig(t, {
    region: { scenario: 'region-busy.xml', calls: 2 },
    regionCfg: { ringTimerS: 1, spacingS: 0.2 },
    // Down: connections closed or 503, alternately, until the test brings it up.
    script: (req) => (up ? { status: 200 } : req.n % 2 === 1 ? 'close' : { status: 503 }),
  });
  const first = await r.start();
  void r.call(first.udp);
  const committed = await logged(r, first.daemon, 'message no-contact committed');
  await kill9(t, first.daemon);
  const requestId = String(committed.requestId);
  t.equal(r.receiver.accepted().length, 0, 'nothing accepted before the kill');
  const before = r.receiver.received.length;

  up = true;
  const second = await r.start();
  await logged(r, second.daemon, 'message no-contact delivered');
  await waitFor(() => r.receiver.accepted().length >= 1, 10_000, 'the accepted message', r.diag);
  t.notOk(second.daemon.lines.some((l) => l.msg === 'unfinished requests from before the restart: messages committed'), 'the request had its outcome: no second message built');
  await stopCleanly(t, r, second.daemon);

  t.ok(r.receiver.received.length > before, `the restart delivered it (copies: ${keysOf(r.receiver.received)})`);
  const m = checkOneNoContact(t, r, requestId);
  t.equal(m.reason, 'attempts-exhausted', 'the message committed before the crash, not a new one');
  t.same(m.attempts.map((a) => [a.n, a.outcome]), [[1, 'busy'], [2, 'busy']]);

  const j = readJournal(r.journalPath, requestId);
  t.equal(j.request?.outcome, 'no-contact', 'the journal has the outcome', r.why());
  t.same(j.open, [], 'no request left without an outcome');
  t.same(j.messages.map((x) => [x.type, x.state]), [['no-contact', 'delivered']], 'one outbox row, delivered', r.why());
});

t.test('kill -9 during delivery: the copy after the restart has the same key; then clean restarts send nothing', async (t) => {
  let hang = true;
  const r = await rig(t, {
    region: { scenario: 'region-busy.xml', calls: 2 },
    regionCfg: { ringTimerS: 1, spacingS: 0.2 },
    script: () => (hang ? 'hang' : { status: 200 }),
  });
  const first = await r.start();
  void r.call(first.udp);
  const committed = await logged(r, first.daemon, 'message no-contact committed');
  const requestId = String(committed.requestId);
  await waitFor(() => r.receiver.received.length >= 1, 10_000, 'the first POST', r.diag);
  await kill9(t, first.daemon);
  t.equal(r.receiver.received[0]!.status, null, 'the first POST was never answered');

  hang = false;
  const second = await r.start();
  await logged(r, second.daemon, 'message no-contact delivered');
  await waitFor(() => r.receiver.accepted().length >= 1, 10_000, 'the accepted message', r.diag);
  await stopCleanly(t, r, second.daemon);

  t.ok(r.receiver.received.length >= 2, `the receiver got at least two copies: ${keysOf(r.receiver.received)}`);
  t.equal(new Set(r.receiver.received.map((x) => (x.json as Message).text)).size, 1, 'every copy has the same text');
  const m = checkOneNoContact(t, r, requestId);
  t.equal(m.reason, 'attempts-exhausted');

  await t.test('a restart with nothing unfinished sends nothing', async (t) => {
    const seen = r.receiver.received.length;
    const third = await r.start();
    // The outbox is replayed at start and polled every second: give it that second.
    await sleep(1200);
    t.equal(r.receiver.received.length, seen, `no new POSTs: ${keysOf(r.receiver.received.slice(seen))}`, r.why());
    t.notOk(third.daemon.lines.some((l) => typeof l.msg === 'string' && /committed/.test(l.msg)), 'nothing committed at start');
    await stopCleanly(t, r, third.daemon);
    t.equal(r.receiver.accepted().length, 1, 'still exactly one accepted message');

    const j = readJournal(r.journalPath, requestId);
    t.equal(j.request?.outcome, 'no-contact');
    t.same(j.open, []);
    t.same(j.messages.map((x) => [x.type, x.state]), [['no-contact', 'delivered']]);
  });
});

t.test('kill -9 after contact: the restart sends nothing', async (t) => {
  const r = await rig(t, { region: { scenario: 'region-answer.xml', keys: { answer_ms: 100 } }, regionCfg: { ringTimerS: 3 } });
  const first = await r.start();
  void r.call(first.udp);
  const ended = await logged(r, first.daemon, 'conference-in ended');
  t.equal(ended.outcome, 'contact', `the region answered`, r.why());
  const requestId = String(ended.requestId);
  await kill9(t, first.daemon);

  const second = await r.start();
  await sleep(1200);
  t.notOk(second.daemon.lines.some((l) => typeof l.msg === 'string' && /committed/.test(l.msg)), 'nothing committed at start');
  await stopCleanly(t, r, second.daemon);
  t.same(r.receiver.received, [], `no message for a request that got contact`, r.why());

  const j = readJournal(r.journalPath, requestId);
  t.equal(j.request?.outcome, 'contact');
  t.same(j.open, []);
  t.same(j.messages, [], 'no outbox row');
  t.same(j.attempts.map((a) => [a.n, a.outcome]), [[1, 'answered']]);
});
