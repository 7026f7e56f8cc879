// Privacy at rest: once its messages are delivered and the daemon has stopped, nothing the bridge
// keeps on disk (the journal with its -wal/-shm, the re-contact store with its -wal/-shm) holds
// the caller's number in any form. The real daemon takes 112 calls from a SIPp citizen with its
// own number: one the call taker answers without a trigger, two that end in the no-contact
// message (delivered to a real HTTP receiver), one that gets contact on attempt 2.
//
// The search is proven first: it finds the number in the message the receiver got, in files this
// test writes itself (plain and SQLite), and in the journal files while a message is still
// undelivered, so a number left at rest would fail the test.
import t from 'tap';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import { startSipp, runSipp, describeSipp, type SippHandle } from '../helpers/sipp.js';
import { startReceiver } from '../helpers/receiver.js';
import { testConfigInput } from '../helpers/config.js';
import type { RegionInput } from '../../src/config/schema.js';
import { NO_CONTACT_TEXT } from '../../src/domain/message.js';
import { findNumber, numberForms, readJournalRows, TOLERANT_UAS } from './helpers.js';

/** The citizen's number as the trunk sends it (From user part), a plausible Danish mobile number. */
const CALLER = '+4529876543';
const FORMS = numberForms(CALLER);
/** The forms a test message body (UTF-8 JSON) must show, to prove the search. */
const TEXT_FORMS = ['as sent', 'E.164 with +', 'E.164 without +', 'national digits'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The files of `dir` whose name starts with one of `prefixes`, with their bytes. */
function filesAt(dir: string, prefixes: string[]): { name: string; bytes: Buffer }[] {
  return readdirSync(dir)
    .filter((n) => prefixes.some((p) => n.startsWith(p)) && statSync(join(dir, n)).isFile())
    .sort()
    .map((name) => ({ name, bytes: readFileSync(join(dir, name)) }));
}

t.test('privacy at rest: the caller number is in no file the bridge keeps after delivery', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'amk-stats-privacy-'));
  const daemons: Daemon[] = [];
  t.teardown(async () => {
    for (const d of daemons) await d.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  // The first message is answered late: meanwhile it is in the journal, undelivered.
  const receiver = await startReceiver(t, { script: (r) => (r.n === 1 ? { status: 200, delayMs: 2500 } : { status: 200 }) });
  const midt = startSipp(t, { scenario: 'region-busy-then-answer.xml', calls: 2, keys: { answer_ms: 200 }, timeoutS: 50, extra: TOLERANT_UAS });
  const nord = startSipp(t, { scenario: 'region-busy.xml', calls: 4, timeoutS: 50 });
  const ctQuiet = startSipp(t, { scenario: 'calltaker-answer.xml', calls: 1, timeoutS: 30, extra: TOLERANT_UAS });
  await Promise.all([midt.ready, nord.ready, ctQuiet.ready]);

  const journalPath = join(dir, 'journal.sqlite');
  const recontactPath = join(dir, 'recontact.sqlite');
  const configPath = join(dir, 'amk-bridge.yaml');
  const region = (id: string, code: string, target: SippHandle): RegionInput => ({
    id, code, probe: false, targets: [`sip:amk@127.0.0.1:${target.port}`], ringTimerS: 5, spacingS: 0.3, escalationS: 600,
    messageEndpoints: { primary: receiver.url(`/${id}`), secondary: null },
  });
  writeFileSync(configPath, stringify(testConfigInput({
    callTakerTarget: `sip:1001@127.0.0.1:${ctQuiet.port}`,
    regions: [region('midtjylland', '03', midt), region('nordjylland', '05', nord)],
    routing: { defaultRegion: 'midtjylland', rules: [{ region: 'nordjylland', match: { requestUriUser: { equals: '1125' } } }] },
    log: { level: 'debug' },
    journal: { path: journalPath },
    recontact: { path: recontactPath, keyFile: join(dir, 'recontact.key') },
    conference: { interDigitMs: 150 },
    messages: { test: false },
  } as never)));
  const daemon = startDaemon(t, configPath);
  daemons.push(daemon);
  const remote = `127.0.0.1:${(await daemon.ready).udp}`;
  const citizen = (service: string, calls: number, holdMs: number) =>
    runSipp(t, { scenario: 'trunk-call-caller.xml', remote, service, calls, keys: { caller: CALLER, hold_ms: holdMs }, timeoutS: 30 });

  // A call without a trigger.
  const quiet = await citizen('112', 1, 800);
  t.equal(quiet.successful, 1, `the call without a trigger: ${describeSipp(quiet)}`);
  t.equal((await ctQuiet.done).successful, 1, 'the call taker answered it without a trigger');

  // Two requests that fail (busy ×2: the message), one answered on attempt 2.
  const ct = startSipp(t, { scenario: 'calltaker-info-trigger.xml', calls: 3, localPort: ctQuiet.port, keys: { pause_ms: 200 }, timeoutS: 40, extra: TOLERANT_UAS });
  await ct.ready;
  const failing = citizen('1125', 2, 4000);
  // The proof on the journal itself: while the first message waits for its answer, its payload
  // (with the number) is in the journal's files, and the search finds it there.
  await daemon.waitForLog((l) => l.msg === 'message no-contact committed', 15_000, 'the first no-contact message');
  const t1 = Date.now();
  while (receiver.received.length === 0 && Date.now() - t1 < 5000) await sleep(10);
  t.equal(receiver.received[0]?.status, null, 'the first message is on its way, not yet answered');
  const live = filesAt(dir, ['journal.sqlite']);
  const liveHits = live.flatMap((f) => findNumber(f.bytes, FORMS).map(([form]) => `${f.name}: ${form}`));
  t.ok(liveHits.some((h) => h.includes('national digits')), `the search finds the number in the journal files while a message is undelivered: ${JSON.stringify(liveHits)}`);

  const contact = await citizen('112', 1, 4000);
  const failed = await failing;
  t.equal(failed.successful, 2, `the failing requests' citizens: ${describeSipp(failed)}`);
  t.equal(contact.successful, 1, `the contact request's citizen: ${describeSipp(contact)}`);
  for (const [name, h, n] of [['midtjylland', midt, 2], ['nordjylland', nord, 4], ['call taker', ct, 3]] as const) {
    const r = await h.done;
    t.equal(r.successful, n, `${name} SIPp: ${describeSipp(r)}`);
  }

  // Delivered: the receiver has both messages, the outbox says so.
  const end = Date.now() + 10_000;
  while ((receiver.accepted().length < 2 || !readJournalRows(journalPath).outbox.every((m) => m.state === 'delivered')) && Date.now() < end) await sleep(20);
  const got = receiver.accepted();
  t.equal(got.length, 2, 'the receiver took both no-contact messages');
  const before = readJournalRows(journalPath);
  t.same(before.outbox.map((m) => [m.type, m.state, m.payload]), [['no-contact', 'delivered', null], ['no-contact', 'delivered', null]], 'the outbox: both delivered, payloads purged');
  t.same(before.requests.map((r) => r.outcome).sort(), ['contact', 'no-contact', 'no-contact'], 'every request has its outcome');
  t.same(before.calls.map((c) => c.recontact), [0, 1, 1, 1], 'the re-contact store was used: every call after the first is a re-contact');

  // The search, proven on what the receiver got and on files written here.
  for (const r of got) {
    t.match(r.body, NO_CONTACT_TEXT);
    const found = findNumber(Buffer.from(r.body, 'utf8'), FORMS).map(([form]) => form);
    for (const want of TEXT_FORMS) t.ok(found.some((f) => f.startsWith(want) && f.endsWith('(UTF-8)')), `the delivered message shows the number (${want}): ${JSON.stringify(found)}`);
  }
  const proofDir = mkdtempSync(join(tmpdir(), 'amk-stats-privacy-proof-'));
  t.teardown(() => rmSync(proofDir, { recursive: true, force: true }));
  writeFileSync(join(proofDir, 'message.json'), got[0]!.body);
  const proofDb = new Database(join(proofDir, 'proof.sqlite'));
  proofDb.pragma('journal_mode = WAL');
  proofDb.exec('CREATE TABLE m (payload TEXT)');
  proofDb.prepare('INSERT INTO m VALUES (?)').run(got[0]!.body);
  proofDb.close();
  for (const f of filesAt(proofDir, ['message.json', 'proof.sqlite'])) {
    t.ok(findNumber(f.bytes, FORMS).length > 0, `the search finds the number in ${f.name}, a file written by this test`);
  }

  // Stop: closing the journal checkpoints its WAL.
  await daemon.kill('SIGTERM');
  const { code, signal } = await daemon.exited;
  t.equal(code, 0, `the daemon stops cleanly (got ${code ?? signal})`);

  const atRest = filesAt(dir, ['journal.sqlite', 'recontact.sqlite']);
  const names = atRest.map((f) => f.name);
  t.ok(names.includes('journal.sqlite') && names.includes('recontact.sqlite'), `the journal and the re-contact store are there: ${JSON.stringify(names)}`);
  t.ok(atRest.every((f) => f.name.endsWith('-wal') || f.name.endsWith('-shm') || f.bytes.length > 0), 'the store files are not empty');
  for (const f of atRest) {
    const hits = findNumber(f.bytes, FORMS);
    t.same(hits, [], `${f.name} (${f.bytes.length} bytes): the caller number in no form${hits.length ? ` — found ${JSON.stringify(hits)}` : ''}`);
  }
  t.ok(existsSync(journalPath), 'the journal is still there after the stop');
  const after = readJournalRows(journalPath);
  t.same(after.requests.length, 3, 'and still holds the three requests');
});
