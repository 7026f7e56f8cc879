// The statistics survive a restart of the daemon: the real daemon (dist/, a child process) takes
// part of the traffic from SIPp citizens, is stopped between requests (SIGTERM, and in a second
// variant kill -9), a new daemon starts on the same configuration and journal file and takes the
// rest. `amk-bridge stats` then shows the sum of both halves: the first half as it showed before
// the restart, the second as driven, the whole period both added up.
import t from 'tap';
import type { Test } from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startDaemon, type Daemon, type LogLine } from '../helpers/daemon.js';
import { startSipp, runSipp, describeSipp, type SippHandle } from '../helpers/sipp.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { testConfigInput } from '../helpers/config.js';
import { NO_CONTACT_TEXT } from '../../src/domain/message.js';
import type { RegionInput } from '../../src/config/schema.js';
import {
  counted,
  countedExpected,
  expectedFigures,
  hourPeriod,
  readJournalRows,
  statsJson,
  sumCounted,
  TOLERANT_UAS,
  type RequestPlan,
} from './helpers.js';

/** Requests per half: contacts in hovedstaden (attempt 1), no-contact messages in nordjylland (busy ×2). */
const HALVES = [
  { contacts: 2, noContacts: 1 },
  { contacts: 1, noContacts: 2 },
] as const;
const ANSWER_MS = 300;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Rig {
  configPath: string;
  journalPath: string;
  receiver: Receiver;
  peers: SippHandle[];
  daemons: Daemon[];
  start(): Promise<{ daemon: Daemon; udp: number }>;
  diag(): string;
}

async function rig(t: Test): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'amk-stats-restart-'));
  const daemons: Daemon[] = [];
  t.teardown(async () => {
    for (const d of daemons) await d.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const receiver = await startReceiver(t);
  const contacts = HALVES.reduce((n, h) => n + h.contacts, 0);
  const noContacts = HALVES.reduce((n, h) => n + h.noContacts, 0);
  // The peers outlive the daemons: the same ports in the one configuration.
  const hov = startSipp(t, { scenario: 'region-answer.xml', calls: contacts, keys: { answer_ms: ANSWER_MS }, timeoutS: 55, extra: TOLERANT_UAS });
  const nord = startSipp(t, { scenario: 'region-busy.xml', calls: 2 * noContacts, timeoutS: 55 });
  const ct = startSipp(t, { scenario: 'calltaker-info-trigger.xml', calls: contacts + noContacts, keys: { pause_ms: 200 }, timeoutS: 55, extra: TOLERANT_UAS });
  await Promise.all([hov.ready, nord.ready, ct.ready]);

  const journalPath = join(dir, 'journal.sqlite');
  const configPath = join(dir, 'amk-bridge.yaml');
  const region = (id: string, code: string, target: SippHandle, more: Partial<RegionInput>): RegionInput => ({
    id, code, probe: false, targets: [`sip:amk@127.0.0.1:${target.port}`], ringTimerS: 5, escalationS: 600,
    messageEndpoints: { primary: receiver.url(`/${id}`), secondary: null }, ...more,
  });
  const input = testConfigInput({
    callTakerTarget: `sip:1001@127.0.0.1:${ct.port}`,
    regions: [region('hovedstaden', '01', hov, {}), region('nordjylland', '05', nord, { spacingS: 0.3 })],
    routing: { defaultRegion: 'hovedstaden', rules: [{ region: 'nordjylland', match: { requestUriUser: { equals: '1125' } } }] },
    log: { level: 'debug' },
    journal: { path: journalPath },
    recontact: { path: join(dir, 'recontact.sqlite'), keyFile: join(dir, 'recontact.key') },
    conference: { interDigitMs: 150 },
    // Counted like real requests (test requests are left out of the statistics).
    messages: { test: false },
  } as never);
  writeFileSync(configPath, stringify(input));

  const diag = (): string =>
    daemons
      .map((d, i) => {
        const exit = d.proc.exitCode !== null || d.proc.signalCode !== null ? `exited ${d.proc.exitCode ?? d.proc.signalCode}` : 'running';
        const tail = d.lines.filter((l) => (l.level ?? 0) >= 40).slice(-6).concat(d.lines.slice(-6)).map((l) => JSON.stringify(l).slice(0, 300));
        return `daemon #${i + 1} (${exit}):\n  ${tail.join('\n  ')}`;
      })
      .join('\n') + `\nreceiver: ${JSON.stringify(receiver.received.map((r) => [r.n, r.key, r.status]))}`;

  return {
    configPath, journalPath, receiver, peers: [hov, nord, ct], daemons, diag,
    async start() {
      const daemon = startDaemon(t, configPath);
      daemons.push(daemon);
      const { udp } = await daemon.ready;
      return { daemon, udp };
    },
  };
}

async function until(pred: () => boolean, ms: number, what: string, diag: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${diag()}`);
    await sleep(20);
  }
}

/** The requests that ended, by the daemon's log: a contact is logged as such, a no-contact outcome with its message's commit. */
const endedLines = (d: Daemon): LogLine[] => d.lines.filter((l) => l.msg === 'conference-in ended' || l.msg === 'message no-contact committed');
const outcomeOf = (l: LogLine): string => (l.msg === 'message no-contact committed' ? 'no-contact' : String(l.outcome));

/**
 * One half of the traffic through `daemon`: its contacts and no-contacts, until every call has
 * ended and every message is delivered (so the daemon can be stopped "between requests").
 */
async function half(t: Test, r: Rig, daemon: Daemon, udp: number, h: (typeof HALVES)[number], endedBefore: number): Promise<void> {
  const remote = `127.0.0.1:${udp}`;
  const contacts = runSipp(t, { scenario: 'trunk-call.xml', remote, calls: h.contacts, keys: { hold_ms: 3000 }, timeoutS: 30 });
  // The first call of each half is a hovedstaden one: the re-contact flags per region are then known.
  await daemon.waitForLog((l) => l.msg === 'conference-in requested', 10_000, 'the first request of the half');
  const failing = runSipp(t, { scenario: 'trunk-call.xml', remote, service: '1125', calls: h.noContacts, keys: { hold_ms: 3000 }, timeoutS: 30 });
  const [rc, rf] = await Promise.all([contacts, failing]);
  t.equal(rc.successful, h.contacts, `hovedstaden citizens: ${describeSipp(rc)}`);
  t.equal(rf.successful, h.noContacts, `nordjylland citizens: ${describeSipp(rf)}`);
  await until(() => endedLines(daemon).length === h.contacts + h.noContacts, 10_000, 'every request of the half ended', r.diag);
  t.same(
    endedLines(daemon).map(outcomeOf).sort(),
    [...Array<string>(h.contacts).fill('contact'), ...Array<string>(h.noContacts).fill('no-contact')],
    'the requests of this half ended as planned',
  );
  await until(() => r.receiver.accepted().length === endedBefore + h.noContacts, 10_000, 'the no-contact messages', r.diag);
  await until(() => readJournalRows(r.journalPath).outbox.every((m) => m.state === 'delivered'), 10_000, 'the outbox delivered', r.diag);
}

function plansOf(h: (typeof HALVES)[number]): RequestPlan[] {
  return [
    ...Array.from({ length: h.contacts }, (): RequestPlan => ({ region: 'hovedstaden', attempts: ['answered'], answered: { on: 'attempt1', region: 'hovedstaden', delayMs: ANSWER_MS }, noContact: false })),
    ...Array.from({ length: h.noContacts }, (): RequestPlan => ({ region: 'nordjylland', attempts: ['busy', 'busy'], answered: null, noContact: true })),
  ];
}

/** Every call of a half as [home region, re-contact?]; the very first call of the test is the only first contact. */
function callsOf(plans: RequestPlan[], first: boolean): [string, boolean][] {
  return plans.map((p, i) => [p.region, !(first && i === 0)]);
}

async function restartKeepsCounts(t: Test, stop: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  const t0 = Date.now();
  const period = hourPeriod(t0);
  const r = await rig(t);
  const plans1 = plansOf(HALVES[0]);
  const plans2 = plansOf(HALVES[1]);
  const exp1 = expectedFigures(callsOf(plans1, true), plans1);
  const exp2 = expectedFigures(callsOf(plans2, false), plans2);
  const expAll = expectedFigures([...callsOf(plans1, true), ...callsOf(plans2, false)], [...plans1, ...plans2]);

  // First half, first daemon.
  const first = await r.start();
  await half(t, r, first.daemon, first.udp, HALVES[0], 0);
  const { stats: before } = await statsJson(['--journal', r.journalPath, ...period.args]);
  t.same(counted(before.totals.total), countedExpected(exp1.total), 'after the first half: its figures');
  for (const id of ['hovedstaden', 'nordjylland']) t.same(counted(before.totals.regions[id]!), countedExpected(exp1.regions[id]!), `after the first half: ${id}`);

  // Between requests: stop it.
  if (stop === 'SIGTERM') {
    await first.daemon.kill('SIGTERM');
    const { code, signal } = await first.daemon.exited;
    t.equal(code, 0, `SIGTERM: a clean stop (got ${code ?? signal})`);
  } else {
    await first.daemon.kill('SIGKILL');
    t.equal((await first.daemon.exited).signal, 'SIGKILL', 'the daemon died of kill -9');
  }
  // Every row of the first half started before `split`, every row of the second after it.
  const split = Date.now();
  await sleep(5);

  // Second half, a new daemon on the same journal.
  const second = await r.start();
  await half(t, r, second.daemon, second.udp, HALVES[1], HALVES[0].noContacts);
  t.notOk(second.daemon.lines.some((l) => l.msg === 'request unfinished at restart: no-contact message committed (bridge-restart)'), 'nothing was unfinished at the restart');
  await second.daemon.kill('SIGTERM');
  t.equal((await second.daemon.exited).code, 0, 'the second daemon stops cleanly');

  const [{ stats: all }, { stats: second2 }] = await Promise.all([
    // The whole period, by the configuration (as an operator would).
    statsJson(['--config', r.configPath, ...period.args]),
    // The second half alone: from the restart on.
    statsJson(['--journal', r.journalPath, '--from', new Date(split).toISOString(), '--to', new Date(period.to).toISOString()]),
  ]);
  t.same(counted(second2.totals.total), countedExpected(exp2.total), 'the second half: its figures');
  // The first half as the statistics showed it before the restart, plus the second half:
  // nothing of the first half was lost or counted twice by the restart.
  t.same(counted(all.totals.total), sumCounted(before.totals.total, second2.totals.total), 'the whole period is the sum of both halves');
  t.same(counted(all.totals.total), countedExpected(expAll.total), 'the whole period: as driven');
  for (const id of ['hovedstaden', 'nordjylland']) {
    t.same(counted(all.totals.regions[id]!), sumCounted(before.totals.regions[id]!, second2.totals.regions[id]!), `${id}: the sum of both halves`);
    t.same(counted(all.totals.regions[id]!), countedExpected(expAll.regions[id]!), `${id}: as driven`);
  }
  t.equal(all.totals.total.lostRequests, 0, 'no lost requests');
  t.equal(all.totals.total.requests, 6);
  t.equal(all.totals.total.noContactMessages, 3);

  // Exactly one no-contact message per failed request, sent once: nothing again after the restart.
  const rows = readJournalRows(r.journalPath);
  const failed = rows.requests.filter((q) => q.outcome === 'no-contact').map((q) => q.request_id).sort();
  t.equal(failed.length, 3);
  t.same(rows.outbox.map((m) => [m.type, m.state]), [['no-contact', 'delivered'], ['no-contact', 'delivered'], ['no-contact', 'delivered']], 'one delivered outbox row per failed request');
  t.same(r.receiver.accepted().map((x) => (x.json as { requestId: string }).requestId).sort(), failed, 'the receiver has one message per failed request');
  t.equal(r.receiver.received.length, 3, `no copy sent again after the restart: ${r.diag()}`);
  t.ok(r.receiver.received.every((x) => x.body.includes(NO_CONTACT_TEXT)), 'each carries the text');
  for (const p of r.peers) {
    const res = await p.done;
    t.equal(res.failed, 0, `SIPp peer without failed calls: ${describeSipp(res)}`);
  }
}

// The two variants are independent (own peers, ports, directories): run them side by side.
t.jobs = 2;

t.test('SIGTERM between requests: the new daemon adds to the counts', async (t) => {
  await restartKeepsCounts(t, 'SIGTERM');
});

t.test('kill -9 between requests: the new daemon adds to the counts', async (t) => {
  await restartKeepsCounts(t, 'SIGKILL');
});
