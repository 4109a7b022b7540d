// Encodes and signs X.509 v3 certificates (RFC 5280) straight from node:crypto keys; the
// issuing half of lib/pki. issue.ts decides what goes in; this file only knows how to write it.

import { createHash, type KeyObject } from 'node:crypto';
import { exportPublicKey, keyAlgOf, randomBytes, sign } from '../crypto/index.ts';
import {
  children, encodeBitString, encodeBool, encodeNull, encodeOctets, encodeOid, encodeSmallInt, encodeTime,
  encodeUnsigned, encodeUtf8, explicit, implicitPrimitive, readOne, seq, set,
} from './der.ts';
import { KEY_USAGE_BITS, OID, type KeyUsageName } from './oids.ts';
import { encodeAltNames, type AltNames } from './san.ts';

export interface ExtensionSpec {
  oid: string;
  critical: boolean;
  /** The DER value carried in extnValue. */
  value: Uint8Array;
}

export interface TbsSpec {
  serial: Uint8Array;
  /** DER Name of the issuer, copied byte for byte so it matches the issuer's subject exactly. */
  issuer: Uint8Array;
  subject: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  /** DER SubjectPublicKeyInfo. */
  spki: Uint8Array;
  extensions: ExtensionSpec[];
}

/** 16 random bytes with the top bits 01: positive, always 16 bytes long, 126 bits of entropy. */
export function randomSerial(): Uint8Array {
  const s = randomBytes(16);
  s[0] = 0x40 | (s[0]! & 0x3f);
  return s;
}

/** One RDN per attribute, in the given order, as UTF8String (RFC 5280, 4.1.2.4). */
export function encodeName(attributes: [oid: string, value: string][]): Uint8Array {
  return seq(...attributes.map(([oid, value]) => set(seq(encodeOid(oid), encodeUtf8(value)))));
}

export function spkiOf(key: KeyObject): Uint8Array {
  return exportPublicKey(key, 'der');
}

/** RFC 5280, 4.2.1.2, method (1): SHA-1 of the subjectPublicKey bits. SHA-1 names, it does not protect. */
export function keyIdentifier(spki: Uint8Array): Uint8Array {
  const [, bits] = children(readOne(spki));
  if (!bits) throw new RangeError('not a SubjectPublicKeyInfo');
  return new Uint8Array(createHash('sha1').update(bits.contents.subarray(1)).digest());
}

function extension(oid: string, critical: boolean, value: Uint8Array): ExtensionSpec {
  return { oid, critical, value };
}

export function basicConstraints(ca: boolean, pathLength?: number): ExtensionSpec {
  // DER leaves out DEFAULT values, so CA:FALSE is an empty SEQUENCE.
  const body = ca ? [encodeBool(true), ...(pathLength === undefined ? [] : [encodeSmallInt(pathLength)])] : [];
  return extension(OID.basicConstraints, true, seq(...body));
}

/** A NamedBitList: DER drops trailing zero bits and counts them as unused. */
export function keyUsage(names: KeyUsageName[]): ExtensionSpec {
  const bits = names.map((n) => KEY_USAGE_BITS.indexOf(n));
  const highest = Math.max(...bits);
  const bytes = new Uint8Array(Math.floor(highest / 8) + 1);
  for (const b of bits) bytes[b >> 3]! |= 0x80 >> (b & 7);
  return extension(OID.keyUsage, true, encodeBitString(bytes, 7 - (highest & 7)));
}

export function extKeyUsage(oids: string[]): ExtensionSpec {
  return extension(OID.extKeyUsage, false, seq(...oids.map(encodeOid)));
}

export function subjectKeyId(id: Uint8Array): ExtensionSpec {
  return extension(OID.subjectKeyIdentifier, false, encodeOctets(id));
}

export function authorityKeyId(id: Uint8Array): ExtensionSpec {
  return extension(OID.authorityKeyIdentifier, false, seq(implicitPrimitive(0, id)));
}

export function subjectAltName(names: AltNames): ExtensionSpec {
  return extension(OID.subjectAltName, false, encodeAltNames(names));
}

/** The AlgorithmIdentifier the key signs with; the hash follows lib/crypto's signatureAlgFor. */
export function signatureAlgorithmId(signingKey: KeyObject): Uint8Array {
  switch (keyAlgOf(signingKey)) {
    case 'p256': return seq(encodeOid('1.2.840.10045.4.3.2'));
    case 'p384': return seq(encodeOid('1.2.840.10045.4.3.3'));
    case 'rsa2048': return seq(encodeOid('1.2.840.113549.1.1.11'), encodeNull());
  }
}

function encodeExtension(e: ExtensionSpec): Uint8Array {
  return seq(encodeOid(e.oid), ...(e.critical ? [encodeBool(true)] : []), encodeOctets(e.value));
}

export function encodeTbs(spec: TbsSpec, signatureAlgorithm: Uint8Array): Uint8Array {
  return seq(
    explicit(0, encodeSmallInt(2)), // v3
    encodeUnsigned(spec.serial),
    signatureAlgorithm,
    spec.issuer,
    seq(encodeTime(spec.notBefore), encodeTime(spec.notAfter)),
    spec.subject,
    spec.spki,
    explicit(3, seq(...spec.extensions.map(encodeExtension))),
  );
}

/** Encodes the TBSCertificate, signs it, and returns the DER certificate. */
export function signCertificate(spec: TbsSpec, signingKey: KeyObject): Uint8Array {
  const algorithm = signatureAlgorithmId(signingKey);
  const tbs = encodeTbs(spec, algorithm);
  return seq(tbs, algorithm, encodeBitString(sign(signingKey, tbs)));
}
