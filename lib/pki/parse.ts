// parseCertificate: one DER certificate -> the facts validation and callers need. Everything is
// read with our strict DER reader (structure.ts, names.ts, extensions.ts); parsing the same bytes
// again is answered from a bounded cache, since policy and peer certificates recur on every connection.

import type { KeyObject } from 'node:crypto';
import { CertifierError } from '../errors/index.ts';
import { readSpki, sha256, toHex, type KeyAlg, type SpkiKey } from '../crypto/index.ts';
import { decodeAdmission, type Admission } from './admission.ts';
import { children, DerError, decodeOid, expectTag, readOne, TAG } from './der.ts';
import { decodeStandardExtensions, type StandardExtensions } from './extensions.ts';
import { decodeName, decodeValidity } from './names.ts';
import { badCertificate } from './problems.ts';
import { ADMISSION_EXTENSION_OID, OID } from './oids.ts';
import { readStructure, type CertStructure, type RawExtension } from './structure.ts';
import { LruMap } from '../util/lru.ts';

export interface ParsedCert extends CertStructure, StandardExtensions {
  der: Uint8Array;
  /** RFC 4514-style text, e.g. "CN=policyKey, O=datica/policyAuthority". */
  subject: string;
  issuer: string;
  /** Every O= and CN= value of the subject, in order. */
  organizations: string[];
  commonNames: string[];
  notBefore: Date;
  notAfter: Date;
  /** Imported on first use (see keyOf); the algorithm is known without it. */
  publicKey: KeyObject;
  /** The key's algorithm, or undefined for a key this suite does not use. */
  keyAlg: KeyAlg | undefined;
  admission?: Admission;
  fingerprintSha256Hex: string;
}

/** Certificates larger than this are refused before any parsing. */
export const MAX_CERTIFICATE_BYTES = 64 * 1024;

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

/**
 * Any failure to read the key, now or when it is imported, is BAD_CERTIFICATE (public-key); a key
 * refused as invalid (a curve given by its parameters, a hybrid point) says why.
 */
function unreadableKey<T>(read: () => T): T {
  try {
    return read();
  } catch (cause) {
    const why = cause instanceof CertifierError && cause.code === 'INVALID_KEY' ? `an invalid public key: ${cause.message}` : 'a public key node:crypto cannot read';
    throw badCertificate('public-key', `the certificate holds ${why}`, cause);
  }
}

/**
 * The certificate's key, checked now (on the curve, of a known algorithm) but imported into a
 * KeyObject only if someone uses it (the `publicKey` getter), which for a client certificate at
 * the key-server nobody does. Each parse imports it at most once.
 */
function keyOf(spki: Uint8Array): SpkiKey {
  const read = unreadableKey(() => readSpki(spki));
  return { alg: read.alg, key: () => unreadableKey(read.key) };
}

/** SubjectPublicKeyInfo ::= SEQUENCE { algorithm SEQUENCE { OID, parameters ANY OPTIONAL }, subjectPublicKey BIT STRING } */
function checkSpkiShape(spki: Uint8Array): void {
  // By index, not destructured (the array iterator allocates as it goes): this runs per new peer.
  const top = children(readOne(spki));
  const algorithm = children(expectTag(top[0], TAG.SEQUENCE, 'subjectPublicKeyInfo algorithm'));
  decodeOid(expectTag(algorithm[0], TAG.OID, 'subjectPublicKeyInfo algorithm').contents);
  const params = algorithm[1];
  if (params?.tag === TAG.OID) decodeOid(params.contents); // an EC named curve
  const bits = expectTag(top[1], TAG.BIT_STRING, 'subjectPublicKey').contents;
  if (top.length > 2 || algorithm.length > 2 || bits.length === 0 || bits[0]! > 7) throw new DerError('subjectPublicKeyInfo: malformed');
}

/** Structure, names, times and the key's shape: what any reader must be able to make out. */
function readParts(der: Uint8Array) {
  try {
    const structure = readStructure(der);
    const subject = decodeName(readOne(structure.subjectDer), 'subject');
    const issuer = decodeName(readOne(structure.issuerDer), 'issuer');
    const validity = decodeValidity(readOne(structure.validityDer));
    checkSpkiShape(structure.spki);
    return { structure, subject, issuer, validity };
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    const reason = cause instanceof DerError && cause.trailing ? 'trailing-bytes' : 'malformed';
    throw badCertificate(reason, `not a DER X.509 certificate: ${why}`, cause);
  }
}

function readExtensions(list: RawExtension[]): StandardExtensions {
  checkUniqueExtensions(list);
  try {
    return decodeStandardExtensions(list);
  } catch (cause) {
    if (cause instanceof CertifierError) throw cause;
    throw badCertificate('malformed', `a certificate extension is malformed: ${(cause as Error).message}`, cause);
  }
}

/** Decodes `der`, which the result keeps and points into: the caller must hand over its own copy. */
function decodeCertificate(der: Uint8Array, fingerprintSha256Hex: string): ParsedCert {
  const { structure: st, subject, issuer, validity } = readParts(der);
  const ext = readExtensions(st.extensions);
  const spki = keyOf(st.spki);
  const field = (oid: string) => subject.attributes.filter((a) => a[0] === oid).map((a) => a[1]);
  // Every field written out, not spread from `st`: V8 copies a spread object slowly (tens of
  // microseconds for this one, a tenth of the whole parse), and this runs per new peer.
  const parsed: ParsedCert = {
    tbs: st.tbs,
    signatureAlgorithm: st.signatureAlgorithm,
    signature: st.signature,
    version: st.version,
    serialHex: st.serialHex,
    issuerDer: st.issuerDer,
    subjectDer: st.subjectDer,
    validityDer: st.validityDer,
    spki: st.spki,
    extensions: st.extensions,
    der,
    subject: subject.text,
    issuer: issuer.text,
    organizations: field(OID.organizationName),
    commonNames: field(OID.commonName),
    notBefore: validity.notBefore,
    notAfter: validity.notAfter,
    get publicKey() {
      return spki.key();
    },
    keyAlg: spki.alg,
    isCA: ext.isCA,
    keyUsage: ext.keyUsage,
    extKeyUsage: ext.extKeyUsage,
    altNames: ext.altNames,
    fingerprintSha256Hex,
  };
  if (ext.pathLength !== undefined) parsed.pathLength = ext.pathLength;
  if (ext.subjectKeyIdHex) parsed.subjectKeyIdHex = ext.subjectKeyIdHex;
  if (ext.authorityKeyIdHex) parsed.authorityKeyIdHex = ext.authorityKeyIdHex;
  const admission = admissionOf(st.extensions);
  if (admission) parsed.admission = admission;
  return parsed;
}

/**
 * An independent copy: new arrays, dates and DER, with every byte view re-pointed into the new
 * DER. Only the public key (immutable, imported at most once) is shared: the copy's getter asks
 * the original's. A field added to ParsedCert or CertStructure must be added here too (a test
 * checks that the copy has every field of the original).
 */
export function copyParsed(p: ParsedCert): ParsedCert {
  const der = new Uint8Array(p.der);
  const view = (v: Uint8Array) => der.subarray(v.byteOffset - p.der.byteOffset, v.byteOffset - p.der.byteOffset + v.length);
  const { parameters } = p.signatureAlgorithm;
  const out: ParsedCert = {
    tbs: view(p.tbs),
    signatureAlgorithm: { oid: p.signatureAlgorithm.oid, ...(parameters ? { parameters: view(parameters) } : {}) },
    signature: view(p.signature),
    version: p.version,
    serialHex: p.serialHex,
    issuerDer: view(p.issuerDer),
    subjectDer: view(p.subjectDer),
    validityDer: view(p.validityDer),
    spki: view(p.spki),
    extensions: p.extensions.map((e) => ({ oid: e.oid, critical: e.critical, value: view(e.value) })),
    der,
    subject: p.subject,
    issuer: p.issuer,
    organizations: [...p.organizations],
    commonNames: [...p.commonNames],
    notBefore: new Date(p.notBefore),
    notAfter: new Date(p.notAfter),
    get publicKey() {
      return p.publicKey;
    },
    keyAlg: p.keyAlg,
    isCA: p.isCA,
    keyUsage: [...p.keyUsage],
    extKeyUsage: [...p.extKeyUsage],
    altNames: { uris: [...p.altNames.uris], dnsNames: [...p.altNames.dnsNames], ipAddresses: [...p.altNames.ipAddresses] },
    fingerprintSha256Hex: p.fingerprintSha256Hex,
  };
  if (p.pathLength !== undefined) out.pathLength = p.pathLength;
  if (p.subjectKeyIdHex) out.subjectKeyIdHex = p.subjectKeyIdHex;
  if (p.authorityKeyIdHex) out.authorityKeyIdHex = p.authorityKeyIdHex;
  if (p.admission) out.admission = { ...p.admission, measurement: new Uint8Array(p.admission.measurement) };
  return out;
}

// Parsed certificates by SHA-256 fingerprint, least recently used dropped first. A hit needs the
// very same bytes too, so nothing rests on SHA-256 being collision-free. Entries are never handed
// out: callers get copies, or (inside lib/pki) read them through parseShared without changing them.
const parsedCache = new LruMap<string, ParsedCert>(256);

const bufferView = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

function cached(fingerprint: string, der: Uint8Array): ParsedCert | undefined {
  const hit = parsedCache.get(fingerprint);
  return hit && bufferView(hit.der).equals(bufferView(der)) ? hit : undefined;
}

function remember(parsed: ParsedCert): void {
  parsedCache.set(parsed.fingerprintSha256Hex, parsed);
}

// The last parse handed out for a given array (the pinned policy certificate is passed as the same
// array on every connection): found without hashing, and still only if the bytes are the same.
const byArray = new WeakMap<Uint8Array, ParsedCert>();

/**
 * The cached parse of `input`, shared: lib/pki's own read-only use (validation), never returned
 * to callers as is. Throws BAD_CERTIFICATE (details.reason) for anything but one DER certificate.
 */
export function parseShared(input: Uint8Array): ParsedCert {
  if (input.length > MAX_CERTIFICATE_BYTES) throw badCertificate('too-large', `a certificate of ${input.length} bytes is larger than ${MAX_CERTIFICATE_BYTES}`);
  const last = byArray.get(input);
  if (last && bufferView(last.der).equals(bufferView(input))) return last;
  const fingerprint = toHex(sha256(input));
  let parsed = cached(fingerprint, input);
  if (!parsed) {
    // Our own copy: every byte view in the result points into it, not into the caller's buffer.
    parsed = decodeCertificate(new Uint8Array(input), fingerprint);
    remember(parsed);
  }
  byArray.set(input, parsed);
  return parsed;
}

/**
 * Serial number and validity only, without the full parse and without the cache: for a log line
 * about a certificate we just made, which nobody here will parse again.
 */
export function readCertificateSummary(der: Uint8Array): { serialHex: string; notBefore: Date; notAfter: Date } {
  try {
    const s = readStructure(der);
    return { serialHex: s.serialHex, ...decodeValidity(readOne(s.validityDer)) };
  } catch (cause) {
    throw badCertificate('malformed', `not a DER X.509 certificate: ${(cause as Error).message}`, cause);
  }
}

/** Parses one DER certificate. Throws BAD_CERTIFICATE (details.reason) for anything else. */
export function parseCertificate(input: Uint8Array): ParsedCert {
  return copyParsed(parseShared(input));
}
