// Builds certificates with @peculiar/x509, independently of lib/pki's issuer, so the tests can
// make deliberately bad ones (one defect at a time) without knobs in the production API.

import 'reflect-metadata'; // @peculiar/x509 throws at import without it
import * as x509 from '@peculiar/x509';
import { randomBytes, sign, webcrypto, type KeyObject } from 'node:crypto';
import { generateKeyPair, keyAlgOf, toHex, type KeyAlg, type KeyPair } from '../../lib/crypto/index.ts';
import { ADMISSION_EXTENSION_OID, encodeAdmission, type Admission } from '../../lib/pki/index.ts';
import { children, encodeBitString, encodeOid, readOne, seq } from '../../lib/pki/der.ts';

export const { KeyUsageFlags } = x509;
export const DAY = 86_400_000;

// @peculiar/x509 (asn1js) decodes 2.25.<128-bit arc> as "2.25" and its generator re-parses every
// extension, so our OID cannot go in directly. A placeholder of the same encoded length goes in
// instead and is swapped for the real OID before the certificate is signed.
const PLACEHOLDER_OID = '1.3.6.1.4.1' + '.1'.repeat(15);
const PLACEHOLDER = encodeOid(PLACEHOLDER_OID);
const REAL = encodeOid(ADMISSION_EXTENSION_OID);
if (PLACEHOLDER.length !== REAL.length) throw new Error('forge: placeholder OID length differs');

const WEB_ALG: Record<KeyAlg, { importParams: object; signParams: object; hash: string }> = {
  p256: { importParams: { name: 'ECDSA', namedCurve: 'P-256' }, signParams: { name: 'ECDSA', hash: 'SHA-256' }, hash: 'sha256' },
  p384: { importParams: { name: 'ECDSA', namedCurve: 'P-384' }, signParams: { name: 'ECDSA', hash: 'SHA-384' }, hash: 'sha384' },
  rsa2048: { importParams: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, signParams: { name: 'RSASSA-PKCS1-v1_5' }, hash: 'sha256' },
};

export interface ForgeSpec {
  /** "CN=..., O=..." text, or a DER Name copied as is. */
  subject: string | Uint8Array;
  issuer: string | Uint8Array;
  publicKey: KeyObject;
  signWith: KeyObject;
  notBefore: Date;
  notAfter: Date;
  /** null leaves the extension out. */
  basicConstraints: { ca: boolean; pathLength?: number } | null;
  keyUsage: number | null;
  extKeyUsage: string[] | null;
  subjectKeyIdHex?: string;
  authorityKeyIdHex?: string;
  /** DER value of the admission extension; null leaves it out. */
  admission: Uint8Array | null;
  extra?: x509.Extension[];
}

function nameOf(n: string | Uint8Array): x509.Name {
  return typeof n === 'string' ? new x509.Name(n) : new x509.Name(new Uint8Array(n));
}

function extensionsOf(spec: ForgeSpec): x509.Extension[] {
  const out: x509.Extension[] = [];
  if (spec.basicConstraints) out.push(new x509.BasicConstraintsExtension(spec.basicConstraints.ca, spec.basicConstraints.pathLength, true));
  if (spec.keyUsage !== null) out.push(new x509.KeyUsagesExtension(spec.keyUsage, true));
  if (spec.extKeyUsage) out.push(new x509.ExtendedKeyUsageExtension(spec.extKeyUsage, false));
  if (spec.subjectKeyIdHex) out.push(new x509.SubjectKeyIdentifierExtension(spec.subjectKeyIdHex));
  if (spec.authorityKeyIdHex) out.push(new x509.AuthorityKeyIdentifierExtension(spec.authorityKeyIdHex));
  if (spec.admission) out.push(new x509.Extension(PLACEHOLDER_OID, false, new Uint8Array(spec.admission)));
  return [...out, ...(spec.extra ?? [])];
}

function swapPlaceholder(der: Uint8Array): Uint8Array {
  const buf = Buffer.from(der);
  const at = buf.indexOf(PLACEHOLDER);
  if (at < 0) return der;
  if (buf.indexOf(PLACEHOLDER, at + 1) >= 0) throw new Error('forge: placeholder OID found twice');
  buf.set(REAL, at);
  return new Uint8Array(buf);
}

/** Re-signs the (patched) TBSCertificate with node:crypto and reassembles the certificate. */
export function resign(der: Uint8Array, key: KeyObject): Uint8Array {
  const [tbs, alg] = children(readOne(der));
  const signature = sign(WEB_ALG[keyAlgOf(key)].hash, tbs!.bytes, { key, dsaEncoding: 'der' });
  return seq(tbs!.bytes, alg!.bytes, encodeBitString(new Uint8Array(signature)));
}

/** The certificate naming `algorithm` (a DER AlgorithmIdentifier) inside and outside its signed part, re-signed with `key`. */
export function withSignatureAlgorithm(der: Uint8Array, algorithm: Uint8Array, key: KeyObject): Uint8Array {
  const [tbs, , signature] = children(readOne(der));
  const fields = children(tbs!);
  const at = fields[0]!.tag === 0xa0 ? 2 : 1;
  return resign(seq(seq(...fields.map((f, i) => (i === at ? algorithm : f.bytes))), algorithm, signature!.bytes), key);
}

/** A certificate with exactly the given fields, signed by `signWith`. */
export async function forgeCertificate(spec: ForgeSpec): Promise<Uint8Array> {
  const web = WEB_ALG[keyAlgOf(spec.signWith)];
  const pkcs8 = spec.signWith.export({ type: 'pkcs8', format: 'der' });
  const signingKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, web.importParams as never, false, ['sign']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: toHex(randomBytes(16)),
    subject: nameOf(spec.subject),
    issuer: nameOf(spec.issuer),
    notBefore: spec.notBefore,
    notAfter: spec.notAfter,
    publicKey: new Uint8Array(spec.publicKey.export({ type: 'spki', format: 'der' })),
    signingKey: signingKey as never,
    signingAlgorithm: web.signParams as never,
    extensions: extensionsOf(spec),
  });
  return resign(swapPlaceholder(new Uint8Array(cert.rawData)), spec.signWith);
}

// --- a small world to break things in -------------------------------------------------------

export const AT = new Date('2026-12-01T00:00:00Z');
export const MEASUREMENT = Uint8Array.from({ length: 32 }, (_, i) => i);
export const GOOD_ADMISSION: Admission = { measurement: MEASUREMENT, platform: 'simulated-enclave', domain: 'datica' };

export interface ForgedPolicy {
  keys: KeyPair;
  der: Uint8Array;
  skiHex: string;
}

/** A policy certificate as ours would be, with any field overridden. */
export async function forgePolicy(overrides: Partial<ForgeSpec> = {}, alg: KeyAlg = 'p256', keys?: KeyPair): Promise<ForgedPolicy> {
  const k = keys ?? await generateKeyPair(alg);
  const skiHex = toHex(randomBytes(20));
  const der = await forgeCertificate({
    subject: 'CN=policyKey, O=datica/policyAuthority',
    issuer: 'CN=policyKey, O=datica/policyAuthority',
    publicKey: k.publicKey,
    signWith: k.privateKey,
    notBefore: new Date(AT.getTime() - DAY),
    notAfter: new Date(AT.getTime() + 365 * DAY),
    basicConstraints: { ca: true, pathLength: 0 },
    keyUsage: KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign | KeyUsageFlags.digitalSignature,
    extKeyUsage: null,
    subjectKeyIdHex: skiHex,
    admission: null,
    ...overrides,
  });
  return { keys: k, der, skiHex };
}

/** An admission certificate under `policy` as ours would be, with any field overridden. */
export async function forgeLeaf(policy: ForgedPolicy, overrides: Partial<ForgeSpec> = {}, subject?: KeyPair): Promise<Uint8Array> {
  const k = subject ?? await generateKeyPair('p256');
  return forgeCertificate({
    subject: `O=Measured-${toHex(MEASUREMENT)}, CN=CertifierUsers`,
    issuer: readPolicySubject(policy.der),
    publicKey: k.publicKey,
    signWith: policy.keys.privateKey,
    notBefore: new Date(AT.getTime() - DAY),
    notAfter: new Date(AT.getTime() + DAY),
    basicConstraints: { ca: false },
    keyUsage: KeyUsageFlags.digitalSignature,
    extKeyUsage: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'],
    authorityKeyIdHex: policy.skiHex,
    admission: encodeAdmission(GOOD_ADMISSION),
    ...overrides,
  });
}

/** The policy certificate's subject Name, as DER, so the leaf's issuer matches it byte for byte. */
export function readPolicySubject(der: Uint8Array): Uint8Array {
  const [tbs] = children(readOne(der));
  const fields = children(tbs!);
  return fields[fields[0]!.tag === 0xa0 ? 5 : 4]!.bytes;
}
