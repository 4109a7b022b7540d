// Turin (EPYC 9005, family 1Ah) on its real vector (test/vectors/sev-snp/turin-oak): its TCB
// layout (FMC in byte 0), its 8-byte hwID, its pinned roots, and each refusal with its own code:
// a changed byte, another product's VCEK, the Genoa root, a reserved TCB byte, a version 2
// report with a Turin VCEK, and a claim without tcb-fmc.

import { expect } from 'chai';
import { checkProperties, SEV_SNP_PLATFORM, type Requirement } from '../../lib/policy/index.ts';
import { certHwId, certTcb, parseReport, pinnedArk, readAmdCert, snpProperties, verifySnpReport } from '../../lib/attest/index.ts';
import { refusalOf, vector } from './support.ts';

const turin = vector('turin-oak');
const AT = new Date(turin.e.now);
const DAY = 86_400_000;
const verifyAt = (report: Uint8Array, certs: Uint8Array[], roots?: Uint8Array[]) => () => verifySnpReport({ report, certs, at: AT, ...(roots ? { roots } : {}) });

describe('SEV-SNP on Turin (real report and VCEK)', () => {
  it('verifies against the pinned roots alone (no roots named): the chain ends at ARK-Turin and the product is turin', () => {
    const v = verifySnpReport({ report: turin.report, certs: [turin.vcek], at: AT });
    expect(v.product).to.equal('turin');
    expect(v.chain.root.name).to.equal('ARK-Turin');
    expect(v.report.tcbLayout).to.equal('turin');
  });

  it('binds the VCEK by its 8-byte hwID (the first 8 bytes of CHIP_ID) and its TCB with FMC', () => {
    const c = readAmdCert(turin.vcek, 'VCEK');
    expect(Buffer.from(certHwId(c)!).toString('hex')).to.equal('3b42092f69c656d3');
    expect(certTcb(c)).to.deep.equal({ fmc: 0, bootloader: 1, tee: 0, snp: 2, microcode: 71 });
  });

  it('refuses a changed byte in the signed report (REPORT_INVALID)', () => {
    const b = new Uint8Array(turin.report);
    b[0x90] = b[0x90]! ^ 0x01; // the measurement
    expect(refusalOf(verifyAt(b, [turin.vcek])).code).to.equal('REPORT_INVALID');
  });

  it('refuses a Milan VCEK on the Turin report, and the Turin VCEK on a Genoa report (SNP_VCEK_MISMATCH)', () => {
    const milan = refusalOf(verifyAt(turin.report, [vector('milan-virtee-sev').vcek]));
    expect(milan.code).to.equal('SNP_VCEK_MISMATCH');
    expect(milan.message).to.equal('the report comes from a Turin (family 1Ah) CPU, but its VCEK was issued for Milan or Genoa (family 19h)');
    const genoa = vector('genoa-azure-trustee');
    expect(refusalOf(verifyAt(genoa.report, [turin.vcek])).code).to.equal('SNP_VCEK_MISMATCH');
  });

  it('refuses the Turin report against the Genoa root only (SNP_CHAIN_UNTRUSTED)', () => {
    expect(refusalOf(verifyAt(turin.report, [turin.vcek], [pinnedArk('genoa')])).code).to.equal('SNP_CHAIN_UNTRUSTED');
  });

  it('refuses a byte set in a TCB_VERSION byte Turin reserves (4 to 6) by offset (EVIDENCE_MALFORMED)', () => {
    for (const at of [0x180 + 4, 0x1e0 + 6]) {
      const b = new Uint8Array(turin.report);
      b[at] = 0x01;
      const r = refusalOf(() => parseReport(b));
      expect(r.code).to.equal('EVIDENCE_MALFORMED');
      expect(r.message).to.contain(`at 0x${at.toString(16)}, reserved in its`).and.contain('of a Turin TCB_VERSION');
    }
  });

  it('refuses a version 2 report (no CPUID) whose VCEK is Turin\'s, before its TCB is compared in the wrong layout (SNP_REPORT_VERSION)', () => {
    const b = new Uint8Array(turin.report);
    new DataView(b.buffer).setUint32(0, 2, true);
    b.fill(0, 0x188, 0x18b); // a version 2 report has no CPUID
    for (const tcb of [0x38, 0x180, 0x1e0, 0x1f0]) b[tcb + 3] = 0; // and nothing in bytes family 19h reserves
    expect(parseReport(b).tcbLayout).to.equal('family-19h');
    const r = refusalOf(verifyAt(b, [turin.vcek]));
    expect(r.code).to.equal('SNP_REPORT_VERSION');
    expect(r.message).to.contain('names no CPU');
  });

  it('has tcb-fmc and launch-tcb-fmc, which a claim must name for Turin evidence; Milan evidence is judged as before', () => {
    const window = { notBefore: new Date(AT.getTime() - DAY), notAfter: new Date(AT.getTime() + DAY) };
    const base: Requirement[] = ['tcb-bootloader', 'tcb-tee', 'tcb-snp', 'tcb-microcode'].map((name) => ({ name, comparator: '>=', value: 0 }));
    const claim = (requirements: Requirement[]) => [{ platformType: SEV_SNP_PLATFORM, requirements, ...window }];
    const p = snpProperties(parseReport(turin.report));
    expect(p).to.include({ 'tcb-fmc': 0, 'launch-tcb-fmc': 0, 'tcb-bootloader': 1, 'tcb-snp': 2, 'tcb-microcode': 71 });
    const without = checkProperties(claim(base), SEV_SNP_PLATFORM, p, AT);
    expect(without).to.deep.include({ ok: false, code: 'PLATFORM_PROPERTY_DENIED' });
    expect(without.ok === false && without.reason).to.contain('tcb-fmc');
    expect(checkProperties(claim([...base, { name: 'tcb-fmc', comparator: '>=', value: 0 }]), SEV_SNP_PLATFORM, p, AT).ok).to.equal(true);
    expect(checkProperties(claim([...base, { name: 'tcb-fmc', comparator: '>=', value: 1 }]), SEV_SNP_PLATFORM, p, AT).ok).to.equal(false);
    const milan = snpProperties(parseReport(vector('milan-virtee-sev').report));
    expect(milan['tcb-fmc']).to.equal(undefined);
    expect(checkProperties(claim(base), SEV_SNP_PLATFORM, milan, AT).ok).to.equal(true);
  });
});
