// Our path validation over AMD-shaped chains, exercised with the test signer: RSA-PSS parameters
// checked explicitly, validity at the given time, CA flags, roots only from the anchors given
// (never from the evidence), the VLEK path, and the report's signing-key selector.

import { expect } from 'chai';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VECTORS } from '../support/helpers.ts';
import { randomBytes } from '../../lib/crypto/index.ts';
import { AMD_EXT, readAmdCert, pssProblem, validateAmdChain, verifySnpReport, type SnpReportInput } from '../../lib/attest/index.ts';
import { children, encodeBitString, encodeOid, readOne, seq } from '../../lib/pki/der.ts';
import { readStructure } from '../../lib/pki/structure.ts';
import { platformRootEntity, platformRootOf } from '../../lib/policy/index.ts';
import { CertifierError } from '../../lib/errors/index.ts';
import { amdExtensions, pssAlgorithm, pssCertificate, TestSnpSigner } from './signer.ts';
import { basicConstraints, keyUsage, type ExtensionSpec } from '../../lib/pki/build.ts';
import type { KeyUsageName } from '../../lib/pki/oids.ts';
import { NOW, refusalOf } from './support.ts';

const DAY = 86_400_000;
const MEASUREMENT = randomBytes(48);

const refusal = (i: SnpReportInput) => refusalOf(() => verifySnpReport(i));

describe('SEV-SNP path validation (test signer)', () => {
  let s: TestSnpSigner;
  let report: Uint8Array;
  let keys: Record<'ark' | 'ask' | 'vcek', KeyObject>; // of the paths made here
  before(() => {
    s = TestSnpSigner.create({ now: NOW });
    const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    keys = { ark: rsa(), ask: rsa(), vcek: generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey };
    report = s.report({ reportData: randomBytes(64), measurement: MEASUREMENT });
  });

  it('verifies VCEK -> ASK -> ARK when the ARK is an anchor, with the ASK from the evidence', () => {
    const v = verifySnpReport({ report, certs: [s.vcek, s.ask], at: NOW, roots: [s.ark] });
    expect(v.chain.root.name).to.equal('ARK-TEST');
    expect(v.product, 'not a pinned AMD root').to.equal(undefined);
  });

  it('never takes a root from the evidence: an ARK sent along is not an anchor', () => {
    expect(refusal({ report, certs: [s.vcek, s.ask, s.ark], at: NOW })).to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'no-issuer' });
  });

  it('refuses a chain when the ASK is missing and not pinned', () => {
    expect(refusal({ report, certs: [s.vcek], at: NOW, roots: [s.ark] })).to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'no-issuer' });
  });

  it('refuses a VCEK signed with another PSS salt length, naming the algorithm', () => {
    const ask = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const other = TestSnpSigner.create({ now: NOW });
    const vcek = pssCertificate({ subject: 'SEV-VCEK', issuer: 'SEV-TEST', key: generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, signer: ask, extensions: amdExtensions(other.tcb, other.chipId), salt: 32 }, NOW);
    expect(pssProblem(readAmdCert(vcek, 'VCEK'))).to.equal('RSASSA-PSS salt length is 32, not 48');
    const r = refusal({ report: other.report({ reportData: randomBytes(64), measurement: MEASUREMENT }), certs: [vcek, other.ask], at: NOW, roots: [other.ark] });
    expect(r).to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'signature-algorithm' });
  });

  it('names every RSASSA-PSS parameter that is not AMD\'s: the MGF1 hash, the trailer field', () => {
    const problem = (o: Parameters<typeof pssAlgorithm>[0]) => pssProblem({
      signatureAlgorithm: { oid: '1.2.840.113549.1.1.10', parameters: children(readOne(pssAlgorithm(o)))[1]!.bytes }, tbs: new Uint8Array(), signature: new Uint8Array(),
    });
    expect(problem({})).to.equal(undefined);
    expect(problem({ trailer: 1 }), 'the trailer field spelt out').to.equal(undefined);
    expect(problem({ mgfHash: '2.16.840.1.101.3.4.2.1' })).to.equal('RSASSA-PSS mask generation is not MGF1 with SHA-384');
    expect(problem({ trailer: 2 })).to.equal('RSASSA-PSS trailer field is not 1');
    expect(problem({ hash: '2.16.840.1.101.3.4.2.1' })).to.equal('RSASSA-PSS hash is not SHA-384');
  });

  it('refuses a VCEK the ASK did not sign (same names, another key)', () => {
    const impostor = pssCertificate({ subject: 'SEV-VCEK', issuer: 'SEV-TEST', key: generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, signer: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, extensions: amdExtensions(s.tcb, s.chipId) }, NOW);
    expect(refusal({ report, certs: [impostor, s.ask], at: NOW, roots: [s.ark] })).to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'signature' });
  });

  it('refuses certificates outside their validity at the given time with CERT_EXPIRED', () => {
    expect(refusal({ report, certs: [s.vcek, s.ask], at: new Date(NOW.getTime() - 2 * DAY), roots: [s.ark] })).to.include({ code: 'CERT_EXPIRED', reason: 'not-yet-valid' });
    expect(refusal({ report, certs: [s.vcek, s.ask], at: new Date(NOW.getTime() + 3651 * DAY), roots: [s.ark] })).to.include({ code: 'CERT_EXPIRED', reason: 'expired' });
  });

  /**
   * The refusal of a path ARK-X -> SEV-X -> VCEK made here for the signer's report (its TCB and
   * chip id), with one part changed: the ARK's key size, the ASK's key usage, the VCEK's
   * extensions, or the VCEK signed by the ARK itself and the ARK sent along as its issuer. The
   * VCEK's key is not the signer's: a path that is not refused ends with REPORT_INVALID.
   */
  function customPathRefusal(o: {
    arkBits?: number; askUsage?: KeyUsageName[]; vcekExtensions?: (e: ExtensionSpec[]) => ExtensionSpec[]; vcekByArk?: boolean;
    /** The ARK signed by another key (so not self-signed), one certificate's validity, the VCEK's key. */
    arkSigner?: KeyObject; window?: { of: 'ark' | 'ask' | 'vcek'; notBefore: Date; notAfter: Date }; vcekKey?: KeyObject;
  }) {
    const arkKey = o.arkBits ? generateKeyPairSync('rsa', { modulusLength: o.arkBits }).privateKey : keys.ark;
    const { ask: askKey } = keys;
    const vcekKey = o.vcekKey ?? keys.vcek;
    const windowOf = (c: 'ark' | 'ask' | 'vcek') => (o.window?.of === c ? { notBefore: o.window.notBefore, notAfter: o.window.notAfter } : {});
    const ark = pssCertificate({ subject: 'ARK-X', issuer: 'ARK-X', key: arkKey, signer: o.arkSigner ?? arkKey, extensions: [basicConstraints(true), keyUsage(['keyCertSign'])], serial: 1, ...windowOf('ark') }, NOW);
    const ask = pssCertificate({ subject: 'SEV-X', issuer: 'ARK-X', key: askKey, signer: arkKey, extensions: [basicConstraints(true), keyUsage(o.askUsage ?? ['keyCertSign'])], serial: 2, ...windowOf('ask') }, NOW);
    const extensions = (o.vcekExtensions ?? ((e) => e))(amdExtensions(s.tcb, s.chipId));
    const vcek = pssCertificate({ subject: 'SEV-VCEK', issuer: o.vcekByArk ? 'ARK-X' : 'SEV-X', key: vcekKey, signer: o.vcekByArk ? arkKey : askKey, extensions, ...windowOf('vcek') }, NOW);
    return refusal({ report, certs: [vcek, o.vcekByArk ? ark : ask], at: NOW, roots: [ark] });
  }

  it('refuses an intermediate that is not a CA allowed to sign certificates', () => {
    // The ASK lacks keyCertSign: the VCEK still chains by name and signature.
    expect(customPathRefusal({ askUsage: ['digitalSignature'] })).to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'not-ca' });
    expect(customPathRefusal({ askUsage: ['cRLSign'] }), 'cRLSign is not keyCertSign').to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'not-ca' });
  });

  it('refuses a VCEK that is a CA or may sign certificates, and one with a critical extension it does not know', () => {
    const usage = (names: KeyUsageName[]) => (e: ExtensionSpec[]) => [...e, keyUsage(names)];
    // A CA among the evidence's certificates is taken for an intermediate: no VCEK is left.
    expect(customPathRefusal({ vcekExtensions: (e) => [...e, basicConstraints(true)] }).code).to.equal('EVIDENCE_MALFORMED');
    expect(customPathRefusal({ vcekExtensions: usage(['digitalSignature', 'keyCertSign']) })).to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'leaf-is-ca' });
    expect(customPathRefusal({ vcekExtensions: usage(['digitalSignature']) }).code, 'keyUsage is understood').to.equal('REPORT_INVALID'); // past the path
    // A TCB level that is not a DER integer from 0 to 255: padded with a zero byte, or negative.
    for (const value of [Uint8Array.of(2, 2, 0, 3), Uint8Array.of(2, 1, 0xff)]) {
      const spl = (e: ExtensionSpec[]) => e.map((x) => (x.oid === AMD_EXT.blSpl ? { ...x, value } : x));
      expect(customPathRefusal({ vcekExtensions: spl }).code, `blSPL ${Buffer.from(value).toString('hex')}`).to.equal('BAD_CERTIFICATE');
    }
    const unknown = (e: ExtensionSpec[]) => [...e, { oid: '1.3.6.1.4.1.99999.1', critical: true, value: Uint8Array.of(5, 0) }];
    expect(customPathRefusal({ vcekExtensions: unknown })).to.include({ code: 'BAD_CERTIFICATE', reason: 'unknown-critical-extension' });
  });

  it('never takes a root sent with the evidence as the intermediate: a VCEK the ARK signed itself has no issuer', () => {
    expect(customPathRefusal({ vcekByArk: true })).to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'no-issuer' });
  });

  it('says an AMD certificate not valid yet by this machine\'s clock means that clock is behind, and by how much; at a time given (explain --at), only when', () => {
    const now = new Date();
    const ark = pssCertificate({ subject: 'ARK-Y', issuer: 'ARK-Y', key: keys.ark, signer: keys.ark, extensions: [basicConstraints(true), keyUsage(['keyCertSign'])], serial: 1 }, new Date(now.getTime() - 30 * DAY));
    const ask = pssCertificate({ subject: 'SEV-Y', issuer: 'ARK-Y', key: keys.ask, signer: keys.ark, extensions: [basicConstraints(true), keyUsage(['keyCertSign'])], serial: 2 }, new Date(now.getTime() - 30 * DAY));
    // AMD made the VCEK three days ahead of this machine's clock.
    const vcek = pssCertificate({ subject: 'SEV-VCEK', issuer: 'SEV-Y', key: keys.vcek, signer: keys.ask, extensions: amdExtensions(s.tcb, s.chipId), notBefore: new Date(now.getTime() + 3 * DAY), notAfter: new Date(now.getTime() + 9 * DAY) }, now);
    const refused = (at: Date) => {
      try {
        validateAmdChain({ leaf: readAmdCert(vcek, 'VCEK'), kind: 'vcek', intermediates: [readAmdCert(ask, 'ASK')], roots: [readAmdCert(ark, 'ARK')], at });
      } catch (e) {
        return e as CertifierError;
      }
      return expect.fail('accepted');
    };
    const byThisClock = refused(new Date());
    expect(byThisClock).to.include({ code: 'CERT_EXPIRED' });
    expect(byThisClock.message).to.match(/\(not-yet-valid\): this machine's clock is probably at least 3 days behind: set it right \(NTP, e\.g\. chrony; README "Clocks"\)$/);
    expect(refused(new Date(now.getTime() - DAY)).message).to.match(/is not valid before \S+ \(not-yet-valid\)$/);
  });

  it('says an AMD certificate not valid yet by under a minute of this machine\'s clock means that clock is behind, not "at least less than a minute" behind', () => {
    const now = new Date();
    const ark = pssCertificate({ subject: 'ARK-Y', issuer: 'ARK-Y', key: keys.ark, signer: keys.ark, extensions: [basicConstraints(true), keyUsage(['keyCertSign'])], serial: 1 }, new Date(now.getTime() - 30 * DAY));
    const ask = pssCertificate({ subject: 'SEV-Y', issuer: 'ARK-Y', key: keys.ask, signer: keys.ark, extensions: [basicConstraints(true), keyUsage(['keyCertSign'])], serial: 2 }, new Date(now.getTime() - 30 * DAY));
    // Made 20 seconds ahead of this machine's clock (a VCEK fetched from AMD's KDS just now, say).
    const vcek = pssCertificate({ subject: 'SEV-VCEK', issuer: 'SEV-Y', key: keys.vcek, signer: keys.ask, extensions: amdExtensions(s.tcb, s.chipId), notBefore: new Date(now.getTime() + 20_000), notAfter: new Date(now.getTime() + 9 * DAY) }, now);
    let refusal: CertifierError | undefined;
    try {
      validateAmdChain({ leaf: readAmdCert(vcek, 'VCEK'), kind: 'vcek', intermediates: [readAmdCert(ask, 'ASK')], roots: [readAmdCert(ark, 'ARK')], at: now });
    } catch (e) {
      refusal = e as CertifierError;
    }
    expect(refusal).to.include({ code: 'CERT_EXPIRED' });
    expect(refusal!.message).to.match(/\(not-yet-valid\): this machine's clock is probably behind: set it right \(NTP, e\.g\. chrony; README "Clocks"\)$/);
  });

  it('checks each certificate\'s own validity: an expired VCEK or ARK, or an ASK not yet valid, among valid others is CERT_EXPIRED, naming it', () => {
    const [past, future] = [new Date(NOW.getTime() - 10 * DAY), new Date(NOW.getTime() + 10 * DAY)];
    const expired = customPathRefusal({ window: { of: 'vcek', notBefore: past, notAfter: new Date(NOW.getTime() - DAY) } });
    expect(expired).to.include({ code: 'CERT_EXPIRED', reason: 'expired' });
    expect(expired.message).to.contain('the VCEK certificate');
    const early = customPathRefusal({ window: { of: 'ask', notBefore: new Date(NOW.getTime() + DAY), notAfter: future } });
    expect(early).to.include({ code: 'CERT_EXPIRED', reason: 'not-yet-valid' });
    expect(early.message).to.contain('the ASK certificate');
    const root = customPathRefusal({ window: { of: 'ark', notBefore: past, notAfter: new Date(NOW.getTime() - DAY) } });
    expect(root).to.include({ code: 'CERT_EXPIRED', reason: 'expired' });
    expect(root.message).to.contain('the ARK certificate');
    expect(customPathRefusal({ window: { of: 'vcek', notBefore: past, notAfter: future } }).code, 'inside its window').to.equal('REPORT_INVALID'); // past the path
  });

  it('refuses a VCEK whose key is not ECDSA P-384 before trying the signature', () => {
    expect(customPathRefusal({ vcekKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey })).to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'key-algorithm' });
  });

  it('refuses a VCEK whose key is the point at infinity, on which Node aborts when asked its curve (BAD_CERTIFICATE), before any signature, and a policy naming it as a root', () => {
    const [tbs, alg, sig] = children(readOne(s.vcek));
    const fields = children(tbs!);
    const at = fields.findIndex((f) => Buffer.from(f.bytes).equals(readStructure(s.vcek).spki));
    expect(at).to.be.greaterThan(0);
    const infinity = seq(seq(encodeOid('1.2.840.10045.2.1'), encodeOid('1.3.132.0.34')), encodeBitString(Uint8Array.of(0)));
    const vcek = seq(seq(...fields.map((f, i) => (i === at ? infinity : f.bytes))), alg!.bytes, sig!.bytes);
    expect(refusal({ report, certs: [vcek, s.ask], at: NOW, roots: [s.ark] })).to.include({ code: 'BAD_CERTIFICATE' });
    // A policy naming such a certificate as a platform's root: the same key, refused as unreadable.
    expect(() => platformRootOf(platformRootEntity('amd-sev-snp', vcek, 'ARK'), 'rule 1')).to.throw(CertifierError).with.property('code', 'POLICY_INVALID');
  });

  it('refuses a VCEK whose P-384 key gives its curve\'s parameters instead of naming the curve (RFC 5480 2.1.1; CVE-2020-0601), and a policy naming it as a root (BAD_CERTIFICATE, POLICY_INVALID)', () => {
    const [tbs, alg, sig] = children(readOne(s.vcek));
    const fields = children(tbs!);
    const at = fields.findIndex((f) => Buffer.from(f.bytes).equals(readStructure(s.vcek).spki));
    // test/vectors/pki/explicit-p384.sec1.pem: openssl ecparam -name secp384r1 -param_enc explicit.
    const key = createPublicKey(readFileSync(join(VECTORS, 'pki', 'explicit-p384.sec1.pem')));
    const vcek = seq(seq(...fields.map((f, i) => (i === at ? new Uint8Array(key.export({ type: 'spki', format: 'der' })) : f.bytes))), alg!.bytes, sig!.bytes);
    const refused = refusal({ report, certs: [vcek, s.ask], at: NOW, roots: [s.ark] });
    expect(refused).to.include({ code: 'BAD_CERTIFICATE' });
    expect(refused.message).to.include('gives its curve\'s parameters');
    expect(() => platformRootOf(platformRootEntity('amd-sev-snp', vcek, 'ARK'), 'rule 1')).to.throw(CertifierError).with.property('code', 'POLICY_INVALID');
  });

  it('refuses an anchor that is not a self-signed ARK (its name is its own, another key signed it)', () => {
    expect(customPathRefusal({ arkSigner: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey })).to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'root-self-signature' });
  });

  it('refuses a path through an RSA key shorter than 2048 bits, though PSS signatures by it verify', () => {
    expect(customPathRefusal({ arkBits: 1024 })).to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'signature' });
  });

  it('verifies a VLEK-signed report through VLEK -> ASVK -> ARK, without a chip id', () => {
    const vlekReport = s.report({ reportData: randomBytes(64), measurement: MEASUREMENT, signingKey: 'vlek' });
    const v = verifySnpReport({ report: vlekReport, certs: [s.vlek, s.asvk], at: NOW, roots: [s.ark] });
    expect(v.report.signingKey).to.equal('vlek');
    expect(v.chain.intermediate.name).to.equal('SEV-VLEK-TEST');
  });

  it('refuses a VCEK the ASVK signed, and a VLEK the ASK signed, with SNP_CHAIN_UNTRUSTED (wrong-intermediate): AMD\'s two paths do not cross', () => {
    const vcek = refusal({ report, certs: [s.crossSigned('vcek'), s.asvk], at: NOW, roots: [s.ark] });
    expect(vcek).to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'wrong-intermediate' });
    expect(vcek.message).to.contain('"SEV-VLEK-TEST", an ASVK, which signs VLEKs only: a VCEK must be signed by an ASK');
    const vlekReport = s.report({ reportData: randomBytes(64), measurement: MEASUREMENT, signingKey: 'vlek' });
    expect(refusal({ report: vlekReport, certs: [s.crossSigned('vlek'), s.ask], at: NOW, roots: [s.ark] })).to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'wrong-intermediate' });
  });

  it('refuses a certificate of the other kind than the report\'s SIGNING_KEY names with SNP_VCEK_MISMATCH', () => {
    const vlekReport = s.report({ reportData: randomBytes(64), measurement: MEASUREMENT, signingKey: 'vlek' });
    expect(refusal({ report: vlekReport, certs: [s.vcek, s.ask], at: NOW, roots: [s.ark] })).to.include({ code: 'SNP_VCEK_MISMATCH', reason: 'signing-key-kind' });
    expect(refusal({ report, certs: [s.vlek, s.asvk], at: NOW, roots: [s.ark] })).to.include({ code: 'SNP_VCEK_MISMATCH', reason: 'signing-key-kind' });
  });

  it('refuses evidence with no VCEK, or two, as malformed', () => {
    expect(refusal({ report, certs: [s.ask], at: NOW, roots: [s.ark] }).code).to.equal('EVIDENCE_MALFORMED');
    expect(refusal({ report, certs: [s.vcek, s.vcekFor(s.tcb), s.ask], at: NOW, roots: [s.ark] }).code).to.equal('EVIDENCE_MALFORMED');
  });

  it('accepts serial number 0 on this path only: the test VCEK has it, as AMD\'s do', () => {
    expect(readAmdCert(s.vcek, 'VCEK').serialHex).to.equal('00');
  });
});
