// lib/util/clock: the time text of per-request lines is the wall clock's, to the millisecond.

import { expect } from 'chai';
import { isoNow } from '../../lib/util/clock.ts';

describe('isoNow', () => {
  it('says the current millisecond as new Date().toISOString() does, and moves on with the clock', async () => {
    for (let i = 0; i < 3; i++) {
      const before = new Date().toISOString();
      const now = isoNow();
      const after = new Date().toISOString();
      expect(now).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(now >= before && now <= after, `${before} <= ${now} <= ${after}`).to.equal(true);
      await new Promise((r) => setTimeout(r, 3));
    }
  });

  it('follows a clock set back or forward: the text is always that of the millisecond Date.now() says', () => {
    const real = Date.now;
    const t = real();
    try {
      for (const ms of [t, t, t - 5000, t - 5000, t, t + 1, 0, t]) {
        Date.now = () => ms;
        expect(isoNow(), String(ms - t)).to.equal(new Date(ms).toISOString());
      }
    } finally {
      Date.now = real;
    }
  });
});
