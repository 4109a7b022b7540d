// watchExpiry: what a key-server logs about its own certificate's end and simpleserver about its
// policy's, on a clock of our own.

import { expect } from 'chai';
import { IDENTITY_EXPIRY, IDENTITY_EXPIRY_RENEWING, identityExpiry, identityWatch, POLICY_EXPIRY, policyEnds, RENEW_BEFORE_MS, startCertifier, watchExpiry } from '../../lib/certifier/index.ts';
import { generateKeyPair, publicKeyOf, sha256, utf8 } from '../../lib/crypto/index.ts';
import { createPolicyCert, readCertificateSummary } from '../../lib/pki/index.ts';
import { loadPolicy, makePolicy, type Policy } from '../../lib/policy/index.ts';
import { generateSimulatedPlatform } from '../../lib/attest/index.ts';

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

  it('renewing itself, warns of a short certificate only once its renewal (at half of what was left) is overdue, with advice about the renewal', () => {
    const start = Date.UTC(2026, 0, 1);
    const notAfter = new Date(start + 16 * HOUR);
    const policyCertEnds = new Date(Date.UTC(2027, 0, 1));
    const at = (left: number) => {
      const records: Record<string, unknown>[] = [];
      watchExpiry(notAfter, (r) => void records.push(r), { ...identityWatch(notAfter, policyCertEnds, true, start), now: () => notAfter.getTime() - left })();
      return records;
    };
    expect(at(16 * HOUR)).to.deep.equal([]); // just issued
    expect(at(8 * HOUR)).to.deep.equal([]); // renewal due now
    const [late] = at(4 * HOUR);
    expect(late).to.include({ event: 'identity-expiring', hoursLeft: 4 });
    expect(late!.warning).to.contain('renews it through --certifier').and.not.contain('give it --certifier');
    // Not renewing, the same certificate is warned of from the start; a long one renewing, from three days before its end.
    expect(identityWatch(notAfter, policyCertEnds, false, start)).to.equal(IDENTITY_EXPIRY);
    expect(identityWatch(new Date(start + 90 * 24 * HOUR), policyCertEnds, true, start).warnWithin).to.equal(RENEW_BEFORE_MS);
  });

  it('says once that clients now refuse it, and stops watching', () => {
    expect(watch(-1).map((r) => r.event)).to.deep.equal(['identity-expired']);
  });

  it('after the end, says what to do now: not "once it has expired", nor that a renewal will come before then', () => {
    const end = new Date(Date.UTC(2026, 0, 1));
    for (const [watching, fix] of [[IDENTITY_EXPIRY, 'run cert-utility init-trust on its store'], [IDENTITY_EXPIRY_RENEWING, 'its renewal through --certifier failed']] as const) {
      const records: Record<string, unknown>[] = [];
      watchExpiry(end, (r) => void records.push(r), { ...watching, now: () => end.getTime() + 1 })();
      expect(records[0]!.warning).to.match(/^clients refuse this server: its certificate has expired/).and.contain(fix).and.not.match(/once|before then/);
    }
  });

  it('names the policy certificate as the limit of key-server\'s certificate when it ends with it, renewing or not, and after the end says what to do then', () => {
    const policyCertEnds = new Date(Date.UTC(2026, 11, 6));
    for (const renewing of [true, false]) {
      const advice = identityExpiry(policyCertEnds, policyCertEnds, renewing).advice;
      expect(advice).to.contain('ends with the policy certificate').and.contain('Replacing the policy key').and.not.contain('renews it through --certifier');
    }
    const records: Record<string, unknown>[] = [];
    watchExpiry(policyCertEnds, (r) => void records.push(r), { ...identityExpiry(policyCertEnds, policyCertEnds, true), now: () => policyCertEnds.getTime() + 1 })();
    expect(records.map((r) => r.event)).to.deep.equal(['identity-expired']);
    expect(records[0]!.warning, 'said after the end').to.contain('has expired with the policy certificate').and.contain('Replacing the policy key').and.not.contain('before then');
    expect(identityExpiry(new Date(Date.UTC(2026, 11, 5)), policyCertEnds, true)).to.equal(IDENTITY_EXPIRY_RENEWING);
    expect(identityExpiry(new Date(Date.UTC(2026, 11, 5)), policyCertEnds, false)).to.equal(IDENTITY_EXPIRY);
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

  it('simpleserver warns of its policy certificate\'s end, which comes before its claims\'', async () => {
    const policyKey = (await generateKeyPair('p256')).privateKey;
    const policyCert = await createPolicyCert({ privateKey: policyKey, domain: 'ending', days: 1 });
    const platform = await generateSimulatedPlatform({ alg: 'p256' });
    const policy = loadPolicy(makePolicy({
      policyKey, policyCert, platforms: [{ key: platform.platformKey }], measurements: [sha256(utf8('program'))],
      notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 365 * 24 * HOUR),
    }), publicKeyOf(policyKey));
    const records: Record<string, unknown>[] = [];
    const server = await startCertifier({
      policyKey, policyCert, policy, domain: 'ending', host: '127.0.0.1', port: 0, certValiditySeconds: 3600, log: (r) => void records.push(r as Record<string, unknown>),
    });
    await server.close();
    expect(records.map((r) => r.event)).to.include('policy-cert-expiring').and.not.include('policy-claim-expiring');
    const warned = records.find((r) => r.event === 'policy-cert-expiring')!;
    expect(warned.notAfter).to.equal(readCertificateSummary(policyCert).notAfter.toISOString());
    expect(warned.warning).to.contain('Replacing the policy key');
  });

  it('simpleserver warns of its policy claims\' end ahead of time (policy-claim-expiring), and of the claims of a policy a reload put in force', async () => {
    const policyKey = (await generateKeyPair('p256')).privateKey;
    const policyCert = await createPolicyCert({ privateKey: policyKey, domain: 'claims' });
    const platform = await generateSimulatedPlatform({ alg: 'p256' });
    const claimsFor = (hours: number) => loadPolicy(makePolicy({
      policyKey, policyCert, platforms: [{ key: platform.platformKey }], measurements: [sha256(utf8('program'))],
      notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + hours * HOUR),
    }), publicKeyOf(policyKey));
    const records: Record<string, unknown>[] = [];
    const server = await startCertifier({
      policyKey, policyCert, policy: claimsFor(365 * 24), domain: 'claims', host: '127.0.0.1', port: 0, certValiditySeconds: 3600, log: (r) => void records.push(r as Record<string, unknown>),
    });
    try {
      expect(records.map((r) => r.event), 'claims of a year').not.to.include('policy-claim-expiring');
      const soon = claimsFor(48);
      server.setPolicy(soon);
      const warned = records.find((r) => r.event === 'policy-claim-expiring');
      expect(warned, 'claims ending in two days').to.not.equal(undefined);
      expect(warned!.notAfter).to.equal(policyEnds(soon)!.toISOString());
      expect(warned!.warning).to.contain('cert-utility make-policy');
    } finally {
      await server.close();
    }
  });

  it('begins warning when the window opens, not at the end, for a certificate that starts further away', async () => {
    const records: Record<string, unknown>[] = [];
    // The window opens 150 ms from now.
    const stop = watchExpiry(new Date(Date.now() + RENEW_BEFORE_MS + 150), (r) => void records.push(r), IDENTITY_EXPIRY);
    try {
      expect(records).to.deep.equal([]);
      for (let i = 0; i < 40 && records.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(records.map((r) => r.event)).to.deep.equal(['identity-expiring']);
      // Told as the window opens: its whole hours left, 72 if the timer came on the very millisecond.
      expect(records[0]!.hoursLeft).to.be.oneOf([RENEW_BEFORE_MS / HOUR - 1, RENEW_BEFORE_MS / HOUR]);
    } finally {
      stop();
    }
  });

  it('waits months for a long certificate without a busy loop (timers hold about 24.8 days) and without keeping the process alive', async () => {
    let reads = 0;
    const held = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = held();
    const stop = watchExpiry(new Date(Date.now() + 90 * 24 * HOUR), () => {}, { ...IDENTITY_EXPIRY, now: () => (reads++, Date.now()) });
    try {
      expect(held(), 'timers keeping the process alive').to.equal(before);
      await new Promise((r) => setTimeout(r, 300));
      expect(reads, 'times its clock was read in 300 ms').to.be.below(10);
    } finally {
      stop();
    }
  });

  it('checks again later, on real timers', async () => {
    const records: Record<string, unknown>[] = [];
    const stop = watchExpiry(new Date(Date.now() + 150), (r) => void records.push(r), IDENTITY_EXPIRY);
    await new Promise((r) => setTimeout(r, 400));
    stop();
    expect(records.map((r) => r.event)).to.deep.equal(['identity-expiring', 'identity-expired']);
  });
});
