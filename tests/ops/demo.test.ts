// `npm run demo` ends by itself and shows the whole flow: no answer at home, the message, the
// overflow region answering, the lamp, and a summary; all messages are test messages.
import t from 'tap';
import { execFile } from 'node:child_process';
import { CLI } from '../helpers/daemon.js';
import { childEnv } from '../helpers/children.js';

t.test('the demo runs one citizen through the flow and ends by itself', async (t) => {
  const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
    execFile(process.execPath, [CLI, 'demo', '--calls', '1'], { env: childEnv(), timeout: 90_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, out: `${stdout}${stderr}` }));
  });
  t.equal(r.code, 0, r.out);
  t.match(r.out, /attempt 2 hovedstaden: cancelled/);
  t.match(r.out, /message no-contact "Ingen kontakt til AMK" committed/);
  t.match(r.out, /attempt 3 sjaelland: answered/);
  t.match(r.out, /lamp desk-1 .*overflow-connected/);
  t.match(r.out, /summary: .*messages received 2 \(no-contact, contact-via-overflow\), all test: true/);
});
