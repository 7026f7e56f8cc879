import t from 'tap';
import { FeatureCodeCollector } from '../../src/domain/feature-code.js';

t.test('*1 then a pause is the home region', async (t) => {
  const c = new FeatureCodeCollector('*1');
  t.same(c.push('*'), { kind: 'pending' });
  t.same(c.push('1'), { kind: 'pending' });
  t.same(c.timeout(), { kind: 'conference', regionCode: null });
  t.notOk(c.collecting);
});

t.test('*1NN# names a region at once', async (t) => {
  const c = new FeatureCodeCollector('*1');
  for (const d of '*104') t.same(c.push(d), { kind: 'pending' });
  t.same(c.push('#'), { kind: 'conference', regionCode: '04' });
  t.same(c.push('*'), { kind: 'pending' }, 'collector reset');
});

t.test('*1# is the home region without waiting', async (t) => {
  const c = new FeatureCodeCollector('*1');
  c.push('*');
  c.push('1');
  t.same(c.push('#'), { kind: 'conference', regionCode: null });
});

t.test('other digits are not feature codes', async (t) => {
  const c = new FeatureCodeCollector('*1');
  t.same(c.push('5'), { kind: 'none' });
  c.push('*');
  t.same(c.push('7'), { kind: 'invalid', digits: '*7' });
  c.push('*');
  c.push('1');
  c.push('0');
  t.same(c.timeout(), { kind: 'invalid', digits: '*10' }, 'partial region number times out');
  c.push('*');
  c.push('1');
  c.push('1');
  c.push('2');
  t.same(c.push('3'), { kind: 'invalid', digits: '*1123' });
});

t.test('abort and retry keys', async (t) => {
  const c = new FeatureCodeCollector('*1', { abort: '*0', retry: '*9' });
  t.same(c.push('*'), { kind: 'pending' });
  t.same(c.push('0'), { kind: 'abort' });
  t.notOk(c.collecting, 'the collector starts afresh');
  c.push('*');
  t.same(c.push('9'), { kind: 'retry' });
  c.push('*');
  c.push('1');
  t.same(c.push('#'), { kind: 'conference', regionCode: null }, 'the conference code still works');
  c.push('*');
  t.same(c.push('7'), { kind: 'invalid', digits: '*7' });
  const plain = new FeatureCodeCollector('*1');
  plain.push('*');
  t.same(plain.push('0'), { kind: 'invalid', digits: '*0' }, 'no abort key configured: *0 is just digits');
});
