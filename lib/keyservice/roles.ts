// Role credentials for the auth-challenge: an admission-style certificate signed by the policy
// key whose platform is "role:<name>". Evidence verifiers never yield such a platform, so only
// the policy-key holder can grant a role.

import type { KeyObject } from 'node:crypto';
import { CertifierError } from '../errors/index.ts';
import { sha256, utf8 } from '../crypto/index.ts';
import { visibleJson } from '../wire/index.ts';
import { issueAdmissionCert, ROLE_CREDENTIAL_EKU, validateAdmission, withDateFix, type ValidatedPeer } from '../pki/index.ts';
import { SET_CLOCK } from '../util/clock.ts';
import { ROLE_PLATFORM_PREFIX } from '../certifier/index.ts';

export const ROLE_PREFIX = ROLE_PLATFORM_PREFIX;
const ROLE_RE = /^[a-z][a-z0-9_-]{0,62}$/;
/** What ROLE_RE allows, for messages. */
export const ROLE_NAME_RULE = '1 to 63 lowercase letters, digits, "-" or "_", starting with a letter';

export function checkRoleName(role: string): void {
  if (!ROLE_RE.test(role)) throw new CertifierError('INVALID_INPUT', `a role name is ${ROLE_NAME_RULE}: not "${role}"`);
}

export async function issueRoleCert(o: { policyKey: KeyObject; policyCert: Uint8Array; subjectPublicKey: KeyObject; role: string; domain: string; validitySeconds: number; now?: Date }): Promise<Uint8Array> {
  checkRoleName(o.role);
  return issueAdmissionCert({
    policyKey: o.policyKey, policyCert: o.policyCert, subjectPublicKey: o.subjectPublicKey,
    measurement: sha256(utf8(ROLE_PREFIX + o.role)), platform: ROLE_PREFIX + o.role, domain: o.domain,
    validitySeconds: o.validitySeconds, extKeyUsage: [ROLE_CREDENTIAL_EKU], ...(o.now ? { now: o.now } : {}),
  });
}

/** The `reason` of verifyRoleCredential's refusal of a machine's certificate (one that names no role). */
export const NOT_A_ROLE = 'not-a-role';

/**
 * Validates a credential chain and returns the role it grants. A credential outside its dates at
 * `at` is CERT_EXPIRED (its message says which end, the time checked, and what to do: a new
 * credential, or `clock`, the clock `at` was read from, set right); any other fault is
 * CREDENTIAL_INVALID.
 */
export function verifyRoleCredential(chain: Uint8Array[], policyCert: Uint8Array, at: Date, clock = "this machine's clock"): { role: string; peer: ValidatedPeer } {
  let peer: ValidatedPeer;
  try {
    peer = validateAdmission({ chain, policyCert, at, usage: 'role', role: 'role credential' });
  } catch (cause) {
    if (cause instanceof CertifierError && cause.code === 'CERT_EXPIRED') {
      throw withDateFix(cause, {
        expired: `have the policy key's holder issue a new one (cert-utility issue-role-cert), or set ${clock} right if it is wrong (README "Clocks")`,
        notYetValid: (behind) => `${clock} is ${behind} behind that of the machine that issued it: ${SET_CLOCK}`,
      });
    }
    throw new CertifierError('CREDENTIAL_INVALID', `the credential is not valid: ${(cause as Error).message}`, { cause });
  }
  if (!peer.platform.startsWith(ROLE_PREFIX)) throw new CertifierError('CREDENTIAL_INVALID', 'the credential is a machine certificate, not a role certificate', { details: { reason: NOT_A_ROLE } });
  const role = peer.platform.slice(ROLE_PREFIX.length);
  // issue-role-cert makes no other; one made by hand ("Operator", "ops/*") could be granted nothing
  // by an ACL, which takes only such names, and would be recorded as a role all the same.
  if (!ROLE_RE.test(role)) throw new CertifierError('CREDENTIAL_INVALID', `the credential names role ${visibleJson(role)}, which no ACL can name: a role name is ${ROLE_NAME_RULE}`, { details: { reason: 'role-name' } });
  return { role, peer };
}
