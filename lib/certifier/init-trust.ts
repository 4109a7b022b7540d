// init-trust on a machine: make an authentication key, get it certified, and keep both in the
// cryptstore in one atomic write. Running it again on a certified store does nothing, unless its
// certificate is due for renewal (and does not end with the policy certificate already); a
// renewal that fails then leaves the valid certificate in place.

import type { KeyObject } from 'node:crypto';
import { CertifierError, isCertifierError } from '../errors/index.ts';
import { fromKeyMessage, generateKeyPair, toKeyMessage, bytesEqual, type KeyAlg } from '../crypto/index.ts';
import { decode, encode, type KeyMessage } from '../wire/index.ts';
import { sameKey } from '../policy/index.ts';
import { parseCertificate, validateAdmission, withDateFix, type ValidatedPeer } from '../pki/index.ts';
import { requestCertificate } from './client.ts';
import { SET_CLOCK } from '../util/clock.ts';
import { certifiedPlatformOf, isAttestedPlatform, type Platform } from '../attest/index.ts';
import type { Cryptstore } from '../../cryptstore/index.ts';
import type { Waits } from '../channel/index.ts';
import { requireOwnIdentity } from './identity.ts';

export const authKeyTag = (domain: string) => `${domain}-private-auth-key`;
export const admissionCertTag = (domain: string) => `${domain}-admission-certificate`;
export const isAdmissionCertTag = (tag: string) => tag.endsWith(admissionCertTag(''));
/** A tag init-trust writes (for any domain): a machine's identity, which nothing else may overwrite. */
export const isIdentityTag = (tag: string) => tag.endsWith(authKeyTag('')) || isAdmissionCertTag(tag);

/** True when a certificate ending at `notAfter` ends with the policy certificate (`policyCertEnds`): no renewal extends it. */
export function endsWithPolicyCert(notAfter: Date, policyCertEnds: Date | undefined): boolean {
  return policyCertEnds !== undefined && notAfter.getTime() >= policyCertEnds.getTime();
}

/** init-trust renews a certificate with less than this left before it expires. */
export const RENEW_BEFORE_MS = 3 * 86_400_000;

export interface MachineIdentity {
  key: KeyObject;
  certificate: Uint8Array;
  peer: ValidatedPeer;
}

/** The platform an admission certificate names when issue-cert made it offline, not simpleserver; undefined otherwise, or for no certificate. */
function issuedOffline(der: Uint8Array): string | undefined {
  let platform: string | undefined;
  try {
    platform = parseCertificate(der).admission?.platform;
  } catch {
    return undefined;
  }
  return platform !== undefined && !isAttestedPlatform(platform) ? platform : undefined;
}

/** The machine's key and admission certificate from its store, checked against the policy cert. */
export async function loadIdentity(store: Cryptstore, domain: string, policyCert: Uint8Array, at = new Date()): Promise<MachineIdentity> {
  let keyEntry;
  let certEntry;
  try {
    keyEntry = await store.get(authKeyTag(domain));
    certEntry = await store.get(admissionCertTag(domain));
  } catch (e) {
    if (isCertifierError(e, 'NOT_FOUND')) throw new CertifierError('NOT_FOUND', `this machine is not certified for domain "${domain}" yet: run cert-utility init-trust`);
    throw e;
  }
  const key = fromKeyMessage(decode<KeyMessage>('key_message', keyEntry.blob));
  let peer;
  try {
    peer = validateAdmission({ chain: [certEntry.blob], policyCert, at, usage: 'machine', role: "machine's stored" });
  } catch (e) {
    // Put there by hand (Scenario 2) as PEM or another file: say which item, and how to store it.
    if (isCertifierError(e, 'BAD_CERTIFICATE') && e.details?.reason !== undefined && certEntry.type !== 'X509-der-cert') {
      throw new CertifierError('BAD_CERTIFICATE', `this machine's admission certificate for "${domain}" (${admissionCertTag(domain)} in its cryptstore, a ${certEntry.type} item) is not a DER certificate (${e.message}): store the certificate again with cert-utility put-item --tag ${admissionCertTag(domain)} --type X509-der-cert (which takes PEM or DER)`, { cause: e, details: e.details });
    }
    // One issued offline (Scenario 2) came from issue-cert, not from simpleserver: its fixes say so.
    const offline = issuedOffline(certEntry.blob);
    const reissue = (withKey: string) => `issue this machine's certificate again with cert-utility issue-cert${withKey}, and put-item it as the tag's next version (it was issued offline, platform ${offline})`;
    // Any other fault goes on as it is, but our own certificate outside its dates says what to do
    // (the policy certificate's end says its own fix).
    if (!isCertifierError(e, 'UNTRUSTED_PEER')) {
      throw withDateFix(e, {
        expired: `${offline === undefined ? 'certify this machine again' : `${reissue('')}, or certify this machine`} with cert-utility init-trust, which replaces an ended certificate (or, if this machine's clock is what is wrong, set it right: README "Clocks")`,
        notYetValid: (behind) => `this machine's clock is ${behind} behind that of the machine that issued it (simpleserver, or for issue-cert the policy key's): ${SET_CLOCK}`,
      });
    }
    // Not a peer's: our own certificate, from another policy key (the key replaced, or the wrong --policy-cert).
    const fix = offline !== undefined
      ? `${reissue(' and the new policy key')}, or certify this machine with cert-utility init-trust and the new policy certificate`
      : 'certify this machine again with cert-utility init-trust and the new policy certificate';
    throw new CertifierError('UNTRUSTED_PEER', `this machine's own admission certificate for "${domain}", in its cryptstore, is not one the given policy certificate vouches for (${e.message}): if the policy key was replaced, ${fix}`, { cause: e, details: e.details });
  }
  requireOwnIdentity(peer, `this machine's admission certificate for "${domain}" (${admissionCertTag(domain)} in its cryptstore)`, { fix: ': certify this machine again with cert-utility init-trust (one issued offline: issue it again with cert-utility issue-cert)' });
  // Only a hand-made identity can be a mismatched pair (the store's items are authenticated):
  // a certificate issued for another machine's public key, say.
  if (!sameKey(peer.publicKey, key)) {
    throw new CertifierError('INVALID_KEY', `the stored admission certificate for "${domain}" (${admissionCertTag(domain)}) does not name the stored key (${authKeyTag(domain)}): a certificate issued for another key; put in the certificate issued for the stored key (the public key generate-key wrote out), or certify this machine anew with cert-utility init-trust --force`, { details: { reason: 'certificate-for-another-key' } });
  }
  return { key, certificate: certEntry.blob, peer };
}

export interface InitTrustOptions {
  store: Cryptstore;
  domain: string;
  policyCert: Uint8Array;
  platform: Platform;
  host: string;
  port: number;
  force?: boolean;
  keyAlg?: KeyAlg;
  plain?: boolean;
  now?: () => Date;
  /** See CertifyOptions.onRequest. */
  onRequest?: (request: Uint8Array) => void;
  /** See CertifyOptions.signal. */
  signal?: AbortSignal;
  /** How long to wait for simpleserver at each step (10 s each unless given). */
  waits?: Waits;
}

export interface InitTrustResult {
  status: 'already-certified' | 'certified';
  peer: ValidatedPeer;
  /** Why a renewal that was due failed: the stored certificate, still valid after the attempt, stands (already-certified). */
  renewalFailed?: CertifierError;
  /** Due, but not renewed: it ends with the policy certificate, and a new one would end no later (already-certified). */
  endsWithPolicyCert?: Date;
  /**
   * Why a stored certificate was replaced other than as due (certified), where that is worth
   * saying: 'other-policy-key', one the policy certificate given does not vouch for (the policy key replaced).
   */
  why?: 'other-policy-key';
}

export async function initTrust(o: InitTrustOptions): Promise<InitTrustResult> {
  const now = o.now ?? (() => new Date());
  // A certificate only due for renewal, still valid and of this measurement: one to fall back on.
  let standing: ValidatedPeer | undefined;
  let why: InitTrustResult['why'];
  if (!o.force) {
    const current = await loadIdentity(o.store, o.domain, o.policyCert, now()).catch((e) => {
      // Missing, expired or otherwise unusable: certify afresh. Damage is not papered over.
      // A pair put in by hand that does not match is the operator's to mend, not replaced.
      if (isCertifierError(e, 'INTEGRITY') || isCertifierError(e, 'WRONG_KEY') || (isCertifierError(e, 'INVALID_KEY') && e.details?.reason === 'certificate-for-another-key')) throw e;
      // loadIdentity's UNTRUSTED_PEER: issued under another policy key than the one given.
      if (isCertifierError(e, 'UNTRUSTED_PEER')) why = 'other-policy-key';
      return undefined;
    });
    if (current && bytesEqual(current.peer.measurement, o.platform.measurement) && !namesOtherPlatform(current.peer, o.platform)) {
      if (!renewDue(current.peer, now())) return { status: 'already-certified', peer: current.peer };
      // Nothing would change: no certificate issued under the policy certificate lasts past it.
      const policyCertEnds = parseCertificate(o.policyCert).notAfter;
      if (endsWithPolicyCert(current.peer.notAfter, policyCertEnds)) return { status: 'already-certified', peer: current.peer, endsWithPolicyCert: policyCertEnds };
      standing = current.peer;
    }
  }
  const { privateKey } = await generateKeyPair(o.keyAlg ?? 'p256');
  let got;
  try {
    got = await requestCertificate({ host: o.host, port: o.port, policyCert: o.policyCert, platform: o.platform, authKey: privateKey, plain: o.plain, now, ...o.waits, ...(o.onRequest ? { onRequest: o.onRequest } : {}), ...(o.signal ? { signal: o.signal } : {}) });
  } catch (e) {
    // A renewal ahead of time that failed (simpleserver down, say) leaves the machine certified as it was,
    // unless its certificate ended while it was tried (a connect and a handshake that time out take a while).
    if (standing && e instanceof CertifierError && now() <= standing.validUntil) return { status: 'already-certified', peer: standing, renewalFailed: e };
    throw e;
  }
  await o.store.putAll([
    { tag: authKeyTag(o.domain), blob: encode('key_message', toKeyMessage(privateKey, 'auth-key')), options: { type: 'key-message-serialized-protobuf', exportable: false } },
    { tag: admissionCertTag(o.domain), blob: got.certificate, options: { type: 'X509-der-cert', exportable: true } },
  ]);
  return { status: 'certified', peer: got.peer, ...(why ? { why } : {}) };
}

/**
 * A certificate naming a platform that verified evidence yields, but not the one this machine
 * attests with: not this machine's description. One issued offline (Scenario 2, "issued-offline")
 * names a platform of the operator's choosing, and stands.
 */
function namesOtherPlatform(peer: ValidatedPeer, platform: Platform): boolean {
  return isAttestedPlatform(peer.platform) && peer.platform !== certifiedPlatformOf(platform.type);
}

/** Within 3 days of its end, or past half its life for a certificate of 6 days or less (else a re-run would always renew it). */
export function renewDue(peer: ValidatedPeer, at: Date): boolean {
  // validUntil: its use ends with the policy certificate, should it itself end later (issued offline).
  const life = peer.validUntil.getTime() - peer.notBefore.getTime();
  return peer.validUntil.getTime() - at.getTime() < Math.min(RENEW_BEFORE_MS, life / 2);
}
