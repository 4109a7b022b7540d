// The fields of an SEV-SNP report and its certificates as lines for people (`simpleserver
// explain`): everything the parser read, whether or not the evidence goes on to verify.

import { toHex } from '../../crypto/index.ts';
import type { ValidTrustRequest } from '../../wire/index.ts';
import { certHwId, certProductName, certTcb, readAmdCert } from './amd-certs.ts';
import { parseReport, tcbText, type SnpReport, type TcbVersion } from './report.ts';
import { reportDataBinding, snpEvidenceParts } from './verify.ts';

const yes = (b: boolean) => (b ? 'yes' : 'no');
const tcb = (t: TcbVersion) => `${t.hex} (${tcbText(t)})`;

/** One line per field, "name  value", in report order. */
export function describeReport(r: SnpReport): string[] {
  const p = r.policy;
  const i = r.platformInfo;
  const rows: [string, string][] = [
    ['version', String(r.version)],
    ['guest_svn', String(r.guestSvn)],
    ['policy', `0x${p.raw.toString(16)}: ABI ${p.abiMajor}.${p.abiMinor}, SMT allowed ${yes(p.smtAllowed)}, reserved bit 17 ${p.reserved17 ? 1 : 0}, migration agent ${yes(p.migrateMa)}, DEBUG ${yes(p.debug)}, single socket ${yes(p.singleSocket)}`],
    ['family_id', toHex(r.familyId)],
    ['image_id', toHex(r.imageId)],
    ['vmpl', String(r.vmpl)],
    ['signature_algo', `${r.signatureAlgo} (ECDSA P-384 with SHA-384)`],
    ['current_tcb', tcb(r.currentTcb)],
    ['platform_info', `0x${i.raw.toString(16)}: SMT ${yes(i.smtEnabled)}, TSME ${yes(i.tsmeEnabled)}, ECC ${yes(i.eccEnabled)}, RAPL disabled ${yes(i.raplDisabled)}, ciphertext hiding ${yes(i.ciphertextHiding)}, alias check complete ${yes(i.aliasCheckComplete)}`],
    ['flags', `AUTHOR_KEY_EN ${r.authorKeyEn ? 1 : 0}, MASK_CHIP_KEY ${r.maskChipKey ? 1 : 0}, SIGNING_KEY ${r.signingKey.toUpperCase()}`],
    ['report_data', toHex(r.reportData)],
    ['measurement', toHex(r.measurement)],
    ['host_data', toHex(r.hostData)],
    ['id_key_digest', toHex(r.idKeyDigest)],
    ['author_key_digest', toHex(r.authorKeyDigest)],
    ['report_id', toHex(r.reportId)],
    ['report_id_ma', toHex(r.reportIdMa)],
    ['reported_tcb', tcb(r.reportedTcb)],
    ['cpuid fam/model/step', r.cpuid ? `0x${r.cpuid.family.toString(16)}/0x${r.cpuid.model.toString(16)}/0x${r.cpuid.stepping.toString(16)}` : '(not in a version 2 report)'],
    ['chip_id', toHex(r.chipId)],
    ['committed_tcb', tcb(r.committedTcb)],
    ['current firmware', `${r.currentFirmware.major}.${r.currentFirmware.minor} build ${r.currentFirmware.build}`],
    ['committed firmware', `${r.committedFirmware.major}.${r.committedFirmware.minor} build ${r.committedFirmware.build}`],
    ['launch_tcb', tcb(r.launchTcb)],
    // Version 5 on, under AMD's names (LAUNCH_MIT_VECTOR, CURRENT_MIT_VECTOR), each in the column.
    ...(r.mitigations ? [['launch_mit_vector', `0x${r.mitigations.launch.toString(16)}`], ['current_mit_vector', `0x${r.mitigations.current.toString(16)}`]] as [string, string][] : []),
    ['signature r', toHex(r.signature.r)],
    ['signature s', toHex(r.signature.s)],
  ];
  return rows.map(([k, v]) => `${k.padEnd(22)} ${v}`);
}

function describeCert(der: Uint8Array): string {
  try {
    const c = readAmdCert(der, 'evidence');
    const name = c.name;
    if (c.isCA) return `${name}, issued by ${c.issuerName}, valid ${c.notBefore.toISOString()} .. ${c.notAfter.toISOString()}`;
    let amd = '';
    try {
      const t = certTcb(c);
      amd = `, ${certProductName(c) ?? 'no product name'}, TCB ${t.fmc === undefined ? '' : `fmc ${t.fmc}, `}${t.bootloader}/${t.tee}/${t.snp}/${t.microcode}`;
    } catch {
      amd = ', no AMD TCB extensions';
    }
    const hw = certHwId(c);
    return `${name}${amd}${hw ? `, hwID ${toHex(hw).slice(0, 16)}…` : ''}, valid ${c.notBefore.toISOString()} .. ${c.notAfter.toISOString()}`;
  } catch (e) {
    return `unreadable certificate: ${(e as Error).message}`;
  }
}

/** The report's fields, the certificates sent with it, and whether REPORT_DATA matches the user data. */
export function describeSnpEvidence(support: ValidTrustRequest['support']): string[] {
  try {
    const parts = snpEvidenceParts(support);
    const r = parseReport(parts.report);
    const binding = reportDataBinding(r.reportData, parts.userData);
    return [
      'SEV-SNP report:',
      ...describeReport(r).map((l) => `  ${l}`),
      `  ${'(binding)'.padEnd(22)} REPORT_DATA ${binding === 'sha384' ? 'is the SHA-384 of the user data sent with it (and 16 zero bytes)' : binding === 'sha512' ? 'is the SHA-512 of the user data sent with it' : 'is NOT the hash of the user data sent with it'}`,
      'certificates sent with it:',
      ...(parts.certs.length ? parts.certs.map((c) => `  ${describeCert(c)}`) : ['  (none)']),
    ];
  } catch (e) {
    return [`SEV-SNP evidence: cannot be read: ${(e as Error).message}`];
  }
}
