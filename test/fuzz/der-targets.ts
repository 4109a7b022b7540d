// The certificates and CRLs read at the trust boundary, for the structural fuzzer: each signed
// part (a TBSCertificate, a TBSCertList) mutated by its DER and signed again by its issuer's key,
// so that what is read after the signature (names, extensions, AMD's TCB and hwID, usages, the
// admission extension, revoked serials) is reached; and the unsigned readers of whole files.

import { constants, sign as nodeSign, type KeyObject } from 'node:crypto';
import { readAmdCert, readAmdCrl, trustedCrls, verifySnpReport } from '../../lib/attest/index.ts';
import { parseCertificate, readCertificateChain, validateAdmission, validatePolicyCert } from '../../lib/pki/index.ts';
import { sign } from '../../lib/crypto/index.ts';
import { verifyRoleCredential } from '../../lib/keyservice/roles.ts';
import { children, encodeBitString, readOne, seq } from '../../lib/pki/der.ts';
import { signatureAlgorithmId } from '../../lib/pki/build.ts';
import { TestSnpSigner } from '../sev-snp/signer.ts';
import { NOW } from '../sev-snp/support.ts';
import type { BoundaryTarget } from './boundary-targets.ts';
import { testPki, vectorFile } from './fixtures.ts';

/** The first element of a signed structure (its TBS part), and its signature algorithm. */
const parts = (der: Uint8Array) => children(readOne(der)).map((c) => new Uint8Array(c.bytes));

export async function derTargets(): Promise<BoundaryTarget[]> {
  const { policyKey, now: PKI_NOW, policyCert, admission, role } = await testPki();
  const policyAlg = signatureAlgorithmId(policyKey);
  const byPolicyKey = (tbs: Uint8Array) => seq(tbs, policyAlg, encodeBitString(sign(policyKey, tbs)));

  // AMD's side: the test signers' VCEKs and CRLs, signed again with RSA-PSS by their ASK and ARK.
  const milan = TestSnpSigner.create({ now: NOW });
  const turin = TestSnpSigner.create({ now: NOW, product: 'turin' });
  const keysOf = (s: TestSnpSigner) => (s as unknown as { keys: { ark: KeyObject; ask: KeyObject } }).keys;
  const byPss = (key: KeyObject, alg: Uint8Array) => (tbs: Uint8Array) => seq(tbs, alg, encodeBitString(new Uint8Array(nodeSign('sha384', tbs, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }))));
  const vcekTarget = (name: string, s: TestSnpSigner, seeds: Uint8Array[]): BoundaryTarget => {
    const resign = byPss(keysOf(s).ask, parts(s.vcek)[1]!);
    const report = s.report({ reportData: new Uint8Array(64), measurement: new Uint8Array(48).fill(7) });
    return { name, weight: 0.5, kind: 'der', seeds: seeds.map((c) => parts(c)[0]!), run: (b) => verifySnpReport({ report, certs: [resign(b), s.ask], roots: [s.ark], at: NOW }) };
  };
  const crl = milan.crl({ revoked: [2, 3, 7] });
  const crlByArk = byPss(keysOf(milan).ark, parts(crl)[1]!);
  const amd = ['milan', 'genoa', 'turin'].flatMap((p) => readCertificateChain(vectorFile('sev-snp', 'amd', p, 'cert_chain.pem')));

  return [
    {
      name: 'admission certificate, signed again by the policy key (validateAdmission)', weight: 3, kind: 'der',
      seeds: [parts(admission)[0]!],
      run: (b) => validateAdmission({ chain: [byPolicyKey(b)], policyCert, at: PKI_NOW, usage: 'client' }),
    },
    { name: 'role credential, signed again by the policy key (verifyRoleCredential)', weight: 2, kind: 'der', seeds: [parts(role)[0]!], run: (b) => verifyRoleCredential([byPolicyKey(b)], policyCert, PKI_NOW) },
    {
      name: 'policy certificate, signed again by its key (validatePolicyCert, then an admission under it)', weight: 2, kind: 'der',
      seeds: [parts(policyCert)[0]!],
      run: (b) => {
        const cert = byPolicyKey(b);
        validatePolicyCert(cert, PKI_NOW);
        validateAdmission({ chain: [admission], policyCert: cert, at: PKI_NOW });
      },
    },
    vcekTarget('Milan VCEK, signed again by the test ASK (verifySnpReport)', milan, [milan.vcek, milan.shapedVcek(milan.tcb, milan.chipId, undefined, 'Genoa-B1')]),
    vcekTarget('Turin VCEK, signed again by the Turin test ASK (verifySnpReport)', turin, [turin.vcek]),
    {
      name: 'AMD CRL, signed again by the test ARK (readAmdCrl, trustedCrls)', weight: 0.5, kind: 'der',
      seeds: [parts(crl)[0]!],
      run: (b) => {
        const bytes = crlByArk(b);
        readAmdCrl(bytes, 'fuzzed');
        trustedCrls([{ source: 'fuzzed', bytes }], [milan.ark], NOW);
      },
    },
    { name: 'certificate (parseCertificate, readAmdCert)', weight: 3, kind: 'der', seeds: [admission, policyCert, ...amd], run: (b) => { parseCertificate(b); readAmdCert(b, 'fuzzed'); } },
  ];
}
