// Turin (EPYC 9005, family 1Ah) on its real vector (test/vectors/sev-snp/turin-oak): its TCB
// layout (FMC in byte 0), its 8-byte hwID, its pinned roots, and each refusal with its own code:
// a changed byte, another product's VCEK, the Genoa root, a reserved TCB byte, a version 2
// report with a Turin VCEK, and a claim without tcb-fmc; and, with the test signer's Turin-shaped
// VCEK, the 8-byte hwID against CHIP_ID and fmcSPL against REPORTED_TCB.

import { expect } from 'chai';
import { checkProperties, SEV_SNP_PLATFORM, type Requirement } from '../../lib/policy/index.ts';
import { certHwId, certTcb, parseReport, pinnedArk, readAmdCert, snpProperties, verifySnpReport } from '../../lib/attest/index.ts';
import { refusalOf, vector } from './support.ts';
import { TestSnpSigner } from './signer.ts';
import { snpPolicyParts } from '../../cmd/cert-utility/snp-policy.ts';

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

  describe('with the test signer (a Turin-shaped VCEK under a root the test names)', () => {
    const signer = TestSnpSigner.create({ now: AT });
    const tcb = { bootloader: 1, tee: 0, snp: 2, microcode: 71 };
    const hwId = Uint8Array.from(signer.chipId.subarray(0, 8));
    /** A Turin report: family 1Ah, every TCB as fmc 4, 1, 0, 2, 71, CHIP_ID its 8-byte hwID then zeros (or `chipId`). */
    const turinReport = (chipId?: Uint8Array) => {
      const b = new Uint8Array(signer.report({ reportData: new Uint8Array(64), measurement: new Uint8Array(48), version: 5 }));
      b[0x188] = 0x1a;
      for (const at of [0x38, 0x180, 0x1e0, 0x1f0]) b.set(Uint8Array.of(4, 1, 0, 2, 0, 0, 0, 71), at);
      b.fill(0, 0x1a0, 0x1e0);
      b.set(chipId ?? hwId, 0x1a0);
      return signer.signWithVcek(b);
    };
    const check = (report: Uint8Array, vcek: Uint8Array) => verifyAt(report, [vcek, signer.ask], [signer.ark]);

    it('verifies a Turin report whose CHIP_ID starts with the VCEK\'s 8-byte hwID, with product unknown (not a pinned root)', () => {
      const v = check(turinReport(), signer.turinVcek(tcb, 4, hwId))();
      expect(v.product).to.equal(undefined);
      expect(v.report.reportedTcb).to.include({ fmc: 4, bootloader: 1, snp: 2 });
    });

    it('refuses a CHIP_ID that differs from the hwID, or has a byte set after its first 8 (SNP_VCEK_MISMATCH)', () => {
      const other = Uint8Array.from(hwId);
      other[7] = other[7]! ^ 1;
      expect(refusalOf(check(turinReport(other), signer.turinVcek(tcb, 4, hwId))).code).to.equal('SNP_VCEK_MISMATCH');
      const longer = new Uint8Array(9);
      longer.set(hwId);
      longer[8] = 1;
      expect(refusalOf(check(turinReport(longer), signer.turinVcek(tcb, 4, hwId))).code).to.equal('SNP_VCEK_MISMATCH');
      expect(refusalOf(check(turinReport(), signer.turinVcek(tcb, 4, signer.chipId))).code, 'a 64-byte hwID').to.equal('SNP_VCEK_MISMATCH');
    });

    it('refuses a VCEK issued for another FMC level (SNP_TCB_MISMATCH, naming fmc)', () => {
      const r = refusalOf(check(turinReport(), signer.turinVcek(tcb, 3, hwId)));
      expect(r.code).to.equal('SNP_TCB_MISMATCH');
      expect(r.message).to.contain('3/1/0/2/71 (fmc/bootloader/tee/snp/microcode)').and.contain('4/1/0/2/71');
    });

    it('refuses a family 19h VCEK (no fmcSPL) on the Turin report (SNP_VCEK_MISMATCH)', () => {
      expect(refusalOf(check(turinReport(), signer.vcekFor(tcb, hwId))).code).to.equal('SNP_VCEK_MISMATCH');
    });
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

  it('make-policy puts Turin\'s tcb-fmc in a claim of its own beside another root, so Milan machines still pass (and Turin ones must meet it)', async () => {
    const window = { notBefore: new Date(AT.getTime() - DAY), notAfter: new Date(AT.getTime() + DAY) };
    const flags = (trustAmdRoot: ('milan' | 'turin')[], fmc: number) => ({ trustAmdRoot, trustAmdRootCert: [], snpMinTcb: [1, 0, 2, 71], snpVmpl: 0, snpProperty: [{ name: 'tcb-fmc', comparator: '>=' as const, value: fmc }] });
    const claims = async (roots: ('milan' | 'turin')[], fmc = 0) => (await snpPolicyParts('make-policy', flags(roots, fmc), AT)).platformProperties!.map((c) => ({ ...c, ...window }));
    const admits = (c: Awaited<ReturnType<typeof claims>>, name: string) => checkProperties(c, SEV_SNP_PLATFORM, snpProperties(parseReport(vector(name).report)), AT).ok;
    const both = await claims(['milan', 'turin']);
    expect(both.map((c) => c.requirements.some((r) => r.name === 'tcb-fmc'))).to.deep.equal([false, true]);
    expect([admits(both, 'turin-oak'), admits(both, 'milan-virtee-sev')]).to.deep.equal([true, true]);
    expect(admits(await claims(['milan', 'turin'], 1), 'turin-oak'), 'FMC 0 below tcb-fmc >= 1').to.equal(false);
    expect(await claims(['turin'])).to.have.length(1);
  });
});
