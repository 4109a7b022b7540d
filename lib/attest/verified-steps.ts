// A refusal of evidence after some of its checks passed carries them (details.verified), in the
// proof's words, for simpleserver explain; a server sends the code alone and logs the message.

import { CertifierError } from '../errors/index.ts';

/**
 * Runs `checks`; a refusal it throws is thrown again with `verified` (as it is then: a list the
 * checks push to as they pass) in its details, unless nothing had passed or it carries its own.
 */
export function afterSteps<T>(verified: readonly string[], checks: () => T): T {
  try {
    return checks();
  } catch (e) {
    if (!(e instanceof CertifierError) || verified.length === 0 || e.details?.verified !== undefined) throw e;
    const again = new CertifierError(e.code, e.message, { ...(e.cause === undefined ? {} : { cause: e.cause }), details: { ...e.details, verified: [...verified] } });
    again.stack = e.stack;
    throw again;
  }
}

/** What a refusal says was verified before it (afterSteps): nothing for one made before any check passed. */
export function verifiedBefore(e: CertifierError): string[] {
  const v = e.details?.verified;
  return Array.isArray(v) && v.every((s) => typeof s === 'string') ? v : [];
}
