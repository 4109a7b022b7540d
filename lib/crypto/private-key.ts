// Reading a private key from PEM or DER, checked as a key_message is (keymessage.ts): Node reads
// a key whose EC point is not its scalar's, or whose RSA exponent or CRT values are another key's.

import { createPrivateKey, type KeyObject } from 'node:crypto';
import { CertifierError } from '../errors/index.ts';
import { keyAlgOf, looksLikePem, refuseBadEcKey } from './keys.ts';
import { requireMatchingParts } from './keymessage.ts';

/**
 * Reads a private key from PEM (PKCS#8, or the traditional "EC/RSA PRIVATE KEY" forms) or
 * from DER PKCS#8. Encrypted PEM is refused. INVALID_KEY when it is none of these, or when its
 * parts do not belong together.
 */
export function importPrivateKey(bytes: Uint8Array): KeyObject {
  let key: KeyObject;
  const pem = looksLikePem(bytes) ? Buffer.from(bytes).toString('latin1') : undefined;
  if (pem?.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /Proc-Type: *4,ENCRYPTED/.test(pem ?? '')) {
    throw new CertifierError('INVALID_KEY', 'the private key is encrypted with a passphrase: decrypt it first (openssl pkey -in F -out F2), and keep F2 0600');
  }
  try {
    key = pem !== undefined
      ? createPrivateKey({ key: pem, format: 'pem', passphrase: '' })
      : derPrivateKey(Buffer.from(bytes));
  } catch (cause) {
    throw new CertifierError('INVALID_KEY', 'not a private key in PEM, or in DER as PKCS#8 or SEC1 (EC)', { cause });
  }
  if (key.asymmetricKeyType === 'ec') refuseBadEcKey(key); // before keyAlgOf, which would abort on a point at infinity
  keyAlgOf(key);
  requireMatchingParts(key);
  return key;
}

/** A DER private key: PKCS#8, or SEC1 (an EC key as `openssl ec -outform DER` writes it). */
function derPrivateKey(der: Buffer): KeyObject {
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } catch (first) {
    try {
      return createPrivateKey({ key: der, format: 'der', type: 'sec1' });
    } catch {
      throw first;
    }
  }
}
