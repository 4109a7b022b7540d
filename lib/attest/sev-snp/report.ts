// The AMD SEV-SNP ATTESTATION_REPORT (SEV-SNP Firmware ABI, "ATTESTATION_REPORT Structure"):
// parsing the 1184 bytes into typed fields, and checking the report's ECDSA P-384 signature.
// Pure: bytes in, values out. Which key may sign, and whether to trust it, is decided elsewhere.

import { verify, type KeyObject } from 'node:crypto';
import { CertifierError } from '../../errors/index.ts';
import { toHex } from '../../crypto/index.ts';

export const REPORT_SIZE = 1184;
/** The signature covers bytes 0x000..0x29F. */
export const SIGNED_BYTES = 0x2a0;
/** r (0x2A0) and s (0x2E8), 72 bytes each; the rest of the 512-byte signature area is reserved. */
const SIGNATURE_END = 0x330;
// Version 4 has no published layout of its own; firmware that issues it (Milan 1.55.31, seen on
// GCP) lays it out as version 3, as other verifiers (go-sev-guest, virtee/sev) read it.
export const SUPPORTED_REPORT_VERSIONS: readonly number[] = [2, 3, 4, 5];
/**
 * The TCB layout of each CPU family a report of version 3 on may name (CPUID_FAM_ID, 0x188: the
 * extended family added to the base family, as AMD's ABI has it): 19h for Zen 3 and 4 (Milan,
 * Genoa, Bergamo, Siena), 1Ah for Zen 5 (Turin). No other is read: its layout is not known here.
 */
export const FAMILY_LAYOUTS: ReadonlyMap<number, TcbLayout> = new Map([[0x19, 'family-19h'], [0x1a, 'turin']]);
/** SIGNATURE_ALGO 1: ECDSA P-384 with SHA-384 (the only one the ABI defines). */
export const ECDSA_P384_SHA384 = 1;

/**
 * A TCB_VERSION. Milan and Genoa (family 19h) lay it out as byte 0 bootloader, 1 TEE, 6 SNP, 7
 * microcode; Turin (family 1Ah) as byte 0 FMC, 1 bootloader, 2 TEE, 3 SNP, 7 microcode.
 */
export interface TcbVersion {
  /** Turin's FMC (firmware microcontroller) level; absent in the family 19h layout. */
  fmc?: number;
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  /** The 8 bytes in report order, as hex. */
  hex: string;
}

export interface GuestPolicy {
  abiMinor: number;
  abiMajor: number;
  smtAllowed: boolean;
  /** Bit 17 is reserved and the firmware requires it to be 1. */
  reserved17: boolean;
  migrateMa: boolean;
  debug: boolean;
  singleSocket: boolean;
  raw: bigint;
}

export interface PlatformInfo {
  smtEnabled: boolean;
  tsmeEnabled: boolean;
  eccEnabled: boolean;
  raplDisabled: boolean;
  ciphertextHiding: boolean;
  aliasCheckComplete: boolean;
  raw: bigint;
}

export type SigningKey = 'vcek' | 'vlek';

export interface FirmwareVersion { major: number; minor: number; build: number }

/** Which TCB_VERSION layout a report uses: family 19h's (Milan, Genoa) or Turin's. */
export type TcbLayout = 'family-19h' | 'turin';

export interface SnpReport {
  /** The whole report (a copy), for the signature check. */
  bytes: Uint8Array;
  version: number;
  /** 'turin' when CPUID (version 3 on) names family 1Ah, 'family-19h' for 19h; a version 2 report names none and is read as family 19h. */
  tcbLayout: TcbLayout;
  guestSvn: number;
  policy: GuestPolicy;
  familyId: Uint8Array;
  imageId: Uint8Array;
  vmpl: number;
  signatureAlgo: number;
  currentTcb: TcbVersion;
  platformInfo: PlatformInfo;
  authorKeyEn: boolean;
  maskChipKey: boolean;
  signingKey: SigningKey;
  reportData: Uint8Array;
  measurement: Uint8Array;
  hostData: Uint8Array;
  idKeyDigest: Uint8Array;
  authorKeyDigest: Uint8Array;
  reportId: Uint8Array;
  reportIdMa: Uint8Array;
  reportedTcb: TcbVersion;
  /** CPUID family, model and stepping: filled from report version 3 on. */
  cpuid?: { family: number; model: number; stepping: number };
  chipId: Uint8Array;
  committedTcb: TcbVersion;
  currentFirmware: FirmwareVersion;
  committedFirmware: FirmwareVersion;
  launchTcb: TcbVersion;
  /** Report version 5 on. */
  mitigations?: { launch: bigint; current: bigint };
  /** r and s as big-endian 48-byte integers. */
  signature: { r: Uint8Array; s: Uint8Array };
}

/**
 * The reserved bytes inside the signed area, [from, to), as AMD's layout has them for `version`:
 * after the flags, after REPORTED_TCB (the CPUID bytes from version 3 on), after each firmware
 * version, and after LAUNCH_TCB. Version 5 puts its mitigation vectors at 0x1F8..0x207; version
 * 4 (no published layout) is left unchecked there too, since firmware issuing it may fill them.
 */
function reservedRanges(version: number): [number, number][] {
  return [[0x4c, 0x50], [version >= 3 ? 0x18b : 0x188, 0x1a0], [0x1eb, 0x1ec], [0x1ef, 0x1f0], [version <= 3 ? 0x1f8 : 0x208, SIGNED_BYTES]];
}
/** Bits 5 to 31 of the flags word (0x48) are reserved. */
const FLAGS_RESERVED = 0xffffffe0;
/** GUEST_POLICY (0x08): bit 17 is reserved and must be 1; AMD's ABI defines bits 0 to 25, the rest are reserved, zero. */
const POLICY_ONE_BIT = 17;
const POLICY_DEFINED_BITS = 26;
/** The TCB_VERSIONs, and the bytes each layout reserves in them: 2 to 5 (family 19h), 4 to 6 (Turin, after its FMC byte). */
const TCBS: [string, number][] = [['CURRENT_TCB', 0x38], ['REPORTED_TCB', 0x180], ['COMMITTED_TCB', 0x1e0], ['LAUNCH_TCB', 0x1f0]];
const TCB_RESERVED: Record<TcbLayout, [number, number]> = { 'family-19h': [2, 6], turin: [4, 7] };
const LAYOUT_NAME: Record<TcbLayout, string> = { 'family-19h': 'Milan or Genoa', turin: 'Turin' };

const malformed = (why: string) => new CertifierError('EVIDENCE_MALFORMED', `the SEV-SNP report ${why}`);
const bit = (v: bigint, n: number) => ((v >> BigInt(n)) & 1n) === 1n;

function tcbAt(b: Uint8Array, at: number, layout: TcbLayout): TcbVersion {
  const t = b.subarray(at, at + 8);
  if (layout === 'turin') return { fmc: t[0]!, bootloader: t[1]!, tee: t[2]!, snp: t[3]!, microcode: t[7]!, hex: toHex(t) };
  return { bootloader: t[0]!, tee: t[1]!, snp: t[6]!, microcode: t[7]!, hex: toHex(t) };
}

/** The first byte other than zero that `layout` reserves in one of the report's TCB_VERSIONs, and why it is refused. */
function reservedTcbByte(b: Uint8Array, layout: TcbLayout): { why: string } | undefined {
  const [from, to] = TCB_RESERVED[layout];
  for (const [name, at] of TCBS) {
    const i = b.subarray(at + from, at + to).findIndex((x) => x !== 0);
    if (i >= 0) return { why: `a byte other than zero at 0x${(at + from + i).toString(16)}, reserved in its ${name} (bytes ${from} to ${to - 1} of a ${LAYOUT_NAME[layout]} TCB_VERSION)` };
  }
  return undefined;
}

/** Signature components are 72-byte little-endian numbers; a P-384 value fits in the low 48. */
function signatureComponent(b: Uint8Array, at: number, name: string): Uint8Array {
  const le = b.subarray(at, at + 72);
  if (le.subarray(48).some((x) => x !== 0)) throw malformed(`signature ${name} is larger than a P-384 number`);
  return Uint8Array.from(le.subarray(0, 48)).reverse();
}

/**
 * Parses an ATTESTATION_REPORT. EVIDENCE_MALFORMED for a wrong size, an unsigned report, an
 * unknown signature algorithm, anything but zeros where the signature covers nothing (the
 * padding of r and s, and the reserved rest of the signature area: bytes changed after signing),
 * or in a reserved byte or flag bit it covers (naming the offset): the report's reserved ranges,
 * the flags' bits 5 to 31, the reserved bytes of each TCB_VERSION (2 to 5 in family 19h's layout,
 * 4 to 6 in Turin's), guest policy bits 26 to 63, and guest policy bit 17 clear (it must be 1).
 * PLATFORM_INFO's undefined bits are left alone: they report the host's setup, and firmware
 * updates define new ones (ALIAS_CHECK_COMPLETE came so); SNP_REPORT_VERSION for a version other
 * than 2 to 5 (the field layout is only known for those). The TCB layout follows CPUID (version 3
 * on): family 19h is Milan's and Genoa's, 1Ah Turin's, and any other is SNP_CPU_UNKNOWN (naming
 * it); a version 2 report, which names no CPU, is read as family 19h's (no Turin firmware issues
 * one): SNP_REPORT_VERSION when its TCBs fit Turin's layout and not that one, as the verifier
 * refuses it too if its VCEK turns out to be Turin's.
 */
export function parseReport(input: Uint8Array): SnpReport {
  if (input.length !== REPORT_SIZE) throw malformed(`is ${input.length} bytes, not ${REPORT_SIZE}`);
  const b = new Uint8Array(input);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const u32 = (at: number) => v.getUint32(at, true);
  const u64 = (at: number) => v.getBigUint64(at, true);
  const bytes = (at: number, n: number) => b.slice(at, at + n);

  const version = u32(0x00);
  if (!SUPPORTED_REPORT_VERSIONS.includes(version)) {
    throw new CertifierError('SNP_REPORT_VERSION', `SEV-SNP report version ${version} is not supported (this verifier reads versions ${SUPPORTED_REPORT_VERSIONS.join(', ')})`);
  }
  const signatureAlgo = u32(0x34);
  if (signatureAlgo !== ECDSA_P384_SHA384) throw malformed(`names signature algorithm ${signatureAlgo}, not 1 (ECDSA P-384 with SHA-384)`);
  const flags = u32(0x48);
  const keySel = (flags >> 2) & 0x7;
  if (keySel === 7) throw malformed('is not signed (SIGNING_KEY is 7, "none")');
  if (keySel > 1) throw malformed(`names signing key ${keySel}, which is reserved`);
  if (b.subarray(SIGNATURE_END).some((x) => x !== 0)) throw malformed('has bytes other than zero in the reserved part of its signature area (0x330..0x49F), which the signature does not cover');
  if ((flags & FLAGS_RESERVED) !== 0) throw malformed(`sets reserved bits of its flags at 0x48 (0x${(flags >>> 0).toString(16)}; only bits 0 to 4 are defined)`);
  for (const [from, to] of reservedRanges(version)) {
    const at = b.subarray(from, to).findIndex((x) => x !== 0);
    if (at >= 0) throw malformed(`has a byte other than zero at 0x${(from + at).toString(16)}, reserved in a version ${version} report (0x${from.toString(16)}..0x${(to - 1).toString(16)})`);
  }
  // Zen 5 lays TCB_VERSION out otherwise (FMC, bootloader, TEE and SNP in bytes 0 to 3): read in
  // the other layout, every TCB level would be another component's. So would a family not known
  // here be read in either known one: refused, whatever its TCB bytes hold.
  const tcbLayout = version >= 3 ? FAMILY_LAYOUTS.get(b[0x188]!) : 'family-19h';
  if (!tcbLayout) {
    const hex = (n: number, digits: number) => `${n.toString(16).toUpperCase().padStart(digits, '0')}h`;
    throw new CertifierError('SNP_CPU_UNKNOWN', `the SEV-SNP report comes from a CPU of family ${hex(b[0x188]!, 1)} (model ${hex(b[0x189]!, 2)}, stepping ${b[0x18a]}), which this verifier does not know: it reads the reports of family 19h (Milan, Genoa) and 1Ah (Turin) CPUs, each in its own TCB layout, and no other`);
  }
  const reserved = reservedTcbByte(b, tcbLayout);
  if (reserved) {
    // A version 2 report names no CPU: TCBs that fit Turin's layout, and not the one it is read
    // in, are not damage but a CPU this version is not read for (as a Turin VCEK on it is).
    if (version >= 3 || reservedTcbByte(b, 'turin')) throw malformed(`has ${reserved.why}`);
    throw new CertifierError('SNP_REPORT_VERSION', `the version 2 SEV-SNP report names no CPU, and its TCBs are in Turin's TCB layout (${reserved.why}): a version 2 report is only read in Milan's and Genoa's TCB layout`);
  }

  const policy = u64(0x08);
  if (!bit(policy, POLICY_ONE_BIT)) throw malformed(`has bit ${POLICY_ONE_BIT} of its guest policy clear (byte 0x${(0x08 + (POLICY_ONE_BIT >> 3)).toString(16)}): it is reserved, and AMD's ABI requires it to be 1`);
  if (policy >> BigInt(POLICY_DEFINED_BITS) !== 0n) {
    let n = POLICY_DEFINED_BITS;
    while (!bit(policy, n)) n++;
    // A later ABI may define it, as bits 21 to 25 were: it could allow the host something (as DEBUG does) that no policy here can see.
    throw malformed(`sets bit ${n} of its guest policy (byte 0x${(0x08 + (n >> 3)).toString(16)}), which is reserved: AMD's ABI defines bits 0 to ${POLICY_DEFINED_BITS - 1}, and this verifier cannot tell what the guest owner allowed with another`);
  }
  const info = u64(0x40);
  const fw = (at: number): FirmwareVersion => ({ build: b[at]!, minor: b[at + 1]!, major: b[at + 2]! });
  const report: SnpReport = {
    bytes: b,
    version,
    tcbLayout,
    guestSvn: u32(0x04),
    policy: {
      abiMinor: Number(policy & 0xffn), abiMajor: Number((policy >> 8n) & 0xffn), smtAllowed: bit(policy, 16),
      reserved17: bit(policy, 17), migrateMa: bit(policy, 18), debug: bit(policy, 19), singleSocket: bit(policy, 20), raw: policy,
    },
    familyId: bytes(0x10, 16),
    imageId: bytes(0x20, 16),
    vmpl: u32(0x30),
    signatureAlgo,
    currentTcb: tcbAt(b, 0x38, tcbLayout),
    platformInfo: {
      smtEnabled: bit(info, 0), tsmeEnabled: bit(info, 1), eccEnabled: bit(info, 2), raplDisabled: bit(info, 3),
      ciphertextHiding: bit(info, 4), aliasCheckComplete: bit(info, 5), raw: info,
    },
    authorKeyEn: (flags & 1) === 1,
    maskChipKey: (flags & 2) === 2,
    signingKey: keySel === 0 ? 'vcek' : 'vlek',
    reportData: bytes(0x50, 64),
    measurement: bytes(0x90, 48),
    hostData: bytes(0xc0, 32),
    idKeyDigest: bytes(0xe0, 48),
    authorKeyDigest: bytes(0x110, 48),
    reportId: bytes(0x140, 32),
    reportIdMa: bytes(0x160, 32),
    reportedTcb: tcbAt(b, 0x180, tcbLayout),
    chipId: bytes(0x1a0, 64),
    committedTcb: tcbAt(b, 0x1e0, tcbLayout),
    currentFirmware: fw(0x1e8),
    committedFirmware: fw(0x1ec),
    launchTcb: tcbAt(b, 0x1f0, tcbLayout),
    signature: { r: signatureComponent(b, 0x2a0, 'r'), s: signatureComponent(b, 0x2e8, 's') },
  };
  if (version >= 3) report.cpuid = { family: b[0x188]!, model: b[0x189]!, stepping: b[0x18a]! };
  if (version >= 5) report.mitigations = { launch: u64(0x1f8), current: u64(0x200) };
  return report;
}

/** True when `key` (ECDSA P-384) signed the report's bytes 0x000..0x29F with SHA-384. */
export function reportSignatureValid(report: SnpReport, key: KeyObject): boolean {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') return false;
  const sig = new Uint8Array(96);
  sig.set(report.signature.r, 0);
  sig.set(report.signature.s, 48);
  try {
    return verify('sha384', report.bytes.subarray(0, SIGNED_BYTES), { key, dsaEncoding: 'ieee-p1363' }, sig);
  } catch {
    return false; // an out-of-range r or s is simply not a valid signature
  }
}

export const isAllZero = (b: Uint8Array) => b.every((x) => x === 0);
export const tcbText = (t: Omit<TcbVersion, 'hex'>) => `${t.fmc === undefined ? '' : `fmc=${t.fmc} `}bootloader=${t.bootloader} tee=${t.tee} snp=${t.snp} microcode=${t.microcode}`;
