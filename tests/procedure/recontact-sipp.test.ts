// Re-contact: the same caller twice within the window. The second conference-in INVITE carries
// X-AMK-Recontact and the second message its count; only hashes are stored.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { flow, waitFor, settle } from './helpers.js';
import { runSipp } from '../helpers/sipp.js';

t.test('the same caller again: flagged in the INVITE and the message; the number is not in the store', async (t) => {
  const f = await flow(t, {
    home: { scenario: 'region-busy.xml', calls: 2 },
    region: { attempts: 1 },
    calltaker: { scenario: 'calltaker-info-trigger.xml', calls: 2 },
    trunkHoldMs: 1500,
  });
  await waitFor(() => f.receiver.accepted().length === 1, 8000, 'the first message');
  await settle(f);
  const second = await runSipp(t, { scenario: 'trunk-call.xml', remote: `127.0.0.1:${f.bridge.port('udp')}`, keys: { hold_ms: 1500 }, timeoutS: 20 });
  t.equal(second.successful, 1);
  await waitFor(() => f.receiver.accepted().length === 2, 8000, 'the second message');
  const [m1, m2] = f.receiver.accepted().map((r) => r.json as { recontact: { count: number; last: string } | null });
  t.equal(m1!.recontact, null, 'first contact: no flag');
  t.equal(m2!.recontact?.count, 1, 'second contact: one earlier contact');
  t.match(m2!.recontact?.last, /^\d{4}-\d\d-\d\dT/);
  const region = await f.home.done;
  const invites = region.messages.split(/\n(?=-+ )/).filter((m) => /INVITE sip:/.test(m));
  t.notMatch(invites[0] ?? '', /X-AMK-Recontact/, 'the first INVITE has no re-contact header');
  t.match(invites.at(-1) ?? '', /X-AMK-Recontact: count=1;last=\d{4}-/, 'the second INVITE says so');
  const store = readFileSync(f.config.recontact.path);
  t.notOk(store.includes(Buffer.from('12345678')), 'no clear caller number in the re-contact store');
});
