// Shared by the SEV-SNP tests: the real vectors (test/vectors/sev-snp, their README as data in
// expected.json, a fixed "now" inside every certificate's window), and evidence packages built
// the way the guest builds them.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readCertificate } from '../../lib/pki/index.ts';
import { encode, parseTrustRequest, type ValidTrustRequest } from '../../lib/wire/index.ts';
import { CERT_EVIDENCE, SEV_ATTESTATION_EVIDENCE, SEV_ENCLAVE } from '../../lib/attest/index.ts';
import { VECTORS } from '../support/helpers.ts';
import { CertifierError, type ErrorCode } from '../../lib/errors/index.ts';

export const SNP_DIR = join(VECTORS, 'sev-snp');
export const EXPECTED = JSON.parse(readFileSync(join(SNP_DIR, 'expected.json'), 'utf8'));
export const NOW = new Date(EXPECTED.now);
export const NAMES = Object.keys(EXPECTED.vectors) as string[];

export function vector(name: string): { report: Uint8Array; vcek: Uint8Array; e: any } {
  const e = EXPECTED.vectors[name];
  return { report: new Uint8Array(readFileSync(join(SNP_DIR, name, 'report.bin'))), vcek: readCertificate(readFileSync(join(SNP_DIR, name, e.vcek.file))), e };
}

/** An evidence package as SnpGuest.attest makes one, parsed as the server receives it. */
export function snpSupport(report: Uint8Array, userData: Uint8Array, certs: Uint8Array[]): ValidTrustRequest['support'] {
  return parseTrustRequest(snpRequest(report, userData, certs)).support;
}

/** The trust_request_message a guest sends with that evidence package, as it goes on the wire. */
export function snpRequest(report: Uint8Array, userData: Uint8Array, certs: Uint8Array[]): Uint8Array {
  return encode('trust_request_message', {
    requestingEnclaveTag: 'requesting-enclave', providingEnclaveTag: 'providing-enclave',
    submittedEvidenceType: 'vse-attestation-package', purpose: 'authentication',
    support: {
      proverType: 'vse-verifier', enclaveType: SEV_ENCLAVE,
      factAssertion: [
        { evidenceType: SEV_ATTESTATION_EVIDENCE, serializedEvidence: encode('sev_attestation_message', { whatWasSaid: userData, reportedAttestation: report }) },
        ...certs.map((c) => ({ evidenceType: CERT_EVIDENCE, serializedEvidence: c })),
      ],
    },
  });
}

/** The refusal `f` throws: its code, details.reason and message (fails the test if it does not throw one). */
export function refusalOf(f: () => unknown): { code: ErrorCode; reason?: unknown; message: string } {
  try {
    f();
  } catch (e) {
    if (!(e instanceof CertifierError)) throw e;
    return { code: e.code, reason: e.details?.reason, message: e.message };
  }
  throw new Error('expected a refusal');
}
