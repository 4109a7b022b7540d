// Getting certified: attest over a TLS session with the certificate authority, bind the evidence
// to that session, and check the certificate that comes back before anyone keeps it.

import type { KeyObject } from 'node:crypto';
import { CertifierError, type ErrorCode } from '../errors/index.ts';
import { publicKeyOf, toKeyMessage, bytesEqual, toHex } from '../crypto/index.ts';
import { encode, parseTrustResponse, peerCode } from '../wire/index.ts';
import { formatCertifierTime, sameKey } from '../policy/index.ts';
import { validateAdmission, toPem, withDateFix, type ValidatedPeer } from '../pki/index.ts';
import { certifiedPlatformOf, type Platform } from '../attest/index.ts';
import { connect, connectWaits, type Waits } from '../channel/index.ts';
import { CERTIFIER_CODES, CERTIFIER_FRAME_LIMIT, SESSION_BINDING_BYTES, SESSION_BINDING_LABEL } from './service.ts';
import { requireOwnIdentity, verifyAuthority } from './identity.ts';
import { SET_CLOCK } from '../util/clock.ts';

/** Waits (connectTimeoutMs, handshakeTimeoutMs, readTimeoutMs): 10 s each, as cert-utility has them by default. */
export interface CertifyOptions extends Waits {
  host: string;
  port: number;
  policyCert: Uint8Array;
  platform: Platform;
  /** The machine's authentication key (private); its public half gets certified. */
  authKey: KeyObject;
  /** The original plain-TCP protocol: no TLS, so no session binding. */
  plain?: boolean;
  /** Abandons the request when aborted (a key-server stopping while it renews its certificate). */
  signal?: AbortSignal;
  now?: () => Date;
  /** Called with the serialized trust request just before it is sent (kept for `simpleserver explain`, even when refused). */
  onRequest?: (request: Uint8Array) => void;
}

export interface Certified {
  certificate: Uint8Array;
  peer: ValidatedPeer;
  /** The serialized trust_request_message that was sent (for `simpleserver explain`). */
  request: Uint8Array;
}

/** What a refusal code most often means on the machine's side, when the server says no more. */
const HINTS: Partial<Record<ErrorCode, string | ((platform: Platform) => string)>> = {
  CLAIM_EXPIRED: 'a policy claim has ended or not begun, or this machine\'s evidence is dated outside it: a policy to renew, or a clock more than 5 minutes off (this one, or the server\'s); the server\'s log has the dates',
  CERT_EXPIRED: 'a certificate is outside its dates: the policy certificate, ending within a minute or ended (no certificate under it lasts longer: replace the policy key, README "Replacing the policy key"), or one in this machine\'s evidence, or a clock is wrong; the server\'s log says which',
  SESSION_MISMATCH: 'the evidence was not made for this connection (a proxy in between?)',
  // What to do depends on the platform: a simulated machine names its measurement and platform files with flags.
  MEASUREMENT_NOT_TRUSTED: (p) => `the policy does not trust this machine's measurement, ${toHex(p.measurement)}: ${p.isTestPlatform ? 'check that --measurement-file is this program\'s (cert-utility measure), or ' : ''}sign a policy that trusts it (make-policy --trust-measurement) and send simpleserver SIGHUP`,
  PLATFORM_NOT_TRUSTED: (p) => `the policy does not trust this platform: ${p.isTestPlatform ? 'check that --platform-dir holds the files of a platform the policy trusts, or sign a policy that trusts this one (make-policy --trust-platform)' : 'sign a policy that trusts its AMD root (make-policy --trust-amd-root)'} and send simpleserver SIGHUP`,
};

function refusal(raw: string | undefined, platform: Platform): CertifierError {
  // Only a code simpleserver sends: its USAGE would pass for this command's own misuse.
  const { code, said } = peerCode(raw, CERTIFIER_CODES);
  // Its own fault: its log says what; nothing on this side to debug (remote: no hint to).
  if (code === 'INTERNAL') return new CertifierError(code, 'the certificate authority failed to certify this machine: a fault of the server, not of this request; its log says what', { details: { remote: true } });
  const known = HINTS[code];
  const hint = typeof known === 'function' ? known(platform) : known;
  // The code is the error's own (printed beside its message): named here only when the server said another.
  return new CertifierError(code, `the certificate authority refused to certify this machine${said === code ? '' : ` (${said})`}${hint ? `: ${hint}` : ''}`);
}

export async function requestCertificate(o: CertifyOptions): Promise<Certified> {
  const now = o.now ?? (() => new Date());
  const conn = await connect({
    host: o.host, port: o.port,
    // A larger request is refused here, not cut off by the server.
    ...connectWaits(o, { frameLimit: CERTIFIER_FRAME_LIMIT }),
    ...(o.plain ? { plain: true } : { tls: { ca: toPem(o.policyCert) }, verifyPeer: (chain: Uint8Array[]) => verifyAuthority(chain, o.policyCert, now()) }),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  try {
    const binding = o.plain ? undefined : conn.exportKeyingMaterial(SESSION_BINDING_LABEL, SESSION_BINDING_BYTES);
    const authPublic = publicKeyOf(o.authKey);
    const support = await o.platform.attest({
      enclaveType: o.platform.type,
      time: formatCertifierTime(now()),
      enclaveKey: toKeyMessage(authPublic, 'auth-key'),
      ...(binding ? { sessionBinding: binding } : {}),
    });
    const request = encode('trust_request_message', {
      requestingEnclaveTag: 'requesting-enclave', providingEnclaveTag: 'providing-enclave',
      submittedEvidenceType: 'vse-attestation-package', purpose: 'authentication', support,
    });
    o.onRequest?.(request);
    const answer = await conn.request(request);
    // One request per connection, so close now rather than after checking the answer: by then the
    // server's close has long arrived, and ending TLS on a connection the peer has closed cost
    // ~0.2 ms more CPU per certification (measured with both ends in one process).
    const closed = conn.close().catch(() => {});
    const response = parseTrustResponse(answer);
    if (response.status !== 'succeeded' || !response.artifact) throw refusal(response.errorCode, o.platform);
    const certificate = new Uint8Array(response.artifact);
    // Kept only if this machine can serve and connect with it: a re-run takes a kept one as certified.
    const peer = requireOwnIdentity(issuedInForce(certificate, o.policyCert, now()), 'the certificate returned', { issued: true });
    if (!sameKey(peer.publicKey, authPublic)) throw new CertifierError('UNTRUSTED_PEER', 'the certificate returned does not name this machine\'s key');
    if (!bytesEqual(peer.measurement, o.platform.measurement)) throw new CertifierError('UNTRUSTED_PEER', 'the certificate returned names another measurement');
    const platform = certifiedPlatformOf(o.platform.type);
    if (peer.platform !== platform) {
      throw new CertifierError('UNTRUSTED_PEER', `the certificate returned names platform ${peer.platform}, not ${platform ?? o.platform.type}, the one this machine attested with`, { details: { reason: 'other-platform' } });
    }
    await closed;
    return { certificate, peer, request };
  } finally {
    await conn.close().catch(() => {});
  }
}

/**
 * The certificate simpleserver has just issued, checked as this machine will use it. Made moments
 * ago, one outside its dates says how far this machine's clock is from simpleserver's.
 */
function issuedInForce(certificate: Uint8Array, policyCert: Uint8Array, at: Date): ValidatedPeer {
  try {
    return validateAdmission({ chain: [certificate], policyCert, at, usage: 'machine', role: 'newly issued' });
  } catch (e) {
    throw withDateFix(e, {
      expired: `this machine's clock is ahead of simpleserver's by more than the certificate's life: ${SET_CLOCK}, then run init-trust again`,
      notYetValid: (behind) => `this machine's clock is ${behind} behind simpleserver's: ${SET_CLOCK}, then run init-trust again`,
    }, { justIssued: true });
  }
}
