import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { toE164 } from '../../src/domain/e164.js';
import { recontactHeader } from '../../src/recontact/header.js';
import { keyId, loadRecontactKeys, type RecontactKey } from '../../src/recontact/keys.js';
import { RECONTACT_COUNT_CAP, RecontactStore } from '../../src/recontact/store.js';

const H = 3_600_000;
const WINDOW = 24 * H;
const T0 = Date.UTC(2026, 10, 25, 8, 0, 0);

function key(): RecontactKey {
  const k = randomBytes(32);
  return { id: keyId(k), key: k };
}

function openStore(t: Test, keys: { current: RecontactKey; previous?: RecontactKey | null }, dir = t.testdir({})): { store: RecontactStore; path: string; dir: string } {
  const path = join(dir, 'recontact.sqlite');
  const store = RecontactStore.open(path, { windowMs: WINDOW, keys });
  t.teardown(() => store.close());
  return { store, path, dir };
}

t.test('first contact is none; later ones within the window give count and last time', async (t) => {
  const { store } = openStore(t, { current: key() });
  const n = '+4529876543';
  t.equal(store.seen(n, T0), null, 'first contact');
  t.same(store.seen(n, T0 + 1 * H), { count: 1, lastAt: T0 }, 'second: one earlier');
  t.same(store.seen(n, T0 + 2 * H), { count: 2, lastAt: T0 + 1 * H }, 'third: two earlier, latest last');
  t.equal(store.seen('+4520000001', T0 + 2 * H), null, 'another number does not match');
  t.equal(store.seen(null, T0 + 3 * H), null);
  t.same(store.seen(n, T0 + 3 * H), { count: 3, lastAt: T0 + 2 * H });
});

t.test('outside the window: earlier sightings no longer count', async (t) => {
  const { store } = openStore(t, { current: key() });
  const n = '+4529876543';
  t.equal(store.seen(n, T0), null);
  t.same(store.seen(n, T0 + WINDOW - 1), { count: 1, lastAt: T0 }, 'just inside');
  t.same(store.seen(n, T0 + WINDOW), { count: 1, lastAt: T0 + WINDOW - 1 }, 'the first has just expired');
  t.equal(store.seen(n, T0 + 3 * WINDOW), null, 'long after: none');
});

t.test('withheld and anonymous numbers never match and are not recorded', async (t) => {
  const { store } = openStore(t, { current: key() });
  for (const raw of ['anonymous', 'withheld', 'Restricted', 'unavailable', '', null]) {
    const e = toE164(raw);
    t.equal(e, null);
    t.equal(store.seen(e, T0), null);
    t.equal(store.seen(e, T0 + 1), null);
  }
  t.equal(store.size(), 0, 'nothing stored');
});

t.test('national and international forms of one number are one caller', async (t) => {
  const { store } = openStore(t, { current: key() });
  t.equal(store.seen(toE164('29 87 65 43'), T0), null);
  t.same(store.seen(toE164('+45 2987 6543'), T0 + H), { count: 1, lastAt: T0 });
  t.same(store.seen(toE164('004529876543'), T0 + 2 * H), { count: 2, lastAt: T0 + H });
});

t.test('key rotation: the old key given as previous still matches; dropped, it no longer does', async (t) => {
  const dir = t.testdir({});
  const k1 = key();
  const k2 = key();
  const n = '+4529876543';
  const m = '+4521212121';
  const a = openStore(t, { current: k1 }, dir);
  t.equal(a.store.seen(n, T0), null);
  t.equal(a.store.seen(m, T0), null);
  a.store.close();

  const b = openStore(t, { current: k2, previous: k1 }, dir);
  t.same(b.store.seen(n, T0 + H), { count: 1, lastAt: T0 }, 'old-key sighting matches after rotation');
  t.same(b.store.seen(n, T0 + 2 * H), { count: 2, lastAt: T0 + H }, 'old and new sightings count together');
  b.store.close();

  // Without the previous key: the new-key sightings of n still match, m's old-key one does not,
  // and rows hashed with a key no longer configured are deleted when the store opens.
  const c = openStore(t, { current: k2 }, dir);
  t.equal(c.store.size(), 2, 'old-key rows deleted at open');
  t.same(c.store.seen(n, T0 + 3 * H), { count: 2, lastAt: T0 + 2 * H }, 'only the new-key sightings count');
  t.equal(c.store.seen(m, T0 + 3 * H), null, 'old-key sighting no longer matches');
});

t.test('key rotation twice: sightings two keys back no longer match', async (t) => {
  const dir = t.testdir({});
  const k1 = key();
  const k2 = key();
  const n = '+4529876543';
  const a = openStore(t, { current: k1 }, dir);
  t.equal(a.store.seen(n, T0), null);
  a.store.close();
  const b = openStore(t, { current: k2, previous: k1 }, dir);
  t.equal(b.store.seen('+4520000000', T0 + H), null);
  b.store.close();
  const c = openStore(t, { current: k2, previous: key() }, dir);
  t.equal(c.store.seen(n, T0 + 2 * H), null);
});

t.test('prune removes expired sightings only', async (t) => {
  const { store } = openStore(t, { current: key() });
  store.seen('+4529876543', T0);
  store.seen('+4529876544', T0 + 10 * H);
  store.seen('+4529876545', T0 + 20 * H);
  t.equal(store.size(), 3);
  t.equal(store.prune(T0 + WINDOW - 1), 0, 'none expired yet');
  t.equal(store.prune(T0 + WINDOW), 1, 'the first expired');
  t.equal(store.size(), 2);
  t.equal(store.prune(T0 + 20 * H + WINDOW), 2);
  t.equal(store.size(), 0);
});

t.test('seen deletes expired sightings by itself', async (t) => {
  const { store } = openStore(t, { current: key() });
  store.seen('+4529876543', T0);
  store.seen('+4529876544', T0 + WINDOW + 1);
  t.equal(store.size(), 1);
});

t.test('the file holds only hashes: no clear number in the database or its WAL', async (t) => {
  const { store, path } = openStore(t, { current: key(), previous: key() });
  const numbers = Array.from({ length: 50 }, (_, i) => `+45298765${String(i).padStart(2, '0')}`);
  let now = T0;
  for (let round = 0; round < 20; round++) {
    for (const n of numbers) store.seen(n, (now += 1000));
  }
  t.same(store.seen(numbers[7] ?? null, now + 1), { count: 20, lastAt: now - 1000 * (numbers.length - 8) });
  const files = [path, `${path}-wal`].filter((f) => existsSync(f));
  t.ok(files.length >= 1);
  for (const f of files) {
    const bytes = readFileSync(f);
    for (const n of numbers) {
      t.notOk(bytes.includes(n), `${f}: no ${n}`);
      t.notOk(bytes.includes(n.slice(3)), `${f}: no national ${n.slice(3)}`);
      t.notOk(bytes.includes(Buffer.from(n, 'utf16le')), `${f}: no UTF-16 ${n}`);
    }
  }
  const db = readFileSync(path).toString('latin1') + (existsSync(`${path}-wal`) ? readFileSync(`${path}-wal`).toString('latin1') : '');
  t.match(db, /[0-9a-f]{64}/, 'hashes are there');
});

t.test('secure_delete: the hash of a deleted sighting is gone from the file', async (t) => {
  const k = key();
  const { store, path } = openStore(t, { current: k });
  const gone = '+4529876543';
  const kept = '+4529876544';
  const hash = (n: string) => createHmac('sha256', k.key).update(n).digest('hex');
  store.seen(gone, T0);
  store.seen(kept, T0 + WINDOW - 1);
  store.close(); // checkpoints the WAL into the file
  t.ok(readFileSync(path).includes(hash(gone)), 'the hash is in the file before the delete');
  const again = RecontactStore.open(path, { windowMs: WINDOW, keys: { current: k } });
  t.equal(again.prune(T0 + WINDOW), 1);
  again.close();
  const bytes = readFileSync(path);
  t.notOk(bytes.includes(hash(gone)), 'deleted hash overwritten');
  t.ok(bytes.includes(hash(kept)), 'the other one is still there');
});

t.test('header: count and last time in ISO form', async (t) => {
  t.same(recontactHeader({ count: 2, lastAt: Date.UTC(2026, 10, 25, 10, 0, 0) }), ['X-AMK-Recontact', 'count=2;last=2026-11-25T10:00:00.000Z']);
  t.same(recontactHeader({ count: 1, lastAt: 0 }), ['X-AMK-Recontact', 'count=1;last=1970-01-01T00:00:00.000Z']);
});

t.test('key files: hex, base64 and raw bytes; id is 8 hex of the key hash', async (t) => {
  const k = randomBytes(32);
  const dir = t.testdir({
    'hex.key': `${k.toString('hex')}\n`,
    'b64.key': `${k.toString('base64')}\n`,
    'b64url.key': k.toString('base64url'),
    'raw.key': Buffer.concat([Buffer.from([0x80]), k]),
  });
  for (const f of ['hex.key', 'b64.key', 'b64url.key']) {
    const keys = loadRecontactKeys(join(dir, f));
    t.ok(keys.current.key.equals(k), f);
    t.equal(keys.previous, null);
    t.match(keys.current.id, /^[0-9a-f]{8}$/);
    t.equal(keys.current.id, keyId(k));
    t.notOk(k.toString('hex').includes(keys.current.id), 'the id is not part of the key');
  }
  t.equal(loadRecontactKeys(join(dir, 'raw.key')).current.key.length, 33);
  const both = loadRecontactKeys(join(dir, 'hex.key'), join(dir, 'raw.key'));
  t.ok(both.previous);
  t.not(both.previous?.id, both.current.id);
  t.equal(loadRecontactKeys(join(dir, 'hex.key'), join(dir, 'b64.key')).previous, null, 'the same key twice is one key');
  t.equal(loadRecontactKeys(join(dir, 'hex.key'), null).previous, null);
});

t.test('key files: errors name the file and the problem', async (t) => {
  const dir = t.testdir({
    'empty.key': '',
    'short.key': randomBytes(16).toString('hex'),
    'zeros.key': '00'.repeat(32),
    'pass.key': 'change me, this is the re-contact passphrase!',
    'good.key': randomBytes(32).toString('hex'),
  });
  const err = (f: string, re: RegExp) => t.throws(() => loadRecontactKeys(join(dir, f)), { message: re }, f);
  err('missing.key', /re-contact key file ".*missing\.key": does not exist/);
  err('empty.key', /empty\.key": is empty/);
  err('short.key', /short\.key": key is 16 bytes \(hex text\); at least 32/);
  err('zeros.key', /zeros\.key": key is not random/);
  err('pass.key', /pass\.key": holds text that is neither hex nor base64/);
  t.throws(() => loadRecontactKeys(join(dir, 'good.key'), join(dir, 'short.key')), { message: /short\.key": key is 16 bytes/ }, 'a bad previous key file');
});

t.test('a number seen very often: the count stops at the cap, the latest time stays exact', async (t) => {
  const old = key();
  const cur = key();
  const n = '+4533112233';
  // 150 sightings under the old key, then a rotation and 150 more under the new one.
  const first = openStore(t, { current: old });
  for (let i = 0; i < 150; i++) first.store.seen(n, T0 + i * 1000);
  first.store.close();
  const { store } = openStore(t, { current: cur, previous: old }, first.dir);
  t.same(store.seen(n, T0 + 150_000), { count: RECONTACT_COUNT_CAP, lastAt: T0 + 149_000 }, 'old-key sightings alone reach the cap');
  for (let i = 151; i < 300; i++) store.seen(n, T0 + i * 1000);
  t.same(store.seen(n, T0 + 300_000), { count: RECONTACT_COUNT_CAP, lastAt: T0 + 299_000 }, 'both keys together still capped');
  t.same(store.seen('+4533112299', T0 + 300_000), null, 'another number is unaffected');
  t.same(store.seen('+4533112299', T0 + 301_000), { count: 1, lastAt: T0 + 300_000 });
});
