// A fault not of ours while simpleserver decides a request (a bug: INTERNAL) is logged by its class
// and code only: its message may quote what it failed on (JSON.parse's the text), a secret. With
// CERTIFIER_DEBUG=1 the log line says the message too.

import { expect } from 'chai';
import { generateKeyPair } from '../../lib/crypto/index.ts';
import { createPolicyCert } from '../../lib/pki/index.ts';
import type { Policy } from '../../lib/policy/index.ts';
import { CertifierService, type CertificationRecord } from '../../lib/certifier/index.ts';
import { encode, parseTrustResponse } from '../../lib/wire/index.ts';
import { withEnv } from '../support/canaries.ts';

describe('simpleserver: the log line of a fault not of ours', () => {
  const request = encode('trust_request_message', {
    requestingEnclaveTag: 'requesting-enclave', providingEnclaveTag: 'providing-enclave',
    submittedEvidenceType: 'vse-attestation-package', purpose: 'authentication',
    support: { proverType: 'vse-verifier', factAssertion: [{ evidenceType: 'x', serializedEvidence: new Uint8Array([1]) }] },
  });

  /** The record of a request whose TLS exporter fails as JSON.parse does on a text it quotes. */
  async function logged(): Promise<CertificationRecord> {
    const policyKey = (await generateKeyPair('p256')).privateKey;
    const policyCert = await createPolicyCert({ privateKey: policyKey, domain: 'internal' });
    const records: CertificationRecord[] = [];
    const service = new CertifierService({ policyKey, policyCert, policy: {} as Policy, domain: 'internal', certValiditySeconds: 3_600, requireSessionBinding: true }, (r) => void records.push(r));
    const answer = parseTrustResponse(await service.handle(request, { id: 'c1', remote: '127.0.0.1', exportKeyingMaterial: () => JSON.parse('{"k":hush-canary}') }));
    expect(answer).to.include({ status: 'failed', errorCode: 'INTERNAL' });
    expect(records).to.have.length(1);
    return records[0]!;
  }

  it('names its class, never its message', async () => {
    const r = await logged();
    expect(r).to.include({ decision: 'deny', code: 'INTERNAL', reason: 'SyntaxError' });
    expect(JSON.stringify(r)).not.to.contain('hush-canary');
  });

  it('says its message too with CERTIFIER_DEBUG=1', async () => {
    expect((await withEnv('CERTIFIER_DEBUG', '1', logged)).reason).to.match(/^SyntaxError: .*hush-canary/);
  });
});
