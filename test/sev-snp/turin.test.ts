// Turin (EPYC 9005, family 1Ah) on its real vector (test/vectors/sev-snp/turin-oak): its TCB
// layout (FMC in byte 0), its 8-byte hwID, its pinned roots, and each refusal with its own code:
// a changed byte, another product's VCEK, the Genoa root, a reserved TCB byte, a version 2
// report with a Turin VCEK, and a claim without tcb-fmc; and, with the test signer's Turin-shaped
// VCEK, the 8-byte hwID against CHIP_ID and fmcSPL against REPORTED_TCB.

import { expect } from 'chai';
import { checkProperties, SEV_SNP_PLATFORM, type Requirement } from '../../lib/policy/index.ts';
import { certHwId, certTcb, parseReport, pinnedArk, readAmdCert, snpProperties, verifySnpReport } from '../../lib/attest/index.ts';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { refusalOf, vector } from './support.ts';
import { tempDir } from '../support/helpers.ts';
import type { CertifierError } from '../../lib/errors/index.ts';
import { TestSnpSigner } from './signer.ts';
import { snpPolicyParts, type MinTcb, type SnpPolicyFlags, type SnpProperty } from '../../cmd/cert-utility/snp-policy.ts';

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

  it('refuses the real Turin report made version 2 (no CPUID), whose SNP level sits where Milan\'s and Genoa\'s layout reserves a byte, as a version it cannot read (SNP_REPORT_VERSION), not as malformed', () => {
    const b = new Uint8Array(turin.report);
    new DataView(b.buffer).setUint32(0, 2, true);
    b.fill(0, 0x188, 0x18b);
    const r = refusalOf(() => parseReport(b));
    expect(r.code).to.equal('SNP_REPORT_VERSION');
    expect(r.message).to.contain('names no CPU').and.contain("Turin's TCB layout").and.contain('0x3b');
    // A byte Turin's layout reserves too (4 to 6) is no Turin TCB: malformed, as before.
    b[0x3c] = 1;
    expect(refusalOf(() => parseReport(b)).code).to.equal('EVIDENCE_MALFORMED');
  });

  describe('with the test signer in Turin mode (ARK-Turin not pinned, a VCEK with fmcSPL and an 8-byte hwID, family 1Ah reports)', () => {
    const tcb = { bootloader: 1, tee: 0, snp: 2, microcode: 71 };
    const signer = TestSnpSigner.create({ now: AT, product: 'turin', tcb, fmc: 4 });
    const hwId = Uint8Array.from(signer.chipId.subarray(0, 8));
    /** A Turin report at fmc 4 and 1/0/2/71, CHIP_ID its 8-byte hwID then zeros (or `chipId`). */
    const turinReport = (chipId?: Uint8Array) => signer.report({ reportData: new Uint8Array(64), measurement: new Uint8Array(48), version: 5, ...(chipId ? { chipId } : {}) });
    const check = (report: Uint8Array, vcek: Uint8Array) => verifyAt(report, [vcek, signer.ask], [signer.ark]);

    it('makes reports in Turin\'s layout and a VCEK with fmcSPL, an 8-byte hwID and its ARK named ARK-Turin', () => {
      const r = parseReport(turinReport());
      expect(r.tcbLayout).to.equal('turin');
      expect(r.reportedTcb).to.include({ fmc: 4, bootloader: 1, tee: 0, snp: 2, microcode: 71 });
      expect(r.launchTcb.hex).to.equal(r.reportedTcb.hex);
      expect(r.chipId.subarray(8).every((x) => x === 0)).to.equal(true);
      const vcek = readAmdCert(signer.vcek, 'VCEK');
      expect(certTcb(vcek)).to.deep.equal({ fmc: 4, ...tcb });
      expect(Buffer.from(certHwId(vcek)!).equals(Buffer.from(hwId))).to.equal(true);
      expect(readAmdCert(signer.ark, 'ARK').name).to.equal('ARK-Turin');
      expect(snpProperties(parseReport(signer.report({ reportData: new Uint8Array(64), measurement: new Uint8Array(48), fmc: 2 })))).to.include({ 'tcb-fmc': 2, 'launch-tcb-fmc': 2 });
    });

    it('verifies a Turin report whose CHIP_ID starts with the VCEK\'s 8-byte hwID, with product unknown (not a pinned root)', () => {
      const v = check(turinReport(), signer.vcek)();
      expect(v.product).to.equal(undefined);
      expect(v.report.reportedTcb).to.include({ fmc: 4, bootloader: 1, snp: 2 });
    });

    it('refuses a CHIP_ID that differs from the hwID, or has a byte set after its first 8 (SNP_VCEK_MISMATCH)', () => {
      const other = Uint8Array.from(hwId);
      other[7] = other[7]! ^ 1;
      expect(refusalOf(check(turinReport(other), signer.vcek)).code).to.equal('SNP_VCEK_MISMATCH');
      const longer = new Uint8Array(9);
      longer.set(hwId);
      longer[8] = 1;
      expect(refusalOf(check(turinReport(longer), signer.vcek)).code).to.equal('SNP_VCEK_MISMATCH');
      expect(refusalOf(check(turinReport(), signer.shapedVcek(tcb, signer.chipId, 4))).code, 'a 64-byte hwID').to.equal('SNP_VCEK_MISMATCH');
    });

    it('refuses a VCEK issued for another FMC level (SNP_TCB_MISMATCH, naming fmc)', () => {
      const r = refusalOf(check(turinReport(), signer.shapedVcek(tcb, hwId, 3)));
      expect(r.code).to.equal('SNP_TCB_MISMATCH');
      expect(r.message).to.contain('3/1/0/2/71 (fmc/bootloader/tee/snp/microcode)').and.contain('4/1/0/2/71');
    });

    it('refuses a family 19h VCEK (no fmcSPL) on the Turin report (SNP_VCEK_MISMATCH)', () => {
      expect(refusalOf(check(turinReport(), signer.shapedVcek(tcb, hwId))).code).to.equal('SNP_VCEK_MISMATCH');
    });

    it('takes a root not pinned as Turin\'s only when named ARK-Turin: a Turin machine under another name, or a family 19h one under that name, is SNP_VCEK_MISMATCH naming the root', () => {
      const machineOf = (s: TestSnpSigner) => () => verifySnpReport({ report: s.report({ reportData: new Uint8Array(64), measurement: new Uint8Array(48) }), certs: [s.vcek, s.ask], at: AT, roots: [s.ark] });
      const turinUnderTest = refusalOf(machineOf(TestSnpSigner.create({ now: AT, product: 'turin', arkName: 'ARK-TEST' })));
      expect(turinUnderTest.code).to.equal('SNP_VCEK_MISMATCH');
      expect(turinUnderTest.message).to.equal('the report and its VCEK come from a Turin (family 1Ah) CPU, but they chain to "ARK-TEST", a root of Milan or Genoa (family 19h) machines (a root not pinned is taken as Turin\'s when its name is ARK-Turin, else as family 19h\'s)');
      const milanUnderTurinName = refusalOf(machineOf(TestSnpSigner.create({ now: AT, arkName: 'ARK-Turin' })));
      expect(milanUnderTurinName.code).to.equal('SNP_VCEK_MISMATCH');
      expect(milanUnderTurinName.message).to.contain('come from a Milan or Genoa (family 19h) CPU, but they chain to "ARK-Turin", a root of Turin (family 1Ah) machines');
      expect(machineOf(TestSnpSigner.create({ now: AT, arkName: 'ARK-Turin-2' }))().report.tcbLayout, 'the name exactly').to.equal('family-19h');
    });

    it('refuses a version 2 report whose VCEK is family 19h\'s under a root named ARK-Turin as the root\'s mismatch (SNP_VCEK_MISMATCH), not as its version', () => {
      const s = TestSnpSigner.create({ now: AT, arkName: 'ARK-Turin' });
      const r = refusalOf(() => verifySnpReport({ report: s.report({ reportData: new Uint8Array(64), measurement: new Uint8Array(48), version: 2 }), certs: [s.vcek, s.ask], at: AT, roots: [s.ark] }));
      expect(r.code).to.equal('SNP_VCEK_MISMATCH');
      expect(r.message).to.contain('the report and its VCEK come from a Milan or Genoa (family 19h) CPU, but they chain to "ARK-Turin"').and.not.contain('was issued for Turin');
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

  describe('make-policy with a minimum TCB of each product (milan and turin trusted)', () => {
    const window = { notBefore: new Date(AT.getTime() - DAY), notAfter: new Date(AT.getTime() + DAY) };
    type Product = 'milan' | 'turin';
    type Minimums = { family19h?: number[]; turin?: number[] };
    const flags = (trustAmdRoot: Product[], min: Minimums, snpProperty: SnpProperty[] = [], more: Partial<SnpPolicyFlags> = {}) => ({
      trustAmdRoot, trustAmdRootCert: [], snpVmpl: 0, snpProperty, ...more,
      snpMinTcb: Object.entries(min).map(([layout, levels]) => ({ layout: layout === 'family19h' ? 'family-19h' : layout, levels })) as MinTcb,
    });
    const claims = async (roots: Product[], min: Minimums, props?: SnpProperty[], more?: Partial<SnpPolicyFlags>) => (await snpPolicyParts('make-policy', flags(roots, min, props, more), AT)).platformProperties!.map((c) => ({ ...c, ...window }));
    const admits = (c: Awaited<ReturnType<typeof claims>>, name: string) => checkProperties(c, SEV_SNP_PLATFORM, snpProperties(parseReport(vector(name).report)), AT);
    // The real vectors: milan-virtee-sev at 3:0:8:115, turin-oak at FMC 0 and 1:0:2:71.
    const MILAN = [3, 0, 8, 115];
    const TURIN = [0, 1, 0, 2, 71];
    const above = (levels: number[]) => levels.map((l, i) => (i === levels.length - 1 ? l + 1 : l));

    it('writes one claim per layout: family 19h\'s four levels without tcb-fmc, Turin\'s five', async () => {
      const both = await claims(['milan', 'turin'], { family19h: MILAN, turin: TURIN });
      expect(both.map((c) => c.requirements.filter((r) => r.name.startsWith('tcb-')).map((r) => `${r.name}>=${r.value}`))).to.deep.equal([
        ['tcb-bootloader>=3', 'tcb-tee>=0', 'tcb-snp>=8', 'tcb-microcode>=115'],
        ['tcb-fmc>=0', 'tcb-bootloader>=1', 'tcb-tee>=0', 'tcb-snp>=2', 'tcb-microcode>=71'],
      ]);
      expect(await claims(['turin'], { turin: TURIN })).to.have.length(1);
      expect(await claims(['milan'], { family19h: MILAN })).to.have.length(1);
    });

    it('admits the real Milan and Turin reports at their own levels, refuses each when its own product\'s minimum is above it, and the other product\'s minimum changes nothing', async () => {
      expect((await admits(await claims(['milan', 'turin'], { family19h: MILAN, turin: TURIN }), 'milan-virtee-sev')).ok).to.equal(true);
      expect((await admits(await claims(['milan', 'turin'], { family19h: MILAN, turin: TURIN }), 'turin-oak')).ok).to.equal(true);
      const milanAbove = admits(await claims(['milan', 'turin'], { family19h: above(MILAN), turin: TURIN }), 'milan-virtee-sev');
      expect(milanAbove).to.deep.include({ ok: false, code: 'PLATFORM_PROPERTY_DENIED' });
      expect(milanAbove.ok === false && milanAbove.reason).to.equal('tcb-microcode is 115, and the policy requires tcb-microcode >= 116');
      const turinAbove = admits(await claims(['milan', 'turin'], { family19h: MILAN, turin: above(TURIN) }), 'turin-oak');
      expect(turinAbove).to.deep.include({ ok: false, code: 'PLATFORM_PROPERTY_DENIED' });
      expect(turinAbove.ok === false && turinAbove.reason, "the Turin claim's reason, not the family 19h claim's").to.equal('tcb-microcode is 71, and the policy requires tcb-microcode >= 72');
      const fmcAbove = admits(await claims(['milan', 'turin'], { family19h: MILAN, turin: [1, 1, 0, 2, 71] }), 'turin-oak');
      expect(fmcAbove.ok === false && fmcAbove.reason).to.equal('tcb-fmc is 0, and the policy requires tcb-fmc >= 1');
      const milanFirst = admits((await claims(['milan', 'turin'], { family19h: above(MILAN), turin: TURIN })).reverse(), 'milan-virtee-sev');
      expect(milanFirst.ok === false && milanFirst.reason, 'whichever claim comes first').to.equal('tcb-microcode is 115, and the policy requires tcb-microcode >= 116');
      // Milan's levels are far above Turin's: the family 19h minimum never judges a Turin machine, nor Turin's a Milan one.
      expect(admits(await claims(['milan', 'turin'], { family19h: [255, 255, 255, 255], turin: TURIN }), 'turin-oak').ok).to.equal(true);
      expect(admits(await claims(['milan', 'turin'], { family19h: MILAN, turin: [255, 255, 255, 255, 255] }), 'milan-virtee-sev').ok).to.equal(true);
    });

    it('never admits a Milan report by the Turin claim, nor a Turin report by the family 19h claim, whatever their minimums', async () => {
      const [family19h, turinClaim] = await claims(['milan', 'turin'], { family19h: [0, 0, 0, 0], turin: [0, 0, 0, 0, 0] });
      const milan = admits([turinClaim!], 'milan-virtee-sev');
      expect(milan.ok === false && milan.reason).to.equal('the evidence has no tcb-fmc, which the policy requires (tcb-fmc >= 0)');
      const turinReport = admits([family19h!], 'turin-oak');
      expect(turinReport.ok === false && turinReport.reason).to.contain('the evidence has tcb-fmc (0), which the claim does not name');
    });

    it('decides a root given by file by the certificate: ARK-Turin\'s needs the turin= form, one not pinned the family 19h form unless it is named ARK-Turin', async () => {
      const tmp = tempDir('turin-root-');
      try {
        const file = (name: string, der: Uint8Array) => (writeFileSync(join(tmp.dir, name), der), join(tmp.dir, name));
        const turinFile = file('ark-turin.der', pinnedArk('turin'));
        const testFile = file('test-ark.der', TestSnpSigner.create({ now: AT }).ark);
        const testTurinFile = file('test-ark-turin.der', TestSnpSigner.create({ now: AT, product: 'turin' }).ark);
        const byFile = (f: string, min: Minimums, more: string[] = []) => snpPolicyParts('make-policy', { ...flags([], min), trustAmdRootCert: [f, ...more] }, AT);
        const names = async (f: string, min: Minimums, more?: string[]) => (await byFile(f, min, more)).platformProperties!.map((c) => c.requirements.filter((r) => r.name.startsWith('tcb-')).length);
        expect(await names(turinFile, { turin: TURIN })).to.deep.equal([5]);
        expect(await names(testFile, { family19h: MILAN })).to.deep.equal([4]);
        expect(await names(testTurinFile, { turin: TURIN }), 'a root not pinned named ARK-Turin is Turin\'s').to.deep.equal([5]);
        expect(await names(testTurinFile, { family19h: MILAN, turin: TURIN }, [testFile]), 'beside a root not pinned of another name').to.deep.equal([4, 5]);
        const refused = async (f: string, min: Minimums) => { try { await byFile(f, min); } catch (e) { return e as CertifierError; } throw new Error('not refused'); };
        expect((await refused(turinFile, { family19h: MILAN })).message).to.contain("trusting a Turin root (ARK-Turin) needs --snp-min-tcb turin=");
        expect((await refused(testFile, { turin: TURIN })).message).to.contain("trusting an AMD root other than Turin's needs --snp-min-tcb BOOTLOADER:TEE:SNP:MICROCODE");
        expect((await refused(testFile, { family19h: MILAN, turin: TURIN })).code).to.equal('USAGE');
        expect((await refused(testTurinFile, { family19h: MILAN })).message).to.contain('needs --snp-min-tcb turin=');
        const family19hLaunch = { ...flags([], { turin: TURIN }, [{ layout: 'family-19h', name: 'launch-tcb-snp', comparator: '>=', value: 8 }]), trustAmdRootCert: [testTurinFile] };
        const byLayout = await snpPolicyParts('make-policy', family19hLaunch, AT).then(() => undefined, (e: CertifierError) => e);
        expect(byLayout?.message, 'a prefix checked once the root given by file is read').to.equal("--snp-property family19h:launch-tcb-snp is for Milan and Genoa machines, and the policy trusts Turin roots only (ARK-Turin): it would go into no claim");
      } finally {
        tmp.cleanup();
      }
    });

    it('puts launch-tcb-fmc in the Turin claim only, and every other requirement in both', async () => {
      const props: Requirement[] = [{ name: 'launch-tcb-fmc', comparator: '>=', value: 0 }, { name: 'guest-svn', comparator: '>=', value: 0 }];
      const both = await claims(['milan', 'turin'], { family19h: MILAN, turin: TURIN }, props);
      // launch-tcb-fmc >= 0 is also the Turin minimum's own LAUNCH_TCB level: written once, in its place.
      const launch = ['launch-tcb-bootloader', 'launch-tcb-tee', 'launch-tcb-snp', 'launch-tcb-microcode'];
      expect(both.map((c) => c.requirements.map((r) => r.name).filter((n) => !n.startsWith('tcb-')))).to.deep.equal([
        ['debug', 'migrate-ma', 'vmpl', ...launch, 'guest-svn'],
        ['debug', 'migrate-ma', 'vmpl', 'launch-tcb-fmc', ...launch, 'guest-svn'],
      ]);
      expect([admits(both, 'milan-virtee-sev').ok, admits(both, 'turin-oak').ok]).to.deep.equal([true, true]);
    });

    it('writes a --snp-property given twice alike once, in each claim it goes in, and refuses two values of one property in one claim (USAGE naming both)', async () => {
      const prop = (text: string): SnpProperty => {
        const m = /^(?:(turin|family19h):)?([a-z-]+)(>=|<=|=)(\d+)$/.exec(text)!;
        return { ...(m[1] ? { layout: m[1] === 'turin' ? 'turin' : 'family-19h' } : {}), name: m[2]!, comparator: m[3] as Requirement['comparator'], value: Number(m[4]) };
      };
      // The levels given alone: without the LAUNCH_TCB minimums of --snp-min-tcb, which launch-tcb.test.ts is about.
      const named = async (roots: Product[], min: Minimums, props: string[]) => (await claims(roots, min, props.map(prop), { snpAnyLaunchTcb: true })).map((c) => c.requirements.map((r) => r.name).filter((n) => !/^(tcb-|debug|migrate-ma|vmpl)/.test(n)));
      const both = { family19h: MILAN, turin: TURIN };
      expect(await named(['milan', 'turin'], both, ['guest-svn>=2', 'guest-svn>=2'])).to.deep.equal([['guest-svn'], ['guest-svn']]);
      expect(await named(['turin'], { turin: TURIN }, ['launch-tcb-fmc>=0', 'turin:launch-tcb-fmc>=0']), 'launch-tcb-fmc is Turin\'s, prefixed or not').to.deep.equal([['launch-tcb-fmc']]);
      expect(await named(['turin'], { turin: TURIN }, ['launch-tcb-snp>=2', 'turin:launch-tcb-snp>=2']), 'the one claim a level without a prefix goes in').to.deep.equal([['launch-tcb-snp']]);
      expect(await named(['milan', 'turin'], both, ['turin:launch-tcb-snp>=2', 'family19h:launch-tcb-snp>=8', 'turin:launch-tcb-snp>=2'])).to.deep.equal([['launch-tcb-snp'], ['launch-tcb-snp']]);
      const refused = (roots: Product[], min: Minimums, props: string[]) => claims(roots, min, props.map(prop)).then(() => undefined, (e: CertifierError) => e);
      for (const [roots, min, props] of [
        [['turin'], { turin: TURIN }, ['launch-tcb-snp>=2', 'launch-tcb-snp>=3']],
        [['milan', 'turin'], both, ['turin:launch-tcb-snp>=2', 'turin:launch-tcb-snp>=3']],
        [['turin'], { turin: TURIN }, ['launch-tcb-snp>=2', 'turin:launch-tcb-snp>=3']],
        [['turin'], { turin: TURIN }, ['launch-tcb-fmc>=0', 'turin:launch-tcb-fmc>=1']],
        [['milan'], { family19h: MILAN }, ['guest-svn>=2', 'guest-svn<=5']],
      ] as [Product[], Minimums, string[]][]) {
        const err = await refused(roots, min, props);
        expect(err?.code, props.join(' ')).to.equal('USAGE');
        expect(err?.message).to.equal(`--snp-property ${props[0]} and --snp-property ${props[1]} both set ${prop(props[0]!).name} in one claim, which names each property once: the policy would say two things of it; give one`);
      }
    });

    it('refuses a LAUNCH_TCB level beside roots of both layouts (USAGE): one number would judge each product on the other\'s scale', async () => {
      const launch = (name: string, value: number): Requirement[] => [{ name, comparator: '>=', value }];
      for (const name of ['launch-tcb-bootloader', 'launch-tcb-tee', 'launch-tcb-snp', 'launch-tcb-microcode']) {
        const err = await claims(['milan', 'turin'], { family19h: MILAN, turin: TURIN }, launch(name, 2)).then(() => undefined, (e: CertifierError) => e);
        expect(err?.code, name).to.equal('USAGE');
        expect(err?.message).to.contain(`--snp-property ${name}: a LAUNCH_TCB level is on the scale of its product's TCB`)
          .and.contain(`name the layout it is for, --snp-property turin:${name}... (Turin) or family19h:${name}... (Milan, Genoa)`);
      }
      // With one layout's roots, the level is on that layout's scale and goes in its one claim.
      expect((await claims(['turin'], { turin: TURIN }, launch('launch-tcb-snp', 2)))[0]!.requirements).to.deep.include({ name: 'launch-tcb-snp', comparator: '>=', value: 2 });
      expect(await claims(['milan'], { family19h: MILAN }, launch('launch-tcb-snp', 8))).to.have.length(1);
    });

    it('puts a LAUNCH_TCB level naming its layout (turin:, family19h:) in that layout\'s claim only: each real report is admitted at its own launch levels and refused only by its own layout\'s', async () => {
      const launch = (prefix: 'family19h' | 'turin', name: string, value: number): SnpProperty => ({ layout: prefix === 'family19h' ? 'family-19h' : prefix, name, comparator: '>=', value });
      // The levels given alone: without the LAUNCH_TCB minimums of --snp-min-tcb, which launch-tcb.test.ts is about.
      const both = (props: SnpProperty[]) => claims(['milan', 'turin'], { family19h: MILAN, turin: TURIN }, props, { snpAnyLaunchTcb: true });
      // The real vectors were launched at the TCB they report: milan-virtee-sev at SNP 8, turin-oak at SNP 2.
      const own = await both([launch('family19h', 'launch-tcb-snp', 8), launch('turin', 'launch-tcb-snp', 2), launch('turin', 'launch-tcb-microcode', 71)]);
      expect(own.map((c) => c.requirements.filter((r) => r.name.startsWith('launch-')).map((r) => `${r.name}${r.comparator}${r.value}`))).to.deep.equal([
        ['launch-tcb-snp>=8'],
        ['launch-tcb-snp>=2', 'launch-tcb-microcode>=71'],
      ]);
      expect(own.flatMap((c) => c.requirements).filter((r) => 'layout' in r), 'the layout is make-policy\'s, not the claim\'s').to.deep.equal([]);
      expect([admits(own, 'milan-virtee-sev').ok, admits(own, 'turin-oak').ok]).to.deep.equal([true, true]);
      const milanAbove = await both([launch('family19h', 'launch-tcb-snp', 9), launch('turin', 'launch-tcb-snp', 2)]);
      const milan = admits(milanAbove, 'milan-virtee-sev');
      expect(milan).to.deep.include({ ok: false, code: 'PLATFORM_PROPERTY_DENIED' });
      expect(milan.ok === false && milan.reason).to.equal('launch-tcb-snp is 8, and the policy requires launch-tcb-snp >= 9');
      expect(admits(milanAbove, 'turin-oak').ok, 'the family 19h launch minimum judges no Turin machine').to.equal(true);
      const turinAbove = await both([launch('family19h', 'launch-tcb-snp', 8), launch('turin', 'launch-tcb-snp', 3)]);
      const turinRefused = admits(turinAbove, 'turin-oak');
      expect(turinRefused).to.deep.include({ ok: false, code: 'PLATFORM_PROPERTY_DENIED' });
      expect(turinRefused.ok === false && turinRefused.reason).to.equal('launch-tcb-snp is 2, and the policy requires launch-tcb-snp >= 3');
      expect(admits(turinAbove, 'milan-virtee-sev').ok, 'the Turin launch minimum judges no Milan machine').to.equal(true);
      // One layout's level alone: the other layout's claim names none.
      const turinOnly = await both([launch('turin', 'launch-tcb-snp', 3)]);
      expect([admits(turinOnly, 'milan-virtee-sev').ok, admits(turinOnly, 'turin-oak').ok]).to.deep.equal([true, false]);
      // With the roots of one layout, its own prefix goes in its one claim, and the other's is USAGE.
      expect((await claims(['turin'], { turin: TURIN }, [launch('turin', 'launch-tcb-snp', 2)]))[0]!.requirements).to.deep.include({ name: 'launch-tcb-snp', comparator: '>=', value: 2 });
      const elsewhere = await claims(['turin'], { turin: TURIN }, [launch('family19h', 'launch-tcb-snp', 8)]).then(() => undefined, (e: CertifierError) => e);
      expect(elsewhere?.code).to.equal('USAGE');
      expect(elsewhere?.message).to.equal("--snp-property family19h:launch-tcb-snp is for Milan and Genoa machines, and the policy trusts Turin roots only (ARK-Turin): it would go into no claim");
    });
  });
});
