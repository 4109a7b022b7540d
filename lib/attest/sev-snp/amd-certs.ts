// AMD's certificate profile for SEV-SNP (ARK, ASK/ASVK, VCEK/VLEK), read on its own terms: the
// RSASSA-PSS signatures they carry, checked with their parameters spelled out; validity, CA flags
// and names; the AMD extensions of a VCEK or VLEK (TCB security patch levels, the chip's hardware
// id, which AMD stores as raw bytes rather than DER). lib/pki's strict structure reader does the
// framing; lib/pki's certificate parser and signature list (no PSS) stay as strict as they are,
// since only this chain needs AMD's exceptions (serial number 0, raw hwID, PSS).

import { constants, verify, type KeyObject } from 'node:crypto';
import { CertifierError } from '../../errors/index.ts';
import { keyDetails, publicKeyFromSpki } from '../../crypto/index.ts';
import { children, decodeOid, DerError, expectTag, readOne, TAG, type Tlv } from '../../pki/der.ts';
import { bytesSame, MAX_CERTIFICATE_BYTES, pemBlocks, type CertStructure } from '../../pki/index.ts';
import { readStructure } from '../../pki/structure.ts';
import { decodeName, decodeValidity } from '../../pki/names.ts';
import { AMD_CERTS, AMD_PRODUCTS, type AmdProduct } from './amd-roots.ts';
import type { TcbLayout } from './report.ts';

/** OID arc 1.3.6.1.4.1.3704.1 (AMD), as AMD's VCEK specification numbers the extensions. */
export const AMD_EXT = {
  structVersion: '1.3.6.1.4.1.3704.1.1',
  productName: '1.3.6.1.4.1.3704.1.2',
  blSpl: '1.3.6.1.4.1.3704.1.3.1',
  teeSpl: '1.3.6.1.4.1.3704.1.3.2',
  snpSpl: '1.3.6.1.4.1.3704.1.3.3',
  ucodeSpl: '1.3.6.1.4.1.3704.1.3.8',
  /** Turin's FMC level: only a Turin VCEK or VLEK carries it. */
  fmcSpl: '1.3.6.1.4.1.3704.1.3.9',
  hwId: '1.3.6.1.4.1.3704.1.4',
  cspId: '1.3.6.1.4.1.3704.1.5',
} as const;

export const RSASSA_PSS = '1.2.840.113549.1.1.10';
const SHA384 = '2.16.840.1.101.3.4.2.2';
const MGF1 = '1.2.840.113549.1.1.8';
export const AMD_PSS_SALT = 48;

interface PssParams { hash?: string; mgf?: string; mgfHash?: string; salt?: number; trailer?: number }

function algorithmOid(t: Tlv | undefined, what: string): { oid: string; params: Tlv | undefined } {
  const [id, params, ...rest] = children(expectTag(t, TAG.SEQUENCE, what));
  if (rest.length > 0) throw new DerError(`${what}: unexpected extra fields`);
  return { oid: decodeOid(expectTag(id, TAG.OID, what).contents), params };
}

function smallInt(t: Tlv | undefined, what: string): number {
  const c = expectTag(t, TAG.INTEGER, what).contents;
  if (c.length !== 1 || (c[0]! & 0x80) !== 0) throw new DerError(`${what}: not a small integer`);
  return c[0]!;
}

/** RSASSA-PSS-params (RFC 4055, 3.1): [0] hash, [1] mask generation, [2] salt length, [3] trailer, in order. */
function readPssParams(der: Uint8Array): PssParams {
  const out: PssParams = {};
  let last = -1;
  for (const field of children(expectTag(readOne(der), TAG.SEQUENCE, 'RSASSA-PSS-params'))) {
    const n = field.tag - 0xa0;
    if (n < 0 || n > 3 || n <= last) throw new DerError('RSASSA-PSS-params: unexpected field');
    last = n;
    const [inner, ...extra] = children(field);
    if (extra.length > 0) throw new DerError('RSASSA-PSS-params: unexpected extra fields');
    if (n === 0) {
      const h = algorithmOid(inner, 'hashAlgorithm');
      if (h.params && !(h.params.tag === TAG.NULL && h.params.contents.length === 0)) throw new DerError('hashAlgorithm: unexpected parameters');
      out.hash = h.oid;
    } else if (n === 1) {
      const m = algorithmOid(inner, 'maskGenAlgorithm');
      out.mgf = m.oid;
      out.mgfHash = algorithmOid(m.params, 'MGF1 hash').oid;
    } else if (n === 2) out.salt = smallInt(inner, 'saltLength');
    else out.trailer = smallInt(inner, 'trailerField');
  }
  return out;
}

/** What carries an RSA-PSS signature of AMD's: a certificate, or a revocation list. */
export type PssSigned = Pick<CertStructure, 'tbs' | 'signatureAlgorithm' | 'signature'>;

/** Why a certificate's (or list's) signature cannot be one of AMD's, or undefined when the algorithm is right. */
export function pssProblem(cert: PssSigned): string | undefined {
  const { oid, parameters } = cert.signatureAlgorithm;
  if (oid !== RSASSA_PSS) return `signature algorithm ${oid} is not RSASSA-PSS`;
  // Absent fields mean SHA-1 and a 20-byte salt (RFC 4055 defaults), which AMD never uses.
  if (!parameters) return 'RSASSA-PSS without parameters';
  let p: PssParams;
  try {
    p = readPssParams(parameters);
  } catch (e) {
    return `RSASSA-PSS parameters are malformed: ${(e as Error).message}`;
  }
  if (p.hash !== SHA384) return 'RSASSA-PSS hash is not SHA-384';
  if (p.mgf !== MGF1 || p.mgfHash !== SHA384) return 'RSASSA-PSS mask generation is not MGF1 with SHA-384';
  if (p.salt !== AMD_PSS_SALT) return `RSASSA-PSS salt length is ${p.salt ?? 20}, not ${AMD_PSS_SALT}`;
  if (p.trailer !== undefined && p.trailer !== 1) return 'RSASSA-PSS trailer field is not 1';
  return undefined;
}

/**
 * The largest RSA key that signs on AMD's path: AMD's ARKs, ASKs and ASVKs are RSA-4096. Evidence
 * may name certificates of a host's own as the VCEK's issuer, each tried with its key; one of
 * 16384 bits (with a long exponent) cost tens of times the whole check of AMD's chain.
 */
const MAX_AMD_RSA_BITS = 4096;

/**
 * True when `issuerKey` (RSA, 2048 to 4096 bits) signed the certificate with RSASSA-PSS,
 * SHA-384, MGF1-SHA-384 and a 48-byte salt. Node's PSS uses the message hash for MGF1 too,
 * which is why pssProblem insists that both are SHA-384.
 */
export function isPssSignedBy(cert: PssSigned, issuerKey: KeyObject): boolean {
  if (pssProblem(cert) !== undefined) return false;
  const bits = issuerKey.asymmetricKeyType === 'rsa' ? (keyDetails(issuerKey)?.modulusLength ?? 0) : 0;
  if (bits < 2048 || bits > MAX_AMD_RSA_BITS) return false;
  try {
    return verify('sha384', cert.tbs, { key: issuerKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: AMD_PSS_SALT }, cert.signature);
  } catch {
    return false;
  }
}

/** What path validation and the report binding need from one AMD certificate. */
export interface AmdCert extends CertStructure {
  der: Uint8Array;
  /** The subject's and the issuer's common names ("SEV-VCEK", "SEV-Milan"); the full name is compared as DER. */
  name: string;
  issuerName: string;
  notBefore: Date;
  notAfter: Date;
  publicKey: KeyObject;
  isCA: boolean;
  keyCertSign: boolean;
}

const OID_CN = '2.5.4.3';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';

/** The subject's or issuer's CN, read with lib/pki's name decoder. */
function commonName(nameDer: Uint8Array, what: string): string {
  return decodeName(readOne(nameDer), what).attributes.find(([oid]) => oid === OID_CN)?.[1] ?? '(no CN)';
}

function readAmdCertDer(der: Uint8Array): AmdCert {
  const s = readStructure(der);
  const oids = s.extensions.map((e) => e.oid);
  const twice = oids.find((o, i) => oids.indexOf(o) !== i);
  if (twice) throw new DerError(`extension ${twice} appears twice (RFC 5280, 4.2)`);
  const { notBefore, notAfter } = decodeValidity(readOne(s.validityDer));
  const bc = s.extensions.find((e) => e.oid === OID_BASIC_CONSTRAINTS);
  const bcFields = bc ? children(expectTag(readOne(bc.value), TAG.SEQUENCE, 'basicConstraints')) : [];
  const ku = s.extensions.find((e) => e.oid === OID_KEY_USAGE);
  const kuBits = ku ? expectTag(readOne(ku.value), TAG.BIT_STRING, 'keyUsage').contents : undefined;
  return {
    ...s,
    der,
    name: commonName(s.subjectDer, 'subject'),
    issuerName: commonName(s.issuerDer, 'issuer'),
    notBefore,
    notAfter,
    // Not createPublicKey: it reads an EC point at infinity, whose details (isP384) abort Node.
    publicKey: publicKeyFromSpki(s.spki),
    isCA: bcFields[0]?.tag === TAG.BOOLEAN && bcFields[0].contents[0] === 0xff,
    keyCertSign: kuBits !== undefined && kuBits.length > 1 && (kuBits[1]! & 0x04) !== 0, // bit 5, after the unused-bits byte
  };
}

/** Reads one AMD certificate (DER); BAD_CERTIFICATE naming its role when it is not one. */
export function readAmdCert(der: Uint8Array, role: string): AmdCert {
  if (der.length > MAX_CERTIFICATE_BYTES) throw new CertifierError('BAD_CERTIFICATE', `the ${role} certificate is larger than ${MAX_CERTIFICATE_BYTES} bytes`);
  try {
    return readAmdCertDer(new Uint8Array(der));
  } catch (cause) {
    throw new CertifierError('BAD_CERTIFICATE', `the ${role} certificate is not a DER X.509 certificate: ${(cause as Error).message}`, { cause, details: { reason: 'malformed', certificate: role } });
  }
}

const extension = (cert: AmdCert, oid: string) => cert.extensions.find((e) => e.oid === oid)?.value;

function smallUnsigned(value: Uint8Array, what: string): number {
  let t;
  try {
    t = readOne(value);
  } catch (cause) {
    throw new CertifierError('BAD_CERTIFICATE', `${what} is not a DER INTEGER`, { cause });
  }
  const c = t.contents;
  const minimal = c.length === 1 ? (c[0]! & 0x80) === 0 : c.length === 2 && c[0] === 0 && (c[1]! & 0x80) !== 0;
  if (t.tag !== TAG.INTEGER || !minimal) throw new CertifierError('BAD_CERTIFICATE', `${what} is not an integer from 0 to 255`);
  return c[c.length - 1]!;
}

export interface CertTcb { fmc?: number; bootloader: number; tee: number; snp: number; microcode: number }

/** The TCB a VCEK or VLEK was issued for (with fmc for a Turin one); BAD_CERTIFICATE when an SPL extension is missing. */
export function certTcb(cert: AmdCert): CertTcb {
  const get = (oid: string, name: string) => {
    const v = extension(cert, oid);
    if (!v) throw new CertifierError('BAD_CERTIFICATE', `the ${name} extension (${oid}) is missing from the VCEK/VLEK`);
    return smallUnsigned(v, name);
  };
  const tcb: CertTcb = { bootloader: get(AMD_EXT.blSpl, 'blSPL'), tee: get(AMD_EXT.teeSpl, 'teeSPL'), snp: get(AMD_EXT.snpSpl, 'snpSPL'), microcode: get(AMD_EXT.ucodeSpl, 'ucodeSPL') };
  return extension(cert, AMD_EXT.fmcSpl) ? { fmc: get(AMD_EXT.fmcSpl, 'fmcSPL'), ...tcb } : tcb;
}

/**
 * The hwID extension: AMD puts the raw chip id in extnValue, not a nested OCTET STRING: 64 bytes
 * (Milan, Genoa), or the first 8 bytes of CHIP_ID for Turin, as its KDS addresses Turin VCEKs.
 */
export const certHwId = (cert: AmdCert): Uint8Array | undefined => extension(cert, AMD_EXT.hwId);

/** productName ("Milan-B0", "Genoa"), an IA5String; undefined when absent or unreadable. */
export function certProductName(cert: AmdCert): string | undefined {
  const v = extension(cert, AMD_EXT.productName);
  try {
    const t = v && readOne(v);
    return t && t.tag === TAG.IA5 ? Buffer.from(t.contents).toString('latin1') : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The TCB layout of each product a VCEK or VLEK may name (productName before any "-stepping", as
 * "Milan-B0", "Genoa", "Turin"): Bergamo and Siena are family 19h CPUs under Genoa's ARK.
 */
const PRODUCT_LAYOUTS: Readonly<Record<string, TcbLayout>> = { Milan: 'family-19h', Genoa: 'family-19h', Bergamo: 'family-19h', Siena: 'family-19h', Turin: 'turin' };

/**
 * The TCB layout of the CPU a VCEK or VLEK was issued for: its productName's, which fmcSPL must
 * agree with (only a Turin one carries it: else BAD_CERTIFICATE); without a productName, fmcSPL's.
 * SNP_CPU_UNKNOWN for a product not known here, whose TCB is judged under no other's rules.
 */
export function certLayout(cert: AmdCert, certified: CertTcb): TcbLayout {
  const byFmc: TcbLayout = certified.fmc === undefined ? 'family-19h' : 'turin';
  if (!extension(cert, AMD_EXT.productName)) return byFmc;
  const name = certProductName(cert);
  if (name === undefined) throw new CertifierError('BAD_CERTIFICATE', `the ${cert.name} certificate's productName extension is not an IA5String`);
  const family = name.split('-')[0]!;
  const layout = Object.hasOwn(PRODUCT_LAYOUTS, family) ? PRODUCT_LAYOUTS[family] : undefined;
  if (!layout) throw new CertifierError('SNP_CPU_UNKNOWN', `the ${cert.name} certificate was issued for a CPU of product "${name}", which this verifier does not know: it reads Milan, Genoa (with Bergamo and Siena) and Turin machines, each by its own TCB layout, and no other`);
  if (layout !== byFmc) throw new CertifierError('BAD_CERTIFICATE', `the ${cert.name} certificate names product "${name}" but ${byFmc === 'turin' ? 'carries' : 'lacks'} the fmcSPL extension, which only Turin's carry`);
  return layout;
}

// Pinned and policy-named certificates are read once per byte array: the same ones serve every request.
const parsedOnce = new WeakMap<Uint8Array, AmdCert>();

/** readAmdCert, remembered for byte arrays that stay the same (pinned roots, a loaded policy's roots). */
export function readAmdCertOnce(der: Uint8Array, role: string): AmdCert {
  let c = parsedOnce.get(der);
  if (!c) parsedOnce.set(der, (c = readAmdCert(der, role)));
  return c;
}

/** The pinned certificates as DER: ARKs (trust anchors) and ASK/ASVKs (intermediates). */
export interface PinnedAmd { product: AmdProduct; arkName: string; ark: Uint8Array; ask: Uint8Array; asvk: Uint8Array }
let pinned: PinnedAmd[] | undefined;

export function pinnedAmdCerts(): PinnedAmd[] {
  pinned ??= AMD_PRODUCTS.map((product) => {
    const c = AMD_CERTS[product];
    const one = (pem: string) => pemBlocks(pem)[0]!;
    return { product, arkName: c.arkName, ark: one(c.ark), ask: one(c.ask), asvk: one(c.asvk) };
  });
  return pinned;
}

export function pinnedArk(product: AmdProduct): Uint8Array {
  return pinnedAmdCerts().find((p) => p.product === product)!.ark;
}

/** The product a pinned ARK belongs to, or undefined for any other certificate. */
export function pinnedProductOf(ark: Uint8Array): AmdProduct | undefined {
  return pinnedAmdCerts().find((p) => bytesSame(p.ark, ark))?.product;
}

/**
 * The TCB layout of the machines a root vouches for: a pinned ARK's product's; a root not pinned
 * (one a policy names by file, trusted fully already) Turin's when its CN is exactly AMD's name
 * for Turin's root, "ARK-Turin", else family 19h's. The name only picks which minimum TCB and
 * which report layout apply to its machines; it makes no root more trusted than it is.
 */
export function layoutOfRoot(product: AmdProduct | undefined, arkName: string): TcbLayout {
  if (product) return product === 'turin' ? 'turin' : 'family-19h';
  return arkName === AMD_CERTS.turin.arkName ? 'turin' : 'family-19h';
}

/** layoutOfRoot of an ARK given as DER (family 19h's when it cannot be read: no machine chains to it anyway). */
export function rootLayout(ark: Uint8Array): TcbLayout {
  const product = pinnedProductOf(ark);
  if (product) return layoutOfRoot(product, AMD_CERTS[product].arkName);
  try {
    return layoutOfRoot(undefined, readAmdCertOnce(ark, 'ARK').name);
  } catch {
    return 'family-19h';
  }
}
