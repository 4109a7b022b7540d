// Platforms: the interface, the simulated enclave (a test platform), and evidence verification.

import { CertifierError } from '../errors/index.ts';
import type { ValidTrustRequest } from '../wire/index.ts';
import type { EvidenceFacts } from '../policy/index.ts';
import { SIMULATED_ENCLAVE, verifySimulatedEvidence } from './simulated-verify.ts';

export * from './platform.ts';
export * from './simulated.ts';
export * from './simulated-verify.ts';
export * from './platform-cert.ts';

/** Verifies an evidence package with the verifier of its platform. */
export function verifyEvidence(support: ValidTrustRequest['support']): EvidenceFacts {
  if (support.proverType !== 'vse-verifier') {
    throw new CertifierError('EVIDENCE_MALFORMED', `prover type "${support.proverType}" is not supported (expected vse-verifier)`);
  }
  const type = support.enclaveType ?? SIMULATED_ENCLAVE;
  if (type === SIMULATED_ENCLAVE) return verifySimulatedEvidence(support);
  throw new CertifierError('EVIDENCE_MALFORMED', `no verifier for enclave type "${type}"`);
}
