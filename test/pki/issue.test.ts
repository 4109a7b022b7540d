// Issuing: policy and admission certificates for every key algorithm, validated by our validator
// and, independently, by `openssl verify`; and the inputs issuing refuses before signing anything.

import 'reflect-metadata'; // @peculiar/x509 throws at import without it
import * as x509 from '@peculiar/x509';
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair, KEY_ALGS, toHex, type KeyPair } from '../../lib/crypto/index.ts';
import { CertifierError, type ErrorCode } from '../../lib/errors/index.ts';
import {
  ADMISSION_EXTENSION_OID, createPolicyCert, issueAdmissionCert, parseCertificate, toPem, validateAdmission,
  validatePolicyCert, type AdmissionCertOptions,
} from '../../lib/pki/index.ts';
import { tempDir } from '../support/helpers.ts';

const MEASUREMENT = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + (i % 16));
const SIG_NAME = { p256: 'ecdsa-with-SHA256', p384: 'ecdsa-with-SHA384', rsa2048: 'sha256WithRSAEncryption' } as const;
const SIG_OID = { p256: '1.2.840.10045.4.3.2', p384: '1.2.840.10045.4.3.3', rsa2048: '1.2.840.113549.1.1.11' } as const;

async function rejects(p: Promise<unknown>, code: ErrorCode, pattern?: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(CertifierError);
    expect((e as CertifierError).code).to.equal(code);
    if (pattern) expect((e as Error).message).to.match(pattern);
    return;
  }
  expect.fail(`expected ${code}`);
}

function opensslAvailable(): boolean {
  return spawnSync('openssl', ['version']).status === 0;
}

function opensslVerify(dir: string, policy: Uint8Array, leaf: Uint8Array, purpose: string): { status: number | null; out: string } {
  writeFileSync(join(dir, 'policy.pem'), toPem(policy));
  writeFileSync(join(dir, 'leaf.pem'), toPem(leaf));
  const r = spawnSync('openssl', ['verify', '-x509_strict', '-CAfile', join(dir, 'policy.pem'), '-purpose', purpose, join(dir, 'leaf.pem')], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('pki: issuing refuses bad inputs', () => {
  let policyKeys: KeyPair;
  let policyCert: Uint8Array;
  let base: AdmissionCertOptions;

  before(async () => {
    policyKeys = await generateKeyPair('p256');
    policyCert = await createPolicyCert({ privateKey: policyKeys.privateKey, domain: 'datica' });
    const subject = await generateKeyPair('p256');
    base = { policyKey: policyKeys.privateKey, policyCert, subjectPublicKey: subject.publicKey, measurement: MEASUREMENT, platform: 'simulated-enclave', domain: 'datica', validitySeconds: 3600 };
  });

  it('refuses a policy key that does not belong to the policy certificate (INVALID_KEY)', async () => {
    const other = await generateKeyPair('p256');
    await rejects(issueAdmissionCert({ ...base, policyKey: other.privateKey }), 'INVALID_KEY', /does not belong/);
  });

  it('refuses a public key where the policy key must be private (INVALID_KEY)', async () => {
    await rejects(issueAdmissionCert({ ...base, policyKey: policyKeys.publicKey }), 'INVALID_KEY');
    await rejects(createPolicyCert({ privateKey: policyKeys.publicKey, domain: 'datica' }), 'INVALID_KEY');
  });

  it('refuses keys of other algorithms (UNSUPPORTED)', async () => {
    const ed = generateKeyPairSync('ed25519');
    await rejects(createPolicyCert({ privateKey: ed.privateKey, domain: 'datica' }), 'UNSUPPORTED');
    await rejects(issueAdmissionCert({ ...base, subjectPublicKey: ed.publicKey }), 'UNSUPPORTED');
  });

  it('refuses a domain other than the policy certificate\'s, or one unfit for a name or URI (INVALID_INPUT)', async () => {
    await rejects(issueAdmissionCert({ ...base, domain: 'other' }), 'INVALID_INPUT', /differs from the policy certificate/);
    for (const domain of ['', 'a/b', 'x y', '-lead', 'é']) {
      await rejects(createPolicyCert({ privateKey: policyKeys.privateKey, domain }), 'INVALID_INPUT');
      await rejects(issueAdmissionCert({ ...base, domain }), 'INVALID_INPUT');
    }
  });

  it('refuses empty or oversized measurements, odd platforms and non-positive validity (INVALID_INPUT)', async () => {
    await rejects(issueAdmissionCert({ ...base, measurement: new Uint8Array(0) }), 'INVALID_INPUT', /measurement/);
    await rejects(issueAdmissionCert({ ...base, measurement: new Uint8Array(65) }), 'INVALID_INPUT', /measurement/);
    await rejects(issueAdmissionCert({ ...base, platform: '' }), 'INVALID_INPUT', /platform/);
    await rejects(issueAdmissionCert({ ...base, platform: 'two words' }), 'INVALID_INPUT', /platform/);
    await rejects(issueAdmissionCert({ ...base, validitySeconds: 0 }), 'INVALID_INPUT', /validitySeconds/);
    await rejects(issueAdmissionCert({ ...base, validitySeconds: 1.5 }), 'INVALID_INPUT', /validitySeconds/);
    await rejects(createPolicyCert({ privateKey: policyKeys.privateKey, domain: 'datica', days: 0 }), 'INVALID_INPUT', /days/);
  });

  it('refuses wildcard or malformed DNS names and malformed IP addresses (INVALID_INPUT)', async () => {
    for (const dnsNames of [['*.example.com'], ['bad_name'], ['a..b'], ['']]) await rejects(issueAdmissionCert({ ...base, dnsNames }), 'INVALID_INPUT');
    for (const ipAddresses of [['256.1.1.1'], ['1.2.3'], ['fe80::1%eth0'], ['localhost']]) await rejects(issueAdmissionCert({ ...base, ipAddresses }), 'INVALID_INPUT');
  });

  it('refuses to issue under a policy certificate that has expired (CERT_EXPIRED)', async () => {
    await rejects(issueAdmissionCert({ ...base, now: new Date(Date.now() + 3651 * 86_400_000) }), 'CERT_EXPIRED');
  });

  it('ends a certificate no later than the policy certificate, and says when the path ends (validUntil)', async () => {
    const shortPolicy = await createPolicyCert({ privateKey: policyKeys.privateKey, domain: 'datica', days: 1 });
    const policyEnd = parseCertificate(shortPolicy).notAfter;
    const leaf = await issueAdmissionCert({ ...base, policyCert: shortPolicy, validitySeconds: 30 * 86_400 });
    expect(parseCertificate(leaf).notAfter.getTime()).to.equal(policyEnd.getTime());
    const peer = validateAdmission({ chain: [leaf], policyCert: shortPolicy, at: new Date(), usage: 'client' });
    expect(peer.validUntil.getTime()).to.equal(policyEnd.getTime());
  });

  it('says when the path starts (validFrom): the later of the leaf\'s start and the policy certificate\'s', async () => {
    const policyStart = new Date(Math.floor(Date.now() / 1000) * 1000 - 3_600_000);
    const policyCert = await createPolicyCert({ privateKey: policyKeys.privateKey, domain: 'datica', now: policyStart });
    // Issued a moment before the policy certificate was made (within its allowance for skew): the leaf starts earlier.
    const leaf = await issueAdmissionCert({ ...base, policyCert, now: new Date(policyStart.getTime() - 60_000), validitySeconds: 86_400 });
    const peer = validateAdmission({ chain: [leaf], policyCert, at: new Date(), usage: 'client' });
    expect(peer.notBefore.getTime()).to.be.below(parseCertificate(policyCert).notBefore.getTime());
    expect(peer.validFrom.getTime()).to.equal(parseCertificate(policyCert).notBefore.getTime());
  });
});

describe('pki: policy and admission certificates for each algorithm', () => {
  for (const alg of KEY_ALGS) {
    describe(alg, () => {
      let policyKeys: KeyPair;
      let subject: KeyPair;
      let policyCert: Uint8Array;
      let leaf: Uint8Array;

      before(async () => {
        [policyKeys, subject] = await Promise.all([generateKeyPair(alg), generateKeyPair(alg)]);
        policyCert = await createPolicyCert({ privateKey: policyKeys.privateKey, domain: 'datica' });
        leaf = await issueAdmissionCert({
          policyKey: policyKeys.privateKey, policyCert, subjectPublicKey: subject.publicKey, measurement: MEASUREMENT,
          platform: 'simulated-enclave', domain: 'datica', validitySeconds: 86_400, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'],
        });
      });

      it(`signs the policy certificate with ${SIG_NAME[alg]}, self-signed, CA, keyCertSign`, () => {
        const p = validatePolicyCert(policyCert, new Date());
        expect(p.signatureAlgorithm.oid).to.equal(SIG_OID[alg]);
        expect(p).to.include({ subject: 'CN=policyKey, O=datica/policyAuthority', issuer: 'CN=policyKey, O=datica/policyAuthority', isCA: true });
        expect(p.keyUsage).to.deep.equal(['digitalSignature', 'keyCertSign', 'cRLSign']);
        expect(p.serialHex).to.match(/^[4-7][0-9a-f]{31}$/);
      });

      it('issues an admission certificate our validator accepts for client, server and any use', () => {
        const l = parseCertificate(leaf);
        expect(l.signatureAlgorithm.oid).to.equal(SIG_OID[alg]);
        expect(l.keyUsage).to.deep.equal(alg === 'rsa2048' ? ['digitalSignature', 'keyEncipherment'] : ['digitalSignature']);
        for (const usage of ['client', 'server', 'any'] as const) {
          const peer = validateAdmission({ chain: [leaf], policyCert, at: new Date(), usage });
          expect(peer).to.include({ platform: 'simulated-enclave', domain: 'datica', measurementHex: toHex(MEASUREMENT), serialHex: l.serialHex });
          expect(peer.publicKey.equals(subject.publicKey)).to.equal(true);
          expect(peer.notAfter.getTime()).to.equal(l.notAfter.getTime());
        }
      });

      it('names the machine as the original does (O=Measured-<hex>, CN=CertifierUsers), with a random 126-bit serial, CA:FALSE and both TLS uses', async () => {
        const l = parseCertificate(leaf);
        expect(l).to.include({ subject: `O=Measured-${toHex(MEASUREMENT)}, CN=CertifierUsers`, isCA: false });
        expect(l.extKeyUsage).to.have.members(['clientAuth', 'serverAuth']);
        // 128 bits whose top two are 01: positive, 16 bytes without a sign byte, 126 of them random.
        expect(l.serialHex).to.match(/^[4-7][0-9a-f]{31}$/);
        const again = parseCertificate(await issueAdmissionCert({
          policyKey: policyKeys.privateKey, policyCert, subjectPublicKey: subject.publicKey, measurement: MEASUREMENT, platform: 'simulated-enclave', domain: 'datica', validitySeconds: 86_400,
        }));
        expect(again.serialHex).to.match(/^[4-7][0-9a-f]{31}$/).and.not.equal(l.serialHex);
      });

      it('accepts the policy certificate repeated after the leaf, as TLS peers send it', () => {
        expect(validateAdmission({ chain: [leaf, policyCert], policyCert, at: new Date() }).fingerprintSha256Hex).to.equal(parseCertificate(leaf).fingerprintSha256Hex);
      });

      it('passes `openssl verify -purpose sslclient` and `sslserver` against the policy certificate', function () {
        if (!opensslAvailable()) this.skip();
        const { dir, cleanup } = tempDir('pki-openssl-');
        try {
          for (const purpose of ['sslclient', 'sslserver']) {
            const r = opensslVerify(dir, policyCert, leaf, purpose);
            expect(r.out.trim(), purpose).to.match(/leaf\.pem: OK$/);
            expect(r.status, purpose).to.equal(0);
          }
        } finally {
          cleanup();
        }
      });

      it('shows openssl the admission extension under our OID, non-critical', function () {
        if (!opensslAvailable()) this.skip();
        const r = spawnSync('openssl', ['x509', '-inform', 'DER', '-noout', '-text'], { input: leaf, encoding: 'utf8' });
        expect(r.stdout).to.include(`${ADMISSION_EXTENSION_OID}: \n`);
        expect(r.stdout).to.include(`URI:certifier://datica/measurement/${toHex(MEASUREMENT)}`);
      });
    });
  }
});

// RFC 5280's upper bound for organizationName (ub-organization-name) is 64 characters; the
// original Certifier's simpleserver writes O=Measured-<hex> past it (73 characters for a 32-byte
// measurement, tresp.bin), and so do we (105 for SEV-SNP's 48 bytes). Kept for the original's
// readers and the certificates already issued: the parsers that matter do not hold to the bound.
describe('pki: the measurement in the subject, past RFC 5280\'s 64 characters', () => {
  const SNP_MEASUREMENT = Uint8Array.from({ length: 48 }, (_, i) => i);
  let policyCert: Uint8Array;
  let leaf: Uint8Array;
  before(async () => {
    const [policyKeys, subject] = await Promise.all([generateKeyPair('p256'), generateKeyPair('p256')]);
    policyCert = await createPolicyCert({ privateKey: policyKeys.privateKey, domain: 'datica' });
    leaf = await issueAdmissionCert({ policyKey: policyKeys.privateKey, policyCert, subjectPublicKey: subject.publicKey, measurement: SNP_MEASUREMENT, platform: 'amd-sev-snp', domain: 'datica', validitySeconds: 3600 });
  });

  it('is read and verified by `openssl verify -x509_strict`', function () {
    if (!opensslAvailable()) this.skip();
    const { dir, cleanup } = tempDir('pki-long-o-');
    try {
      const r = opensslVerify(dir, policyCert, leaf, 'sslclient');
      expect(r.out.trim()).to.match(/leaf\.pem: OK$/);
    } finally {
      cleanup();
    }
  });

  it('is read whole by @peculiar/x509, which verifies the signature', async () => {
    const cert = new x509.X509Certificate(leaf);
    const o = cert.subjectName.getField('O');
    expect(o).to.deep.equal([`Measured-${toHex(SNP_MEASUREMENT)}`]);
    expect(o[0]).to.have.length(105);
    expect(await cert.verify({ publicKey: new x509.X509Certificate(policyCert).publicKey, signatureOnly: true })).to.equal(true);
  });
});
