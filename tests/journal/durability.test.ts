// The journal across processes: a write survives SIGKILL right after the call returned, and the
// CLI works on the file while another process (the daemon) holds it open and even locked.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Journal } from '../../src/journal/journal.js';
import { messageCommit, requestStart, requireBuild, runCliProcess, spawnChild, tempDir } from './fixtures/process.js';

requireBuild();

t.test('a committed message survives SIGKILL right after the commit returned', async (t) => {
  const file = join(tempDir(t), 'journal.sqlite');
  const child = spawnChild(t, file, 'commit');
  t.equal(await child.line(), 'committed');
  child.child.kill('SIGKILL');
  const { signal } = await child.exited;
  t.equal(signal, 'SIGKILL', 'killed, no clean close');
  t.ok(existsSync(`${file}-wal`), 'the write sits in the WAL, not yet checkpointed');

  const j = Journal.open(file);
  t.teardown(() => j.close());
  const row = j.get('req-kill:no-contact');
  t.equal(row?.state, 'pending');
  t.equal(row?.payload, '{"text":"Ingen kontakt til AMK"}', 'payload intact');
  t.same(row?.endpoints, ['https://a.example/msg']);
  t.equal(j.request('req-kill')?.outcome, 'no-contact', 'the outcome committed in the same transaction');
  t.equal(j.context('req-kill'), null);
  t.same(
    j.due(Date.now() + 1).map((r) => r.key),
    ['req-kill:no-contact'],
    'due for the daemon after the restart',
  );
});

t.test('outbox retry from the CLI while another process holds the journal open and locked', async (t) => {
  const file = join(tempDir(t), 'journal.sqlite');
  const key = 'r1:no-contact';
  {
    const j = Journal.open(file);
    j.requestStarted(requestStart('r1'));
    j.commitMessage(messageCommit('r1', 'no-contact'));
    j.endpointFailed(key, 'https://a.example/msg', 'HTTP 400 Bad Request');
    j.endpointFailed(key, 'https://b.example/msg', 'HTTP 404 Not Found');
    j.failed(key, 'every endpoint failed permanently');
    j.close();
  }
  const daemon = spawnChild(t, file, 'hold');
  t.equal(await daemon.line(), 'ready');
  daemon.send(`get ${key}`);
  t.equal((JSON.parse(await daemon.line()) as { state: string }).state, 'failed');
  daemon.send('due');
  t.same(JSON.parse(await daemon.line()), [], 'a failed message is not due');

  const listed = await runCliProcess(['outbox', 'list', '--journal', file]);
  t.equal(listed.code, 0, listed.stderr);
  t.match(listed.stdout, new RegExp(`^${key}\\s+failed\\s+2\\s`, 'm'));

  // The daemon's process holds a write transaction: retry waits for it (busy timeout), then succeeds.
  const lockMs = 1000;
  daemon.send(`lock ${lockMs}`);
  t.equal(await daemon.line(), 'locked');
  const lockedAt = Date.now();
  const retried = await runCliProcess(['outbox', 'retry', '--journal', file]);
  const tookMs = Date.now() - lockedAt;
  t.equal(retried.code, 0, retried.stderr);
  t.equal(retried.stdout, `${key}\n`);
  t.match(retried.stderr, /1 message set for retry/);
  t.ok(tookMs >= lockMs - 200, `retry waited for the lock (${tookMs} ms)`);
  t.equal(await daemon.line(), 'unlocked');

  daemon.send(`get ${key}`);
  const row = JSON.parse(await daemon.line()) as { state: string; failedEndpoints: string[]; nextAt: number; payload: string | null };
  t.equal(row.state, 'pending', 'the holding process sees the retry');
  t.same(row.failedEndpoints, []);
  t.ok(row.nextAt >= lockedAt && row.nextAt <= Date.now(), 'due now');
  t.not(row.payload, null, 'payload kept for the delivery');
  daemon.send('due');
  t.same(JSON.parse(await daemon.line()), [key], 'the daemon picks it up');

  daemon.child.stdin.end();
  t.same(await daemon.exited, { code: 0, signal: null }, 'the holder closes cleanly');
});
