// Every decoder that reads bytes from outside, given mutations of real inputs: each must parse or
// throw a CertifierError with a stable code, never another exception. A few iterations each by
// default (a regression guard); FUZZ_ITERATIONS=N runs about N per target, weighted, and prints
// each target's count and slowest inputs (README "Development").

import { expect } from 'chai';
import { X509Certificate, constants, generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertifierError } from '../../lib/errors/index.ts';
import {
  parseCertTable, parseReport, pinnedArk, readAmdCert, readAmdCrl, reportDataFor, trustedCrls, verifyEvidence, verifySnpReport, verifyOptionsFor,
} from '../../lib/attest/index.ts';
import { formatCertifierTime, evaluate, loadPolicy, makePolicy } from '../../lib/policy/index.ts';
import {
  issueAdmissionCert, createPolicyCert, parseCertificate, readCertificate, readCertificateChain, validateAdmission, validatePolicyCert, toPem,
} from '../../lib/pki/index.ts';
import {
  fromKeyMessage, importPrivateKey, importPublicKey, publicKeyOf, sign, signatureAlgFor, toKeyMessage, exportPrivateKey, exportPublicKey, type SignatureAlg,
} from '../../lib/crypto/index.ts';
import {
  FrameDecoder, decode, encode, encodeFrame, parseClaim, parseCryptstoreBundle, parseCryptstoreEntry, parseCryptstoreMetadata, parseSignedClaimSequence,
  parseTrustRequest, parseTrustResponse, type ClaimMessage, type KeyMessage, type SignedClaimMessage, type SignedClaimSequence,
  type TrustRequestMessage,
} from '../../lib/wire/index.ts';
import { issueRoleCert, verifyRoleCredential } from '../../lib/keyservice/roles.ts';
import { challenge, describeRequest, encodeKeyRequest, failed, parseKeyRequest, parseKeyResponse, succeeded } from '../../lib/keyservice/protocol.ts';
import { deletedVersions, listAnswer } from '../../lib/keyclient/answers.ts';
import { parseAcl } from '../../lib/keyservice/acl.ts';
import { parseProvisionConfig } from '../../lib/keyclient/provision.ts';
import { AUDIT_GENESIS, checkLine, startOf } from '../../lib/keyservice/audit-line.ts';
import { scanEnd, verifyAudit, verifySegment } from '../../lib/keyservice/audit-read.ts';
import { decodeRecord, encodeRecord } from '../../lib/keyservice/level-records.ts';
import { children, encodeBitString, readOne, seq } from '../../lib/pki/der.ts';
import { signatureAlgorithmId } from '../../lib/pki/build.ts';
import { VECTORS, tempDir } from '../support/helpers.ts';
import { rechain } from '../support/audit-lines.ts';
import { TestSnpSigner } from '../sev-snp/signer.ts';
import { EXPECTED, NOW, snpRequest, vector } from '../sev-snp/support.ts';
import { cryptstoreSeeds, originalEvidence } from './fixtures.ts';
import { SLOW_MS, describeFault, fuzz, growth, type Target, type Timing } from './mutate.ts';
import { auditDirectoryTarget, bundleTargets } from './stateful.ts';

const file = (...p: string[]) => new Uint8Array(readFileSync(join(VECTORS, ...p)));
const text = (s: string) => new TextEncoder().encode(s);
const utf8 = (b: Uint8Array) => new TextDecoder().decode(b);

/** Iterations per unit of weight: FUZZ_ITERATIONS (with every cut of each seed too), or a few for npm test. */
const SCALE = Number(process.env.FUZZ_ITERATIONS ?? 0);
/** FUZZ_ONLY=text: only the targets whose name holds it. */
const ONLY = process.env.FUZZ_ONLY;
const iterationsFor = (t: Target) => Math.max(1, Math.round((SCALE || 12) * (t.weight ?? 1)));

function targets(): Target[] {
  const AT = new Date('2026-11-24T00:00:00Z');
  const original = (f: string) => file('certifier-original', f);
  const policyCertDatica = original('policy_cert_file.datica');
  const originalPolicyKey = new X509Certificate(policyCertDatica).publicKey;
  const originalPolicy = loadPolicy(original('policy.bin'), originalPolicyKey);

  // SEV-SNP: the real reports with their VCEKs, and the test signer's (re-signed after mutation).
  const real = Object.keys(EXPECTED.vectors).map((name) => ({ name, ...vector(name) }));
  const s = TestSnpSigner.create({ now: NOW });
  const machine = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const said = encode('attestation_user_data', { enclaveType: 'sev-enclave', time: formatCertifierTime(NOW), enclaveKey: toKeyMessage(machine.publicKey, 'auth-key') });
  const signed = s.report({ reportData: reportDataFor(said), measurement: new Uint8Array(48).fill(7) });
  const resigned = (b: Uint8Array) => (b.length >= 0x2e8 + 48 ? s.resign(b) : b);
  const nowOf = (e: { now?: string }) => new Date(e.now ?? EXPECTED.now);

  // PKI: the policy certificates and an admission certificate under one.
  const policyKey = importPrivateKey(file('pki', 'policy-p256.key.pem'));
  const subject = publicKeyOf(importPrivateKey(file('pki', 'subject-p256.key.pem')));
  const PKI_NOW = new Date('2026-12-01T00:00:00Z');
  const policyCert = CERTS.policyCert!;
  const admission = CERTS.admission!;
  const roleCert = CERTS.role!;

  const keys = [
    generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
    generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey,
    generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
  ];
  const keyMessages = keys.flatMap((k) => [toKeyMessage(k, 'k'), toKeyMessage(publicKeyOf(k), 'k')]).map((m) => encode('key_message', m));
  const keyFiles = [
    ...['policy-p256.key.pem', 'subject-p256.key.pem', 'subject-rsa2048.key.pem', 'explicit-p256.key.pem', 'explicit-p384.sec1.pem'].map((f) => file('pki', f)),
    ...keys.map((k) => exportPrivateKey(k, 'der')),
  ];
  const publicFiles = [file('pki', 'explicit-p256.pub.pem'), ...keys.map((k) => exportPublicKey(publicKeyOf(k), 'der')), ...keys.map((k) => exportPublicKey(publicKeyOf(k)))];

  const nonce = new Uint8Array(32).fill(9);
  const list = encode('key_service_list', { resources: [{ name: 'a', version: 1 }, { name: 'a', version: 2 }], deleted: 2 });
  const earlier = (...p: string[]) => file('earlier-versions', 'e380c14', ...p);
  const auditLines = utf8(earlier('ks-data', 'audit.jsonl')).split('\n').filter(Boolean);
  const record = encodeRecord({ name: 'vhd/disk', version: 3, type: 'binary-blob', exportable: true, timeEntered: '2026-12-01T00:00:00Z', size: 4, ciphertext: new Uint8Array(44) });

  const snpAmd = (p: string) => readCertificateChain(file('sev-snp', 'amd', p, 'cert_chain.pem'));
  const amdPem = ['milan', 'genoa', 'turin'].map((p) => file('sev-snp', 'amd', p, 'cert_chain.pem'));

  // The original trust request with one signed part replaced and signed again by its own key, so
  // that a mutation reaches what is read after the signature: the report, or the endorsement's clause.
  const { attestKey, platformKey, report: sr, endorsement, withAssertion } = originalEvidence();
  const endorsementClaim = decode<ClaimMessage>('claim_message', endorsement.serializedClaimMessage!);
  const resignedClaim = (clause: Uint8Array, key: KeyObject, signingKey: KeyMessage, w = endorsementClaim): SignedClaimMessage => {
    const claim = encode('claim_message', { ...w, serializedClaim: clause });
    return { serializedClaimMessage: claim, signingKey, signingAlgorithm: signatureAlgFor(key), signature: sign(key, claim) };
  };
  const decideOriginal = (m: TrustRequestMessage) => {
    const req = parseTrustRequest(encode('trust_request_message', m));
    evaluate(originalPolicy, verifyEvidence(req.support, verifyOptionsFor(originalPolicy, AT)), { at: AT, purpose: req.purpose, sessionless: true });
  };

  // A policy of every kind of claim, each signed again after its clause is mutated.
  const ownPolicyKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const ownPolicy = decode<SignedClaimSequence>('signed_claim_sequence', makePolicy({
    policyKey: ownPolicyKey, platforms: [{ key: publicKeyOf(platformKey) }], measurements: [new Uint8Array(32).fill(1), new Uint8Array(48).fill(7)],
    platformRoots: [{ platformType: 'amd-sev-snp', certificate: s.ark, name: 'ARK-TEST' }],
    platformProperties: [{ platformType: 'amd-sev-snp', requirements: [{ name: 'vmpl', comparator: '<=', value: 0 }, { name: 'debug', comparator: '=', value: 'no' }, { name: 'tcb-snp', comparator: '>=', value: 1 }] }],
    notBefore: new Date(NOW.getTime() - 86_400_000), notAfter: new Date(NOW.getTime() + 86_400_000),
  }));
  const ownClaims = ownPolicy.claims!;
  const ownWindow = decode<ClaimMessage>('claim_message', ownClaims[0]!.serializedClaimMessage!);
  const snpFacts = verifyEvidence(parseTrustRequest(snpRequest(signed, said, [s.vcek, s.ask])).support, { at: NOW, snpRoots: [s.ark] });

  // A certificate whose TBSCertificate is mutated and signed again by the policy key: what is read
  // after the signature (names, extensions, SANs, the admission extension, usages) is reached.
  const tbsOf = (der: Uint8Array) => new Uint8Array(children(readOne(der))[0]!.bytes);
  const policyAlg = signatureAlgorithmId(policyKey);
  const resignedCert = (tbs: Uint8Array) => seq(tbs, policyAlg, encodeBitString(sign(policyKey, tbs)));

  // The test signer's VCEK, its TBSCertificate mutated and signed again by its ASK (RSA-PSS), so
  // that AMD's extensions (TCB levels, hwID, product name) are read after the path verifies.
  const vcekParts = children(readOne(s.vcek));
  const pssAlg = new Uint8Array(vcekParts[1]!.bytes);
  const resignedVcekOf = (signer: TestSnpSigner) => {
    const askKey = (signer as unknown as { keys: { ask: KeyObject } }).keys.ask;
    return (tbs: Uint8Array) => seq(tbs, pssAlg, encodeBitString(new Uint8Array(nodeSign('sha384', tbs, { key: askKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }))));
  };
  const resignedVcek = resignedVcekOf(s);
  const tbsOfVcek = (der: Uint8Array) => new Uint8Array(children(readOne(der))[0]!.bytes);

  // A Turin-shaped test signer beside the Milan-shaped one, and the fields that choose a report's
  // TCB layout: its version, CPUID family, model and stepping (0x188..0x18a) and its four
  // TCB_VERSIONs. The input is a report to lay them in (its first byte picks one) and the fields;
  // a test signer's report is signed again, so that its VCEK's product and TCB are weighed.
  const t = TestSnpSigner.create({ now: NOW, product: 'turin' });
  const turinSigned = t.report({ reportData: reportDataFor(said), measurement: new Uint8Array(48).fill(7) });
  const realOf = (name: string) => real.find((v) => v.name === name)!.report;
  const layoutBases: { report: Uint8Array; signer?: TestSnpSigner }[] = [
    { report: signed, signer: s }, { report: s.report({ reportData: new Uint8Array(64), measurement: new Uint8Array(48), version: 2 }), signer: s },
    { report: turinSigned, signer: t }, { report: t.report({ reportData: new Uint8Array(64), measurement: new Uint8Array(48), version: 5 }), signer: t },
    { report: realOf('genoa-azure-trustee') }, { report: realOf('turin-oak') },
  ];
  const LAYOUT_FIELDS: [number, number][] = [[0x00, 4], [0x188, 3], [0x38, 8], [0x180, 8], [0x1e0, 8], [0x1f0, 8]];
  const layoutFields = (i: number) => Uint8Array.of(i, ...LAYOUT_FIELDS.flatMap(([at, n]) => [...layoutBases[i]!.report.subarray(at, at + n)]));
  const withLayoutFields = (b: Uint8Array) => {
    const base = layoutBases[(b[0] ?? 0) % layoutBases.length]!;
    const report = new Uint8Array(base.report);
    let from = 1;
    for (const [at, n] of LAYOUT_FIELDS) {
      report.set(b.subarray(from, from + n), at); // a short input leaves the rest as the base has it
      from += n;
    }
    return { report, signer: base.signer };
  };

  return [
    {
      name: 'VCEK re-signed by the test ASK (verifySnpReport)', weight: 2,
      seeds: [new Uint8Array(vcekParts[0]!.bytes), tbsOfVcek(s.shapedVcek(s.tcb, s.chipId, undefined, 'Genoa-B1'))],
      run: (b) => verifySnpReport({ report: signed, certs: [resignedVcek(b), s.ask], roots: [s.ark], at: NOW }),
    },
    {
      name: 'Turin VCEK re-signed by the Turin test ASK (verifySnpReport, certLayout)', weight: 2,
      seeds: [tbsOfVcek(t.vcek), tbsOfVcek(t.shapedVcek(t.tcb, t.chipId.subarray(0, 8), t.fmc, 'Turin-B0'))],
      run: (b) => verifySnpReport({ report: turinSigned, certs: [resignedVcekOf(t)(b), t.ask], roots: [t.ark], at: NOW }),
    },
    {
      name: 'SEV-SNP version, CPUID and TCB_VERSIONs (parseReport; verifySnpReport re-signed: Milan, Turin, and real Genoa and Turin)', weight: 3,
      seeds: layoutBases.map((_, i) => layoutFields(i)),
      run: (b) => {
        const { report, signer } = withLayoutFields(b);
        if (!signer) return parseReport(report);
        return verifySnpReport({ report: signer.resign(report), certs: [signer.vcek, signer.ask], roots: [signer.ark], at: NOW });
      },
    },
    {
      name: 'admission certificate re-signed by the policy key (validateAdmission)', weight: 3,
      seeds: [tbsOf(admission)],
      run: (b) => validateAdmission({ chain: [resignedCert(b)], policyCert, at: PKI_NOW, usage: 'client' }),
    },
    {
      name: 'role credential re-signed by the policy key (verifyRoleCredential)', weight: 1,
      seeds: [tbsOf(roleCert)],
      run: (b) => verifyRoleCredential([resignedCert(b)], policyCert, PKI_NOW),
    },
    {
      name: 'policy certificate re-signed by its own key (validatePolicyCert, then an admission under it)', weight: 2,
      seeds: [tbsOf(policyCert)],
      run: (b) => {
        const cert = resignedCert(b);
        validatePolicyCert(cert, PKI_NOW);
        validateAdmission({ chain: [admission], policyCert: cert, at: PKI_NOW });
      },
    },
    // simpleserver: the trust request, its evidence and the policy's decision.
    {
      name: 'simulated report re-signed by the attestation key -> verifyEvidence -> evaluate', weight: 2,
      seeds: [sr.report!],
      run: (b) => decideOriginal(withAssertion(1, encode('signed_report', { ...sr, report: b, signature: sign(attestKey, b, sr.signingAlgorithm as SignatureAlg) }))),
    },
    {
      name: 'simulated endorsement clause re-signed by the platform key -> verifyEvidence -> evaluate', weight: 1,
      seeds: [endorsementClaim.serializedClaim!],
      run: (b) => decideOriginal(withAssertion(0, encode('signed_claim_message', resignedClaim(b, platformKey, endorsement.signingKey!)))),
    },
    {
      name: 'policy clause re-signed by the policy key (loadPolicy, evaluate SEV-SNP facts)', weight: 2,
      seeds: ownClaims.map((c) => decode<ClaimMessage>('claim_message', c.serializedClaimMessage!).serializedClaim!),
      run: (b) => {
        const claims = [...ownClaims.slice(0, 2), resignedClaim(b, ownPolicyKey, ownClaims[0]!.signingKey!, ownWindow)];
        const policy = loadPolicy(encode('signed_claim_sequence', { claims }), publicKeyOf(ownPolicyKey));
        evaluate(policy, snpFacts, { at: NOW, purpose: 'authentication', sessionless: true });
      },
    },
    {
      name: 'trust request (simulated evidence) -> verifyEvidence -> evaluate', weight: 3,
      seeds: [original('treq.bin')],
      run: (b) => {
        const req = parseTrustRequest(b);
        evaluate(originalPolicy, verifyEvidence(req.support, verifyOptionsFor(originalPolicy, AT)), { at: AT, purpose: req.purpose, sessionless: true });
      },
    },
    {
      name: 'trust request (SEV-SNP evidence, test signer) -> verifyEvidence', weight: 1,
      seeds: [snpRequest(signed, said, [s.vcek, s.ask])],
      run: (b) => verifyEvidence(parseTrustRequest(b).support, { at: NOW, snpRoots: [s.ark] }),
    },
    { name: 'trust response', seeds: [original('tresp.bin')], run: parseTrustResponse },
    { name: 'SEV-SNP report (parseReport)', weight: 3, seeds: real.map((v) => v.report), run: parseReport },
    {
      name: 'SEV-SNP report re-signed (verifySnpReport, test signer)', weight: 2, everyCut: false,
      seeds: [signed, s.report({ reportData: new Uint8Array(64), measurement: new Uint8Array(48), version: 3 })],
      run: (b) => verifySnpReport({ report: resigned(b), certs: [s.vcek, s.ask], roots: [s.ark], at: NOW }),
    },
    {
      name: 'SEV-SNP real report against its VCEK (verifySnpReport)', weight: 1, everyCut: false,
      seeds: real.map((v) => v.report),
      run: (b) => {
        const v = real.find((x) => x.report.length === b.length) ?? real[0]!;
        verifySnpReport({ report: b, certs: [v.vcek], at: nowOf(v.e), roots: [pinnedArk(v.e.product)] });
      },
    },
    {
      name: 'SEV-SNP VCEK certificate (verifySnpReport)', weight: 2,
      seeds: real.map((v) => v.vcek),
      run: (b) => {
        const v = real.find((x) => x.vcek.length === b.length) ?? real[0]!;
        verifySnpReport({ report: v.report, certs: [b], at: nowOf(v.e), roots: [pinnedArk(v.e.product)] });
      },
    },
    { name: 'AMD certificate (readAmdCert)', weight: 2, seeds: [...real.map((v) => v.vcek), ...snpAmd('milan'), ...snpAmd('turin')], run: (b) => readAmdCert(b, 'fuzzed') },
    { name: 'SEV-SNP certificate table (parseCertTable)', weight: 2, everyCut: false, seeds: [s.certTable()], run: parseCertTable },
    {
      name: 'AMD CRL (readAmdCrl, trustedCrls)', weight: 2,
      seeds: [s.crl(), s.crl({ revoked: [2, 3, 7] }), text(toPem(s.crl()).replace(/CERTIFICATE/g, 'X509 CRL'))],
      run: (b) => { readAmdCrl(b, 'fuzzed'); trustedCrls([{ source: 'fuzzed', bytes: b }], [s.ark], NOW); },
    },
    // The policy and the certificates of the PKI.
    { name: 'signed policy (loadPolicy, certifier-original)', weight: 2, seeds: [original('policy.bin')], run: (b) => loadPolicy(b, originalPolicyKey) },
    {
      name: 'signed policy (loadPolicy, earlier version)', weight: 1, seeds: [earlier('policy.bin')],
      run: (b) => loadPolicy(b, new X509Certificate(earlier('policy-cert.pem')).publicKey),
    },
    { name: 'signed claim sequence, claim', seeds: [original('policy.bin'), original('signed_claim_1.bin')], run: (b) => { parseSignedClaimSequence(b); parseClaim(b); } },
    {
      name: 'certificate (parseCertificate, DER)', weight: 3,
      seeds: [readCertificate(policyCertDatica), policyCert, admission, ...snpAmd('milan'), ...real.map((v) => v.vcek), readCertificate(file('pki', 'explicit-p256.cert.pem'))],
      run: parseCertificate,
    },
    {
      name: 'certificate chain (readCertificateChain, PEM or DER)', weight: 2,
      seeds: [policyCertDatica, ...amdPem, earlier('policy-cert.pem'), text(toPem(admission) + toPem(policyCert))],
      run: (b) => readCertificateChain(b).forEach((c) => parseCertificate(c)),
    },
    { name: 'policy certificate (validatePolicyCert)', weight: 2, seeds: [policyCert, readCertificate(earlier('policy-cert.pem'))], run: (b) => validatePolicyCert(b, PKI_NOW) },
    { name: 'role credential (verifyRoleCredential)', weight: 2, seeds: [roleCert], run: (b) => verifyRoleCredential([b], policyCert, PKI_NOW) },
    { name: 'admission certificate (validateAdmission)', weight: 3, seeds: [admission], run: (b) => validateAdmission({ chain: [b], policyCert, at: PKI_NOW }) },
    // Keys.
    { name: 'key_message (fromKeyMessage)', weight: 2, seeds: keyMessages, run: (b) => fromKeyMessage(decode<KeyMessage>('key_message', b)) },
    { name: 'private key file (importPrivateKey)', weight: 2, seeds: keyFiles, run: importPrivateKey },
    { name: 'public key file (importPublicKey)', weight: 2, seeds: publicFiles, run: importPublicKey },
    // key-server and key-client.
    {
      name: 'key-service request (parseKeyRequest)', weight: 2,
      seeds: [
        encodeKeyRequest({ action: 'store', name: 'vhd/disk', data: new Uint8Array(8), version: 2 }),
        encodeKeyRequest({ action: 'retrieve', name: 'vhd/disk', version: 1 }),
        encodeKeyRequest({ action: 'delete', name: 'vhd/disk' }),
        encodeKeyRequest({ action: 'list', name: 'vhd/' }),
        encode('key_service_message_request', {
          requestType: 'retrieve', resourceName: 'vhd/disk', serializedCredentials: encode('cert_chain', { certCerts: [roleCert] }), challengeNonce: nonce, challengeSignature: new Uint8Array(64).fill(3),
        }),
      ],
      run: (b) => {
        describeRequest(b); // never throws
        parseKeyRequest(b);
      },
    },
    {
      name: 'key-service response and its list (parseKeyResponse, deletedVersions, listAnswer)', weight: 2,
      seeds: [succeeded('a', { data: list, version: 2 }), failed('a', 'NOT_RECORDED', 0, list), challenge('a', nonce), succeeded('a', { data: new Uint8Array(16) })],
      run: (b) => {
        const r = parseKeyResponse(b);
        if (r.data) {
          listAnswer(r.data, 1000, () => new CertifierError('BAD_FIELD', 'too many'));
          deletedVersions(r.name, r.data, r.version ?? 0);
        }
      },
    },
    {
      name: 'frames (FrameDecoder)', weight: 1,
      seeds: [encodeFrame(original('treq.bin')), new Uint8Array([...encodeFrame(new Uint8Array(3)), ...encodeFrame(new Uint8Array(0))])],
      run: (b) => {
        // In chunks of 1 to 8 bytes, as one-byte TLS records or a pipelined stream cut anywhere would come.
        const d = new FrameDecoder(4096);
        for (let i = 0, n = 1; i < b.length; i += n, n = (n % 8) + 1) d.push(b.subarray(i, i + n));
        d.end();
      },
    },
    {
      name: 'cryptstore entry, metadata and bundle', weight: 1,
      seeds: [
        ...cryptstoreSeeds(),
      ],
      run: (b) => {
        for (const p of [parseCryptstoreEntry, parseCryptstoreMetadata, parseCryptstoreBundle]) {
          try { p(b); } catch (e) { if (!(e instanceof CertifierError)) throw e; }
        }
      },
    },
    { name: 'key-server stored record (decodeRecord)', seeds: [record], run: (b) => decodeRecord('vhd/disk', 3, b) },
    // Text files: the ACL, the provisioning config, audit lines (mutated, then chained again).
    {
      name: 'ACL JSON (parseAcl)', weight: 1,
      seeds: [text(JSON.stringify({ version: 1, rules: [{ resources: ['vhd/*'], actions: ['retrieve'], measurements: ['ab'.repeat(32)] }, { resources: ['**'], actions: ['store', 'retrieve', 'delete', 'list'], roles: ['operator'], subjects: ['0a1b'], comment: 'c' }] }))],
      run: (b) => parseAcl(utf8(b)),
    },
    {
      name: 'provisioning config JSON (parseProvisionConfig)', weight: 1,
      seeds: [text(JSON.stringify({ secrets: [{ ID: 'vhd/disk-1', Tag: 'disk-1' }, { ID: 'vhd/disk-2', Version: 3, LocalPath: '/run/keys/disk-2', Mode: '0640' }] }))],
      run: (b) => parseProvisionConfig(utf8(b)),
    },
    {
      name: 'audit log file (verifyAudit, verifySegment, scanEnd)', weight: 0.5, everyCut: false,
      seeds: [earlier('ks-data', 'audit.jsonl'), text(rechain(auditLines.slice(0, 4)).join('\n') + '\n')],
      run: async (b) => {
        const path = join(AUDIT_DIR.dir, 'audit.jsonl');
        writeFileSync(path, b);
        await verifyAudit(path);
        await verifySegment(path);
        await scanEnd(path);
      },
    },
    {
      name: 'audit log line (checkLine, startOf; chained again)', weight: 1,
      seeds: auditLines.slice(0, 3).map(text),
      run: (b) => {
        const line = utf8(b);
        startOf(line);
        checkLine(line, 1, AUDIT_GENESIS);
        let again: string | undefined;
        try { again = rechain([line])[0]; } catch { /* not a JSON object: the line alone was read above */ }
        if (again !== undefined) checkLine(again, (JSON.parse(again) as { seq?: number }).seq ?? 1, AUDIT_GENESIS);
      },
    },
  ];

  void subject;
}

/** Where the audit log target writes its file, and the rotated log target its directory. */
const AUDIT_DIR = tempDir('fuzz-audit-');
const ROTATED_DIR = tempDir('fuzz-rotated-');
/** The 11 lines of e380c14's audit log, a chain from the genesis. */
const auditChain = () => readFileSync(join(VECTORS, 'earlier-versions', 'e380c14', 'ks-data', 'audit.jsonl'), 'utf8').split('\n').filter(Boolean);

/** The certificates made once before the targets (issuing is async). */
const CERTS: { policyCert?: Uint8Array; admission?: Uint8Array; role?: Uint8Array } = {};

describe('fuzz: every decoder of outside bytes parses or throws a CertifierError', function () {
  this.timeout(0);
  let all: Target[] = [];
  const slowest: Timing[] = [];

  before(async () => {
    const key = importPrivateKey(new Uint8Array(readFileSync(join(VECTORS, 'pki', 'policy-p256.key.pem'))));
    const now = new Date('2026-12-01T00:00:00Z');
    CERTS.policyCert = await createPolicyCert({ privateKey: key, domain: 'datica', now });
    CERTS.admission = await issueAdmissionCert({
      policyKey: key, policyCert: CERTS.policyCert, subjectPublicKey: publicKeyOf(importPrivateKey(new Uint8Array(readFileSync(join(VECTORS, 'pki', 'subject-p256.key.pem'))))),
      measurement: new Uint8Array(32).fill(1), platform: 'simulated-enclave', domain: 'datica', validitySeconds: 86_400, now, dnsNames: ['node1.datica.example'], ipAddresses: ['10.0.0.7'],
    });
    CERTS.role = await issueRoleCert({ policyKey: key, policyCert: CERTS.policyCert, subjectPublicKey: publicKeyOf(importPrivateKey(new Uint8Array(readFileSync(join(VECTORS, 'pki', 'subject-p256.key.pem'))))), role: 'operator', domain: 'datica', validitySeconds: 86_400, now });
    all = [...targets(), ...(await bundleTargets()), auditDirectoryTarget(ROTATED_DIR.dir, auditChain())].filter((t) => !ONLY || t.name.includes(ONLY));
  });

  after(() => {
    AUDIT_DIR.cleanup();
    ROTATED_DIR.cleanup();
    if (!SCALE) return;
    slowest.sort((a, b) => b.ms - a.ms);
    process.stderr.write(`slowest inputs:\n${slowest.slice(0, 15).map((t) => `  ${t.ms.toFixed(1)} ms  ${t.size} bytes  ${t.target} (${t.how})`).join('\n')}\n`);
    for (const t of slowest.filter((x) => x.ms > SLOW_MS)) process.stderr.write(`over ${SLOW_MS} ms: ${t.target}: ${Buffer.from(t.input).toString('hex')}\n`);
  });

  it('holds every seed to the rule as it is, and runs each target (fixed seeds)', async function () {
    let n = Number(process.env.FUZZ_SEED ?? 0x5eed);
    const faults: string[] = [];
    for (const t of all) {
      const t0 = performance.now();
      const r = await fuzz(t, iterationsFor(t), n++, SCALE > 0);
      slowest.push(...r.slowest);
      if (SCALE) process.stderr.write(`${t.name}: ${r.iterations} inputs, ${r.parsed} parsed, ${r.faults.length} faults, slowest ${r.slowest[0]?.ms.toFixed(1)} ms (${r.slowest[0]?.size} bytes), ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
      faults.push(...r.faults.map(describeFault).slice(0, 3));
    }
    expect(faults).to.deep.equal([]);
  });

  // A long run's report only: not defined in npm test, where it would show as skipped every time.
  if (SCALE) it('reports how the time of each target grows with a run repeated in its input (FUZZ_ITERATIONS only)', async function () {
    let n = 0x9e0;
    for (const t of all) {
      const g = await growth(t, n++);
      if (g) process.stderr.write(`growth ${g.ratio.toFixed(2)}  ${t.name} (${g.how}): ${g.sizes.map((size, i) => `${size} B ${g.ms[i]!.toFixed(1)} ms`).join(', ')}\n`);
    }
  });
});
