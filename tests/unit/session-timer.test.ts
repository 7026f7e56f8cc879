import t from 'tap';
import { SessionTimer } from '../../src/sip/session-timer.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('the refresher refreshes at half the interval', async (t) => {
  const seen: string[] = [];
  const st = new SessionTimer(0.2, true, { refresh: () => seen.push('refresh'), expired: () => seen.push('expired') });
  await sleep(60);
  t.same(seen, []);
  await sleep(80);
  t.same(seen, ['refresh']);
  st.stop();
});

t.test('the other side expires at interval − min(32 s, interval/3) unless refreshed', async (t) => {
  const seen: string[] = [];
  const st = new SessionTimer(0.3, false, { refresh: () => seen.push('refresh'), expired: () => seen.push('expired') });
  await sleep(150);
  st.reset(); // a refresh came
  await sleep(150);
  t.same(seen, [], 'reset postponed the expiry');
  await sleep(100);
  t.same(seen, ['expired']);
  st.stop();
});
