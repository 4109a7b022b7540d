// Asymmetric keys: generation, and import/export as PKCS#8 / SPKI in PEM or DER.
// Keys are node:crypto KeyObjects; the Certifier key_message form lives in keymessage.ts.

import { createPrivateKey, createPublicKey, generateKeyPair as nodeGenerateKeyPair, type AsymmetricKeyDetails, type KeyObject } from 'node:crypto';
import { p256, p384 } from '@noble/curves/nist.js';
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

// KeyObjects are immutable, and asking OpenSSL 3 for a key's details costs tens of microseconds
// each time: each key's answer is kept for as long as the key lives.
const algOfKey = new WeakMap<KeyObject, KeyAlg>();

/** Which of our algorithms a key belongs to; UNSUPPORTED for anything else. */
export function keyAlgOf(key: KeyObject): KeyAlg {
  let alg = algOfKey.get(key);
  if (alg === undefined) {
    alg = readKeyAlg(key);
    algOfKey.set(key, alg);
  }
  return alg;
}

/** OpenSSL's bound on an RSA public exponent (OPENSSL_RSA_MAX_PUBEXP_BITS); real keys use 65537. */
const MAX_RSA_EXPONENT_BITS = 64;
const detailsOfKey = new WeakMap<KeyObject, AsymmetricKeyDetails | undefined>();

/**
 * The key's asymmetricKeyDetails; undefined for an RSASSA-PSS key, and for an RSA key whose public
 * exponent is longer than 64 bits, which Node would turn into a BigInt in time growing faster than
 * its length (seconds for a 150 KB one, minutes for a frame's worth): keys come from anybody (a
 * key_message in evidence, a certificate's SPKI), so the exponent's length is read from its JWK first.
 */
export function keyDetails(key: KeyObject): AsymmetricKeyDetails | undefined {
  if (detailsOfKey.has(key)) return detailsOfKey.get(key);
  let details: AsymmetricKeyDetails | undefined;
  if (key.asymmetricKeyType === 'rsa') {
    const e = publicKeyOf(key).export({ format: 'jwk' }).e ?? '';
    details = bitLength(Buffer.from(e, 'base64url')) > MAX_RSA_EXPONENT_BITS ? undefined : key.asymmetricKeyDetails;
  } else if (key.asymmetricKeyType === 'rsa-pss') {
    details = undefined; // no JWK to read the exponent from, and no use for the key here
  } else {
    details = key.asymmetricKeyDetails;
  }
  detailsOfKey.set(key, details);
  return details;
}

/** The bit length of an unsigned big-endian integer (leading zero bytes allowed; 0 for zero). */
export function bitLength(b: Uint8Array): number {
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  return i === b.length ? 0 : (b.length - i - 1) * 8 + 32 - Math.clz32(b[i]!);
}

function readKeyAlg(key: KeyObject): KeyAlg {
  const d = keyDetails(key);
  if (!d && key.asymmetricKeyType === 'rsa') throw unsupportedKey(`RSA with a public exponent over ${MAX_RSA_EXPONENT_BITS} bits`);
  if (key.asymmetricKeyType === 'ec') {
    if (d?.namedCurve === 'prime256v1') return 'p256';
    if (d?.namedCurve === 'secp384r1') return 'p384';
  } else if (key.asymmetricKeyType === 'rsa' && d?.modulusLength === 2048) {
    return 'rsa2048';
  }
  throw unsupportedKey(key.asymmetricKeyType === 'rsa' ? `RSA-${d?.modulusLength}` : `${key.asymmetricKeyType} ${d?.namedCurve ?? ''}`.trim());
}

/** UNSUPPORTED for a key of type `what` ("RSA-1024", "ed25519"), naming the ones that are. */
export function unsupportedKey(what: string): CertifierError {
  return new CertifierError('UNSUPPORTED', `unsupported key type ${what}; use ECDSA P-256, P-384 or RSA-2048`);
}

export function exportPrivateKey(key: KeyObject, format: 'pem' | 'der' = 'pem'): Uint8Array {
  if (key.type !== 'private') throw new TypeError('exportPrivateKey needs a private key');
  return format === 'pem'
    ? new TextEncoder().encode(key.export({ type: 'pkcs8', format: 'pem' }) as string)
    : new Uint8Array(key.export({ type: 'pkcs8', format: 'der' }));
}

/**
 * The PKCS#8 DER of a private key made from its parts, the same whatever file it was read from: an
 * EC key read without its public point (SEC1 allows that, `openssl ec -no_public`) exports without
 * it, so its bytes as read differ from the same key read with it. Bytes that stand for the key
 * (a seal derived from them) come from here.
 */
export function canonicalPrivateKeyDer(key: KeyObject): Uint8Array {
  if (key.type !== 'private') throw new TypeError('canonicalPrivateKeyDer needs a private key');
  return exportPrivateKey(createPrivateKey({ key: key.export({ format: 'jwk' }), format: 'jwk' }), 'der');
}

// The DER SubjectPublicKeyInfo of an EC key on a named curve is a fixed header and the
// uncompressed point (RFC 5480, 2): the very bytes OpenSSL writes. Writing them from the JWK
// coordinates takes microseconds; OpenSSL 3's encoder takes about 0.1 ms per call.
const EC_SPKI: Readonly<Record<string, { header: Buffer; size: number }>> = {
  'P-256': { header: Buffer.from('3059301306072a8648ce3d020106082a8648ce3d03010703420004', 'hex'), size: 32 },
  'P-384': { header: Buffer.from('3076301006072a8648ce3d020106052b8104002203620004', 'hex'), size: 48 },
};

/** SPKI DER of a P-256 or P-384 public key; undefined for any other key (OpenSSL writes those). */
function ecSpki(pub: KeyObject): Uint8Array | undefined {
  if (pub.asymmetricKeyType !== 'ec') return undefined;
  const curve = pub.asymmetricKeyDetails?.namedCurve === 'prime256v1' ? 'P-256' : pub.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'P-384' : undefined;
  if (!curve) return undefined;
  const { header, size } = EC_SPKI[curve]!;
  const jwk = pub.export({ format: 'jwk' });
  const x = Buffer.from(jwk.x ?? '', 'base64url');
  const y = Buffer.from(jwk.y ?? '', 'base64url');
  if (jwk.crv !== curve || x.length !== size || y.length !== size) return undefined;
  return new Uint8Array(Buffer.concat([header, x, y]));
}

/**
 * A public key from DER SPKI, as createPublicKey reads it (any key type; throws what it throws),
 * but never an EC point in the hybrid form (RFC 5480 2.2: MUST NOT be used), the point at
 * infinity or a curve given by its parameters (INVALID_KEY), all of which OpenSSL reads: Node
 * aborts the whole process when asked for the details or the JWK of a key at infinity. P-256 and P-384 keys in the form above go in as
 * JWK: half the time of OpenSSL 3's decoder, and no less strict (the point must be on the curve,
 * and the whole key passes OpenSSL's key check).
 */
export function publicKeyFromSpki(der: Uint8Array): KeyObject {
  const crv = ecCurveOfSpki(der);
  if (!crv) {
    const hybrid = hybridCurveOfSpki(der);
    if (hybrid) throw new CertifierError('INVALID_KEY', `the ${hybrid} public key is a point in the hybrid form, which RFC 5480 forbids`);
    const key = createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType === 'ec') refuseBadEcKey(key);
    return key;
  }
  const { header, size } = EC_SPKI[crv]!;
  const x = Buffer.from(der.subarray(header.length, header.length + size)).toString('base64url');
  const y = Buffer.from(der.subarray(header.length + size)).toString('base64url');
  return createPublicKey({ key: { kty: 'EC', crv, x, y }, format: 'jwk' });
}

/** 'P-256' or 'P-384' when `der` is that curve's SPKI in the fixed form above; undefined otherwise. */
function ecCurveOfSpki(der: Uint8Array): string | undefined {
  for (const [crv, { header, size }] of Object.entries(EC_SPKI)) {
    if (der.length === header.length + 2 * size && Buffer.compare(header, der.subarray(0, header.length)) === 0) return crv;
  }
  return undefined;
}

/** 'P-256' or 'P-384' when `der` is that curve's SPKI of the fixed form's length with another prefix than 04 (06, 07: hybrid). */
function hybridCurveOfSpki(der: Uint8Array): string | undefined {
  for (const [crv, { header, size }] of Object.entries(EC_SPKI)) {
    const last = header.length - 1;
    if (der.length === header.length + 2 * size && der[last] !== 0x04 && Buffer.compare(header.subarray(0, last), der.subarray(0, last)) === 0) return crv;
  }
  return undefined;
}

/** The reason (details.reason) of the INVALID_KEY refusing an EC key whose curve is given by its parameters. */
export const EXPLICIT_CURVE = 'explicit-curve';

/** The DER of the OID id-ecPublicKey (1.2.840.10045.2.1): what an EC key's AlgorithmIdentifier opens with. */
const EC_PUBLIC_KEY_OID = Buffer.from('06072a8648ce3d0201', 'hex');

/**
 * What every EC key read from outside passes (after OpenSSL has read it, before anything asks its
 * details): INVALID_KEY for either of two keys OpenSSL takes.
 * - The point at infinity (a single 00 byte, on any curve, named or explicit), which OpenSSL
 *   cannot encode and on whose details or JWK Node aborts. Encoding it is the test (about 0.1 ms;
 *   a public key in the fixed P-256/P-384 form never comes here). A private key is tested with its
 *   public key, which a scalar of 0 or of the group order also puts at infinity.
 * - A curve given by its parameters (specifiedCurve) rather than named: RFC 5480 2.1.1 forbids it
 *   in PKIX, and trusting such parameters is how CVE-2020-0601 worked. OpenSSL maps the parameters
 *   of P-256 or P-384 to the named curve and keeps them in the key, so its own encoding shows them:
 *   the parameters after id-ecPublicKey are then a SEQUENCE (or NULL, implicitlyCA), not an OID.
 */
export function refuseBadEcKey(key: KeyObject): void {
  let der: Buffer;
  try {
    if (key.type === 'private') {
      der = key.export({ type: 'pkcs8', format: 'der' });
      createPublicKey(key).export({ format: 'jwk' });
    } else {
      der = key.export({ type: 'spki', format: 'der' });
    }
  } catch (cause) {
    throw new CertifierError('INVALID_KEY', `the EC ${key.type} key's point is the point at infinity, which OpenSSL cannot write (no key at all)`, { cause });
  }
  // OpenSSL's own encoding: the AlgorithmIdentifier comes before any key bytes, so the first
  // id-ecPublicKey is it, and the byte after it the parameters' tag.
  const at = der.indexOf(EC_PUBLIC_KEY_OID);
  if (at < 0 || der[at + EC_PUBLIC_KEY_OID.length] !== 0x06) {
    throw new CertifierError('INVALID_KEY', `the EC ${key.type} key gives its curve's parameters instead of naming the curve (specifiedCurve), which RFC 5480 forbids (openssl pkey -ec_param_enc named_curve rewrites such a key file with the name)`, { details: { reason: EXPLICIT_CURVE } });
  }
}

/** A public key read from DER SPKI: its algorithm (undefined if not one of ours), and the key. */
export interface SpkiKey {
  alg: KeyAlg | undefined;
  /** The KeyObject; for P-256 and P-384 made on first call (the point was checked already). */
  key(): KeyObject;
}

const EC_CURVES: Readonly<Record<string, { alg: KeyAlg; point: typeof p256.Point }>> = {
  'P-256': { alg: 'p256', point: p256.Point },
  'P-384': { alg: 'p384', point: p384.Point },
};

/** An unsigned big-endian integer (through one hex string, where noble's fromBytes builds one a byte at a time). */
const bigEndian = (b: Uint8Array): bigint => BigInt(`0x${Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')}`);

/**
 * Whether the coordinates x || y (big-endian, `size` bytes each) are a point of the curve: both
 * below the field's prime and y^2 = x^3 + ax + b. For these curves (cofactor 1) every such point
 * is in the prime-order group, and none is the point at infinity, which has no coordinates
 * (b is not 0, so (0, 0) is not on the curve either). What noble's Point.fromBytes with
 * assertValidity checks, once rather than twice and without building a point: a third of its time
 * (it runs for every new peer certificate).
 */
function onCurve(Point: typeof p256.Point, xy: Uint8Array, size: number): boolean {
  const { Fp } = Point;
  const { a, b } = Point.CURVE();
  const x = bigEndian(xy.subarray(0, size));
  const y = bigEndian(xy.subarray(size, 2 * size));
  if (!Fp.isValid(x) || !Fp.isValid(y)) return false;
  return Fp.eql(Fp.sqr(y), Fp.add(Fp.add(Fp.mul(Fp.sqr(x), x), Fp.mul(a, x)), b));
}

/**
 * Reads DER SPKI as strictly as publicKeyFromSpki, but without importing a P-256 or P-384 key
 * until it is used: the point is checked to be on its curve here (microseconds), the import
 * (about 0.15 ms under OpenSSL 3) happens on the first key() call. A peer certificate whose key
 * is never used then costs no import. Other keys are imported now. Throws what the import throws.
 */
export function readSpki(der: Uint8Array): SpkiKey {
  const crv = ecCurveOfSpki(der);
  if (crv) {
    const curve = EC_CURVES[crv]!;
    const { header, size } = EC_SPKI[crv]!;
    // The header ends with 0x04 (uncompressed): x || y follow.
    if (!onCurve(curve.point, der.subarray(header.length), size)) throw new CertifierError('INVALID_KEY', `the ${crv} public key is not a point of the curve`);
    const copy = new Uint8Array(der);
    let key: KeyObject | undefined;
    return { alg: curve.alg, key: () => (key ??= publicKeyFromSpki(copy)) };
  }
  const key = publicKeyFromSpki(der);
  let alg: KeyAlg | undefined;
  try {
    alg = keyAlgOf(key);
  } catch {
    alg = undefined;
  }
  return { alg, key: () => key };
}

export function exportPublicKey(key: KeyObject, format: 'pem' | 'der' = 'pem'): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  if (format === 'pem') return new TextEncoder().encode(pub.export({ type: 'spki', format: 'pem' }) as string);
  return ecSpki(pub) ?? new Uint8Array(pub.export({ type: 'spki', format: 'der' }));
}

const PEM_START = '-----BEGIN ';

/**
 * PEM, possibly after text such as `openssl x509 -text` puts first. DER starts with a SEQUENCE
 * (0x30), so only the start of such a file is looked at: a PEM marker deep inside DER is data.
 */
export function looksLikePem(bytes: Uint8Array): boolean {
  const head = Buffer.from(bytes.subarray(0, 256)).toString('latin1');
  if (head.includes(PEM_START)) return true;
  return bytes[0] !== 0x30 && Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).includes(PEM_START, 0, 'latin1');
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
  if (key.asymmetricKeyType === 'ec') refuseBadEcKey(key); // before keyAlgOf, which would abort on a point at infinity
  keyAlgOf(key);
  return key;
}

export function publicKeyOf(key: KeyObject): KeyObject {
  return key.type === 'private' ? createPublicKey(key) : key;
}
