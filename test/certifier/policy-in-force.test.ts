// policyNotInForce, which simpleserver warns with at start and refuses a reload with: a policy
// that can admit no machine now, its platform claims, its measurement claims, or the property
// claims of every platform it trusts outside their dates.

import { expect } from 'chai';
import { generateKeyPair, randomBytes } from '../../lib/crypto/index.ts';
import { loadPolicy, makePolicy, SEV_SNP_PLATFORM, type MakePolicyOptions, type Requirement } from '../../lib/policy/index.ts';
import { generateSimulatedPlatform, pinnedArk } from '../../lib/attest/index.ts';
import { platformWarnings, policyNotInForce } from '../../lib/certifier/index.ts';
import { joinPolicies } from '../support/policies.ts';
import { TestSnpSigner } from '../sev-snp/signer.ts';

const DAY = 86_400_000;
const TCB: Requirement[] = ['tcb-bootloader', 'tcb-tee', 'tcb-snp', 'tcb-microcode'].map((name) => ({ name, comparator: '>=', value: 0 }));

type Claims = Partial<Pick<MakePolicyOptions, 'platforms' | 'platformRoots' | 'platformProperties' | 'measurements'>>;

/** For a suite: `now`, windows around it, and policies of claims in those windows (keys made before the suite runs). */
function policies() {
  const now = new Date();
  const inForce = { notBefore: new Date(now.getTime() - DAY), notAfter: new Date(now.getTime() + DAY) };
  const ended = { notBefore: new Date(now.getTime() - 2 * DAY), notAfter: new Date(now.getTime() - DAY) };
  const notYet = { notBefore: new Date(now.getTime() + DAY), notAfter: new Date(now.getTime() + 2 * DAY) };
  let policyKey: Awaited<ReturnType<typeof generateKeyPair>>;
  let simulated: Awaited<ReturnType<typeof generateSimulatedPlatform>>;
  before(async () => {
    [policyKey, simulated] = await Promise.all([generateKeyPair('p256'), generateSimulatedPlatform({ alg: 'p256' })]);
  });
  return {
    now, inForce, ended, notYet,
    claims: (c: Claims, window: typeof inForce) => makePolicy({ policyKey: policyKey.privateKey, platforms: [], measurements: [], ...c, ...window }),
    load: (...files: Uint8Array[]) => loadPolicy(joinPolicies(...files), policyKey.publicKey),
    simulatedKey: (): Claims => ({ platforms: [{ key: simulated.platformKey }] }),
    snpRoot: (): Claims => ({ platformRoots: [{ platformType: SEV_SNP_PLATFORM, certificate: pinnedArk('milan'), name: 'ARK-Milan' }] }),
    snpProperties: { platformProperties: [{ platformType: SEV_SNP_PLATFORM, requirements: TCB }] } as Claims,
    turinRoot: (): Claims => ({ platformRoots: [{ platformType: SEV_SNP_PLATFORM, certificate: pinnedArk('turin'), name: 'ARK-Turin' }] }),
    turinProperties: { platformProperties: [{ platformType: SEV_SNP_PLATFORM, requirements: [{ name: 'tcb-fmc', comparator: '>=', value: 0 }, ...TCB] }] } as Claims,
    // Hand-written (make-policy puts launch-tcb-fmc in a claim naming tcb-fmc): a Turin level without tcb-fmc.
    launchFmcOnly: { platformProperties: [{ platformType: SEV_SNP_PLATFORM, requirements: [...TCB, { name: 'launch-tcb-fmc', comparator: '>=', value: 0 }] }] } as Claims,
  };
}

describe('policyNotInForce: a policy that admits no machine now', () => {
  const { now, inForce, ended, notYet, claims, load, simulatedKey, snpRoot: root, snpProperties } = policies();
  const snpRoot: Claims = { ...root(), measurements: [randomBytes(48)] };
  const why = (...files: Uint8Array[]) => policyNotInForce(load(...files), now);

  it('is in force when every kind of claim has one in force', () => {
    expect(why(claims({ ...snpRoot, ...snpProperties }, inForce))).to.equal(undefined);
  });

  it('names the SEV-SNP property claims when they have all ended, or not begun, while the root and measurement claims are in force', () => {
    for (const [window, what] of [[ended, 'ended'], [notYet, 'not yet begun']] as const) {
      const reason = why(claims(snpRoot, inForce), claims(snpProperties, window));
      expect(reason, what).to.contain(`none of its ${SEV_SNP_PLATFORM} property claims is in force at ${now.toISOString()}`);
      expect(reason, what).to.contain(`${window.notBefore.toISOString()} to ${window.notAfter.toISOString()}`);
    }
  });

  it('is in force when one property claim is, an ended one beside its renewal', () => {
    expect(why(claims(snpRoot, inForce), claims(snpProperties, ended), claims(snpProperties, inForce))).to.equal(undefined);
  });

  it('is in force when another platform it trusts still admits machines (a simulated platform key beside SEV-SNP property claims that ended)', () => {
    expect(why(claims(snpRoot, inForce), claims(snpProperties, ended), claims(simulatedKey(), inForce))).to.equal(undefined);
  });

  it('names the platform claims first when they have ended too', () => {
    expect(why(claims({ ...snpRoot, measurements: [] }, ended), claims({ measurements: snpRoot.measurements! }, inForce), claims(snpProperties, ended))).to.contain('none of its platform claims is in force');
  });
});

describe('platformWarnings: a platform the policy trusts but whose every machine it would refuse now, beside others it admits', () => {
  const { now, inForce, ended, claims, load, simulatedKey, snpRoot, snpProperties, turinRoot, turinProperties, launchFmcOnly } = policies();
  const snpMeasurement = { measurements: [randomBytes(48)] };
  const simulatedMeasurement = { measurements: [randomBytes(32)] };

  // Each case: the policy's claims and windows, and the lines expected (platform, then the code).
  const CASES: { name: string; files: () => Uint8Array[]; lines: [string, string][] }[] = [
    { name: 'both platforms with every claim in force: nothing', lines: [], files: () => [claims({ ...snpRoot(), ...snpProperties, ...snpMeasurement }, inForce), claims({ ...simulatedKey(), ...simulatedMeasurement }, inForce)] },
    { name: 'SEV-SNP property claims ended', lines: [[SEV_SNP_PLATFORM, 'CLAIM_EXPIRED']], files: () => [claims({ ...snpRoot(), ...snpMeasurement }, inForce), claims(snpProperties, ended), claims({ ...simulatedKey(), ...simulatedMeasurement }, inForce)] },
    { name: 'SEV-SNP without property claims', lines: [[SEV_SNP_PLATFORM, 'PLATFORM_PROPERTY_DENIED']], files: () => [claims({ ...snpRoot(), ...snpMeasurement }, inForce), claims({ ...simulatedKey(), ...simulatedMeasurement }, inForce)] },
    { name: 'the SEV-SNP root claim ended', lines: [[SEV_SNP_PLATFORM, 'CLAIM_EXPIRED']], files: () => [claims(snpRoot(), ended), claims({ ...snpProperties, ...snpMeasurement }, inForce), claims({ ...simulatedKey(), ...simulatedMeasurement }, inForce)] },
    { name: 'the 48-byte measurement claims ended', lines: [[SEV_SNP_PLATFORM, 'CLAIM_EXPIRED']], files: () => [claims({ ...snpRoot(), ...snpProperties }, inForce), claims(snpMeasurement, ended), claims({ ...simulatedKey(), ...simulatedMeasurement }, inForce)] },
    // Milan's and Turin's roots: each product needs a claim of its TCB's layout (naming tcb-fmc for Turin, not for Milan), as make-policy writes.
    { name: 'Milan and Turin roots, a claim of each layout', lines: [], files: () => [claims({ ...snpRoot(), ...snpMeasurement }, inForce), claims(turinRoot(), inForce), claims(snpProperties, inForce), claims(turinProperties, inForce)] },
    { name: 'Milan and Turin roots, no claim naming tcb-fmc', lines: [[SEV_SNP_PLATFORM, 'PLATFORM_PROPERTY_DENIED']], files: () => [claims({ ...snpRoot(), ...snpMeasurement }, inForce), claims(turinRoot(), inForce), claims(snpProperties, inForce)] },
    { name: 'Milan and Turin roots, every claim naming tcb-fmc', lines: [[SEV_SNP_PLATFORM, 'PLATFORM_PROPERTY_DENIED']], files: () => [claims({ ...snpRoot(), ...snpMeasurement }, inForce), claims(turinRoot(), inForce), claims(turinProperties, inForce)] },
    { name: 'Milan and Turin roots, the Turin claim ended', lines: [[SEV_SNP_PLATFORM, 'PLATFORM_PROPERTY_DENIED']], files: () => [claims({ ...snpRoot(), ...snpMeasurement }, inForce), claims(turinRoot(), inForce), claims(snpProperties, inForce), claims(turinProperties, ended)] },
    // A claim naming launch-tcb-fmc but not tcb-fmc admits no machine: no Milan or Genoa report has that level, and a Turin one is judged only by a claim naming tcb-fmc.
    { name: 'a Milan root, its one claim naming launch-tcb-fmc without tcb-fmc', lines: [[SEV_SNP_PLATFORM, 'PLATFORM_PROPERTY_DENIED'], [SEV_SNP_PLATFORM, 'PLATFORM_PROPERTY_DENIED']], files: () => [claims({ ...snpRoot(), ...snpMeasurement, ...launchFmcOnly }, inForce), claims({ ...simulatedKey(), ...simulatedMeasurement }, inForce)] },
    { name: 'Milan and Turin roots, a claim of each layout beside one naming launch-tcb-fmc without tcb-fmc', lines: [[SEV_SNP_PLATFORM, 'PLATFORM_PROPERTY_DENIED']], files: () => [claims({ ...snpRoot(), ...snpMeasurement }, inForce), claims(turinRoot(), inForce), claims(snpProperties, inForce), claims(turinProperties, inForce), claims(launchFmcOnly, inForce)] },
    { name: 'no 32-byte measurement for the simulated platform', lines: [['simulated-enclave', 'MEASUREMENT_NOT_TRUSTED']], files: () => [claims({ ...snpRoot(), ...snpProperties, ...snpMeasurement, ...simulatedKey() }, inForce)] },
  ];
  for (const c of CASES) {
    it(`${c.name}: ${c.lines.map(([p, code]) => `${p} ${code}`).join(', ') || 'no line'}, while the policy as a whole admits machines`, () => {
      const policy = load(...c.files());
      expect(policyNotInForce(policy, now)).to.equal(undefined);
      const lines = platformWarnings(policy, now);
      expect(lines.map((l) => [/^platform (\S+):/.exec(l)?.[1], /\((\w+)\)$/.exec(l)?.[1]])).to.deep.equal(c.lines);
    });
  }

  it('names the product whose machines no claim in force suits, and why', () => {
    const turin = platformWarnings(load(claims({ ...snpRoot(), ...snpMeasurement }, inForce), claims(turinRoot(), inForce), claims(snpProperties, inForce)), now);
    expect(turin).to.have.length(1);
    expect(turin[0]).to.match(new RegExp(`^platform ${SEV_SNP_PLATFORM}: no property claim in force names tcb-fmc, which the reports of its Turin machines \\(ARK-Turin cert:[0-9a-f]{16}\\) have: every Turin machine will be refused \\(PLATFORM_PROPERTY_DENIED\\)$`));
    const milan = platformWarnings(load(claims({ ...snpRoot(), ...snpMeasurement }, inForce), claims(turinRoot(), inForce), claims(turinProperties, inForce)), now);
    expect(milan).to.have.length(1);
    expect(milan[0]).to.contain('every property claim in force names tcb-fmc, which the reports of its Milan machines (ARK-Milan cert:').and.contain('do not have: every Milan machine will be refused (PLATFORM_PROPERTY_DENIED)');
  });

  it('takes a root not pinned as Turin\'s when named ARK-Turin, else as family 19h\'s, as make-policy does', () => {
    const byFile = (arkName: string): Claims => ({ platformRoots: [{ platformType: SEV_SNP_PLATFORM, certificate: TestSnpSigner.create({ arkName }).ark, name: arkName }] });
    const warned = (arkName: string, properties: Claims) => platformWarnings(load(claims({ ...snpRoot(), ...snpMeasurement }, inForce), claims(byFile(arkName), inForce), claims(snpProperties, inForce), claims(properties, inForce)), now);
    const turin = warned('ARK-Turin', snpProperties);
    expect(turin).to.have.length(1);
    expect(turin[0]).to.contain('no property claim in force names tcb-fmc, which the reports of its Turin machines (ARK-Turin cert:');
    expect(warned('ARK-Turin', turinProperties), 'a claim of its layout').to.deep.equal([]);
    expect(warned('ARK-TEST', snpProperties), 'family 19h\'s').to.deep.equal([]);
    const other = platformWarnings(load(claims({ ...byFile('ARK-TEST'), ...snpMeasurement }, inForce), claims(turinRoot(), inForce), claims(turinProperties, inForce)), now);
    expect(other).to.have.length(1);
    expect(other[0]).to.contain('which the reports of its family 19h machines (ARK-TEST cert:').and.contain('every family 19h machine will be refused (PLATFORM_PROPERTY_DENIED)');
  });

  it('names a claim naming launch-tcb-fmc but not tcb-fmc, which admits no machine, and the products it leaves without a claim', () => {
    const alone = platformWarnings(load(claims({ ...snpRoot(), ...snpMeasurement }, inForce), claims(turinRoot(), inForce), claims(launchFmcOnly, inForce)), now);
    expect(alone).to.have.length(3);
    expect(alone[0]).to.contain('every property claim in force names launch-tcb-fmc, which the reports of its Milan machines (ARK-Milan cert:').and.contain('every Milan machine will be refused (PLATFORM_PROPERTY_DENIED)');
    expect(alone[1]).to.contain('no property claim in force names tcb-fmc, which the reports of its Turin machines (ARK-Turin cert:');
    expect(alone[2]).to.equal(`platform ${SEV_SNP_PLATFORM}: policy claim 4 (platform[${SEV_SNP_PLATFORM}, tcb-bootloader >= 0, tcb-tee >= 0, tcb-snp >= 0, tcb-microcode >= 0, launch-tcb-fmc >= 0]) names launch-tcb-fmc, which only Turin machines report, and not tcb-fmc, which a claim admitting a Turin machine must name: it admits no machine (PLATFORM_PROPERTY_DENIED)`);
    const mixed = platformWarnings(load(claims({ ...snpRoot(), ...snpMeasurement }, inForce), claims(turinProperties, inForce), claims(launchFmcOnly, inForce)), now);
    expect(mixed[0], 'each Turin level some claim names').to.contain('every property claim in force names tcb-fmc or launch-tcb-fmc, which the reports of its Milan machines');
  });

  it('says when the claims that ended were in force', () => {
    const [line] = platformWarnings(load(claims({ ...snpRoot(), ...snpMeasurement }, inForce), claims(snpProperties, ended), claims({ ...simulatedKey(), ...simulatedMeasurement }, inForce)), now);
    expect(line).to.equal(`platform ${SEV_SNP_PLATFORM}: none of its property claims is in force at ${now.toISOString()} (${ended.notBefore.toISOString()} to ${ended.notAfter.toISOString()}): every machine of it will be refused (CLAIM_EXPIRED)`);
  });
});
