// The Certifier Framework's key_message form of keys ("vse-key"): RSA as big-endian integers,
// EC as curve name, parameters and affine point. Conversions go through JWK, and every
// imported key is checked (EC points on the curve, private scalars matching the public point).

import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { p256, p384 } from '@noble/curves/nist.js';
import { CertifierError } from '../errors/index.ts';
import { bitLength, keyAlgOf, unsupportedKey, type KeyAlg } from './keys.ts';
import { wipe } from './random.ts';
import type { KeyMessage } from '../wire/types.ts';

export const KEY_FORMAT = 'vse-key';

const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const unb64u = (s: string | undefined): Uint8Array => new Uint8Array(Buffer.from(s ?? '', 'base64url'));

function bigToBytes(n: bigint, size: number): Uint8Array {
  const hex = n.toString(16).padStart(size * 2, '0');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}
function bytesToBig(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt('0x' + Buffer.from(b).toString('hex'));
}
/** Strips leading zero bytes, as big-endian integers are usually written. */
function trim(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

const CURVES = {
  p256: { name: 'P-256', size: 32, noble: p256, type: 'ecc-256' },
  p384: { name: 'P-384', size: 48, noble: p384, type: 'ecc-384' },
} as const;

/** The Certifier key_type of a key, e.g. "ecc-256-private" or "rsa-2048-public". */
export function certifierKeyType(key: KeyObject): string {
  const alg = keyAlgOf(key);
  const base = alg === 'rsa2048' ? 'rsa-2048' : CURVES[alg].type;
  return `${base}-${key.type === 'private' ? 'private' : 'public'}`;
}

/** Converts a key to key_message; a private key keeps its private fields. */
export function toKeyMessage(key: KeyObject, keyName?: string): KeyMessage {
  const alg = keyAlgOf(key);
  const jwk = key.export({ format: 'jwk' });
  const km: KeyMessage = { keyType: certifierKeyType(key), keyFormat: KEY_FORMAT };
  if (keyName !== undefined) km.keyName = keyName;
  if (alg === 'rsa2048') {
    km.rsaKey = { publicModulus: trim(unb64u(jwk.n)), publicExponent: trim(unb64u(jwk.e)) };
    if (key.type === 'private') {
      Object.assign(km.rsaKey, {
        privateExponent: unb64u(jwk.d), privateP: unb64u(jwk.p), privateQ: unb64u(jwk.q),
        privateDp: unb64u(jwk.dp), privateDq: unb64u(jwk.dq), privateIqmp: unb64u(jwk.qi),
      });
    }
  } else {
    const c = CURVES[alg];
    const K = c.noble.Point.CURVE();
    km.eccKey = {
      curveName: c.name,
      curveP: bigToBytes(K.p, c.size), curveA: bigToBytes(K.a, c.size), curveB: bigToBytes(K.b, c.size),
      basePoint: { x: bigToBytes(K.Gx, c.size), y: bigToBytes(K.Gy, c.size) },
      orderOfBasePoint: bigToBytes(K.n, c.size),
      publicPoint: { x: unb64u(jwk.x), y: unb64u(jwk.y) },
    };
    if (key.type === 'private') km.eccKey.privateMultiplier = unb64u(jwk.d);
  }
  return km;
}

const bad = (why: string, cause?: unknown) =>
  new CertifierError('INVALID_KEY', `invalid key_message: ${why}`, cause === undefined ? undefined : { cause });

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1, s0, s1] = [m, ((a % m) + m) % m, 0n, 1n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw bad('RSA primes are not coprime');
  return ((s0 % m) + m) % m;
}

const RSA_BITS = 2048;

function rsaJwk(km: KeyMessage, wantPrivate: boolean): JsonWebKey {
  const r = km.rsaKey;
  if (!r?.publicModulus?.length || !r.publicExponent?.length) throw bad('rsa_key needs public_modulus and public_exponent');
  // RSA-2048 is the only size used (keyAlgOf): another is refused before any arithmetic on it.
  // Checking a private key's numbers grows with the square of their size, and anybody may send
  // simpleserver a key (an endorsement's signer): one filling a 1 MiB frame took it many minutes.
  const bits = bitLength(r.publicModulus);
  if (bits !== RSA_BITS) throw unsupportedKey(`RSA-${bits}`);
  const [n, e] = [bytesToBig(r.publicModulus), bytesToBig(r.publicExponent)];
  if (n % 2n === 0n) throw bad('the RSA modulus is even');
  if (e < 3n || e % 2n === 0n) throw bad('the RSA public exponent must be odd and at least 3');
  const jwk: JsonWebKey = { kty: 'RSA', n: b64u(trim(r.publicModulus)), e: b64u(trim(r.publicExponent)) };
  if (!wantPrivate) return jwk;
  if (!r.privateExponent?.length || !r.privateP?.length || !r.privateQ?.length) {
    throw bad('a private RSA key needs private_exponent, private_p and private_q');
  }
  const [d, p, q] = [bytesToBig(r.privateExponent), bytesToBig(r.privateP), bytesToBig(r.privateQ)];
  // A prime is above 1: 1 and the modulus multiply to it too, and would divide by zero below.
  if (p < 2n || q < 2n || p * q !== n) throw bad('private_p * private_q is not a factorisation of the modulus');
  // OpenSSL signs with the CRT values and would silently recover from a wrong d or dp, so
  // check that every private value belongs to this key (RFC 8017, 3.2).
  const lambda = ((p - 1n) * (q - 1n)) / gcd(p - 1n, q - 1n);
  if ((e * d) % lambda !== 1n) throw bad('private_exponent does not match the public exponent');
  const [dpWant, dqWant, qiWant] = [d % (p - 1n), d % (q - 1n), modInverse(q, p)];
  if (r.privateDp?.length && bytesToBig(r.privateDp) !== dpWant) throw bad('private_dp does not match the key');
  if (r.privateDq?.length && bytesToBig(r.privateDq) !== dqWant) throw bad('private_dq does not match the key');
  if (r.privateIqmp?.length && bytesToBig(r.privateIqmp) !== qiWant) throw bad('private_iqmp does not match the key');
  // Older Certifier keys lack the CRT values; derive them rather than refuse the key.
  const dp = bigToBytes(dpWant, r.privateP.length);
  const dq = bigToBytes(dqWant, r.privateQ.length);
  const qi = bigToBytes(qiWant, r.privateP.length);
  return { ...jwk, d: b64u(r.privateExponent), p: b64u(r.privateP), q: b64u(r.privateQ), dp: b64u(dp), dq: b64u(dq), qi: b64u(qi) };
}

/** The named curves' OIDs, DER-encoded: a SEC1 ECPrivateKey's parameters. */
const CURVE_OID = { p256: Buffer.from('06082a8648ce3d030107', 'hex'), p384: Buffer.from('06052b81040022', 'hex') } as const;

/**
 * The public point (x, y) of the private scalar `d` (the curve's size, padded), computed by
 * OpenSSL from a SEC1 ECPrivateKey that holds d alone. noble's getPublicKey built a table of
 * multiples at its first use in a process: about 0.1 s of CPU at every start of a program that
 * opens an identity, against well under a millisecond here. d is checked to be a scalar (1 to
 * n - 1) first, as noble did: OpenSSL would take a larger one modulo n.
 */
function publicPointOf(alg: 'p256' | 'p384', d: Uint8Array): [Uint8Array, Uint8Array] {
  const c = CURVES[alg];
  const k = bytesToBig(d);
  if (k < 1n || k >= c.noble.Point.CURVE().n) throw bad('private_multiplier is not a valid scalar');
  // SEQUENCE { INTEGER 1, OCTET STRING d, [0] OID }, written in place: d is copied only once, and wiped.
  const oid = CURVE_OID[alg];
  const body = 3 + 2 + d.length + 2 + oid.length; // every length below 128: one byte each
  const sec1 = Buffer.alloc(2 + body);
  sec1.set([0x30, body, 0x02, 0x01, 0x01, 0x04, d.length]);
  sec1.set(d, 7);
  sec1.set([0xa0, oid.length], 7 + d.length);
  sec1.set(oid, 9 + d.length);
  try {
    const jwk = createPrivateKey({ key: sec1, format: 'der', type: 'sec1' }).export({ format: 'jwk' });
    return [Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')];
  } catch (cause) {
    throw bad('private_multiplier is not a valid scalar', cause);
  } finally {
    wipe(sec1);
  }
}

function ecJwk(km: KeyMessage, wantPrivate: boolean): JsonWebKey {
  const e = km.eccKey!;
  const alg: KeyAlg | undefined = e.curveName === 'P-256' ? 'p256' : e.curveName === 'P-384' ? 'p384' : undefined;
  if (!alg) throw bad(`unsupported curve "${e.curveName ?? ''}"`);
  const c = CURVES[alg];
  const pad = (b: Uint8Array | undefined, what: string) => {
    if (!b?.length || b.length > c.size) throw bad(`${what} must be 1 to ${c.size} bytes`);
    return bigToBytes(bytesToBig(b), c.size);
  };
  // The curve's parameters, where given, are the named curve's: a key whose description says
  // otherwise is not read as if it said nothing.
  const K = c.noble.Point.CURVE();
  const given: [string, Uint8Array | undefined, bigint][] = [
    ['curve_p', e.curveP, K.p], ['curve_a', e.curveA, K.a], ['curve_b', e.curveB, K.b], ['order_of_base_point', e.orderOfBasePoint, K.n],
    ['base_point.x', e.basePoint?.x, K.Gx], ['base_point.y', e.basePoint?.y, K.Gy],
  ];
  for (const [what, value, expected] of given) {
    if (value?.length && bytesToBig(value) !== expected) throw bad(`${what} is not that of ${c.name}`);
  }
  let x: Uint8Array | undefined;
  let y: Uint8Array | undefined;
  if (e.publicPoint?.x?.length || e.publicPoint?.y?.length) {
    x = pad(e.publicPoint.x, 'public_point.x');
    y = pad(e.publicPoint.y, 'public_point.y');
  }
  let d: Uint8Array | undefined;
  if (wantPrivate) {
    d = pad(e.privateMultiplier, 'private_multiplier');
    const [dx, dy] = publicPointOf(alg, d);
    if (x && y && (Buffer.compare(dx, x) !== 0 || Buffer.compare(dy, y) !== 0)) {
      throw bad('public_point does not match private_multiplier');
    }
    [x, y] = [dx, dy];
  }
  if (!x || !y) throw bad('ecc_key needs public_point');
  return { kty: 'EC', crv: c.name, x: b64u(x), y: b64u(y), ...(d ? { d: b64u(d) } : {}) };
}

/**
 * Refuses a private key whose parts do not belong together, with the checks fromKeyMessage makes
 * of a key_message: an EC public point that is not its scalar's, an RSA private exponent or CRT
 * value of another key. The private fields copied out for it are wiped.
 */
export function requireMatchingParts(key: KeyObject): void {
  const km = toKeyMessage(key);
  try {
    if (km.rsaKey) rsaJwk(km, true);
    else ecJwk(km, true);
  } catch (e) {
    if (!(e instanceof CertifierError)) throw e;
    throw new CertifierError('INVALID_KEY', `the private key's parts do not belong together: ${e.message.replace(/^invalid key_message: /, '')}`, { cause: e });
  } finally {
    const r = km.rsaKey;
    for (const b of [r?.privateExponent, r?.privateP, r?.privateQ, r?.privateDp, r?.privateDq, r?.privateIqmp, km.eccKey?.privateMultiplier]) if (b) wipe(b);
  }
}

/**
 * Converts a key_message to a KeyObject. Returns the private key when the message holds one
 * (key_type ending in "-private"), otherwise the public key.
 */
export function fromKeyMessage(km: KeyMessage): KeyObject {
  const type = km.keyType ?? '';
  // Certifier key types always say which half they hold; "rsa-2048" alone is not one of them.
  if (!/-(private|public)$/.test(type)) throw bad(`unsupported key_type "${type}"`);
  const wantPrivate = type.endsWith('-private');
  let jwk: JsonWebKey;
  if (type.startsWith('rsa-')) jwk = rsaJwk(km, wantPrivate);
  else if (type.startsWith('ecc-')) {
    if (!km.eccKey) throw bad('ecc key type without ecc_key');
    jwk = ecJwk(km, wantPrivate);
  } else throw bad(`unsupported key_type "${type}"`);
  let key: KeyObject;
  try {
    key = wantPrivate ? createPrivateKey({ key: jwk, format: 'jwk' }) : createPublicKey({ key: jwk, format: 'jwk' });
  } catch (cause) {
    throw bad('the key material is not a valid key', cause);
  }
  const expected = type.replace(/-(private|public)$/, '');
  if (certifierKeyType(key).replace(/-(private|public)$/, '') !== expected) {
    throw bad(`key_type "${type}" does not match the key material`);
  }
  return key;
}
