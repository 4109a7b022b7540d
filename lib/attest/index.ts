// Platforms: the interface, the simulated enclave (a test platform), AMD SEV-SNP, and evidence verification.

import { CertifierError } from '../errors/index.ts';
import type { ValidTrustRequest } from '../wire/index.ts';
import { SEV_SNP_PLATFORM, type EvidenceFacts, type Policy } from '../policy/index.ts';
import { SIMULATED_ENCLAVE, verifySimulatedEvidence } from './simulated-verify.ts';
import { pinnedRoots, SEV_ENCLAVE, verifySnpEvidence, type VerifiedAmdCrl } from './sev-snp/index.ts';

export * from './platform.ts';
export * from './simulated.ts';
export * from './simulated-verify.ts';
export * from './platform-cert.ts';
export * from './sev-snp/index.ts';
export { verifiedBefore } from './verified-steps.ts';

export interface VerifyOptions {
  /** When certificates in the evidence must be valid (SEV-SNP); now when not given. */
  at?: Date;
  /** Trust anchors for SEV-SNP paths (DER ARKs); AMD's pinned ARKs when not given. */
  snpRoots?: Uint8Array[];
  /** AMD's revocation lists (simpleserver --amd-crl), each verified against its root. */
  snpCrls?: VerifiedAmdCrl[];
}

/**
 * What a server verifies with under `policy`: AMD's pinned ARKs, plus any SEV-SNP root the policy
 * names by certificate (a test root, another product). Trusting a root stays the policy's call.
 */
export function verifyOptionsFor(policy: Policy, at: Date, snpCrls: VerifiedAmdCrl[] = []): VerifyOptions {
  return { at, snpRoots: snpRootsOf(policy), snpCrls };
}

/** The SEV-SNP roots a server trusts under `policy`: AMD's pinned ARKs and those the policy names. */
export function snpRootsOf(policy: Policy): Uint8Array[] {
  return [...pinnedRoots(), ...policy.platforms.filter((p) => p.platformType === SEV_SNP_PLATFORM && p.certificate).map((p) => p.certificate!)];
}

/** The platform each enclave type's verifier reports, which simpleserver names in the certificate it issues. */
const CERTIFIED_PLATFORM: Record<string, string> = { [SIMULATED_ENCLAVE]: SIMULATED_ENCLAVE, [SEV_ENCLAVE]: SEV_SNP_PLATFORM };

/** The platform a certificate for evidence of enclave type `type` names; undefined for a type no verifier reads. */
export function certifiedPlatformOf(type: string): string | undefined {
  return Object.hasOwn(CERTIFIED_PLATFORM, type) ? CERTIFIED_PLATFORM[type] : undefined;
}

/** True for a platform that only verified evidence yields (not one a certificate issued offline may name, such as "issued-offline"). */
export function isAttestedPlatform(platform: string): boolean {
  return Object.values(CERTIFIED_PLATFORM).includes(platform);
}

/** Verifies an evidence package with the verifier of its platform. */
export function verifyEvidence(support: ValidTrustRequest['support'], o: VerifyOptions = {}): EvidenceFacts {
  if (support.proverType !== 'vse-verifier') {
    throw new CertifierError('EVIDENCE_MALFORMED', `prover type "${support.proverType}" is not supported (expected vse-verifier)`);
  }
  const type = support.enclaveType ?? SIMULATED_ENCLAVE;
  if (type === SIMULATED_ENCLAVE) return verifySimulatedEvidence(support);
  if (type === SEV_ENCLAVE) return verifySnpEvidence(support, { ...(o.at ? { at: o.at } : {}), ...(o.snpRoots ? { roots: o.snpRoots } : {}), ...(o.snpCrls ? { crls: o.snpCrls } : {}) });
  throw new CertifierError('EVIDENCE_MALFORMED', `no verifier for enclave type "${type}"`);
}
