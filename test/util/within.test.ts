import { expect } from 'chai';
import { within } from '../../lib/util/within.ts';

describe('within', () => {
  it('is true for a promise that fulfils in time, false once the time is up, and rejects with one that rejects first', async () => {
    expect(await within(Promise.resolve(1), 1_000)).to.equal(true);
    expect(await within(new Promise(() => {}), 10)).to.equal(false);
    const e = await within(Promise.reject(new Error('no')), 1_000).catch((x: Error) => x);
    expect((e as Error).message).to.equal('no');
  });
});
