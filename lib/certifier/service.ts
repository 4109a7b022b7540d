// The certificate authority's request handling (simpleserver): trust_request_message in,
// trust_response_message out. Evidence is verified, the policy decides, and an admission
// certificate is issued; a refusal carries only a stable code, the detail goes to the log.

import type { KeyObject } from 'node:crypto';
import { CertifierError, errorText, sentCode, type ErrorCode } from '../errors/index.ts';
import { toHex } from '../crypto/index.ts';
import { clipped, encode, parseTrustRequest, type TrustResponseMessage } from '../wire/index.ts';
import { evaluate, type Decision, type Policy } from '../policy/index.ts';
import { verifyEvidence, verifyOptionsFor, type VerifiedAmdCrl } from '../attest/index.ts';
import { issueAdmissionCert, readCertificateSummary } from '../pki/index.ts';

/** The TLS exporter label binding evidence to its connection (RFC 8446, 7.5; a private-use label, RFC 5705, 4). */
export const SESSION_BINDING_LABEL = 'EXPERIMENTAL-certifier-keys/attestation-binding/v1';
export const SESSION_BINDING_BYTES = 32;
/**
 * The largest trust request simpleserver reads, and init-trust sends, and the largest answer
 * init-trust reads (a certificate of a few KiB): FRAME_TOO_LARGE past it. A
 * request is read whole before anything in it is verified, so each connection may hold this much
 * for the read timeout (10 s) however little it proves: at the channel's 1 MiB, 256 connections
 * held about 300 MiB (RSS, on loopback). Evidence is a few KiB: the original tools' request is
 * 2.7 KiB, an SEV-SNP one (report, VCEK, ASK) about 5 KiB.
 */
export const CERTIFIER_FRAME_LIMIT = 64 * 1024;
/**
 * The shortest certificate worth issuing; claims ending sooner get CLAIM_EXPIRED instead, and a
 * policy certificate ending sooner CERT_EXPIRED.
 */
export const MIN_CERT_SECONDS = 60;

/**
 * How long a certificate issued at `at` is valid: `wanted` seconds, never beyond the claims that
 * allow it (`claimsEnd`, where a policy was asked) nor the policy certificate. Less than
 * MIN_CERT_SECONDS is no use: CERT_EXPIRED where the policy certificate ends first (a new policy
 * key is needed), else CLAIM_EXPIRED (a new policy). simpleserver and issue-cert issue so.
 */
export function issuableSeconds(at: Date, wanted: number, claimsEnd: Date | undefined, policyCertEnds: Date): number {
  // From the whole second the certificate begins at (issueAdmissionCert's notBefore): one cut
  // short by the policy certificate then ends exactly with it (endsWithPolicyCert), not a second before.
  const from = Math.floor(at.getTime() / 1000) * 1000;
  const limit = Math.min(from + wanted * 1000, claimsEnd?.getTime() ?? Infinity, policyCertEnds.getTime());
  const seconds = Math.floor((limit - from) / 1000);
  if (seconds >= MIN_CERT_SECONDS) return seconds;
  const left = seconds > 0 ? `, ${seconds} s from now` : ' (or has ended)';
  if (!claimsEnd || policyCertEnds <= claimsEnd) {
    throw new CertifierError('CERT_EXPIRED', `the policy certificate, which no certificate issued under it outlives, ends at ${policyCertEnds.toISOString()}${left}: too soon to issue a certificate (replace the policy key: README "Replacing the policy key")`);
  }
  throw new CertifierError('CLAIM_EXPIRED', `the policy claims that allow this machine end at ${claimsEnd.toISOString()}${left}: too soon to issue a certificate (renew the policy)`);
}

/**
 * The codes simpleserver refuses with (handle sends INTERNAL for any other): a request it cannot
 * read, evidence that does not verify, the policy's decisions, and its own faults. A client takes
 * any other code for DENIED.
 */
export const CERTIFIER_CODES: readonly ErrorCode[] = [
  'DECODE_FAILED', 'MISSING_FIELD', 'BAD_FIELD', 'INVALID_INPUT', 'INVALID_KEY', 'UNSUPPORTED', 'BAD_CERTIFICATE', 'EVIDENCE_MALFORMED', 'SNP_REPORT_VERSION', 'SNP_CPU_UNKNOWN',
  'PURPOSE_UNSUPPORTED', 'PLATFORM_NOT_TRUSTED', 'MEASUREMENT_NOT_TRUSTED', 'PLATFORM_PROPERTY_DENIED', 'DENIED',
  'INTEGRITY', 'CERT_EXPIRED', 'POLICY_INVALID', 'ENDORSEMENT_INVALID', 'REPORT_INVALID', 'CLAIM_EXPIRED', 'SESSION_MISMATCH',
  'SNP_CHAIN_UNTRUSTED', 'SNP_VCEK_MISMATCH', 'SNP_TCB_MISMATCH', 'SNP_REPORT_DATA_MISMATCH', 'SNP_CRL_STALE', 'INTERNAL',
];

export interface CertifierConfig {
  policyKey: KeyObject;
  policyCert: Uint8Array;
  policy: Policy;
  /** AMD's revocation lists (simpleserver --amd-crl), verified against the policy's SEV-SNP roots. */
  amdCrls?: VerifiedAmdCrl[];
  domain: string;
  /** Longest lifetime of an admission certificate; it never outlives the claims behind it. */
  certValiditySeconds: number;
  /** Require evidence bound to the TLS session (false only for the original plain protocol). */
  requireSessionBinding: boolean;
  now?: () => Date;
}

export interface RequestContext {
  id: string;
  remote: string;
  exportKeyingMaterial(label: string, length: number): Uint8Array | undefined;
}

/** One log record per request: the decision, its code and reason, never key material. */
export interface CertificationRecord {
  /** The connection's id, as its `closed` line and the channel's other lines name it. */
  conn: string;
  remote: string;
  decision: 'allow' | 'deny';
  code?: ErrorCode;
  reason?: string;
  measurement?: string;
  platform?: string;
  serial?: string;
  notAfter?: string;
}

/**
 * Takes each request's record; `atWill` marks a refusal anybody who can connect may have as often
 * as they like: any refusal made before the evidence was proven bound to this TLS session. Evidence
 * never verified (unreadable, a field missing, malformed, not signed as it should be) is anybody's
 * to send; so is sound evidence once it is out, a real SEV-SNP report being public and verifying
 * against AMD's root: replayed on a session of one's own it meets every check up to the binding
 * (the platform not trusted, its claim ended, the evidence dated outside it, the binding itself).
 * Over the plain protocol nothing is bound, so an allow is at will too: a request captured on the
 * wire, sent again, is allowed again. An allow, and a refusal, of evidence bound to this session
 * (a machine talking now) are not.
 */
export type CertificationLog = (r: CertificationRecord, atWill: boolean) => void;

export class CertifierService {
  private readonly config: CertifierConfig;
  /** No certificate issued under the policy certificate outlives it. */
  private readonly policyCertEnds: Date;
  constructor(config: CertifierConfig, private readonly log: CertificationLog = () => {}) {
    this.config = { ...config };
    this.policyCertEnds = readCertificateSummary(config.policyCert).notAfter;
  }

  /**
   * Requests from now on are decided by this policy and these revocation lists (one already being
   * decided keeps its own); both change together.
   */
  setPolicy(policy: Policy, amdCrls: VerifiedAmdCrl[] = []): void {
    this.config.policy = policy;
    this.config.amdCrls = amdCrls;
  }

  async handle(request: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
    const base = { conn: ctx.id, remote: ctx.remote };
    let tags: Pick<TrustResponseMessage, 'requestingEnclaveTag' | 'providingEnclaveTag'> = {};
    let bound = false; // the evidence is proven bound to this session: a refusal from here on is a machine's own
    try {
      const req = parseTrustRequest(request);
      tags = { requestingEnclaveTag: req.requestingEnclaveTag, providingEnclaveTag: req.providingEnclaveTag };
      const at = this.config.now?.() ?? new Date();
      const binding = this.config.requireSessionBinding ? ctx.exportKeyingMaterial(SESSION_BINDING_LABEL, SESSION_BINDING_BYTES) : undefined;
      if (this.config.requireSessionBinding && !binding) throw new CertifierError('SESSION_MISMATCH', 'no TLS session to bind the evidence to');
      const { policy, amdCrls } = this.config; // one policy decides a request, whatever a reload does
      const facts = verifyEvidence(req.support, verifyOptionsFor(policy, at, amdCrls));
      const decision: Decision = evaluate(policy, facts, { at, purpose: req.purpose, ...(binding ? { expectedBinding: binding } : { sessionless: true }) });
      bound = decision.bound;
      if (!decision.allow) {
        this.log({ ...base, decision: 'deny', code: decision.code, reason: decision.reason, measurement: toHex(facts.measurement), platform: facts.platform }, !bound);
        return this.failed(tags, decision.code);
      }
      const validitySeconds = issuableSeconds(at, this.config.certValiditySeconds, decision.notAfter, this.policyCertEnds);
      const der = await issueAdmissionCert({
        policyKey: this.config.policyKey, policyCert: this.config.policyCert, subjectPublicKey: decision.enclaveKey,
        measurement: decision.measurement, platform: decision.platform, domain: this.config.domain,
        validitySeconds, now: at,
      });
      // The log needs only the serial and the end of validity of the certificate we just made: read
      // just those (a fraction of a full parse, or of OpenSSL's X509Certificate under OpenSSL 3).
      const cert = readCertificateSummary(der);
      // Unbound (the plain protocol), an allow is anybody's too who captured the request: at will.
      this.log({ ...base, decision: 'allow', measurement: toHex(decision.measurement), platform: decision.platform, serial: cert.serialHex, notAfter: cert.notAfter.toISOString() }, !decision.bound);
      return encode('trust_response_message', { status: 'succeeded', ...tags, artifact: der });
    } catch (e) {
      const code = sentCode(e, CERTIFIER_CODES);
      // A fault not of ours is named by its class (errorText): its message may quote the evidence.
      this.log({ ...base, decision: 'deny', code, reason: clipped(errorText(e)) }, !bound);
      return this.failed(tags, code);
    }
  }

  private failed(tags: Pick<TrustResponseMessage, 'requestingEnclaveTag' | 'providingEnclaveTag'>, code: ErrorCode): Uint8Array {
    return encode('trust_response_message', { status: 'failed', ...tags, errorCode: code });
  }
}
