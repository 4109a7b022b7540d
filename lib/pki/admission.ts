// The admission extension's value, DER SEQUENCE { measurement OCTET STRING, platform
// UTF8String, domain UTF8String }, and the names an admission certificate carries.

import { toHex } from '../crypto/index.ts';
import { checkTree, children, DerError, encodeOctets, encodeUtf8, expectTag, readOne, seq, TAG, type Tlv } from './der.ts';

export interface Admission {
  measurement: Uint8Array;
  platform: string;
  domain: string;
}

export const MEASUREMENT_PREFIX = 'Measured-';
export const ADMISSION_CN = 'CertifierUsers';
export const POLICY_CN = 'policyKey';
export const POLICY_O_SUFFIX = '/policyAuthority';
export const MAX_MEASUREMENT_BYTES = 64;

const DOMAIN_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
const PLATFORM_RE = /^[\x21-\x7e]{1,128}$/;

/** Why a value cannot go into (or come out of) an admission extension, or undefined. */
export function admissionProblem(a: Admission): string | undefined {
  if (a.measurement.length < 1 || a.measurement.length > MAX_MEASUREMENT_BYTES) {
    return `the measurement must be 1 to ${MAX_MEASUREMENT_BYTES} bytes`;
  }
  return platformProblem(a.platform) ?? domainProblem(a.domain);
}

export function platformProblem(platform: string): string | undefined {
  return PLATFORM_RE.test(platform) ? undefined : 'the platform must be 1 to 128 printable ASCII characters without spaces';
}

/** The domain becomes part of a URI authority and of O=<domain>/policyAuthority, hence the narrow alphabet. */
export function domainProblem(domain: string): string | undefined {
  return DOMAIN_RE.test(domain) ? undefined : 'the domain must be letters, digits, ".", "_" or "-" (at most 253, starting with a letter or digit)';
}

export function encodeAdmission(a: Admission): Uint8Array {
  return seq(encodeOctets(a.measurement), encodeUtf8(a.platform), encodeUtf8(a.domain));
}

/** Strict UTF-8 (a whole input per call, so one decoder serves every call). */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Strict decoding: exactly the three fields, nothing after them. Throws DerError. */
export function decodeAdmission(value: Uint8Array): Admission {
  const top = readOne(value);
  checkTree(top);
  const f = children(expectTag(top, TAG.SEQUENCE, 'admission'));
  const m = f[0];
  const p = f[1];
  const d = f[2];
  if (f.length > 3) throw new DerError('admission: unexpected extra fields');
  const utf8 = (t: Tlv) => {
    try {
      return UTF8.decode(t.contents);
    } catch {
      throw new DerError('admission: a string is not valid UTF-8');
    }
  };
  const a: Admission = {
    measurement: new Uint8Array(expectTag(m, TAG.OCTET_STRING, 'measurement').contents),
    platform: utf8(expectTag(p, TAG.UTF8, 'platform')),
    domain: utf8(expectTag(d, TAG.UTF8, 'domain')),
  };
  const problem = admissionProblem(a);
  if (problem) throw new DerError(`admission: ${problem}`);
  return a;
}

export const measurementOrganization = (measurement: Uint8Array) => MEASUREMENT_PREFIX + toHex(measurement);
export const policyOrganization = (domain: string) => domain + POLICY_O_SUFFIX;
export const admissionUri = (domain: string, measurement: Uint8Array) => `certifier://${domain}/measurement/${toHex(measurement)}`;

/** The domain a policy certificate names in O=<domain>/policyAuthority, if it follows that form. */
export function domainOfPolicyOrganization(o: string): string | undefined {
  return o.endsWith(POLICY_O_SUFFIX) && o.length > POLICY_O_SUFFIX.length ? o.slice(0, -POLICY_O_SUFFIX.length) : undefined;
}
