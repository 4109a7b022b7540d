// Deadline, the one bound on a request's time in the PostgreSQL database, without a database:
// what a race it lost still gives (a pooled connection) is handed back, never kept.

import { expect } from 'chai';
import { Deadline } from '../../lib/keyservice/pg-deadline.ts';
import { rejects } from '../support/rejects.ts';

describe('Deadline', () => {
  const later = <T>(value: T) => new Promise<T>((r) => setTimeout(() => r(value), 20));

  it('gives what comes in time, and nothing to late', async () => {
    const handed: string[] = [];
    expect(await new Deadline(60_000).race(later('conn'), (c) => handed.push(c))).to.equal('conn');
    expect(handed).to.deep.equal([]);
  });

  it('refuses with TIMEOUT what comes after the time is up, and hands it to late, also when the time was up before it was asked', async () => {
    for (const ms of [1, 0]) {
      const time = new Deadline(ms);
      await new Promise((r) => setTimeout(r, 5));
      const handed: string[] = [];
      const e = await rejects(time.race(later('conn'), (c) => handed.push(c)), 'TIMEOUT');
      expect(e.message).to.contain(`within the ${ms / 1000} s a request is given`);
      await later(undefined);
      expect(handed, `a deadline of ${ms} ms`).to.deep.equal(['conn']);
    }
  });

  it('passes on what fails in time as it is', async () => {
    const failed = new Error('refused');
    try {
      await new Deadline(60_000).race(Promise.reject(failed), () => {});
      expect.fail('resolved');
    } catch (e) {
      expect(e).to.equal(failed);
    }
  });
});
