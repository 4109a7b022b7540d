// lib/util/clock: the time text of per-request lines is the wall clock's, to the millisecond.

import { expect } from 'chai';
import { isoNow, roughly } from '../../lib/util/clock.ts';

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

describe('roughly', () => {
  const MIN = 60_000;
  it('says a span of time in the unit a person would use, rounded', () => {
    const cases: [number, string][] = [
      [20_000, 'less than a minute'], [MIN, '1 minute'], [5 * MIN + 29_000, '5 minutes'], [59 * MIN + 40_000, '1 hour'],
      [125 * MIN, '2 hours 5 minutes'], [-125 * MIN, '2 hours 5 minutes'], [47 * 60 * MIN, '47 hours'], [2 * 1440 * MIN + 7 * MIN, '2 days'],
      [400 * 1440 * MIN, '400 days'], [56 * 365.25 * 1440 * MIN, '56 years'],
    ];
    for (const [ms, text] of cases) expect(roughly(ms), String(ms)).to.equal(text);
  });

  it('rounds days and years down when asked, for "at least": 3.5 days is at least 3 days, 2.6 years at least 2', () => {
    const cases: [number, string][] = [
      [3.5 * 1440 * MIN, '3 days'], [2.6 * 365.25 * 1440 * MIN, '2 years'], [5 * MIN + 29_000, '5 minutes'], [20_000, 'less than a minute'],
    ];
    for (const [ms, text] of cases) expect(roughly(ms, { down: true }), String(ms)).to.equal(text);
  });
});
