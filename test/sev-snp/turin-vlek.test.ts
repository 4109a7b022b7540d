// The VLEK path on Turin (ARK -> ASVK -> VLEK), which no real report here exercises: a chain of
// the test's own keys named as AMD names Turin's (ARK-Turin, ASK SEV-Turin, ASVK SEV-VLEK-Turin),
// the VLEK carrying AMD's extensions (productName Turin, the SPLs with fmcSPL, a CSP id, no hwID),
// its root trusted as a test root. A good VLEK chain is admitted; a VLEK under the ASK and a VCEK
// under the ASVK are refused as the README says (SNP_CHAIN_UNTRUSTED, reason wrong-intermediate).

import { expect } from 'chai';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { generateKeyPair, publicKeyOf, randomBytes, toKeyMessage } from '../../lib/crypto/index.ts';
import { encode } from '../../lib/wire/index.ts';
import { encodeIa5 } from '../../lib/pki/der.ts';
import { basicConstraints, keyUsage } from '../../lib/pki/build.ts';
import { evaluate, formatCertifierTime, loadPolicy, makePolicy, SEV_SNP_PLATFORM, type Requirement } from '../../lib/policy/index.ts';
import { AMD_EXT, reportDataFor, verifyEvidence, verifySnpReport } from '../../lib/attest/index.ts';
import { amdExtensions, pssCertificate, signReport, TestSnpSigner } from './signer.ts';
import { NOW, refusalOf, snpSupport } from './support.ts';

const DAY = 86_400_000;
const MEASUREMENT = randomBytes(48);
const TCB = { bootloader: 1, tee: 0, snp: 2, microcode: 71 };
const FMC = 0;

describe('SEV-SNP on Turin: the VLEK path (ARK-Turin -> SEV-VLEK-Turin -> VLEK), on a chain of the test\'s own keys', () => {
  const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const p384 = () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
  const keys = { ark: rsa(), ask: rsa(), asvk: rsa(), vlek: p384(), vcek: p384() };
  const ca = [basicConstraints(true), keyUsage(['keyCertSign', 'cRLSign'])];
  const cert = (subject: string, issuer: string, key: KeyObject, signer: KeyObject, extensions = ca, serial = 0) => pssCertificate({ subject, issuer, key, signer, extensions, serial }, NOW);
  const ark = cert('ARK-Turin', 'ARK-Turin', keys.ark, keys.ark, ca, 1);
  const ask = cert('SEV-Turin', 'ARK-Turin', keys.ask, keys.ark, ca, 2);
  const asvk = cert('SEV-VLEK-Turin', 'ARK-Turin', keys.asvk, keys.ark, ca, 3);
  // A VLEK is a cloud provider's, not a chip's: no hwID; AMD's names the provider (cspId).
  const vlekExtensions = [...amdExtensions(TCB, undefined, FMC, 'Turin'), { oid: AMD_EXT.cspId, critical: false, value: encodeIa5('TEST-CSP') }];
  const vlek = cert('SEV-VLEK', 'SEV-VLEK-Turin', keys.vlek, keys.asvk, vlekExtensions);
  // The same key kinds under the intermediate of the other path.
  const vlekUnderAsk = cert('SEV-VLEK', 'SEV-Turin', keys.vlek, keys.ask, vlekExtensions);
  const chipId = Uint8Array.from([...randomBytes(8), ...new Uint8Array(56)]);
  const vcekUnderAsvk = cert('SEV-VCEK', 'SEV-VLEK-Turin', keys.vcek, keys.asvk, amdExtensions(TCB, chipId.subarray(0, 8), FMC, 'Turin'));
  // A Turin-shaped signer lays the report out (family 1Ah, Turin's TCBs); the keys made here sign it.
  const shaper = TestSnpSigner.create({ now: NOW, product: 'turin', tcb: TCB, fmc: FMC });
  const report = (kind: 'vcek' | 'vlek', reportData = randomBytes(64)) =>
    signReport(shaper.report({ reportData, measurement: MEASUREMENT, version: 5, signingKey: kind, ...(kind === 'vcek' ? { chipId } : {}) }), keys[kind]);
  /** verifySnpReport under ARK-Turin made here, or (`pinned`) AMD's pinned roots alone. */
  const verify = (r: Uint8Array, certs: Uint8Array[], roots: 'test' | 'pinned' = 'test') => () => verifySnpReport({ report: r, certs, at: NOW, ...(roots === 'test' ? { roots: [ark] } : {}) });

  it('verifies a VLEK-signed Turin report through VLEK -> ASVK -> ARK-Turin, the root trusted as a test root', () => {
    const v = verify(report('vlek'), [vlek, asvk])();
    expect(v.report.signingKey).to.equal('vlek');
    expect(v.report.tcbLayout).to.equal('turin');
    expect(v.report.reportedTcb).to.include({ fmc: FMC, ...TCB });
    expect([v.chain.leaf.name, v.chain.intermediate.name, v.chain.root.name]).to.deep.equal(['SEV-VLEK', 'SEV-VLEK-Turin', 'ARK-Turin']);
    expect(v.product, 'not AMD\'s pinned ARK-Turin').to.equal(undefined);
  });

  it('admits the VLEK-signed machine under a policy trusting that root with a Turin claim, one requiring signing-key = vlek too', async () => {
    const machine = await generateKeyPair('p256');
    const said = encode('attestation_user_data', { enclaveType: 'sev-enclave', time: formatCertifierTime(NOW), enclaveKey: toKeyMessage(publicKeyOf(machine.privateKey), 'auth-key') });
    const turinClaim: Requirement[] = [['tcb-fmc', FMC], ['tcb-bootloader', TCB.bootloader], ['tcb-tee', TCB.tee], ['tcb-snp', TCB.snp], ['tcb-microcode', TCB.microcode]]
      .map(([name, value]) => ({ name: name as string, comparator: '>=', value: value as number }));
    const decide = async (requirements: Requirement[]) => {
      const policyKey = await generateKeyPair('p256');
      const policy = loadPolicy(makePolicy({
        policyKey: policyKey.privateKey, platforms: [], measurements: [MEASUREMENT],
        platformRoots: [{ platformType: SEV_SNP_PLATFORM, certificate: ark, name: 'ARK-Turin' }],
        platformProperties: [{ platformType: SEV_SNP_PLATFORM, requirements }],
        notBefore: new Date(NOW.getTime() - DAY), notAfter: new Date(NOW.getTime() + DAY),
      }), policyKey.publicKey);
      const facts = verifyEvidence(snpSupport(report('vlek', reportDataFor(said)), said, [vlek, asvk]), { at: NOW, snpRoots: [ark] });
      return evaluate(policy, facts, { at: NOW, purpose: 'authentication' });
    };
    expect(await decide(turinClaim)).to.include({ allow: true });
    expect(await decide([...turinClaim, { name: 'signing-key', comparator: '=', value: 'vlek' }])).to.include({ allow: true });
    expect(await decide([...turinClaim, { name: 'signing-key', comparator: '=', value: 'vcek' }])).to.include({ allow: false, code: 'PLATFORM_PROPERTY_DENIED' });
  });

  it('refuses the VLEK chain when its root is not an anchor: AMD\'s pinned roots alone (SNP_CHAIN_UNTRUSTED)', () => {
    expect(refusalOf(verify(report('vlek'), [vlek, asvk], 'pinned'))).to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'no-issuer' });
  });

  it('refuses a VLEK signed by the ASK (SNP_CHAIN_UNTRUSTED, wrong-intermediate), whether or not the ASVK is sent too', () => {
    for (const certs of [[vlekUnderAsk, ask], [vlekUnderAsk, ask, asvk]]) {
      const r = refusalOf(verify(report('vlek'), certs));
      expect(r).to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'wrong-intermediate' });
      expect(r.message).to.equal('the VLEK certificate is signed by "SEV-Turin", an ASK, which signs VCEKs only: a VLEK must be signed by an ASVK (ARK -> ASVK -> VLEK) (wrong-intermediate)');
    }
  });

  it('refuses a VCEK signed by the ASVK (SNP_CHAIN_UNTRUSTED, wrong-intermediate), whether or not the ASK is sent too', () => {
    for (const certs of [[vcekUnderAsvk, asvk], [vcekUnderAsvk, asvk, ask]]) {
      const r = refusalOf(verify(report('vcek'), certs));
      expect(r).to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'wrong-intermediate' });
      expect(r.message).to.equal('the VCEK certificate is signed by "SEV-VLEK-Turin", an ASVK, which signs VLEKs only: a VCEK must be signed by an ASK (ARK -> ASK -> VCEK) (wrong-intermediate)');
    }
  });

  it('refuses a VCEK-signed report sent with the VLEK, and the other way round (SNP_VCEK_MISMATCH, signing-key-kind)', () => {
    expect(refusalOf(verify(report('vcek'), [vlek, asvk]))).to.include({ code: 'SNP_VCEK_MISMATCH', reason: 'signing-key-kind' });
    expect(refusalOf(verify(report('vlek'), [vcekUnderAsvk, asvk]))).to.include({ code: 'SNP_VCEK_MISMATCH', reason: 'signing-key-kind' });
  });
});
