// init-trust keeps nothing it has not checked: the server it asks must be the policy authority,
// and the certificate that comes back must name this machine's key, measurement and platform, and
// be one a machine can use (a key-server would refuse the rest, and a re-run would take a kept one
// as certified). Nor does a re-run take such a certificate, found in the store, as certified. Here
// against fake servers on 127.0.0.1 presenting real certificates made with the policy key.

import { expect } from 'chai';
import type { KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { encode, parseTrustRequest } from '../../lib/wire/index.ts';
import { generateKeyPair, randomBytes, sha256, toHex, toKeyMessage, utf8 } from '../../lib/crypto/index.ts';
import { createPolicyCert, encodeAdmission, issueAdmissionCert, OID, parseCertificate, toPem, type AdmissionCertOptions } from '../../lib/pki/index.ts';
import { generateSimulatedPlatform, SIMULATED_ENCLAVE, SimulatedEnclave, verifyEvidence } from '../../lib/attest/index.ts';
import { admissionCertTag, authKeyTag, initTrust, issueAuthorityIdentity, loadIdentity, requestCertificate } from '../../lib/certifier/index.ts';
import { serve, type ChannelServer } from '../../lib/channel/index.ts';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { tempDir } from '../support/helpers.ts';
import { rejects } from '../support/rejects.ts';
import { DAY, forgeCertificate, KeyUsageFlags, readPolicySubject } from '../pki/forge.ts';

describe('init-trust: what it accepts from the server it asks', function () {
  this.timeout(30_000);
  const tmp = tempDir('authority-answers-');
  const servers: ChannelServer[] = [];
  const stores: Cryptstore[] = [];
  after(async () => {
    for (const s of servers) await s.close();
    for (const s of stores) await s.close();
    tmp.cleanup();
  });
  const domain = 'answers';
  const m = sha256(utf8('program'));

  async function setup() {
    const policyKey = (await generateKeyPair('p256')).privateKey;
    const policyCert = await createPolicyCert({ privateKey: policyKey, domain, now: new Date(Date.now() - 3_600_000) });
    const keys = await generateSimulatedPlatform({ alg: 'p256' });
    const store = await Cryptstore.create(join(tmp.dir, `store-${stores.length}`), new KeyFileProtector(randomBytes(32)));
    stores.push(store);
    /** A machine's admission certificate, as simpleserver would issue it, or with `other` fields. */
    const admission = (subjectPublicKey: KeyObject, measurement = m, other: Partial<AdmissionCertOptions> = {}) =>
      issueAdmissionCert({ policyKey, policyCert, subjectPublicKey, measurement, platform: SIMULATED_ENCLAVE, domain, validitySeconds: 86_400, ...other });
    /** One in every way as simpleserver's, but ending in a hundred years, long after the policy certificate. */
    const century = (subjectPublicKey: KeyObject) => forgeCertificate({
      subject: `O=Measured-${toHex(m)}, CN=CertifierUsers`, issuer: readPolicySubject(policyCert), publicKey: subjectPublicKey, signWith: policyKey,
      notBefore: new Date(Date.now() - 300_000), notAfter: new Date(Date.now() + 36_500 * DAY), basicConstraints: { ca: false }, keyUsage: KeyUsageFlags.digitalSignature,
      extKeyUsage: [OID.serverAuth, OID.clientAuth], authorityKeyIdHex: parseCertificate(policyCert).subjectKeyIdHex, admission: encodeAdmission({ measurement: m, platform: SIMULATED_ENCLAVE, domain }),
    });
    const authority = await issueAuthorityIdentity({ policyKey, policyCert, domain });
    return { policyCert, store, admission, century, authority, platform: new SimulatedEnclave(keys.attestKey, keys.endorsement, m) };
  }

  /**
   * A TLS server presenting `key` and `cert` that answers every trust request with `artifact`, or
   * with what `artifact` makes for the key the request's evidence names, or refuses it with a
   * code; counts the requests.
   */
  async function answering(key: KeyObject, cert: Uint8Array, policyCert: Uint8Array, artifact: Uint8Array | ((machineKey: KeyObject) => Promise<Uint8Array>) | { errorCode: string }) {
    const seen = { requests: 0 };
    const server = await serve({
      host: '127.0.0.1', port: 0,
      tls: { key, cert: toPem(cert), ca: toPem(policyCert), requestCert: false },
      handler: async (request) => {
        seen.requests++;
        const answer = typeof artifact === 'function' ? { status: 'succeeded', artifact: await artifact(verifyEvidence(parseTrustRequest(request).support).enclaveKey) }
          : artifact instanceof Uint8Array ? { status: 'succeeded', artifact } : { status: 'failed', ...artifact };
        return encode('trust_response_message', { requestingEnclaveTag: 'requesting-enclave', providingEnclaveTag: 'providing-enclave', ...answer });
      },
    });
    servers.push(server);
    return { port: server.address.port, seen };
  }

  it('refuses a server presenting a certified machine\'s certificate, not the authority\'s (UNTRUSTED_PEER, not-authority), before sending anything', async () => {
    const { policyCert, store, platform, admission } = await setup();
    // A key-server's: its admission certificate serves it as a TLS server.
    const machineKey = (await generateKeyPair('p256')).privateKey;
    const machineCert = await admission(machineKey);
    const { port, seen } = await answering(machineKey, machineCert, policyCert, machineCert);
    const e = await rejects(initTrust({ store, domain, policyCert, platform, host: '127.0.0.1', port }), 'UNTRUSTED_PEER');
    expect(e.details).to.deep.include({ reason: 'not-authority' });
    expect(seen.requests).to.equal(0);
    await rejects(store.get(authKeyTag(domain)), 'NOT_FOUND');
  });

  it('refuses a certificate from the authority for another key, and keeps nothing (UNTRUSTED_PEER)', async () => {
    const { policyCert, store, platform, admission, authority } = await setup();
    const { port, seen } = await answering(authority.key, authority.cert, policyCert, await admission((await generateKeyPair('p256')).privateKey));
    const e = await rejects(initTrust({ store, domain, policyCert, platform, host: '127.0.0.1', port }), 'UNTRUSTED_PEER');
    expect(e.message).to.include("does not name this machine's key");
    expect(seen.requests).to.equal(1);
    await rejects(store.get(authKeyTag(domain)), 'NOT_FOUND');
  });

  it('refuses a certificate from the authority for this machine\'s key but another measurement (UNTRUSTED_PEER)', async () => {
    const { policyCert, platform, admission, authority } = await setup();
    const authKey = (await generateKeyPair('p256')).privateKey;
    const { port, seen } = await answering(authority.key, authority.cert, policyCert, await admission(authKey, sha256(utf8('another program'))));
    const e = await rejects(requestCertificate({ host: '127.0.0.1', port, policyCert, platform, authKey }), 'UNTRUSTED_PEER');
    expect(e.message).to.include('another measurement');
    expect(seen.requests).to.equal(1);
  });

  describe('a certificate for this machine\'s key and measurement that it cannot use', () => {
    type Setup = Awaited<ReturnType<typeof setup>>;
    /** Puts a key and the certificate `make` issues for it into the store, as this machine's identity. */
    const storeIdentity = async (s: Setup, make: (s: Setup, machineKey: KeyObject) => Promise<Uint8Array>) => {
      const storedKey = await generateKeyPair('p256');
      const stored = await make(s, storedKey.publicKey);
      await s.store.putAll([
        { tag: authKeyTag(domain), blob: encode('key_message', toKeyMessage(storedKey.privateKey, 'auth-key')), options: { type: 'key-message-serialized-protobuf', exportable: false } },
        { tag: admissionCertTag(domain), blob: stored, options: { type: 'X509-der-cert', exportable: true } },
      ]);
      return { stored };
    };
    const unusable: [string, string, string, (s: Setup, machineKey: KeyObject) => Promise<Uint8Array>][] = [
      ['simpleserver\'s own kind (platform policy-authority)', 'BAD_CERTIFICATE', 'not-machine', (s, k) => s.admission(k, m, { platform: 'policy-authority' })],
      ['a role credential (platform role:operator)', 'BAD_CERTIFICATE', 'role-credential', (s, k) => s.admission(k, m, { platform: 'role:operator' })],
      ['one for TLS clients only (a key-server cannot serve with it)', 'BAD_CERTIFICATE', 'ext-key-usage', (s, k) => s.admission(k, m, { extKeyUsage: [OID.clientAuth] })],
      ['one ending a century after the policy certificate', 'BAD_CERTIFICATE', 'outlives-policy-cert', (s, k) => s.century(k)],
      ['one naming platform amd-sev-snp for simulated evidence', 'UNTRUSTED_PEER', 'other-platform', (s, k) => s.admission(k, m, { platform: 'amd-sev-snp' })],
    ];

    for (const [what, code, reason, make] of unusable) {
      it(`is refused when the authority returns ${what} (${code}, ${reason}), and nothing is kept`, async () => {
        const s = await setup();
        const { port, seen } = await answering(s.authority.key, s.authority.cert, s.policyCert, (k) => make(s, k));
        const e = await rejects(initTrust({ store: s.store, domain, policyCert: s.policyCert, platform: s.platform, host: '127.0.0.1', port }), code);
        expect(e.details).to.deep.include({ reason });
        expect(seen.requests).to.equal(1);
        await rejects(s.store.get(authKeyTag(domain)), 'NOT_FOUND');
        await rejects(s.store.get(admissionCertTag(domain)), 'NOT_FOUND');
      });

      // A stored one that outlives the policy certificate stands (below): only its use ends with it.
      if (reason === 'outlives-policy-cert') continue;
      it(`is not taken as certified when found in the store, ${what}: init-trust certifies again and replaces it`, async () => {
        const s = await setup();
        const { stored } = await storeIdentity(s, make);
        // What key-server and key-client start with: they know no platform, so the kind and usage only.
        if (code === 'BAD_CERTIFICATE') expect((await rejects(loadIdentity(s.store, domain, s.policyCert), code)).details).to.deep.include({ reason });
        const { port, seen } = await answering(s.authority.key, s.authority.cert, s.policyCert, (k) => s.admission(k));
        const r = await initTrust({ store: s.store, domain, policyCert: s.policyCert, platform: s.platform, host: '127.0.0.1', port });
        expect(r.status).to.equal('certified');
        expect(seen.requests).to.equal(1);
        const now = await loadIdentity(s.store, domain, s.policyCert);
        expect(now.peer).to.include({ platform: SIMULATED_ENCLAVE });
        expect(Buffer.from(now.certificate).equals(Buffer.from(stored))).to.equal(false);
      });
    }

    it('takes a stored one that ends after the policy certificate (as Scenario 2 issued before 2026-12-05) as certified, usable until the policy certificate ends', async () => {
      const s = await setup();
      const { stored } = await storeIdentity(s, (t, k) => t.century(k));
      const held = await loadIdentity(s.store, domain, s.policyCert);
      expect(held.peer.validUntil.getTime()).to.be.below(held.peer.notAfter.getTime());
      const { port, seen } = await answering(s.authority.key, s.authority.cert, s.policyCert, (k) => s.admission(k));
      expect((await initTrust({ store: s.store, domain, policyCert: s.policyCert, platform: s.platform, host: '127.0.0.1', port })).status).to.equal('already-certified');
      expect(seen.requests).to.equal(0);
      expect(Buffer.from(held.certificate).equals(Buffer.from(stored))).to.equal(true);
    });
  });

  it('takes a refusal code simpleserver never sends for DENIED, cut short and escaped; its INTERNAL says the server failed', async () => {
    const { policyCert, platform, authority } = await setup();
    const authKey = (await generateKeyPair('p256')).privateKey;
    const ask = async (errorCode: string) => requestCertificate({ host: '127.0.0.1', port: (await answering(authority.key, authority.cert, policyCert, { errorCode })).port, policyCert, platform, authKey });
    expect((await rejects(ask('USAGE'), 'DENIED')).message).to.equal('the certificate authority refused to certify this machine (a code no such server sends: "USAGE")');
    const long = await rejects(ask(`\u001b]0;x${'Y'.repeat(60_000)}`), 'DENIED');
    expect(long.message.length).to.be.below(200);
    expect(long.message).not.to.contain('\u001b');
    // An answer is a certificate of a few KiB: one over a trust request's limit is not read at all.
    await rejects(ask('Y'.repeat(100_000)), 'FRAME_TOO_LARGE');
    const internal = await rejects(ask('INTERNAL'), 'INTERNAL');
    expect(internal.message).to.contain('the certificate authority failed to certify this machine: a fault of the server');
    expect(internal.details).to.deep.equal({ remote: true });
    expect((await rejects(ask('MEASUREMENT_NOT_TRUSTED'), 'MEASUREMENT_NOT_TRUSTED')).message).to.contain("the policy does not trust this machine's measurement");
  });

  it('says what to do of a measurement (named) or platform the policy does not trust: check the file given, or sign a policy that trusts it and send simpleserver SIGHUP', async () => {
    const { policyCert, platform, authority } = await setup();
    const authKey = (await generateKeyPair('p256')).privateKey;
    const ask = async (errorCode: string) => requestCertificate({ host: '127.0.0.1', port: (await answering(authority.key, authority.cert, policyCert, { errorCode })).port, policyCert, platform, authKey });
    expect((await rejects(ask('MEASUREMENT_NOT_TRUSTED'), 'MEASUREMENT_NOT_TRUSTED')).message).to.contain(
      `the policy does not trust this machine's measurement, ${Buffer.from(platform.measurement).toString('hex')}: check that --measurement-file is this program's (cert-utility measure), or sign a policy that trusts it (make-policy --trust-measurement) and send simpleserver SIGHUP`);
    expect((await rejects(ask('PLATFORM_NOT_TRUSTED'), 'PLATFORM_NOT_TRUSTED')).message).to.contain(
      'the policy does not trust this platform: check that --platform-dir holds the files of a platform the policy trusts, or sign a policy that trusts this one (make-policy --trust-platform) and send simpleserver SIGHUP');
  });
});
