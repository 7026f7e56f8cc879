import t from 'tap';
import { toE164 } from '../../src/domain/e164.js';

t.test('Danish national numbers get +45', async (t) => {
  t.equal(toE164('29876543'), '+4529876543');
  t.equal(toE164('29 87 65 43'), '+4529876543');
  t.equal(toE164('2987-6543'), '+4529876543');
  t.equal(toE164('(29) 87 65 43'), '+4529876543');
  t.equal(toE164(' 29.87.65.43 '), '+4529876543');
});

t.test('00 becomes +, + is kept, tel: is accepted: all forms of one number are one string', async (t) => {
  const forms = ['+4529876543', '004529876543', '0045 29 87 65 43', '+45 2987 6543', 'tel:+45-29-87-65-43', '29876543'];
  for (const f of forms) t.equal(toE164(f), '+4529876543', f);
  t.equal(toE164('+46701234567'), '+46701234567');
  t.equal(toE164('0046 70 123 45 67'), '+46701234567');
  t.equal(toE164('+1 (212) 555-0100'), '+12125550100');
});

t.test('+ numbers need 7 to 15 digits and a country code not starting with 0', async (t) => {
  t.equal(toE164('+1234567'), '+1234567');
  t.equal(toE164('+123456'), null);
  t.equal(toE164('+123456789012345'), '+123456789012345');
  t.equal(toE164('+1234567890123456'), null);
  t.equal(toE164('+0123456789'), null);
  t.equal(toE164('000123456789'), null);
  t.equal(toE164('+45+29876543'), null);
});

t.test('withheld, anonymous, unavailable, restricted, empty and null give null', async (t) => {
  for (const v of [null, '', '   ', 'anonymous', 'Anonymous', 'withheld', 'unavailable', 'restricted', 'Restricted',
    'private', 'unknown', 'anonymous@anonymous.invalid', 'sip:anonymous@anonymous.invalid']) {
    t.equal(toE164(v), null, String(v));
  }
});

t.test('implausible numbers give null: short codes, wrong lengths, letters, Danish numbers starting 0 or 1', async (t) => {
  for (const v of ['112', '114', '1813', '1234567', '2987654', '298765432', '09876543', '19876543', '29876543x',
    'abc', '+', '00', '2987#6543', '29876543;ext=1', 'sip:29876543@example.net']) {
    t.equal(toE164(v), null, v);
  }
});

t.test('another default country code: national numbers with trunk prefix 0', async (t) => {
  t.equal(toE164('070 123 45 67', '46'), '+46701234567');
  t.equal(toE164('701234567', '46'), null);
  t.equal(toE164('+4529876543', '46'), '+4529876543');
  t.equal(toE164('29876543', '46'), null);
  t.equal(toE164('070 123 45 67', 'x'), null);
});
