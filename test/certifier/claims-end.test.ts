// An admission certificate never outlives the policy claims that allowed it, nor the policy
// certificate: simpleserver cuts its validity to the first of them to end, and refuses when that is
// less than a minute away (CLAIM_EXPIRED, or CERT_EXPIRED for the policy certificate) rather than
// issue a certificate of a few seconds.

import { expect } from 'chai';
import { join } from 'node:path';
import { generateKeyPair, publicKeyOf, randomBytes, sha256, utf8 } from '../../lib/crypto/index.ts';
import { createPolicyCert, parseCertificate } from '../../lib/pki/index.ts';
import { loadPolicy, makePolicy, type MakePolicyOptions } from '../../lib/policy/index.ts';
import { generateSimulatedPlatform, SimulatedEnclave } from '../../lib/attest/index.ts';
import { endsWithPolicyCert, initTrust, MIN_CERT_SECONDS, startCertifier } from '../../lib/certifier/index.ts';
import type { ChannelServer } from '../../lib/channel/index.ts';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { tempDir } from '../support/helpers.ts';
import { joinPolicies } from '../support/policies.ts';
import { rejects } from '../support/rejects.ts';

const DAY = 86_400_000;

describe('simpleserver: certificates end no later than the policy claims', function () {
  this.timeout(30_000);
  const tmp = tempDir('claims-end-');
  const closers: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const c of closers.reverse()) await c();
    tmp.cleanup();
  });

  /**
   * A certification under a policy whose platform claim ends in `claimsLeftMs`, and its measurement
   * claim too unless told; `renewedLeftMs`: then the same two claims again, ending then. The policy
   * certificate is one of 3650 days made now, or one of a day ending in `policyCertLeftMs`.
   */
  async function certify(claimsLeftMs: number, name: string, measurementLeftMs = claimsLeftMs, renewedLeftMs?: number, policyCertLeftMs?: number) {
    const domain = 'claims';
    const policyKey = (await generateKeyPair('p256')).privateKey;
    const policyCert = await createPolicyCert({ privateKey: policyKey, domain, ...(policyCertLeftMs === undefined ? {} : { days: 1, now: new Date(Date.now() + policyCertLeftMs - DAY) }) });
    const platformKeys = await generateSimulatedPlatform({ alg: 'p256' });
    const m = sha256(utf8('program'));
    const start = Date.now();
    const notAfter = new Date(start + Math.min(claimsLeftMs, measurementLeftMs));
    const claims = (platforms: MakePolicyOptions['platforms'], measurements: Uint8Array[], leftMs: number) => makePolicy({
      policyKey, policyCert, platforms, measurements, notBefore: new Date(start - 60_000), notAfter: new Date(start + leftMs),
    });
    const renewed = renewedLeftMs === undefined ? [] : [claims([{ key: platformKeys.platformKey }], [m], renewedLeftMs)];
    const policy = loadPolicy(joinPolicies(claims([{ key: platformKeys.platformKey }], [], claimsLeftMs), claims([], [m], measurementLeftMs), ...renewed), publicKeyOf(policyKey));
    const lines: Record<string, unknown>[] = [];
    const server: ChannelServer = await startCertifier({ policyKey, policyCert, policy, domain, host: '127.0.0.1', port: 0, certValiditySeconds: 86_400, log: (r) => lines.push(r as Record<string, unknown>) });
    closers.push(() => server.close());
    const store = await Cryptstore.create(join(tmp.dir, name), new KeyFileProtector(randomBytes(32)));
    closers.push(() => store.close());
    const platform = new SimulatedEnclave(platformKeys.attestKey, platformKeys.endorsement, m);
    return { notAfter, lines, policyCert, result: initTrust({ store, domain, policyCert, platform, host: '127.0.0.1', port: server.address.port }) };
  }

  it('cuts the certificate to the claims when they end before its usual lifetime', async () => {
    const { notAfter, result } = await certify(10 * 60_000, 'ten-minutes');
    const r = await result;
    expect(r.peer.notAfter.getTime()).to.be.at.most(notAfter.getTime());
    expect(r.peer.notAfter.getTime()).to.be.above(notAfter.getTime() - 10_000);
  });

  it('cuts the certificate to whichever claim ends first, the platform claim or the measurement claim', async () => {
    for (const [platformLeft, measurementLeft, name] of [[10 * 60_000, 86_400_000, 'platform-first'], [86_400_000, 10 * 60_000, 'measurement-first']] as const) {
      const { notAfter, result } = await certify(platformLeft, name, measurementLeft);
      const r = await result;
      expect(r.peer.notAfter.getTime(), name).to.be.at.most(notAfter.getTime());
      expect(r.peer.notAfter.getTime(), name).to.be.above(notAfter.getTime() - 10_000);
    }
  });

  // What init-trust and key-server's renewal take for a certificate no renewal can lengthen: cut a
  // second short (counted from the request's time, not the whole second it begins), it was renewed again.
  it('cuts the certificate to end exactly with a policy certificate that ends first, not a second before it', async () => {
    const { policyCert, result } = await certify(DAY, 'policy-cert-first', DAY, undefined, 10 * 60_000);
    const r = await result;
    const ends = parseCertificate(policyCert).notAfter;
    expect(r.peer.notAfter.toISOString()).to.equal(ends.toISOString());
    expect(endsWithPolicyCert(r.peer.notAfter, ends)).to.equal(true);
  });

  it(`refuses with CLAIM_EXPIRED when the claims end in less than ${MIN_CERT_SECONDS} s`, async () => {
    const { result } = await certify(30_000, 'thirty-seconds');
    await rejects(result, 'CLAIM_EXPIRED');
  });

  it(`refuses with CERT_EXPIRED, saying to replace the policy key, when the policy certificate ends in less than ${MIN_CERT_SECONDS} s, rather than issue a certificate of a few seconds`, async () => {
    const { lines, result } = await certify(DAY, 'policy-cert-ending', DAY, undefined, 30_000);
    expect((await rejects(result, 'CERT_EXPIRED')).message).to.contain('replace the policy key');
    const refusal = lines.find((l) => l.event === 'certification');
    expect(refusal).to.include({ decision: 'deny', code: 'CERT_EXPIRED' });
    expect(refusal!.reason).to.match(/^the policy certificate, which no certificate issued under it outlives, ends at \S+, \d+ s from now: too soon/);
  });

  it('refuses with CLAIM_EXPIRED when the claims end first, though the policy certificate ends within the minute too', async () => {
    const { result } = await certify(20_000, 'claims-first', 20_000, undefined, 40_000);
    expect((await rejects(result, 'CLAIM_EXPIRED')).message).to.contain('a policy to renew');
  });

  it('follows, of the claims in force that say the same, the one that ends last, whatever their order in the policy', async () => {
    const { result } = await certify(30_000, 'renewed', 30_000, DAY);
    const r = await result;
    expect(r.peer.notAfter.getTime()).to.be.above(Date.now() + DAY - 60_000);
  });
});
