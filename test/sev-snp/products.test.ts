// Milan and Genoa share family 19h's TCB layout but not its scale (the real reports: Milan at
// 3:0:8:115, Genoa at 10:0:23:84). One minimum for both could only be the lower level of each
// component (3:0:8:84), which admits a Milan machine whose microcode is below Milan's minimum;
// so the evidence says which pinned root it chains to (product), and make-policy writes a claim
// per product with --snp-min-tcb milan=... genoa=....

import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertifierError } from '../../lib/errors/index.ts';
import { checkProperties, SEV_SNP_PLATFORM, type PropertyValue } from '../../lib/policy/index.ts';
import { parseReport, snpProperties, verifySnpReport } from '../../lib/attest/index.ts';
import { platformWarnings } from '../../lib/certifier/index.ts';
import { snpPolicyParts, type MinTcb, type SnpPolicyFlags } from '../../cmd/cert-utility/snp-policy.ts';
import { EXPECTED, vector } from './support.ts';
import { TestSnpSigner } from './signer.ts';
import { tempDir } from '../support/helpers.ts';

const DAY = 86_400_000;
const MILAN = [3, 0, 8, 115];
const GENOA = [10, 0, 23, 84];

/** The properties of a real report as verifySnpEvidence gives them: with the product of the pinned root its path ends at. */
function propertiesOf(name: string): Record<string, PropertyValue> {
  const { report, vcek, e } = vector(name);
  const at = new Date(e.now ?? EXPECTED.now);
  const v = verifySnpReport({ report, certs: [vcek], at });
  return snpProperties(v.report, v.product);
}

const flags = (trustAmdRoot: ('milan' | 'genoa')[], snpMinTcb: MinTcb): SnpPolicyFlags => ({ trustAmdRoot, trustAmdRootCert: [], snpVmpl: 0, snpProperty: [], snpMinTcb });
const perProduct: MinTcb = [{ layout: 'family-19h', product: 'milan', levels: MILAN }, { layout: 'family-19h', product: 'genoa', levels: GENOA }];

async function claims(f: SnpPolicyFlags, at: Date) {
  return (await snpPolicyParts('make-policy', f, at, { quiet: true })).platformProperties!.map((c) => ({ ...c, notBefore: new Date(at.getTime() - DAY), notAfter: new Date(at.getTime() + DAY) }));
}

async function usage(f: SnpPolicyFlags): Promise<string> {
  try {
    await snpPolicyParts('make-policy', f, new Date(), { quiet: true });
  } catch (e) {
    if (e instanceof CertifierError && e.code === 'USAGE') return e.message;
    throw e;
  }
  throw new Error('expected USAGE');
}

describe('SEV-SNP: Milan and Genoa, one layout, a minimum TCB each', () => {
  const at = new Date(EXPECTED.vectors['genoa-azure-trustee'].now ?? EXPECTED.now);

  it('says which pinned AMD root a real report chains to (product), and nothing for a report whose root is not known', () => {
    expect(propertiesOf('milan-virtee-sev').product).to.equal('milan');
    expect(propertiesOf('genoa-azure-trustee').product).to.equal('genoa');
    expect(propertiesOf('turin-oak').product).to.equal('turin');
    expect(snpProperties(parseReport(vector('milan-virtee-sev').report)).product).to.equal(undefined);
  });

  it('writes one claim per product, each naming it, and admits each product at its own minimum only', async () => {
    const written = await claims(flags(['milan', 'genoa'], perProduct), at);
    expect(written.map((c) => c.requirements.filter((r) => r.name === 'product' || r.name.startsWith('tcb-')).map((r) => `${r.name}${r.comparator}${r.value}`))).to.deep.equal([
      ['product=milan', 'tcb-bootloader>=3', 'tcb-tee>=0', 'tcb-snp>=8', 'tcb-microcode>=115'],
      ['product=genoa', 'tcb-bootloader>=10', 'tcb-tee>=0', 'tcb-snp>=23', 'tcb-microcode>=84'],
    ]);
    const milan = propertiesOf('milan-virtee-sev');
    const genoa = propertiesOf('genoa-azure-trustee');
    expect(checkProperties(written, SEV_SNP_PLATFORM, milan, at).ok).to.equal(true);
    expect(checkProperties(written, SEV_SNP_PLATFORM, genoa, at).ok).to.equal(true);
    // A Milan machine at Genoa's microcode level, below Milan's minimum: refused, for its own claim's reason.
    const oldMilan = checkProperties(written, SEV_SNP_PLATFORM, { ...milan, 'tcb-microcode': 84 }, at);
    expect(oldMilan).to.deep.equal({ ok: false, code: 'PLATFORM_PROPERTY_DENIED', reason: 'tcb-microcode is 84, and the policy requires tcb-microcode >= 115' });
    const reversed = checkProperties([...written].reverse(), SEV_SNP_PLATFORM, { ...milan, 'tcb-microcode': 84 }, at);
    expect(reversed.ok === false && reversed.reason, 'whichever claim comes first').to.equal('tcb-microcode is 84, and the policy requires tcb-microcode >= 115');
    // A Genoa machine at Milan's levels: refused too.
    expect(checkProperties(written, SEV_SNP_PLATFORM, { ...genoa, 'tcb-bootloader': 3, 'tcb-snp': 8 }, at).ok).to.equal(false);
    // Evidence whose root names no product (a root given by file) meets neither claim.
    const { product: _, ...unknown } = milan;
    expect(checkProperties(written, SEV_SNP_PLATFORM, unknown, at).ok).to.equal(false);
    // The one minimum both fleets pass is the lower level of each component, which admits that Milan machine.
    const shared = await claims(flags(['milan', 'genoa'], [{ layout: 'family-19h', levels: [3, 0, 8, 84] }]), at);
    expect(checkProperties(shared, SEV_SNP_PLATFORM, { ...milan, 'tcb-microcode': 84 }, at).ok).to.equal(true);
  });

  it('refuses per-product minimums that leave a root without its own, name a root not trusted, or meet a root given by file (USAGE)', async () => {
    expect(await usage(flags(['milan', 'genoa'], [perProduct[0]!]))).to.contain('--snp-min-tcb genoa=BOOTLOADER:TEE:SNP:MICROCODE too');
    expect(await usage(flags(['milan'], perProduct))).to.contain('the policy does not trust AMD\'s genoa root');
    expect(await usage({ ...flags(['milan'], [perProduct[0]!]), snpProperty: [{ name: 'product', comparator: '=', value: 'genoa' }] })).to.contain('--snp-property product is already set by another flag');
    const tmp = tempDir('products-');
    try {
      const file = join(tmp.dir, 'test-ark.der');
      writeFileSync(file, TestSnpSigner.create().ark);
      expect(await usage({ ...flags(['milan'], [perProduct[0]!]), trustAmdRootCert: [file] })).to.contain('names no product: its machines take the family 19h minimum');
    } finally {
      tmp.cleanup();
    }
  });

  it('puts a LAUNCH_TCB level named by its product (milan:, genoa:) into that product\'s claim only, and refuses one for both beside minimums per product (USAGE)', async () => {
    const launch = (product: 'milan' | 'genoa' | undefined, value: number) => ({ name: 'launch-tcb-snp', comparator: '>=' as const, value, layout: 'family-19h' as const, ...(product ? { product } : {}) });
    const written = await claims({ ...flags(['milan', 'genoa'], perProduct), snpProperty: [launch('milan', 8), launch('genoa', 23)] }, at);
    expect(written.map((c) => c.requirements.filter((r) => r.name === 'launch-tcb-snp').map((r) => r.value))).to.deep.equal([[8], [23]]);
    expect(checkProperties(written, SEV_SNP_PLATFORM, propertiesOf('milan-virtee-sev'), at).ok).to.equal(true);
    expect(checkProperties(written, SEV_SNP_PLATFORM, propertiesOf('genoa-azure-trustee'), at).ok).to.equal(true);
    const { layout: _, ...unprefixed } = launch(undefined, 8);
    expect(await usage({ ...flags(['milan', 'genoa'], perProduct), snpProperty: [unprefixed] })).to.contain('names the product it is for');
    expect(await usage({ ...flags(['milan', 'genoa'], perProduct), snpProperty: [launch(undefined, 8)] }), 'family19h: is both products\' claim').to.contain('names the product it is for');
    expect(await usage({ ...flags(['milan', 'genoa'], [{ layout: 'family-19h', levels: MILAN }]), snpProperty: [launch('milan', 8)] })).to.contain('which is not given');
  });

  it('warns of one family 19h claim for both Milan\'s and Genoa\'s pinned roots (make-policy writes it, simpleserver says it), and not of a claim per product', async () => {
    const policyOf = async (min: MinTcb) => {
      const parts = await snpPolicyParts('make-policy', flags(['milan', 'genoa'], min), at, { quiet: true });
      const window = { notBefore: new Date(at.getTime() - DAY), notAfter: new Date(at.getTime() + DAY) };
      return {
        policyKey: undefined as never, measurements: [{ measurement: new Uint8Array(48), hex: '00'.repeat(48), ...window }], statements: [],
        properties: parts.platformProperties!.map((c, i) => ({ ...c, ...window, claim: i + 3 })),
        platforms: parts.platformRoots!.map((r) => ({ key: undefined as never, label: r.name, platformType: SEV_SNP_PLATFORM, certificate: r.certificate, ...window })),
      };
    };
    const shared = platformWarnings(await policyOf([{ layout: 'family-19h', levels: [3, 0, 8, 84] }]), at);
    expect(shared, shared.join("\n")).to.have.length(1);
    expect(shared[0]).to.match(/^platform amd-sev-snp: policy claim 3 \(platform\[amd-sev-snp, .*tcb-microcode >= 84\]\) holds Milan and Genoa machines to one minimum TCB/);
    expect(platformWarnings(await policyOf(perProduct), at)).to.deep.equal([]);
  });

  it('warns of a pinned root whose machines no claim of their product admits (a policy made otherwise than by make-policy)', async () => {
    const milanOnly = (await claims(flags(['milan'], [perProduct[0]!]), at)).map((c, i) => ({ ...c, claim: i + 3 }));
    const genoaRoot = (await snpPolicyParts('make-policy', flags(['genoa'], [perProduct[1]!]), at, { quiet: true })).platformRoots![0]!;
    const policy = {
      policyKey: undefined as never, measurements: [], statements: [], properties: milanOnly,
      platforms: [{ key: undefined as never, label: 'ARK-Genoa', platformType: SEV_SNP_PLATFORM, certificate: genoaRoot.certificate, notBefore: new Date(at.getTime() - DAY), notAfter: new Date(at.getTime() + DAY) }],
    };
    expect(platformWarnings(policy, at).join('\n')).to.contain('every property claim in force for its layout names another product (milan) than its Genoa machines\' (ARK-Genoa): every Genoa machine will be refused (PLATFORM_PROPERTY_DENIED)');
  });
});
