// Stopping drains: after SIGTERM new calls get 503 with Retry-After, OPTIONS says 503 (so the
// edge routes around the bridge), the call in progress goes on to its end, then the daemon exits.
import t from 'tap';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { startDaemon } from '../helpers/daemon.js';
import { startSipp, runSipp } from '../helpers/sipp.js';
import { testConfigInput } from '../helpers/config.js';

/** One request over UDP; resolves with the status line of the first final response. */
function ask(port: number, method: 'OPTIONS' | 'INVITE'): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    const timer = setTimeout(() => { s.close(); reject(new Error(`no answer to ${method}`)); }, 5000);
    s.on('message', (m) => {
      const line = m.toString().split('\r\n')[0]!;
      if (/^SIP\/2\.0 1\d\d/.test(line)) return;
      clearTimeout(timer);
      s.close();
      resolve(`${line}\n${m.toString()}`);
    });
    s.bind(0, '127.0.0.1', () => {
      const { port: me } = s.address();
      const branch = `z9hG4bK${Math.random().toString(36).slice(2)}`;
      const msg = [
        `${method} sip:112@127.0.0.1:${port} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${me};branch=${branch}`,
        'Max-Forwards: 70',
        `From: <sip:+4512345678@127.0.0.1:${me}>;tag=t${branch}`,
        `To: <sip:112@127.0.0.1:${port}>`,
        `Call-ID: ${branch}@127.0.0.1`,
        `CSeq: 1 ${method}`,
        `Contact: <sip:trunk@127.0.0.1:${me}>`,
        'Content-Length: 0',
        '', '',
      ].join('\r\n');
      s.send(msg, port, '127.0.0.1');
    });
  });
}

t.test('SIGTERM drains: 503 for new calls and OPTIONS, the call in progress finishes, then exit 0', async (t) => {
  const ct = startSipp(t, { scenario: 'calltaker-answer.xml', timeoutS: 30 });
  await ct.ready;
  const dir = t.testdir({});
  const file = `${dir}/amk-bridge.yaml`;
  const cfg = testConfigInput({ callTakerTarget: `sip:1001@127.0.0.1:${ct.port}` });
  writeFileSync(file, stringify({
    ...cfg, journal: { path: `${dir}/j.sqlite` }, recontact: { path: `${dir}/r.sqlite`, keyFile: `${dir}/r.key` },
    sip: { ...cfg.sip, drainRetryAfterS: 7 },
  }));
  const d = startDaemon(t, file);
  const { udp } = await d.ready;
  t.match(await ask(udp, 'OPTIONS'), /^SIP\/2\.0 200/, 'up: OPTIONS 200');
  const call = runSipp(t, { scenario: 'trunk-call.xml', remote: `127.0.0.1:${udp}`, keys: { hold_ms: 3000 }, timeoutS: 20 });
  await d.waitForLog((l) => l.msg === 'answered by call taker', 8000, 'call answered');
  d.proc.kill('SIGTERM');
  await d.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('draining'), 5000, 'draining');
  const options = await ask(udp, 'OPTIONS');
  t.match(options, /^SIP\/2\.0 503/, 'draining: OPTIONS 503, so the edge sends new calls around');
  const invite = await ask(udp, 'INVITE');
  t.match(invite, /^SIP\/2\.0 503/, 'a new call is refused');
  t.match(invite, /Retry-After: 7/);
  t.equal(d.proc.exitCode, null, 'still running while the call is up');
  const r = await call;
  t.equal(r.successful, 1, 'the call in progress ended normally (the trunk hung up)');
  const exit = await d.exited;
  t.same(exit, { code: 0, signal: null }, 'then the daemon exited');
});
