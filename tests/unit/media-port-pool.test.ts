import t from 'tap';
import { PortPool } from '../../src/media/port-pool.js';

t.test('even RTP ports paired with the odd port above, both inside [min, max)', async (t) => {
  const p = new PortPool(20000, 20010);
  t.equal(p.capacity, 5);
  const got: number[] = [];
  for (let port = p.allocate(); port !== null; port = p.allocate()) got.push(port);
  t.same(got, [20000, 20002, 20004, 20006, 20008]);
  t.equal(p.free, 0);
  t.equal(p.inUse, 5);
  t.equal(p.allocate(), null, 'exhausted');
});

t.test('odd bounds: first even port above min; RTCP port must be below max', async (t) => {
  const p = new PortPool(20001, 20006);
  t.equal(p.capacity, 2);
  t.same([p.allocate(), p.allocate(), p.allocate()], [20002, 20004, null]);
  t.throws(() => new PortPool(20001, 20002), RangeError, 'no pair fits');
  t.throws(() => new PortPool(30000, 20000), RangeError);
  t.throws(() => new PortPool(0, 10), RangeError);
  t.throws(() => new PortPool(65530, 65537), RangeError);
});

t.test('released pairs go to the back of the free list', async (t) => {
  const p = new PortPool(20000, 20008); // 4 pairs
  const a = p.allocate()!;
  const b = p.allocate()!;
  t.same([a, b], [20000, 20002]);
  p.release(a);
  t.same([p.allocate(), p.allocate(), p.allocate()], [20004, 20006, 20000], 'the released pair comes last');
  t.equal(p.allocate(), null);
  p.release(b);
  t.equal(p.allocate(), b);
});

t.test('release checks the port', async (t) => {
  const p = new PortPool(20000, 20008);
  const a = p.allocate()!;
  t.ok(p.isAllocated(a));
  p.release(a);
  t.notOk(p.isAllocated(a));
  t.throws(() => p.release(a), /not allocated/, 'double release');
  t.throws(() => p.release(20001), /not allocated/, 'odd port');
  t.throws(() => p.release(30000), /not allocated/, 'outside the range');
  t.equal(p.free, 4);
});

t.test('O(1) under churn: 1e6 allocate/release on a large range', async (t) => {
  const p = new PortPool(10000, 60000);
  const live: number[] = [];
  const start = performance.now();
  let ok = true;
  for (let i = 0; i < 1_000_000; i++) {
    if (live.length < 5000 || i % 2 === 0) {
      const port = p.allocate();
      if (port === null || port % 2 !== 0) ok = false;
      else live.push(port);
    } else {
      p.release(live.shift()!);
    }
  }
  t.ok(ok, 'every allocation succeeded with an even port');
  t.equal(p.inUse, live.length);
  t.ok(performance.now() - start < 2000, 'fast');
});
