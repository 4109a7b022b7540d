// Each refusal of the list, with its own code: a flipped bit anywhere in the signed bytes,
// a VCEK from another vector, a Milan VCEK against the Genoa root, a VCEK whose TCB does not match
// the report, a debug guest under the default policy, a measurement not in the policy, report data
// that does not match the request, an unknown report version. Real vectors where they can show
// it; the test signer where a refusal needs a report that verifies up to the point refused.

import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { CertifierError, type ErrorCode } from '../../lib/errors/index.ts';
import { generateKeyPair, publicKeyOf, randomBytes, toKeyMessage } from '../../lib/crypto/index.ts';
import { encode } from '../../lib/wire/index.ts';
import { checkProperties, evaluate, formatCertifierTime, loadPolicy, makePolicy, SEV_SNP_PLATFORM, type Decision, type Policy } from '../../lib/policy/index.ts';
import {
  parseReport, pinnedArk, reportDataFor, reportSignatureValid, SIGNED_BYTES, snpProperties, SUPPORTED_REPORT_VERSIONS, verifiedBefore, verifyEvidence, verifySnpReport,
} from '../../lib/attest/index.ts';
import { NAMES, NOW, refusalOf, snpSupport, vector } from './support.ts';
import { TestSnpSigner } from './signer.ts';

const DAY = 86_400_000;
const MEASUREMENT = randomBytes(48);

function codeOf(f: () => unknown): ErrorCode | 'none' {
  try {
    f();
    return 'none';
  } catch (e) {
    if (!(e instanceof CertifierError)) throw e;
    return e.code;
  }
}

/** What flipping bit `bit` of byte `i` of the virtee report must be refused with. */
function expectedForFlip(report: Uint8Array, i: number, bit: number): ErrorCode {
  if (i < 4) {
    const v = new DataView(report.buffer, report.byteOffset).getUint32(0, true) ^ (1 << (8 * i + bit));
    // Version 3 on names its CPU's family, which the virtee report (version 2) leaves zero.
    return !SUPPORTED_REPORT_VERSIONS.includes(v) ? 'SNP_REPORT_VERSION' : v >= 3 ? 'SNP_CPU_UNKNOWN' : 'REPORT_INVALID';
  }
  if (i >= 0x34 && i < 0x38) return 'EVIDENCE_MALFORMED'; // SIGNATURE_ALGO other than 1
  const policyBit = (i - 0x08) * 8 + bit;
  if (i >= 0x08 && i < 0x10 && (policyBit === 17 || policyBit >= 26)) return 'EVIDENCE_MALFORMED'; // guest policy: bit 17 must be 1, 26 to 63 reserved
  if ([0x38, 0x180, 0x1e0, 0x1f0].some((tcb) => i >= tcb + 2 && i < tcb + 6)) return 'EVIDENCE_MALFORMED'; // a TCB_VERSION's reserved bytes
  if (i >= 0x30 && i < 0x34 && (i > 0x30 || bit >= 2)) return 'EVIDENCE_MALFORMED'; // a VMPL above 3 (the report's is 0)
  if (i === 0x48 && bit >= 1 && bit <= 4) {
    if (bit === 1) return 'SNP_VCEK_MISMATCH'; // MASK_CHIP_KEY: no chip id to match
    return bit === 2 ? 'SNP_VCEK_MISMATCH' : 'EVIDENCE_MALFORMED'; // SIGNING_KEY 1 (VLEK), or 2 and 4 (reserved)
  }
  if ((i === 0x48 && bit >= 5) || (i > 0x48 && i < 0x4c)) return 'EVIDENCE_MALFORMED'; // the flags' reserved bits
  // The reserved bytes of a version 2 report (the virtee report's version).
  if ((i >= 0x4c && i < 0x50) || (i >= 0x188 && i < 0x1a0) || i === 0x1eb || i === 0x1ef || i >= 0x1f8) return 'EVIDENCE_MALFORMED';
  if (i >= 0x1a0 && i < 0x1e0) return 'SNP_VCEK_MISMATCH'; // CHIP_ID
  if ([0x180, 0x181, 0x186, 0x187].includes(i)) return 'SNP_TCB_MISMATCH'; // REPORTED_TCB's SPLs
  return 'REPORT_INVALID';
}

async function userData(o: { sessionBinding?: Uint8Array; time?: Date; enclaveType?: string } = {}) {
  const machine = await generateKeyPair('p256');
  return encode('attestation_user_data', {
    enclaveType: o.enclaveType ?? 'sev-enclave', time: formatCertifierTime(o.time ?? NOW), enclaveKey: toKeyMessage(publicKeyOf(machine.privateKey), 'auth-key'),
    ...(o.sessionBinding ? { sessionBinding: o.sessionBinding } : {}),
  });
}

describe('SEV-SNP refusals, each with its own code', () => {
  const virtee = vector('milan-virtee-sev');
  let signer: TestSnpSigner;
  let policyKey: Awaited<ReturnType<typeof generateKeyPair>>;
  let policy: Policy;

  before(async () => {
    signer = TestSnpSigner.create({ now: NOW });
    policyKey = await generateKeyPair('p256');
    // The default SNP policy make-policy writes: debug, migration agent and VMPL left to the defaults.
    policy = loadPolicy(makePolicy({
      policyKey: policyKey.privateKey, platforms: [], measurements: [MEASUREMENT],
      platformRoots: [{ platformType: SEV_SNP_PLATFORM, certificate: signer.ark, name: 'ARK-TEST' }, { platformType: SEV_SNP_PLATFORM, certificate: pinnedArk('milan'), name: 'ARK-Milan' }],
      platformProperties: [{ platformType: SEV_SNP_PLATFORM, requirements: [
        { name: 'tcb-bootloader', comparator: '>=', value: 2 }, { name: 'tcb-tee', comparator: '>=', value: 0 },
        { name: 'tcb-snp', comparator: '>=', value: 5 }, { name: 'tcb-microcode', comparator: '>=', value: 68 },
      ] }],
      notBefore: new Date(NOW.getTime() - DAY), notAfter: new Date(NOW.getTime() + DAY),
    }), policyKey.publicKey);
  });

  /** Signer evidence through verification and the policy, as simpleserver does it. */
  async function decide(fields: Partial<Parameters<TestSnpSigner['report']>[0]> = {}, said?: Uint8Array): Promise<Decision> {
    said ??= await userData();
    const report = signer.report({ reportData: reportDataFor(said), measurement: MEASUREMENT, ...fields });
    const facts = verifyEvidence(snpSupport(report, said, [signer.vcek, signer.ask]), { at: NOW, snpRoots: [signer.ark] });
    return evaluate(policy, facts, { at: NOW, purpose: 'authentication' });
  }

  it('accepts the signer\'s well-formed evidence under that policy (so each refusal below is about one thing)', async () => {
    const d = await decide();
    expect(d.allow, d.allow ? '' : d.reason).to.equal(true);
  });

  it('refuses a flipped bit anywhere in the signed bytes: every one of the 5376 bits breaks the signature', () => {
    const r = parseReport(virtee.report);
    const key = verifySnpReport({ report: virtee.report, certs: [virtee.vcek], at: NOW }).chain.leaf.publicKey;
    expect(reportSignatureValid(r, key)).to.equal(true);
    const broken: number[] = [];
    for (let i = 0; i < SIGNED_BYTES * 8; i++) {
      const b = new Uint8Array(r.bytes);
      b[i >> 3]! ^= 1 << (i & 7);
      if (reportSignatureValid({ ...r, bytes: b }, key)) broken.push(i);
    }
    expect(broken).to.deep.equal([]);
  });

  it('refuses a flipped bit anywhere in the signed bytes end to end: REPORT_INVALID, or the more specific code of the field it lands in', () => {
    const wrong: string[] = [];
    // Every bit of the fields checked before the signature; one bit per byte elsewhere (the test above covers them all).
    const special = (i: number) => i < 4 || (i >= 0x08 && i < 0x10) || (i >= 0x34 && i < 0x38) || (i >= 0x48 && i < 0x4c) || (i >= 0x180 && i < 0x188) || (i >= 0x1a0 && i < 0x1e0);
    for (let i = 0; i < SIGNED_BYTES; i++) {
      for (const bit of special(i) ? [0, 1, 2, 3, 4, 5, 6, 7] : [i % 8]) {
        const b = new Uint8Array(virtee.report);
        b[i]! ^= 1 << bit;
        const got = codeOf(() => verifySnpReport({ report: b, certs: [virtee.vcek], at: NOW }));
        const want = expectedForFlip(virtee.report, i, bit);
        if (got !== want) wrong.push(`byte 0x${i.toString(16)} bit ${bit}: ${got}, expected ${want}`);
      }
    }
    expect(wrong).to.deep.equal([]);
  });

  it('refuses a report with anything but zeros in the bytes its signature does not cover (the padding of r and s, the reserved rest of the area)', () => {
    const accepted: string[] = [];
    // r's and s's padding (their high 24 bytes), then the first and last reserved bytes after them.
    for (const at of [0x2a0 + 48, 0x2e8 - 1, 0x2e8 + 48, 0x330 - 1, 0x330, 0x49f]) {
      const b = new Uint8Array(virtee.report);
      b[at] = 1;
      const got = codeOf(() => verifySnpReport({ report: b, certs: [virtee.vcek], at: NOW }));
      if (got !== 'EVIDENCE_MALFORMED') accepted.push(`byte 0x${at.toString(16)}: ${got}`);
    }
    expect(accepted).to.deep.equal([]);
  });

  it('refuses anything but zeros in a reserved byte or flag bit the signature covers, naming the offset, as each version lays them out', () => {
    const at = (version: number, offset: number, value = 1) => {
      const b = new Uint8Array(virtee.report);
      new DataView(b.buffer).setUint32(0, version, true);
      b[offset] = value;
      return b;
    };
    const refused: Record<number, number[]> = { 2: [0x4c, 0x4f, 0x188, 0x19f, 0x1eb, 0x1ef, 0x1f8, 0x29f], 3: [0x18b, 0x19f, 0x1f8, 0x207, 0x208], 4: [0x18b, 0x208, 0x29f], 5: [0x4c, 0x18b, 0x208, 0x29f] };
    for (const [version, offsets] of Object.entries(refused)) {
      for (const offset of offsets) {
        const r = refusalOf(() => parseReport(at(Number(version), offset)));
        expect(r.code, `version ${version}, 0x${offset.toString(16)}`).to.equal('EVIDENCE_MALFORMED');
        expect(r.message).to.contain(`at 0x${offset.toString(16)}, reserved in a version ${version} report`);
      }
    }
    expect(refusalOf(() => parseReport(at(2, 0x48, 0x20))).message).to.contain('reserved bits of its flags at 0x48');
    expect(refusalOf(() => parseReport(at(2, 0x4b, 0x80))).code).to.equal('EVIDENCE_MALFORMED');
    // Fields, not reserved: the CPUID bytes from version 3 on, the mitigation vectors in version 5 (and 4, unchecked there).
    const milan = (b: Uint8Array) => (b[0x188] = 0x19, b); // a version 3 report names its CPU's family
    expect(parseReport(milan(at(3, 0x18a))).cpuid?.stepping).to.equal(1);
    expect(parseReport(milan(at(5, 0x1f8))).mitigations?.launch).to.equal(1n);
    expect(parseReport(milan(at(4, 0x200))).version).to.equal(4);
    // Every real report has zeros there: each one verifies (test/sev-snp/vectors.test.ts), and its bytes are checked here.
    for (const name of ['milan-virtee-sev', 'milan-go-sev-guest', 'milan-trustee', 'genoa-azure-trustee']) expect(parseReport(vector(name).report).bytes.length, name).to.equal(1184);
  });

  it('refuses guest policy bit 17 clear, a guest policy bit above 25, or a reserved TCB_VERSION byte, naming the offset; every real report passes', () => {
    const edited = (edit: (b: Uint8Array) => void) => {
      const b = new Uint8Array(virtee.report);
      edit(b);
      return b;
    };
    const withPolicy = (value: bigint) => edited((b) => new DataView(b.buffer).setBigUint64(0x08, value, true));
    const clear17 = refusalOf(() => parseReport(withPolicy(0x10000n)));
    expect(clear17.code).to.equal('EVIDENCE_MALFORMED');
    expect(clear17.message).to.contain('bit 17 of its guest policy clear (byte 0xa)');
    for (const [n, byte] of [[26, '0xb'], [31, '0xb'], [32, '0xc'], [63, '0xf']] as const) {
      const r = refusalOf(() => parseReport(withPolicy(0x30000n | (1n << BigInt(n)))));
      expect(r.code, `bit ${n}`).to.equal('EVIDENCE_MALFORMED');
      expect(r.message).to.contain(`sets bit ${n} of its guest policy (byte ${byte})`);
    }
    for (const [name, at] of [['CURRENT_TCB', 0x38], ['REPORTED_TCB', 0x180], ['COMMITTED_TCB', 0x1e0], ['LAUNCH_TCB', 0x1f0]] as const) {
      for (const i of [2, 5]) {
        const r = refusalOf(() => parseReport(edited((b) => { b[at + i] = 0x40; })));
        expect(r.code, `${name} byte ${i}`).to.equal('EVIDENCE_MALFORMED');
        expect(r.message).to.contain(`at 0x${(at + i).toString(16)}, reserved in its ${name}`);
      }
    }
    // The defined bits stay readable, each with bit 17.
    for (let n = 18; n <= 25; n++) expect(parseReport(withPolicy(0x20000n | (1n << BigInt(n)))).policy.raw, `bit ${n}`).to.equal(0x20000n | (1n << BigInt(n)));
    for (const name of NAMES) expect(parseReport(vector(name).report).policy.reserved17, name).to.equal(true);
  });

  it('takes PLATFORM_INFO bits it does not know (the host\'s setup, which firmware updates extend) without refusing, end to end', async () => {
    const said = await userData();
    for (const info of [1n << 6n, 1n << 7n, 1n << 63n]) {
      const report = signer.report({ reportData: reportDataFor(said), measurement: MEASUREMENT, platformInfo: 1n | info });
      expect(parseReport(report).platformInfo.raw).to.equal(1n | info);
      expect(codeOf(() => verifyEvidence(snpSupport(report, said, [signer.vcek, signer.ask]), { at: NOW, snpRoots: [signer.ark] }))).to.equal('none');
    }
  });

  it('refuses a VCEK from another vector with SNP_VCEK_MISMATCH (another chip)', () => {
    const other = vector('milan-trustee');
    expect(codeOf(() => verifySnpReport({ report: virtee.report, certs: [other.vcek], at: NOW }))).to.equal('SNP_VCEK_MISMATCH');
    // Every cross pairing of the real vectors is refused before the signature is even tried.
    for (const a of ['milan-virtee-sev', 'milan-go-sev-guest', 'milan-trustee', 'genoa-azure-trustee']) {
      for (const b of ['milan-virtee-sev', 'milan-go-sev-guest', 'milan-trustee', 'genoa-azure-trustee']) {
        if (a === b) continue;
        const code = codeOf(() => verifySnpReport({ report: vector(a).report, certs: [vector(b).vcek], at: NOW }));
        expect(code, `${a} report with ${b} VCEK`).to.equal('SNP_VCEK_MISMATCH');
      }
    }
  });

  it('verifies a report whose CHIP_ID is masked (all zeros) by its VCEK\'s signature, which ties it to the VCEK\'s chip; another chip\'s VCEK is REPORT_INVALID', async () => {
    const said = await userData();
    const masked = signer.report({ reportData: reportDataFor(said), measurement: MEASUREMENT, chipId: new Uint8Array(64) });
    expect(parseReport(masked).chipId.every((x) => x === 0)).to.equal(true);
    const facts = verifyEvidence(snpSupport(masked, said, [signer.vcek, signer.ask]), { at: NOW, snpRoots: [signer.ark] });
    expect(facts.steps.join('\n')).to.contain(`CHIP_ID is masked: the chip is the VCEK's, hwID ${Buffer.from(signer.chipId).toString('hex').slice(0, 16)}`);
    expect((await decide({ chipId: new Uint8Array(64) })).allow, 'through the policy, as any other').to.equal(true);
    const other = TestSnpSigner.create({ now: NOW });
    const r = refusalOf(() => verifySnpReport({ report: masked, certs: [other.vcek, other.ask], at: NOW, roots: [signer.ark, other.ark] }));
    expect(r.code, 'a VCEK of another chip, same TCB').to.equal('REPORT_INVALID');
    // A real report with its chip id zeroed afterwards: the signature covers CHIP_ID.
    const zeroed = new Uint8Array(virtee.report);
    zeroed.fill(0, 0x1a0, 0x1e0);
    expect(codeOf(() => verifySnpReport({ report: zeroed, certs: [virtee.vcek], at: NOW }))).to.equal('REPORT_INVALID');
  });

  it('refuses a Milan VCEK against the Genoa root with SNP_CHAIN_UNTRUSTED', () => {
    let e: unknown;
    try {
      verifySnpReport({ report: virtee.report, certs: [virtee.vcek], at: NOW, roots: [pinnedArk('genoa')] });
    } catch (x) {
      e = x;
    }
    expect(e).to.be.instanceOf(CertifierError).with.property('code', 'SNP_CHAIN_UNTRUSTED');
    expect((e as CertifierError).details).to.include({ reason: 'no-issuer' });
    expect((e as Error).message).to.contain('ARK-Milan');
  });

  it('refuses a VCEK whose TCB does not match the report\'s REPORTED_TCB with SNP_TCB_MISMATCH, naming both', () => {
    const said = new Uint8Array(64);
    const report = signer.report({ reportData: said, measurement: MEASUREMENT });
    const stale = signer.vcekFor({ bootloader: 3, tee: 0, snp: 7, microcode: 115 });
    let e: unknown;
    try {
      verifySnpReport({ report, certs: [stale, signer.ask], at: NOW, roots: [signer.ark] });
    } catch (x) {
      e = x;
    }
    expect(e).to.be.instanceOf(CertifierError).with.property('code', 'SNP_TCB_MISMATCH');
    expect((e as Error).message).to.contain('3/0/7/115').and.contain('3/0/8/115');
  });

  it('denies a debug-enabled guest under the default policy with PLATFORM_PROPERTY_DENIED', async () => {
    const d = await decide({ policy: 0x30000n | (1n << 19n) });
    expect(d).to.include({ allow: false, code: 'PLATFORM_PROPERTY_DENIED' });
    if (!d.allow) expect(d.reason).to.contain('debug is 1').and.contain('debug <= 0');
    // The real go-sev-guest vector is such a guest: its properties fail the same claim.
    const real = snpProperties(parseReport(vector('milan-go-sev-guest').report));
    const outcome = checkProperties(policy.properties, SEV_SNP_PLATFORM, real, NOW);
    expect(outcome.ok).to.equal(false);
    if (!outcome.ok) expect(outcome.reason).to.contain('debug is 1');
  });

  it('denies a measurement not in the policy with MEASUREMENT_NOT_TRUSTED', async () => {
    const other = randomBytes(48);
    const d = await decide({ measurement: other });
    expect(d).to.include({ allow: false, code: 'MEASUREMENT_NOT_TRUSTED' });
    if (!d.allow) expect(d.reason).to.contain(Buffer.from(other).toString('hex'));
  });

  it('refuses report data that does not match the request with SNP_REPORT_DATA_MISMATCH', async () => {
    // A real report: its REPORT_DATA is not the hash of any user data we send.
    const real = snpSupport(virtee.report, await userData(), [virtee.vcek]);
    expect(codeOf(() => verifyEvidence(real, { at: NOW }))).to.equal('SNP_REPORT_DATA_MISMATCH');
    // A report bound to one request, sent with another request's user data.
    const [a, b] = [await userData(), await userData()];
    const report = signer.report({ reportData: reportDataFor(a), measurement: MEASUREMENT });
    expect(codeOf(() => verifyEvidence(snpSupport(report, b, [signer.vcek, signer.ask]), { at: NOW, snpRoots: [signer.ark] }))).to.equal('SNP_REPORT_DATA_MISMATCH');
  });

  it('says what verified before a late refusal (details.verified, explain\'s proof): the path before REPORT_INVALID, the signature too before SNP_REPORT_DATA_MISMATCH; nothing before a refused path', async () => {
    const verified = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        if (e instanceof CertifierError) return { code: e.code, verified: verifiedBefore(e) };
        throw e;
      }
      throw new Error('expected a refusal');
    };
    const path = /^ARK-Milan key:\w+ \(pinned AMD root\) signed SEV-Milan, which signed the VCEK for Milan-B0 at TCB bootloader=3 tee=0 snp=8 microcode=115 \(RSA-PSS SHA-384 signatures verified\)$/;
    const said = await userData();
    const late = verified(() => verifyEvidence(snpSupport(virtee.report, said, [virtee.vcek]), { at: NOW }));
    expect(late.code).to.equal('SNP_REPORT_DATA_MISMATCH');
    expect(late.verified).to.have.length(2);
    expect(late.verified[0]).to.match(path);
    expect(late.verified[1]).to.match(/^the VCEK matches the report's REPORTED_TCB and CHIP_ID, and signed the report \(ECDSA P-384 verified\)/);
    const altered = new Uint8Array(virtee.report);
    altered[0x90]! ^= 1; // the measurement
    const unsigned = verified(() => verifySnpReport({ report: altered, certs: [virtee.vcek], at: NOW }));
    expect(unsigned.code).to.equal('REPORT_INVALID');
    expect(unsigned.verified).to.have.length(1);
    expect(unsigned.verified[0]).to.match(path);
    expect(verified(() => verifySnpReport({ report: virtee.report, certs: [virtee.vcek], at: NOW, roots: [pinnedArk('genoa')] }))).to.deep.equal({ code: 'SNP_CHAIN_UNTRUSTED', verified: [] });
  });

  it('takes REPORT_DATA as the Certifier Framework writes it (SHA-384, 16 zero bytes) or as SHA-512, and nothing in the tail', async () => {
    const said = await userData();
    const verify = (reportData: Uint8Array) => codeOf(() => verifyEvidence(snpSupport(signer.report({ reportData, measurement: MEASUREMENT }), said, [signer.vcek, signer.ask]), { at: NOW, snpRoots: [signer.ark] }));
    const original = new Uint8Array(64);
    original.set(createHash('sha384').update(said).digest());
    expect(Buffer.from(reportDataFor(said)).equals(Buffer.from(original)), 'what this suite writes').to.equal(true);
    expect(verify(original)).to.equal('none');
    expect(verify(new Uint8Array(createHash('sha512').update(said).digest()))).to.equal('none');
    const tail = new Uint8Array(original);
    tail[63] = 1; // something riding along after the hash
    expect(verify(tail)).to.equal('SNP_REPORT_DATA_MISMATCH');
    const sha512 = new Uint8Array(createHash('sha512').update(said).digest());
    sha512[63]! ^= 1; // the SHA-512 binding holds all 64 bytes: its last 16 are not free either
    expect(verify(sha512)).to.equal('SNP_REPORT_DATA_MISMATCH');
  });

  it('denies evidence whose user data is dated more than 24 hours ago with CLAIM_EXPIRED', async () => {
    const HOUR = 3_600_000;
    expect((await decide({}, await userData({ time: new Date(NOW.getTime() - 23 * HOUR) }))).allow, 'dated 23 hours ago').to.equal(true);
    const d = await decide({}, await userData({ time: new Date(NOW.getTime() - 25 * HOUR) }));
    expect(d).to.include({ allow: false, code: 'CLAIM_EXPIRED' });
    if (!d.allow) expect(d.reason).to.contain('the attestation user data is valid from');
  });

  it('refuses user data naming another enclave type, and a report longer than 1184 bytes, with EVIDENCE_MALFORMED', async () => {
    const said = await userData({ enclaveType: 'simulated-enclave' });
    const report = signer.report({ reportData: reportDataFor(said), measurement: MEASUREMENT });
    expect(codeOf(() => verifyEvidence(snpSupport(report, said, [signer.vcek, signer.ask]), { at: NOW, snpRoots: [signer.ark] }))).to.equal('EVIDENCE_MALFORMED');
    const longer = new Uint8Array(virtee.report.length + 1);
    longer.set(virtee.report);
    expect(codeOf(() => parseReport(longer))).to.equal('EVIDENCE_MALFORMED');
    expect(codeOf(() => verifySnpReport({ report: longer, certs: [virtee.vcek], at: NOW }))).to.equal('EVIDENCE_MALFORMED');
  });

  it('reads a version 4 report (some Milan firmware issues them) as version 3: CPUID, no mitigation vectors', () => {
    const b = new Uint8Array(virtee.report);
    new DataView(b.buffer).setUint32(0, 4, true);
    b[0x188] = 0x19; // Milan's family, which a version 3 or 4 report names
    const r = parseReport(b);
    expect(r.version).to.equal(4);
    expect(r.cpuid).to.not.equal(undefined);
    expect(r.mitigations).to.equal(undefined);
  });

  it('reads a version 3 report naming family 1Ah in Turin\'s TCB layout: a Milan TCB there sets a byte Turin reserves (EVIDENCE_MALFORMED)', () => {
    const b = new Uint8Array(virtee.report);
    new DataView(b.buffer).setUint32(0, 3, true);
    b.set(Uint8Array.of(0x19, 0x11, 0x01), 0x188); // Genoa
    expect(parseReport(b).cpuid).to.deep.equal({ family: 0x19, model: 0x11, stepping: 1 });
    b[0x188] = 0x1a;
    // Milan's SNP level sits in byte 6, which Turin's layout reserves: never read as another component's.
    expect(() => parseReport(b)).to.throw(CertifierError, /at 0x3e, reserved in its CURRENT_TCB \(bytes 4 to 6 of a Turin TCB_VERSION\)/).with.property('code', 'EVIDENCE_MALFORMED');
    for (const tcb of [0x38, 0x180, 0x1e0, 0x1f0]) b.set(Uint8Array.of(0x00, 0x03, 0x00, 0x18, 0, 0, 0, 0x73), tcb);
    expect(parseReport(b).reportedTcb).to.include({ fmc: 0, bootloader: 3, tee: 0, snp: 0x18, microcode: 0x73 });
  });

  it('refuses a version 3 report naming a CPU family other than 19h and 1Ah by name (SNP_CPU_UNKNOWN): no TCB layout is known for it, and it is read in neither of theirs', () => {
    const b = new Uint8Array(virtee.report);
    new DataView(b.buffer).setUint32(0, 3, true);
    b.set(Uint8Array.of(0x1b, 0x02, 0x01), 0x188);
    const r = refusalOf(() => parseReport(b));
    expect(r.code).to.equal('SNP_CPU_UNKNOWN');
    expect(r.message).to.equal('the SEV-SNP report comes from a CPU of family 1Bh (model 02h, stepping 1), which this verifier does not know: it reads the reports of family 19h (Milan, Genoa) and 1Ah (Turin) CPUs, each in its own TCB layout, and no other');
    b.fill(0, 0x188, 0x18b);
    expect(refusalOf(() => parseReport(b)).message, 'a version 3 report names its CPU: zeros are no family').to.contain('family 0h');
  });

  it('refuses an unknown report version by name with SNP_REPORT_VERSION', () => {
    for (const version of [0, 1, 6, 255]) {
      const b = new Uint8Array(virtee.report);
      new DataView(b.buffer).setUint32(0, version, true);
      let e: unknown;
      try {
        parseReport(b);
      } catch (x) {
        e = x;
      }
      expect(e, `version ${version}`).to.be.instanceOf(CertifierError).with.property('code', 'SNP_REPORT_VERSION');
      expect((e as Error).message).to.contain(`version ${version} is not supported`);
    }
  });
});
