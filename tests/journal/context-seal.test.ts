// A running request's context (caller number, location…) is sealed at rest: AES-256-GCM under
// the journal's key file. The clear number is in neither the database file nor its WAL; older
// plain contexts are still read; a context that cannot be unsealed reads as null and recovery
// still sends the no-contact message.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { CONTEXT_KEY_BYTES, isSealed, loadContextKey, sealContext, unsealContext } from '../../src/journal/context-seal.js';
import { Journal } from '../../src/journal/journal.js';
import { recoverUnfinished } from '../../src/core/recovery.js';
import { EventBus } from '../../src/core/events.js';
import type { MessageContext } from '../../src/domain/message.js';
import type { ProcedurePolicy } from '../../src/domain/policy.js';
import { startTestBridge } from '../helpers/bridge.js';
import { childEnv, trackChild } from '../helpers/children.js';
import { requestStart, requireBuild, T0, tempDir } from './fixtures/process.js';

requireBuild();

/** A number that appears nowhere else in the file. */
const NUMBER = '+4599817263';
const LOCATION = '<presence entity="pres:caller-55.6761-12.5683"/>';

function policy(): ProcedurePolicy {
  return {
    home: {
      id: 'hovedstaden', name: 'Region Hovedstaden', targets: ['sip:amk@127.0.0.1:5090'], attempts: 2, ringTimerMs: 11_000, spacingMs: 11_000,
      bufferTargets: [], bufferAttempts: 1, messageEndpoints: ['https://amk.example/msg'], escalationMs: 30_000,
    },
    overflow: { policy: 'none', regions: [] },
    cancelGraceMs: 4000,
  };
}

function context(requestId: string): MessageContext {
  return {
    requestId, incidentId: `urn:emergency:uid:incidentid:${requestId}:psap.example`, emergencyCallId: `urn:emergency:uid:callid:${requestId}:psap.example`,
    node: 'psap-1', desk: 'desk-7', region: { id: 'hovedstaden', name: 'Region Hovedstaden' },
    caller: { number: NUMBER, uri: `tel:${NUMBER}` }, location: { pidfLo: LOCATION, reference: null }, recontact: null, test: false,
  };
}

function contains(file: string, needle: string): boolean {
  return existsSync(file) && readFileSync(file).includes(Buffer.from(needle, 'utf8'));
}

function warnings(): { warn: (obj: object, msg: string) => void; seen: { obj: object; msg: string }[] } {
  const seen: { obj: object; msg: string }[] = [];
  return { seen, warn: (obj, msg) => seen.push({ obj, msg }) };
}

t.test('seal and unseal: round trip, a fresh IV per write, bound to its request', async (t) => {
  const key = Buffer.alloc(CONTEXT_KEY_BYTES, 7);
  const json = JSON.stringify(context('r1'));
  const a = sealContext(key, json, 'r1');
  const b = sealContext(key, json, 'r1');
  t.match(a, /^v1:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/, 'v1:<iv>:<tag>:<ciphertext>');
  t.ok(isSealed(a));
  t.notOk(isSealed(json), 'plain JSON is not sealed');
  t.not(a, b, 'two writes of the same context differ (random IV)');
  t.equal(Buffer.from(a.split(':')[1] as string, 'base64').length, 12, '12-byte IV');
  t.notOk(a.includes(NUMBER));
  t.equal(unsealContext(key, a, 'r1'), json);
  t.equal(unsealContext(key, b, 'r1'), json);
  t.throws(() => unsealContext(key, a, 'r2'), /does not authenticate/, "another request's context does not open");
  t.throws(() => unsealContext(Buffer.alloc(32, 8), a, 'r1'), /does not authenticate/, 'another key does not open it');
  const parts = a.split(':');
  const ct = Buffer.from(parts[3] as string, 'base64');
  ct[0] = (ct[0] as number) ^ 1;
  t.throws(() => unsealContext(key, [parts[0], parts[1], parts[2], ct.toString('base64')].join(':'), 'r1'), /does not authenticate/, 'a flipped bit is caught');
  t.throws(() => unsealContext(key, `v9:${a.slice(3)}`, 'r1'), /unknown context seal version "v9"/);
  t.throws(() => sealContext(Buffer.alloc(16), json, 'r1'), /32 bytes/);
});

t.test('the caller number is neither in the journal file nor in its WAL while the request runs', async (t) => {
  const file = join(tempDir(t), 'journal.sqlite');
  const j = Journal.open(file);
  t.teardown(() => j.close());
  j.requestStarted(requestStart('r1', { context: context('r1') }));
  j.attemptStarted({ attemptId: 'r1-1', requestId: 'r1', n: 1, stage: 'home', region: 'hovedstaden', target: 'sip:amk@x', startedAt: T0 + 1 });

  t.ok(existsSync(`${file}-wal`) && statSync(`${file}-wal`).size > 0, 'the write sits in the WAL');
  t.notOk(contains(`${file}-wal`, NUMBER), 'not in the WAL');
  t.notOk(contains(`${file}-wal`, 'caller-55.6761'), 'nor the location');
  t.notOk(contains(file, NUMBER), 'not in the database file');
  j.checkpoint();
  t.notOk(contains(file, NUMBER), 'not in the database file after the checkpoint');
  t.notOk(contains(file, 'caller-55.6761'), 'nor the location');
  t.notOk(contains(`${file}-wal`, NUMBER), 'nor in what is left of the WAL');

  const raw = new Database(file, { readonly: true });
  t.teardown(() => raw.close());
  const stored = (raw.prepare('SELECT context FROM requests WHERE request_id = ?').get('r1') as { context: string }).context;
  t.match(stored, /^v1:/, 'stored sealed');

  t.same(j.context('r1'), context('r1'), 'the journal reads it back');
  t.same(j.openRequests()[0]?.context, context('r1'), 'also in the open requests recovery reads');
  t.same(j.request('r1')?.context, context('r1'));
  t.same(j.find('r1')[0]?.context, context('r1'));
});

t.test('the key file: created 0600 with 32 random bytes, kept across restarts', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'state', 'journal.sqlite');
  const j1 = Journal.open(file);
  j1.requestStarted(requestStart('r1', { context: context('r1') }));
  j1.close();
  const keyFile = `${file}.key`;
  t.ok(existsSync(keyFile), 'default: the journal path + .key');
  t.equal(statSync(keyFile).mode & 0o777, 0o600, 'mode 0600');
  const key = readFileSync(keyFile);
  t.equal(key.length, 32);
  t.not(key.toString('hex'), '00'.repeat(32));

  const j2 = Journal.open(file);
  t.teardown(() => j2.close());
  t.same(readFileSync(keyFile), key, 'an existing key is never replaced');
  t.same(j2.context('r1'), context('r1'), 'readable after a restart');

  const other = join(dir, 'keys', 'ctx.key');
  t.same(loadContextKey(other, { create: true }).length, 32, 'a named key file (and its directory) is created');
  t.same(loadContextKey(other, { create: true }), readFileSync(other));
  t.throws(() => loadContextKey(join(dir, 'none.key'), { create: false }), /"[^"]*none\.key" does not exist/);
});

t.test('processes starting at once all end up with the one key', async (t) => {
  const file = join(tempDir(t), 'race.key');
  const mod = new URL('../../dist/journal/context-seal.js', import.meta.url).href;
  const script = `const { loadContextKey } = await import(${JSON.stringify(mod)}); process.stdout.write(loadContextKey(process.argv[1], { create: true }).toString('hex'));`;
  const runs = Array.from({ length: 4 }, () =>
    new Promise<string>((resolve, reject) => {
      const child = execFile(process.execPath, ['--input-type=module', '-e', script, file], { env: childEnv(), timeout: 90_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
      trackChild(child);
    }),
  );
  const keys = await Promise.all(runs);
  t.equal(new Set(keys).size, 1, 'every process read the same key');
  t.equal(keys[0], readFileSync(file).toString('hex'));
  t.equal(statSync(file).mode & 0o777, 0o600);
  t.equal(readFileSync(file).length, 32, 'a whole key');
});

t.test('a key file of the wrong size is an error naming the file', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'journal.sqlite');
  writeFileSync(`${file}.key`, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
  t.throws(() => Journal.open(file), new RegExp(`journal context key file "${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.key" holds 65 bytes; it must hold exactly 32`));
  writeFileSync(`${file}.key`, Buffer.alloc(0));
  t.throws(() => Journal.open(file), /holds 0 bytes/);

  // The daemon does not start with it, and says which file.
  const bad = join(dir, 'bad.key');
  writeFileSync(bad, Buffer.alloc(31, 1));
  await t.rejects(
    startTestBridge(t, { journal: { path: join(dir, 'd', 'journal.sqlite'), contextKeyFile: bad }, recontact: { enabled: false, path: join(dir, 're.sqlite'), keyFile: join(dir, 're.key') } }),
    { message: new RegExp(`cannot open the journal .*journal context key file "${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}" holds 31 bytes`) },
  );
});

t.test('a legacy plain-JSON context is still read', async (t) => {
  const file = join(tempDir(t), 'journal.sqlite');
  const j = Journal.open(file);
  t.teardown(() => j.close());
  j.requestStarted(requestStart('old', { context: null }));
  const raw = new Database(file);
  raw.prepare('UPDATE requests SET context = ? WHERE request_id = ?').run(JSON.stringify(context('old')), 'old');
  raw.close();
  t.same(j.context('old'), context('old'));
  t.same(j.openRequests()[0]?.context, context('old'));
});

t.test('a context that cannot be unsealed is null with a warning; recovery still sends the message', async (t) => {
  const file = join(tempDir(t), 'journal.sqlite');
  {
    const j = Journal.open(file);
    j.requestStarted(requestStart('r1', { policy: policy(), context: context('r1'), startedAt: T0 }));
    j.attemptStarted({ attemptId: 'r1-1', requestId: 'r1', n: 1, stage: 'home', region: 'hovedstaden', target: 'sip:amk@x', startedAt: T0 + 1 });
    j.close();
  }
  // The key file was replaced (restored from elsewhere, a new installation…).
  writeFileSync(`${file}.key`, Buffer.alloc(32, 9));
  const w = warnings();
  const j = Journal.open(file, { warn: w.warn });
  t.teardown(() => j.close());
  t.equal(j.context('r1'), null, 'null, no throw');
  t.equal(w.seen.length, 1, 'one warning');
  t.match(w.seen[0], { msg: /request context cannot be read/, obj: { requestId: 'r1', error: /does not authenticate/ } });
  t.notOk(JSON.stringify(w.seen).includes(NUMBER));
  t.equal(j.openRequests()[0]?.context, null, 'the open requests list it with no context');

  const alarms: string[] = [];
  const bus = new EventBus();
  bus.on('alarm', (e) => alarms.push(e.text));
  const logged: string[] = [];
  const log = { info: () => {}, debug: () => {}, warn: (_o: object, m?: string) => logged.push(m ?? ''), error: (_o: object, m?: string) => logged.push(m ?? '') };
  let kicked = 0;
  const n = recoverUnfinished(j, { kick: () => kicked++ }, bus, log, T0 + 60_000);
  t.equal(n, 1, 'the request is recovered');
  t.equal(kicked, 1);
  const row = j.get('r1:no-contact');
  t.ok(row, 'its no-contact message is committed');
  const m = JSON.parse(row?.payload ?? '{}') as { reason: string; text: string; call: { callerNumber: string | null; id: string }; incident: { id: string }; region: { id: string }; attempts: unknown[] };
  t.equal(m.text, 'Ingen kontakt til AMK');
  t.equal(m.reason, 'bridge-restart');
  t.equal(m.call.callerNumber, null, 'without the caller number it could not read');
  t.equal(m.incident.id, 'urn:emergency:uid:incidentid:r1:psap.example', 'with what the request row holds');
  t.equal(m.region.id, 'hovedstaden');
  t.equal(m.attempts.length, 1);
  t.equal(j.request('r1')?.outcome, 'no-contact');
  t.match(alarms, [/caller data unreadable/], 'an alarm says the message lacks the caller data');
});

t.test('recovery with the right key sends the caller number', async (t) => {
  const file = join(tempDir(t), 'journal.sqlite');
  {
    const j = Journal.open(file);
    j.requestStarted(requestStart('r1', { policy: policy(), context: context('r1') }));
    j.close();
  }
  const j = Journal.open(file);
  t.teardown(() => j.close());
  const log = { info: () => {}, debug: () => {}, warn: () => {}, error: () => {} };
  t.equal(recoverUnfinished(j, { kick: () => {} }, new EventBus(), log, T0 + 60_000), 1);
  const m = JSON.parse(j.get('r1:no-contact')?.payload ?? '{}') as { call: { callerNumber: string | null } };
  t.equal(m.call.callerNumber, NUMBER);
  t.equal(j.context('r1'), null, 'cleared with the outcome');
});

t.test('a reader without the key (the CLI as another user) opens the journal; contexts read as null', async (t) => {
  const file = join(tempDir(t), 'journal.sqlite');
  {
    const j = Journal.open(file);
    j.requestStarted(requestStart('r1', { context: context('r1') }));
    j.close();
  }
  const w = warnings();
  const j = Journal.open(file, { create: false, contextKeyFile: join(tempDir(t), 'missing.key'), warn: w.warn });
  t.teardown(() => j.close());
  t.equal(j.request('r1')?.requestId, 'r1');
  t.equal(j.request('r1')?.context, null);
  t.match(w.seen[0], { obj: { requestId: 'r1', error: /missing\.key" does not exist/ } });
  t.throws(() => j.requestStarted(requestStart('r2', { context: context('r2') })), /cannot store the context of request r2/, 'never written in the clear');
  t.equal(j.request('r2'), null);
  j.requestStarted(requestStart('r3', { context: null }));
  t.equal(j.request('r3')?.context, null, 'a request without context needs no key');
});
