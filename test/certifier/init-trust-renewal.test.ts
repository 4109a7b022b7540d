// init-trust on a store whose certificate is due for renewal, in this process with a chosen
// clock: a renewal that fails keeps the stored certificate only while it is still valid, and one
// that ends with the policy certificate is not renewed, since no new one would end later. A
// store whose key its certificate does not name is refused, not certified afresh.

import { expect } from 'chai';
import type { KeyObject } from 'node:crypto';
import net from 'node:net';
import { join } from 'node:path';
import { encode } from '../../lib/wire/index.ts';
import { generateKeyPair, randomBytes, sha256, toKeyMessage, utf8 } from '../../lib/crypto/index.ts';
import { createPolicyCert, issueAdmissionCert, parseCertificate } from '../../lib/pki/index.ts';
import { generateSimulatedPlatform, SIMULATED_ENCLAVE, SimulatedEnclave } from '../../lib/attest/index.ts';
import { admissionCertTag, authKeyTag, initTrust, loadIdentity } from '../../lib/certifier/index.ts';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { closedPort, tempDir } from '../support/helpers.ts';
import { rejects } from '../support/rejects.ts';

describe('init-trust: renewing a certificate ahead of time', function () {
  this.timeout(30_000);
  const tmp = tempDir('init-trust-renewal-');
  const closers: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const c of closers.reverse()) await c();
    tmp.cleanup();
  });
  const domain = 'renewing';
  const m = sha256(utf8('program'));

  /**
   * A store holding a certificate issued `ageSeconds` ago for `lifeSeconds` (past half its life
   * when age is more than half), under a policy certificate made a day ago, or one of
   * `policyCertLeft.days` with `policyCertLeft.seconds` left; `storedKey` is kept in place of the certified key;
   * `platform` is the one the certificate names (issue-cert's "issued-offline", say).
   */
  async function certified(name: string, ageSeconds: number, lifeSeconds: number, policyCertLeft?: { days: number; seconds: number }, storedKey?: KeyObject, platform: string = SIMULATED_ENCLAVE) {
    const policyKey = (await generateKeyPair('p256')).privateKey;
    const policyCert = policyCertLeft
      ? await createPolicyCert({ privateKey: policyKey, domain, days: policyCertLeft.days, now: new Date(Date.now() + policyCertLeft.seconds * 1000 - policyCertLeft.days * 86_400_000) })
      : await createPolicyCert({ privateKey: policyKey, domain, now: new Date(Date.now() - 86_400_000) });
    const platformKeys = await generateSimulatedPlatform({ alg: 'p256' });
    const key = (await generateKeyPair('p256')).privateKey;
    const cert = await issueAdmissionCert({ policyKey, policyCert, subjectPublicKey: key, measurement: m, platform, domain, validitySeconds: lifeSeconds, now: new Date(Date.now() - ageSeconds * 1000) });
    const store = await Cryptstore.create(join(tmp.dir, name), new KeyFileProtector(randomBytes(32)));
    closers.push(() => store.close());
    await store.putAll([
      { tag: authKeyTag(domain), blob: encode('key_message', toKeyMessage(storedKey ?? key, 'auth-key')), options: { type: 'key-message-serialized-protobuf', exportable: false } },
      { tag: admissionCertTag(domain), blob: cert, options: { type: 'X509-der-cert', exportable: true } },
    ]);
    return { store, policyCert, platform: new SimulatedEnclave(platformKeys.attestKey, platformKeys.endorsement, m), notAfter: parseCertificate(cert).notAfter };
  }

  /** A certifier that accepts and hangs up at once, after calling `onConnection`. */
  async function hangingUp(onConnection: () => void = () => {}): Promise<number> {
    const server = net.createServer((socket) => {
      onConnection();
      socket.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => server.close(r)));
    return (server.address() as net.AddressInfo).port;
  }

  it('keeps the stored certificate, still valid after the attempt (renewalFailed)', async () => {
    const { store, policyCert, platform } = await certified('still-valid', 400, 500);
    const r = await initTrust({ store, domain, policyCert, platform, host: '127.0.0.1', port: await hangingUp() });
    expect(r.status).to.equal('already-certified');
    expect(r.renewalFailed?.code).to.equal('UNREACHABLE');
  });

  it('renews a certificate of more than six days within three days of its end, and not before', async () => {
    const day = 86_400;
    // Ten days of life: past half of it does not count, only the last three days do.
    const tenDays = (name: string, left: number) => certified(name, (10 - left) * day, 10 * day, { days: 30, seconds: 20 * day });
    let asked = 0;
    const port = await hangingUp(() => void asked++);
    const early = await tenDays('long-life-early', 3.5);
    expect(await initTrust({ ...early, domain, host: '127.0.0.1', port })).to.include({ status: 'already-certified' }).and.not.have.property('renewalFailed');
    expect(asked).to.equal(0);
    const due = await tenDays('long-life-due', 2.5);
    const r = await initTrust({ ...due, domain, host: '127.0.0.1', port });
    expect(asked).to.equal(1);
    expect(r.renewalFailed?.code).to.equal('UNREACHABLE');
  });

  it('refuses a store whose key is not the one its certificate names (INVALID_KEY: a pair put in by hand), without certifying afresh', async () => {
    const other = (await generateKeyPair('p256')).privateKey;
    const { store, policyCert, platform } = await certified('mismatched', 60, 7 * 86_400, undefined, other);
    await rejects(loadIdentity(store, domain, policyCert), 'INVALID_KEY');
    let asked = 0;
    await rejects(initTrust({ store, domain, policyCert, platform, host: '127.0.0.1', port: await hangingUp(() => void asked++) }), 'INVALID_KEY');
    expect(asked).to.equal(0);
  });

  it('says what to do about this machine\'s own certificate outside its dates (CERT_EXPIRED): ended, certify again; not yet begun, a clock behind', async () => {
    const { store, policyCert, notAfter } = await certified('ended', 7_200, 3_600);
    const ended = await rejects(loadIdentity(store, domain, policyCert), 'CERT_EXPIRED');
    expect(ended.message).to.equal(`the machine's stored certificate expired at ${notAfter.toISOString()} (checked at ${(ended.message.match(/checked at (\S+)/) ?? [])[1]} by this machine's clock) (expired): certify this machine again with cert-utility init-trust, which replaces an ended certificate (or, if this machine's clock is what is wrong, set it right: README "Clocks")`);
    expect(ended.details).to.include({ reason: 'expired', certificate: 'leaf' });
    const early = await certified('early', -3_600, 86_400);
    const notYet = await rejects(loadIdentity(early.store, domain, early.policyCert), 'CERT_EXPIRED');
    expect(notYet.message).to.match(/^the machine's stored certificate is not valid before \S+ \(checked at \S+ by this machine's clock\) \(not-yet-valid\): this machine's clock is at least 1 hour behind that of the machine that issued it \(simpleserver, or for issue-cert the policy key's\): set it right \(NTP, e\.g\. chrony; README "Clocks"\)$/);
  });

  it('says of this machine\'s own certificate that ended, issued offline with issue-cert (Scenario 2), to issue it again, as of one from another policy key', async () => {
    const { store, policyCert } = await certified('ended-offline', 7_200, 3_600, undefined, undefined, 'issued-offline');
    const ended = await rejects(loadIdentity(store, domain, policyCert), 'CERT_EXPIRED');
    expect(ended.message).to.match(/\(expired\): issue this machine's certificate again with cert-utility issue-cert, and put-item it as the tag's next version \(it was issued offline, platform issued-offline\), or certify this machine with cert-utility init-trust, which replaces an ended certificate \(or, if this machine's clock is what is wrong, set it right: README "Clocks"\)$/);
  });

  it('says of this machine\'s own certificate from another policy key (UNTRUSTED_PEER) to certify again, or, issued offline with issue-cert (Scenario 2), to issue it again', async () => {
    const otherPolicyCert = await createPolicyCert({ privateKey: (await generateKeyPair('p256')).privateKey, domain, now: new Date(Date.now() - 86_400_000) });
    const certifiedHere = await certified('other-policy-key', 60, 7 * 86_400);
    const fromSimpleserver = await rejects(loadIdentity(certifiedHere.store, domain, otherPolicyCert), 'UNTRUSTED_PEER');
    expect(fromSimpleserver.message).to.match(/: if the policy key was replaced, certify this machine again with cert-utility init-trust and the new policy certificate$/);
    const offline = await certified('other-policy-key-offline', 60, 7 * 86_400, undefined, undefined, 'issued-offline');
    const fromIssueCert = await rejects(loadIdentity(offline.store, domain, otherPolicyCert), 'UNTRUSTED_PEER');
    expect(fromIssueCert.message).to.match(/: if the policy key was replaced, issue this machine's certificate again with cert-utility issue-cert and the new policy key, and put-item it as the tag's next version \(it was issued offline, platform issued-offline\), or certify this machine with cert-utility init-trust and the new policy certificate$/);
  });

  it('fails, as a needed renewal would, when the certificate ended while the attempt ran', async () => {
    const { store, policyCert, platform, notAfter } = await certified('ended-meanwhile', 120, 150);
    // The clock reaches the certificate's end while simpleserver is being reached.
    let at = new Date();
    const port = await hangingUp(() => void (at = new Date(notAfter.getTime() + 1_000)));
    await rejects(initTrust({ store, domain, policyCert, platform, host: '127.0.0.1', port, now: () => at }), 'UNREACHABLE');
  });

  describe('a certificate that ends with the policy certificate', () => {
    // A one-day policy certificate with four hours left, and a certificate issued with it, cut to its end.
    const capped = (name: string) => certified(name, 20 * 3600, 2 * 86_400, { days: 1, seconds: 4 * 3600 });

    it('is not due for renewal: kept without asking simpleserver, saying it ends with the policy certificate', async () => {
      const { store, policyCert, platform, notAfter } = await capped('capped');
      const r = await initTrust({ store, domain, policyCert, platform, host: '127.0.0.1', port: await closedPort() });
      expect(r).to.include({ status: 'already-certified' }).and.not.have.property('renewalFailed');
      expect(r.endsWithPolicyCert?.toISOString()).to.equal(parseCertificate(policyCert).notAfter.toISOString()).and.equal(notAfter.toISOString());
    });

    it('is certified again with --force', async () => {
      const { store, policyCert, platform } = await capped('capped-forced');
      await rejects(initTrust({ store, domain, policyCert, platform, host: '127.0.0.1', port: await closedPort(), force: true }), 'UNREACHABLE');
    });
  });
});
