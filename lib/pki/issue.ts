// Issuing: the self-signed policy certificate and admission certificates signed by the policy
// key, named as the original Certifier names them. Inputs are checked here, before anything is signed.

import type { KeyObject } from 'node:crypto';
import { fromHex, keyAlgOf, publicKeyOf } from '../crypto/index.ts';
import { CertifierError } from '../errors/index.ts';
import {
  ADMISSION_CN, admissionProblem, admissionUri, domainOfPolicyOrganization, domainProblem, encodeAdmission,
  measurementOrganization, POLICY_CN, policyOrganization,
} from './admission.ts';
import {
  authorityKeyId, basicConstraints, encodeName, extKeyUsage, keyIdentifier, keyUsage, randomSerial, signCertificate,
  spkiOf, subjectAltName, subjectKeyId,
} from './build.ts';
import { ADMISSION_EXTENSION_OID, OID, type KeyUsageName } from './oids.ts';
import { bytesSame } from './structure.ts';
import { CLOCK_SKEW_SECONDS } from './problems.ts';
import { validatePolicyCert } from './validate.ts';

export const DEFAULT_POLICY_DAYS = 3650;
const MAX_DAYS = 100 * 366;

export interface PolicyCertOptions {
  privateKey: KeyObject;
  domain: string;
  days?: number;
  now?: Date;
}

export interface AdmissionCertOptions {
  policyKey: KeyObject;
  policyCert: Uint8Array;
  subjectPublicKey: KeyObject;
  measurement: Uint8Array;
  platform: string;
  domain: string;
  validitySeconds: number;
  now?: Date;
  dnsNames?: string[];
  ipAddresses?: string[];
  /** Extended key usage OIDs; TLS server and client authentication unless given. */
  extKeyUsage?: string[];
}

const invalid = (message: string) => new CertifierError('INVALID_INPUT', message);

/** Certificates carry whole seconds; dropping the milliseconds keeps notBefore <= now. */
function wholeSeconds(d: Date): number {
  const ms = d.getTime();
  if (!Number.isFinite(ms)) throw invalid('"now" is not a valid date');
  return Math.floor(ms / 1000) * 1000;
}

function checkPositiveInteger(n: number, what: string, max: number): void {
  if (!Number.isSafeInteger(n) || n < 1 || n > max) throw invalid(`${what} must be a whole number from 1 to ${max}`);
}

function requirePrivate(key: KeyObject, what: string): void {
  if (key.type !== 'private') throw new CertifierError('INVALID_KEY', `${what} must be a private key`);
  keyAlgOf(key);
}

/** The policy certificate: self-signed CA "CN=policyKey, O=<domain>/policyAuthority". */
export async function createPolicyCert(opts: PolicyCertOptions): Promise<Uint8Array> {
  requirePrivate(opts.privateKey, 'the policy key');
  const domainIssue = domainProblem(opts.domain);
  if (domainIssue) throw invalid(domainIssue);
  const days = opts.days ?? DEFAULT_POLICY_DAYS;
  checkPositiveInteger(days, 'days', MAX_DAYS);
  const t = wholeSeconds(opts.now ?? new Date());
  const spki = spkiOf(opts.privateKey);
  const name = encodeName([[OID.commonName, POLICY_CN], [OID.organizationName, policyOrganization(opts.domain)]]);
  return signCertificate({
    serial: randomSerial(),
    issuer: name,
    subject: name,
    notBefore: new Date(t - CLOCK_SKEW_SECONDS * 1000),
    notAfter: new Date(t + days * 86_400_000),
    spki,
    // pathLength 0: admission certificates hang directly off the policy certificate.
    extensions: [
      basicConstraints(true, 0),
      keyUsage(['digitalSignature', 'keyCertSign', 'cRLSign']),
      subjectKeyId(keyIdentifier(spki)),
    ],
  }, opts.privateKey);
}

function checkAdmissionInputs(opts: AdmissionCertOptions): void {
  const problem = admissionProblem(opts);
  if (problem) throw invalid(problem);
  checkPositiveInteger(opts.validitySeconds, 'validitySeconds', MAX_DAYS * 86_400);
}

/** The policy certificate must be usable now and belong to the policy key we sign with. */
function loadIssuer(opts: AdmissionCertOptions, now: Date) {
  requirePrivate(opts.policyKey, 'the policy key');
  const policy = validatePolicyCert(opts.policyCert, now);
  if (!bytesSame(spkiOf(opts.policyKey), policy.spki)) {
    throw new CertifierError('INVALID_KEY', 'the policy key does not belong to the policy certificate');
  }
  const named = policy.organizations.map(domainOfPolicyOrganization).find((d) => d !== undefined);
  if (named !== undefined && named !== opts.domain) {
    throw invalid(`domain "${opts.domain}" differs from the policy certificate's domain "${named}"`);
  }
  return policy;
}

/** An admission certificate for a measured machine's key, signed by the policy key. */
export async function issueAdmissionCert(opts: AdmissionCertOptions): Promise<Uint8Array> {
  checkAdmissionInputs(opts);
  const t = wholeSeconds(opts.now ?? new Date());
  const policy = loadIssuer(opts, new Date(t));
  const subjectKey = publicKeyOf(opts.subjectPublicKey);
  const usages: KeyUsageName[] = keyAlgOf(subjectKey) === 'rsa2048' ? ['digitalSignature', 'keyEncipherment'] : ['digitalSignature'];
  const spki = spkiOf(subjectKey);
  const measurement = new Uint8Array(opts.measurement);
  const authorityId = policy.subjectKeyIdHex ? fromHex(policy.subjectKeyIdHex) : keyIdentifier(policy.spki);
  return signCertificate({
    serial: randomSerial(),
    issuer: policy.subjectDer,
    subject: encodeName([[OID.organizationName, measurementOrganization(measurement)], [OID.commonName, ADMISSION_CN]]),
    notBefore: new Date(t - CLOCK_SKEW_SECONDS * 1000),
    // Never beyond the policy certificate: past its end the path is invalid whatever the leaf says.
    notAfter: new Date(Math.min(t + opts.validitySeconds * 1000, policy.notAfter.getTime())),
    spki,
    extensions: [
      basicConstraints(false),
      keyUsage(usages),
      extKeyUsage(opts.extKeyUsage ?? [OID.serverAuth, OID.clientAuth]),
      subjectKeyId(keyIdentifier(spki)),
      authorityKeyId(authorityId),
      subjectAltName({
        uris: [admissionUri(opts.domain, measurement)],
        dnsNames: opts.dnsNames ?? [],
        ipAddresses: opts.ipAddresses ?? [],
      }),
      { oid: ADMISSION_EXTENSION_OID, critical: false, value: encodeAdmission({ measurement, platform: opts.platform, domain: opts.domain }) },
    ],
  }, opts.policyKey);
}
