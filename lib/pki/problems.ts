// The errors path validation raises: a stable code, a specific reason in details.reason (named in
// the message too), and which certificate failed, so callers and logs can tell failures apart.

import { CertifierError, type ErrorCode } from '../errors/index.ts';
import { roughly, SET_CLOCK } from '../util/clock.ts';

/** Certificates start this long before `now`, so a peer whose clock lags a little accepts them. */
export const CLOCK_SKEW_SECONDS = 5 * 60;

export type CertRole = 'leaf' | 'policy' | 'chain';

export interface Problem {
  code: ErrorCode;
  reason: string;
  message: string;
  /** More for the error's details (a certificate's start and the time checked, say). */
  details?: Record<string, unknown>;
}

export function problem(code: ErrorCode, reason: string, message: string, details?: Record<string, unknown>): Problem {
  return { code, reason, message, ...(details ? { details } : {}) };
}

function toError(p: Problem, certificate: CertRole, extra: Record<string, unknown> = {}, cause?: unknown): CertifierError {
  return new CertifierError(p.code, `${p.message} (${p.reason})`, {
    details: { reason: p.reason, certificate, ...p.details, ...extra },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** A certificate that is malformed, or lacks a required extension or flag (exit 1). */
export function badCertificate(reason: string, message: string, cause?: unknown): CertifierError {
  return new CertifierError('BAD_CERTIFICATE', `${message} (${reason})`, {
    details: { reason },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** A certificate not signed by, or not issued under, the pinned policy certificate (exit 4). */
export function untrusted(reason: string, message: string, certificate: CertRole = 'leaf'): CertifierError {
  return toError(problem('UNTRUSTED_PEER', reason, message), certificate);
}

/**
 * The first problem found, as an error; the reasons of the others go into details.alsoFailed so
 * one report shows everything wrong with a certificate (useful with certificates from other tools).
 */
export function firstProblem(certificate: CertRole, list: (Problem | undefined)[]): CertifierError | undefined {
  const found = list.filter((p): p is Problem => p !== undefined);
  if (found.length === 0) return undefined;
  const [first, ...rest] = found;
  return toError(first!, certificate, rest.length ? { alsoFailed: rest.map((p) => p.reason) } : {});
}

/**
 * How far behind its issuer's a clock reading `at` is, for a certificate starting at `notBefore`
 * made by this suite (which starts every certificate CLOCK_SKEW_SECONDS before it is made):
 * "about ..." for one issued just now, "at least ..." for one that may have been made earlier.
 */
export function clockBehind(notBefore: Date, at: Date, justIssued = false): string {
  const lag = notBefore.getTime() - at.getTime() + CLOCK_SKEW_SECONDS * 1000;
  return justIssued ? `about ${roughly(lag)}` : `at least ${roughly(lag, { down: true })}`;
}

/**
 * `e` again, with what to do added when it is a certificate outside its dates (CERT_EXPIRED):
 * `fix.expired` for a leaf that ended (the policy certificate's end says its own fix), and
 * `fix.notYetValid` for a leaf not yet begun, given by how much this machine's clock is behind
 * (clockBehind; `o.justIssued` for a certificate issued just now). A policy certificate not yet
 * begun says the same of its maker's clock.
 * Anything else unchanged.
 */
export function withDateFix(e: unknown, fix: { expired: string; notYetValid: (behind: string) => string }, o: { justIssued?: boolean } = {}): unknown {
  if (!(e instanceof CertifierError) || e.code !== 'CERT_EXPIRED') return e;
  const d = e.details ?? {};
  let advice;
  if (d.reason === 'not-yet-valid' && typeof d.notBefore === 'string' && typeof d.checkedAt === 'string') {
    const behind = clockBehind(new Date(d.notBefore), new Date(d.checkedAt), o.justIssued && d.certificate === 'leaf');
    if (d.certificate === 'leaf') advice = fix.notYetValid(behind);
    else if (d.certificate === 'policy') advice = `this machine's clock is ${behind} behind that of the machine that made the policy certificate: ${SET_CLOCK}`;
    else return e;
  } else if (d.reason === 'expired' && d.certificate === 'leaf') advice = fix.expired;
  else return e;
  return new CertifierError('CERT_EXPIRED', `${e.message}: ${advice}`, { cause: e, details: d });
}

/**
 * `e` with what to do added where it is the policy certificate not valid yet (withDateFix's
 * advice for it); anything else unchanged. For the check of the policy certificate alone, which
 * programs make before anything else: on a VM booting with its clock behind, the first refusal.
 */
export function withPolicyDateFix(e: unknown): unknown {
  if (!(e instanceof CertifierError) || e.details?.certificate !== 'policy') return e;
  // A leaf's fixes, which withDateFix asks for, are never used for the policy certificate.
  return withDateFix(e, { expired: '', notYetValid: () => '' });
}
