// The structure of a DER certificate, read with our strict reader (signed bytes, signature, raw
// names, key, extensions), and the signature check over those exact bytes that validation relies on.

import { verify, type KeyObject } from 'node:crypto';
import { toHex } from '../crypto/index.ts';
import { checkTree, children, DerError, decodeOid, expectTag, readOne, TAG, type Tlv } from './der.ts';
import { SIGNATURE_ALGORITHMS, type SignatureAlgorithm } from './oids.ts';
import { badCertificate } from './problems.ts';

export interface CertStructure {
  /** The TBSCertificate exactly as signed. */
  tbs: Uint8Array;
  signatureAlgorithm: { oid: string; parameters?: Uint8Array };
  /** The signature value (the BIT STRING's bytes). */
  signature: Uint8Array;
  version: number;
  /** Lowercase hex of the serial number, without a sign byte. */
  serialHex: string;
  /** The DER Names, compared byte for byte during path validation. */
  issuerDer: Uint8Array;
  subjectDer: Uint8Array;
  /** The DER Validity (decoded in parse.ts). */
  validityDer: Uint8Array;
  spki: Uint8Array;
  /** Every extension as found; parse.ts and extensions.ts decode the values they understand. */
  extensions: RawExtension[];
}

export interface RawExtension {
  oid: string;
  critical: boolean;
  /** The DER inside extnValue. */
  value: Uint8Array;
}

const CONTEXT_0 = 0xa0;
const CONTEXT_3 = 0xa3;
const UNIQUE_IDS = [0x81, 0x82]; // issuerUniqueID, subjectUniqueID: allowed, ignored

// The readers below take an element's fields by index, not by destructuring (const [a, b, ...rest]):
// that goes through the array iterator, allocating as it goes, for every element of every new peer.

function readExtension(t: Tlv): RawExtension {
  const f = children(expectTag(t, TAG.SEQUENCE, 'Extension'));
  const oid = f[0];
  const second = f[1];
  const third = f[2];
  if (f.length > 3) throw new DerError('Extension: unexpected extra fields');
  const hasFlag = second?.tag === TAG.BOOLEAN;
  const flag = hasFlag ? second!.contents : undefined;
  if (flag && (flag.length !== 1 || (flag[0] !== 0 && flag[0] !== 0xff))) throw new DerError('Extension: bad critical flag');
  // DER leaves a DEFAULT value out (X.690 11.5): critical FALSE is never written.
  if (flag && flag[0] === 0) throw new DerError('Extension: critical FALSE written out (DER leaves the default out)');
  const value = expectTag(hasFlag ? third : second, TAG.OCTET_STRING, 'extnValue');
  if (!hasFlag && third) throw new DerError('Extension: unexpected extra fields');
  return { oid: decodeOid(expectTag(oid, TAG.OID, 'extnID').contents), critical: flag?.[0] === 0xff, value: value.contents };
}

/**
 * The fields after subjectPublicKeyInfo: [1] issuerUniqueID, [2] subjectUniqueID (each at most
 * once, in that order, v2 or v3 only: RFC 5280 4.1), then optional [3] extensions, then nothing.
 */
function readExtensions(rest: Tlv[], version: number): RawExtension[] {
  let ids = 0;
  while (ids < rest.length && UNIQUE_IDS.includes(rest[ids]!.tag)) ids++;
  const uniqueIds = rest.slice(0, ids).map((t) => t.tag);
  if (uniqueIds.length > 0 && (version === 1 || uniqueIds.some((tag, i) => i > 0 && tag <= uniqueIds[i - 1]!))) {
    throw new DerError('TBSCertificate: unique IDs out of order, repeated, or in a v1 certificate');
  }
  const tail = rest.slice(ids);
  if (tail.length === 0) return [];
  const [ext, ...more] = tail;
  if (ext!.tag !== CONTEXT_3 || more.length > 0) throw new DerError('TBSCertificate: unexpected fields after the public key');
  if (version !== 3) throw new DerError('extensions in a certificate that is not v3');
  const [list, ...extra] = children(ext!);
  if (extra.length > 0) throw new DerError('extensions: unexpected extra fields');
  const out = children(expectTag(list, TAG.SEQUENCE, 'extensions')).map(readExtension);
  if (out.length === 0) throw new DerError('extensions: an empty list must be left out');
  return out;
}

function readAlgorithm(t: Tlv | undefined, what: string): CertStructure['signatureAlgorithm'] {
  const f = children(expectTag(t, TAG.SEQUENCE, what));
  const oid = f[0];
  const params = f[1];
  if (f.length > 2) throw new DerError(`${what}: unexpected extra fields`);
  const out: CertStructure['signatureAlgorithm'] = { oid: decodeOid(expectTag(oid, TAG.OID, what).contents) };
  if (params) out.parameters = params.bytes;
  return out;
}

function readVersion(t: Tlv): number {
  const [v, ...rest] = children(t);
  const int = expectTag(v, TAG.INTEGER, 'version');
  if (rest.length > 0 || int.contents.length !== 1 || int.contents[0]! > 2) throw new DerError('version: not v1, v2 or v3');
  // v1 is the DEFAULT, which DER leaves out (X.690 11.5).
  if (int.contents[0] === 0) throw new DerError('version: v1 written out (DER leaves the default out)');
  return int.contents[0]! + 1;
}

function readSerial(t: Tlv | undefined): string {
  const c = expectTag(t, TAG.INTEGER, 'serialNumber').contents;
  if (c.length === 0 || c.length > 21) throw new DerError('serialNumber: bad length');
  if (c.length > 1 && c[0] === 0 && (c[1]! & 0x80) === 0) throw new DerError('serialNumber: non-minimal encoding');
  if ((c[0]! & 0x80) !== 0) throw new DerError('serialNumber: negative');
  return toHex(c[0] === 0 && c.length > 1 ? c.subarray(1) : c);
}

/**
 * The envelope every signed X.509 object shares (a certificate, a CRL): SEQUENCE { signed part,
 * signatureAlgorithm, signatureValue }, the whole tree well-formed DER. `what` names the object.
 */
export function readSigned(der: Uint8Array, what: string): { tbs: Tlv; algorithm: Tlv; signatureAlgorithm: CertStructure['signatureAlgorithm']; signature: Uint8Array } {
  // Checked first so that text (PEM, hex) is called malformed rather than "trailing bytes".
  if (der[0] !== TAG.SEQUENCE) throw new DerError('it does not start with a DER SEQUENCE');
  const top = readOne(der);
  checkTree(top);
  const f = children(expectTag(top, TAG.SEQUENCE, what));
  const tbs = f[0];
  const algorithm = f[1];
  const sig = f[2];
  if (f.length > 3) throw new DerError(`${what}: unexpected extra fields`);
  const signatureAlgorithm = readAlgorithm(algorithm, 'signatureAlgorithm');
  const sigBits = expectTag(sig, TAG.BIT_STRING, 'signatureValue').contents;
  if (sigBits.length < 2 || sigBits[0] !== 0) throw new DerError('signatureValue: not a whole number of bytes');
  return { tbs: tbs!, algorithm: algorithm!, signatureAlgorithm, signature: sigBits.subarray(1) };
}

/** Splits a certificate into its parts. Throws DerError on anything but one well-formed certificate. */
export function readStructure(der: Uint8Array): CertStructure {
  const { tbs: tbsTlv, algorithm: alg, signatureAlgorithm, signature } = readSigned(der, 'Certificate');
  const fields = children(expectTag(tbsTlv, TAG.SEQUENCE, 'TBSCertificate'));
  const version = fields[0]?.tag === CONTEXT_0 ? readVersion(fields.shift()!) : 1;
  const serial = fields[0];
  const innerAlg = fields[1];
  const issuer = fields[2];
  const validity = fields[3];
  const subject = fields[4];
  const spki = fields[5];
  const rest = fields.slice(6);
  if (!innerAlg || !bytesSame(innerAlg.bytes, alg.bytes)) {
    throw new DerError('the signature algorithm inside the signed part differs from the outer one');
  }
  return {
    tbs: tbsTlv.bytes,
    signatureAlgorithm,
    signature,
    version,
    serialHex: readSerial(serial),
    issuerDer: expectTag(issuer, TAG.SEQUENCE, 'issuer').bytes,
    subjectDer: expectTag(subject, TAG.SEQUENCE, 'subject').bytes,
    validityDer: expectTag(validity, TAG.SEQUENCE, 'validity').bytes,
    spki: expectTag(spki, TAG.SEQUENCE, 'subjectPublicKeyInfo').bytes,
    extensions: readExtensions(rest, version),
  };
}

/** Byte equality for public data (names, certificates), where timing does not matter. */
export function bytesSame(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  // A plain loop: every() calls a function per byte, and names are compared on every validation.
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// --- signature ----------------------------------------------------------------------------

const DER_NULL = [0x05, 0x00];

/** The accepted algorithm the certificate names; BAD_CERTIFICATE (signature-algorithm) otherwise. */
export function signatureAlgorithmOf(cert: CertStructure): SignatureAlgorithm {
  const { oid, parameters } = cert.signatureAlgorithm;
  const alg = SIGNATURE_ALGORITHMS[oid];
  if (!alg) throw badCertificate('signature-algorithm', `signature algorithm ${oid} is not accepted (SHA-2 ECDSA or RSA PKCS#1 v1.5 only)`);
  // RFC 5758: ECDSA carries no parameters. RFC 4055: RSA carries NULL (absent is tolerated, as OpenSSL does).
  const paramsOk = alg.family === 'ecdsa'
    ? parameters === undefined
    : parameters === undefined || (parameters.length === 2 && parameters[0] === DER_NULL[0] && parameters[1] === DER_NULL[1]);
  if (!paramsOk) throw badCertificate('signature-algorithm', `signature algorithm ${alg.name} has unexpected parameters`);
  return alg;
}

function keyFits(alg: SignatureAlgorithm, key: KeyObject): boolean {
  return alg.family === 'ecdsa' ? key.asymmetricKeyType === 'ec' : key.asymmetricKeyType === 'rsa';
}

/** True when `issuerKey` signed this certificate's TBS bytes. */
export function isSignedBy(cert: CertStructure, issuerKey: KeyObject): boolean {
  const alg = signatureAlgorithmOf(cert);
  if (!keyFits(alg, issuerKey)) return false;
  try {
    return verify(alg.hash, cert.tbs, { key: issuerKey, dsaEncoding: 'der' }, cert.signature);
  } catch {
    return false; // a malformed signature value is simply not a valid signature
  }
}
