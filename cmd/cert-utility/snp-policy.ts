// make-policy's SEV-SNP flags: which AMD roots to trust (AMD's pinned ARKs by product, or a root
// certificate named explicitly, e.g. a test signer's) and the platform properties every SNP
// machine must show (debug, migration agent, minimum TCB, VMPL, host data, ID-key digest). Turin's
// TCB levels are on a scale of their own (and it has an FMC level), so it has its own minimum TCB
// and its own property claim beside the one for family 19h (Milan, Genoa, roots given by file
// other than one named ARK-Turin). Each claim holds LAUNCH_TCB to its minimum too, unless
// --snp-any-launch-tcb.

import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import { CertifierError } from '../../lib/errors/index.ts';
import { AMD_CERTS, AMD_PRODUCTS, isPssSignedBy, layoutOfRoot, pinnedArk, pinnedProductOf, readAmdCert, rootLayout, type AmdProduct, type TcbLayout } from '../../lib/attest/index.ts';
import { COMPARATORS, describeRequirement, SEV_SNP_PLATFORM, showValue, SNP_PROPERTY, VERSION_PROPERTIES, versionNumber, type Comparator, type MakePolicyOptions, type Requirement } from '../../lib/policy/index.ts';
import { readCertificateFile } from '../common/keys.ts';
import { collect, decimal, intInRange, warn } from '../common/cli.ts';

export interface SnpPolicyFlags {
  trustAmdRoot: AmdProduct[];
  trustAmdRootCert: string[];
  snpMinTcb: MinTcb;
  snpVmpl: number;
  snpAllowDebug?: boolean;
  snpAllowMigrationAgent?: boolean;
  /** Write no LAUNCH_TCB minimums of --snp-min-tcb's levels: admit VMs launched under older firmware. */
  snpAnyLaunchTcb?: boolean;
  snpHostData?: string;
  snpIdKeyDigest?: string;
  snpProperty: SnpProperty[];
}

/** A --snp-property requirement; a LAUNCH_TCB level may name the layout whose claim it goes in (turin:, family19h:), or the product (milan:, genoa:). */
export type SnpProperty = Requirement & { layout?: Layout; product?: Family19hProduct };
/** The one layout whose claim a property goes in (launch-tcb-fmc is Turin's, prefixed or not), or undefined: every claim. */
const layoutOfProperty = (p: SnpProperty): Layout | undefined => p.layout ?? (p.name === SNP_PROPERTY.launchTcbFmc ? 'turin' : undefined);

/** Which TCB a root's machines report (lib/attest's layoutOfRoot): Turin's for ARK-Turin (pinned, or a root given by file named so), family 19h's for any other. */
type Layout = TcbLayout;
/** How --snp-property names a layout: turin:, family19h:. */
const PREFIXES: Record<Layout, string> = { 'family-19h': 'family19h', turin: 'turin' };
/**
 * Milan and Genoa share family 19h's TCB layout, not its scale (the real reports here: Milan at
 * 3:0:8:115, Genoa at 10:0:23:84): one minimum for both would hold each to the lower of the two
 * levels of each component. `milan=` and `genoa=` give each its own, in a claim naming the product.
 */
const FAMILY_19H_PRODUCTS = ['milan', 'genoa'] as const;
type Family19hProduct = (typeof FAMILY_19H_PRODUCTS)[number];
/** The lowest TCB accepted, of each layout given: family 19h's four levels (of one product, or of all), Turin's five (FMC first). */
export type MinTcb = { layout: Layout; levels: number[]; product?: Family19hProduct }[];
/** The minimum of a layout given without a product (family 19h's), or Turin's. */
const minimum = (o: SnpPolicyFlags, layout: Layout) => o.snpMinTcb.find((m) => m.layout === layout && !m.product)?.levels;
/** The family 19h minimums given per product (milan=, genoa=). */
const productMinimums = (o: SnpPolicyFlags) => o.snpMinTcb.filter((m) => m.product !== undefined);
const FORMS: Record<Layout, { flag: string; levels: number; example: string }> = {
  'family-19h': { flag: '--snp-min-tcb BOOTLOADER:TEE:SNP:MICROCODE', levels: 4, example: '3:0:8:115' },
  turin: { flag: '--snp-min-tcb turin=FMC:BOOTLOADER:TEE:SNP:MICROCODE', levels: 5, example: 'turin=0:1:0:2:71' },
};
/** LAUNCH_TCB's levels both layouts have (launch-tcb-fmc is Turin's only). */
const LAUNCH_LEVELS = [SNP_PROPERTY.launchTcbBootloader, SNP_PROPERTY.launchTcbTee, SNP_PROPERTY.launchTcbSnp, SNP_PROPERTY.launchTcbMicrocode] as const;
/** The LAUNCH_TCB level of each REPORTED_TCB level a minimum names. */
const LAUNCH_OF: Record<string, string> = {
  [SNP_PROPERTY.tcbFmc]: SNP_PROPERTY.launchTcbFmc, [SNP_PROPERTY.tcbBootloader]: SNP_PROPERTY.launchTcbBootloader, [SNP_PROPERTY.tcbTee]: SNP_PROPERTY.launchTcbTee,
  [SNP_PROPERTY.tcbSnp]: SNP_PROPERTY.launchTcbSnp, [SNP_PROPERTY.tcbMicrocode]: SNP_PROPERTY.launchTcbMicrocode,
};

/**
 * BL:TEE:SNP:UCODE (family 19h), milan=BL:TEE:SNP:UCODE or genoa=BL:TEE:SNP:UCODE (one product's),
 * or turin=FMC:BL:TEE:SNP:UCODE, each form at most once; the family 19h form does not go with the
 * per-product ones, whose claims it would undercut (any claim a machine meets admits it).
 */
function parseTcb(v: string, acc: MinTcb): MinTcb {
  const prefix = /^(turin|milan|genoa)=/.exec(v)?.[1];
  const layout: Layout = prefix === 'turin' ? 'turin' : 'family-19h';
  const product = prefix === 'milan' || prefix === 'genoa' ? prefix : undefined;
  const form = FORMS[layout];
  const parts = v.slice(prefix ? prefix.length + 1 : 0).split(/[:/]/);
  const levels = parts.map(decimal);
  if (parts.length !== form.levels || levels.some((n) => n === undefined || n > 255)) {
    throw new InvalidArgumentError(`expected BOOTLOADER:TEE:SNP:MICROCODE (Milan, Genoa: four numbers from 0 to 255, e.g. ${FORMS['family-19h'].example}; one product's: milan=... or genoa=...) or turin=FMC:BOOTLOADER:TEE:SNP:MICROCODE (five, e.g. ${FORMS.turin.example})`);
  }
  const named = (m: MinTcb[number]) => (m.product ? `the ${m.product}= minimum` : m.layout === 'turin' ? 'the turin= minimum' : 'the family 19h minimum (Milan, Genoa)');
  const twice = acc.find((m) => m.layout === layout && m.product === product);
  if (twice) throw new InvalidArgumentError(`${named(twice)} is given twice`);
  const other = acc.find((m) => m.layout === 'family-19h' && (m.product === undefined) !== (product === undefined));
  if (layout === 'family-19h' && other) {
    throw new InvalidArgumentError(`${named(other)} and ${named({ layout, levels: [], ...(product ? { product } : {}) })} do not go together: the family 19h minimum admits Milan and Genoa machines alike, whatever milan= or genoa= says; give one minimum per product, or one for both`);
  }
  return [...acc, { layout, levels: levels as number[], ...(product ? { product } : {}) }];
}

function parseHex(bytes: number) {
  return (v: string): string => {
    if (!new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`).test(v)) throw new InvalidArgumentError(`expected ${bytes * 2} hex digits`);
    return v.toLowerCase();
  };
}

/** The SEV-SNP properties whose values are text (hex digests, ids, the signing key's kind); the rest are numbers. */
const TEXT_PROPERTIES: readonly string[] = [
  SNP_PROPERTY.hostData, SNP_PROPERTY.idKeyDigest, SNP_PROPERTY.authorKeyDigest, SNP_PROPERTY.familyId, SNP_PROPERTY.imageId, SNP_PROPERTY.signingKey, SNP_PROPERTY.product,
];
const KNOWN_PROPERTIES: readonly string[] = Object.values(SNP_PROPERTY);
/** What a text property's value can be, as the verifier reports it: hex of the field's size, or the key kind. */
const TEXT_FORMS: Record<string, { re: RegExp; what: string }> = {
  [SNP_PROPERTY.hostData]: { re: /^[0-9a-f]{64}$/, what: '64 hex digits (HOST_DATA is 32 bytes)' },
  [SNP_PROPERTY.idKeyDigest]: { re: /^[0-9a-f]{96}$/, what: '96 hex digits (a 48-byte digest)' },
  [SNP_PROPERTY.authorKeyDigest]: { re: /^[0-9a-f]{96}$/, what: '96 hex digits (a 48-byte digest)' },
  [SNP_PROPERTY.familyId]: { re: /^[0-9a-f]{32}$/, what: '32 hex digits (FAMILY_ID is 16 bytes)' },
  [SNP_PROPERTY.imageId]: { re: /^[0-9a-f]{32}$/, what: '32 hex digits (IMAGE_ID is 16 bytes)' },
  [SNP_PROPERTY.signingKey]: { re: /^(vcek|vlek)$/, what: 'vcek or vlek' },
  [SNP_PROPERTY.product]: { re: new RegExp(`^(${AMD_PRODUCTS.join('|')})$`), what: AMD_PRODUCTS.join(', ') },
};

/** The values the verifier can report for each number property (flags are 0 or 1; SPLs and ABI bytes). */
const NUMBER_RANGES: Record<string, [number, number]> = {
  [SNP_PROPERTY.debug]: [0, 1], [SNP_PROPERTY.migrateMa]: [0, 1], [SNP_PROPERTY.smtAllowed]: [0, 1], [SNP_PROPERTY.singleSocket]: [0, 1],
  [SNP_PROPERTY.abiMajor]: [0, 255], [SNP_PROPERTY.abiMinor]: [0, 255], [SNP_PROPERTY.vmpl]: [0, 3], [SNP_PROPERTY.guestSvn]: [0, 2 ** 32 - 1],
  [SNP_PROPERTY.tcbBootloader]: [0, 255], [SNP_PROPERTY.tcbTee]: [0, 255], [SNP_PROPERTY.tcbSnp]: [0, 255], [SNP_PROPERTY.tcbMicrocode]: [0, 255],
  [SNP_PROPERTY.launchTcbBootloader]: [0, 255], [SNP_PROPERTY.launchTcbTee]: [0, 255], [SNP_PROPERTY.launchTcbSnp]: [0, 255], [SNP_PROPERTY.launchTcbMicrocode]: [0, 255],
  [SNP_PROPERTY.tcbFmc]: [0, 255], [SNP_PROPERTY.launchTcbFmc]: [0, 255],
  [SNP_PROPERTY.reportVersion]: [2, 5],
  ...Object.fromEntries([
    SNP_PROPERTY.cxlAllowed, SNP_PROPERTY.memAes256Xts, SNP_PROPERTY.raplDisabled, SNP_PROPERTY.ciphertextHiding, SNP_PROPERTY.pageSwapDisabled,
    SNP_PROPERTY.platformSmtEnabled, SNP_PROPERTY.platformTsmeEnabled, SNP_PROPERTY.platformEccEnabled, SNP_PROPERTY.platformRaplDisabled,
    SNP_PROPERTY.platformCiphertextHiding, SNP_PROPERTY.platformAliasCheckComplete,
  ].map((name) => [name, [0, 1] as [number, number]])),
};

/** A version property's value (abi-version, firmware-version, ...), MAJOR.MINOR (each 0 to 255), as the one number the verifier reports. */
function parseVersion(name: string, value: string): number {
  const [major, minor, ...rest] = value.split('.').map(decimal);
  if (major === undefined || minor === undefined || rest.length > 0 || major > 255 || minor > 255) throw new InvalidArgumentError(`${name} is MAJOR.MINOR, each from 0 to 255 (e.g. ${name}>=1.51), not "${value}"`);
  return versionNumber(major, minor);
}

/**
 * The layout (and product) a LAUNCH_TCB level's prefix names (turin:, family19h:; milan: and genoa:
 * the claim of that product's minimum), or USAGE: a prefix is for those levels only, and
 * launch-tcb-fmc is Turin's (its prefix optional).
 */
function layoutPrefix(prefix: string | undefined, name: string): { layout: Layout; product?: Family19hProduct } | undefined {
  if (prefix === undefined) return undefined;
  const product = (FAMILY_19H_PRODUCTS as readonly string[]).includes(prefix) ? prefix as Family19hProduct : undefined;
  const layout = product ? 'family-19h' : (Object.keys(PREFIXES) as Layout[]).find((l) => PREFIXES[l] === prefix);
  if (!layout) throw new InvalidArgumentError(`"${prefix}:" names no TCB layout: a LAUNCH_TCB level's is turin: (Turin) or family19h: (Milan, Genoa), or milan: or genoa: (one product's, beside --snp-min-tcb milan= and genoa=)`);
  const levels: readonly string[] = [...LAUNCH_LEVELS, SNP_PROPERTY.launchTcbFmc];
  if (!levels.includes(name)) {
    throw new InvalidArgumentError(`"${prefix}:" names the TCB layout of a LAUNCH_TCB level (${levels.join(', ')}) only, not of ${name}${name.startsWith('tcb-') ? ' (the minimum TCB of each layout is --snp-min-tcb)' : ''}`);
  }
  if (name === SNP_PROPERTY.launchTcbFmc && layout === 'family-19h') throw new InvalidArgumentError(`${name} is reported by Turin machines only: family 19h machines (Milan, Genoa) have no FMC level`);
  return { layout, ...(product ? { product } : {}) };
}

/**
 * "name>=n", "name<=n", "name=n" or "name=text", for a property the SEV-SNP verifier reports, a
 * LAUNCH_TCB level perhaps prefixed by its layout ("turin:launch-tcb-snp>=2"). A misspelt name or
 * a number compared with text would make a policy that refuses every VM.
 */
function parseProperty(v: string, acc: SnpProperty[]): SnpProperty[] {
  const m = /^(?:([a-z0-9]+):)?([a-z0-9][a-z0-9-]*)(>=|<=|=)(.+)$/.exec(v);
  if (!m || !(COMPARATORS as readonly string[]).includes(m[3]!)) throw new InvalidArgumentError('expected NAME=VALUE, NAME>=N or NAME<=N');
  const [, prefix, name, comparator, value] = m as unknown as [string, string | undefined, string, Comparator, string];
  if (!KNOWN_PROPERTIES.includes(name)) throw new InvalidArgumentError(`no SEV-SNP property is named "${name}" (one of ${KNOWN_PROPERTIES.join(', ')})`);
  return [...acc, { ...parseValue(name, comparator, value), ...layoutPrefix(prefix, name) }];
}

/** A known property's value, checked against what the verifier can report for it. */
function parseValue(name: string, comparator: Comparator, value: string): Requirement {
  if (TEXT_PROPERTIES.includes(name)) {
    if (comparator !== '=') throw new InvalidArgumentError(`${name} is text: compare it with =`);
    // A value the verifier can never report would make a policy that refuses every VM.
    const form = TEXT_FORMS[name];
    if (form && !form.re.test(value.toLowerCase())) throw new InvalidArgumentError(`${name} is ${form.what}, not "${value}"`);
    return { name, comparator, value: value.toLowerCase() };
  }
  if (VERSION_PROPERTIES.includes(name)) return { name, comparator, value: parseVersion(name, value) };
  const n = decimal(value);
  if (n === undefined) throw new InvalidArgumentError(`${name} is a number: ${name}${comparator}N`);
  const range = NUMBER_RANGES[name];
  if (range && (n < range[0] || n > range[1])) throw new InvalidArgumentError(`${name} is reported as a number from ${range[0]} to ${range[1]}, not ${value}`);
  return { name, comparator, value: n };
}

export function snpPolicyOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--trust-amd-root <product>', `trust AMD's pinned ARK of this product (${AMD_PRODUCTS.join(' or ')}) for SEV-SNP evidence (repeatable)`).argParser((v: string, acc: AmdProduct[]) => {
      if (!(AMD_PRODUCTS as readonly string[]).includes(v)) throw new InvalidArgumentError(`choose ${AMD_PRODUCTS.join(' or ')}`);
      return [...acc, v as AmdProduct];
    }).default([]))
    .option('--trust-amd-root-cert <file>', 'trust this ARK certificate for SEV-SNP evidence: for tests (a test signer) and other products only (repeatable)', collect<string>, [])
    .option('--snp-min-tcb <bl:tee:snp:ucode|turin=fmc:bl:tee:snp:ucode>', 'SEV-SNP: the lowest REPORTED_TCB accepted, BL:TEE:SNP:UCODE of Milan and Genoa (and of a root given by file not named ARK-Turin), or milan=BL:TEE:SNP:UCODE and genoa=BL:TEE:SNP:UCODE, one for each, turin=FMC:BL:TEE:SNP:UCODE of Turin (and of a root given by file named ARK-Turin); required for the roots trusted, each form at most once', parseTcb, [])
    .option('--snp-vmpl <n>', 'SEV-SNP: the VMPL a report must come from', intInRange(0, 3, 'expected 0, 1, 2 or 3'), 0)
    .option('--snp-allow-debug', 'SEV-SNP: also accept guests whose policy allows debugging (never in production)')
    .option('--snp-allow-migration-agent', 'SEV-SNP: also accept guests whose policy allows a migration agent')
    .option('--snp-any-launch-tcb', 'SEV-SNP: do not hold LAUNCH_TCB to the --snp-min-tcb levels too: also accept VMs launched under older firmware and updated live since (a launch the host may have tampered with)')
    .option('--snp-host-data <hex>', 'SEV-SNP: require this HOST_DATA (64 hex digits)', parseHex(32))
    .option('--snp-id-key-digest <hex>', 'SEV-SNP: require this ID_KEY_DIGEST (96 hex digits: the VM was launched with an ID block signed by this key)', parseHex(48))
    .option('--snp-property <expr>', 'SEV-SNP: any further property, e.g. guest-svn>=2, abi-version>=1.51 or firmware-version>=1.55 (MAJOR.MINOR; repeatable; see the README); a LAUNCH_TCB level (at or above the --snp-min-tcb one, unless --snp-any-launch-tcb) beside roots of both layouts names its own, turin:launch-tcb-snp>=3 or family19h:launch-tcb-snp>=9, and beside a minimum per product its product, milan:launch-tcb-snp>=9', parseProperty, []);
}

/**
 * The minimum TCBs and FMC properties the layouts of the roots trusted need, or USAGE: each layout
 * its own --snp-min-tcb form; and, once every root's layout is known (`known`), no form nor FMC
 * property for a layout no root has. Turin's minimum FMC level is said one way: the turin= form.
 */
function checkLayouts(o: SnpPolicyFlags, layouts: ReadonlySet<Layout>, known: boolean): void {
  if (layouts.has('family-19h') && !minimum(o, 'family-19h') && productMinimums(o).length === 0) throw new CertifierError('USAGE', `trusting an AMD root other than Turin's needs ${FORMS['family-19h'].flag}, the lowest TCB accepted of Milan and Genoa machines (and of a root given by file not named ARK-Turin): there is no safe default`);
  if (layouts.has('turin') && !minimum(o, 'turin')) throw new CertifierError('USAGE', `trusting a Turin root (ARK-Turin) needs ${FORMS.turin.flag}, the lowest TCB accepted of Turin machines, whose levels are on a scale of their own: there is no safe default`);
  if (o.snpProperty.some((p) => p.name === SNP_PROPERTY.tcbFmc) && (layouts.has('turin') || !known)) {
    throw new CertifierError('USAGE', `--snp-property ${SNP_PROPERTY.tcbFmc}: Turin's minimum FMC level is the first of ${FORMS.turin.flag}, the one way to give it`);
  }
  // A LAUNCH_TCB level is on its layout's scale, as REPORTED_TCB's: one number in both claims
  // would hold one product to the other's level (Turin's SNP 2 is below any Milan's). Beside
  // roots of both layouts, each level names the layout it is for.
  const launch = o.snpProperty.find((p) => !p.layout && (LAUNCH_LEVELS as readonly string[]).includes(p.name));
  if (launch && layouts.size > 1) {
    throw new CertifierError('USAGE', `--snp-property ${launch.name}: a LAUNCH_TCB level is on the scale of its product's TCB, and the policy trusts both Turin's root and another, so one number would hold each product to the other's level: name the layout it is for, --snp-property turin:${launch.name}... (Turin) or ${productMinimums(o).length ? `milan:${launch.name}... or genoa:${launch.name}... (Milan's, Genoa's)` : `family19h:${launch.name}... (Milan, Genoa)`}`);
  }
  if (!known) return;
  const noTurin = 'Turin machines only, and the policy trusts no Turin root (--trust-amd-root turin, or a root given by file named ARK-Turin)';
  const fmc = o.snpProperty.find((p) => p.name === SNP_PROPERTY.tcbFmc || p.name === SNP_PROPERTY.launchTcbFmc);
  if (fmc && !layouts.has('turin')) throw new CertifierError('USAGE', `--snp-property ${fmc.name} is reported by ${noTurin}: a claim naming it would admit no machine`);
  const elsewhere = o.snpProperty.find((p) => p.layout && !layouts.has(p.layout));
  if (elsewhere?.layout) throw new CertifierError('USAGE', `--snp-property ${elsewhere.product ?? PREFIXES[elsewhere.layout]}:${elsewhere.name} is for ${elsewhere.layout === 'turin' ? noTurin : 'Milan and Genoa machines, and the policy trusts Turin roots only (ARK-Turin)'}: it would go into no claim`);
  if (minimum(o, 'turin') && !layouts.has('turin')) throw new CertifierError('USAGE', `${FORMS.turin.flag} is the minimum of ${noTurin}`);
  if (minimum(o, 'family-19h') && !layouts.has('family-19h')) throw new CertifierError('USAGE', `${FORMS['family-19h'].flag} is the minimum of Milan and Genoa machines, and the policy trusts Turin roots only (ARK-Turin): give ${FORMS.turin.flag} alone`);
}

/**
 * The per-product minimums (milan=, genoa=) and the family 19h roots trusted go together, or USAGE:
 * each such root needs its product's minimum, which only a pinned root has (one given by file
 * takes the family 19h form), and each minimum its product's root. `products`: the product of
 * each family 19h root (undefined for one not pinned); `known`: every root's is known.
 */
function checkProducts(o: SnpPolicyFlags, products: (AmdProduct | undefined)[], known: boolean): void {
  checkProductLevels(o);
  const given = productMinimums(o);
  if (given.length === 0) return;
  if (products.includes(undefined)) {
    throw new CertifierError('USAGE', 'a root given by file that is not one of AMD\'s pinned ARKs names no product: its machines take the family 19h minimum, BOOTLOADER:TEE:SNP:MICROCODE, which does not go with milan= or genoa=');
  }
  const uncovered = products.find((p) => !given.some((m) => m.product === p));
  if (uncovered) throw new CertifierError('USAGE', `trusting AMD's ${uncovered} root with a minimum TCB per product needs --snp-min-tcb ${uncovered}=BOOTLOADER:TEE:SNP:MICROCODE too: its machines would all be refused`);
  const unused = known ? given.find((m) => !products.includes(m.product)) : undefined;
  if (unused) throw new CertifierError('USAGE', `--snp-min-tcb ${unused.product}=... is the minimum of ${unused.product} machines, and the policy does not trust AMD's ${unused.product} root (--trust-amd-root ${unused.product}): it would go into no claim`);
}

/**
 * A LAUNCH_TCB level beside minimums per product (milan=, genoa=) names its product (milan:,
 * genoa:), as one beside roots of both layouts names its layout: one number in both claims would
 * hold each product to the other's level. A product's prefix needs that product's minimum: USAGE.
 */
function checkProductLevels(o: SnpPolicyFlags): void {
  const given = productMinimums(o);
  const orphan = o.snpProperty.find((p) => p.product && !given.some((m) => m.product === p.product));
  if (orphan) throw new CertifierError('USAGE', `--snp-property ${spelt(orphan)} goes into the claim of --snp-min-tcb ${orphan.product}=BOOTLOADER:TEE:SNP:MICROCODE, which is not given: it would go into no claim`);
  const shared = given.length ? o.snpProperty.find((p) => !p.product && p.layout !== 'turin' && (LAUNCH_LEVELS as readonly string[]).includes(p.name)) : undefined;
  if (shared) throw new CertifierError('USAGE', `--snp-property ${spelt(shared)}: beside a minimum TCB per product (milan=, genoa=), a LAUNCH_TCB level names the product it is for, as Milan's and Genoa's levels are on scales of their own: --snp-property milan:${shared.name}... or genoa:${shared.name}...`);
}

/** A --snp-property as given: its layout's (or product's) prefix, if any, and its value as the user writes it. */
const spelt = (p: SnpProperty) => `${p.product ? `${p.product}:` : p.layout ? `${PREFIXES[p.layout]}:` : ''}${p.name}${p.comparator}${showValue(p.name, p.value)}`;
/** Two --snp-property values that would go into one claim: one property, and the same layout's (and product's) claim or one of them every claim's. */
const oneClaim = (a: SnpProperty, b: SnpProperty) => a.name === b.name && (layoutOfProperty(a) ?? layoutOfProperty(b)) === (layoutOfProperty(b) ?? layoutOfProperty(a)) && (a.product ?? b.product) === (b.product ?? a.product);
const alike = (a: SnpProperty, b: SnpProperty) => a.comparator === b.comparator && a.value === b.value;
/** Each --snp-property that repeats an earlier one exactly (into the same claim), with that earlier one. */
const repeats = (o: SnpPolicyFlags) => o.snpProperty.flatMap((p, i) => {
  const first = o.snpProperty.slice(0, i).find((q) => oneClaim(q, p));
  return first ? [[first, p] as const] : [];
});

/**
 * A claim names a property once, or USAGE: two --snp-property values of one property that would go
 * into one claim and differ (two minimums, a minimum and a maximum) make a policy that says two
 * things of it. The same value given twice is no contradiction: the claim names it once.
 */
function checkRepeats(o: SnpPolicyFlags): void {
  const unlike = repeats(o).find(([a, b]) => !alike(a, b));
  if (unlike) {
    const [a, b] = unlike;
    throw new CertifierError('USAGE', `--snp-property ${spelt(a)} and --snp-property ${spelt(b)} both set ${a.name} in one claim, which names each property once: the policy would say two things of it; give one`);
  }
}

/**
 * The SEV-SNP flags go together, or USAGE: the --snp-* flags need a root, a root --snp-min-tcb,
 * and each product named its own form of it (checkLayouts; a root given by file is checked once
 * it is read, in snpPolicyParts). Reads nothing.
 */
export function checkSnpFlags(o: SnpPolicyFlags): void {
  const roots = o.trustAmdRoot.length + o.trustAmdRootCert.length;
  const snpOnly = o.snpMinTcb.length > 0 || o.snpAllowDebug || o.snpAllowMigrationAgent || o.snpAnyLaunchTcb || o.snpHostData || o.snpIdKeyDigest || o.snpProperty.length > 0 || o.snpVmpl !== 0;
  if (roots === 0 && snpOnly) throw new CertifierError('USAGE', 'the --snp-* flags need --trust-amd-root or --trust-amd-root-cert');
  if (roots > 0 && o.snpMinTcb.length === 0) throw new CertifierError('USAGE', `trusting an AMD root needs ${FORMS['family-19h'].flag} (Milan, Genoa, a root given by file) or ${FORMS.turin.flag} (Turin, a root given by file named ARK-Turin), the lowest TCB accepted: there is no safe default`);
  if (roots > 0) checkLayouts(o, new Set(o.trustAmdRoot.map((p) => layoutOfRoot(p, AMD_CERTS[p].arkName))), o.trustAmdRootCert.length === 0);
  if (roots > 0) checkProductLevels(o);
  if (roots > 0 && o.trustAmdRootCert.length === 0) checkProducts(o, o.trustAmdRoot.filter((p) => layoutOfRoot(p, AMD_CERTS[p].arkName) === 'family-19h'), true);
}

/**
 * The roots and the property claims the flags ask for, once checkSnpFlags took them (make-policy's
 * check, before the run), reading the roots given by file; USAGE for what their layouts refuse.
 * `quiet`: no warnings (--check-only, which reads and checks them as the run will, and says nothing).
 */
export async function snpPolicyParts(program: string, o: SnpPolicyFlags, at: Date, { quiet = false } = {}): Promise<Pick<MakePolicyOptions, 'platformRoots' | 'platformProperties'>> {
  // Said once every check passed: a run refused says why, not what it would have warned of first.
  const notes: string[] = [];
  const roots: NonNullable<MakePolicyOptions['platformRoots']> = o.trustAmdRoot.map((p) => ({ platformType: SEV_SNP_PLATFORM, certificate: pinnedArk(p), name: AMD_CERTS[p].arkName }));
  for (const file of o.trustAmdRootCert) {
    const der = await readCertificateFile(file);
    const ark = readAmdCert(der, 'ARK');
    if (!isPssSignedBy(ark, ark.publicKey) || !ark.isCA || at > ark.notAfter) {
      throw new CertifierError('BAD_CERTIFICATE', `${file} is not a valid self-signed ARK (RSA-PSS SHA-384, a CA, not expired)`);
    }
    if (!pinnedProductOf(der)) {
      const layout = rootLayout(der) === 'turin' ? 'Turin\'s TCB (it is named ARK-Turin)' : 'family 19h\'s TCB (Milan, Genoa)';
      notes.push(`${file} ("${ark.name}") is not one of AMD's pinned roots: whoever holds its key can vouch for any machine (meant for tests and other products); its machines are taken to report ${layout}`);
    }
    roots.push({ platformType: SEV_SNP_PLATFORM, certificate: der, name: ark.name });
  }
  const twice = roots.find((r, i) => roots.findIndex((x) => Buffer.from(x.certificate).equals(Buffer.from(r.certificate))) !== i);
  if (twice) throw new CertifierError('USAGE', `the AMD root ${twice.name} is named twice (--trust-amd-root, --trust-amd-root-cert): the policy would say it twice`);
  if (roots.length === 0) return {};
  const layouts = new Set(roots.map((r) => rootLayout(r.certificate)));
  checkRepeats(o);
  checkLayouts(o, layouts, true);
  checkProducts(o, roots.filter((r) => rootLayout(r.certificate) === 'family-19h').map((r) => pinnedProductOf(r.certificate)), true);
  const P = SNP_PROPERTY;
  const guest: Requirement[] = [
    { name: P.debug, comparator: '<=', value: o.snpAllowDebug ? 1 : 0 },
    { name: P.migrateMa, comparator: '<=', value: o.snpAllowMigrationAgent ? 1 : 0 },
    { name: P.vmpl, comparator: '=', value: o.snpVmpl },
  ];
  const given: Requirement[] = [
    ...(o.snpHostData ? [{ name: P.hostData, comparator: '=' as const, value: o.snpHostData }] : []),
    ...(o.snpIdKeyDigest ? [{ name: P.idKeyDigest, comparator: '=' as const, value: o.snpIdKeyDigest }] : []),
  ];
  const tcb = [P.tcbBootloader, P.tcbTee, P.tcbSnp, P.tcbMicrocode];
  // A claim per product names its product itself.
  const set = [...guest, ...given].map((r) => r.name).concat(tcb, productMinimums(o).length ? [P.product] : []);
  const again = o.snpProperty.find((extra) => set.includes(extra.name));
  if (again) throw new CertifierError('USAGE', `--snp-property ${again.name} is already set by another flag`);
  const repeated = repeats(o);
  for (const [first, repeat] of repeated) {
    notes.push(`--snp-property ${spelt(repeat)} ${spelt(repeat) === spelt(first) ? 'is given twice' : `repeats ${spelt(first)}`}: the policy says it once`);
  }
  const once = o.snpProperty.filter((p) => !repeated.some(([, r]) => r === p));
  if (o.snpAnyLaunchTcb) notes.push('--snp-any-launch-tcb: the policy holds REPORTED_TCB to the minimum TCB, not LAUNCH_TCB: it admits a VM launched under older firmware (a launch the host may have tampered with) once that firmware is updated live');
  // One claim per TCB layout: a claim naming tcb-fmc denies Milan and Genoa evidence (which has no
  // FMC level), and one not naming it denies Turin evidence (REQUIRED_IF_PRESENT), so neither
  // product's machines are judged by the other's minimum. A property naming its layout (a
  // LAUNCH_TCB level; launch-tcb-fmc is always Turin's) goes in that layout's claim only.
  const claim = (layout: Layout, names: string[], levels: number[], product?: Family19hProduct) => ({
    platformType: SEV_SNP_PLATFORM,
    requirements: [
      ...guest, ...(product ? [{ name: P.product, comparator: '=' as const, value: product }] : []),
      ...names.map((name, i): Requirement => ({ name, comparator: '>=', value: levels[i]! })), ...given,
      ...withLaunchMinimums(o, names, levels, once.filter((p) => (layoutOfProperty(p) ?? layout) === layout && (p.product === undefined || p.product === product))),
    ],
  });
  const platformProperties = [
    // Per product (milan=, genoa=), a claim each, naming its product; else one for both.
    ...(!layouts.has('family-19h') ? [] : productMinimums(o).length
      ? productMinimums(o).map((m) => claim('family-19h', tcb, m.levels, m.product))
      : [claim('family-19h', tcb, minimum(o, 'family-19h')!)]),
    ...(layouts.has('turin') ? [claim('turin', [P.tcbFmc, ...tcb], minimum(o, 'turin')!)] : []),
  ];
  if (!quiet) for (const note of notes) warn(program, note);
  return { platformRoots: roots, platformProperties };
}

/**
 * A claim's --snp-property requirements (`extra`) after the LAUNCH_TCB minimums of its minimum TCB
 * (the REPORTED_TCB levels `names` at `levels`), written as a --snp-property launch-tcb-*>=N of
 * its layout would be: a host can launch a VM under firmware older than the minimum (a launch it
 * may have tampered with) and update the firmware live, after which REPORTED_TCB passes. A level
 * given takes its minimum's place if it admits no launch below it (>= or = a level at or above
 * it), and is USAGE otherwise. --snp-any-launch-tcb: no minimums, the levels given as given.
 */
function withLaunchMinimums(o: SnpPolicyFlags, names: string[], levels: number[], extra: SnpProperty[]): Requirement[] {
  const plain = ({ name, comparator, value }: SnpProperty): Requirement => ({ name, comparator, value });
  if (o.snpAnyLaunchTcb) return extra.map(plain);
  const minimums = names.map((name, i): Requirement => ({ name: LAUNCH_OF[name]!, comparator: '>=', value: levels[i]! }));
  const held = minimums.map((m) => {
    const given = extra.find((p) => p.name === m.name);
    if (!given) return m;
    if (given.comparator !== '<=' && Number(given.value) >= Number(m.value)) return plain(given);
    throw new CertifierError('USAGE', `--snp-property ${spelt(given)} would admit a VM launched under a TCB below the minimum, and make-policy holds LAUNCH_TCB to --snp-min-tcb's levels too (${describeRequirement(m)}, in the same claim), which a claim names once: give a level at or above it, or --snp-any-launch-tcb to accept VMs launched under older firmware`);
  });
  return [...held, ...extra.filter((p) => !minimums.some((m) => m.name === p.name)).map(plain)];
}
