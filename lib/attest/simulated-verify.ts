// Verifying simulated-enclave evidence (the Certifier's "vse-verifier" package): the platform's
// endorsement of an attestation key, and a report signed by that key naming the measurement and
// the key to certify. Signatures are checked here; whether to trust them is the policy's call.

import type { KeyObject } from 'node:crypto';
import { CertifierError } from '../errors/index.ts';
import { fromKeyMessage, isSignatureAlg, toHex, verify } from '../crypto/index.ts';
import { decode, type AttestationUserData, type SignedClaimMessage, type SignedReport, type ValidTrustRequest, type VseAttestationReportInfo } from '../wire/index.ts';
import { entityKey, keyLabel, sameKey, verifySignedClaim, type EvidenceFacts } from '../policy/index.ts';
import { enclaveKeyOf, evidenceMalformed, evidenceTime } from './user-data.ts';
import { afterSteps } from './verified-steps.ts';
import { LruMap } from '../util/lru.ts';

export const SIMULATED_ENCLAVE = 'simulated-enclave';
export const REPORT_FORMAT = 'vse-attestation-report';

const malformed = evidenceMalformed;

function decodeOr<T>(name: Parameters<typeof decode>[0], bytes: Uint8Array | undefined, what: string, strict = false): T {
  if (!bytes?.length) throw malformed(`${what} is missing`);
  try {
    return decode<T>(name, bytes, { strict });
  } catch (cause) {
    throw malformed(`${what} is not a valid ${name}`, cause);
  }
}

function one(support: ValidTrustRequest['support'], type: string): Uint8Array {
  const found = support.factAssertion.filter((f) => f.evidenceType === type);
  if (found.length !== 1) throw malformed(`the evidence package needs exactly one "${type}" assertion, found ${found.length}`);
  return found[0]!.serializedEvidence;
}

interface Endorsement { platformKey: KeyObject; attestKey: KeyObject; notBefore: Date; notAfter: Date }

// Endorsements that verified, by their exact bytes: a machine sends the same one with every
// request, and decoding it, importing its two keys and checking its signature was a third of the
// server's work per certification. Verifying is a pure function of the bytes (its validity times
// are judged later, by the policy, at the time of each request); failures are never kept.
// Only those of an endorsement's usual size (about 1 KB, 2 for RSA keys) are kept: one is verified
// before anything says whether to trust it, so anybody can send sound ones of their own making,
// and padded to a megabyte (an unknown field) 64 of them held some 100 MB for as long as it ran.
const endorsements = new LruMap<string, { platformKey: KeyObject; attestKey: KeyObject; notBefore: number; notAfter: number }>(64);
const MAX_KEPT_ENDORSEMENT_BYTES = 8 * 1024;

function verifyEndorsement(bytes: Uint8Array): Endorsement {
  const id = bytes.length <= MAX_KEPT_ENDORSEMENT_BYTES ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') : undefined;
  let e = id === undefined ? undefined : endorsements.get(id);
  if (!e) {
    const v = verifyEndorsementBytes(bytes);
    e = { platformKey: v.platformKey, attestKey: v.attestKey, notBefore: v.notBefore.getTime(), notAfter: v.notAfter.getTime() };
    if (id !== undefined) endorsements.set(id, e);
  }
  // KeyObjects never change; the dates are the caller's own.
  return { platformKey: e.platformKey, attestKey: e.attestKey, notBefore: new Date(e.notBefore), notAfter: new Date(e.notAfter) };
}

/** Verifies the endorsement: "platformKey says attestKey is-trusted-for-attestation". */
function verifyEndorsementBytes(bytes: Uint8Array): Endorsement {
  const sc = decodeOr<SignedClaimMessage>('signed_claim_message', bytes, 'the endorsement');
  const c = verifySignedClaim(sc, 'ENDORSEMENT_INVALID', 'the endorsement');
  const inner = c.clause.clause;
  const attestKey = entityKey(inner?.subject);
  // Exactly that, as the policy's claims are read: an object or a nested clause would say more (a
  // key for one measurement only, say), and read as the bare clause the endorsement would grant more than it says.
  if (c.clause.verb !== 'says' || c.clause.object || inner?.verb !== 'is-trusted-for-attestation' || inner.object || inner.clause || !attestKey) {
    throw new CertifierError('ENDORSEMENT_INVALID', 'the endorsement does not say "platformKey says attestKey is-trusted-for-attestation"');
  }
  return { platformKey: c.signer, attestKey, notBefore: c.notBefore, notAfter: c.notAfter };
}

export function verifySimulatedEvidence(support: ValidTrustRequest['support']): EvidenceFacts {
  if (support.enclaveType !== undefined && support.enclaveType !== SIMULATED_ENCLAVE) {
    throw malformed(`enclave type "${support.enclaveType}" is not ${SIMULATED_ENCLAVE}`);
  }
  const e = verifyEndorsement(one(support, 'signed-claim'));
  const platformLabel = keyLabel(e.platformKey, 'platformKey');
  const attestLabel = keyLabel(e.attestKey, 'attestKey');
  const endorsed = `${platformLabel} says ${attestLabel} is-trusted-for-attestation (signature verified)`;
  // A refusal of the report names the endorsement, verified before it (afterSteps).
  return afterSteps([endorsed], () => verifyReport(support, e, attestLabel, endorsed));
}

/** The report of simulated evidence whose endorsement (`endorsed`) verified: signed by the attestation key it endorses. */
function verifyReport(support: ValidTrustRequest['support'], e: Endorsement, attestLabel: string, endorsed: string): EvidenceFacts {
  const sr = decodeOr<SignedReport>('signed_report', one(support, 'signed-vse-attestation-report'), 'the attestation report');
  if (sr.reportFormat !== REPORT_FORMAT) throw malformed(`report format "${sr.reportFormat ?? ''}" is not ${REPORT_FORMAT}`);
  if (!sr.report?.length || !sr.signature?.length || !sr.signingKey || !sr.signingAlgorithm) throw malformed('the signed report lacks its report, key, algorithm or signature');
  let reportKey: KeyObject;
  try {
    reportKey = fromKeyMessage(sr.signingKey);
  } catch (cause) {
    throw new CertifierError('REPORT_INVALID', 'the report names an unreadable signing key', { cause });
  }
  if (!sameKey(reportKey, e.attestKey)) {
    throw new CertifierError('REPORT_INVALID', `the report is signed by ${keyLabel(reportKey)}, which the platform did not endorse (it endorsed ${attestLabel})`);
  }
  if (!isSignatureAlg(sr.signingAlgorithm)) throw new CertifierError('REPORT_INVALID', `unsupported report signing algorithm "${sr.signingAlgorithm}"`);
  let ok = false;
  try {
    ok = verify(reportKey, sr.report, sr.signature, sr.signingAlgorithm);
  } catch {
    ok = false;
  }
  if (!ok) throw new CertifierError('REPORT_INVALID', `the report signature does not verify with ${attestLabel}`);

  // Signed, so read strictly: a field not understood is refused, not skipped.
  const info = decodeOr<VseAttestationReportInfo>('vse_attestation_report_info', sr.report, 'the report', true);
  if (info.enclaveType !== SIMULATED_ENCLAVE) throw malformed(`the report's enclave type "${info.enclaveType ?? ''}" is not ${SIMULATED_ENCLAVE}`);
  const m = info.verifiedMeasurement;
  if (m?.length !== 32) throw malformed(`the report's measurement is ${m?.length ?? 0} bytes, not 32`);
  const ud = decodeOr<AttestationUserData>('attestation_user_data', info.userData, "the report's user data", true);
  if (ud.enclaveType !== undefined && ud.enclaveType !== SIMULATED_ENCLAVE) throw malformed(`the user data's enclave type "${ud.enclaveType}" is not ${SIMULATED_ENCLAVE}`);
  evidenceTime(ud.time, 'the user data time');
  const enclaveKey = enclaveKeyOf(ud);
  const reportWindow = {
    notBefore: evidenceTime(info.notBefore, 'the report\'s not_before'),
    notAfter: evidenceTime(info.notAfter, 'the report\'s not_after'),
  };
  const enclaveLabel = keyLabel(enclaveKey, ud.enclaveKey?.keyName);
  return {
    platform: SIMULATED_ENCLAVE,
    platformKey: e.platformKey,
    windows: [
      { what: 'endorsement', window: { notBefore: e.notBefore, notAfter: e.notAfter } },
      { what: 'attestation report', window: reportWindow },
    ],
    measurement: m,
    enclaveKey,
    ...(ud.sessionBinding?.length ? { sessionBinding: ud.sessionBinding } : {}),
    steps: [
      endorsed,
      `${attestLabel} says ${enclaveLabel} speaks-for measurement ${toHex(m)} (report signature verified)`,
    ],
  };
}
