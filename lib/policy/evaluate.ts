// The policy engine: a pure function from (policy, verified evidence facts, purpose, time,
// expected session binding) to a decision that always carries its reason and the proof so far.

import type { KeyObject } from 'node:crypto';
import type { ErrorCode } from '../errors/index.ts';
import { bytesEqual, toHex } from '../crypto/index.ts';
import { keyLabel, sameKey } from './entities.ts';
import { describeWindow, describeWindows, lastToEnd, within, type Window } from './claims.ts';
import type { Policy, TrustedMeasurement } from './policy.ts';
import { checkProperties, propertyClaimsOf, type PropertyValue } from './properties.ts';

/** What a platform verifier proved from the evidence (signatures already checked). */
export interface EvidenceFacts {
  /** Enclave type, e.g. "simulated-enclave". */
  platform: string;
  /** The key at the root of the evidence: it endorsed the attestation key. */
  platformKey: KeyObject;
  /** Validity of the endorsement and of the report. */
  windows: { what: string; window: Window }[];
  measurement: Uint8Array;
  /** The key the machine wants certified. */
  enclaveKey: KeyObject;
  /** The TLS exporter the machine bound its evidence to, if any. */
  sessionBinding?: Uint8Array;
  /** What the verifier established, in order, for the proof. */
  steps: string[];
  /** Platform properties the verifier established (SEV-SNP: debug, vmpl, tcb-snp, ...); checked against the policy's property claims. */
  properties?: Readonly<Record<string, PropertyValue>>;
}

export interface EvaluateOptions {
  at: Date;
  purpose: string;
  /** The exporter of the connection the evidence arrived on; undefined in the original plain protocol. */
  expectedBinding?: Uint8Array;
  /** It arrived over the original plain protocol, with no session: evidence bound to one was made
   * for a TLS connection elsewhere (a replay), and is refused. */
  sessionless?: boolean;
  /** How far ahead of ours a machine's clock may run when it dates its evidence (default 5 min). */
  skewMs?: number;
}

export const DEFAULT_CLOCK_SKEW_MS = 5 * 60_000;

/**
 * `bound`: the evidence was proven bound to the session it came on before the decision (a machine
 * attesting now). A refusal made before that (purpose, platform, the platform claim, the dates of
 * the evidence, the binding itself) is one anybody holding a copy of sound evidence can have at
 * will, a captured report replayed on a session of their own; over the plain protocol nothing is
 * ever bound.
 */
export type Decision =
  | { allow: true; measurement: Uint8Array; platform: string; enclaveKey: KeyObject; proof: string[]; /** when the first claim behind it ends */ notAfter: Date; bound: boolean }
  | { allow: false; code: ErrorCode; reason: string; proof: string[]; bound: boolean };


/**
 * The claim of `policy` trusting `measurement` at `at` that ends last, or why there is none:
 * MEASUREMENT_NOT_TRUSTED (no claim names it) or CLAIM_EXPIRED (none in force at `at`).
 */
export function measurementClaim(policy: Policy, measurement: Uint8Array, at: Date): TrustedMeasurement | { code: ErrorCode; reason: string } {
  const hex = toHex(measurement);
  const claims = policy.measurements.filter((m) => bytesEqual(m.measurement, measurement));
  if (claims.length === 0) return { code: 'MEASUREMENT_NOT_TRUSTED', reason: `measurement ${hex} is not trusted by the policy` };
  return lastToEnd(claims, at) ?? { code: 'CLAIM_EXPIRED', reason: `the policy claim trusting measurement ${hex} is not valid at ${at.toISOString()} (${describeWindows(claims)})` };
}

export function evaluate(policy: Policy, facts: EvidenceFacts, o: EvaluateOptions): Decision {
  const proof = [...facts.steps];
  let bound = false;
  const deny = (code: ErrorCode, reason: string): Decision => ({ allow: false, code, reason, proof, bound });
  const at = o.at.toISOString();

  if (o.purpose !== 'authentication') return deny('PURPOSE_UNSUPPORTED', `purpose "${o.purpose}" is not supported; only "authentication" certificates are issued`);

  const platformLabel = keyLabel(facts.platformKey);
  // A vendor root vouches only for its own platform's evidence.
  const platforms = policy.platforms.filter((p) => sameKey(p.key, facts.platformKey) && (p.platformType === undefined || p.platformType === facts.platform));
  if (platforms.length === 0) return deny('PLATFORM_NOT_TRUSTED', `the platform key ${platformLabel} is not trusted for attestation by the policy`);
  const platform = lastToEnd(platforms, o.at);
  if (!platform) return deny('CLAIM_EXPIRED', `the policy claim trusting platform key ${platformLabel} is not valid at ${at} (${describeWindows(platforms)})`);
  proof.push(`policy: policyKey says ${platform.platformType ? `platform[${platform.platformType}, ${platform.label}]` : platformLabel} is-trusted-for-attestation`);

  for (const w of facts.windows) {
    if (!within(w.window, o.at, o.skewMs ?? DEFAULT_CLOCK_SKEW_MS)) {
      return deny('CLAIM_EXPIRED', `the ${w.what} is valid from ${describeWindow(w.window)}, not at ${at}`);
    }
  }

  if (o.sessionless && facts.sessionBinding?.length) {
    return deny('SESSION_MISMATCH', 'the evidence is bound to a TLS session but came over the plain protocol (replayed from a TLS connection)');
  }
  if (o.expectedBinding) {
    if (!facts.sessionBinding) return deny('SESSION_MISMATCH', 'the evidence is not bound to a TLS session (an older client, or a replay)');
    if (!bytesEqual(facts.sessionBinding, o.expectedBinding)) return deny('SESSION_MISMATCH', 'the evidence is bound to a different TLS session (replayed or relayed)');
    proof.push('the evidence is bound to this TLS session');
    bound = true;
  }

  // Evidence with platform properties, or a policy naming some for this platform: they must hold.
  let propertiesEnd: number | undefined;
  if (facts.properties || propertyClaimsOf(policy.properties, facts.platform, o.at).all.length > 0) {
    const outcome = checkProperties(policy.properties, facts.platform, facts.properties ?? {}, o.at);
    if (!outcome.ok) return deny(outcome.code, outcome.reason);
    proof.push(...outcome.proof);
    propertiesEnd = outcome.notAfter.getTime();
  }

  const hex = toHex(facts.measurement);
  const trusted = measurementClaim(policy, facts.measurement, o.at);
  if ('code' in trusted) return deny(trusted.code, trusted.reason);
  proof.push(`policy: policyKey says measurement ${hex} is-trusted`);
  proof.push(`therefore ${keyLabel(facts.enclaveKey)} is-trusted-for-authentication as measurement ${hex}`);
  // A certificate never outlives the policy claims that justified it, a property claim among them.
  const notAfter = new Date(Math.min(platform.notAfter.getTime(), trusted.notAfter.getTime(), propertiesEnd ?? Infinity));
  return { allow: true, measurement: facts.measurement, platform: facts.platform, enclaveKey: facts.enclaveKey, proof, notAfter, bound };
}
