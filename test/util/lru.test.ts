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

  it('refuses a capacity below one', () => {
    expect(() => new LruMap(0)).to.throw(RangeError);
  });
});
