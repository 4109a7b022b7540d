// Object identifiers used by our certificates, and the signature algorithms we accept.
// Only SHA-2 signatures are accepted: a SHA-1 or MD5 signed certificate is refused outright.

/**
 * Our admission extension: measurement, platform and domain of an admitted machine.
 * A UUID-based arc (X.667, 2.25.<uuid as an integer>) so no registration is needed;
 * the UUID is f88da36c-e95f-407f-a557-5dfde70868f0.
 */
export const ADMISSION_EXTENSION_OID = '2.25.330383971473344653765936800923845683440';

/**
 * The extended key usage of a role credential (2.25.<uuid>, UUID
 * 2a68d731-b8f6-4c7f-a2a9-563581371813): neither TLS purpose, so no TLS stack takes a role
 * credential for a machine's identity.
 */
export const ROLE_CREDENTIAL_EKU = '2.25.56371939353741835856483640062189705235';

export const OID = {
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  rsaEncryption: '1.2.840.113549.1.1.1',
  ecPublicKey: '1.2.840.10045.2.1',
} as const;

/** The extensions a verifier here understands; any other one marked critical is refused. */
export const UNDERSTOOD_EXTENSIONS: readonly string[] = [
  OID.subjectKeyIdentifier, OID.keyUsage, OID.subjectAltName, OID.basicConstraints,
  OID.authorityKeyIdentifier, OID.extKeyUsage, ADMISSION_EXTENSION_OID,
];

export type SignatureFamily = 'ecdsa' | 'rsa';
export interface SignatureAlgorithm { name: string; family: SignatureFamily; hash: 'sha256' | 'sha384' | 'sha512' }

/** Certificate signature algorithms accepted on verification, by OID (RFC 5758, RFC 4055). */
export const SIGNATURE_ALGORITHMS: Readonly<Record<string, SignatureAlgorithm>> = {
  '1.2.840.10045.4.3.2': { name: 'ecdsa-with-SHA256', family: 'ecdsa', hash: 'sha256' },
  '1.2.840.10045.4.3.3': { name: 'ecdsa-with-SHA384', family: 'ecdsa', hash: 'sha384' },
  '1.2.840.10045.4.3.4': { name: 'ecdsa-with-SHA512', family: 'ecdsa', hash: 'sha512' },
  '1.2.840.113549.1.1.11': { name: 'sha256WithRSAEncryption', family: 'rsa', hash: 'sha256' },
  '1.2.840.113549.1.1.12': { name: 'sha384WithRSAEncryption', family: 'rsa', hash: 'sha384' },
  '1.2.840.113549.1.1.13': { name: 'sha512WithRSAEncryption', family: 'rsa', hash: 'sha512' },
};

/** Names for the extended key usages we show; others are shown as their OID. */
export const EKU_NAMES: Readonly<Record<string, string>> = {
  [OID.serverAuth]: 'serverAuth',
  [OID.clientAuth]: 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
  '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
  '2.5.29.37.0': 'anyExtendedKeyUsage',
  [ROLE_CREDENTIAL_EKU]: 'roleCredential',
};

/** RFC 5280, 4.2.1.3, in bit order. */
export const KEY_USAGE_BITS = [
  'digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement',
  'keyCertSign', 'cRLSign', 'encipherOnly', 'decipherOnly',
] as const;
export type KeyUsageName = (typeof KEY_USAGE_BITS)[number];
