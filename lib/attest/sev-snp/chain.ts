// Our own path validation for AMD's SEV-SNP chain: VCEK -> ASK -> ARK, or VLEK -> ASVK -> ARK,
// ending at one of the trust anchors the caller names (AMD's pinned ARKs, or a root a policy names
// explicitly). Names are compared byte for byte, every signature is RSASSA-PSS checked with its
// parameters, every certificate must be valid at the given time and carry the CA flags AMD sets.
// AMD issues VCEKs and VLEKs with serial number 0, which RFC 5280 forbids; that is accepted here,
// on this path only, and lib/pki's validation of admission certificates is unchanged.

import type { KeyObject } from 'node:crypto';
import { CertifierError, type ErrorCode } from '../../errors/index.ts';
import { bytesSame } from '../../pki/index.ts';
import { isThisClock, roughly, SET_CLOCK } from '../../util/clock.ts';
import { isPssSignedBy, pssProblem, type AmdCert } from './amd-certs.ts';
import type { SigningKey } from './report.ts';

export interface AmdChain {
  leaf: AmdCert;
  intermediate: AmdCert;
  root: AmdCert;
}

export interface ChainInput {
  /** The VCEK or VLEK. */
  leaf: AmdCert;
  /** Which kind the report says signed it. */
  kind: SigningKey;
  /** Candidate ASKs/ASVKs: the evidence's and the pinned ones. Untrusted until they chain. */
  intermediates: AmdCert[];
  /** Trust anchors (ARKs). Nothing else can end a path. */
  roots: AmdCert[];
  at: Date;
}

const LEAF_CN: Record<SigningKey, string> = { vcek: 'SEV-VCEK', vlek: 'SEV-VLEK' };
/** Extensions AMD marks critical (basicConstraints, keyUsage); anything else critical is refused. */
const UNDERSTOOD_CRITICAL = ['2.5.29.19', '2.5.29.15'];

/** `fix`, when given, follows the reason: what to do. */
function fail(code: ErrorCode, reason: string, message: string, certificate: string, fix?: string): CertifierError {
  return new CertifierError(code, `${message} (${reason})${fix ? `: ${fix}` : ''}`, { details: { reason, certificate } });
}

/**
 * What to do about a certificate AMD made after `at`, when `at` is this machine's clock (not a
 * time chosen with explain --at): AMD's certificates exist before any machine can use them, so
 * that clock is behind, by at least the difference.
 */
function clockFix(c: AmdCert, at: Date): string | undefined {
  if (!isThisClock(at)) return undefined;
  // Under a minute, roughly() says "less than a minute": no lower bound to give.
  const lag = c.notBefore.getTime() - at.getTime();
  return `this machine's clock is probably ${lag < 60_000 ? '' : `at least ${roughly(lag, { down: true })} `}behind: ${SET_CLOCK}`;
}


/** Flags and window of one certificate in its place in the path. */
function checkCert(c: AmdCert, role: string, ca: boolean, at: Date): void {
  if (at < c.notBefore) throw fail('CERT_EXPIRED', 'not-yet-valid', `the ${role} certificate (${c.name}) is not valid before ${c.notBefore.toISOString()}`, role, clockFix(c, at));
  if (at > c.notAfter) throw fail('CERT_EXPIRED', 'expired', `the ${role} certificate (${c.name}) expired at ${c.notAfter.toISOString()}`, role);
  const critical = c.extensions.find((e) => e.critical && !UNDERSTOOD_CRITICAL.includes(e.oid));
  if (critical) throw fail('BAD_CERTIFICATE', 'unknown-critical-extension', `the ${role} certificate has an unknown critical extension ${critical.oid}`, role);
  const signsCerts = c.keyCertSign;
  if (ca && (!c.isCA || !signsCerts)) throw fail('SNP_CHAIN_UNTRUSTED', 'not-ca', `the ${role} certificate (${c.name}) is not a CA allowed to sign certificates`, role);
  if (!ca && (c.isCA || signsCerts)) throw fail('SNP_CHAIN_UNTRUSTED', 'leaf-is-ca', `the ${role} certificate (${c.name}) is a CA, not a signing key`, role);
}

/** The issuer among `candidates` whose subject is `child`'s issuer and whose key signed it. */
function findIssuer(child: AmdCert, candidates: AmdCert[], childRole: string, issuerRole: string): AmdCert {
  const named = candidates.filter((c) => bytesSame(c.subjectDer, child.issuerDer));
  if (named.length === 0) {
    throw fail('SNP_CHAIN_UNTRUSTED', 'no-issuer', `the ${childRole} certificate is issued by "${child.issuerName}", which is not a trusted ${issuerRole}`, childRole);
  }
  const algorithm = pssProblem(child);
  if (algorithm) throw fail('SNP_CHAIN_UNTRUSTED', 'signature-algorithm', `the ${childRole} certificate (${child.name}): ${algorithm}`, childRole);
  const signer = named.find((c) => isPssSignedBy(child, c.publicKey));
  if (!signer) throw fail('SNP_CHAIN_UNTRUSTED', 'signature', `the ${childRole} certificate's signature does not verify with the ${issuerRole} "${named[0]!.name}"`, childRole);
  return signer;
}

/** AMD names an ASK "SEV-<product>" and an ASVK "SEV-VLEK-<product>" (KDS; the pinned ones, the test signer's). */
export function intermediateKind(c: AmdCert): 'ASK' | 'ASVK' | undefined {
  if (c.name.startsWith('SEV-VLEK-')) return 'ASVK';
  return c.name.startsWith('SEV-') ? 'ASK' : undefined;
}

/**
 * AMD's two paths do not cross: ARK -> ASK -> VCEK, ARK -> ASVK -> VLEK. SNP_CHAIN_UNTRUSTED
 * (reason wrong-intermediate) when the leaf's issuer is the other kind of intermediate, or neither.
 */
export function checkIntermediateKind(intermediate: AmdCert, kind: SigningKey): void {
  const want = kind === 'vcek' ? 'ASK' : 'ASVK';
  const have = intermediateKind(intermediate);
  if (have === want) return;
  const what = have ? `an ${have}, which signs ${have === 'ASK' ? 'VCEKs' : 'VLEKs'} only` : 'neither an ASK nor an ASVK';
  throw fail('SNP_CHAIN_UNTRUSTED', 'wrong-intermediate', `the ${kind.toUpperCase()} certificate is signed by "${intermediate.name}", ${what}: a ${kind.toUpperCase()} must be signed by an ${want} (ARK -> ${want} -> ${kind.toUpperCase()})`, kind.toUpperCase());
}

const isP384 = (k: KeyObject) => k.asymmetricKeyType === 'ec' && k.asymmetricKeyDetails?.namedCurve === 'secp384r1';

/**
 * Finds the path from a VCEK/VLEK to one of `roots`: names, kinds and signatures, what a revocation
 * check needs. Throws SNP_CHAIN_UNTRUSTED (no path, a bad signature or algorithm, a VCEK under an
 * ASVK or a VLEK under an ASK) or SNP_VCEK_MISMATCH (the certificate is not the kind of key the
 * report names), with details.reason. checkAmdPath then checks each certificate's dates and flags.
 */
export function findAmdPath(i: Omit<ChainInput, 'at'>): AmdChain {
  const leaf = i.leaf;
  const leafRole = i.kind.toUpperCase();
  const interRole = i.kind === 'vcek' ? 'ASK' : 'ASVK';
  if (leaf.name !== LEAF_CN[i.kind]) {
    throw fail('SNP_VCEK_MISMATCH', 'signing-key-kind', `the report is signed by a ${leafRole}, but the certificate given is "${leaf.name}", not ${LEAF_CN[i.kind]}`, leafRole);
  }
  if (!isP384(leaf.publicKey)) throw fail('SNP_CHAIN_UNTRUSTED', 'key-algorithm', `the ${leafRole} key is not ECDSA P-384`, leafRole);
  // A self-issued certificate (a root) may not stand in the middle of the path.
  const intermediates = i.intermediates.filter((c) => !bytesSame(c.issuerDer, c.subjectDer));
  const intermediate = findIssuer(leaf, intermediates, leafRole, interRole);
  checkIntermediateKind(intermediate, i.kind);
  const root = findIssuer(intermediate, i.roots, interRole, 'root (ARK)');
  const rootAlgorithm = pssProblem(root);
  if (!bytesSame(root.issuerDer, root.subjectDer) || rootAlgorithm || !isPssSignedBy(root, root.publicKey)) {
    throw fail('SNP_CHAIN_UNTRUSTED', 'root-self-signature', `the root "${root.name}" is not a valid self-signed ARK${rootAlgorithm ? `: ${rootAlgorithm}` : ''}`, 'ARK');
  }
  return { leaf, intermediate, root };
}

/** Each certificate of a path found (findAmdPath) valid at `at`, with the flags of its place: CERT_EXPIRED, SNP_CHAIN_UNTRUSTED or BAD_CERTIFICATE, with details.reason. */
export function checkAmdPath(chain: AmdChain, kind: SigningKey, at: Date): void {
  checkCert(chain.root, 'ARK', true, at);
  checkCert(chain.intermediate, kind === 'vcek' ? 'ASK' : 'ASVK', true, at);
  checkCert(chain.leaf, kind.toUpperCase(), false, at);
}

/** findAmdPath, then checkAmdPath: the whole path validation, revocation aside. */
export function validateAmdChain(i: ChainInput): AmdChain {
  const chain = findAmdPath(i);
  checkAmdPath(chain, i.kind, i.at);
  return chain;
}
