// Signatures with the Certifier Framework's algorithm names: RSASSA-PKCS1-v1_5 (RFC 8017,
// 8.2) and ECDSA (FIPS 186-5) with DER-encoded (r, s), as OpenSSL's ECDSA_sign writes them.
// verify returns false for a bad signature and throws only when the call itself is malformed.

import { sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { keyAlgOf, publicKeyOf, type KeyAlg } from './keys.ts';

export const SIGNATURE_ALGS = {
  'rsa-2048-sha256-pkcs-sign': { key: 'rsa2048', hash: 'sha256' },
  'ecc-256-sha256-pkcs-sign': { key: 'p256', hash: 'sha256' },
  'ecc-384-sha384-pkcs-sign': { key: 'p384', hash: 'sha384' },
} as const satisfies Record<string, { key: KeyAlg; hash: string }>;
export type SignatureAlg = keyof typeof SIGNATURE_ALGS;

export function isSignatureAlg(s: string): s is SignatureAlg {
  return Object.hasOwn(SIGNATURE_ALGS, s);
}

/** The algorithm a key signs with. */
export function signatureAlgFor(key: KeyObject): SignatureAlg {
  const alg = keyAlgOf(key);
  return alg === 'rsa2048' ? 'rsa-2048-sha256-pkcs-sign' : alg === 'p256' ? 'ecc-256-sha256-pkcs-sign' : 'ecc-384-sha384-pkcs-sign';
}

function checkPair(key: KeyObject, alg: SignatureAlg): string {
  const spec = SIGNATURE_ALGS[alg];
  if (keyAlgOf(key) !== spec.key) throw new TypeError(`${alg} needs a ${spec.key} key`);
  return spec.hash;
}

export function sign(privateKey: KeyObject, data: Uint8Array, alg: SignatureAlg = signatureAlgFor(privateKey)): Uint8Array {
  if (privateKey.type !== 'private') throw new TypeError('sign needs a private key');
  const hash = checkPair(privateKey, alg);
  return new Uint8Array(nodeSign(hash, data, { key: privateKey, dsaEncoding: 'der' }));
}

export function verify(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array, alg: SignatureAlg): boolean {
  const pub = publicKeyOf(publicKey);
  const hash = checkPair(pub, alg);
  try {
    return nodeVerify(hash, data, { key: pub, dsaEncoding: 'der' }, signature);
  } catch {
    return false; // a malformed signature is a bad signature
  }
}
