// parseCertificate: one DER certificate -> the facts validation and callers need. The structure
// comes from our strict reader; names and standard extensions are decoded by @peculiar/x509.

import 'reflect-metadata'; // @peculiar/x509 throws at import without it
import * as x509 from '@peculiar/x509';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { CertifierError } from '../errors/index.ts';
import { sha256, toHex } from '../crypto/index.ts';
import { decodeAdmission, type Admission } from './admission.ts';
import { DerError } from './der.ts';
import { badCertificate } from './problems.ts';
import { ADMISSION_EXTENSION_OID, EKU_NAMES, KEY_USAGE_BITS, OID, type KeyUsageName } from './oids.ts';
import type { AltNames } from './san.ts';
import { readStructure, type CertStructure, type RawExtension } from './structure.ts';

export interface ParsedCert extends CertStructure {
  der: Uint8Array;
  /** RFC 4514-style text, e.g. "CN=policyKey, O=datica/policyAuthority". */
  subject: string;
  issuer: string;
  /** Every O= and CN= value of the subject, in order. */
  organizations: string[];
  commonNames: string[];
  notBefore: Date;
  notAfter: Date;
  publicKey: KeyObject;
  /** basicConstraints cA; false when the extension is absent. */
  isCA: boolean;
  pathLength?: number;
  /** Empty when the keyUsage extension is absent. */
  keyUsage: KeyUsageName[];
  /** Names for the usual purposes (serverAuth, clientAuth, ...), OIDs for others; empty when absent. */
  extKeyUsage: string[];
  subjectKeyIdHex?: string;
  authorityKeyIdHex?: string;
  altNames: AltNames;
  admission?: Admission;
  fingerprintSha256Hex: string;
}

/** Certificates larger than this are refused before any parsing. */
export const MAX_CERTIFICATE_BYTES = 64 * 1024;

function keyUsageNames(ext: x509.KeyUsagesExtension | null): KeyUsageName[] {
  return ext ? KEY_USAGE_BITS.filter((_, i) => (ext.usages & (1 << i)) !== 0) : [];
}

function altNamesOf(ext: x509.SubjectAlternativeNameExtension | null): AltNames {
  const out: AltNames = { uris: [], dnsNames: [], ipAddresses: [] };
  for (const n of ext?.names.items ?? []) {
    if (n.type === 'url') out.uris.push(n.value);
    else if (n.type === 'dns') out.dnsNames.push(n.value);
    else if (n.type === 'ip') out.ipAddresses.push(n.value);
  }
  return out;
}

function admissionOf(list: RawExtension[]): Admission | undefined {
  const ext = list.find((e) => e.oid === ADMISSION_EXTENSION_OID);
  if (!ext) return undefined;
  try {
    return decodeAdmission(ext.value);
  } catch (cause) {
    throw badCertificate('bad-admission-extension', `the admission extension is malformed: ${(cause as Error).message}`, cause);
  }
}

function checkUniqueExtensions(list: { oid: string }[]): void {
  const seen = new Set<string>();
  for (const { oid } of list) {
    if (seen.has(oid)) throw badCertificate('duplicate-extension', `extension ${oid} appears twice (RFC 5280, 4.2)`);
    seen.add(oid);
  }
}

function publicKeyOf(spki: Uint8Array): KeyObject {
  try {
    return createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (cause) {
    throw badCertificate('public-key', 'the certificate holds a public key node:crypto cannot read', cause);
  }
}

function readExtensions(cert: x509.X509Certificate, list: RawExtension[]) {
  checkUniqueExtensions(list);
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  const out = {
    isCA: bc?.ca ?? false,
    keyUsage: keyUsageNames(cert.getExtension(x509.KeyUsagesExtension)),
    // Array.from: the library's usages is an Array subclass, which map() would preserve.
    extKeyUsage: Array.from(eku?.usages ?? [], (u) => EKU_NAMES[String(u)] ?? String(u)),
    subjectKeyIdHex: cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId.toLowerCase(),
    authorityKeyIdHex: cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId?.toLowerCase(),
    altNames: altNamesOf(cert.getExtension(x509.SubjectAlternativeNameExtension)),
    pathLength: bc?.pathLength,
  };
  return out;
}

function decode(der: Uint8Array): { structure: CertStructure; cert: x509.X509Certificate } {
  if (der.length > MAX_CERTIFICATE_BYTES) throw badCertificate('too-large', `a certificate of ${der.length} bytes is larger than ${MAX_CERTIFICATE_BYTES}`);
  try {
    const structure = readStructure(der);
    // Only ever given bytes starting with 0x30: @peculiar/x509 would try PEM, hex and base64 on anything else.
    return { structure, cert: new x509.X509Certificate(der) };
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    const reason = cause instanceof DerError && cause.trailing ? 'trailing-bytes' : 'malformed';
    throw badCertificate(reason, `not a DER X.509 certificate: ${why}`, cause);
  }
}

/** Parses one DER certificate. Throws BAD_CERTIFICATE (details.reason) for anything else. */
export function parseCertificate(input: Uint8Array): ParsedCert {
  // Our own copy: every byte view in the result points into it, not into the caller's buffer.
  const der = new Uint8Array(input);
  const { structure, cert } = decode(der);
  let ext: ReturnType<typeof readExtensions>;
  try {
    ext = readExtensions(cert, structure.extensions);
  } catch (cause) {
    if (cause instanceof CertifierError) throw cause;
    throw badCertificate('malformed', `a certificate extension is malformed: ${(cause as Error).message}`, cause);
  }
  const parsed: ParsedCert = {
    ...structure,
    der,
    subject: cert.subject,
    issuer: cert.issuer,
    organizations: cert.subjectName.getField(OID.organizationName),
    commonNames: cert.subjectName.getField(OID.commonName),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    publicKey: publicKeyOf(structure.spki),
    isCA: ext.isCA,
    keyUsage: ext.keyUsage,
    extKeyUsage: ext.extKeyUsage,
    altNames: ext.altNames,
    fingerprintSha256Hex: toHex(sha256(der)),
  };
  if (ext.pathLength !== undefined) parsed.pathLength = ext.pathLength;
  if (ext.subjectKeyIdHex) parsed.subjectKeyIdHex = ext.subjectKeyIdHex;
  if (ext.authorityKeyIdHex) parsed.authorityKeyIdHex = ext.authorityKeyIdHex;
  const admission = admissionOf(structure.extensions);
  if (admission) parsed.admission = admission;
  return parsed;
}
