// AMD's revocation lists, with the test signer's ARK signing them: read strictly, verified against
// the trusted roots only, current at the time given, and consulted for the intermediate of every
// path that ends at their root.

import { expect } from 'chai';
import { randomBytes } from '../../lib/crypto/index.ts';
import { toPem } from '../../lib/pki/index.ts';
import { AMD_EXT, pinnedArk, readAmdCrl, verifiedBefore, trustedCrls, verifySnpReport, type VerifiedAmdCrl } from '../../lib/attest/index.ts';
import { CertifierError } from '../../lib/errors/index.ts';
import { TestSnpSigner } from './signer.ts';
import { NOW, refusalOf } from './support.ts';

const DAY = 86_400_000;

/** The refusal `f` throws, with what it says verified before it (explain's proof). */
function refusalWithSteps(f: () => unknown): ReturnType<typeof refusalOf> & { verified: string[] } {
  try {
    f();
  } catch (e) {
    if (e instanceof CertifierError) return { ...refusalOf(() => { throw e; }), verified: verifiedBefore(e) };
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('SEV-SNP revocation lists (test signer)', () => {
  let s: TestSnpSigner;
  let report: Uint8Array;
  let vlekReport: Uint8Array;
  const lists = (crls: Uint8Array[], at = NOW) => trustedCrls(crls.map((bytes, i) => ({ source: `crl${i + 1}`, bytes })), [s.ark, pinnedArk('milan')], at);
  const verify = (crls: VerifiedAmdCrl[], o: { at?: Date; vlek?: boolean } = {}) => verifySnpReport({
    report: o.vlek ? vlekReport : report, certs: [o.vlek ? s.vlek : s.vcek, o.vlek ? s.asvk : s.ask], roots: [s.ark], at: o.at ?? NOW, crls,
  });

  before(() => {
    s = TestSnpSigner.create({ now: NOW });
    report = s.report({ reportData: randomBytes(64), measurement: randomBytes(48) });
    vlekReport = s.report({ reportData: randomBytes(64), measurement: randomBytes(48), signingKey: 'vlek' });
  });

  it('passes a path whose intermediate is not on the list, and says so', () => {
    const v = verify(lists([s.crl({ revoked: [7, 9] })]));
    expect(v.revocation).to.match(/^SEV-TEST is not on ARK-TEST's CRL of .*\(2 revoked\)$/);
  });

  it('refuses a revoked ASK, and a revoked ASVK on the VLEK path, with SNP_CHAIN_UNTRUSTED (revoked)', () => {
    const r = refusalOf(() => verify(lists([s.crl({ revoked: [2] })])));
    expect([r.code, r.reason]).to.deep.equal(['SNP_CHAIN_UNTRUSTED', 'revoked']);
    expect(r.message).to.include('SEV-TEST certificate (serial 02) is revoked');
    const v = refusalOf(() => verify(lists([s.crl({ revoked: [3] })]), { vlek: true }));
    expect([v.code, v.reason]).to.deep.equal(['SNP_CHAIN_UNTRUSTED', 'revoked']);
    expect(verify(lists([s.crl({ revoked: [3] })])).revocation).to.include('not on'); // the VCEK path's ASK is fine
  });

  it('refuses a VCEK under a revoked ASK as revoked whatever else is wrong with it (no TCB extension, no hwID, expired), naming the path it found (details.verified)', () => {
    const revoked = lists([s.crl({ revoked: [2] })]);
    const lacking = [[AMD_EXT.blSpl], [AMD_EXT.ucodeSpl], [AMD_EXT.hwId], [AMD_EXT.productName, AMD_EXT.snpSpl]].map((oids) => s.vcekLacking(oids));
    for (const vcek of [...lacking, s.vcekLacking([], { notAfter: new Date(NOW.getTime() - DAY) })]) {
      const r = refusalWithSteps(() => verifySnpReport({ report, certs: [vcek, s.ask], roots: [s.ark], at: NOW, crls: revoked }));
      expect([r.code, r.reason]).to.deep.equal(['SNP_CHAIN_UNTRUSTED', 'revoked']);
      expect(r.verified).to.have.length(1);
      expect(r.verified[0]).to.match(/^ARK-TEST key:\w+ signed SEV-TEST, which signed the VCEK for (Milan-TEST|its product)\b.*\(RSA-PSS SHA-384 signatures verified\)$/);
    }
    // Without the list, each is refused for what is wrong with it.
    expect(refusalOf(() => verifySnpReport({ report, certs: [lacking[0]!, s.ask], roots: [s.ark], at: NOW })).code).to.equal('BAD_CERTIFICATE');
  });

  it('refuses a revoked ASK as revoked by a list gone stale since it was loaded too: a revocation does not lapse, and the rest of that root\'s machines are refused SNP_CRL_STALE', () => {
    const later = new Date(NOW.getTime() + 8 * DAY);
    const stale = lists([s.crl({ revoked: [2] })]);
    expect(refusalOf(() => verify(stale, { at: later }))).to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'revoked' });
    expect(refusalOf(() => verify(stale, { at: later, vlek: true }))).to.include({ code: 'SNP_CRL_STALE', reason: 'crl-stale' });
  });

  it('judges each path by the list of its own root when lists for two roots are in force', () => {
    const other = TestSnpSigner.create({ now: NOW }); // a second root (as Milan's and Genoa's), here even under the same name
    const otherReport = other.report({ reportData: randomBytes(64), measurement: randomBytes(48) });
    const own = { source: 'ark.crl', bytes: s.crl() };
    const others = { source: 'other.crl', bytes: other.crl({ revoked: [2] }) }; // the other root's ASK
    for (const order of [[own, others], [others, own]]) {
      const crls = trustedCrls(order, [s.ark, other.ark], NOW);
      expect(verify(crls).revocation).to.include('(0 revoked)');
      const r = refusalOf(() => verifySnpReport({ report: otherReport, certs: [other.vcek, other.ask], roots: [s.ark, other.ark], at: NOW, crls }));
      expect([r.code, r.reason]).to.deep.equal(['SNP_CHAIN_UNTRUSTED', 'revoked']);
    }
  });

  it('checks nothing without a list for the path\'s root, as before', () => {
    expect(verify([]).revocation).to.equal(undefined);
  });

  it('reads PEM as well as DER', () => {
    const pem = new TextEncoder().encode(toPem(s.crl({ revoked: [2] })).replace(/CERTIFICATE/g, 'X509 CRL'));
    expect(refusalOf(() => verify(lists([pem]))).reason).to.equal('revoked');
  });

  it('refuses a list past its next update, or dated ahead of the clock: at load, and when it goes stale while in use (SNP_CRL_STALE)', () => {
    const stale = s.crl({ nextUpdate: new Date(NOW.getTime() - 1000) });
    expect(refusalOf(() => lists([stale])).code).to.equal('SNP_CRL_STALE');
    const ahead = s.crl({ thisUpdate: new Date(NOW.getTime() + DAY) });
    expect(refusalOf(() => lists([ahead])).code).to.equal('SNP_CRL_STALE');
    // Minutes ahead is a clock a little off, tolerated as for certificates.
    expect(lists([s.crl({ thisUpdate: new Date(NOW.getTime() + 60_000) })])).to.have.length(1);
    const current = lists([s.crl({ nextUpdate: new Date(NOW.getTime() + DAY) })]);
    const later = refusalOf(() => verify(current, { at: new Date(NOW.getTime() + 2 * DAY) }));
    expect(later.code).to.equal('SNP_CRL_STALE');
    expect(later.message).to.include('fetch a fresh one');
  });

  it('refuses a list no trusted root signed: another key under the ARK\'s name, or another issuer', () => {
    const forged = refusalOf(() => lists([s.crl({ signer: 'ask' })]));
    expect(forged.code).to.equal('INVALID_INPUT');
    expect(forged.message).to.include('not signed by an AMD root the policy trusts');
    expect(refusalOf(() => lists([s.crl({ signer: 'ask', issuer: 'SEV-TEST' })])).code).to.equal('INVALID_INPUT');
    const tampered = s.crl({ revoked: [2] });
    tampered[tampered.length - 1]! ^= 1;
    expect(refusalOf(() => lists([tampered])).code).to.equal('INVALID_INPUT');
  });

  it('refuses two lists for one root, a critical extension it does not process, and bytes that are not a CRL', () => {
    expect(refusalOf(() => lists([s.crl(), s.crl({ revoked: [2] })])).message).to.include('second CRL for ARK-TEST');
    expect(refusalOf(() => lists([s.crl({ criticalExtension: true })])).message).to.include('critical extension 2.5.29.20');
    expect(refusalOf(() => readAmdCrl(s.ark, 'ark.pem')).code).to.equal('INVALID_INPUT');
    expect(refusalOf(() => readAmdCrl(s.ark, 'ark.pem')).message).to.include('ark.pem is an X.509 certificate, not a CRL').and.include('/vcek/v1/{Milan|Genoa|Turin}/crl');
    expect(refusalOf(() => readAmdCrl(new TextEncoder().encode('hello'), 'junk')).message).to.include('junk is not a CRL (neither DER nor a PEM "X509 CRL" block)');
    const crl = s.crl();
    expect(refusalOf(() => readAmdCrl(crl.subarray(0, crl.length - 3), 'cut')).code).to.equal('INVALID_INPUT');
  });
});
