// AMD's certificate revocation lists for SEV-SNP: one per product, signed by its ARK (RSA-PSS,
// as the certificates are), listing the ASKs and ASVKs AMD has revoked. The operator fetches them
// from AMD's key distribution service and hands them to simpleserver (--amd-crl); nothing here
// goes to the network. A list is read strictly (RFC 5280, 5.1), checked once against the roots
// the policy trusts, and then consulted for every path that ends at its ARK: a revoked
// intermediate, or a list past its nextUpdate, refuses the machine.

import { CertifierError } from '../../errors/index.ts';
import { DEFAULT_CLOCK_SKEW_MS } from '../../policy/index.ts';
import { toHex } from '../../crypto/index.ts';
import { bytesSame, pemBlocks } from '../../pki/index.ts';
import { children, DerError, decodeOid, expectTag, readOne, TAG, type Tlv } from '../../pki/der.ts';
import { readSigned } from '../../pki/structure.ts';
import { decodeName, decodeTime } from '../../pki/names.ts';
import { isPssSignedBy, pssProblem, readAmdCert, type AmdCert, type PssSigned } from './amd-certs.ts';
import type { AmdChain } from './chain.ts';

/** Lists larger than this are refused before parsing (AMD's hold a handful of entries). */
export const MAX_CRL_BYTES = 1024 * 1024;

export interface AmdCrl extends PssSigned {
  der: Uint8Array;
  issuerDer: Uint8Array;
  /** The issuer's common name, for messages. */
  issuerName: string;
  thisUpdate: Date;
  nextUpdate: Date;
  /** Serial numbers of the revoked certificates: lowercase hex, no sign byte. */
  revoked: Set<string>;
}

/** A list whose signature verified with `root`, one of the ARKs the policy trusts. */
export interface VerifiedAmdCrl extends AmdCrl {
  root: AmdCert;
}

function serialHex(t: Tlv | undefined): string {
  const c = expectTag(t, TAG.INTEGER, 'userCertificate').contents;
  if (c.length === 0 || c.length > 21 || (c[0]! & 0x80) !== 0) throw new DerError('userCertificate: not a positive serial number');
  if (c.length > 1 && c[0] === 0 && (c[1]! & 0x80) === 0) throw new DerError('userCertificate: non-minimal encoding');
  return toHex(c[0] === 0 && c.length > 1 ? c.subarray(1) : c);
}

/**
 * RFC 5280, 5.2 and 5.3: a list with a critical extension we do not process (an issuing
 * distribution point narrowing its scope, an indirect list's certificateIssuer) must not be used.
 */
function refuseCritical(list: Tlv | undefined, what: string): void {
  for (const ext of children(expectTag(list, TAG.SEQUENCE, what))) {
    const [oid, flag] = children(expectTag(ext, TAG.SEQUENCE, 'Extension'));
    const id = decodeOid(expectTag(oid, TAG.OID, 'extnID').contents);
    if (flag?.tag === TAG.BOOLEAN && flag.contents[0] === 0xff) throw new DerError(`${what}: critical extension ${id} is not understood`);
  }
}

const isTime = (t: Tlv | undefined) => t?.tag === TAG.UTC_TIME || t?.tag === TAG.GENERALIZED_TIME;

/** CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue } */
function readCrlDer(der: Uint8Array): AmdCrl {
  const { tbs: tbsTlv, algorithm: alg, signatureAlgorithm, signature } = readSigned(der, 'CertificateList');
  // TBSCertList: version (v2) when present, signature, issuer, thisUpdate, nextUpdate (RFC 5280
  // makes it optional; we require it, since a list that never goes stale cannot be judged fresh),
  // revokedCertificates when any, crlExtensions [0].
  const fields = children(expectTag(tbsTlv, TAG.SEQUENCE, 'TBSCertList'));
  if (fields[0]?.tag === TAG.INTEGER) {
    const v = fields.shift()!.contents;
    if (v.length !== 1 || v[0] !== 1) throw new DerError('version: not v2');
  }
  const [inner, issuer, thisUpdate, nextUpdate, ...rest] = fields;
  if (!inner || !bytesSame(inner.bytes, alg.bytes)) throw new DerError('the signature algorithm inside the signed part differs from the outer one');
  if (!isTime(nextUpdate)) throw new DerError('nextUpdate is missing');
  const revoked = new Set<string>();
  let tail = rest;
  if (tail[0]?.tag === TAG.SEQUENCE) {
    for (const entry of children(tail[0])) {
      const [serial, date, exts, ...more] = children(expectTag(entry, TAG.SEQUENCE, 'revokedCertificate'));
      decodeTime(date, 'revocationDate');
      if (more.length > 0) throw new DerError('revokedCertificate: unexpected fields');
      if (exts) refuseCritical(exts, 'crlEntryExtensions');
      revoked.add(serialHex(serial));
    }
    tail = tail.slice(1);
  }
  if (tail.length > 1 || (tail[0] && tail[0].tag !== 0xa0)) throw new DerError('TBSCertList: unexpected fields after the revoked certificates');
  if (tail[0]) refuseCritical(children(tail[0])[0], 'crlExtensions');
  const issuerDer = expectTag(issuer, TAG.SEQUENCE, 'issuer').bytes;
  return {
    der, tbs: tbsTlv.bytes, signatureAlgorithm, signature, issuerDer,
    issuerName: decodeName(readOne(issuerDer), 'issuer').attributes.find(([oid]) => oid === '2.5.4.3')?.[1] ?? '(no CN)',
    thisUpdate: decodeTime(thisUpdate, 'thisUpdate'), nextUpdate: decodeTime(nextUpdate, 'nextUpdate'), revoked,
  };
}

/** Reads one CRL, DER or PEM ("X509 CRL"); INVALID_INPUT naming `source` when it is not one. */
export function readAmdCrl(bytes: Uint8Array, source: string): AmdCrl {
  if (bytes.length > MAX_CRL_BYTES) throw new CertifierError('INVALID_INPUT', `${source} is larger than ${MAX_CRL_BYTES} bytes: not an AMD CRL`);
  let der = bytes;
  if (bytes[0] !== TAG.SEQUENCE) {
    const blocks = pemBlocks(Buffer.from(bytes).toString('latin1'), 'X509 CRL');
    if (blocks.length !== 1) {
      throw new CertifierError('INVALID_INPUT', blocks.length === 0 ? `${source} is not a CRL (neither DER nor a PEM "X509 CRL" block)` : `${source} holds ${blocks.length} "X509 CRL" PEM blocks: give one list per file`);
    }
    der = blocks[0]!;
  }
  try {
    return readCrlDer(new Uint8Array(der));
  } catch (cause) {
    // A certificate given by mistake (the ASK, the VCEK) reads as a CRL until its details.
    let certificate = false;
    try {
      readAmdCert(new Uint8Array(der), 'certificate');
      certificate = true;
    } catch { /* not one either */ }
    if (certificate) throw new CertifierError('INVALID_INPUT', `${source} is an X.509 certificate, not a CRL: give AMD's revocation list for the ARK (KDS path /vcek/v1/{Milan|Genoa|Turin}/crl)`, { cause });
    throw new CertifierError('INVALID_INPUT', `${source} is not a well-formed X.509 CRL: ${(cause as Error).message}`, { cause });
  }
}

/**
 * The list, tied to the root among `roots` that signed it: its issuer is that root's subject and
 * the RSA-PSS signature verifies. INVALID_INPUT when no trusted root signed it.
 */
export function verifyAmdCrl(crl: AmdCrl, roots: AmdCert[], source: string): VerifiedAmdCrl {
  const algorithmProblem = pssProblem(crl);
  if (algorithmProblem) throw new CertifierError('INVALID_INPUT', `${source}: ${algorithmProblem}, not AMD's`);
  const root = roots.find((r) => bytesSame(r.subjectDer, crl.issuerDer) && isPssSignedBy(crl, r.publicKey));
  if (!root) {
    throw new CertifierError('INVALID_INPUT', `${source} ("${crl.issuerName}") is not signed by an AMD root the policy trusts`);
  }
  return { ...crl, root };
}

/** Why `crl` cannot be used at `at`, or undefined. */
export function crlStaleness(crl: AmdCrl, at: Date): string | undefined {
  // A list issued minutes "in the future" is a clock a little off, as certificates tolerate (README, Clocks).
  if (at.getTime() < crl.thisUpdate.getTime() - DEFAULT_CLOCK_SKEW_MS) return `AMD's CRL for ${crl.issuerName} is dated ${crl.thisUpdate.toISOString()}, more than 5 minutes after this machine's clock (${at.toISOString()})`;
  if (at > crl.nextUpdate) return `AMD's CRL for ${crl.issuerName} was due to be replaced at ${crl.nextUpdate.toISOString()} (checked at ${at.toISOString()}): fetch a fresh one from AMD (a running simpleserver reads it again on SIGHUP)`;
  return undefined;
}

/**
 * The revocation check of a path found: with a list from its ARK, the intermediate (ASK or ASVK)
 * must not be on it, and the list must be current. Without one, nothing is checked. A revoked
 * intermediate is refused as revoked by a list gone stale too: AMD's signed word that it is
 * revoked does not lapse, only the word that the others are not. Returns what was checked, for
 * the decision's proof.
 */
export function checkRevocation(chain: AmdChain, crls: VerifiedAmdCrl[], at: Date): string | undefined {
  const crl = crls.find((c) => bytesSame(c.root.der, chain.root.der));
  if (!crl) return undefined;
  if (crl.revoked.has(chain.intermediate.serialHex)) {
    throw new CertifierError('SNP_CHAIN_UNTRUSTED', `the ${chain.intermediate.name} certificate (serial ${chain.intermediate.serialHex}) is revoked by AMD's CRL of ${crl.thisUpdate.toISOString()} (revoked)`, { details: { reason: 'revoked', certificate: chain.intermediate.name } });
  }
  const stale = crlStaleness(crl, at);
  if (stale) throw new CertifierError('SNP_CRL_STALE', stale, { details: { reason: 'crl-stale' } });
  return `${chain.intermediate.name} is not on ${crl.issuerName}'s CRL of ${crl.thisUpdate.toISOString()} (${crl.revoked.size} revoked)`;
}

/**
 * Lists as a server takes them (simpleserver --amd-crl): each read, verified against one of
 * `roots` (DER ARKs: AMD's pinned ones and those the policy names), current at `at`
 * (SNP_CRL_STALE otherwise), and at most one per root (INVALID_INPUT: which one would count?).
 */
export function trustedCrls(lists: { source: string; bytes: Uint8Array }[], roots: Uint8Array[], at: Date): VerifiedAmdCrl[] {
  const anchors = roots.map((r) => readAmdCert(r, 'ARK'));
  const out: VerifiedAmdCrl[] = [];
  for (const { source, bytes } of lists) {
    const crl = verifyAmdCrl(readAmdCrl(bytes, source), anchors, source);
    const stale = crlStaleness(crl, at);
    if (stale) throw new CertifierError('SNP_CRL_STALE', `${source}: ${stale}`, { details: { reason: 'crl-stale' } });
    if (out.some((c) => bytesSame(c.root.der, crl.root.der))) throw new CertifierError('INVALID_INPUT', `${source} is a second CRL for ${crl.issuerName}: give only the latest`);
    out.push(crl);
  }
  return out;
}

/**
 * INVALID_INPUT if a list of `next` is older than the one in force for its root: putting it in
 * force would lift the revocations made since.
 */
export function refuseOlderCrls(next: VerifiedAmdCrl[], inForce: VerifiedAmdCrl[]): void {
  for (const c of next) {
    const current = inForce.find((x) => bytesSame(x.root.der, c.root.der));
    if (current && c.thisUpdate < current.thisUpdate) {
      throw new CertifierError('INVALID_INPUT', `the AMD CRL for ${c.issuerName} is dated ${c.thisUpdate.toISOString()}, older than the one in force (${current.thisUpdate.toISOString()}); the lists in force stay`);
    }
  }
}

/** One line per list, for a server's start and reload messages. */
export function describeCrl(c: VerifiedAmdCrl): string {
  return `AMD CRL of ${c.issuerName}, ${c.thisUpdate.toISOString()}, ${c.revoked.size} revoked, next due ${c.nextUpdate.toISOString()}`;
}
