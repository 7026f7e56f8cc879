// The conference-in procedure as a pure state machine: inputs with times in, commands out.
import t from 'tap';
import { Procedure, type Command } from '../../src/domain/procedure.js';
import { planSteps, type ProcedurePolicy, type RegionPlan } from '../../src/domain/policy.js';

const region = (id: string, over: Partial<RegionPlan> = {}): RegionPlan => ({
  id, name: id, targets: [`sip:amk@${id}`], attempts: 2, ringTimerMs: 11_000, spacingMs: 11_000, ...over,
});

function policy(over: { home?: Partial<ProcedurePolicy['home']>; overflow?: ProcedurePolicy['overflow'] } = {}): ProcedurePolicy {
  return {
    home: { ...region('home'), bufferTargets: [], bufferAttempts: 1, messageEndpoints: ['http://x/m'], escalationMs: 30_000, ...over.home },
    overflow: over.overflow ?? { policy: 'none', regions: [] },
    cancelGraceMs: 4000,
  };
}

function machine(p = policy()) {
  let n = 0;
  return new Procedure(p, () => `a${++n}`);
}

const kinds = (cmds: Command[]) => cmds.map((c) => c.do);
const find = <K extends Command['do']>(cmds: Command[], kind: K) => cmds.filter((c): c is Extract<Command, { do: K }> => c.do === kind);
const dialOf = (cmds: Command[]) => find(cmds, 'dial')[0];

t.test('the plan reads like the procedure', async (t) => {
  const steps = planSteps(policy({ home: { bufferTargets: ['sip:buffer@home'] }, overflow: { policy: 'after-message', regions: [region('other', { attempts: 1 })] } }));
  t.same(steps.map((s) => (s.kind === 'message' ? 'message' : `${s.stage}:${s.region.id}`)), ['home:home', 'home:home', 'buffer:home', 'message', 'overflow:other']);
  const before = planSteps(policy({ overflow: { policy: 'before-message', regions: [region('a', { attempts: 1 }), region('b', { attempts: 2 })] } }));
  t.same(before.map((s) => (s.kind === 'message' ? 'message' : `${s.stage}:${s.region.id}`)), ['home:home', 'home:home', 'overflow:a', 'overflow:b', 'overflow:b', 'message']);
});

t.test('two attempts ring out: then exactly one no-contact message', async (t) => {
  const p = machine();
  let cmds = p.start(0);
  t.same(dialOf(cmds), { do: 'dial', attemptId: 'a1', n: 1, stage: 'home', region: 'home', targets: ['sip:amk@home'] });
  t.same(find(cmds, 'set-timer'), [{ do: 'set-timer', timer: 'ring', ms: 11_000 }]);
  t.same(find(cmds, 'tone'), [{ do: 'tone', tone: 'ringing' }]);
  p.ringing('a1');
  cmds = p.timer('ring', 11_000);
  t.same(find(cmds, 'cancel'), [{ do: 'cancel', attemptId: 'a1', reason: 'ring timer' }]);
  t.same(find(cmds, 'set-timer'), [{ do: 'set-timer', timer: 'grace', ms: 4000 }], 'waits for the 487 before attempt 2');
  t.notOk(dialOf(cmds));
  cmds = p.failed('a1', 11_050, { status: 487, reason: 'Request Terminated' });
  t.equal(find(cmds, 'attempt-ended')[0]?.outcome, 'no-answer');
  t.equal(dialOf(cmds)?.n, 2, 'attempt 2 starts: the spacing since attempt 1 has passed');
  p.ringing('a2');
  p.timer('ring', 22_050);
  cmds = p.failed('a2', 22_100, { status: 487, reason: 'Request Terminated' });
  const commits = find(cmds, 'commit');
  t.same(commits, [{ do: 'commit', type: 'no-contact', reason: 'attempts-exhausted', at: 22_100 }]);
  t.equal(p.outcome, 'no-contact');
  t.ok(p.finished);
  t.same(p.failed('a2', 23_000, { status: 487, reason: 'again' }), [], 'a duplicate end changes nothing');
});

t.test('instant 486 twice: attempt 2 waits for the spacing, busy tone', async (t) => {
  const p = machine();
  p.start(0);
  let cmds = p.failed('a1', 50, { status: 486, reason: 'Busy Here' });
  t.equal(find(cmds, 'attempt-ended')[0]?.outcome, 'busy');
  t.same(find(cmds, 'tone'), [{ do: 'tone', tone: 'busy' }]);
  t.same(find(cmds, 'set-timer'), [{ do: 'set-timer', timer: 'next', ms: 10_950 }], 'attempt 2 no earlier than 11 s after attempt 1 started');
  t.notOk(dialOf(cmds));
  cmds = p.timer('next', 11_000);
  t.equal(dialOf(cmds)?.n, 2);
  cmds = p.failed('a2', 11_020, { status: 486, reason: 'Busy Here' });
  t.equal(find(cmds, 'commit')[0]?.type, 'no-contact');
});

t.test('Retry-After is honoured within the spacing, never beyond it', async (t) => {
  const p = machine(policy({ home: { spacingMs: 5000 } }));
  p.start(0);
  let cmds = p.failed('a1', 100, { status: 503, reason: 'Service Unavailable', retryAfterS: 3 });
  t.same(find(cmds, 'set-timer'), [{ do: 'set-timer', timer: 'next', ms: 4900 }], 'spacing wins when longer');
  const q = machine(policy({ home: { spacingMs: 5000 } }));
  q.start(0);
  q.ringing('a1');
  q.timer('ring', 11_000);
  cmds = q.failed('a1', 11_010, { status: 503, reason: 'x', retryAfterS: 120 });
  t.same(find(cmds, 'set-timer'), [{ do: 'set-timer', timer: 'next', ms: 5000 }], 'a long Retry-After is capped at the spacing');
});

t.test('answer on attempt 2 is contact at home', async (t) => {
  const p = machine();
  p.start(0);
  p.failed('a1', 10, { status: 480, reason: 'Temporarily Unavailable' });
  p.timer('next', 11_000);
  const cmds = p.answered('a2', 13_000, false);
  t.same(find(cmds, 'join'), [{ do: 'join', attemptId: 'a2' }]);
  t.same(find(cmds, 'outcome'), [{ do: 'outcome', outcome: 'contact', stage: 'home', region: 'home', at: 13_000 }]);
  t.same(find(cmds, 'tone'), [{ do: 'tone', tone: 'connected' }]);
  t.notOk(find(cmds, 'commit').length, 'no message on contact');
  t.equal(p.outcome, 'contact');
});

t.test('a 200 crossing our CANCEL is contact when nothing later started', async (t) => {
  const p = machine();
  p.start(0);
  p.ringing('a1');
  p.timer('ring', 11_000);
  const cmds = p.answered('a1', 11_020, true);
  t.equal(find(cmds, 'outcome')[0]?.outcome, 'contact');
  t.equal(find(cmds, 'attempt-ended')[0]?.crossedCancel, true);
  t.same(find(cmds, 'clear-timer').map((c) => c.timer).sort(), ['grace', 'next', 'ring']);
});

t.test('no 1xx by the ring timer: the attempt ends there; a later 200 after attempt 2 started is released', async (t) => {
  const p = machine();
  p.start(0);
  let cmds = p.timer('ring', 11_000);
  t.same(kinds(cmds).slice(0, 2), ['cancel', 'attempt-ended']);
  t.equal(dialOf(cmds)?.n, 2, 'attempt 2 starts at once');
  cmds = p.answered('a1', 11_500, true);
  t.same(find(cmds, 'release'), [{ do: 'release', attemptId: 'a1' }]);
  t.notOk(find(cmds, 'outcome').length);
  t.notOk(p.finished);
});

t.test('a late 200 while attempt 2 waits for the spacing is still contact', async (t) => {
  const p = machine(policy({ home: { ringTimerMs: 5000, spacingMs: 11_000 } }));
  p.start(0);
  let cmds = p.timer('ring', 5000);
  t.same(find(cmds, 'set-timer'), [{ do: 'set-timer', timer: 'next', ms: 6000 }]);
  cmds = p.answered('a1', 5200, true);
  t.equal(find(cmds, 'outcome')[0]?.outcome, 'contact');
  t.same(p.timer('next', 11_000), [], 'the waiting attempt never starts');
});

t.test('a late 200 after the message is committed is released', async (t) => {
  const p = machine(policy({ home: { attempts: 1 } }));
  p.start(0);
  let cmds = p.timer('ring', 11_000);
  t.equal(find(cmds, 'commit')[0]?.type, 'no-contact');
  cmds = p.answered('a1', 11_100, true);
  t.same(find(cmds, 'release'), [{ do: 'release', attemptId: 'a1' }]);
  t.equal(p.outcome, 'no-contact');
});

t.test('grace timer: no final response to our CANCEL still ends the attempt', async (t) => {
  const p = machine();
  p.start(0);
  p.ringing('a1');
  p.timer('ring', 11_000);
  const cmds = p.timer('grace', 15_000);
  t.equal(find(cmds, 'attempt-ended')[0]?.outcome, 'no-answer');
  t.equal(dialOf(cmds)?.n, 2);
});

t.test('the citizen hangs up during attempt 1: cancel, message with reason citizen-hangup', async (t) => {
  const p = machine();
  p.start(0);
  p.ringing('a1');
  const cmds = p.citizenHungUp(3000);
  t.same(find(cmds, 'cancel'), [{ do: 'cancel', attemptId: 'a1', reason: 'citizen hung up' }]);
  t.equal(find(cmds, 'attempt-ended')[0]?.outcome, 'citizen-hangup');
  t.same(find(cmds, 'commit'), [{ do: 'commit', type: 'no-contact', reason: 'citizen-hangup', at: 3000 }]);
  t.same(kinds(p.answered('a1', 3100, true)), ['release'], 'the crossing answer is released');
  t.same(p.citizenHungUp(4000), [], 'only once');
});

t.test('the call taker hanging up does not stop the procedure', async (t) => {
  const p = machine();
  p.start(0);
  t.same(p.callTakerLeft(), []);
  p.ringing('a1');
  p.timer('ring', 11_000);
  const cmds = p.failed('a1', 11_010, { status: 487, reason: 'x' });
  t.equal(dialOf(cmds)?.n, 2);
});

t.test('abort before a message: aborted, no message; abort after done is refused', async (t) => {
  const p = machine();
  p.start(0);
  const cmds = p.abort(2000);
  t.same(find(cmds, 'cancel'), [{ do: 'cancel', attemptId: 'a1', reason: 'aborted by call taker' }]);
  t.same(find(cmds, 'outcome'), [{ do: 'outcome', outcome: 'aborted', stage: null, region: null, at: 2000 }]);
  t.notOk(find(cmds, 'commit').length);
  t.same(kinds(p.abort(3000)), ['refuse']);
  t.same(kinds(p.failed('a1', 2100, { status: 487, reason: 'x' })), [], 'the 487 of the aborted attempt changes nothing');
});

t.test('retry key: the waiting attempt starts now', async (t) => {
  const p = machine();
  p.start(0);
  p.failed('a1', 10, { status: 486, reason: 'Busy' });
  const cmds = p.retryNow(500);
  t.same(kinds(cmds).slice(0, 2), ['clear-timer', 'dial']);
  t.same(kinds(p.retryNow(600)), ['refuse'], 'nothing waits now');
});

t.test('buffer queue after the primary attempts; its answer is buffer contact', async (t) => {
  const p = machine(policy({ home: { bufferTargets: ['sip:buffer@home'], spacingMs: 0 } }));
  p.start(0);
  p.failed('a1', 10, { status: 486, reason: 'Busy' });
  const cmds = p.failed('a2', 20, { status: 486, reason: 'Busy' });
  const d = dialOf(cmds);
  t.same([d?.stage, d?.targets], ['buffer', ['sip:buffer@home']]);
  t.equal(find(p.answered('a3', 30, false), 'outcome')[0]?.stage, 'buffer');
});

t.test('overflow before the message: the overflow region answers, no message', async (t) => {
  const p = machine(policy({ home: { spacingMs: 0 }, overflow: { policy: 'before-message', regions: [region('other', { attempts: 1, ringTimerMs: 5000 })] } }));
  p.start(0);
  p.failed('a1', 10, { status: 486, reason: 'Busy' });
  let cmds = p.failed('a2', 20, { status: 486, reason: 'Busy' });
  t.same([dialOf(cmds)?.stage, dialOf(cmds)?.region], ['overflow', 'other']);
  t.same(find(cmds, 'set-timer'), [{ do: 'set-timer', timer: 'ring', ms: 5000 }], "the overflow region's own ring timer");
  t.equal(find(cmds, 'show')[0]?.display, 'overflow-dialing');
  cmds = p.answered('a3', 100, false);
  t.same(find(cmds, 'outcome'), [{ do: 'outcome', outcome: 'contact', stage: 'overflow', region: 'other', at: 100 }]);
  t.notOk(find(cmds, 'commit').length);
  t.equal(find(cmds, 'show')[0]?.display, 'overflow-connected');
});

t.test('overflow before the message, nobody answers: one message at the end', async (t) => {
  const p = machine(policy({ home: { spacingMs: 0 }, overflow: { policy: 'before-message', regions: [region('other', { attempts: 1, spacingMs: 0 })] } }));
  p.start(0);
  p.failed('a1', 10, { status: 486, reason: 'Busy' });
  p.failed('a2', 20, { status: 486, reason: 'Busy' });
  const cmds = p.failed('a3', 30, { status: 486, reason: 'Busy' });
  t.same(find(cmds, 'commit').map((c) => c.type), ['no-contact']);
  t.ok(p.finished);
});

t.test('overflow after the message: message first, then overflow; contact there is a follow-up', async (t) => {
  const p = machine(policy({ home: { spacingMs: 0 }, overflow: { policy: 'after-message', regions: [region('other', { attempts: 1 })] } }));
  p.start(0);
  p.failed('a1', 10, { status: 486, reason: 'Busy' });
  let cmds = p.failed('a2', 20, { status: 486, reason: 'Busy' });
  t.same(kinds(cmds).filter((k) => k === 'commit' || k === 'dial'), ['commit', 'dial'], 'committed before the overflow dial');
  t.equal(p.outcome, 'no-contact');
  t.notOk(p.finished);
  cmds = p.answered('a3', 500, false);
  t.same(find(cmds, 'commit'), [{ do: 'commit', type: 'contact-via-overflow', overflowRegion: 'other', at: 500 }]);
  t.notOk(find(cmds, 'outcome').length, 'the outcome stays the delivered message');
  t.equal(p.outcome, 'no-contact');
});

t.test('overflow after the message: the citizen hangs up during it → citizen-hangup follow-up', async (t) => {
  const p = machine(policy({ home: { attempts: 1 }, overflow: { policy: 'after-message', regions: [region('other', { attempts: 1 })] } }));
  p.start(0);
  p.failed('a1', 10, { status: 603, reason: 'Decline' });
  const cmds = p.citizenHungUp(100);
  t.same(find(cmds, 'commit'), [{ do: 'commit', type: 'citizen-hangup', at: 100 }]);
});

t.test('unreachable: a local failure is classified and Retry-After of a local 503 is ignored', async (t) => {
  const p = machine(policy({ home: { spacingMs: 0 } }));
  p.start(0);
  const cmds = p.failed('a1', 10, { status: 503, reason: 'all targets failed', local: 'transport', retryAfterS: 60 });
  t.equal(find(cmds, 'attempt-ended')[0]?.outcome, 'unreachable');
  t.equal(dialOf(cmds)?.n, 2);
});

t.test('stale timers and unknown attempts are ignored', async (t) => {
  const p = machine();
  t.same(p.timer('ring', 0), []);
  t.same(p.timer('next', 0), []);
  t.same(p.timer('grace', 0), []);
  p.start(0);
  t.same(p.start(1), [], 'start once');
  t.same(kinds(p.answered('nope', 5, false)), ['release']);
  t.same(p.failed('nope', 5, { status: 500, reason: 'x' }), []);
});
