// What every platform's verifier reads the same way from the attestation user data: the key the
// machine wants certified. Malformed evidence is EVIDENCE_MALFORMED, whatever the platform.

import type { KeyObject } from 'node:crypto';
import { CertifierError } from '../errors/index.ts';
import { fromKeyMessage } from '../crypto/index.ts';
import { parseCertifierTime } from '../policy/index.ts';
import type { AttestationUserData } from '../wire/index.ts';

export const evidenceMalformed = (why: string, cause?: unknown) => new CertifierError('EVIDENCE_MALFORMED', why, cause ? { cause } : undefined);

/** The public key named in the user data; EVIDENCE_MALFORMED when missing, unreadable or private. */
export function enclaveKeyOf(ud: AttestationUserData): KeyObject {
  let key: KeyObject;
  try {
    key = fromKeyMessage(ud.enclaveKey ?? {});
  } catch (cause) {
    throw evidenceMalformed("the user data's enclave key is missing or unreadable", cause);
  }
  if (key.type !== 'public') throw evidenceMalformed("the user data's enclave key must be a public key");
  return key;
}

/** A time the evidence names (`what`: "the user data time"); EVIDENCE_MALFORMED when it names none, or one that is not a time. */
export function evidenceTime(text: string | undefined, what: string): Date {
  try {
    return parseCertifierTime(text ?? '', what);
  } catch (cause) {
    throw evidenceMalformed((cause as Error).message, cause);
  }
}
