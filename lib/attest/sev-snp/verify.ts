// Verifying SEV-SNP evidence: the report's VCEK/VLEK chain to an AMD root, the VCEK's TCB and chip
// id against the report, the report's signature, and the binding of the report to the request
// (REPORT_DATA = SHA-512 of the serialized attestation_user_data sent with it, as the simulated
// platform's report carries that same serialized user data). The result is the EvidenceFacts every
// platform verifier produces, plus the SNP properties the policy checks. Pure and synchronous.

import type { KeyObject } from 'node:crypto';
import { CertifierError } from '../../errors/index.ts';
import { bytesEqual, hash, toHex } from '../../crypto/index.ts';
import { decode, type AttestationUserData, type ValidTrustRequest } from '../../wire/index.ts';
import { keyLabel, SEV_SNP_PLATFORM, SNP_PROPERTY, type EvidenceFacts, type PropertyValue, versionNumber } from '../../policy/index.ts';
import type { AmdProduct } from './amd-roots.ts';
import { certHwId, certLayout, certProductName, certTcb, layoutOfRoot, pinnedAmdCerts, pinnedProductOf, readAmdCert, readAmdCertOnce, type AmdCert, type CertTcb } from './amd-certs.ts';
import { checkAmdPath, findAmdPath, type AmdChain } from './chain.ts';
import { checkRevocation, type VerifiedAmdCrl } from './crl.ts';
import { isAllZero, parseReport, reportSignatureValid, tcbText, type SnpReport, type TcbVersion } from './report.ts';
import { enclaveKeyOf, evidenceMalformed, evidenceTime } from '../user-data.ts';
import { afterSteps } from '../verified-steps.ts';

/** The Certifier's enclave type for SEV-SNP evidence, and its evidence types. */
export const SEV_ENCLAVE = 'sev-enclave';
export const SEV_ATTESTATION_EVIDENCE = 'sev-attestation';
export const CERT_EVIDENCE = 'cert';
/** How long after the time it names the evidence is accepted (as the simulated report's window). */
const USER_DATA_VALIDITY_MS = 86_400_000;

export interface SnpReportInput {
  report: Uint8Array;
  /** DER certificates sent with the report: the VCEK or VLEK, and optionally its ASK/ASVK (an ARK there is ignored); at most MAX_EVIDENCE_CERTS. */
  certs: Uint8Array[];
  at: Date;
  /** Trust anchors (DER ARKs); AMD's pinned Milan, Genoa and Turin ARKs when not given. */
  roots?: Uint8Array[];
  /** AMD's revocation lists, each verified against its root (verifyAmdCrl). */
  crls?: VerifiedAmdCrl[];
}

export interface VerifiedSnpReport {
  report: SnpReport;
  chain: AmdChain;
  /** What the revocation check found, when a list from the path's root was given. */
  revocation?: string;
  /** "milan", "genoa" or "turin" when the path ends at a pinned AMD root. */
  product?: AmdProduct;
  /** What was verified, in order, for the proof: the path, its revocation check, the VCEK/VLEK's binding to the report and its signature. */
  steps: string[];
}

/**
 * What a report made for this user data holds in REPORT_DATA, as the Certifier Framework makes
 * it: the SHA-384 of the serialized user data, then 16 zero bytes.
 */
export const reportDataFor = (serializedUserData: Uint8Array) => {
  const data = new Uint8Array(64);
  data.set(hash('sha384', serializedUserData));
  return data;
};

/**
 * Which binding of the user data REPORT_DATA holds: the Certifier Framework's (SHA-384, then 16
 * zero bytes; the tail is checked too, so nothing else can ride along), or all 64 bytes of its
 * SHA-512, as this suite wrote it before; undefined for neither.
 */
export function reportDataBinding(reportData: Uint8Array, serializedUserData: Uint8Array): 'sha384' | 'sha512' | undefined {
  if (bytesEqual(reportData, reportDataFor(serializedUserData))) return 'sha384';
  if (bytesEqual(reportData, hash('sha512', serializedUserData))) return 'sha512';
  return undefined;
}

export const pinnedRoots = () => pinnedAmdCerts().map((p) => p.ark);

const malformed = evidenceMalformed;
/**
 * The most certificates SEV-SNP evidence carries: the VCEK or VLEK, its ASK or ASVK, the other
 * intermediate (a host's table may hold both), the ARK. Every one named as an issuer costs a
 * signature check with its key, so a request may not bring more for the server to try.
 */
export const MAX_EVIDENCE_CERTS = 4;
/** VMPLs run from 0 (most privileged) to 3. */
const MAX_VMPL = 3;
/** 1 when bit `n` of `v` is set, else 0: a flag as a property. */
const flag = (v: bigint, n: number) => Number((v >> BigInt(n)) & 1n);
const tcbOf = (t: Omit<TcbVersion, 'hex'>) => `${t.fmc === undefined ? '' : `${t.fmc}/`}${t.bootloader}/${t.tee}/${t.snp}/${t.microcode}`;
/** A Turin VCEK's hwID is the first 8 bytes of CHIP_ID (the rest of which is zero), as AMD's KDS names Turin chips. */
const TURIN_HWID_BYTES = 8;

/** CHIP_ID is all zeros when the host's SEV-SNP configuration sets MASK_CHIP_ID. */
export const chipIdMasked = (r: SnpReport) => r.signingKey === 'vcek' && isAllZero(r.chipId);

function hwIdMatches(report: SnpReport, hwId: Uint8Array): boolean {
  if (report.tcbLayout !== 'turin') return bytesEqual(hwId, report.chipId);
  return hwId.length === TURIN_HWID_BYTES && bytesEqual(hwId, report.chipId.subarray(0, TURIN_HWID_BYTES)) && isAllZero(report.chipId.subarray(TURIN_HWID_BYTES));
}

const cpuName = (turin: boolean) => (turin ? 'Turin (family 1Ah)' : 'Milan or Genoa (family 19h)');

/**
 * The report's CPU (its TCB layout) is the VCEK's/VLEK's product and its root's: a certificate's
 * as certLayout says (its productName, which fmcSPL agrees with; SNP_CPU_UNKNOWN for a product not
 * known here), and a root is Turin's or family 19h's as layoutOfRoot says (a pinned
 * one by its product, one given by file by its name, ARK-Turin or any other). A version 2 report
 * names no CPU: read as family 19h's, it is refused (SNP_REPORT_VERSION) when its certificate is
 * Turin's; any other mismatch (a family 19h report and certificate under a Turin root among them)
 * is SNP_VCEK_MISMATCH, before any TCB level is compared across layouts.
 */
function checkProduct(report: SnpReport, leaf: AmdCert, certified: CertTcb, root: AmdCert, product: AmdProduct | undefined): void {
  const reportTurin = report.tcbLayout === 'turin';
  const certTurin = certLayout(leaf, certified) === 'turin';
  const rootTurin = layoutOfRoot(product, root.name) === 'turin';
  if (certTurin === reportTurin && rootTurin === reportTurin) return;
  const kind = report.signingKey.toUpperCase();
  const issued = cpuName(certTurin);
  if (!report.cpuid && certTurin) throw new CertifierError('SNP_REPORT_VERSION', `the version 2 SEV-SNP report names no CPU, and its ${kind} was issued for ${issued}: a version 2 report is only read in Milan's and Genoa's TCB layout`);
  if (certTurin === reportTurin) {
    const byName = product ? '' : ' (a root not pinned is taken as Turin\'s when its name is ARK-Turin, else as family 19h\'s)';
    throw new CertifierError('SNP_VCEK_MISMATCH', `the report and its ${kind} come from a ${cpuName(reportTurin)} CPU, but they chain to "${root.name}", a root of ${cpuName(rootTurin)} machines${byName}`);
  }
  throw new CertifierError('SNP_VCEK_MISMATCH', `the report comes from a ${cpuName(reportTurin)} CPU, but its ${kind} was issued for ${issued}`);
}

/**
 * The VCEK/VLEK is bound to the report: a VCEK's hwID is CHIP_ID (Turin: its first 8 bytes), and its TCB is REPORTED_TCB.
 * A masked CHIP_ID names no chip to compare: the VCEK's signature, checked next, is what ties the
 * report to the VCEK's chip (its hwID), as it does in every case.
 */
function checkBinding(report: SnpReport, leaf: AmdCert, certified: CertTcb): void {
  if (report.signingKey === 'vcek') { // a VLEK belongs to a cloud provider, not to one chip
    const hwId = certHwId(leaf);
    if (!hwId) throw new CertifierError('BAD_CERTIFICATE', 'the VCEK has no hwID extension');
    if (report.maskChipKey) throw new CertifierError('SNP_VCEK_MISMATCH', 'the report was made with MASK_CHIP_KEY set: it is not signed with the chip\'s VCEK, so no VCEK can vouch for it');
    if (!chipIdMasked(report) && !hwIdMatches(report, hwId)) {
      throw new CertifierError('SNP_VCEK_MISMATCH', `the VCEK belongs to chip ${toHex(hwId).slice(0, 16)}…, the report comes from chip ${toHex(report.chipId).slice(0, 16)}…`);
    }
  }
  if (tcbOf(certified) !== tcbOf(report.reportedTcb)) {
    throw new CertifierError('SNP_TCB_MISMATCH', `the ${report.signingKey.toUpperCase()} was issued for TCB ${tcbOf(certified)} (${certified.fmc === undefined ? '' : 'fmc/'}bootloader/tee/snp/microcode) but the report's REPORTED_TCB is ${tcbOf(report.reportedTcb)}: fetch the certificate for the current TCB`);
  }
}

/** The TCB a VCEK or VLEK was issued for, or undefined when it does not say it readably (certTcb refuses it). */
function tcbIfReadable(leaf: AmdCert): CertTcb | undefined {
  try {
    return certTcb(leaf);
  } catch {
    return undefined;
  }
}

/**
 * Verifies a report and its VCEK/VLEK at time `at`: path to one of `roots`, its revocation (a path
 * AMD revoked is refused as revoked before anything else about its certificates), the path's
 * dates and flags, TCB and chip id, then the signature (REPORT_INVALID when it does not verify). Trusting the root is the policy's call.
 */
export function verifySnpReport(i: SnpReportInput): VerifiedSnpReport {
  const report = parseReport(i.report);
  // A guest asks from VMPL 0 to 3; the firmware writes 0xFFFFFFFF in a report the host asked for
  // (SNP_HV_REPORT_REQ), which vouches for no request of the guest's, whatever a policy's vmpl >= N says.
  if (report.vmpl > MAX_VMPL) throw malformed(`the SEV-SNP report's VMPL is ${report.vmpl === 0xffffffff ? '0xFFFFFFFF: the host asked for it (SNP_HV_REPORT_REQ), not the guest' : `${report.vmpl}, not 0 to ${MAX_VMPL}`}`);
  if (i.certs.length > MAX_EVIDENCE_CERTS) throw malformed(`the SEV-SNP evidence carries ${i.certs.length} certificates; at most ${MAX_EVIDENCE_CERTS} belong to it (the VCEK or VLEK, the ASK, the ASVK, the ARK)`);
  const certs = i.certs.map((c, n) => readAmdCert(c, `evidence certificate ${n + 1}`));
  const leaves = certs.filter((c) => !c.isCA);
  if (leaves.length !== 1) throw malformed(`the SEV-SNP evidence needs exactly one VCEK or VLEK certificate, found ${leaves.length}`);
  const pinned = pinnedAmdCerts();
  const intermediates = [
    ...certs.filter((c) => c.isCA),
    ...pinned.flatMap((p) => [readAmdCertOnce(p.ask, 'ASK'), readAmdCertOnce(p.asvk, 'ASVK')]),
  ];
  const roots = (i.roots ?? pinned.map((p) => p.ark)).map((r) => readAmdCertOnce(r, 'ARK'));
  const chain = findAmdPath({ leaf: leaves[0]!, kind: report.signingKey, intermediates, roots });
  const product = pinnedProductOf(chain.root.der);
  const { leaf, intermediate, root } = chain;
  const kind = report.signingKey.toUpperCase();
  // The TCB the certificate was issued for, when it says (the report's is compared with it only
  // below): a certificate that does not is refused for it after the revocation check.
  const said = tcbIfReadable(leaf);
  const steps = [`${root.name} ${keyLabel(root.publicKey)}${product ? ' (pinned AMD root)' : ''} signed ${intermediate.name}, which signed the ${kind} for ${certProductName(leaf) ?? 'its product'}${said ? ` at TCB ${tcbText(said)}` : ''} (RSA-PSS SHA-384 signatures verified)`];
  // A refusal from here on names what passed before it (afterSteps).
  return afterSteps(steps, () => {
    // First, so that a path AMD revoked is refused as revoked whatever else is wrong with it.
    const revocation = checkRevocation(chain, i.crls ?? [], i.at);
    if (revocation) steps.push(revocation);
    checkAmdPath(chain, report.signingKey, i.at);
    const certified = certTcb(leaf);
    checkProduct(report, leaf, certified, root, product);
    checkBinding(report, leaf, certified);
    if (!reportSignatureValid(report, leaf.publicKey)) {
      throw new CertifierError('REPORT_INVALID', `the SEV-SNP report's signature does not verify with its ${kind} (the report was altered, or the certificate is not its signer)`);
    }
    steps.push(`the ${kind} matches the report's REPORTED_TCB${report.signingKey !== 'vcek' ? '' : chipIdMasked(report) ? ` (CHIP_ID is masked: the chip is the VCEK's, hwID ${toHex(certHwId(leaf)!).slice(0, 16)}…)` : ' and CHIP_ID'}, and signed the report (ECDSA P-384 verified): measurement ${toHex(report.measurement)}, VMPL ${report.vmpl}`);
    return { report, chain, steps, ...(product ? { product } : {}), ...(revocation ? { revocation } : {}) };
  });
}

/**
 * The SNP properties a policy can name (lib/policy's SNP_PROPERTY); a digest of zeros is absent.
 * `product`: the AMD product whose pinned ARK the report's path ends at (absent for a root a policy
 * names by file): Milan's and Genoa's TCBs share a layout, not a scale.
 */
export function snpProperties(r: SnpReport, product?: AmdProduct): Record<string, PropertyValue> {
  const P = SNP_PROPERTY;
  const running = versionNumber(r.currentFirmware.major, r.currentFirmware.minor);
  const out: Record<string, PropertyValue> = {
    [P.debug]: r.policy.debug ? 1 : 0, [P.migrateMa]: r.policy.migrateMa ? 1 : 0,
    [P.smtAllowed]: r.policy.smtAllowed ? 1 : 0, [P.singleSocket]: r.policy.singleSocket ? 1 : 0,
    [P.abiMajor]: r.policy.abiMajor, [P.abiMinor]: r.policy.abiMinor, [P.abiVersion]: versionNumber(r.policy.abiMajor, r.policy.abiMinor),
    // The SEV-SNP firmware actually running (CURRENT_MAJOR.CURRENT_MINOR), and the lowest it can be rolled back to (COMMITTED_*).
    [P.firmwareVersion]: running,
    // Never above the running one: a firmware older than its COMMITTED version shows the floor did not hold.
    [P.committedFirmwareVersion]: Math.min(running, versionNumber(r.committedFirmware.major, r.committedFirmware.minor)),
    [P.vmpl]: r.vmpl, [P.guestSvn]: r.guestSvn,
    [P.tcbBootloader]: r.reportedTcb.bootloader, [P.tcbTee]: r.reportedTcb.tee, [P.tcbSnp]: r.reportedTcb.snp, [P.tcbMicrocode]: r.reportedTcb.microcode,
    // The TCB the guest was launched (or imported) under, which a live firmware or microcode update leaves behind.
    [P.launchTcbBootloader]: r.launchTcb.bootloader, [P.launchTcbTee]: r.launchTcb.tee, [P.launchTcbSnp]: r.launchTcb.snp, [P.launchTcbMicrocode]: r.launchTcb.microcode,
    [P.hostData]: toHex(r.hostData), [P.familyId]: toHex(r.familyId), [P.imageId]: toHex(r.imageId),
    [P.signingKey]: r.signingKey, [P.reportVersion]: r.version,
    // Guest policy bits 21 to 25 (AMD ABI), which the guest owner asks of the host at launch.
    [P.cxlAllowed]: flag(r.policy.raw, 21), [P.memAes256Xts]: flag(r.policy.raw, 22), [P.raplDisabled]: flag(r.policy.raw, 23),
    [P.ciphertextHiding]: flag(r.policy.raw, 24), [P.pageSwapDisabled]: flag(r.policy.raw, 25),
    // PLATFORM_INFO: how the host's platform is set up (ALIAS_CHECK_COMPLETE: memory aliasing ruled out, AMD-SB-3015).
    [P.platformSmtEnabled]: flag(r.platformInfo.raw, 0), [P.platformTsmeEnabled]: flag(r.platformInfo.raw, 1), [P.platformEccEnabled]: flag(r.platformInfo.raw, 2),
    [P.platformRaplDisabled]: flag(r.platformInfo.raw, 3), [P.platformCiphertextHiding]: flag(r.platformInfo.raw, 4), [P.platformAliasCheckComplete]: flag(r.platformInfo.raw, 5),
  };
  // Turin's TCB has an FMC level (the minimum TCB of a claim must then name it); family 19h's has none.
  if (r.reportedTcb.fmc !== undefined) out[P.tcbFmc] = r.reportedTcb.fmc;
  if (r.launchTcb.fmc !== undefined) out[P.launchTcbFmc] = r.launchTcb.fmc;
  // No ID block (or no author key) leaves these zero: the evidence then has no such property.
  if (!isAllZero(r.idKeyDigest)) out[P.idKeyDigest] = toHex(r.idKeyDigest);
  if (r.authorKeyEn && !isAllZero(r.authorKeyDigest)) out[P.authorKeyDigest] = toHex(r.authorKeyDigest);
  if (product) out[P.product] = product;
  return out;
}

interface SevAttestationMessage { whatWasSaid?: Uint8Array; reportedAttestation?: Uint8Array }

/** The report, the user data and the certificates of an SEV-SNP evidence package. */
export function snpEvidenceParts(support: ValidTrustRequest['support']): { report: Uint8Array; userData: Uint8Array; certs: Uint8Array[] } {
  const att = support.factAssertion.filter((f) => f.evidenceType === SEV_ATTESTATION_EVIDENCE);
  if (att.length !== 1) throw malformed(`the evidence package needs exactly one "${SEV_ATTESTATION_EVIDENCE}" assertion, found ${att.length}`);
  let m: SevAttestationMessage;
  try {
    m = decode<SevAttestationMessage>('sev_attestation_message', att[0]!.serializedEvidence);
  } catch (cause) {
    throw malformed('the sev-attestation evidence is not a sev_attestation_message', cause);
  }
  if (!m.whatWasSaid?.length || !m.reportedAttestation?.length) throw malformed('the sev_attestation_message lacks what_was_said or reported_attestation');
  const certs = support.factAssertion.filter((f) => f.evidenceType === CERT_EVIDENCE).map((f) => f.serializedEvidence);
  return { report: m.reportedAttestation, userData: m.whatWasSaid, certs };
}

function readUserData(bytes: Uint8Array): { ud: AttestationUserData; enclaveKey: KeyObject; window: { notBefore: Date; notAfter: Date } } {
  let ud: AttestationUserData;
  try {
    ud = decode<AttestationUserData>('attestation_user_data', bytes, { strict: true }); // bound by REPORT_DATA: nothing in it goes unread
  } catch (cause) {
    throw malformed('what_was_said is not an attestation_user_data', cause);
  }
  if (ud.enclaveType !== undefined && ud.enclaveType !== SEV_ENCLAVE) throw malformed(`the user data's enclave type "${ud.enclaveType}" is not ${SEV_ENCLAVE}`);
  const enclaveKey = enclaveKeyOf(ud);
  const t = evidenceTime(ud.time, 'the user data time');
  return { ud, enclaveKey, window: { notBefore: t, notAfter: new Date(t.getTime() + USER_DATA_VALIDITY_MS) } };
}

/** Verifies an SEV-SNP evidence package into EvidenceFacts (platform "amd-sev-snp"). */
export function verifySnpEvidence(support: ValidTrustRequest['support'], o: { at?: Date; roots?: Uint8Array[]; crls?: VerifiedAmdCrl[] } = {}): EvidenceFacts {
  const parts = snpEvidenceParts(support);
  const at = o.at ?? new Date();
  const v = verifySnpReport({ report: parts.report, certs: parts.certs, at, ...(o.roots ? { roots: o.roots } : {}), ...(o.crls ? { crls: o.crls } : {}) });
  const r = v.report;
  const { binding, ud, enclaveKey, window } = afterSteps(v.steps, () => {
    const binding = reportDataBinding(r.reportData, parts.userData);
    if (!binding) {
      throw new CertifierError('SNP_REPORT_DATA_MISMATCH', 'the report\'s REPORT_DATA is not the hash of the user data sent with it (its SHA-384 and 16 zero bytes, or its SHA-512): the report vouches for another request');
    }
    return { binding, ...readUserData(parts.userData) };
  });
  const { leaf, intermediate, root } = v.chain;
  const kind = r.signingKey.toUpperCase();
  const span = (c: AmdCert) => ({ notBefore: c.notBefore, notAfter: c.notAfter });
  return {
    platform: SEV_SNP_PLATFORM,
    platformKey: root.publicKey,
    windows: [
      { what: 'ARK certificate', window: span(root) },
      { what: `${intermediate.name} certificate`, window: span(intermediate) },
      { what: `${kind} certificate`, window: span(leaf) },
      { what: 'attestation user data', window },
    ],
    measurement: r.measurement,
    enclaveKey,
    ...(ud.sessionBinding?.length ? { sessionBinding: ud.sessionBinding } : {}),
    steps: [
      ...v.steps,
      `REPORT_DATA is the ${binding === 'sha384' ? 'SHA-384' : 'SHA-512'} of the user data, which names ${keyLabel(enclaveKey, ud.enclaveKey?.keyName)}${ud.sessionBinding?.length ? ' and a TLS session binding' : ''}`,
    ],
    properties: snpProperties(r, v.product),
  };
}
