// SEV-SNP in the signed policy: AMD roots and platform properties as Certifier claims, their
// loading (fail closed on anything incomplete), and their evaluation with fail-closed defaults:
// debug and migration agent refused, VMPL 0, a minimum TCB, optional host data or ID-key digest,
// and a property the policy names but the evidence lacks is a denial.

import { expect } from 'chai';
import { CertifierError } from '../../lib/errors/index.ts';
import { generateKeyPair, publicKeyOf, randomBytes, toHex, toKeyMessage } from '../../lib/crypto/index.ts';
import { encode, type SignedClaimSequence } from '../../lib/wire/index.ts';
import {
  evaluate, formatCertifierTime, loadPolicy, makePolicy, keyEntity, saysClause, signClaim, propertiesEntity,
  versionNumber, SEV_SNP_PLATFORM, type Decision, type Requirement,
} from '../../lib/policy/index.ts';
import { parseReport, pinnedArk, reportDataFor, snpProperties, verifyEvidence } from '../../lib/attest/index.ts';
import { NOW, snpSupport } from './support.ts';
import { TestSnpSigner, type ReportFields } from './signer.ts';
import { joinPolicies } from '../support/policies.ts';

const DAY = 86_400_000;
const MEASUREMENT = randomBytes(48);
const TCB: Requirement[] = [
  { name: 'tcb-bootloader', comparator: '>=', value: 3 }, { name: 'tcb-tee', comparator: '>=', value: 0 },
  { name: 'tcb-snp', comparator: '>=', value: 8 }, { name: 'tcb-microcode', comparator: '>=', value: 115 },
];

describe('SEV-SNP policy: roots and platform properties', () => {
  let signer: TestSnpSigner;
  let policyKey: Awaited<ReturnType<typeof generateKeyPair>>;
  before(async () => {
    signer = TestSnpSigner.create({ now: NOW });
    policyKey = await generateKeyPair('p256');
  });

  const window = () => ({ notBefore: new Date(NOW.getTime() - DAY), notAfter: new Date(NOW.getTime() + DAY) });
  const policyBytes = (o: { roots?: Uint8Array[]; requirements?: Requirement[] | null } = {}) => makePolicy({
    policyKey: policyKey.privateKey, platforms: [], measurements: [MEASUREMENT],
    platformRoots: (o.roots ?? [signer.ark]).map((certificate) => ({ platformType: SEV_SNP_PLATFORM, certificate, name: 'ARK' })),
    ...(o.requirements === null ? {} : { platformProperties: [{ platformType: SEV_SNP_PLATFORM, requirements: o.requirements ?? TCB }] }),
    ...window(),
  });

  async function decide(policy: Uint8Array, fields: Partial<ReportFields> = {}): Promise<Decision> {
    const machine = await generateKeyPair('p256');
    const said = encode('attestation_user_data', { enclaveType: 'sev-enclave', time: formatCertifierTime(NOW), enclaveKey: toKeyMessage(publicKeyOf(machine.privateKey)) });
    const report = signer.report({ reportData: reportDataFor(said), measurement: MEASUREMENT, ...fields });
    const facts = verifyEvidence(snpSupport(report, said, [signer.vcek, signer.ask]), { at: NOW, snpRoots: [signer.ark] });
    return evaluate(loadPolicy(policy, policyKey.publicKey), facts, { at: NOW, purpose: 'authentication' });
  }

  it('writes roots and properties as Certifier claims and reads them back', () => {
    const p = loadPolicy(policyBytes({ roots: [pinnedArk('milan')] }), policyKey.publicKey);
    expect(p.platforms).to.have.length(1);
    expect(p.platforms[0]).to.include({ platformType: SEV_SNP_PLATFORM });
    expect(toHex(p.platforms[0]!.certificate!)).to.equal(toHex(pinnedArk('milan')));
    expect(p.properties).to.have.length(1);
    expect(p.properties[0]!.requirements).to.deep.equal(TCB);
    expect(p.statements[0]).to.match(/^policyKey key:\w+ says platform\[amd-sev-snp, ARK cert:\w+\] is-trusted-for-attestation/);
    expect(p.statements[1]).to.contain('says platform[amd-sev-snp, tcb-bootloader >= 3, tcb-tee >= 0, tcb-snp >= 8, tcb-microcode >= 115] has-trusted-platform-property');
  });

  it('allows the signer\'s evidence, with the properties in the proof', async () => {
    const d = await decide(policyBytes());
    expect(d.allow, d.allow ? '' : d.reason).to.equal(true);
    if (d.allow) {
      expect(d.platform).to.equal('amd-sev-snp');
      expect(d.proof.join('\n')).to.contain('debug <= 0 (is 0)').and.contain('vmpl = 0 (is 0)').and.contain('tcb-snp >= 8 (is 8)');
    }
  });

  it('reads each guest policy flag from its bit (AMD ABI: SMT 16, migration agent 18, debug 19, single socket 20, then 21 to 25)', () => {
    const flags = {
      'smt-allowed': 16, 'migrate-ma': 18, debug: 19, 'single-socket': 20,
      'cxl-allowed': 21, 'mem-aes-256-xts': 22, 'rapl-disabled': 23, 'ciphertext-hiding': 24, 'page-swap-disabled': 25,
    };
    for (const [name, bit] of Object.entries(flags)) {
      const p = snpProperties(parseReport(signer.report({ reportData: new Uint8Array(64), measurement: MEASUREMENT, policy: (1n << 17n) | (1n << BigInt(bit)) })));
      const set = Object.keys(flags).filter((n) => p[n] === 1);
      expect(set, `policy bit ${bit} alone`).to.deep.equal([name]);
    }
  });

  it('reads each PLATFORM_INFO flag from its bit (AMD ABI: SMT_EN 0, TSME_EN 1, ECC_EN 2, RAPL_DIS 3, CIPHERTEXT_HIDING_EN 4, ALIAS_CHECK_COMPLETE 5)', () => {
    const flags = ['platform-smt-enabled', 'platform-tsme-enabled', 'platform-ecc-enabled', 'platform-rapl-disabled', 'platform-ciphertext-hiding', 'platform-alias-check-complete'];
    const b = signer.report({ reportData: new Uint8Array(64), measurement: MEASUREMENT });
    flags.forEach((name, bit) => {
      new DataView(b.buffer).setBigUint64(0x40, 1n << BigInt(bit), true); // parsing does not check the signature
      const p = snpProperties(parseReport(b));
      expect(flags.filter((n) => p[n] === 1), `PLATFORM_INFO bit ${bit} alone`).to.deep.equal([name]);
    });
  });

  it('takes each property from its own report field: tcb-* from REPORTED_TCB (not CURRENT or COMMITTED), launch-tcb-* from LAUNCH_TCB, firmware-version from CURRENT_MAJOR/MINOR and committed-firmware-version from COMMITTED_*, the author key only with AUTHOR_KEY_EN', () => {
    const fill = (n: number, x: number) => new Uint8Array(n).fill(x);
    const b = signer.report({
      reportData: new Uint8Array(64), measurement: MEASUREMENT, version: 5, guestSvn: 70000, policy: 0x30000n | 0x0102n, vmpl: 1,
      reportedTcb: { bootloader: 11, tee: 12, snp: 13, microcode: 14 }, hostData: fill(32, 0xc0), idKeyDigest: fill(48, 0xe0), signingKey: 'vlek',
      currentFirmware: [1, 55, 41], committedFirmware: [1, 53, 9],
    });
    // Fields the signer leaves alone, set here (parsing does not check the signature).
    b.set(fill(16, 0xf1), 0x10); // FAMILY_ID
    b.set(fill(16, 0x1d), 0x20); // IMAGE_ID
    for (const at of [0x38, 0x1e0]) b.set(Uint8Array.of(21, 22, 0, 0, 0, 0, 23, 24), at); // CURRENT, COMMITTED_TCB
    b.set(Uint8Array.of(31, 32, 0, 0, 0, 0, 33, 34), 0x1f0); // LAUNCH_TCB
    b.set(fill(48, 0xa1), 0x110); // AUTHOR_KEY_DIGEST
    const hex = (n: number, x: number) => toHex(fill(n, x));
    const common = {
      debug: 0, 'migrate-ma': 0, 'smt-allowed': 1, 'single-socket': 0, 'abi-major': 1, 'abi-minor': 2, 'abi-version': 0x0102, vmpl: 1, 'guest-svn': 70000,
      'firmware-version': 0x0137, 'committed-firmware-version': 0x0135,
      'tcb-bootloader': 11, 'tcb-tee': 12, 'tcb-snp': 13, 'tcb-microcode': 14,
      'launch-tcb-bootloader': 31, 'launch-tcb-tee': 32, 'launch-tcb-snp': 33, 'launch-tcb-microcode': 34, 'host-data': hex(32, 0xc0), 'family-id': hex(16, 0xf1), 'image-id': hex(16, 0x1d),
      'signing-key': 'vlek', 'report-version': 5, 'id-key-digest': hex(48, 0xe0),
      'cxl-allowed': 0, 'mem-aes-256-xts': 0, 'rapl-disabled': 0, 'ciphertext-hiding': 0, 'page-swap-disabled': 0,
      'platform-smt-enabled': 1, 'platform-tsme-enabled': 0, 'platform-ecc-enabled': 0, 'platform-rapl-disabled': 0, 'platform-ciphertext-hiding': 0, 'platform-alias-check-complete': 0,
    };
    expect(snpProperties(parseReport(b)), 'AUTHOR_KEY_EN clear').to.deep.equal(common);
    b[0x48]! |= 1; // AUTHOR_KEY_EN
    expect(snpProperties(parseReport(b)), 'AUTHOR_KEY_EN set').to.deep.equal({ ...common, 'author-key-digest': hex(48, 0xa1) });
  });

  it('requires a minimum ABI in one comparison: abi-version >= 1.51 admits 1.51 and 2.0, refuses 1.50 and 0.255 (abi-major and abi-minor apart cannot say it)', async () => {
    const atLeast = policyBytes({ requirements: [...TCB, { name: 'abi-version', comparator: '>=', value: versionNumber(1, 51) }] });
    const abi = (major: number, minor: number) => ({ policy: 0x30000n | BigInt(major << 8) | BigInt(minor) });
    expect((await decide(atLeast, abi(1, 51))).allow, '1.51').to.equal(true);
    expect((await decide(atLeast, abi(2, 0))).allow, '2.0, whose minor is below 51').to.equal(true);
    const d = await decide(atLeast, abi(1, 50));
    expect(d).to.include({ allow: false, code: 'PLATFORM_PROPERTY_DENIED' });
    if (!d.allow) expect(d.reason).to.equal('abi-version is 1.50, and the policy requires abi-version >= 1.51');
    expect((await decide(atLeast, abi(0, 255))).allow, '0.255, whose minor is above 51').to.equal(false);
    const p = loadPolicy(atLeast, policyKey.publicKey);
    expect(p.statements[1]).to.contain('abi-version >= 1.51]');
  });

  it('requires the running firmware, not the guest\'s ABI: firmware-version >= 1.55 admits 1.55 and 2.0, refuses 1.54 as MAJOR.MINOR; committed-firmware-version likewise', async () => {
    const atLeast = (name: string) => policyBytes({ requirements: [...TCB, { name, comparator: '>=', value: versionNumber(1, 55) }] });
    const fw = (major: number, minor: number, committed: [number, number, number] = [1, 52, 4]) => ({ currentFirmware: [major, minor, 7] as [number, number, number], committedFirmware: committed });
    expect((await decide(atLeast('firmware-version'), fw(1, 55))).allow, '1.55').to.equal(true);
    expect((await decide(atLeast('firmware-version'), fw(2, 0))).allow, '2.0, whose minor is below 55').to.equal(true);
    const d = await decide(atLeast('firmware-version'), { ...fw(1, 54), policy: 0x30000n | 0x0137n });
    expect(d).to.include({ allow: false, code: 'PLATFORM_PROPERTY_DENIED' });
    if (!d.allow) expect(d.reason, 'the firmware\'s, though the guest policy asks for ABI 1.55').to.equal('firmware-version is 1.54, and the policy requires firmware-version >= 1.55');
    const c = await decide(atLeast('committed-firmware-version'), fw(1, 55, [1, 52, 4]));
    expect(c).to.include({ allow: false, code: 'PLATFORM_PROPERTY_DENIED' });
    if (!c.allow) expect(c.reason, 'running 1.55, but 1.52 is still committed').to.equal('committed-firmware-version is 1.52, and the policy requires committed-firmware-version >= 1.55');
    expect((await decide(atLeast('committed-firmware-version'), fw(1, 55, [1, 55, 7]))).allow, 'committed 1.55').to.equal(true);
    expect(loadPolicy(atLeast('firmware-version'), policyKey.publicKey).statements[1]).to.contain('firmware-version >= 1.55]');
  });

  it('never takes committed-firmware-version above the running firmware: COMMITTED 1.55 while 1.52 runs is 1.52, so ">= 1.55" does not pass', async () => {
    const atLeast = (v: number) => policyBytes({ requirements: [...TCB, { name: 'committed-firmware-version', comparator: '>=', value: v }] });
    const fields = { currentFirmware: [1, 52, 4] as [number, number, number], committedFirmware: [1, 55, 7] as [number, number, number] };
    const d = await decide(atLeast(versionNumber(1, 55)), fields);
    expect(d).to.include({ allow: false, code: 'PLATFORM_PROPERTY_DENIED' });
    if (!d.allow) expect(d.reason).to.equal('committed-firmware-version is 1.52, and the policy requires committed-firmware-version >= 1.55');
    expect((await decide(atLeast(versionNumber(1, 52)), fields)).allow, 'the floor that did hold').to.equal(true);
    const p = snpProperties(parseReport(signer.report({ reportData: new Uint8Array(64), measurement: MEASUREMENT, ...fields })));
    expect(p).to.include({ 'firmware-version': versionNumber(1, 52), 'committed-firmware-version': versionNumber(1, 52) });
  });

  it('lets a policy require a platform flag: platform-alias-check-complete = 1 refuses a platform that has not ruled out memory aliasing', async () => {
    const d = await decide(policyBytes({ requirements: [...TCB, { name: 'platform-alias-check-complete', comparator: '=', value: 1 }] }));
    expect(d).to.include({ allow: false, code: 'PLATFORM_PROPERTY_DENIED' });
    if (!d.allow) expect(d.reason).to.equal('platform-alias-check-complete is 0, and the policy requires platform-alias-check-complete = 1');
  });

  it('refuses, by default, a migration agent and a VMPL other than 0', async () => {
    expect(await decide(policyBytes(), { policy: 0x30000n | (1n << 18n) })).to.include({ allow: false, code: 'PLATFORM_PROPERTY_DENIED' });
    expect(await decide(policyBytes(), { vmpl: 2 })).to.include({ allow: false, code: 'PLATFORM_PROPERTY_DENIED' });
  });

  it('refuses a report of a VMPL above 3, as the host asks for one (0xFFFFFFFF), even under vmpl >= 1', async () => {
    const atLeast1 = policyBytes({ requirements: [...TCB, { name: 'vmpl', comparator: '>=', value: 1 }] });
    expect((await decide(atLeast1, { vmpl: 3 })).allow, 'VMPL 3').to.equal(true);
    for (const vmpl of [4, 0xffffffff]) {
      const e = await decide(atLeast1, { vmpl }).then(() => undefined, (x: unknown) => x);
      expect(e, `VMPL ${vmpl}`).to.be.instanceOf(CertifierError).with.property('code', 'EVIDENCE_MALFORMED');
    }
  });

  it('allows what the policy says explicitly: debug <= 1 admits a debug guest, vmpl = 2 a VMPL 2 report', async () => {
    const lax = policyBytes({ requirements: [...TCB, { name: 'debug', comparator: '<=', value: 1 }, { name: 'vmpl', comparator: '=', value: 2 }] });
    expect((await decide(lax, { policy: 0x30000n | (1n << 19n), vmpl: 2 })).allow).to.equal(true);
  });

  it('judges each property claim whole: a debug guest at TCB snp 8 passes neither a claim allowing debug from snp 9 nor one allowing snp 8 without debug', async () => {
    const high = TCB.map((r) => (r.name === 'tcb-snp' ? { ...r, value: 9 } : r));
    const lowNoDebug = makePolicy({ policyKey: policyKey.privateKey, platforms: [], measurements: [], platformProperties: [{ platformType: SEV_SNP_PLATFORM, requirements: TCB }], ...window() });
    const two = joinPolicies(policyBytes({ requirements: [...high, { name: 'debug', comparator: '<=', value: 1 }] }), lowNoDebug);
    expect(await decide(two, { policy: 0x30000n | (1n << 19n) })).to.include({ allow: false, code: 'PLATFORM_PROPERTY_DENIED' });
    expect((await decide(two)).allow, 'without debug, at snp 8: the second claim').to.equal(true);
  });

  it('denies a TCB below the minimum, naming the component', async () => {
    const d = await decide(policyBytes({ requirements: TCB.map((r) => (r.name === 'tcb-snp' ? { ...r, value: 9 } : r)) }));
    expect(d).to.include({ allow: false, code: 'PLATFORM_PROPERTY_DENIED' });
    if (!d.allow) expect(d.reason).to.equal('tcb-snp is 8, and the policy requires tcb-snp >= 9');
  });

  it('compares the minimum TCB with REPORTED_TCB only, and a policy naming launch-tcb-* refuses a guest launched under a lower TCB', async () => {
    const launchedBelow = { launchTcb: { bootloader: 3, tee: 0, snp: 7, microcode: 115 } }; // then updated live to snp 8
    expect((await decide(policyBytes(), launchedBelow)).allow, 'the minimum TCB alone').to.equal(true);
    const launch = policyBytes({ requirements: [...TCB, { name: 'launch-tcb-snp', comparator: '>=', value: 8 }] });
    const d = await decide(launch, launchedBelow);
    expect(d).to.include({ allow: false, code: 'PLATFORM_PROPERTY_DENIED' });
    if (!d.allow) expect(d.reason).to.equal('launch-tcb-snp is 7, and the policy requires launch-tcb-snp >= 8');
    expect((await decide(launch)).allow, 'launched at snp 8').to.equal(true);
  });

  it('checks required host data and ID-key digest, and denies an ID-key digest the evidence lacks', async () => {
    const host = randomBytes(32);
    const withHost = policyBytes({ requirements: [...TCB, { name: 'host-data', comparator: '=', value: toHex(host) }] });
    expect((await decide(withHost, { hostData: host })).allow).to.equal(true);
    expect(await decide(withHost, { hostData: randomBytes(32) })).to.include({ allow: false, code: 'PLATFORM_PROPERTY_DENIED' });
    const idKey = randomBytes(48);
    const withId = policyBytes({ requirements: [...TCB, { name: 'id-key-digest', comparator: '=', value: toHex(idKey) }] });
    expect((await decide(withId, { idKeyDigest: idKey })).allow).to.equal(true);
    const lacking = await decide(withId); // launched without an ID block: the digest is all zero
    expect(lacking).to.include({ allow: false, code: 'PLATFORM_PROPERTY_DENIED' });
    if (!lacking.allow) expect(lacking.reason).to.contain('the evidence has no id-key-digest');
  });

  it('denies a property the policy names but the evidence lacks', async () => {
    const d = await decide(policyBytes({ requirements: [...TCB, { name: 'tcb-fmc', comparator: '>=', value: 1 }] }));
    expect(d).to.include({ allow: false, code: 'PLATFORM_PROPERTY_DENIED' });
    if (!d.allow) expect(d.reason).to.contain('the evidence has no tcb-fmc');
  });

  it('denies SNP evidence when the policy trusts the root but sets no SNP properties (fail closed)', async () => {
    const d = await decide(policyBytes({ requirements: null }));
    expect(d).to.include({ allow: false, code: 'PLATFORM_PROPERTY_DENIED' });
    if (!d.allow) expect(d.reason).to.contain('sets no amd-sev-snp platform properties');
  });

  it('denies SNP evidence with CLAIM_EXPIRED (a policy to renew, not a property denied) when the only property claim is not in force, not yet or no longer', async () => {
    const HOUR = 3_600_000;
    for (const [notBefore, notAfter] of [[NOW.getTime() + HOUR, NOW.getTime() + DAY], [NOW.getTime() - DAY, NOW.getTime() - HOUR]] as const) {
      const properties = makePolicy({
        policyKey: policyKey.privateKey, platforms: [], measurements: [], platformProperties: [{ platformType: SEV_SNP_PLATFORM, requirements: TCB }],
        notBefore: new Date(notBefore), notAfter: new Date(notAfter),
      });
      const d = await decide(joinPolicies(policyBytes({ requirements: null }), properties));
      expect(d).to.include({ allow: false, code: 'CLAIM_EXPIRED' });
      if (!d.allow) expect(d.reason).to.contain('no amd-sev-snp property claim of the policy is valid at').and.to.contain(`valid from ${new Date(notBefore).toISOString()} to ${new Date(notAfter).toISOString()}`);
    }
  });

  it('ends the decision no later than the property claim that allowed it, when that ends before the root and measurement claims', async () => {
    const HOUR = 3_600_000;
    const properties = makePolicy({
      policyKey: policyKey.privateKey, platforms: [], measurements: [], platformProperties: [{ platformType: SEV_SNP_PLATFORM, requirements: TCB }],
      notBefore: new Date(NOW.getTime() - HOUR), notAfter: new Date(NOW.getTime() + HOUR),
    });
    const d = await decide(joinPolicies(policyBytes({ requirements: null }), properties));
    expect(d.allow, d.allow ? '' : d.reason).to.equal(true);
    if (d.allow) expect(d.notAfter.toISOString()).to.equal(new Date(NOW.getTime() + HOUR).toISOString());
  });

  it('denies evidence that verifies to a root the policy does not trust with PLATFORM_NOT_TRUSTED', async () => {
    expect(await decide(policyBytes({ roots: [pinnedArk('milan'), pinnedArk('genoa')] }))).to.include({ allow: false, code: 'PLATFORM_NOT_TRUSTED' });
  });

  it('refuses a property claim without the four TCB minimums, or with a bad comparator, as POLICY_INVALID', () => {
    const one = (requirements: Requirement[]) => () => loadPolicy(policyBytes({ requirements }), policyKey.publicKey);
    expect(one(TCB.slice(1))).to.throw(CertifierError, /must name tcb-bootloader/).with.property('code', 'POLICY_INVALID');
    expect(one([...TCB, { name: 'debug', comparator: '!=' as never, value: 0 }])).to.throw(CertifierError).with.property('code', 'POLICY_INVALID');
    expect(one([...TCB, { name: 'host-data', comparator: '>=', value: 'ab' }])).to.throw(CertifierError).with.property('code', 'POLICY_INVALID');
    expect(one([...TCB, TCB[0]!])).to.throw(CertifierError, /twice/).with.property('code', 'POLICY_INVALID');
    // A uint64 past 2^53 (the original's whole 64-bit TCB, say) cannot be compared exactly.
    expect(one([...TCB, { name: 'tcb-version', comparator: '>=', value: 2 ** 60 }])).to.throw(CertifierError, /past 2\^53/).with.property('code', 'POLICY_INVALID');
  });

  it('refuses a platform claim with a verb it does not know, as before (fail closed)', () => {
    const clause = saysClause(keyEntity(policyKey.privateKey, 'policyKey'), { subject: propertiesEntity(SEV_SNP_PLATFORM, TCB), verb: 'is-trusted' });
    const seq: SignedClaimSequence = { claims: [signClaim({ signer: policyKey.privateKey, signerName: 'policyKey', clause, ...window() })] };
    expect(() => loadPolicy(encode('signed_claim_sequence', seq), policyKey.publicKey)).to.throw(CertifierError).with.property('code', 'POLICY_INVALID');
  });
});
