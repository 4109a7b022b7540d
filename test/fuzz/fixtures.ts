// What the fuzz targets are made from: the original Certifier trust request with its keys and
// policy (so that a part of it can be signed again after a change), and a small PKI of one policy
// key (its certificate, an admission certificate and a role credential under it).

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPolicy } from '../../lib/policy/index.ts';
import { createPolicyCert, issueAdmissionCert } from '../../lib/pki/index.ts';
import { fromKeyMessage, importPrivateKey, publicKeyOf } from '../../lib/crypto/index.ts';
import { decode, encode, type KeyMessage, type SignedClaimMessage, type SignedReport, type TrustRequestMessage } from '../../lib/wire/index.ts';
import { issueRoleCert } from '../../lib/keyservice/roles.ts';
import { VECTORS } from '../support/helpers.ts';

export const vectorFile = (...p: string[]) => new Uint8Array(readFileSync(join(VECTORS, ...p)));
const original = (f: string) => vectorFile('certifier-original', f);

/** The original trust request, its endorsement and report, the keys that signed them and the policy that admits it at AT. */
export function originalEvidence() {
  const AT = new Date('2026-11-24T00:00:00Z');
  const policyKey = new X509Certificate(original('policy_cert_file.datica')).publicKey;
  const treq = decode<TrustRequestMessage>('trust_request_message', original('treq.bin'));
  const assertion = (i: number) => treq.support!.factAssertion![i]!.serializedEvidence!;
  return {
    AT, policyKey, policy: loadPolicy(original('policy.bin'), policyKey), treq,
    attestKey: fromKeyMessage(decode<KeyMessage>('key_message', original('attest_key_file.bin'))),
    platformKey: fromKeyMessage(decode<KeyMessage>('key_message', original('platform_key_file.bin'))),
    report: decode<SignedReport>('signed_report', assertion(1)),
    endorsement: decode<SignedClaimMessage>('signed_claim_message', assertion(0)),
    /** The request with its fact assertion `i` (0: the endorsement, 1: the report) replaced. */
    withAssertion: (i: number, bytes: Uint8Array): TrustRequestMessage => ({
      ...treq, support: { ...treq.support, factAssertion: treq.support!.factAssertion!.map((f, n) => (n === i ? { ...f, serializedEvidence: bytes } : f)) },
    }),
  };
}

/** The test policy key's PKI at PKI_NOW: its certificate, an admission certificate (with SANs) and a role credential. */
export async function testPki() {
  const policyKey = importPrivateKey(vectorFile('pki', 'policy-p256.key.pem'));
  const subject = publicKeyOf(importPrivateKey(vectorFile('pki', 'subject-p256.key.pem')));
  const now = new Date('2026-12-01T00:00:00Z');
  const policyCert = await createPolicyCert({ privateKey: policyKey, domain: 'datica', now });
  const admission = await issueAdmissionCert({
    policyKey, policyCert, subjectPublicKey: subject, measurement: new Uint8Array(32).fill(1), platform: 'simulated-enclave', domain: 'datica', validitySeconds: 86_400, now,
    dnsNames: ['node1.datica.example'], ipAddresses: ['10.0.0.7', '::1'],
  });
  const role = await issueRoleCert({ policyKey, policyCert, subjectPublicKey: subject, role: 'operator', domain: 'datica', validitySeconds: 86_400, now });
  return { policyKey, now, policyCert, admission, role };
}

/** A cryptstore entry, the metadata of a store protected by a passphrase and of one by a key file, and an export bundle. */
export const cryptstoreSeeds = () => [
  encode('cryptstore_entry', { tag: 'disk', type: 'binary-blob', version: 1, timeEntered: '2026-12-01T00:00:00Z', blob: new Uint8Array(4) }),
  encode('cryptstore_metadata', {
    formatVersion: 1, storeId: new Uint8Array(16).fill(1), created: '2026-12-01T00:00:00.000Z',
    protection: { kind: 'passphrase', scrypt: { logN: 15, r: 8, p: 1, salt: new Uint8Array(16).fill(2) }, wrappedDataKey: new Uint8Array(60).fill(3) },
  }),
  encode('cryptstore_metadata', { formatVersion: 1, storeId: new Uint8Array(16).fill(1), created: '2026-12-01T00:00:00.000Z', protection: { kind: 'key-file', salt: new Uint8Array(32).fill(2), wrappedDataKey: new Uint8Array(60).fill(3) } }),
  encode('cryptstore_bundle', { formatVersion: 1, scrypt: { logN: 10, r: 8, p: 1, salt: new Uint8Array(16) }, ciphertext: new Uint8Array(28) }),
];
