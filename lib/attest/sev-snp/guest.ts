// The machine's side of SEV-SNP: a Platform whose evidence is a hardware report obtained through
// configfs-tsm, bound to the request by REPORT_DATA = SHA-384(serialized attestation_user_data)
// and 16 zero bytes (reportDataFor), sent as Certifier evidence ("sev-attestation" plus the VCEK
// or VLEK, and its ASK, as "cert").

import { CertifierError } from '../../errors/index.ts';
import { bytesEqual, randomBytes, toHex } from '../../crypto/index.ts';
import { encode, type AttestationUserData, type EvidencePackage } from '../../wire/index.ts';
import type { Protector } from '../../../cryptstore/index.ts';
import type { Platform } from '../platform.ts';
import { parseCertTable } from './certtable.ts';
import { parseReport, type SigningKey, type SnpReport } from './report.ts';
import { requestTsmReport, type TsmOptions } from './tsm.ts';
import { CERT_EVIDENCE, chipIdMasked, MAX_EVIDENCE_CERTS, reportDataFor, SEV_ATTESTATION_EVIDENCE, SEV_ENCLAVE } from './verify.ts';

export interface SnpGuestOptions {
  tsm?: TsmOptions;
  /** The VCEK or VLEK (and optionally its ASK), DER, from a file fetched ahead of time; else the host's auxblob. */
  certs?: Uint8Array[];
}

/** The certificates of the host's table that the verifier needs: the signing key's and the ASK. */
function certsFromTable(auxblob: Uint8Array | undefined, kind: SigningKey): Uint8Array[] {
  if (!auxblob) return [];
  const table = parseCertTable(auxblob);
  const leaf = table.filter((c) => c.kind === kind);
  return leaf.length ? [...leaf, ...table.filter((c) => c.kind === 'ask')].map((c) => c.der) : [];
}

/**
 * The path at which AMD's Key Distribution Service serves this report's VCEK (chip id and
 * REPORTED_TCB). The product comes from CPUID (reports of version 3 on: family 19h, models
 * 00h-0Fh Milan, 10h-1Fh and A0h-AFh Genoa; family 1Ah Turin, named by the first 8 bytes of
 * CHIP_ID and with its FMC level).
 */
export function kdsVcekPath(r: SnpReport): string {
  const t = r.reportedTcb;
  if (r.tcbLayout === 'turin') return `/vcek/v1/Turin/${toHex(r.chipId.subarray(0, 8))}?fmcSPL=${t.fmc}&blSPL=${t.bootloader}&teeSPL=${t.tee}&snpSPL=${t.snp}&ucodeSPL=${t.microcode}`;
  const m = r.cpuid?.family === 0x19 ? r.cpuid.model : undefined;
  const product = m === undefined ? '{Milan|Genoa}' : m <= 0x0f ? 'Milan' : (m >= 0x10 && m <= 0x1f) || (m >= 0xa0 && m <= 0xaf) ? 'Genoa' : '{Milan|Genoa}';
  return `/vcek/v1/${product}/${toHex(r.chipId)}?blSPL=${t.bootloader}&teeSPL=${t.tee}&snpSPL=${t.snp}&ucodeSPL=${t.microcode}`;
}

export class SnpGuest implements Platform {
  readonly type = SEV_ENCLAVE;
  readonly isTestPlatform = false;

  private constructor(readonly measurement: Uint8Array, private readonly o: SnpGuestOptions) {}

  /**
   * Asks the platform for one report (over random data) to learn this VM's launch measurement, so
   * a machine without SEV-SNP is told so before anything else happens.
   */
  static async open(o: SnpGuestOptions = {}): Promise<SnpGuest> {
    if ((o.certs?.length ?? 0) > MAX_EVIDENCE_CERTS) {
      throw new CertifierError('INVALID_INPUT', `the certificates given for the report (--vcek) hold ${o.certs!.length} certificates: a verifier takes at most ${MAX_EVIDENCE_CERTS} (the VCEK or VLEK, the ASK, the ASVK, the ARK)`);
    }
    const probe = await requestTsmReport(randomBytes(64), o.tsm);
    return new SnpGuest(parseReport(probe.report).measurement, o);
  }

  async attest(userData: AttestationUserData): Promise<EvidencePackage> {
    const said = encode('attestation_user_data', userData);
    const reportData = reportDataFor(said);
    const got = await requestTsmReport(reportData, this.o.tsm);
    const report = parseReport(got.report);
    if (!bytesEqual(report.reportData, reportData)) throw new CertifierError('INTEGRITY', 'the platform returned a report over other data than this request');
    const certs = this.o.certs?.length ? this.o.certs : certsFromTable(got.auxblob, report.signingKey);
    if (certs.length === 0) {
      const where = report.signingKey === 'vlek' ? 'a VLEK comes from the cloud provider'
        // No chip id to ask AMD's KDS with: only the host knows which chip it is.
        : chipIdMasked(report) ? 'the report\'s CHIP_ID is masked (all zeros: the host\'s SEV-SNP configuration sets MASK_CHIP_ID), so this VM cannot name the KDS path of its VCEK: have the host attach its VCEK to reports, or fetch it on the host and give it with --vcek'
        : `fetch it ahead of time from AMD's Key Distribution Service (KDS), path ${kdsVcekPath(report)}`;
      throw new CertifierError('NOT_FOUND', `no ${report.signingKey.toUpperCase()} certificate: the host attached none to the report (configfs-tsm auxblob), and none was given with --vcek; ${where} (KDS; see the README)`);
    }
    return {
      proverType: 'vse-verifier',
      enclaveType: SEV_ENCLAVE,
      factAssertion: [
        { evidenceType: SEV_ATTESTATION_EVIDENCE, serializedEvidence: encode('sev_attestation_message', { whatWasSaid: said, reportedAttestation: got.report }) },
        ...certs.map((c) => ({ evidenceType: CERT_EVIDENCE, serializedEvidence: c })),
      ],
    };
  }

  sealingProtector(): Protector {
    // Sealing needs a key derived by the firmware (SNP_GET_DERIVED_KEY on /dev/sev-guest), which configfs-tsm does not offer.
    throw new CertifierError('UNSUPPORTED', 'sealing a cryptstore to SEV-SNP is not supported yet; protect the store with --key-file or --passphrase-file');
  }
}
