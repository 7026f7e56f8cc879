import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import Ajv from 'ajv';
import {
  buildMessage, carriesNoContactText, messageKey, MESSAGE_SCHEMA_VERSION, NO_CONTACT_TEXT,
  type AmkMessage, type MessageContext, type MessageDetails,
} from '../../src/domain/message.js';
import type { MessageType } from '../../src/journal/types.js';

const SCHEMA = JSON.parse(readFileSync(new URL('../../config/message.schema.json', import.meta.url), 'utf8')) as object;
const warnings: unknown[] = [];
const ajv = new Ajv.default({ strict: true, allErrors: true, logger: { log() {}, warn: (...a: unknown[]) => warnings.push(a), error: (...a: unknown[]) => warnings.push(a) } });
const validate = ajv.compile<AmkMessage>(SCHEMA);

const T0 = Date.UTC(2025, 0, 31, 13, 45, 7, 123);
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const FOLLOW_UPS: MessageType[] = ['contact-via-overflow', 'citizen-hangup', 'delivery-escalated'];
const ALL: MessageType[] = ['no-contact', ...FOLLOW_UPS];

function ctx(p: Partial<MessageContext> = {}): MessageContext {
  return {
    requestId: 'req-7f3a',
    incidentId: 'urn:emergency:uid:incidentid:0a1b2c3d4e5f:psap-1',
    emergencyCallId: 'urn:emergency:uid:callid:99aa88bb77cc:psap-1',
    node: 'psap-1',
    desk: 'desk-04',
    region: { id: 'hovedstaden', name: 'Region Hovedstaden' },
    caller: { number: '+4512345678', uri: 'sip:+4512345678@operator.dk' },
    location: { pidfLo: '<presence xmlns="urn:ietf:params:xml:ns:pidf"/>', reference: null },
    recontact: null,
    test: false,
    ...p,
  };
}

function details(type: MessageType, p: Partial<MessageDetails> = {}): MessageDetails {
  const base: MessageDetails = {
    type,
    createdAt: T0,
    updatedAt: T0 + 5,
    attempts: [
      { attemptId: 'a1', n: 1, stage: 'home', region: 'hovedstaden', target: 'sip:amk@region.dk', startedAt: T0 - 22_000, firstResponseAt: T0 - 21_950, answeredAt: null, endedAt: T0 - 11_000, outcome: 'no-answer', status: 408, reason: 'Request Timeout' },
      { attemptId: 'a2', n: 2, stage: 'home', region: 'hovedstaden', target: 'sip:amk@region.dk', startedAt: T0 - 11_000, firstResponseAt: null, answeredAt: null, endedAt: T0 - 10_990, outcome: 'busy', status: 486, reason: 'Busy Here' },
    ],
  };
  if (type === 'no-contact') base.reason = 'attempts-exhausted';
  if (type === 'contact-via-overflow') base.overflow = { region: { id: 'sjaelland', name: 'Region Sjælland' }, answeredAt: T0 + 30_000 };
  if (type === 'citizen-hangup') base.hangupAt = T0 + 40_000;
  if (type === 'delivery-escalated') base.escalation = { at: T0 + 30_000, reason: 'deadline', detail: 'undelivered after 30 s' };
  return { ...base, ...p };
}

function valid(t: Test, m: unknown, what: string): void {
  t.ok(validate(m), `${what} validates against config/message.schema.json`, { errors: validate.errors });
}

/** Every string anywhere in a value. */
function strings(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.flatMap(strings);
  if (v !== null && typeof v === 'object') return Object.values(v).flatMap(strings);
  return [];
}

t.test('the schema compiles under strict ajv without warnings', async (t) => {
  t.same(warnings, []);
  t.equal((SCHEMA as { $schema: string }).$schema, 'http://json-schema.org/draft-07/schema#');
});

t.test('every type builds and validates; the text is on no-contact only', async (t) => {
  for (const type of ALL) {
    const m = buildMessage(ctx(), details(type));
    valid(t, m, type);
    t.equal(m.messageId, `req-7f3a:${type}`);
    t.equal(m.messageId, messageKey('req-7f3a', type));
    t.equal(m.type, type);
    t.equal(m.schemaVersion, MESSAGE_SCHEMA_VERSION);
    const json = JSON.stringify(m);
    if (type === 'no-contact') {
      t.equal(m.text, NO_CONTACT_TEXT);
      t.equal(m.text, 'Ingen kontakt til AMK');
      t.equal(json.split(NO_CONTACT_TEXT).length - 1, 1, 'the text appears exactly once');
      t.equal(m.reason, 'attempts-exhausted');
      t.notOk('refersTo' in m);
    } else {
      t.notOk('text' in m, `${type} has no text field`);
      t.notOk('reason' in m);
      t.notOk(json.includes(NO_CONTACT_TEXT), `${type} does not contain the text`);
      t.notOk(carriesNoContactText(json));
      t.equal(m.refersTo, 'req-7f3a:no-contact', 'refers to the no-contact message');
    }
  }
});

t.test('field content', async (t) => {
  const m = buildMessage(ctx({ recontact: { count: 2, lastAt: T0 - 3_600_000 } }), details('no-contact'));
  t.equal(m.created, '2025-01-31T13:45:07.123Z');
  t.equal(m.updated, '2025-01-31T13:45:07.128Z');
  t.same(m.incident, { id: 'urn:emergency:uid:incidentid:0a1b2c3d4e5f:psap-1' });
  t.same(m.call, { id: 'urn:emergency:uid:callid:99aa88bb77cc:psap-1', callerNumber: '+4512345678', callbackUri: 'sip:+4512345678@operator.dk' });
  t.same(m.psap, { node: 'psap-1', desk: 'desk-04' });
  t.same(m.region, { id: 'hovedstaden', name: 'Region Hovedstaden' });
  t.same(m.location, { pidfLo: '<presence xmlns="urn:ietf:params:xml:ns:pidf"/>' });
  t.same(m.recontact, { count: 2, last: '2025-01-31T12:45:07.123Z' });
  t.equal(m.test, false);
  t.equal(m.attempts.length, 2);
  t.same(m.attempts[0], {
    attemptId: 'a1', n: 1, stage: 'home', region: 'hovedstaden', target: 'sip:amk@region.dk',
    started: '2025-01-31T13:44:45.123Z', firstResponse: '2025-01-31T13:44:45.173Z', answered: null, ended: '2025-01-31T13:44:56.123Z',
    firstResponseMs: 50, answerMs: null, durationMs: 11_000, outcome: 'no-answer', sipStatus: 408, reason: 'Request Timeout',
  });
  for (const s of [m.created, m.updated, m.recontact!.last, ...m.attempts.flatMap((a) => [a.started, a.firstResponse, a.ended].filter((x) => x !== null))]) {
    t.match(s, ISO, `ISO 8601 UTC: ${s}`);
  }
  t.same(Object.keys(m).slice(0, 5), ['schemaVersion', 'messageId', 'type', 'text', 'reason'], 'the text sits at the top');

  const over = buildMessage(ctx(), details('contact-via-overflow'));
  t.same(over.overflow?.region, { id: 'sjaelland', name: 'Region Sjælland' });
  t.equal(over.overflow?.answered, '2025-01-31T13:45:37.123Z');
  t.equal(over.overflow?.homeDispatchStands, true);
  t.match(over.overflow?.note, /Region Sjælland/);
  t.match(over.overflow?.note, /Region Hovedstaden står ved magt/, 'says the home region\'s dispatch stands');
  t.notOk(carriesNoContactText(over.overflow!.note));

  const hang = buildMessage(ctx(), details('citizen-hangup'));
  t.same(hang.hangup, { at: '2025-01-31T13:45:47.123Z' });
  const esc = buildMessage(ctx(), details('delivery-escalated', { escalation: { at: T0 + 1, reason: 'permanent-failure', detail: 'https://amk.example: 403 Forbidden' } }));
  t.same(esc.escalation, { at: '2025-01-31T13:45:07.124Z', reason: 'permanent-failure', detail: 'https://amk.example: 403 Forbidden' });

  for (const reason of ['citizen-hangup', 'bridge-restart'] as const) {
    const r = buildMessage(ctx(), details('no-contact', { reason }));
    t.equal(r.reason, reason);
    valid(t, r, `no-contact (${reason})`);
  }
});

t.test('nullable context: withheld number, no location, location by reference, no desk, no attempts', async (t) => {
  const c = ctx({ caller: { number: null, uri: null }, location: null, desk: null });
  for (const type of ALL) {
    const m = buildMessage(c, details(type, { attempts: [] }));
    valid(t, m, `${type} with nulls`);
    t.same(m.call, { id: 'urn:emergency:uid:callid:99aa88bb77cc:psap-1', callerNumber: null, callbackUri: null });
    t.equal(m.location, null);
    t.equal(m.recontact, null);
    t.equal(m.psap.desk, null);
    t.same(m.attempts, []);
  }
  const ref = buildMessage(ctx({ location: { pidfLo: null, reference: 'https://lis.example/loc/123' } }), details('no-contact'));
  t.same(ref.location, { reference: 'https://lis.example/loc/123' });
  valid(t, ref, 'by reference');
  const both = buildMessage(ctx({ location: { pidfLo: '<presence/>', reference: 'https://lis.example/loc/1' } }), details('no-contact'));
  t.same(both.location, { pidfLo: '<presence/>' }, 'the value wins over the reference');
  const none = buildMessage(ctx({ location: { pidfLo: null, reference: null } }), details('no-contact'));
  t.equal(none.location, null);
});

t.test('test flag', async (t) => {
  for (const type of ALL) {
    const m = buildMessage(ctx({ test: true }), details(type));
    t.equal(m.test, true);
    valid(t, m, `${type} test message`);
  }
});

t.test('hostile names never smuggle the text into a follow-up', async (t) => {
  const hostile = [
    'Ingen kontakt til AMK',
    'Region Ingen kontakt til AMK Nord',
    'INGEN KONTAKT TIL AMK',
    'ingen  kontakt\ntil\u00a0amk',
  ];
  for (const h of hostile) {
    const c = ctx({
      node: h, desk: h, region: { id: 'x', name: h },
      caller: { number: h, uri: h },
      location: { pidfLo: `<civicAddress>${h}</civicAddress>`, reference: null },
    });
    const attempts = details('no-contact').attempts.map((a) => ({ ...a, target: h, reason: h, region: h }));
    for (const type of FOLLOW_UPS) {
      const m = buildMessage(c, details(type, {
        attempts,
        overflow: { region: { id: 'y', name: h }, answeredAt: T0 },
        escalation: { at: T0, reason: 'deadline', detail: h },
      }));
      const json = JSON.stringify(m);
      t.notOk(json.includes(NO_CONTACT_TEXT), `${type}: not in the JSON (${JSON.stringify(h)})`);
      t.notOk(carriesNoContactText(json), `${type}: no variant of it either`);
      t.notOk(strings(m).some(carriesNoContactText), `${type}: no string carries it`);
      valid(t, m, `${type} with hostile names`);
      t.match(m.region.name, '[tekst fjernet]', 'the occurrence is replaced, the rest kept');
    }
    // On no-contact, the text field stays the only carrier.
    const nc = buildMessage(c, details('no-contact', { attempts }));
    t.equal(nc.text, NO_CONTACT_TEXT);
    t.equal(strings(nc).filter(carriesNoContactText).length, 1, 'no-contact: only the text field carries it');
    valid(t, nc, 'no-contact with hostile names');
  }
  t.equal(buildMessage(ctx({ region: { id: 'x', name: 'Region Ingen kontakt til AMK Nord' } }), details('citizen-hangup')).region.name, 'Region [tekst fjernet] Nord');
});

t.test('the schema rejects what the rules forbid', async (t) => {
  const nc = buildMessage(ctx(), details('no-contact'));
  const fu = buildMessage(ctx(), details('citizen-hangup'));
  const bad: Array<[string, unknown]> = [
    ['no-contact without text', { ...nc, text: undefined }],
    ['no-contact with another text', { ...nc, text: 'Ingen kontakt' }],
    ['no-contact with refersTo', { ...nc, refersTo: 'req-7f3a:no-contact' }],
    ['follow-up with the text', { ...fu, text: NO_CONTACT_TEXT }],
    ['follow-up without refersTo', { ...fu, refersTo: undefined }],
    ['follow-up with the text inside a name', { ...fu, region: { id: 'x', name: 'Region Ingen kontakt til AMK' } }],
    ['follow-up with the text inside an attempt', { ...fu, attempts: [{ ...fu.attempts[0], reason: 'ingen kontakt til amk' }] }],
    ['citizen-hangup without hangup', { ...fu, hangup: undefined }],
    ['citizen-hangup with overflow', { ...fu, overflow: buildMessage(ctx(), details('contact-via-overflow')).overflow }],
    ['unknown field', { ...nc, extra: 1 }],
    ['time not UTC', { ...nc, created: '2025-01-31T14:45:07+01:00' }],
    ['bad incident URN', { ...nc, incident: { id: 'incident-1' } }],
    ['location with both', { ...nc, location: { pidfLo: 'x', reference: 'y' } }],
  ];
  for (const [what, m] of bad) t.notOk(validate(JSON.parse(JSON.stringify(m))), what);
});

t.test('missing follow-up details are a programming error; no-contact is never held back', async (t) => {
  t.throws(() => buildMessage(ctx(), { ...details('contact-via-overflow'), overflow: undefined }), TypeError);
  t.throws(() => buildMessage(ctx(), { ...details('citizen-hangup'), hangupAt: undefined }), TypeError);
  t.throws(() => buildMessage(ctx(), { ...details('delivery-escalated'), escalation: undefined }), TypeError);
  const m = buildMessage(ctx(), { ...details('no-contact'), reason: undefined });
  t.equal(m.reason, 'attempts-exhausted');
  t.equal(m.text, NO_CONTACT_TEXT);
});

t.test('pure: the same input gives the same message', async (t) => {
  const a = JSON.stringify(buildMessage(ctx(), details('no-contact')));
  const b = JSON.stringify(buildMessage(ctx(), details('no-contact')));
  t.equal(a, b);
});
