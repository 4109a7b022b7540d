// The errors path validation raises: a stable code, a specific reason in details.reason (named in
// the message too), and which certificate failed, so callers and logs can tell failures apart.

import { CertifierError, type ErrorCode } from '../errors/index.ts';

export type CertRole = 'leaf' | 'policy' | 'chain';

export interface Problem {
  code: ErrorCode;
  reason: string;
  message: string;
}

export function problem(code: ErrorCode, reason: string, message: string): Problem {
  return { code, reason, message };
}

function toError(p: Problem, certificate: CertRole, extra: Record<string, unknown> = {}, cause?: unknown): CertifierError {
  return new CertifierError(p.code, `${p.message} (${p.reason})`, {
    details: { reason: p.reason, certificate, ...extra },
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
 * `e` again, with what to do added when it is a leaf certificate outside its dates (CERT_EXPIRED):
 * `fix.expired` for one that ended, `fix.notYetValid` for one not yet begun. Anything else unchanged.
 */
export function withDateFix(e: unknown, fix: { expired: string; notYetValid: string }): unknown {
  if (!(e instanceof CertifierError) || e.code !== 'CERT_EXPIRED' || e.details?.certificate !== 'leaf') return e;
  return new CertifierError('CERT_EXPIRED', `${e.message}: ${e.details.reason === 'not-yet-valid' ? fix.notYetValid : fix.expired}`, { cause: e, details: e.details });
}
