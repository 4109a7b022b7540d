// watchExpiry: what a key-server logs about its own certificate's end and simpleserver about its
// policy's, on a clock of our own.

import { expect } from 'chai';
import { IDENTITY_EXPIRY, POLICY_EXPIRY, policyEnds, RENEW_BEFORE_MS, watchExpiry } from '../../lib/certifier/index.ts';
import type { Policy } from '../../lib/policy/index.ts';

const HOUR = 3_600_000;

describe('certifier: a server watches its own certificate run out', () => {
  const watch = (leftMs: number) => {
    const records: Record<string, unknown>[] = [];
    const now = Date.UTC(2026, 0, 1);
    const stop = watchExpiry(new Date(now + leftMs), (r) => void records.push(r), { ...IDENTITY_EXPIRY, now: () => now });
    stop();
    return records;
  };

  it('says nothing while the end is further away than the renewal window', () => {
    expect(watch(RENEW_BEFORE_MS + HOUR)).to.deep.equal([]);
  });

  it('warns inside the window, with the hours left and what to do', () => {
    const [r] = watch(30 * HOUR);
    expect(r).to.include({ event: 'identity-expiring', hoursLeft: 30, notAfter: '2026-01-02T06:00:00.000Z' });
    expect(r!.warning).to.contain('cert-utility init-trust');
  });

  it('says once that clients now refuse it, and stops watching', () => {
    expect(watch(-1).map((r) => r.event)).to.deep.equal(['identity-expired']);
  });

  it('watches the first claim of simpleserver\'s policy to end, under its own event names', () => {
    const at = (iso: string) => ({ notBefore: new Date(0), notAfter: new Date(iso) });
    const policy = { platforms: [at('2027-03-01T00:00:00Z')], measurements: [at('2027-01-01T00:00:00Z'), at('2028-01-01T00:00:00Z')], properties: [] } as unknown as Policy;
    expect(policyEnds(policy)!.toISOString()).to.equal('2027-01-01T00:00:00.000Z');
    expect(policyEnds({ platforms: [], measurements: [], properties: [] } as unknown as Policy)).to.equal(undefined);
    const records: Record<string, unknown>[] = [];
    watchExpiry(new Date(Date.UTC(2027, 0, 1)), (r) => void records.push(r), { ...POLICY_EXPIRY, now: () => Date.UTC(2027, 0, 1) + 1 })();
    expect(records.map((r) => r.event)).to.deep.equal(['policy-claim-expired']);
    expect(records[0]!.warning).to.contain('cert-utility make-policy');
  });

  it('checks again later, on real timers', async () => {
    const records: Record<string, unknown>[] = [];
    const stop = watchExpiry(new Date(Date.now() + 150), (r) => void records.push(r), IDENTITY_EXPIRY);
    await new Promise((r) => setTimeout(r, 400));
    stop();
    expect(records.map((r) => r.event)).to.deep.equal(['identity-expiring', 'identity-expired']);
  });
});
