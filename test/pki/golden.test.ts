// Golden certificates: fixed keys and a fixed `now` make issuing deterministic except for the
// serial number and the signature, so every field, byte for byte, can be asserted.

import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { importPrivateKey, publicKeyOf, toHex } from '../../lib/crypto/index.ts';
import {
  ADMISSION_EXTENSION_OID, createPolicyCert, issueAdmissionCert, parseCertificate, validateAdmission, type ParsedCert,
} from '../../lib/pki/index.ts';
import { VECTORS } from '../support/helpers.ts';

const DIR = join(VECTORS, 'pki');
const key = (name: string) => importPrivateKey(readFileSync(join(DIR, name)));
const golden = (name: string) => readFileSync(join(DIR, name), 'utf8').trim();
const NOW = new Date('2026-12-01T00:00:00.789Z'); // the milliseconds are dropped, never rounded up
const MEASUREMENT = Uint8Array.from({ length: 32 }, (_, i) => i);
const M_HEX = toHex(MEASUREMENT);
const POLICY_SKI = '867cf0ef1f2a9373992276082f6cc6d3d00d696c';
const LEAF_SKI = '0d21d2fd7de20007590fe1004211708425e035ab';
const ascii = (s: string) => Buffer.from(s, 'latin1').toString('hex');

/** The TBSCertificate as hex with the 16-byte serial zeroed: the only part that varies. */
function tbsWithoutSerial(p: ParsedCert): string {
  const hex = toHex(p.tbs);
  const serial = `0210${p.serialHex}`;
  expect(hex.indexOf(serial), 'the serial sits right after the 4-byte header and the version').to.equal(18);
  return hex.replace(serial, `0210${'00'.repeat(16)}`);
}

const extValue = (p: ParsedCert, oid: string) => toHex(p.extensions.find((e) => e.oid === oid)!.value);

describe('pki: golden certificates from fixed keys and a fixed time', () => {
  const policyKey = key('policy-p256.key.pem');
  let policyCert: Uint8Array;
  let policy: ParsedCert;
  const issue = (subjectKeyFile: string) => issueAdmissionCert({
    policyKey, policyCert, subjectPublicKey: publicKeyOf(key(subjectKeyFile)), measurement: MEASUREMENT, platform: 'simulated-enclave',
    domain: 'datica', validitySeconds: 7 * 86_400, now: NOW, dnsNames: ['node1.datica.example'], ipAddresses: ['10.0.0.7', '2001:db8::7'],
  });

  before(async () => {
    policyCert = await createPolicyCert({ privateKey: policyKey, domain: 'datica', now: NOW });
    policy = parseCertificate(policyCert);
  });

  it('refuses a millisecond outside the validity window, naming the instant, and accepts both ends', async () => {
    const leaf = await issue('subject-p256.key.pem');
    const at = (iso: string) => () => validateAdmission({ chain: [leaf], policyCert, at: new Date(iso) });
    expect(at('2026-11-30T23:54:59.999Z')).to.throw(/not valid before 2026-11-30T23:55:00.000Z \(checked at 2026-11-30T23:54:59.999Z\) \(not-yet-valid\)/);
    expect(at('2026-12-08T00:00:00.001Z')).to.throw(/expired at 2026-12-08T00:00:00.000Z \(checked at 2026-12-08T00:00:00.001Z\) \(expired\)/);
    expect(at('2026-11-30T23:55:00.000Z')().domain).to.equal('datica');
    expect(at('2026-12-08T00:00:00.000Z')().domain).to.equal('datica');
  });

  it('gives each issuance a fresh random serial, and nothing else differs in what is signed', async () => {
    const [a, b] = [parseCertificate(await issue('subject-p256.key.pem')), parseCertificate(await issue('subject-p256.key.pem'))];
    expect(a.serialHex).to.not.equal(b.serialHex);
    expect(tbsWithoutSerial(a)).to.equal(tbsWithoutSerial(b));
    const again = parseCertificate(await createPolicyCert({ privateKey: policyKey, domain: 'datica', now: NOW }));
    expect(again.serialHex).to.not.equal(policy.serialHex);
    expect(tbsWithoutSerial(again)).to.equal(tbsWithoutSerial(policy));
  });

  it('writes the policy certificate byte for byte as the golden TBS', () => {
    expect(tbsWithoutSerial(policy)).to.equal(golden('policy-p256.tbs.hex'));
  });

  it('writes the admission certificate byte for byte as the golden TBS', async () => {
    expect(tbsWithoutSerial(parseCertificate(await issue('subject-p256.key.pem')))).to.equal(golden('admission-p256.tbs.hex'));
  });

  it('names, dates and flags the policy certificate as specified', () => {
    expect(policy).to.include({ version: 3, subject: 'CN=policyKey, O=datica/policyAuthority', issuer: 'CN=policyKey, O=datica/policyAuthority', isCA: true, pathLength: 0 });
    expect(policy.notBefore.toISOString()).to.equal('2026-11-30T23:55:00.000Z');
    expect(policy.notAfter.toISOString()).to.equal('2036-11-28T00:00:00.000Z'); // 3650 days
    expect(policy.extensions.map((e) => [e.oid, e.critical])).to.deep.equal([['2.5.29.19', true], ['2.5.29.15', true], ['2.5.29.14', false]]);
    expect(extValue(policy, '2.5.29.19')).to.equal('30060101ff020100'); // CA:TRUE, pathLen 0
    expect(extValue(policy, '2.5.29.15')).to.equal('03020186'); // digitalSignature, keyCertSign, cRLSign; 1 unused bit
    expect(policy.subjectKeyIdHex).to.equal(POLICY_SKI);
    expect(policy.serialHex).to.match(/^[4-7][0-9a-f]{31}$/);
  });

  it('names, dates and flags the admission certificate as specified', async () => {
    const leaf = parseCertificate(await issue('subject-p256.key.pem'));
    expect(leaf).to.include({ version: 3, subject: `O=Measured-${M_HEX}, CN=CertifierUsers`, issuer: 'CN=policyKey, O=datica/policyAuthority', isCA: false });
    expect(Buffer.from(leaf.issuerDer).equals(Buffer.from(policy.subjectDer))).to.equal(true);
    expect(leaf.notBefore.toISOString()).to.equal('2026-11-30T23:55:00.000Z'); // now - 5 minutes
    expect(leaf.notAfter.toISOString()).to.equal('2026-12-08T00:00:00.000Z');
    expect(leaf.extensions.map((e) => [e.oid, e.critical])).to.deep.equal([
      ['2.5.29.19', true], ['2.5.29.15', true], ['2.5.29.37', false], ['2.5.29.14', false], ['2.5.29.35', false], ['2.5.29.17', false],
      [ADMISSION_EXTENSION_OID, false],
    ]);
    expect(extValue(leaf, '2.5.29.19')).to.equal('3000'); // CA:FALSE is the empty SEQUENCE in DER
    expect(extValue(leaf, '2.5.29.15')).to.equal('03020780'); // digitalSignature only
    expect(extValue(leaf, '2.5.29.37')).to.equal('301406082b0601050507030106082b06010505070302'); // serverAuth, clientAuth
    expect(leaf.subjectKeyIdHex).to.equal(LEAF_SKI);
    expect(leaf.authorityKeyIdHex).to.equal(POLICY_SKI);
    expect(leaf.altNames).to.deep.equal({
      uris: [`certifier://datica/measurement/${M_HEX}`], dnsNames: ['node1.datica.example'], ipAddresses: ['10.0.0.7', '2001:db8::7'],
    });
    // SEQUENCE { OCTET STRING measurement, UTF8String platform, UTF8String domain }, written out by hand.
    expect(extValue(leaf, ADMISSION_EXTENSION_OID)).to.equal(`303d0420${M_HEX}0c11${ascii('simulated-enclave')}0c06${ascii('datica')}`);
    expect(leaf.admission).to.deep.equal({ measurement: MEASUREMENT, platform: 'simulated-enclave', domain: 'datica' });
  });

  it('adds keyEncipherment for an RSA subject key, and nothing else changes', async () => {
    const rsa = parseCertificate(await issue('subject-rsa2048.key.pem'));
    expect(rsa.keyUsage).to.deep.equal(['digitalSignature', 'keyEncipherment']);
    expect(extValue(rsa, '2.5.29.15')).to.equal('030205a0');
    expect(rsa.subject).to.equal(`O=Measured-${M_HEX}, CN=CertifierUsers`);
  });

});
