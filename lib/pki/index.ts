// lib/pki: the policy certificate, admission certificates, and our own path validation.
// Sits above lib/crypto and lib/wire; nothing here knows about stores, policies or channels.
export { ADMISSION_EXTENSION_OID, ROLE_CREDENTIAL_EKU, OID, KEY_USAGE_BITS, type KeyUsageName } from './oids.ts';
export {
  type Admission, encodeAdmission, decodeAdmission, admissionUri, measurementOrganization, policyOrganization,
  domainOfPolicyOrganization, platformProblem, ADMISSION_CN, POLICY_CN, MAX_MEASUREMENT_BYTES,
} from './admission.ts';
export { type ParsedCert, parseCertificate, readCertificateSummary, MAX_CERTIFICATE_BYTES } from './parse.ts';
export { isSignedBy, signatureAlgorithmOf, bytesSame, type CertStructure, type RawExtension } from './structure.ts';
export {
  type PolicyCertOptions, type AdmissionCertOptions, createPolicyCert, issueAdmissionCert,
  DEFAULT_POLICY_DAYS,
} from './issue.ts';
export { type Usage, type ValidateAdmissionOptions, type ValidatedPeer, validateAdmission, validatePolicyCert } from './validate.ts';
export { CLOCK_SKEW_SECONDS, clockBehind, withDateFix, withPolicyDateFix } from './problems.ts';
export { toPem, readCertificate, readCertificateChain, pemBlocks, itemValue, itemProblem } from './pem.ts';
export type { AltNames } from './san.ts';
