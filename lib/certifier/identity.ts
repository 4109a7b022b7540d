// Who the certificate authority is on the wire. simpleserver presents an admission certificate
// whose platform is "policy-authority": only the holder of the policy key issues those (no
// evidence verifier yields that platform), so a certified machine cannot pose as the certifier.

import type { KeyObject } from 'node:crypto';
import { CertifierError } from '../errors/index.ts';
import { generateKeyPair, sha256 } from '../crypto/index.ts';
import { issueAdmissionCert, validateAdmission, withDateFix, type ValidatedPeer } from '../pki/index.ts';
import { SET_CLOCK } from '../util/clock.ts';

export const AUTHORITY_PLATFORM = 'policy-authority';
/** How long simpleserver's own certificate lasts; a running server replaces it at half that. */
export const AUTHORITY_CERT_SECONDS = 7 * 86_400;

/** A fresh key and a short-lived certificate for a service run by the policy-key holder. */
export async function issueAuthorityIdentity(o: { policyKey: KeyObject; policyCert: Uint8Array; domain: string; now?: Date; validitySeconds?: number }): Promise<{ key: KeyObject; cert: Uint8Array }> {
  const { privateKey, publicKey } = await generateKeyPair('p256');
  const cert = await issueAdmissionCert({
    policyKey: o.policyKey, policyCert: o.policyCert, subjectPublicKey: publicKey,
    measurement: sha256(o.policyCert), platform: AUTHORITY_PLATFORM, domain: o.domain,
    validitySeconds: o.validitySeconds ?? AUTHORITY_CERT_SECONDS, ...(o.now ? { now: o.now } : {}),
  });
  return { key: privateKey, cert };
}

/** The platform of a role credential ("role:operator"), which the policy key signs for the auth-challenge. */
export const ROLE_PLATFORM_PREFIX = 'role:';

/**
 * Checks that a peer on a key service connection is a certified machine: not simpleserver's
 * own certificate, and not a role credential, which is presented inside the protocol (the
 * auth-challenge) and stands for an operator's rights, never for an attested machine. Both
 * validate like admission certificates, being signed by the same policy key.
 */
export function requireMachine(peer: ValidatedPeer, side: 'client' | 'server'): ValidatedPeer {
  const refuse = (what: string, reason: string, fix = '') =>
    new CertifierError('UNTRUSTED_PEER', `the ${side === 'server' ? 'server' : 'client'} presented ${what}, not a certified machine's certificate${fix}`, { details: { reason } });
  // The usual cause on the client's side: simpleserver's port given for key-server's.
  if (peer.platform === AUTHORITY_PLATFORM) {
    throw side === 'server'
      ? refuse("the policy authority's (simpleserver's) certificate", 'not-key-server', ": --server names simpleserver, the certifier (init-trust's --server), not a key-server")
      : refuse("the policy authority's (simpleserver's) certificate", 'not-machine');
  }
  if (peer.platform.startsWith(ROLE_PLATFORM_PREFIX)) throw refuse(`a role credential (${peer.platform}), which is shown in the auth-challenge`, 'role-credential');
  return peer;
}

/**
 * Checks that a certificate validated with usage 'machine' can be this machine's own identity:
 * not simpleserver's own kind nor a role credential, which key-servers refuse as a machine's.
 * Throws BAD_CERTIFICATE naming `what` ("the certificate returned"), with `fix` after the reason.
 * `issued`: one just returned by simpleserver, which must also end no later than the policy
 * certificate, as every certificate it issues does. One already stored may end later (Scenario 2's
 * issue-cert made such before 2026-12-05): its use ends with the policy certificate all the same.
 */
export function requireOwnIdentity(peer: ValidatedPeer, what: string, o: { fix?: string; issued?: boolean } = {}): ValidatedPeer {
  const refuse = (reason: string, why: string) =>
    new CertifierError('BAD_CERTIFICATE', `${what} is not a certificate a machine can use: ${why} (${reason})${o.fix ?? ''}`, { details: { reason } });
  if (peer.platform === AUTHORITY_PLATFORM) throw refuse('not-machine', "its platform is policy-authority, the mark of simpleserver's own certificate");
  if (peer.platform.startsWith(ROLE_PLATFORM_PREFIX)) throw refuse('role-credential', `its platform is ${peer.platform}, a role credential's`);
  if (o.issued && peer.notAfter > peer.validUntil) {
    throw refuse('outlives-policy-cert', `it ends at ${peer.notAfter.toISOString()}, after the policy certificate (${peer.validUntil.toISOString()}), which no certificate simpleserver issues outlasts`);
  }
  return peer;
}

/** Verifies that a server chain is the policy authority's own. */
export function verifyAuthority(chain: Uint8Array[], policyCert: Uint8Array, at: Date): ValidatedPeer {
  let peer;
  try {
    peer = validateAdmission({ chain, policyCert, at, usage: 'server' });
  } catch (e) {
    throw withDateFix(e, {
      expired: `simpleserver makes itself a new one when it starts or reloads, so restart it, unless this machine's clock is ahead: ${SET_CLOCK}`,
      notYetValid: (behind) => `this machine's clock is ${behind} behind simpleserver's: ${SET_CLOCK}`,
    });
  }
  if (peer.platform !== AUTHORITY_PLATFORM) {
    throw new CertifierError('UNTRUSTED_PEER', `the server is a certified machine (platform ${peer.platform}), not the policy authority: --server names a key-server or another certified machine, not simpleserver`, { details: { reason: 'not-authority' } });
  }
  return peer;
}
