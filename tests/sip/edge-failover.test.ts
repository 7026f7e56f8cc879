// The shipped Kamailio edge (config/kamailio/amk-edge.cfg) with Debian's Kamailio: 112 calls go
// through the bridge while it answers the dispatcher's OPTIONS probes; with the bridge killed,
// the next call reaches the call-taker platform directly; with the bridge back, calls go
// through it again.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { startKamailio } from '../helpers/kamailio.js';
import { startSipp, runSipp, describeSipp } from '../helpers/sipp.js';
import { startDaemon } from '../helpers/daemon.js';
import { freePort } from '../helpers/ports.js';
import { testConfigInput } from '../helpers/config.js';
import { waitFor } from '../helpers/bridge.js';

const EDGE = resolve(import.meta.dirname, '../../config/kamailio/amk-edge.cfg');

t.test('calls through the bridge; bridge killed: straight to the call takers; bridge back: through it again', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'amk-edge-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ct = startSipp(t, { scenario: 'calltaker-answer.xml', calls: 3, timeoutS: 60 });
  await ct.ready;
  const [bridgePort, edgePort] = [await freePort('udp'), await freePort('udp')];

  // The bridge on a fixed port (the dispatcher list names it), as the daemon.
  const file = join(dir, 'amk-bridge.yaml');
  const cfg = testConfigInput({ callTakerTarget: `sip:1001@127.0.0.1:${ct.port}` });
  writeFileSync(file, stringify({
    ...cfg, journal: { path: join(dir, 'j.sqlite') }, recontact: { path: join(dir, 'r.sqlite'), keyFile: join(dir, 'r.key') },
    sip: { ...cfg.sip, listen: [{ transport: 'udp', address: '127.0.0.1', port: bridgePort }] },
  }));
  let bridge = startDaemon(t, file);
  await bridge.ready;

  // The shipped edge with this test's values.
  const list = join(dir, 'amk-dispatcher.list');
  writeFileSync(list, `1 sip:127.0.0.1:${bridgePort} 0 0\n`);
  const set = (cfgText: string, name: string, value: string | number) => cfgText.replace(new RegExp(`(#!substdef "!${name}!)[^!]*(!g")`), `$1${value}$2`);
  let edgeCfg = readFileSync(EDGE, 'utf8');
  edgeCfg = set(edgeCfg, 'EDGE_LISTEN', `udp:127.0.0.1:${edgePort}`);
  edgeCfg = set(edgeCfg, 'CALLTAKER_URI', `sip:1001@127.0.0.1:${ct.port}`);
  edgeCfg = set(edgeCfg, 'DS_LIST', list);
  edgeCfg = set(edgeCfg, 'PROBE_S', 1);
  edgeCfg = set(edgeCfg, 'MPATH', '@MPATH@');
  const edgeFile = join(dir, 'amk-edge.cfg');
  writeFileSync(edgeFile, edgeCfg);
  await startKamailio(t, edgeFile, {});

  const call = async (what: string) => {
    const r = await runSipp(t, { scenario: 'trunk-call.xml', remote: `127.0.0.1:${edgePort}`, keys: { hold_ms: 500 }, timeoutS: 20 });
    t.equal(r.successful, 1, `${what}: ${describeSipp(r)}`);
  };
  const seen = () => bridge.lines.filter((l) => l.msg === '112 call').length;

  await call('call 1');
  t.equal(seen(), 1, 'call 1 went through the bridge');

  await bridge.kill('SIGKILL');
  await new Promise((r) => setTimeout(r, 1500)); // one probe interval
  await call('call 2 with the bridge dead');

  bridge = startDaemon(t, file);
  await bridge.ready;
  await new Promise((r) => setTimeout(r, 2500)); // the probe marks it up again
  await call('call 3 with the bridge back');
  await waitFor(() => seen() === 1, 3000, 'the new bridge saw call 3');
  const r = await ct.done;
  t.equal(r.successful, 3, `the call takers answered all three: ${describeSipp(r)}`);
});
