// A host's attacks on the SEV-SNP evidence check, as data: each attempt changes what a hostile
// hypervisor controls (the report bytes it hands over, the certificates, the certificate table)
// and names the outcome the verifier must give, `ok` where the change is harmless by design.
// Reports that must verify up to the point refused are signed again by the test signer's VCEK.

import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { CertifierError } from '../../lib/errors/index.ts';
import { generateKeyPair, publicKeyOf, randomBytes, toKeyMessage } from '../../lib/crypto/index.ts';
import { decode, encode } from '../../lib/wire/index.ts';
import { evaluate, formatCertifierTime, loadPolicy, makePolicy, SEV_SNP_PLATFORM, type Policy } from '../../lib/policy/index.ts';
import { CERT_GUIDS, parseCertTable, pinnedAmdCerts, pinnedArk, reportDataFor, SIGNED_BYTES, trustedCrls, verifyEvidence, verifySnpReport, type VerifiedAmdCrl } from '../../lib/attest/index.ts';
import { NOW, snpSupport, vector } from './support.ts';
import { TestSnpSigner } from './signer.ts';

const DAY = 86_400_000;
const MEASUREMENT = randomBytes(48);
/** The order of P-384. */
const N = 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n;

type Outcome = string; // an error code, or 'ok'

function outcome(f: () => unknown): Outcome {
  try {
    const r = f() as { allow?: boolean; code?: string } | undefined;
    return r && r.allow === false ? r.code! : 'ok';
  } catch (e) {
    if (!(e instanceof CertifierError)) throw e;
    return e.code;
  }
}

/** An attempt: what the host does, the outcome it must get, and the attempt. */
type Attempt = [string, Outcome, () => Outcome];
/** The attempts whose outcome is not the one named, each with what it got. */
const wrongOutcomes = (attempts: Attempt[]) => attempts.map(([what, want, f]) => [what, want, f()]).filter(([, want, got]) => got !== want).map(([what, want, got]) => `${what}: ${got}, not ${want}`);

const u32 = (b: Uint8Array, at: number, v: number) => new DataView(b.buffer, b.byteOffset).setUint32(at, v >>> 0, true);
const u64 = (b: Uint8Array, at: number, v: bigint) => new DataView(b.buffer, b.byteOffset).setBigUint64(at, v, true);
/** A number as the report stores r and s: 72 bytes little-endian. */
const le72 = (n: bigint) => Uint8Array.from(Buffer.from(n.toString(16).padStart(144, '0'), 'hex').reverse());
const readLe = (b: Uint8Array, at: number) => BigInt(`0x${Buffer.from(b.subarray(at, at + 48)).reverse().toString('hex')}`);

describe('SEV-SNP: a hostile host\'s attempts, each with the outcome it must get', () => {
  let s: TestSnpSigner;
  let policy: Policy;
  let said: Uint8Array;
  let good: Uint8Array;

  before(async () => {
    s = TestSnpSigner.create({ now: NOW });
    const policyKey = await generateKeyPair('p256');
    policy = loadPolicy(makePolicy({
      policyKey: policyKey.privateKey, platforms: [], measurements: [MEASUREMENT],
      platformRoots: [{ platformType: SEV_SNP_PLATFORM, certificate: s.ark, name: 'ARK-TEST' }],
      platformProperties: [{ platformType: SEV_SNP_PLATFORM, requirements: [
        { name: 'tcb-bootloader', comparator: '>=', value: 3 }, { name: 'tcb-tee', comparator: '>=', value: 0 },
        { name: 'tcb-snp', comparator: '>=', value: 8 }, { name: 'tcb-microcode', comparator: '>=', value: 115 },
      ] }],
      notBefore: new Date(NOW.getTime() - DAY), notAfter: new Date(NOW.getTime() + DAY),
    }), policyKey.publicKey);
    const machine = await generateKeyPair('p256');
    said = encode('attestation_user_data', { enclaveType: 'sev-enclave', time: formatCertifierTime(NOW), enclaveKey: toKeyMessage(publicKeyOf(machine.privateKey), 'auth-key') });
    good = s.report({ reportData: reportDataFor(said), measurement: MEASUREMENT });
  });

  /** The whole check simpleserver makes: verification to the signer's root, then the policy. */
  const decide = (report: Uint8Array, certs = [s.vcek, s.ask], o: { userData?: Uint8Array; roots?: Uint8Array[]; crls?: VerifiedAmdCrl[]; at?: Date } = {}) => outcome(() => {
    const at = o.at ?? NOW;
    const facts = verifyEvidence(snpSupport(report, o.userData ?? said, certs), { at, snpRoots: o.roots ?? [s.ark], ...(o.crls ? { snpCrls: o.crls } : {}) });
    return evaluate(policy, facts, { at, purpose: 'authentication' });
  });
  /** The good report with `change` made to it, then signed again by the VCEK (or VLEK): a report the firmware could have signed. */
  const resigned = (change: (b: Uint8Array) => void, kind: 'vcek' | 'vlek' = 'vcek') => {
    const b = new Uint8Array(good);
    change(b);
    return s.resign(b, kind);
  };
  const changed = (change: (b: Uint8Array) => void) => {
    const b = new Uint8Array(good);
    change(b);
    return b;
  };

  it('admits the unchanged evidence (so each attempt below is about its one change)', () => {
    expect(decide(good)).to.equal('ok');
  });

  it('report fields: version, signature algorithm, VMPL, guest policy, flags, reserved bytes', () => {
    const attempts: Attempt[] = [
      ['VERSION 1 (older than any layout read)', 'SNP_REPORT_VERSION', () => decide(resigned((b) => u32(b, 0, 1)))],
      ['VERSION 6 (newer)', 'SNP_REPORT_VERSION', () => decide(resigned((b) => u32(b, 0, 6)))],
      ['VERSION 0xFFFFFFFF', 'SNP_REPORT_VERSION', () => decide(resigned((b) => u32(b, 0, 0xffffffff)))],
      ['SIGNATURE_ALGO 0', 'EVIDENCE_MALFORMED', () => decide(resigned((b) => u32(b, 0x34, 0)))],
      ['SIGNATURE_ALGO 2', 'EVIDENCE_MALFORMED', () => decide(resigned((b) => u32(b, 0x34, 2)))],
      ['VMPL 1 while the policy leaves vmpl = 0', 'PLATFORM_PROPERTY_DENIED', () => decide(resigned((b) => u32(b, 0x30, 1)))],
      ['VMPL 4', 'EVIDENCE_MALFORMED', () => decide(resigned((b) => u32(b, 0x30, 4)))],
      ['VMPL 0xFFFFFFFF (a report the host asked for)', 'EVIDENCE_MALFORMED', () => decide(resigned((b) => u32(b, 0x30, 0xffffffff)))],
      ['guest policy DEBUG', 'PLATFORM_PROPERTY_DENIED', () => decide(resigned((b) => u64(b, 0x08, 0x30000n | (1n << 19n))))],
      ['guest policy MIGRATE_MA', 'PLATFORM_PROPERTY_DENIED', () => decide(resigned((b) => u64(b, 0x08, 0x30000n | (1n << 18n))))],
      ['guest policy SMT not allowed, single socket (stricter, a policy may require either)', 'ok', () => decide(resigned((b) => u64(b, 0x08, 0x20000n | (1n << 20n))))],
      ['guest policy bit 17 clear', 'EVIDENCE_MALFORMED', () => decide(resigned((b) => u64(b, 0x08, 0x10000n)))],
      ['guest policy bit 26 set', 'EVIDENCE_MALFORMED', () => decide(resigned((b) => u64(b, 0x08, 0x30000n | (1n << 26n))))],
      ['guest policy bit 63 set', 'EVIDENCE_MALFORMED', () => decide(resigned((b) => u64(b, 0x08, 0x30000n | (1n << 63n))))],
      ['PLATFORM_INFO bit 40 (the host\'s setup, not refused by design)', 'ok', () => decide(resigned((b) => u64(b, 0x40, 1n | (1n << 40n))))],
      ['flags bit 5 (reserved)', 'EVIDENCE_MALFORMED', () => decide(resigned((b) => u32(b, 0x48, 1 << 5)))],
      ['AUTHOR_KEY_EN with no author key digest', 'ok', () => decide(resigned((b) => u32(b, 0x48, 1)))],
      ['SIGNING_KEY 7 ("none")', 'EVIDENCE_MALFORMED', () => decide(resigned((b) => u32(b, 0x48, 7 << 2)))],
      ['SIGNING_KEY 2 (reserved)', 'EVIDENCE_MALFORMED', () => decide(resigned((b) => u32(b, 0x48, 2 << 2)))],
      ['reserved 0x4C', 'EVIDENCE_MALFORMED', () => decide(resigned((b) => { b[0x4c] = 1; }))],
      ['reserved 0x18B (after CPUID, version 3)', 'EVIDENCE_MALFORMED', () => decide(resigned((b) => { b[0x18b] = 1; }))],
      ['reserved 0x1EB (after CURRENT_MAJOR)', 'EVIDENCE_MALFORMED', () => decide(resigned((b) => { b[0x1eb] = 1; }))],
      ['reserved 0x1EF (after COMMITTED_MAJOR)', 'EVIDENCE_MALFORMED', () => decide(resigned((b) => { b[0x1ef] = 1; }))],
      ['reserved 0x29F (last signed byte)', 'EVIDENCE_MALFORMED', () => decide(resigned((b) => { b[0x29f] = 1; }))],
      ['0x1F8 in a version 3 report (reserved)', 'EVIDENCE_MALFORMED', () => decide(resigned((b) => { b[0x1f8] = 1; }))],
      ['0x1F8 in a version 5 report (its mitigation vectors)', 'ok', () => decide(resigned((b) => { u32(b, 0, 5); b[0x1f8] = 1; }))],
      ['0x1F8 in a version 4 report (read as version 5 is there, as firmware issuing it may fill them)', 'ok', () => decide(resigned((b) => { u32(b, 0, 4); b[0x1f8] = 1; }))],
      ['0x208 in a version 5 report (reserved after the mitigation vectors)', 'EVIDENCE_MALFORMED', () => decide(resigned((b) => { u32(b, 0, 5); b[0x208] = 1; }))],
      ['reserved byte 2 of CURRENT_TCB', 'EVIDENCE_MALFORMED', () => decide(resigned((b) => { b[0x3a] = 1; }))],
      // A family other than 19h (Milan, Genoa) and 1Ah (Turin) has no TCB layout known here: never read in one of theirs.
      ['CPUID family 1Bh', 'SNP_CPU_UNKNOWN', () => decide(resigned((b) => { b[0x188] = 0x1b; }))],
      ['CPUID family 17h (Zen 2, no SEV-SNP)', 'SNP_CPU_UNKNOWN', () => decide(resigned((b) => { b[0x188] = 0x17; }))],
      ['CPUID zero in a version 3 report', 'SNP_CPU_UNKNOWN', () => decide(resigned((b) => b.fill(0, 0x188, 0x18b)))],
      ['CPUID family 19h, another model and stepping (the family decides the layout)', 'ok', () => decide(resigned((b) => b.set([0x19, 0x11, 0x02], 0x188)))],
    ];
    expect(wrongOutcomes(attempts)).to.deep.equal([]);
  });

  it('report fields: signing key kind, CHIP_ID, TCBs, REPORT_DATA, MEASUREMENT', () => {
    const lower = { bootloader: 3, tee: 0, snp: 7, microcode: 115 };
    const other = TestSnpSigner.create({ now: NOW });
    const lowerTcb = Uint8Array.of(3, 0, 0, 0, 0, 0, 7, 115);
    const attempts: Attempt[] = [
      ['SIGNING_KEY VLEK, signed by the VCEK, VCEK sent', 'SNP_VCEK_MISMATCH', () => decide(resigned((b) => u32(b, 0x48, 1 << 2)))],
      ['SIGNING_KEY VLEK, signed by the VLEK, VCEK sent', 'SNP_VCEK_MISMATCH', () => decide(resigned((b) => u32(b, 0x48, 1 << 2), 'vlek'))],
      ['SIGNING_KEY VCEK, VLEK sent', 'SNP_VCEK_MISMATCH', () => decide(good, [s.vlek, s.asvk])],
      ['SIGNING_KEY VCEK, VLEK and VCEK sent', 'EVIDENCE_MALFORMED', () => decide(good, [s.vcek, s.vlek, s.ask, s.asvk])],
      ['a VCEK of a product not known here (Venice), no fmcSPL', 'SNP_CPU_UNKNOWN', () => decide(good, [s.shapedVcek(s.tcb, s.chipId, undefined, 'Venice-A0'), s.ask])],
      ['a VCEK naming Turin, no fmcSPL', 'BAD_CERTIFICATE', () => decide(good, [s.shapedVcek(s.tcb, s.chipId, undefined, 'Turin'), s.ask])],
      ['a VCEK naming Genoa, Bergamo or Siena (family 19h, as AMD names Genoa\'s)', 'ok', () => ['Genoa', 'Bergamo-A0', 'Siena-A0'].map((n) => decide(good, [s.shapedVcek(s.tcb, s.chipId, undefined, n), s.ask])).find((o) => o !== 'ok') ?? 'ok'],
      ['MASK_CHIP_KEY set', 'SNP_VCEK_MISMATCH', () => decide(resigned((b) => u32(b, 0x48, 2)))],
      ['CHIP_ID of another chip', 'SNP_VCEK_MISMATCH', () => decide(resigned((b) => b.set(randomBytes(64), 0x1a0)))],
      ['CHIP_ID masked (zeros): the VCEK\'s signature names the chip', 'ok', () => decide(resigned((b) => b.fill(0, 0x1a0, 0x1e0)))],
      ['CHIP_ID masked, another chip\'s VCEK', 'REPORT_INVALID', () => decide(resigned((b) => b.fill(0, 0x1a0, 0x1e0)), [other.vcek, other.ask], { roots: [s.ark, other.ark] })],
      ['REPORTED_TCB above the VCEK\'s', 'SNP_TCB_MISMATCH', () => decide(resigned((b) => { b[0x187] = 116; }))],
      ...(['bootloader', 'tee', 'snp', 'microcode'] as const).flatMap((k): Attempt[] => [-1, 1].filter((d) => s.tcb[k] + d >= 0).map((d) => [`a VCEK of the same chip whose ${k} level is ${d > 0 ? 'above' : 'below'} REPORTED_TCB's`, 'SNP_TCB_MISMATCH', () => decide(good, [s.vcekFor({ ...s.tcb, [k]: s.tcb[k] + d }), s.ask])])),
      ['REPORTED_TCB below the minimum, with its own VCEK', 'PLATFORM_PROPERTY_DENIED', () => decide(resigned((b) => b.set(lowerTcb, 0x180)), [s.vcekFor(lower), s.ask])],
      // The firmware writes CURRENT_TCB, and derives the VCEK of REPORTED_TCB only at or below it.
      ['CURRENT_TCB and COMMITTED_TCB below the minimum, REPORTED_TCB at it', 'ok', () => decide(resigned((b) => { b.set(lowerTcb, 0x38); b.set(lowerTcb, 0x1e0); }))],
      ['LAUNCH_TCB below the minimum (not checked unless the policy names launch-tcb-*)', 'ok', () => decide(resigned((b) => b.set(lowerTcb, 0x1f0)))],
      ['REPORT_DATA of another request', 'SNP_REPORT_DATA_MISMATCH', () => decide(resigned((b) => b.set(randomBytes(64), 0x50)))],
      ['REPORT_DATA: SHA-384, then a nonzero tail', 'SNP_REPORT_DATA_MISMATCH', () => decide(resigned((b) => { b[0x50 + 63] = 1; }))],
      ['REPORT_DATA: SHA-512 of the user data', 'ok', () => decide(resigned((b) => b.set(createHash('sha512').update(said).digest(), 0x50)))],
      ['REPORT_DATA: SHA-384 of the user data with a byte changed after it', 'SNP_REPORT_DATA_MISMATCH', () => decide(good, undefined, { userData: Uint8Array.from([...said.subarray(0, -1), said[said.length - 1]! ^ 1]) })],
      ['MEASUREMENT other than the policy\'s', 'MEASUREMENT_NOT_TRUSTED', () => decide(resigned((b) => b.set(randomBytes(48), 0x90)))],
      ...([
        ['a time that is none', { time: 'yesterday' }], ['no time', { time: undefined }], ['another enclave type', { enclaveType: 'simulated-enclave' }], ['no enclave key', { enclaveKey: undefined }],
      ] as const).map(([what, change]): Attempt => {
        const ud = encode('attestation_user_data', { ...decode<Record<string, unknown>>('attestation_user_data', said), ...change });
        return [`user data with ${what}, bound by REPORT_DATA`, 'EVIDENCE_MALFORMED', () => decide(resigned((b) => b.set(reportDataFor(ud), 0x50)), undefined, { userData: ud })];
      }),
    ];
    expect(wrongOutcomes(attempts)).to.deep.equal([]);
  });

  it('report fields on Turin: the 8-byte hwID, the FMC level, Turin\'s reserved TCB bytes', () => {
    const t = TestSnpSigner.create({ now: NOW, product: 'turin' });
    const report = t.report({ reportData: randomBytes(64), measurement: MEASUREMENT });
    const verified = (r: Uint8Array, certs = [t.vcek, t.ask]) => outcome(() => verifySnpReport({ report: r, certs, at: NOW, roots: [t.ark] }));
    const turin = (change: (b: Uint8Array) => void) => {
      const b = new Uint8Array(report);
      change(b);
      return t.resign(b);
    };
    const attempts: Attempt[] = [
      ['as made', 'ok', () => verified(report)],
      ['CHIP_ID with a byte set after its first 8', 'SNP_VCEK_MISMATCH', () => verified(turin((b) => { b[0x1a0 + 8] = 1; }))],
      ['CHIP_ID of another chip in its first 8', 'SNP_VCEK_MISMATCH', () => verified(turin((b) => { b[0x1a0]! ^= 1; }))],
      ['CHIP_ID masked', 'ok', () => verified(turin((b) => b.fill(0, 0x1a0, 0x1e0)))],
      ['a VCEK with all 64 bytes of CHIP_ID as hwID', 'SNP_VCEK_MISMATCH', () => verified(report, [t.shapedVcek(t.tcb, t.chipId, 0), t.ask])],
      ['a family 19h VCEK (no fmcSPL)', 'SNP_VCEK_MISMATCH', () => verified(report, [t.shapedVcek(t.tcb, t.chipId.subarray(0, 8)), t.ask])],
      // The VCEK's product decides its CPU: a name this verifier does not know is no family of its own.
      ['a VCEK of a product not known here (Venice), with fmcSPL', 'SNP_CPU_UNKNOWN', () => verified(report, [t.shapedVcek(t.tcb, t.chipId.subarray(0, 8), 0, 'Venice-A0'), t.ask])],
      ['a VCEK naming Milan, with fmcSPL', 'BAD_CERTIFICATE', () => verified(report, [t.shapedVcek(t.tcb, t.chipId.subarray(0, 8), 0, 'Milan-B0'), t.ask])],
      ['a VCEK naming Turin as AMD does (no stepping)', 'ok', () => verified(report, [t.shapedVcek(t.tcb, t.chipId.subarray(0, 8), 0, 'Turin'), t.ask])],
      ['a VCEK of another FMC level', 'SNP_TCB_MISMATCH', () => verified(report, [t.shapedVcek(t.tcb, t.chipId.subarray(0, 8), 1), t.ask])],
      ['byte 4 of REPORTED_TCB (reserved in Turin\'s layout)', 'EVIDENCE_MALFORMED', () => verified(turin((b) => { b[0x184] = 1; }))],
      // Not malformed: a Turin TCB in a report version read in Milan's and Genoa's layout only (as a Turin VCEK on it is).
      ['version 2 (no CPUID, read as family 19h: Turin\'s SNP level lands in a byte that layout reserves)', 'SNP_REPORT_VERSION', () => verified(turin((b) => { u32(b, 0, 2); b.fill(0, 0x188, 0x18b); }))],
    ];
    expect(wrongOutcomes(attempts)).to.deep.equal([]);
  });

  it('admits no report with a byte the signature does not cover (0x2A0 on) changed: each is r, s, or checked to be zero', () => {
    const admitted = [];
    for (let at = SIGNED_BYTES; at < good.length; at++) {
      if (decide(changed((b) => { b[at]! ^= 0x01; })) === 'ok') admitted.push(`0x${at.toString(16)}`);
    }
    expect(admitted).to.deep.equal([]);
  });

  it('signature: encoding of r and s, values out of range, the range signed', () => {
    const r = readLe(good, 0x2a0);
    const sv = readLe(good, 0x2e8);
    const withSig = (rr: Uint8Array, ss: Uint8Array) => changed((b) => { b.set(rr, 0x2a0); b.set(ss, 0x2e8); });
    /** The good report's bytes 0..end signed with `hash`, r and s stored as the report stores them. */
    const signedOver = (end: number, hash = 'sha384') => {
      const sig = s.vcekSignature(good.subarray(0, end), hash);
      return withSig(Uint8Array.from(sig.subarray(0, 48)).reverse(), Uint8Array.from(sig.subarray(48)).reverse());
    };
    const attempts: Attempt[] = [
      ['r = 0', 'REPORT_INVALID', () => decide(withSig(le72(0n), le72(sv)))],
      ['s = 0', 'REPORT_INVALID', () => decide(withSig(le72(r), le72(0n)))],
      ['r = s = 0', 'REPORT_INVALID', () => decide(withSig(le72(0n), le72(0n)))],
      ['r = n', 'REPORT_INVALID', () => decide(withSig(le72(N), le72(sv)))],
      ['s = n', 'REPORT_INVALID', () => decide(withSig(le72(r), le72(N)))],
      ['r + n (when it fits in 48 bytes) or r + 2^384 (in the padding)', r + N < 2n ** 384n ? 'REPORT_INVALID' : 'EVIDENCE_MALFORMED', () => decide(withSig(le72(r + N < 2n ** 384n ? r + N : r + 2n ** 384n), le72(sv)))],
      ['(r, n - s): the same signature', 'ok', () => decide(withSig(le72(r), le72(N - sv)))],
      ['r and s big-endian', 'REPORT_INVALID', () => decide(withSig(Uint8Array.of(...le72(r).subarray(0, 48).reverse(), ...new Uint8Array(24)), Uint8Array.of(...le72(sv).subarray(0, 48).reverse(), ...new Uint8Array(24))))],
      ['r and s swapped', 'REPORT_INVALID', () => decide(withSig(le72(sv), le72(r)))],
      ['a byte in r\'s zero padding', 'EVIDENCE_MALFORMED', () => decide(changed((b) => { b[0x2a0 + 71] = 1; }))],
      ['a byte after s (reserved, unsigned)', 'EVIDENCE_MALFORMED', () => decide(changed((b) => { b[0x49f] = 1; }))],
      ['signed over 0x000-0x29E (one byte short)', 'REPORT_INVALID', () => decide(signedOver(SIGNED_BYTES - 1))],
      ['signed over the whole 1184 bytes (signature area zero)', 'REPORT_INVALID', () => decide(signedOver(good.length))],
      ['signed with SHA-512', 'REPORT_INVALID', () => decide(signedOver(SIGNED_BYTES, 'sha512'))],
      ['signed over 0x000-0x29F with SHA-384 (as the firmware does)', 'ok', () => decide(signedOver(SIGNED_BYTES))],
    ];
    expect(wrongOutcomes(attempts)).to.deep.equal([]);
  });

  it('chain: another product\'s ASK or root, a VCEK under another ASK, an ARK sent along, a root not trusted', () => {
    const virtee = vector('milan-virtee-sev');
    const genoa = pinnedAmdCerts().find((p) => p.product === 'genoa')!;
    const other = TestSnpSigner.create({ now: NOW });
    const real = (certs: Uint8Array[], roots?: Uint8Array[]) => outcome(() => verifySnpReport({ report: virtee.report, certs, at: NOW, ...(roots ? { roots } : {}) }));
    const attempts: Attempt[] = [
      ['a real Milan report with its VCEK (pinned roots)', 'ok', () => real([virtee.vcek])],
      ['the same with Genoa\'s ASK sent along (passed over)', 'ok', () => real([virtee.vcek, genoa.ask])],
      ['the same under Genoa\'s ARK alone', 'SNP_CHAIN_UNTRUSTED', () => real([virtee.vcek], [pinnedArk('genoa')])],
      ['the same with Genoa\'s ARK sent along as if an anchor', 'SNP_CHAIN_UNTRUSTED', () => real([virtee.vcek, genoa.ark], [pinnedArk('genoa')])],
      ['another signer\'s VCEK (same names) under its own ASK', 'SNP_CHAIN_UNTRUSTED', () => decide(good, [other.vcek, other.ask])],
      ['another signer\'s VCEK with our ASK', 'SNP_CHAIN_UNTRUSTED', () => decide(good, [other.vcek, s.ask])],
      ['our VCEK and ASK, its ARK sent along, the root not trusted', 'SNP_CHAIN_UNTRUSTED', () => decide(good, [s.vcek, s.ask, s.ark], { roots: [pinnedArk('milan')] })],
      ['our ASK as the signing key', 'EVIDENCE_MALFORMED', () => decide(good, [s.ask])],
      ['the ARK as the ASK', 'SNP_CHAIN_UNTRUSTED', () => decide(good, [s.vcek, s.ark])],
      ['VCEK, ASK, ASVK and ARK: the most a host\'s table and KDS\'s chain give', 'ok', () => decide(good, [s.vcek, s.ask, s.asvk, s.ark])],
      // Each certificate named as the VCEK's issuer costs a signature check with its key (RSA, up
      // to 16384 bits): 64 KiB of them cost the server thirty times a request's work.
      ['a fifth certificate (another ASK of the same name)', 'EVIDENCE_MALFORMED', () => decide(good, [s.vcek, other.ask, s.ask, s.asvk, s.ark])],
      ['the certificates in another order: ARK, ASVK, ASK, VCEK', 'ok', () => decide(good, [s.ark, s.asvk, s.ask, s.vcek])],
      ['a real Milan report with Milan\'s, Genoa\'s and Turin\'s ASKs sent along', 'ok', () => real([...pinnedAmdCerts().map((p) => p.ask).reverse(), virtee.vcek])],
      ...(['genoa', 'turin'] as const).map((p): Attempt => [`the same under ${p}'s ARK, with its ASK sent along`, 'SNP_CHAIN_UNTRUSTED', () => real([virtee.vcek, pinnedAmdCerts().find((c) => c.product === p)!.ask], [pinnedArk(p)])]),
    ];
    expect(wrongOutcomes(attempts)).to.deep.equal([]);
  });

  it('revocation: a list stale, unsigned, signed by another root or by the ASK, one listing the ASK, and none', () => {
    const other = TestSnpSigner.create({ now: NOW });
    /** Lists as simpleserver takes them (--amd-crl), against the roots it trusts, then the evidence under them. */
    const under = (crl: Uint8Array, o: { at?: Date } = {}) => {
      let crls: VerifiedAmdCrl[] = [];
      const load = outcome(() => { crls = trustedCrls([{ source: 'amd.crl', bytes: crl }], [s.ark, pinnedArk('milan')], NOW); });
      return load !== 'ok' ? load : decide(good, undefined, { crls, ...(o.at ? { at: o.at } : {}) });
    };
    const unsigned = (crl: Uint8Array) => Uint8Array.from([...crl.subarray(0, -256), ...new Uint8Array(256)]);
    const attempts: Attempt[] = [
      ['no list: nothing is checked, as the README says', 'ok', () => decide(good)],
      ['a current list without the ASK', 'ok', () => under(s.crl({ revoked: [9] }))],
      ['a list revoking the ASK (serial 2)', 'SNP_CHAIN_UNTRUSTED', () => under(s.crl({ revoked: [2] }))],
      ['a list revoking only the ARK (serial 1): not a path\'s intermediate', 'ok', () => under(s.crl({ revoked: [1] }))],
      ['a list past its next update, at load', 'SNP_CRL_STALE', () => under(s.crl({ nextUpdate: new Date(NOW.getTime() - 1000) }))],
      ['a list that goes stale while in use', 'SNP_CRL_STALE', () => under(s.crl(), { at: new Date(NOW.getTime() + 8 * DAY) })],
      ['a list dated an hour ahead of the clock', 'SNP_CRL_STALE', () => under(s.crl({ thisUpdate: new Date(NOW.getTime() + 3600_000) }))],
      ['a list whose signature is zeros', 'INVALID_INPUT', () => under(unsigned(s.crl()))],
      ['a list under the ARK\'s name signed by another root\'s key', 'INVALID_INPUT', () => under(other.crl({ revoked: [] }))],
      ['a list under the ARK\'s name signed by the ASK', 'INVALID_INPUT', () => under(s.crl({ signer: 'ask' }))],
      ['a list with a critical extension it does not process', 'INVALID_INPUT', () => under(s.crl({ criticalExtension: true }))],
    ];
    expect(wrongOutcomes(attempts)).to.deep.equal([]);
  });

  it('replay: evidence bound to another TLS session, or sent again a day later', async () => {
    const machine = await generateKeyPair('p256');
    const session = randomBytes(32);
    const bound = encode('attestation_user_data', { enclaveType: 'sev-enclave', time: formatCertifierTime(NOW), enclaveKey: toKeyMessage(publicKeyOf(machine.privateKey), 'auth-key'), sessionBinding: session });
    const report = s.report({ reportData: reportDataFor(bound), measurement: MEASUREMENT });
    const replayed = (o: { binding?: Uint8Array; sessionless?: boolean; at?: Date }) => outcome(() => {
      const at = o.at ?? NOW;
      const facts = verifyEvidence(snpSupport(report, bound, [s.vcek, s.ask]), { at, snpRoots: [s.ark] });
      return evaluate(policy, facts, { at, purpose: 'authentication', ...(o.binding ? { expectedBinding: o.binding } : {}), ...(o.sessionless ? { sessionless: true } : {}) });
    });
    const attempts: Attempt[] = [
      ['on the session it was made for', 'ok', () => replayed({ binding: session })],
      ['on another TLS session', 'SESSION_MISMATCH', () => replayed({ binding: randomBytes(32) })],
      ['over the plain protocol', 'SESSION_MISMATCH', () => replayed({ sessionless: true })],
      ['on its own session, a day and a minute after its time', 'CLAIM_EXPIRED', () => replayed({ binding: session, at: new Date(NOW.getTime() + DAY + 6 * 60_000) })],
    ];
    expect(wrongOutcomes(attempts)).to.deep.equal([]);
  });

  it('parsing: report sizes, and the host\'s certificate table', () => {
    const table = (entries: [string, number, number][], body = 64) => {
      const head = new Uint8Array((entries.length + 1) * 24);
      entries.forEach(([guid, offset, length], i) => {
        head.set(Buffer.from(guid.replace(/-/g, ''), 'hex'), i * 24);
        u32(head, i * 24 + 16, offset);
        u32(head, i * 24 + 20, length);
      });
      return Uint8Array.from([...head, ...new Uint8Array(body).fill(0x30)]);
    };
    const start = 3 * 24;
    const parsed = (t: Uint8Array) => outcome(() => parseCertTable(t));
    const attempts: Attempt[] = [
      ['a report of 1183 bytes', 'EVIDENCE_MALFORMED', () => decide(good.subarray(0, 1183))],
      ['a report of 1185 bytes', 'EVIDENCE_MALFORMED', () => decide(Uint8Array.from([...good, 0]))],
      ['a report of 2368 bytes (two)', 'EVIDENCE_MALFORMED', () => decide(Uint8Array.from([...good, ...good]))],
      ['two entries over the same bytes (each is still verified as what it claims)', 'ok', () => parsed(table([[CERT_GUIDS.vcek, start, 32], [CERT_GUIDS.ask, start + 16, 32]]))],
      ['a GUID twice', 'EVIDENCE_MALFORMED', () => parsed(table([[CERT_GUIDS.vcek, start, 32], [CERT_GUIDS.vcek, start + 32, 32]]))],
      ['a zero length', 'EVIDENCE_MALFORMED', () => parsed(table([[CERT_GUIDS.vcek, start, 0], [CERT_GUIDS.ask, start, 32]]))],
      ['an entry past the end', 'EVIDENCE_MALFORMED', () => parsed(table([[CERT_GUIDS.vcek, start, 65], [CERT_GUIDS.ask, start, 32]]))],
      ['an offset of 2^32 - 1 (no wrap)', 'EVIDENCE_MALFORMED', () => parsed(table([[CERT_GUIDS.vcek, 0xffffffff, 2], [CERT_GUIDS.ask, start, 32]]))],
      ['an entry over the list of entries', 'EVIDENCE_MALFORMED', () => parsed(table([[CERT_GUIDS.vcek, 0, 32], [CERT_GUIDS.ask, start, 32]]))],
      ['no terminator', 'EVIDENCE_MALFORMED', () => parsed(table([[CERT_GUIDS.vcek, start, 32], [CERT_GUIDS.ask, start, 32]], 0).subarray(0, 48))],
    ];
    expect(wrongOutcomes(attempts)).to.deep.equal([]);
  });
});
