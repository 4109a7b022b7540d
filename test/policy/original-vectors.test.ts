// The original Certifier Framework's messages through our policy engine: policy.bin verifies
// under the policy certificate, and treq.bin is allowed in the original protocol's mode.

import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertifierError } from '../../lib/errors/index.ts';
import { fromKeyMessage, toHex } from '../../lib/crypto/index.ts';
import { decode, parseTrustRequest, type AttestationUserData, type KeyMessage, type SignedReport, type VseAttestationReportInfo } from '../../lib/wire/index.ts';
import { evaluate, keyLabel, loadPolicy, sameKey } from '../../lib/policy/index.ts';
import { verifyEvidence } from '../../lib/attest/index.ts';
import { VECTORS } from '../support/helpers.ts';

const V = (f: string) => readFileSync(join(VECTORS, 'certifier-original', f));
const AT = new Date('2026-12-01T00:00:00Z');
const MEASUREMENT = '61bd9182736776eea1304accc7c6aae5ba57e427838586c149a1c05bdd8be65c';

describe('the original Certifier vectors under our policy engine', () => {
  const policyKey = new X509Certificate(V('policy_cert_file.datica')).publicKey;

  it('verifies both claims of policy.bin with the key of policy_cert_file.datica', () => {
    const policy = loadPolicy(V('policy.bin'), policyKey);
    expect(policy.platforms).to.have.length(1);
    expect(policy.measurements.map((m) => m.hex)).to.deep.equal([MEASUREMENT]);
    const platformKey = fromKeyMessage(decode<KeyMessage>('key_message', V('platform_key_file.bin')));
    expect(sameKey(policy.platforms[0]!.key, platformKey)).to.equal(true);
    expect(policy.statements[0]).to.match(/policyKey key:[0-9a-f]{16} says platformKey key:[0-9a-f]{16} is-trusted-for-attestation/);
  });

  it('refuses policy.bin under another policy key with POLICY_INVALID', () => {
    const other = fromKeyMessage(decode<KeyMessage>('key_message', V('platform_key_file.bin')));
    expect(() => loadPolicy(V('policy.bin'), other)).to.throw(CertifierError).with.property('code', 'POLICY_INVALID');
  });

  it('refuses policy.bin with one flipped byte with POLICY_INVALID', () => {
    const bytes = new Uint8Array(V('policy.bin'));
    bytes[bytes.length - 10]! ^= 1; // inside the last signature
    expect(() => loadPolicy(bytes, policyKey)).to.throw(CertifierError).with.property('code', 'POLICY_INVALID');
  });

  it('allows treq.bin in the original mode and certifies the auth-key named in its user data', () => {
    const policy = loadPolicy(V('policy.bin'), policyKey);
    const req = parseTrustRequest(V('treq.bin'));
    const facts = verifyEvidence(req.support);
    const d = evaluate(policy, facts, { at: AT, purpose: req.purpose });
    expect(d.allow, JSON.stringify(d)).to.equal(true);
    if (!d.allow) return;
    expect(toHex(d.measurement)).to.equal(MEASUREMENT);
    // the key named in the report's user data
    const sr = decode<SignedReport>('signed_report', req.support.factAssertion[1]!.serializedEvidence);
    const ud = decode<AttestationUserData>('attestation_user_data', decode<VseAttestationReportInfo>('vse_attestation_report_info', sr.report!).userData!);
    expect(ud.enclaveKey!.keyName).to.equal('auth-key');
    expect(sameKey(d.enclaveKey, fromKeyMessage(ud.enclaveKey!))).to.equal(true);
    expect(d.proof.join('\n')).to.contain(`therefore ${keyLabel(d.enclaveKey)} is-trusted-for-authentication`);
  });

  it('denies treq.bin with SESSION_MISMATCH when a TLS session binding is required', () => {
    const policy = loadPolicy(V('policy.bin'), policyKey);
    const facts = verifyEvidence(parseTrustRequest(V('treq.bin')).support);
    const d = evaluate(policy, facts, { at: AT, purpose: 'authentication', expectedBinding: new Uint8Array(32) });
    expect(d).to.include({ allow: false, code: 'SESSION_MISMATCH' });
  });

  it('denies treq.bin with CLAIM_EXPIRED after its report expires', () => {
    const policy = loadPolicy(V('policy.bin'), policyKey);
    const facts = verifyEvidence(parseTrustRequest(V('treq.bin')).support);
    const d = evaluate(policy, facts, { at: new Date('2027-11-24T00:00:00Z'), purpose: 'authentication' });
    expect(d).to.include({ allow: false, code: 'CLAIM_EXPIRED' });
    if (!d.allow) expect(d.reason).to.contain('attestation report');
  });
});
