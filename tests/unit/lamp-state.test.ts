// What the lamps show, from the request and health events (pure mapping and the service's
// bookkeeping, with the outputs recorded instead of written to a port).
import t from 'tap';
import { deskStateFor, deskStateAfterCall, systemStateFor, outputsFor, DEFAULT_DESK_APPEARANCE } from '../../src/domain/lamp-state.js';
import { LampService, type LampSettings } from '../../src/lamps/lamp-service.js';
import { EventBus } from '../../src/core/events.js';

t.test('desk states follow the request', async (t) => {
  t.equal(deskStateFor('dialing', 1, 'idle'), 'dialing');
  t.equal(deskStateFor('dialing', 2, 'dialing'), 'redialing', 'attempt 2 looks different');
  t.equal(deskStateFor('waiting', 1, 'dialing'), 'redialing');
  t.equal(deskStateFor('connected', 2, 'redialing'), 'connected');
  t.equal(deskStateFor('no-contact', 2, 'redialing'), 'no-contact-pending');
  t.equal(deskStateFor('message-delivered', 2, 'no-contact-pending'), 'no-contact-delivered');
  t.equal(deskStateFor('escalation', 2, 'no-contact-pending'), 'escalation');
  t.equal(deskStateFor('message-delivered', 2, 'escalation'), 'no-contact-delivered', 'delivered after all');
  t.equal(deskStateFor('message-delivered', 3, 'overflow-dialing'), 'overflow-dialing', 'a delivery does not hide the overflow attempt');
  t.equal(deskStateFor('overflow-connected', 3, 'overflow-dialing'), 'overflow-connected');
  t.equal(deskStateFor('aborted', 1, 'dialing'), 'idle');
  t.equal(deskStateAfterCall('connected'), 'idle');
  t.equal(deskStateAfterCall('escalation'), 'escalation', 'phone the region stays lit');
  t.equal(deskStateAfterCall('no-contact-pending'), 'no-contact-pending');
});

t.test('the system lamp: alarm wins over fault', async (t) => {
  t.equal(systemStateFor(new Map()), 'ok');
  t.equal(systemStateFor(new Map([['a', 'fault']])), 'fault');
  t.equal(systemStateFor(new Map([['a', 'fault'], ['b', 'alarm']])), 'alarm');
});

t.test('outputs: every mapped colour gets a mode; unmapped colours are skipped', async (t) => {
  t.same(outputsFor(DEFAULT_DESK_APPEARANCE.escalation, { red: 1, amber: 2, green: 3 }), [[1, 'flash'], [2, 'flash'], [3, 'off']]);
  t.same(outputsFor({ green: 'on' }, { red: 'red', green: 'green' }), [['red', 'off'], ['green', 'on']]);
});

function service(over: Partial<LampSettings> = {}) {
  const bus = new EventBus();
  const writes: [string, string | number, string][] = [];
  const settings: LampSettings = {
    desks: [{ desk: 'desk-1', port: 'p', outputs: { red: 1, amber: 2, green: 3 } }],
    system: { port: 'p', outputs: { red: 8, green: 7 } },
    deskStates: {}, systemStates: {}, idleAfterS: 0.05, outboxBacklogAlarm: 1, ...over,
  };
  const log = { info() {}, warn() {} };
  const svc = new LampService(bus, settings, { set: (p, o, m) => writes.push([p, o, m]) }, log);
  t.teardown(() => svc.stop());
  return { bus, writes, svc };
}

const state = (bus: EventBus, s: 'dialing' | 'connected' | 'no-contact' | 'escalation' | 'message-delivered', attempt = 1) =>
  bus.emit('request.state', { requestId: 'r', callId: 'c', desk: 'desk-1', state: s, attempt, region: 'x', at: 0 });

t.test('the service drives the desk outputs and goes dark after the call', async (t) => {
  const { bus, writes, svc } = service();
  writes.length = 0;
  state(bus, 'dialing');
  t.same(writes, [['p', 1, 'off'], ['p', 2, 'flash'], ['p', 3, 'off']]);
  writes.length = 0;
  state(bus, 'connected');
  t.same(writes, [['p', 1, 'off'], ['p', 2, 'off'], ['p', 3, 'on']]);
  bus.emit('call.answered', { callId: 'c', desk: 'desk-1', user: '1001', at: 0 });
  bus.emit('call.ended', { callId: 'c', reason: 'bye', by: 'citizen', at: 0 });
  t.equal(svc.deskState('desk-1'), 'connected', 'the end stays visible a moment');
  await new Promise((r) => setTimeout(r, 120));
  t.equal(svc.deskState('desk-1'), 'idle');
});

t.test('escalation stays after the call until the message is delivered', async (t) => {
  const { bus, svc } = service();
  state(bus, 'no-contact', 2);
  state(bus, 'escalation', 2);
  bus.emit('call.ended', { callId: 'c', reason: 'bye', by: 'citizen', at: 0 });
  await new Promise((r) => setTimeout(r, 120));
  t.equal(svc.deskState('desk-1'), 'escalation');
  state(bus, 'message-delivered', 2);
  t.equal(svc.deskState('desk-1'), 'no-contact-delivered');
});

t.test('faults light the system lamp and clear', async (t) => {
  const { bus, writes, svc } = service();
  t.equal(svc.systemState().state, 'ok');
  writes.length = 0;
  bus.emit('target.health', { id: 'hovedstaden#1', kind: 'region', uri: 'sip:x', up: false, since: 0, lastStatus: null });
  t.same(svc.systemState(), { state: 'fault', faults: ['region:hovedstaden#1'] });
  t.same(writes, [['p', 8, 'on'], ['p', 7, 'off']]);
  bus.emit('message.escalated', { requestId: 'r', callId: null, key: 'r:no-contact', type: 'no-contact', reason: 'deadline', detail: 'x', at: 0 });
  t.equal(svc.systemState().state, 'alarm');
  bus.emit('message.delivered', { requestId: 'r', callId: null, key: 'r:no-contact', type: 'no-contact', endpoint: 'u', latencyMs: 1, at: 0 });
  bus.emit('target.health', { id: 'hovedstaden#1', kind: 'region', uri: 'sip:x', up: true, since: 0, lastStatus: 200 });
  t.equal(svc.systemState().state, 'ok');
  bus.emit('lamp.port', { id: 'p', path: '/dev/x', open: false, error: 'ENOENT', at: 0 });
  t.equal(svc.systemState().state, 'fault', 'a lost serial port is a fault');
  svc.backlog(3);
  t.same(svc.systemState().faults.sort(), ['outbox', 'port:p']);
  bus.emit('alarm', { kind: 'config-error', text: 'bad', at: 0 });
  t.ok(svc.systemState().faults.includes('config'));
  bus.emit('config.applied', { at: 0 });
  t.notOk(svc.systemState().faults.includes('config'), 'a good reload clears the config fault');
});

t.test('configured pictures override the defaults; lamp test cycles and restores', async (t) => {
  const { bus, writes, svc } = service({ deskStates: { dialing: { red: 'on' } } });
  state(bus, 'dialing');
  t.same(writes.slice(-3), [['p', 1, 'on'], ['p', 2, 'off'], ['p', 3, 'off']]);
  const steps: string[] = [];
  await svc.lampTest(1, (lamp, s) => steps.push(`${lamp}:${s}`));
  t.equal(steps.length, 9 + 3);
  t.same(steps.slice(0, 2), ['desk-1:idle', 'desk-1:dialing']);
  t.same(writes.slice(-5, -2), [['p', 1, 'on'], ['p', 2, 'off'], ['p', 3, 'off']], 'the real state is shown again');
});
