// The simulated platform's self-signed certificate: how a domain owner names the simulated
// "hardware vendor" key it trusts (make-policy --trust-platform). Its subject says TEST.

import type { KeyObject } from 'node:crypto';
import { basicConstraints, encodeName, keyIdentifier, keyUsage, randomSerial, signCertificate, spkiOf, subjectKeyId } from '../pki/build.ts';
import { OID } from '../pki/oids.ts';
import { CLOCK_SKEW_SECONDS } from '../pki/problems.ts';

export const PLATFORM_CERT_ORGANIZATION = 'simulated-enclave TEST platform';

export function platformCertificate(platformKey: KeyObject, o: { now?: Date; days?: number } = {}): Uint8Array {
  const now = o.now ?? new Date();
  // Back as far as every certificate of this suite, which the clock messages (clockBehind) count on.
  const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000 - CLOCK_SKEW_SECONDS * 1000);
  const name = encodeName([[OID.commonName, 'platformKey'], [OID.organizationName, PLATFORM_CERT_ORGANIZATION]]);
  const spki = spkiOf(platformKey);
  return signCertificate({
    serial: randomSerial(), issuer: name, subject: name, notBefore,
    notAfter: new Date(notBefore.getTime() + (o.days ?? 3650) * 86_400_000), spki,
    extensions: [basicConstraints(true), keyUsage(['digitalSignature', 'keyCertSign']), subjectKeyId(keyIdentifier(spki))],
  }, platformKey);
}
