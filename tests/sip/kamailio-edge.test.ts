// Kamailio (Debian) as the site's SIP edge in front of the bridge: calls flow through it, and
// in-dialog requests follow its Record-Route both ways.
import t from 'tap';
import { startSipp, runSipp, describeSipp } from '../helpers/sipp.js';
import { startTestBridge } from '../helpers/bridge.js';
import { startKamailio } from '../helpers/kamailio.js';
import { freePort } from '../helpers/ports.js';

t.test('calls through a Kamailio edge, BYE from either side', async (t) => {
  const ct = startSipp(t, { scenario: 'calltaker-answer.xml', calls: 1 });
  await ct.ready;
  const { bridge } = await startTestBridge(t, { callTakerTarget: `sip:1001@127.0.0.1:${ct.port}` });
  const edgePort = await freePort('udp');
  const edge = await startKamailio(t, 'edge.cfg.tpl', { EDGE_PORT: edgePort, BRIDGE_PORT: bridge.port('udp') });
  const trunk = await runSipp(t, { scenario: 'trunk-call.xml', remote: `127.0.0.1:${edgePort}` });
  t.equal(trunk.successful, 1, `trunk via the edge: ${describeSipp(trunk)}\n${edge.log().slice(-2000)}`);
  t.match(trunk.messages, /Record-Route: <sip:127\.0\.0\.1:\d+;lr[^>]*>/, 'the edge record-routed the call');
  t.equal((await ct.done).successful, 1);

  // The call taker hangs up: the bridge's BYE to the trunk goes through the edge's route.
  const ct2 = startSipp(t, { scenario: 'calltaker-answer-bye.xml' });
  await ct2.ready;
  const { bridge: b2 } = await startTestBridge(t, { callTakerTarget: `sip:1001@127.0.0.1:${ct2.port}` });
  const edge2Port = await freePort('udp');
  await startKamailio(t, 'edge.cfg.tpl', { EDGE_PORT: edge2Port, BRIDGE_PORT: b2.port('udp') });
  const trunk2 = await runSipp(t, { scenario: 'trunk-wait-bye.xml', remote: `127.0.0.1:${edge2Port}` });
  t.equal(trunk2.successful, 1, `BYE reached the trunk through the edge: ${describeSipp(trunk2)}`);
  t.match(trunk2.messages, /BYE sip:[^\n]*\n[\s\S]*Via: SIP\/2\.0\/UDP 127\.0\.0\.1:\d+;branch=z9hG4bK[^\n]*\n[\s\S]*Via: SIP\/2\.0\/UDP/, 'the BYE came via the edge (two Vias)');
});
