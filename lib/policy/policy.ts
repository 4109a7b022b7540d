// The policy file: a signed_claim_sequence whose every claim is "policyKey says ...". Loading
// verifies each claim and turns it into the trust facts the evaluator uses; any statement it
// does not understand makes the whole policy invalid (fail closed). Platform roots and platform
// properties (SEV-SNP) are read by properties.ts.

import type { KeyObject } from 'node:crypto';
import { CertifierError } from '../errors/index.ts';
import { toHex } from '../crypto/index.ts';
import { decode, encode, type SignedClaimSequence } from '../wire/index.ts';
import { signClaim, verifySignedClaim, type Window } from './claims.ts';
import { describeClause, entityKey, keyEntity, keyLabel, measurementEntity, sameKey, saysClause, simpleClause } from './entities.ts';
import { platformRootEntity, platformRootOf, propertiesEntity, propertiesOf, PROPERTY_VERB, type Requirement, type TrustedProperties } from './properties.ts';

export const MEASUREMENT_SIZES = [32, 48] as const; // SHA-256 programs, SEV-SNP launch digests

export interface TrustedPlatform extends Window {
  key: KeyObject;
  label: string;
  /** Set for a vendor root (e.g. "amd-sev-snp"): it then vouches for that platform's evidence only. */
  platformType?: string;
  /** The root's certificate (DER), which the platform's verifier anchors its path validation on. */
  certificate?: Uint8Array;
}

export interface TrustedMeasurement extends Window {
  measurement: Uint8Array;
  hex: string;
}

export interface Policy {
  policyKey: KeyObject;
  platforms: TrustedPlatform[];
  measurements: TrustedMeasurement[];
  /** Platform property claims (e.g. SEV-SNP debug, minimum TCB, VMPL). */
  properties: TrustedProperties[];
  /** One readable line per claim, for print-policy and explanations. */
  statements: string[];
}

export interface MakePolicyOptions {
  policyKey: KeyObject;
  policyCert?: Uint8Array;
  platforms: { key: KeyObject; name?: string }[];
  measurements: Uint8Array[];
  /** Vendor roots by certificate, e.g. AMD's ARK for "amd-sev-snp". */
  platformRoots?: { platformType: string; certificate: Uint8Array; name: string }[];
  /** One property claim per entry. */
  platformProperties?: { platformType: string; requirements: Requirement[] }[];
  notBefore: Date;
  notAfter: Date;
}

/** Writes a signed policy: one claim per trusted platform key and per trusted measurement. */
export function makePolicy(o: MakePolicyOptions): Uint8Array {
  const me = keyEntity(o.policyKey, 'policyKey');
  const claims = [
    ...o.platforms.map((p) => saysClause(me, simpleClause(keyEntity(p.key, p.name ?? 'platformKey'), 'is-trusted-for-attestation'))),
    ...(o.platformRoots ?? []).map((r) => saysClause(me, simpleClause(platformRootEntity(r.platformType, r.certificate, r.name), 'is-trusted-for-attestation'))),
    ...(o.platformProperties ?? []).map((p) => saysClause(me, { subject: propertiesEntity(p.platformType, p.requirements), verb: PROPERTY_VERB })),
    ...o.measurements.map((m) => {
      if (!(MEASUREMENT_SIZES as readonly number[]).includes(m.length)) throw new CertifierError('INVALID_INPUT', `a measurement is 32 or 48 bytes, not ${m.length}`);
      return saysClause(me, simpleClause(measurementEntity(m), 'is-trusted'));
    }),
  ].map((clause) => signClaim({ signer: o.policyKey, signerName: 'policyKey', signerCert: o.policyCert, clause, notBefore: o.notBefore, notAfter: o.notAfter }));
  return encode('signed_claim_sequence', { claims });
}

/** Verifies a policy file against the pinned policy key. POLICY_INVALID on any problem. */
export function loadPolicy(bytes: Uint8Array, policyKey: KeyObject): Policy {
  let seq: SignedClaimSequence;
  try {
    seq = decode<SignedClaimSequence>('signed_claim_sequence', bytes, { strict: true });
  } catch (cause) {
    throw new CertifierError('POLICY_INVALID', 'the policy file is not a signed_claim_sequence', { cause });
  }
  const claims = seq.claims ?? [];
  if (claims.length === 0) throw new CertifierError('POLICY_INVALID', 'the policy holds no claims');
  const policy: Policy = { policyKey, platforms: [], measurements: [], properties: [], statements: [] };
  claims.forEach((sc, i) => {
    const what = `policy claim ${i + 1}`;
    const c = verifySignedClaim(sc, 'POLICY_INVALID', what);
    if (!sameKey(c.signer, policyKey)) {
      throw new CertifierError('POLICY_INVALID', `${what} is signed by ${keyLabel(c.signer)}, not by the policy key ${keyLabel(policyKey)}`, { details: { reason: 'other-signer' } });
    }
    const inner = c.clause.clause;
    const unsupported = () => new CertifierError('POLICY_INVALID', `${what} says something this program does not understand: ${describeClause(c.clause)}`);
    if (c.clause.verb !== 'says' || c.clause.object || !inner || inner.object || inner.clause) throw unsupported();
    const window = { notBefore: c.notBefore, notAfter: c.notAfter };
    if (inner.verb === 'is-trusted-for-attestation' && inner.subject?.entityType === 'key') {
      const key = entityKey(inner.subject);
      if (!key) throw new CertifierError('POLICY_INVALID', `${what} names an unreadable platform key`);
      policy.platforms.push({ key, label: keyLabel(key, inner.subject.key?.keyName), ...window });
    } else if (inner.verb === 'is-trusted-for-attestation' && inner.subject?.entityType === 'platform') {
      policy.platforms.push({ ...platformRootOf(inner.subject, what), ...window });
    } else if (inner.verb === PROPERTY_VERB && inner.subject?.entityType === 'platform') {
      policy.properties.push({ ...propertiesOf(inner.subject, what), ...window, claim: i + 1 });
    } else if (inner.verb === 'is-trusted' && inner.subject?.entityType === 'measurement') {
      const m = inner.subject.measurement ?? new Uint8Array();
      if (!(MEASUREMENT_SIZES as readonly number[]).includes(m.length)) throw new CertifierError('POLICY_INVALID', `${what} names a ${m.length}-byte measurement`);
      policy.measurements.push({ measurement: m, hex: toHex(m), ...window });
    } else {
      throw unsupported();
    }
    policy.statements.push(`${describeClause(c.clause)}  [${c.notBefore.toISOString()} .. ${c.notAfter.toISOString()}]`);
  });
  return policy;
}
