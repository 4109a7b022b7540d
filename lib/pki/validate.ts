// Our own path validation: a leaf signed directly by the pinned policy certificate, checked field by
// field (RFC 5280, 6.1, cut down to a one-step path) instead of trusting a chain builder.
// Every check runs on every call; only a signature that already verified over the very same bytes
// with the very same key is not verified again (the policy and peer certificates recur per connection).

import type { KeyObject } from 'node:crypto';
import { toHex } from '../crypto/index.ts';
import { CertifierError } from '../errors/index.ts';
import { isThisClock } from '../util/clock.ts';
import { domainOfPolicyOrganization, measurementOrganization, MEASUREMENT_PREFIX } from './admission.ts';
import { copyParsed, parseShared, type ParsedCert } from './parse.ts';
import { bytesSame, isSignedBy } from './structure.ts';
import { UNDERSTOOD_EXTENSIONS } from './oids.ts';
import { type CertRole, type Problem, firstProblem, problem, untrusted } from './problems.ts';

/**
 * 'role': a role credential, never a TLS identity (clientAuth too, as credentials issued before 2026-12-05 carry).
 * 'machine': a machine's own certificate, which it serves and connects with: both TLS purposes, as simpleserver issues.
 */
export type Usage = 'client' | 'server' | 'any' | 'role' | 'machine';

export interface ValidateAdmissionOptions {
  /** Leaf first, DER. Further entries may only be the pinned policy certificate itself. */
  chain: Uint8Array[];
  /** The pinned policy certificate (DER): the only root there is. */
  policyCert: Uint8Array;
  at: Date;
  /** Which extended key usage the leaf needs; 'any' means client or server authentication, 'machine' both. Default 'any'. */
  usage?: Usage;
  /** What the leaf is, for messages: "peer" (default), "this machine's", "the newly issued". */
  role?: string;
}

export interface ValidatedPeer {
  serialHex: string;
  measurement: Uint8Array;
  measurementHex: string;
  platform: string;
  domain: string;
  publicKey: KeyObject;
  subject: string;
  notBefore: Date;
  notAfter: Date;
  /** The start of the whole path: the later of notBefore and the policy certificate's own start. */
  validFrom: Date;
  /** The end of the whole path: the earlier of notAfter and the policy certificate's own end. */
  validUntil: Date;
  fingerprintSha256Hex: string;
}

function checkDate(at: Date): void {
  if (!(at instanceof Date) || !Number.isFinite(at.getTime())) throw new CertifierError('INVALID_INPUT', 'the validation time is not a valid date');
}

/**
 * RFC 5280, 4.1.2.5: both ends of the window are inclusive. A certificate outside its window is
 * as often a clock set wrong as an old certificate, so the message gives the time used.
 */
function validityProblem(cert: ParsedCert, at: Date, which: string): Problem | undefined {
  // The time is this machine's clock, except where a caller chose it (simpleserver explain --at).
  // Made only for a refusal: this runs twice for every new peer.
  const clock = () => `(checked at ${at.toISOString()}${isThisClock(at) ? ' by this machine\'s clock' : ''})`;
  if (at < cert.notBefore) {
    // The dates go with it, so whoever knows whose clock `at` is can say by how much it lags (withDateFix).
    return problem('CERT_EXPIRED', 'not-yet-valid', `the ${which} certificate is not valid before ${cert.notBefore.toISOString()} ${clock()}`, { notBefore: cert.notBefore.toISOString(), checkedAt: at.toISOString() });
  }
  if (at > cert.notAfter) return problem('CERT_EXPIRED', 'expired', `the ${which} certificate expired at ${cert.notAfter.toISOString()} ${clock()}`);
  return undefined;
}

/**
 * The pinned policy certificate's own window. Once it has ended, no certificate issued under it
 * is valid and none can be: only a new policy key helps, which the message says.
 */
function policyValidityProblem(policy: ParsedCert, at: Date): Problem | undefined {
  const found = validityProblem(policy, at, 'policy');
  if (found?.reason !== 'expired') return found;
  return { ...found, message: `${found.message}: no certificate issued under it lasts longer, so the policy key must be replaced (README "Replacing the policy key"), or a clock is wrong` };
}

/** RFC 5280, 4.2: a critical extension we do not understand means we must not accept the certificate. */
function criticalProblem(cert: ParsedCert, which: string): Problem | undefined {
  const unknown = cert.extensions.find((e) => e.critical && !UNDERSTOOD_EXTENSIONS.includes(e.oid));
  return unknown && problem('BAD_CERTIFICATE', 'unknown-critical-extension', `the ${which} certificate has an unknown critical extension ${unknown.oid}`);
}

/** The shared (cached, read-only) parse, with the failing certificate's role added to the error's details. */
function parseAs(der: Uint8Array, certificate: CertRole): ParsedCert {
  try {
    return parseShared(der);
  } catch (e) {
    if (!(e instanceof CertifierError)) throw e;
    throw new CertifierError(e.code, e.message, { cause: e.cause, details: { ...e.details, certificate } });
  }
}

// Signatures that verified, between shared parses (parse.ts's cache hands out the same object for
// the same bytes): cert -> the issuers whose key it verified with. Weak, so it lives no longer
// than the cache's entries; only successes are kept, so a failure is always checked afresh.
const verified = new WeakMap<ParsedCert, WeakSet<ParsedCert>>();

function signedBy(cert: ParsedCert, issuer: ParsedCert): boolean {
  if (verified.get(cert)?.has(issuer)) return true;
  if (!isSignedBy(cert, issuer.publicKey)) return false;
  let issuers = verified.get(cert);
  if (!issuers) verified.set(cert, (issuers = new WeakSet()));
  issuers.add(issuer);
  return true;
}

/** validatePolicyCert on the shared parse, for use inside this file. */
function checkPolicy(policyCert: Uint8Array, at: Date): ParsedCert {
  checkDate(at);
  const policy = parseAs(policyCert, 'policy');
  if (!bytesSame(policy.issuerDer, policy.subjectDer)) {
    throw untrusted('policy-self-signature', `the policy certificate is not self-issued (issuer ${policy.issuer}, subject ${policy.subject})`, 'policy');
  }
  if (!signedBy(policy, policy)) {
    throw untrusted('policy-self-signature', 'the policy certificate\'s self-signature does not verify', 'policy');
  }
  const found = firstProblem('policy', [
    policyValidityProblem(policy, at),
    policy.isCA ? undefined : problem('BAD_CERTIFICATE', 'policy-not-ca', 'the policy certificate is not a CA (basicConstraints cA is not set)'),
    policy.keyUsage.includes('keyCertSign') ? undefined : problem('BAD_CERTIFICATE', 'policy-key-usage', policy.keyUsage.length ? 'the policy certificate\'s key usage lacks keyCertSign' : 'the policy certificate has no key usage extension (it needs keyCertSign)'),
    // TLS (OpenSSL) applies a CA's extended key usage to what it issues, and every machine is both
    // a TLS client and a TLS server: one that does not allow both fails handshakes in one direction.
    policy.extKeyUsage.length === 0 || policy.extKeyUsage.includes('anyExtendedKeyUsage') || (policy.extKeyUsage.includes('serverAuth') && policy.extKeyUsage.includes('clientAuth')) ? undefined
      : problem('BAD_CERTIFICATE', 'policy-ext-key-usage', `the policy certificate's extended key usage (${policy.extKeyUsage.join(', ')}) does not allow both TLS client and server authentication`),
    // Two domains: which would the machines it admits belong to?
    policy.organizations.filter((o) => domainOfPolicyOrganization(o) !== undefined).length > 1
      ? problem('BAD_CERTIFICATE', 'policy-domains', 'the policy certificate names more than one domain (O=<domain>/policyAuthority)') : undefined,
    criticalProblem(policy, 'policy'),
  ]);
  if (found) throw found;
  return policy;
}

/** The pinned policy certificate: self-signed, a CA allowed to sign certificates, valid at `at`. */
export function validatePolicyCert(policyCert: Uint8Array, at: Date): ParsedCert {
  return copyParsed(checkPolicy(policyCert, at));
}

/** Trust first: who signed the leaf. Stops at the first failure; nothing else matters after one. */
function checkIssuedByPolicy(chain: Uint8Array[], policyCert: Uint8Array, leaf: ParsedCert, policy: ParsedCert): void {
  if (chain.slice(1).some((c) => !bytesSame(c, policyCert))) {
    throw untrusted('root-mismatch', 'the peer\'s chain holds a certificate other than the pinned policy certificate', 'chain');
  }
  if (!bytesSame(leaf.issuerDer, policy.subjectDer)) {
    throw untrusted('issuer', `the certificate's issuer "${leaf.issuer}" is not the policy certificate's subject "${policy.subject}"`);
  }
  if (leaf.authorityKeyIdHex && policy.subjectKeyIdHex && leaf.authorityKeyIdHex !== policy.subjectKeyIdHex) {
    throw untrusted('root-mismatch', `the certificate was issued under policy key ${leaf.authorityKeyIdHex}, not the pinned ${policy.subjectKeyIdHex}`);
  }
  if (!signedBy(leaf, policy)) {
    throw untrusted('signature', 'the certificate\'s signature does not verify with the policy key');
  }
}

const EKU_FOR: Record<Usage, string[]> = { client: ['clientAuth'], server: ['serverAuth'], any: ['clientAuth', 'serverAuth'], role: ['roleCredential', 'clientAuth'], machine: ['clientAuth', 'serverAuth'] };
/** Usages that need every one of their extended key usages, not just one. */
const EKU_ALL: Usage[] = ['machine'];

function extKeyUsageProblem(leaf: ParsedCert, usage: Usage, which: string): Problem | undefined {
  const all = EKU_ALL.includes(usage);
  const missing = EKU_FOR[usage].filter((u) => !leaf.extKeyUsage.includes(u));
  if (all ? missing.length === 0 : missing.length < EKU_FOR[usage].length) return undefined;
  return problem('BAD_CERTIFICATE', 'ext-key-usage', `the ${which} certificate's extended key usage lacks ${missing.join(all ? ' and ' : ' or ')}`);
}

function flagProblems(leaf: ParsedCert, usage: Usage, which: string): (Problem | undefined)[] {
  const bad = (reason: string, message: string) => problem('BAD_CERTIFICATE', reason, message);
  const signsCerts = leaf.keyUsage.filter((u) => u === 'keyCertSign' || u === 'cRLSign');
  return [
    leaf.isCA ? bad('is-ca', 'the certificate is a CA (basicConstraints cA is set), not an end entity') : undefined,
    leaf.keyUsage.includes('digitalSignature') ? undefined : bad('key-usage', 'the certificate\'s key usage lacks digitalSignature'),
    // RFC 5280, 4.2.1.3: keyCertSign needs cA; an end entity has no business signing certificates or CRLs.
    signsCerts.length ? bad('key-usage', `the certificate's key usage allows ${signsCerts.join(' and ')} but it is not a CA`) : undefined,
    extKeyUsageProblem(leaf, usage, which),
    // The peer's key must be one lib/crypto can use later (TLS, signed nonces).
    leaf.keyAlg !== undefined ? undefined : bad('key-algorithm', 'the certificate\'s key is not ECDSA P-256, P-384 or RSA-2048'),
    criticalProblem(leaf, 'peer'),
  ];
}

function admissionProblems(leaf: ParsedCert, policy: ParsedCert): (Problem | undefined)[] {
  const a = leaf.admission;
  if (!a) return [problem('BAD_CERTIFICATE', 'no-admission-extension', 'the certificate carries no admission extension (measurement, platform, domain)')];
  const measured = leaf.organizations.filter((o) => o.startsWith(MEASUREMENT_PREFIX));
  const want = measurementOrganization(a.measurement);
  const policyDomain = policy.organizations.map(domainOfPolicyOrganization).find((d) => d !== undefined);
  return [
    measured.length === 1 && measured[0] === want ? undefined
      : problem('BAD_CERTIFICATE', 'measurement-mismatch', `the subject's O=${measured.join(',') || '(none)'} does not match the extension's measurement ${toHex(a.measurement)}`),
    policyDomain === undefined || policyDomain === a.domain ? undefined
      : problem('BAD_CERTIFICATE', 'domain-mismatch', `the certificate names domain "${a.domain}", the policy certificate "${policyDomain}"`),
  ];
}

/**
 * Validates a peer's admission certificate against the pinned policy certificate at time `at`.
 * Throws UNTRUSTED_PEER, CERT_EXPIRED or BAD_CERTIFICATE with details.reason naming the check.
 */
export function validateAdmission(opts: ValidateAdmissionOptions): ValidatedPeer {
  const usage = opts.usage ?? 'any';
  if (!Object.hasOwn(EKU_FOR, usage)) throw new CertifierError('INVALID_INPUT', `usage must be client, server, any, role or machine, not "${String(usage)}"`);
  if (opts.chain.length === 0) throw untrusted('no-certificate', 'the peer presented no certificate', 'chain');
  const policy = checkPolicy(opts.policyCert, opts.at);
  const leaf = parseAs(opts.chain[0]!, 'leaf');
  checkIssuedByPolicy(opts.chain, opts.policyCert, leaf, policy);
  const which = opts.role ?? 'peer';
  // concat, not spread: a spread goes through the array iterator, allocating as it goes.
  const found = firstProblem('leaf', [validityProblem(leaf, opts.at, which)].concat(flagProblems(leaf, usage, which), admissionProblems(leaf, policy)));
  if (found) throw found;
  const a = leaf.admission!;
  return {
    serialHex: leaf.serialHex,
    measurement: new Uint8Array(a.measurement),
    measurementHex: toHex(a.measurement),
    platform: a.platform,
    domain: a.domain,
    // The key only when asked for: most peers (every key-server client) never need it imported.
    get publicKey() {
      return leaf.publicKey;
    },
    subject: leaf.subject,
    notBefore: new Date(leaf.notBefore),
    notAfter: new Date(leaf.notAfter),
    validFrom: new Date(Math.max(leaf.notBefore.getTime(), policy.notBefore.getTime())),
    validUntil: new Date(Math.min(leaf.notAfter.getTime(), policy.notAfter.getTime())),
    fingerprintSha256Hex: leaf.fingerprintSha256Hex,
  };
}
