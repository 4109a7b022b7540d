// simpleserver's own TLS certificate is short-lived (a week) while the server runs for months: it
// presents a fresh key and certificate from every half of that lifetime on, so clients never meet
// an expired one. Here with a lifetime of a few seconds.

import { expect } from 'chai';
import { generateKeyPair, publicKeyOf, sha256, utf8 } from '../../lib/crypto/index.ts';
import { createPolicyCert, toPem, type ValidatedPeer } from '../../lib/pki/index.ts';
import { loadPolicy, makePolicy } from '../../lib/policy/index.ts';
import { generateSimulatedPlatform } from '../../lib/attest/index.ts';
import { startCertifier, verifyAuthority } from '../../lib/certifier/index.ts';
import { connect, type ChannelServer } from '../../lib/channel/index.ts';
import { waitFor } from '../channel/harness.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** simpleserver (in this process) for a fresh domain, its own certificate living `identitySeconds`; its log events collected. */
async function startRenewing(identitySeconds: number, policyCertEndsInSeconds?: number) {
  const policyKey = (await generateKeyPair('p256')).privateKey;
  // A policy certificate of one day, made so that it ends that many seconds from now.
  const ending = policyCertEndsInSeconds === undefined ? {} : { days: 1, now: new Date(Date.now() - 86_400_000 + policyCertEndsInSeconds * 1000) };
  const policyCert = await createPolicyCert({ privateKey: policyKey, domain: 'renewal', ...ending });
  const platform = await generateSimulatedPlatform({ alg: 'p256' });
  const now = Date.now();
  const policy = loadPolicy(makePolicy({
    policyKey, policyCert, platforms: [{ key: platform.platformKey }], measurements: [sha256(utf8('program'))],
    notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000),
  }), publicKeyOf(policyKey));
  const events: Record<string, unknown>[] = [];
  const server = await startCertifier({
    policyKey, policyCert, policy, domain: 'renewal', host: '127.0.0.1', port: 0, certValiditySeconds: 3600, identitySeconds,
    log: (r) => void events.push(r as Record<string, unknown>),
  });
  return { policyCert, policy, server, events };
}

describe('simpleserver: its own certificate is replaced while it runs', function () {
  this.timeout(30_000);
  let server: ChannelServer | undefined;
  after(async () => server?.close());

  it('presents a new certificate at half its lifetime, so a client after the first one expired is still served', async () => {
    // Six seconds: the certificate made at half of it outlives the wait past the first one's end by
    // 1.5 s, room for a busy machine to be late renewing and connecting (with four, 0.5 s).
    const started = await startRenewing(6);
    ({ server } = started);
    const { policyCert, events } = started;
    const presented = async (): Promise<ValidatedPeer> => {
      const conn = await connect({ host: '127.0.0.1', port: server!.address.port, tls: { ca: toPem(policyCert) }, verifyPeer: (chain) => verifyAuthority(chain, policyCert, new Date()) });
      await conn.close();
      return conn.peer!;
    };
    const first = await presented();
    const renewals = () => events.filter((e) => e.event === 'identity-renewed');
    // Renewed at half its lifetime (waited for: a busy machine may make it late), then past the
    // first certificate's end (6 s, plus the second its time is rounded to).
    await waitFor(() => renewals().length > 0, 20_000, 'a renewal');
    await sleep(Math.max(0, first.notAfter.getTime() - Date.now()) + 1_500);
    const later = await presented();
    expect(later.serialHex).to.not.equal(first.serialHex);
    expect(later.notAfter.getTime()).to.be.greaterThan(first.notAfter.getTime());
    expect(renewals().map((e) => e.serial)).to.include(later.serialHex);
  });

  it('logs a failed renewal as key-server does: its code, the reason, and when it tries again', async () => {
    // The policy certificate ends before the first renewal (at half of 6 s): no certificate can be issued under it then.
    const { server: s, events } = await startRenewing(6, 2);
    try {
      await waitFor(() => events.some((e) => e.event === 'identity-renewal-failed'), 20_000, 'a failed renewal');
      const failed = events.find((e) => e.event === 'identity-renewal-failed')!;
      expect(failed).to.include({ code: 'CERT_EXPIRED', retryInSeconds: 1 });
      expect(failed.reason).to.be.a('string').and.match(/policy certificate/);
    } finally {
      await s.close();
    }
  });

  it('keeps one renewal loop however many reloads come, and none after close', async () => {
    const { server: s, policy, events } = await startRenewing(2);
    const renewals = () => events.filter((e) => e.event === 'identity-renewed').length;
    for (let i = 0; i < 3; i++) s.setPolicy(policy); // three reloads in a row
    // The renewal they asked for, waited for (a busy machine makes it slow), and any more begun with it.
    await waitFor(() => renewals() > 0, 20_000, 'the renewal the reloads asked for');
    await sleep(200);
    const afterReloads = renewals();
    expect(afterReloads).to.be.within(1, 3);
    await sleep(2_300); // one lifetime: one loop renews about twice (every half), three loops six times
    expect(renewals() - afterReloads).to.be.at.most(3);
    await s.close();
    const atClose = renewals();
    await sleep(1_500);
    expect(renewals()).to.equal(atClose);
  });
});
