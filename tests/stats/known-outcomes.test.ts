// The statistics against a run whose outcomes are known in advance: SIPp citizens call 112
// through the bridge, a SIPp call-taker platform answers (first without, then with the *1
// trigger by INFO), SIPp regions answer, are busy or never answer, a real HTTP receiver takes the
// no-contact messages. Then `amk-bridge stats` (the built command line, on the journal file) must
// show exactly the figures this test computes from what it drove.
//
//   home region   routed by R-URI  requests  attempts                                 ends
//   hovedstaden   112 (default)    3         answered (after 300 ms)                   contact, attempt 1
//   midtjylland   1123             2         busy, answered (after 900 ms)             contact, attempt 2
//   sjaelland     1122             2         no-answer ×2, overflow syddanmark         contact via overflow
//                                            answered (after 1500 ms)
//   nordjylland   1125             2         busy ×2, overflow sjaelland no-answer     no-contact message
//   bornholm      1126             1         busy ×2, (message), overflow syddanmark   no-contact message, then
//                                            answered (after 1500 ms)                  contact via overflow
//   + 2 calls to hovedstaden the call taker answers without a trigger (calls seen, no request)
import t from 'tap';
import { startSipp, runSipp, describeSipp, type SippHandle } from '../helpers/sipp.js';
import { startTestBridge, waitFor } from '../helpers/bridge.js';
import { startReceiver } from '../helpers/receiver.js';
import type { RegionInput } from '../../src/config/schema.js';
import type { BridgeEvents } from '../../src/core/events.js';
import { NO_CONTACT_TEXT } from '../../src/domain/message.js';
import {
  counted,
  countedExpected,
  expectedFigures,
  hourPeriod,
  nearestRank,
  readJournalRows,
  statsCli,
  statsJson,
  TOLERANT_UAS,
  type RequestPlan,
} from './helpers.js';

/** SIPp answer delays (ms): far enough apart that the median's group is unambiguous. */
const DELAY = { hovedstaden: 300, midtjylland: 900, syddanmark: 1500 } as const;
/**
 * How far above the SIPp delay an answer time (INVITE out, 180, the pause, 200 in) may be on a
 * loaded machine: for a median (a middle value), and for one single answer (the p90 of eight
 * values is the largest; bornholm has one answer), which a scheduling hiccup can hold up alone.
 */
const MEDIAN_SLACK_MS = 600;
const SINGLE_SLACK_MS = 1500;

t.test('known outcomes: the statistics show exactly what was driven', async (t) => {
  const t0 = Date.now();
  const receiver = await startReceiver(t);
  const uas = (scenario: string, calls: number, keys: Record<string, number> = {}): SippHandle => startSipp(t, { scenario, calls, keys, timeoutS: 55, extra: TOLERANT_UAS });
  const hov = uas('region-answer.xml', 3, { answer_ms: DELAY.hovedstaden });
  const midt = uas('region-busy-then-answer.xml', 4, { answer_ms: DELAY.midtjylland });
  const sjael = uas('region-ring.xml', 4 + 2); // sjaelland's own attempts + nordjylland's overflow attempts
  const syd = uas('region-answer.xml', 3, { answer_ms: DELAY.syddanmark });
  const nord = uas('region-busy.xml', 4 + 2); // nordjylland's and bornholm's targets
  // The call-taker platform: first it answers without a trigger, then (same port) it presses *1.
  const ctQuiet = startSipp(t, { scenario: 'calltaker-answer.xml', calls: 2, timeoutS: 30, extra: TOLERANT_UAS });
  await Promise.all([hov.ready, midt.ready, sjael.ready, syd.ready, nord.ready, ctQuiet.ready]);

  const region = (id: string, code: string, target: SippHandle, more: Partial<RegionInput>): RegionInput => ({
    id, code, probe: false, targets: [`sip:amk@127.0.0.1:${target.port}`], ringTimerS: 5, escalationS: 600,
    messageEndpoints: { primary: receiver.url(`/${id}`), secondary: null }, ...more,
  });
  const { bridge, config } = await startTestBridge(t, {
    callTakerTarget: `sip:1001@127.0.0.1:${ctQuiet.port}`,
    regions: [
      region('hovedstaden', '01', hov, {}),
      region('sjaelland', '02', sjael, { ringTimerS: 0.6, overflow: { policy: 'before-message', regions: [{ region: 'syddanmark' }] } }),
      region('midtjylland', '03', midt, { spacingS: 0.3 }),
      region('syddanmark', '04', syd, { attempts: 1 }),
      region('nordjylland', '05', nord, { spacingS: 0.3, overflow: { policy: 'before-message', regions: [{ region: 'sjaelland', attempts: 1, ringTimerS: 0.6 }] } }),
      region('bornholm', '06', nord, { spacingS: 0.3, overflow: { policy: 'after-message', regions: [{ region: 'syddanmark' }] } }),
    ],
    routing: {
      defaultRegion: 'hovedstaden',
      rules: [
        { region: 'sjaelland', match: { requestUriUser: { equals: '1122' } } },
        { region: 'midtjylland', match: { requestUriUser: { equals: '1123' } } },
        { region: 'nordjylland', match: { requestUriUser: { equals: '1125' } } },
        { region: 'bornholm', match: { requestUriUser: { equals: '1126' } } },
      ],
    },
    conference: { interDigitMs: 150 },
    // Test requests are left out of the statistics: these are counted like real ones.
    messages: { test: false },
  } as never);
  const journalPath = config.journal.path;
  const ended: BridgeEvents['request.ended'][] = [];
  bridge.bus.on('request.ended', (e) => ended.push(e));
  const remote = `127.0.0.1:${bridge.port('udp')}`;
  const trunk = (service: string, calls: number, holdMs: number) =>
    runSipp(t, { scenario: 'trunk-call.xml', remote, service, calls, keys: { hold_ms: holdMs }, timeoutS: 30 });

  // Phase 1: two 112 calls the call taker answers without a trigger.
  const quiet = await trunk('112', 2, 800);
  t.equal(quiet.successful, 2, `calls without a trigger: ${describeSipp(quiet)}`);
  const ctq = await ctQuiet.done;
  t.equal(ctq.successful, 2, `the call taker answered both without a trigger: ${describeSipp(ctq)}`);
  t.same(ended, [], 'no request without a trigger');

  // Phase 2: the platform presses *1 on every call (same port, so the bridge's target stays).
  const ct = startSipp(t, { scenario: 'calltaker-info-trigger.xml', calls: 10, localPort: ctQuiet.port, keys: { pause_ms: 200 }, timeoutS: 55, extra: TOLERANT_UAS });
  await ct.ready;
  const [rHov, rMidt, rSjael, rNord, rBorn] = await Promise.all([
    // Each citizen holds the call well past its request's outcome, with room for a loaded machine.
    trunk('112', 3, 5000),
    // One at a time: each request's two attempts are one odd (busy) and one even (answered) call.
    (async () => [await trunk('1123', 1, 5000), await trunk('1123', 1, 5000)])(),
    trunk('1122', 2, 10_000),
    trunk('1125', 2, 6000),
    trunk('1126', 1, 7000),
  ]);
  t.equal(rHov.successful, 3, `hovedstaden citizens: ${describeSipp(rHov)}`);
  t.same(rMidt.map((r) => r.successful), [1, 1], `midtjylland citizens: ${rMidt.map(describeSipp).join('; ')}`);
  t.equal(rSjael.successful, 2, `sjaelland citizens: ${describeSipp(rSjael)}`);
  t.equal(rNord.successful, 2, `nordjylland citizens: ${describeSipp(rNord)}`);
  t.equal(rBorn.successful, 1, `bornholm citizen: ${describeSipp(rBorn)}`);
  for (const [name, h, n] of [['hovedstaden', hov, 3], ['midtjylland', midt, 4], ['sjaelland', sjael, 6], ['syddanmark', syd, 3], ['nordjylland and bornholm', nord, 6], ['call taker', ct, 10]] as const) {
    const r = await h.done;
    t.equal(r.successful, n, `${name} SIPp saw ${n} calls through: ${describeSipp(r)}`);
  }
  await waitFor(() => bridge.b2bua.activeCalls === 0, 8000, 'calls ended');
  await waitFor(() => receiver.accepted().length >= 4, 8000, 'the three no-contact messages and the follow-up');
  await waitFor(() => readJournalRows(journalPath).outbox.every((m) => m.state === 'delivered'), 8000, 'the outbox delivered');

  // What was driven, request by request.
  const plans: RequestPlan[] = [
    ...Array.from({ length: 3 }, (): RequestPlan => ({ region: 'hovedstaden', attempts: ['answered'], answered: { on: 'attempt1', region: 'hovedstaden', delayMs: DELAY.hovedstaden }, noContact: false })),
    ...Array.from({ length: 2 }, (): RequestPlan => ({ region: 'midtjylland', attempts: ['busy', 'answered'], answered: { on: 'attempt2', region: 'midtjylland', delayMs: DELAY.midtjylland }, noContact: false })),
    ...Array.from({ length: 2 }, (): RequestPlan => ({ region: 'sjaelland', attempts: ['no-answer', 'no-answer', 'answered'], answered: { on: 'overflow', region: 'syddanmark', delayMs: DELAY.syddanmark }, noContact: false })),
    ...Array.from({ length: 2 }, (): RequestPlan => ({ region: 'nordjylland', attempts: ['busy', 'busy', 'no-answer'], answered: null, noContact: true })),
    // The message first, then contact via overflow: counted as a no-contact message and as answered by an overflow region.
    { region: 'bornholm', attempts: ['busy', 'busy', 'answered'], answered: { on: 'overflow', region: 'syddanmark', delayMs: DELAY.syddanmark }, noContact: true },
  ];
  // Every call comes from +4512345678: all but the very first (a call of phase 1) are re-contacts.
  const calls: [string, boolean][] = [
    ['hovedstaden', false], ['hovedstaden', true],
    ...plans.map((p): [string, boolean] => [p.region, true]),
  ];
  const expected = expectedFigures(calls, plans);

  // The journal's own rows (plain SQL) agree with the plan before the statistics are judged.
  const rows = readJournalRows(journalPath);
  const story = (region: string) => rows.requests.filter((r) => r.region === region).map((r) => rows.attempts.filter((a) => a.request_id === r.request_id).map((a) => a.outcome));
  for (const id of ['hovedstaden', 'midtjylland', 'sjaelland', 'nordjylland', 'bornholm']) {
    t.same(story(id), plans.filter((p) => p.region === id).map((p) => p.attempts), `${id}: the attempts of each request as driven`);
  }
  t.same(
    ended.map((e) => `${e.outcome}:${e.stage ?? '-'}:${e.region ?? '-'}`).sort(),
    ['contact:home:hovedstaden', 'contact:home:hovedstaden', 'contact:home:hovedstaden', 'contact:home:midtjylland', 'contact:home:midtjylland',
      'contact:overflow:syddanmark', 'contact:overflow:syddanmark', 'no-contact:-:bornholm', 'no-contact:-:nordjylland', 'no-contact:-:nordjylland'],
    'each request ended as planned',
  );
  t.equal(rows.calls.length, 12, 'the journal has every 112 call');

  // Exactly one no-contact message per request whose home attempts failed, delivered, carrying
  // the text; bornholm's late contact adds its follow-up, nothing else.
  const failed = rows.requests.filter((r) => r.region === 'nordjylland' || r.region === 'bornholm').map((r) => r.request_id).sort();
  const late = rows.requests.filter((r) => r.region === 'bornholm').map((r) => r.request_id);
  const ncRows = rows.outbox.filter((m) => m.type === 'no-contact');
  t.same(ncRows.map((m) => m.request_id).sort(), failed, 'one no-contact outbox row per failed request, none for the others');
  t.same(rows.outbox.filter((m) => m.type !== 'no-contact').map((m) => [m.type, m.request_id]), late.map((id) => ['contact-via-overflow', id]), 'the only other message: the late contact\'s follow-up');
  t.ok(rows.outbox.every((m) => m.state === 'delivered'), 'all delivered');
  const got = receiver.accepted();
  const gotNoContact = got.filter((r) => (r.json as { type: string }).type === 'no-contact');
  t.same(gotNoContact.map((r) => (r.json as { requestId: string }).requestId).sort(), failed, 'the receiver took one no-contact message per failed request');
  t.ok(gotNoContact.every((r) => (r.path === '/nordjylland' || r.path === '/bornholm') && (r.json as { text?: string }).text === NO_CONTACT_TEXT), `to the home region, with "${NO_CONTACT_TEXT}"`);
  t.equal(receiver.received.filter((r) => r.body.includes(NO_CONTACT_TEXT)).length, 3, 'the text went out three times, once per failed request');

  // The statistics, from the command line, over whole hours around the run.
  const period = hourPeriod(t0);
  const base = ['--journal', journalPath, ...period.args, '--by', 'hour'];
  const [{ stats, run }, { stats: midtOnly }, csv] = await Promise.all([
    statsJson(base),
    statsJson([...base, '--region', 'midtjylland']),
    statsCli([...base, '--format', 'csv']),
  ]);
  t.notMatch(run.stderr, /ALARM/, 'no lost-request alarm');
  t.same(stats.period, { from: period.from, to: period.to, region: null, timeZone: 'UTC' }, 'the period asked for');
  t.same(Object.keys(stats.totals.regions), ['bornholm', 'hovedstaden', 'midtjylland', 'nordjylland', 'sjaelland'], 'every home region, and only home regions (syddanmark only answered overflow)');
  t.same(counted(stats.totals.total), countedExpected(expected.total), 'the totals: calls, requests, attempts by outcome, answered on, no-contact and shares, overflow pairs, lost 0');
  for (const [id, e] of Object.entries(expected.regions)) t.same(counted(stats.totals.regions[id]!), countedExpected(e), `region ${id}`);
  const tot = stats.totals.total;
  t.equal(tot.noContactShareOfCalls, 3 / 12, 'no-contact share of 112 calls seen: 3 of 12');
  t.equal(tot.noContactShareOfRequests, 3 / 10, 'no-contact share of requests: 3 of 10');
  t.same(tot.overflowContacts, { 'bornholm→syddanmark': 1, 'sjaelland→syddanmark': 2 }, 'overflow contacts per region pair');
  t.same([tot.answered.overflow, tot.noContactMessages], [3, 3], 'the late contact counts both as answered by an overflow region and as a no-contact message');
  t.equal(tot.lostRequests, 0, 'no lost requests');

  // The hour buckets add up to the period.
  t.equal(stats.buckets.length, 2, 'two hour buckets');
  const sum = (f: (b: (typeof stats.buckets)[number]) => number) => stats.buckets.reduce((n, b) => n + f(b), 0);
  t.same(
    [sum((b) => b.total.callsSeen), sum((b) => b.total.requests), sum((b) => b.total.attempts.total), sum((b) => b.total.noContactMessages)],
    [12, 10, 22, 3],
    'the buckets add up to the totals',
  );

  // Answer time (INVITE → 200): exactly the nearest-rank percentiles of answered_at − started_at
  // of the journal's answered attempts, and within reach of the SIPp delays that produced them.
  const answerMs = (home?: string) => rows.attempts.filter((a) => a.outcome === 'answered' && a.answered_at !== null && (home === undefined || a.home === home)).map((a) => a.answered_at! - a.started_at);
  t.equal(answerMs().length, 8, 'eight answered attempts in the journal');
  t.same(tot.answerTimeMs, { median: nearestRank(answerMs(), 50), p90: nearestRank(answerMs(), 90) }, `answer time median/p90 from the attempts table: ${JSON.stringify(answerMs())}`);
  for (const id of Object.keys(expected.regions)) {
    t.same(stats.totals.regions[id]!.answerTimeMs, { median: nearestRank(answerMs(id), 50), p90: nearestRank(answerMs(id), 90) }, `${id}: answer time from the attempts table`);
  }
  const delayMedian = nearestRank(expected.total.answerDelays, 50)!;
  const delayP90 = nearestRank(expected.total.answerDelays, 90)!;
  t.equal(delayMedian, DELAY.midtjylland, 'by construction the median answer is a midtjylland one');
  t.ok(tot.answerTimeMs.median! >= delayMedian && tot.answerTimeMs.median! <= delayMedian + MEDIAN_SLACK_MS, `answer time median ${tot.answerTimeMs.median} ms within [${delayMedian}, ${delayMedian + MEDIAN_SLACK_MS}] ms of the SIPp delay`);
  t.ok(tot.answerTimeMs.p90! >= delayP90 && tot.answerTimeMs.p90! <= delayP90 + SINGLE_SLACK_MS, `answer time p90 ${tot.answerTimeMs.p90} ms within [${delayP90}, ${delayP90 + SINGLE_SLACK_MS}] ms`);
  for (const [id, d, slack] of [['hovedstaden', DELAY.hovedstaden, MEDIAN_SLACK_MS], ['midtjylland', DELAY.midtjylland, MEDIAN_SLACK_MS], ['sjaelland', DELAY.syddanmark, MEDIAN_SLACK_MS], ['bornholm', DELAY.syddanmark, SINGLE_SLACK_MS]] as const) {
    const m = stats.totals.regions[id]!.answerTimeMs.median!;
    t.ok(m >= d && m <= d + slack, `${id}: answer time median ${m} ms within [${d}, ${d + slack}] ms`);
  }
  t.same(stats.totals.regions.nordjylland!.answerTimeMs, { median: null, p90: null }, 'nordjylland: nothing answered, no answer time');
  // Time to contact: a contact's outcome_at − started_at; for the late contact after the message,
  // its answer (answered_at of the answering attempt) − started_at.
  const contactMs = rows.requests.flatMap((r) => {
    if (r.outcome === 'contact') return [r.outcome_at! - r.started_at];
    const answered = rows.attempts.find((a) => a.request_id === r.request_id && a.outcome === 'answered');
    return answered ? [answered.answered_at! - r.started_at] : [];
  });
  t.equal(contactMs.length, 8, 'eight requests reached a region');
  t.same(tot.timeToContactMs, { median: nearestRank(contactMs, 50), p90: nearestRank(contactMs, 90) }, 'time to contact from the requests table');

  // --region: one home region, the same figures as in the whole report.
  t.equal(midtOnly.period.region, 'midtjylland');
  t.same(Object.keys(midtOnly.totals.regions), ['midtjylland'], '--region midtjylland: only that region');
  t.same(midtOnly.totals.total, stats.totals.regions.midtjylland, '--region midtjylland: its total is the region as in the whole report');
  t.same(counted(midtOnly.totals.total), countedExpected(expected.regions.midtjylland!), '--region midtjylland: as driven');

  // CSV: a header, a line per hour bucket and region plus the bucket's total, then the period's.
  t.equal(csv.code, 0, csv.stderr);
  const lines = csv.stdout.trimEnd().split('\n');
  t.equal(lines.length, 1 + 2 * (5 + 1) + (5 + 1), 'csv: 1 header + 2 buckets × (5 regions + total) + (5 regions + total)');
  const header = lines[0]!.split(',');
  const last = Object.fromEntries(lines[lines.length - 1]!.split(',').map((v, i) => [header[i], v]));
  t.same([last.region, last.calls_seen, last.requests, last.no_contact_messages, last.lost_requests], ['total', '12', '10', '3', '0'], 'csv: the period total line');
  const nordPeriod = lines.slice(-6).map((l) => Object.fromEntries(l.split(',').map((v, i) => [header[i], v]))).find((r) => r.region === 'nordjylland');
  t.same([nordPeriod?.requests, nordPeriod?.no_contact_messages, nordPeriod?.no_contact_share_of_requests], ['2', '2', '1'], 'csv: nordjylland over the period, every request failed');
});
