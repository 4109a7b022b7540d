// Policies whose claims are in force at different times: makePolicy gives all its claims one
// window, so a policy with several is the claims of several makePolicy files in one sequence.

import { decode, encode, type SignedClaimSequence } from '../../lib/wire/index.ts';

/** One policy file holding the claims of each file given, in order. */
export function joinPolicies(...files: Uint8Array[]): Uint8Array {
  return encode('signed_claim_sequence', { claims: files.flatMap((f) => decode<SignedClaimSequence>('signed_claim_sequence', f).claims ?? []) });
}
