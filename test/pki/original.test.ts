// The original Certifier's certificates: its policy certificate passes our policy checks, and the
// admission certificate its simpleserver issued is signed by it yet refused by our stricter rules.

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertifierError } from '../../lib/errors/index.ts';
import { decode, type TrustResponseMessage } from '../../lib/wire/index.ts';
import { isSignedBy, parseCertificate, readCertificate, toPem, validateAdmission, validatePolicyCert } from '../../lib/pki/index.ts';
import { tempDir, VECTORS } from '../support/helpers.ts';

const DIR = join(VECTORS, 'certifier-original');
const AT = new Date('2026-12-01T00:00:00Z');
const MEASUREMENT_HEX = '61bd9182736776eea1304accc7c6aae5ba57e427838586c149a1c05bdd8be65c';
const policyCert = new Uint8Array(readFileSync(join(DIR, 'policy_cert_file.datica')));
const artifact = (): Uint8Array => decode<TrustResponseMessage>('trust_response_message', readFileSync(join(DIR, 'tresp.bin'))).artifact!;

describe('pki: certificates from the original Certifier', () => {
  describe('policy_cert_file.datica', () => {
    it('is refused before its validity starts and after it ends (CERT_EXPIRED)', () => {
      for (const [at, reason] of [['2026-11-23T13:38:57Z', 'not-yet-valid'], ['2031-11-22T13:38:59Z', 'expired']] as const) {
        try {
          validatePolicyCert(policyCert, new Date(at));
          expect.fail(`valid at ${at}`);
        } catch (e) {
          expect(e).to.be.instanceOf(CertifierError);
          expect((e as CertifierError).code).to.equal('CERT_EXPIRED');
          expect((e as CertifierError).details).to.include({ reason, certificate: 'policy' });
        }
      }
    });

    it('parses, with the subject, fingerprint and flags the README records', () => {
      const p = parseCertificate(policyCert);
      expect(p).to.include({ subject: 'CN=policyKey, O=datica/policyAuthority', issuer: 'CN=policyKey, O=datica/policyAuthority', serialHex: '01', isCA: true, version: 3 });
      expect(p.fingerprintSha256Hex).to.equal('d7085ca3fec2fc5591b3944a493b7c855eaf3914f9e1c7770acacfeace5cae76');
      expect(p.keyUsage).to.deep.equal(['digitalSignature', 'keyCertSign', 'cRLSign']);
      expect(p.extKeyUsage).to.deep.equal(['clientAuth', 'serverAuth']);
      expect(p.publicKey.asymmetricKeyDetails?.modulusLength).to.equal(2048);
      expect(p.subjectKeyIdHex).to.equal(undefined);
      expect(p.notBefore.toISOString()).to.equal('2026-11-23T13:38:58.000Z');
      expect(p.notAfter.toISOString()).to.equal('2031-11-22T13:38:58.000Z');
    });

    it('passes validatePolicyCert at 2026-12-01T00:00:00Z', () => {
      expect(validatePolicyCert(policyCert, AT).fingerprintSha256Hex).to.equal(parseCertificate(policyCert).fingerprintSha256Hex);
    });
  });

  describe('the admission certificate inside tresp.bin', () => {
    it('is refused by validateAdmission: BAD_CERTIFICATE key-usage (keyCertSign on a non-CA), and it lacks our extension', () => {
      try {
        validateAdmission({ chain: [artifact()], policyCert, at: AT });
        expect.fail('accepted');
      } catch (e) {
        expect(e).to.be.instanceOf(CertifierError);
        const err = e as CertifierError;
        expect(err.code).to.equal('BAD_CERTIFICATE');
        expect(err.exitStatus).to.equal(1);
        expect(err.details).to.deep.equal({ reason: 'key-usage', certificate: 'leaf', alsoFailed: ['no-admission-extension'] });
        expect(err.message).to.equal('the certificate\'s key usage allows keyCertSign but it is not a CA (key-usage)');
      }
    });

    it('is signed by the policy certificate, which issued it, and passes every trust and time check', () => {
      const leaf = parseCertificate(artifact());
      const policy = parseCertificate(policyCert);
      expect(isSignedBy(leaf, policy.publicKey)).to.equal(true);
      expect(Buffer.from(leaf.issuerDer).equals(Buffer.from(policy.subjectDer))).to.equal(true);
      expect(leaf.notBefore <= AT && AT <= leaf.notAfter).to.equal(true);
      // Hence the refusal above comes from the content checks, not from trust.
    });

    it('is signed by the policy certificate according to openssl too', function () {
      if (spawnSync('openssl', ['version']).status !== 0) this.skip();
      const { dir, cleanup } = tempDir('pki-original-');
      try {
        writeFileSync(join(dir, 'policy.pem'), toPem(policyCert));
        writeFileSync(join(dir, 'leaf.pem'), toPem(artifact()));
        const r = spawnSync('openssl', ['verify', '-attime', String(AT.getTime() / 1000), '-CAfile', join(dir, 'policy.pem'), join(dir, 'leaf.pem')], { encoding: 'utf8' });
        expect(`${r.stdout}${r.stderr}`.trim()).to.match(/leaf\.pem: OK$/);
      } finally {
        cleanup();
      }
    });

    it('parses to the fields the original gave it', () => {
      const leaf = parseCertificate(readCertificate(new TextEncoder().encode(toPem(artifact())))); // through PEM and back
      expect(leaf).to.include({ subject: `O=Measured-${MEASUREMENT_HEX}, CN=CertifierUsers`, issuer: 'CN=policyKey, O=datica/policyAuthority', serialHex: '0d', isCA: false });
      expect(leaf.organizations).to.deep.equal([`Measured-${MEASUREMENT_HEX}`]);
      expect(leaf.keyUsage).to.deep.equal(['digitalSignature', 'keyCertSign']);
      expect(leaf.extKeyUsage).to.deep.equal(['clientAuth', 'serverAuth']);
      expect(leaf.altNames).to.deep.equal({ uris: [], dnsNames: [], ipAddresses: ['127.0.0.1'] });
      expect(leaf.admission).to.equal(undefined);
      expect(leaf.extensions.map((e) => [e.oid, e.critical])).to.deep.equal([
        ['2.5.29.15', true], ['2.5.29.37', false], ['2.5.29.19', true], ['2.5.29.17', false],
      ]);
    });
  });
});
