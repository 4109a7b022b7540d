// Signed claims: a key signs a serialized claim_message whose payload is a vse_clause. Making
// one, and verifying one into a typed claim (signature, format, times, and that a "K says ..."
// claim is signed by K itself).

import type { KeyObject } from 'node:crypto';
import { CertifierError, type ErrorCode } from '../errors/index.ts';
import { fromKeyMessage, isSignatureAlg, sign, signatureAlgFor, toKeyMessage, verify, publicKeyOf } from '../crypto/index.ts';
import { checkSignedClaim, decode, encode, parseClaim, type SignedClaimMessage, type ValidSignedClaim, type VseClause } from '../wire/index.ts';
import { entityKey, sameKey } from './entities.ts';
import { formatCertifierTime, parseCertifierTime } from './time.ts';

export interface VerifiedClaim {
  signer: KeyObject;
  signerName?: string;
  clause: VseClause;
  notBefore: Date;
  notAfter: Date;
}

export interface Window {
  notBefore: Date;
  notAfter: Date;
}

/** "A to B", ISO times: a window in messages, to tell an ended claim from a clock set wrong. */
export function describeWindow(w: Window): string {
  return `${w.notBefore.toISOString()} to ${w.notAfter.toISOString()}`;
}

/** Windows in messages: "valid from A to B; valid from C to D". */
export function describeWindows(ws: Window[]): string {
  return ws.map((w) => `valid from ${describeWindow(w)}`).join('; ');
}

/** Of the windows in force at `at`, the one that ends last (a policy may say a thing twice, an older claim beside its renewal). */
export function lastToEnd<T extends Window>(ws: T[], at: Date): T | undefined {
  return ws.filter((w) => within(w, at)).reduce<T | undefined>((best, w) => (best && best.notAfter >= w.notAfter ? best : w), undefined);
}

/** True when `at` lies in the window; `skewMs` tolerates a machine clock running ahead. */
export function within(w: Window, at: Date, skewMs = 0): boolean {
  return at.getTime() >= w.notBefore.getTime() - skewMs && at.getTime() <= w.notAfter.getTime();
}

/** Signs `clause` with `signer` (a private key), valid from notBefore to notAfter. */
export function signClaim(opts: { signer: KeyObject; signerName?: string; signerCert?: Uint8Array; clause: VseClause; notBefore: Date; notAfter: Date }): SignedClaimMessage {
  const claim = encode('claim_message', {
    claimFormat: 'vse-clause',
    claimDescriptor: '',
    notBefore: formatCertifierTime(opts.notBefore),
    notAfter: formatCertifierTime(opts.notAfter),
    serializedClaim: encode('vse_clause', opts.clause),
  });
  const alg = signatureAlgFor(opts.signer);
  const signingKey = toKeyMessage(publicKeyOf(opts.signer), opts.signerName);
  if (opts.signerCert) signingKey.certificate = opts.signerCert;
  return { serializedClaimMessage: claim, signingKey, signingAlgorithm: alg, signature: sign(opts.signer, claim, alg) };
}

/**
 * Verifies a signed claim. Every failure is a CertifierError with `code` (the caller says
 * which: a bad policy claim is POLICY_INVALID, a bad endorsement ENDORSEMENT_INVALID).
 * Validity times are returned, not checked: the evaluator decides at which time.
 */
export function verifySignedClaim(sc: SignedClaimMessage, code: ErrorCode, what = 'claim'): VerifiedClaim {
  const bad = (why: string, cause?: unknown) => new CertifierError(code, `${what}: ${why}`, cause ? { cause } : undefined);
  let valid: ValidSignedClaim;
  try {
    valid = checkSignedClaim(sc, what);
  } catch (cause) {
    throw bad('malformed signed claim', cause);
  }
  if (!isSignatureAlg(valid.signingAlgorithm)) throw bad(`unsupported signing algorithm "${valid.signingAlgorithm}"`);
  let signer: KeyObject;
  try {
    signer = fromKeyMessage(valid.signingKey);
  } catch (cause) {
    throw bad('unreadable signing key', cause);
  }
  if (signer.type !== 'public') throw bad('the signing key must be a public key');
  let ok: boolean;
  try {
    ok = verify(signer, valid.serializedClaimMessage, valid.signature, valid.signingAlgorithm);
  } catch (cause) {
    throw bad(`signing key does not match algorithm ${valid.signingAlgorithm}`, cause);
  }
  if (!ok) throw bad('the signature does not verify');
  let claim;
  let clause: VseClause;
  try {
    claim = parseClaim(valid.serializedClaimMessage);
    clause = decode<VseClause>('vse_clause', claim.serializedClaim, { strict: true });
  } catch (cause) {
    throw bad(`the signed bytes are not a claim this program reads (${(cause as Error).message})`, cause);
  }
  if (claim.claimFormat !== 'vse-clause') throw bad(`unsupported claim format "${claim.claimFormat}"`);
  let notBefore: Date;
  let notAfter: Date;
  try {
    notBefore = parseCertifierTime(claim.notBefore, 'not_before');
    notAfter = parseCertifierTime(claim.notAfter, 'not_after');
  } catch (cause) {
    throw bad((cause as Error).message, cause); // signed, so the claim's fault: its code, not BAD_FIELD
  }
  if (notBefore.getTime() > notAfter.getTime()) throw bad(`not_before ${claim.notBefore} is after not_after ${claim.notAfter}: the claim is never in force`);
  if (clause.verb === 'says') {
    const speaker = entityKey(clause.subject);
    if (!speaker || !sameKey(speaker, signer)) throw bad('a "says" claim must be signed by the key that says it');
  }
  return { signer, signerName: valid.signingKey.keyName || undefined, clause, notBefore, notAfter };
}
