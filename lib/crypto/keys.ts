// Asymmetric keys: generation, and import/export as PKCS#8 / SPKI in PEM or DER.
// Keys are node:crypto KeyObjects; the Certifier key_message form lives in keymessage.ts.

import { createPrivateKey, createPublicKey, generateKeyPair as nodeGenerateKeyPair, type KeyObject } from 'node:crypto';
import { CertifierError } from '../errors/index.ts';

export const KEY_ALGS = ['p256', 'p384', 'rsa2048'] as const;
export type KeyAlg = (typeof KEY_ALGS)[number];

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function isKeyAlg(s: string): s is KeyAlg {
  return (KEY_ALGS as readonly string[]).includes(s);
}

/** A fresh key pair: ECDSA on P-256 or P-384, or RSA-2048 with e = 65537. */
export function generateKeyPair(alg: KeyAlg): Promise<KeyPair> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, publicKey: KeyObject, privateKey: KeyObject) =>
      err ? reject(err) : resolve({ privateKey, publicKey });
    if (alg === 'rsa2048') nodeGenerateKeyPair('rsa', { modulusLength: 2048, publicExponent: 0x10001 }, done);
    else nodeGenerateKeyPair('ec', { namedCurve: alg === 'p256' ? 'P-256' : 'P-384' }, done);
  });
}

/** Which of our algorithms a key belongs to; UNSUPPORTED for anything else. */
export function keyAlgOf(key: KeyObject): KeyAlg {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec') {
    if (d?.namedCurve === 'prime256v1') return 'p256';
    if (d?.namedCurve === 'secp384r1') return 'p384';
  } else if (key.asymmetricKeyType === 'rsa' && d?.modulusLength === 2048) {
    return 'rsa2048';
  }
  const what = key.asymmetricKeyType === 'rsa' ? `RSA-${d?.modulusLength}` : `${key.asymmetricKeyType} ${d?.namedCurve ?? ''}`.trim();
  throw new CertifierError('UNSUPPORTED', `unsupported key type ${what}; use ECDSA P-256, P-384 or RSA-2048`);
}

export function exportPrivateKey(key: KeyObject, format: 'pem' | 'der' = 'pem'): Uint8Array {
  if (key.type !== 'private') throw new TypeError('exportPrivateKey needs a private key');
  return format === 'pem'
    ? new TextEncoder().encode(key.export({ type: 'pkcs8', format: 'pem' }) as string)
    : new Uint8Array(key.export({ type: 'pkcs8', format: 'der' }));
}

export function exportPublicKey(key: KeyObject, format: 'pem' | 'der' = 'pem'): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return format === 'pem'
    ? new TextEncoder().encode(pub.export({ type: 'spki', format: 'pem' }) as string)
    : new Uint8Array(pub.export({ type: 'spki', format: 'der' }));
}

const PEM_START = '-----BEGIN ';

export function looksLikePem(bytes: Uint8Array): boolean {
  const head = Buffer.from(bytes.subarray(0, 256)).toString('latin1');
  return head.includes(PEM_START);
}

/**
 * Reads a private key from PEM (PKCS#8, or the traditional "EC/RSA PRIVATE KEY" forms) or
 * from DER PKCS#8. Encrypted PEM is refused. INVALID_KEY when it is none of these.
 */
export function importPrivateKey(bytes: Uint8Array): KeyObject {
  let key: KeyObject;
  try {
    key = looksLikePem(bytes)
      ? createPrivateKey({ key: Buffer.from(bytes).toString('latin1'), format: 'pem', passphrase: '' })
      : createPrivateKey({ key: Buffer.from(bytes), format: 'der', type: 'pkcs8' });
  } catch (cause) {
    throw new CertifierError('INVALID_KEY', 'not a private key in PEM or DER (PKCS#8) form', { cause });
  }
  keyAlgOf(key);
  return key;
}

/**
 * Reads a public key from PEM or DER SPKI; a private key or an X.509 certificate in PEM is
 * also accepted and its public key returned.
 */
export function importPublicKey(bytes: Uint8Array): KeyObject {
  let key: KeyObject;
  try {
    key = looksLikePem(bytes)
      ? createPublicKey({ key: Buffer.from(bytes).toString('latin1'), format: 'pem' })
      : createPublicKey({ key: Buffer.from(bytes), format: 'der', type: 'spki' });
  } catch (cause) {
    throw new CertifierError('INVALID_KEY', 'not a public key in PEM or DER (SPKI) form', { cause });
  }
  keyAlgOf(key);
  return key;
}

export function publicKeyOf(key: KeyObject): KeyObject {
  return key.type === 'private' ? createPublicKey(key) : key;
}
