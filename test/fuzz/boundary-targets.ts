// The protobuf messages that come from outside, each read the way the program that receives it
// reads it (decode, validate, then verify and decide), for the structural fuzzer. A signed message
// is mutated inside its signature and signed again by its own key, so that what is read after the
// signature is reached.

import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { CertifierError } from '../../lib/errors/index.ts';
import { reportDataFor, verifyEvidence, verifyOptionsFor } from '../../lib/attest/index.ts';
import { evaluate, formatCertifierTime, loadPolicy, makePolicy } from '../../lib/policy/index.ts';
import { fromKeyMessage, publicKeyOf, sign, signatureAlgFor, toKeyMessage, type SignatureAlg } from '../../lib/crypto/index.ts';
import {
  decode, encode, parseCryptstoreBundle, parseCryptstoreEntry, parseCryptstoreMetadata, parseTrustRequest, parseTrustResponse, type KeyMessage,
  type SignedClaimMessage, type SignedClaimSequence,
} from '../../lib/wire/index.ts';
import { verifyRoleCredential } from '../../lib/keyservice/roles.ts';
import { challenge, describeRequest, encodeKeyRequest, failed, LIST_PAGE, parseKeyRequest, parseKeyResponse, succeeded } from '../../lib/keyservice/protocol.ts';
import { deletedVersions, listAnswer } from '../../lib/keyclient/answers.ts';
import { pageItems, tooManyNames } from '../../lib/keyclient/list-page.ts';
import { decodeRecord, encodeRecord } from '../../lib/keyservice/level-records.ts';
import { TestSnpSigner } from '../sev-snp/signer.ts';
import { NOW, snpRequest } from '../sev-snp/support.ts';
import { cryptstoreSeeds, originalEvidence, testPki, vectorFile } from './fixtures.ts';

/** A decoder as a program calls it: returns, or throws a CertifierError. */
export interface BoundaryTarget {
  name: string;
  seeds: Uint8Array[];
  run: (input: Uint8Array) => unknown;
  /** Share of the iterations (1: ITERATIONS of them), by what a call costs and how much there is to reach. */
  weight: number;
  /** How the seeds are read for structural mutation: protobuf (the default), DER or JSON. */
  kind?: 'proto' | 'der' | 'json';
}

export async function boundaryTargets(): Promise<BoundaryTarget[]> {
  const original = (f: string) => vectorFile('certifier-original', f);
  // simpleserver: the original trust request, its endorsement and its report signed again after a change.
  const { AT, policyKey: originalPolicyKey, policy: originalPolicy, attestKey, platformKey, report: sr, endorsement, withAssertion } = originalEvidence();
  const signedClaim = (claim: Uint8Array, key: KeyObject, signingKey: KeyMessage): SignedClaimMessage => ({
    serializedClaimMessage: claim, signingKey, signingAlgorithm: signatureAlgFor(key), signature: sign(key, claim),
  });
  const decideOriginal = (bytes: Uint8Array) => {
    const req = parseTrustRequest(bytes);
    evaluate(originalPolicy, verifyEvidence(req.support, verifyOptionsFor(originalPolicy, AT)), { at: AT, purpose: req.purpose, sessionless: true });
  };

  // SEV-SNP evidence from the test signer: the user data is bound by REPORT_DATA, so a changed one
  // is reported again (signed by the signer's VCEK).
  const s = TestSnpSigner.create({ now: NOW });
  const machine = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const said = encode('attestation_user_data', { enclaveType: 'sev-enclave', time: formatCertifierTime(NOW), enclaveKey: toKeyMessage(machine.publicKey, 'auth-key') });
  const measurement = new Uint8Array(48).fill(7);
  const signed = s.report({ reportData: reportDataFor(said), measurement });

  // A policy of every kind of claim, from a key of its own, each claim signed again after a change.
  const ownPolicyKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const ownPolicyBytes = makePolicy({
    policyKey: ownPolicyKey, platforms: [{ key: publicKeyOf(platformKey) }], measurements: [new Uint8Array(32).fill(1), measurement],
    platformRoots: [{ platformType: 'amd-sev-snp', certificate: s.ark, name: 'ARK-TEST' }],
    platformProperties: [{ platformType: 'amd-sev-snp', requirements: [{ name: 'vmpl', comparator: '<=', value: 0 }, { name: 'debug', comparator: '=', value: 'no' }, ...['tcb-bootloader', 'tcb-tee', 'tcb-snp', 'tcb-microcode'].map((name) => ({ name, comparator: '>=' as const, value: 0 }))] }],
    notBefore: new Date(NOW.getTime() - 86_400_000), notAfter: new Date(NOW.getTime() + 86_400_000),
  });
  const ownClaims = decode<SignedClaimSequence>('signed_claim_sequence', ownPolicyBytes).claims!;
  const snpFacts = verifyEvidence(parseTrustRequest(snpRequest(signed, said, [s.vcek, s.ask])).support, { at: NOW, snpRoots: [s.ark] });

  // key-server and key-client: requests with a role credential, answers with a listing.
  const { now: PKI_NOW, policyCert, admission, role: roleCert } = await testPki();
  const nonce = new Uint8Array(32).fill(9);
  const resource = (name: string, version: number) => ({ resourceName: name, version, valueType: 'binary-blob', timeEntered: '2026-12-01T00:00:00Z', exportable: true, size: 4 });
  const list = encode('key_service_list', { resources: [resource('vhd/a', 1), resource('vhd/b', 2)], nextAfter: 'vhd/b' });
  const deleted = encode('key_service_list', { resources: [{ version: 1 }, { version: 2 }], deleted: 2 });

  const keys = [
    generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey,
    generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
  ];

  return [
    {
      name: 'trust request, simulated evidence (parseTrustRequest, verifyEvidence, evaluate)', weight: 1,
      seeds: [original('treq.bin')],
      run: decideOriginal,
    },
    {
      name: 'trust request, SEV-SNP evidence of the test signer (parseTrustRequest, verifyEvidence)', weight: 0.5,
      seeds: [snpRequest(signed, said, [s.vcek, s.ask])],
      run: (b) => verifyEvidence(parseTrustRequest(b).support, { at: NOW, snpRoots: [s.ark] }),
    },
    {
      name: 'SEV-SNP attestation_user_data, reported again (verifyEvidence)', weight: 0.1,
      seeds: [said],
      run: (b) => verifyEvidence(parseTrustRequest(snpRequest(s.report({ reportData: reportDataFor(b), measurement }), b, [s.vcek, s.ask])).support, { at: NOW, snpRoots: [s.ark] }),
    },
    {
      name: 'endorsement claim_message, signed again by the platform key (verifyEvidence, evaluate)', weight: 1,
      seeds: [endorsement.serializedClaimMessage!],
      run: (b) => decideOriginal(encode('trust_request_message', withAssertion(0, encode('signed_claim_message', signedClaim(b, platformKey, endorsement.signingKey!))))),
    },
    {
      name: 'simulated report, signed again by the attestation key (verifyEvidence, evaluate)', weight: 0.3,
      seeds: [sr.report!],
      run: (b) => decideOriginal(encode('trust_request_message', withAssertion(1, encode('signed_report', { ...sr, report: b, signature: sign(attestKey, b, sr.signingAlgorithm as SignatureAlg) })))),
    },
    { name: 'trust response (parseTrustResponse)', weight: 3, seeds: [original('tresp.bin')], run: parseTrustResponse },
    {
      name: 'signed policy (loadPolicy)', weight: 0.15,
      seeds: [original('policy.bin'), ownPolicyBytes],
      run: (b) => [originalPolicyKey, publicKeyOf(ownPolicyKey)].map((k) => attempt(() => loadPolicy(b, k))),
    },
    ...ownClaims.map((c, i) => ({
      name: `policy claim ${i + 1} of ${ownClaims.length}, signed again by the policy key (loadPolicy, evaluate SEV-SNP facts)`, weight: 0.5 / ownClaims.length,
      seeds: [c.serializedClaimMessage!],
      run: (b: Uint8Array) => {
        const claims = ownClaims.map((o, n) => (n === i ? signedClaim(b, ownPolicyKey, o.signingKey!) : o));
        const policy = loadPolicy(encode('signed_claim_sequence', { claims }), publicKeyOf(ownPolicyKey));
        evaluate(policy, snpFacts, { at: NOW, purpose: 'authentication', sessionless: true });
      },
    })),
    {
      name: 'key-service request (parseKeyRequest, describeRequest, verifyRoleCredential)', weight: 3,
      seeds: [
        encodeKeyRequest({ action: 'store', name: 'vhd/disk', data: new Uint8Array(8), version: 2, exportable: true, expectedVersion: 1 }),
        encodeKeyRequest({ action: 'retrieve', name: 'vhd/disk', version: 1, credentials: [roleCert], challengeNonce: nonce, challengeSignature: new Uint8Array(64).fill(3) }),
        encodeKeyRequest({ action: 'delete', name: 'vhd/disk', credentials: [admission, policyCert] }),
        encodeKeyRequest({ action: 'list', name: 'vhd/', listAfter: 'vhd/a' }),
      ],
      run: (b) => {
        describeRequest(b);
        const req = parseKeyRequest(b);
        if (req.credentials) verifyRoleCredential(req.credentials, policyCert, PKI_NOW);
      },
    },
    {
      name: 'key-service response (parseKeyResponse, listAnswer, pageItems, deletedVersions)', weight: 3,
      seeds: [succeeded('vhd/', { data: list, version: 0 }), succeeded('vhd/disk', { data: deleted, version: 0 }), failed('vhd/disk', 'NOT_FOUND', 0), challenge('vhd/disk', nonce), succeeded('vhd/disk', { data: new Uint8Array(16), version: 3 })],
      run: (b) => {
        const r = parseKeyResponse(b);
        if (!r.data) return;
        attempt(() => pageItems('vhd/', 'vhd/', listAnswer(r.data, LIST_PAGE, () => tooManyNames('vhd/'))));
        deletedVersions(r.name, r.data, r.version ?? 0);
      },
    },
    {
      name: 'cryptstore entry, metadata and bundle (parseCryptstoreEntry, parseCryptstoreMetadata, parseCryptstoreBundle)', weight: 3,
      seeds: [
        ...cryptstoreSeeds(),
      ],
      run: (b) => [parseCryptstoreEntry, parseCryptstoreMetadata, parseCryptstoreBundle].map((p) => attempt(() => p(b))),
    },
    {
      name: 'key-server stored record (decodeRecord)', weight: 2,
      seeds: [encodeRecord({ name: 'vhd/disk', version: 3, type: 'binary-blob', exportable: true, timeEntered: '2026-12-01T00:00:00Z', size: 4, ciphertext: new Uint8Array(44) })],
      run: (b) => decodeRecord('vhd/disk', 3, b),
    },
    {
      name: 'key_message (fromKeyMessage)', weight: 1,
      seeds: [...keys.flatMap((k) => [toKeyMessage(k, 'k'), toKeyMessage(publicKeyOf(k), 'k')]).map((m) => encode('key_message', m)), original('attest_key_file.bin')],
      run: (b) => fromKeyMessage(decode<KeyMessage>('key_message', b)),
    },
  ];
}

/** Runs `f`, a refusal (CertifierError) being one outcome among others; anything else is thrown on. */
function attempt(f: () => unknown): unknown {
  try {
    return f();
  } catch (e) {
    if (e instanceof CertifierError) return e;
    throw e;
  }
}
