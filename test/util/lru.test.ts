// LruMap: bounded, least recently used dropped first, a read counts as a use.

import { expect } from 'chai';
import { LruMap } from '../../lib/util/lru.ts';

describe('LruMap', () => {
  it('keeps at most its capacity, dropping the least recently used', () => {
    const m = new LruMap<string, number>(3);
    for (const [i, k] of ['a', 'b', 'c', 'd'].entries()) m.set(k, i);
    expect(m.size).to.equal(3);
    expect(m.get('a')).to.equal(undefined);
    expect([m.get('b'), m.get('c'), m.get('d')]).to.deep.equal([1, 2, 3]);
  });

  it('counts a read or a replacement as a use', () => {
    const m = new LruMap<string, number>(2);
    m.set('a', 1);
    m.set('b', 2);
    expect(m.get('a')).to.equal(1); // now b is the oldest
    m.set('c', 3);
    expect(m.get('b')).to.equal(undefined);
    m.set('a', 10); // replaced, not added: nothing dropped
    expect(m.size).to.equal(2);
    m.set('d', 4); // c is the oldest now
    expect([m.get('a'), m.get('c'), m.get('d')]).to.deep.equal([10, undefined, 4]);
    expect(m.delete('a')).to.equal(true);
    expect(m.size).to.equal(1);
  });

  it('keeps the total weight within maxWeight, and never an entry heavier than that', () => {
    const m = new LruMap<string, Uint8Array>(100, { weigh: (v) => v.length, maxWeight: 10 });
    m.set('a', new Uint8Array(4));
    m.set('b', new Uint8Array(4));
    expect(m.totalWeight).to.equal(8);
    m.set('c', new Uint8Array(4)); // 12 > 10: a goes
    expect([m.get('a'), m.totalWeight, m.size]).to.deep.equal([undefined, 8, 2]);
    m.set('big', new Uint8Array(11)); // heavier than the whole budget: not kept, nothing dropped
    expect([m.get('big'), m.size, m.totalWeight]).to.deep.equal([undefined, 2, 8]);
    m.set('b', new Uint8Array(1)); // replaced: its old weight is gone
    expect(m.totalWeight).to.equal(5);
    expect(m.delete('c')).to.equal(true);
    expect(m.totalWeight).to.equal(1);
    m.clear();
    expect([m.size, m.totalWeight]).to.deep.equal([0, 0]);
  });

  it('refuses a capacity below one, or a weight budget of none', () => {
    expect(() => new LruMap(0)).to.throw(RangeError);
    expect(() => new LruMap(1, { weigh: () => 1, maxWeight: 0 })).to.throw(RangeError);
  });
});
