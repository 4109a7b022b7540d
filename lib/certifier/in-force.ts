// What a policy can admit at a time, for simpleserver to say at start and on a reload: the policy
// as a whole (policyNotInForce: a reload of one that admits nobody is refused), and each platform
// it trusts (platformWarnings: one whose machines would all be refused, beside others admitted,
// and an SEV-SNP property claim that admits no machine), and the AMD roots checked without
// revocation (rootsWithoutCrl).

import { pinnedProductOf, rootLayout, SIMULATED_ENCLAVE, type TcbLayout, type VerifiedAmdCrl } from '../attest/index.ts';
import { bytesSame } from '../pki/index.ts';
import { describeRequirement, describeWindow, propertyClaimsOf, REQUIRED_IF_PRESENT, SEV_SNP_PLATFORM, SNP_PROPERTY, within, type Policy, type TrustedPlatform, type TrustedProperties, type Window } from '../policy/index.ts';

/** When the first claim of the policy ends (undefined for a policy without claims, which admits nobody). */
export function policyEnds(policy: Policy): Date | undefined {
  const ends = [...policy.platforms, ...policy.measurements, ...policy.properties].map((c) => c.notAfter.getTime());
  return ends.length ? new Date(Math.min(...ends)) : undefined;
}

/**
 * Why `policy` can admit no machine at `at`, or undefined when it can: all its platform claims,
 * or all its measurement claims, are outside their dates (ended, or not begun: signed on a clock
 * running ahead), or every platform claim in force is for a platform whose property claims are
 * all outside theirs (an SEV-SNP policy whose property claims ended). Such a policy would refuse
 * every request with CLAIM_EXPIRED.
 */
export function policyNotInForce(policy: Policy, at: Date): string | undefined {
  const describe = (what: string, ws: Window[]) =>
    `none of its ${what} claims is in force at ${at.toISOString()} (${ws.map(describeWindow).join(', ')})`;
  if (policy.platforms.length && !policy.platforms.some((w) => within(w, at))) return describe('platform', policy.platforms);
  if (policy.measurements.length && !policy.measurements.some((w) => within(w, at))) return describe('measurement', policy.measurements);
  // A platform claim of no type vouches for evidence of any, some of which no property claim concerns.
  const propertiesOut = (type: string | undefined) => {
    if (type === undefined) return false;
    const { all, inForce } = propertyClaimsOf(policy.properties, type, at);
    return all.length > 0 && inForce.length === 0;
  };
  const inForce = policy.platforms.filter((w) => within(w, at));
  if (inForce.length && inForce.every((p) => propertiesOut(p.platformType))) return describe(`${inForce[0]!.platformType} property`, propertyClaimsOf(policy.properties, inForce[0]!.platformType!, at).all);
  return undefined;
}

/** The platforms simpleserver certifies: which platform claims vouch for their evidence, the size of their measurements, whether their evidence carries properties. */
const PLATFORMS: { platform: string; trusts: (p: TrustedPlatform) => boolean; measurementBytes: number; properties: boolean }[] = [
  // A platform key (a claim of no type) vouches for evidence of any type: the simulated platform's.
  { platform: SIMULATED_ENCLAVE, trusts: (p) => p.platformType === undefined, measurementBytes: 32, properties: false },
  { platform: SEV_SNP_PLATFORM, trusts: (p) => p.platformType === SEV_SNP_PLATFORM, measurementBytes: 48, properties: true },
];

/** The SEV-SNP properties only Turin's TCB has (its FMC level: lib/attest's snpProperties); Milan's and Genoa's reports have none of them. */
const TURIN_ONLY: readonly string[] = [SNP_PROPERTY.tcbFmc, SNP_PROPERTY.launchTcbFmc];
/** What a Turin report's claim must name: REQUIRED_IF_PRESENT, which only Turin's TCB has (tcb-fmc). */
const TURIN_NEEDS = REQUIRED_IF_PRESENT[SEV_SNP_PLATFORM] ?? [];
const names = (c: TrustedProperties, name: string) => c.requirements.some((r) => r.name === name);

/**
 * The TCB layout of the machines an SEV-SNP property claim can admit: Turin's when it names
 * tcb-fmc (a Turin report is judged only by a claim naming what REQUIRED_IF_PRESENT lists),
 * family 19h's (Milan, Genoa) when it names nothing only Turin reports, and none (undefined) when
 * it names a Turin level but not tcb-fmc: a hand-written claim with launch-tcb-fmc alone refuses
 * every Milan and Genoa machine (no such level) and every Turin one (tcb-fmc unnamed). No claim
 * suits both: naming tcb-fmc, or not, decides.
 */
export function claimLayout(c: TrustedProperties): TcbLayout | undefined {
  if (TURIN_NEEDS.every((n) => names(c, n))) return 'turin';
  return TURIN_ONLY.some((n) => names(c, n)) ? undefined : 'family-19h';
}

/** The AMD product a claim is for (it names product = P), or undefined for a claim of every product of its layout. */
export function claimProduct(c: TrustedProperties): string | undefined {
  const r = c.requirements.find((x) => x.name === SNP_PROPERTY.product && x.comparator === '=');
  return typeof r?.value === 'string' ? r.value : undefined;
}

/** A property claim by its place in the policy (when known) and as print-policy shows it. */
const describeClaim = (c: TrustedProperties) => `${c.claim ? `policy claim ${c.claim}` : 'a property claim'} (platform[${[c.platformType, ...c.requirements.map(describeRequirement)].join(', ')}])`;

/**
 * Of the AMD roots the policy trusts in force, the products (Milan, Genoa, Turin) none of whose
 * machines any property claim in force could admit because of their TCB's layout (claimLayout);
 * and each claim in force that admits no machine at all, named. A root not pinned is of the
 * layout lib/attest's rootLayout gives it (Turin's when named ARK-Turin, else family 19h's),
 * named as such.
 */
function productWarnings(roots: TrustedPlatform[], claims: TrustedProperties[], at: Date): string[] {
  const lines: string[] = [];
  for (const root of roots.filter((r) => within(r, at) && r.certificate)) {
    const turin = rootLayout(root.certificate!) === 'turin';
    const product = pinnedProductOf(root.certificate!);
    const ofLayout = claims.filter((c) => claimLayout(c) === (turin ? 'turin' : 'family-19h'));
    // A claim naming a product admits only that product's machines (none under a root not pinned).
    if (ofLayout.some((c) => claimProduct(c) === undefined || claimProduct(c) === product)) continue;
    const Product = product ? product[0]!.toUpperCase() + product.slice(1) : turin ? 'Turin' : 'family 19h';
    const named = TURIN_ONLY.filter((n) => claims.some((c) => names(c, n)));
    const others = [...new Set(ofLayout.map(claimProduct))].join(', ');
    const why = ofLayout.length
      ? `every property claim in force for its layout names another product (${others}) than its ${Product} machines' (${root.label})`
      : turin
        ? `no property claim in force names ${TURIN_NEEDS.join(', ')}, which the reports of its ${Product} machines (${root.label}) have`
        : `every property claim in force names ${named.join(' or ')}, which the reports of its ${Product} machines (${root.label}) do not have`;
    lines.push(`platform ${SEV_SNP_PLATFORM}: ${why}: every ${Product} machine will be refused (PLATFORM_PROPERTY_DENIED)`);
  }
  // Milan's and Genoa's TCB levels share a layout, not a scale: one claim for both holds each to the
  // lower level of each component, admitting the other's older firmware or microcode.
  const pinned = new Set(roots.filter((r) => within(r, at) && r.certificate).map((r) => pinnedProductOf(r.certificate!)));
  if (pinned.has('milan') && pinned.has('genoa')) {
    for (const c of claims.filter((c) => claimLayout(c) === 'family-19h' && claimProduct(c) === undefined)) {
      lines.push(`platform ${SEV_SNP_PLATFORM}: ${describeClaim(c)} holds Milan and Genoa machines to one minimum TCB, though their levels are on scales of their own (the real reports here: Milan at 3:0:8:115, Genoa at 10:0:23:84): it admits each at the other's level; give each its own (make-policy --snp-min-tcb milan=... --snp-min-tcb genoa=...)`);
    }
  }
  for (const c of claims.filter((c) => claimLayout(c) === undefined)) {
    const turinOnly = TURIN_ONLY.filter((n) => names(c, n)).join(', ');
    const missing = TURIN_NEEDS.filter((n) => !names(c, n)).join(', ');
    lines.push(`platform ${SEV_SNP_PLATFORM}: ${describeClaim(c)} names ${turinOnly}, which only Turin machines report, and not ${missing}, which a claim admitting a Turin machine must name: it admits no machine (PLATFORM_PROPERTY_DENIED)`);
  }
  return lines;
}

/**
 * For each platform `policy` trusts whose every machine it would refuse at `at`, one line saying
 * why and with which code: no platform claim of it in force (CLAIM_EXPIRED), no property claim for
 * a platform whose evidence carries properties (PLATFORM_PROPERTY_DENIED) or none in force
 * (CLAIM_EXPIRED), no measurement of its size (MEASUREMENT_NOT_TRUSTED) or none in force
 * (CLAIM_EXPIRED); and for SEV-SNP, an AMD product none of whose machines a property claim in
 * force suits, and a property claim in force that suits none (productWarnings). A platform the
 * policy does not trust at all is not named.
 */
export function platformWarnings(policy: Policy, at: Date): string[] {
  const lines: string[] = [];
  const when = `in force at ${at.toISOString()}`;
  const windows = (ws: Window[]) => ws.map(describeWindow).join(', ');
  for (const { platform, trusts, measurementBytes, properties } of PLATFORMS) {
    const claims = policy.platforms.filter(trusts);
    if (claims.length === 0) continue;
    const refused = (why: string, code: string) => lines.push(`platform ${platform}: ${why}: every machine of it will be refused (${code})`);
    if (!claims.some((c) => within(c, at))) {
      refused(`none of the claims trusting it is ${when} (${windows(claims)})`, 'CLAIM_EXPIRED');
      continue;
    }
    const { all, inForce } = propertyClaimsOf(policy.properties, platform, at);
    if (properties && all.length === 0) refused('the policy sets no property claims for it (minimum TCB, debug, VMPL)', 'PLATFORM_PROPERTY_DENIED');
    else if (all.length > 0 && inForce.length === 0) refused(`none of its property claims is ${when} (${windows(all)})`, 'CLAIM_EXPIRED');
    else if (platform === SEV_SNP_PLATFORM && inForce.length > 0) lines.push(...productWarnings(claims, inForce, at));
    const sized = policy.measurements.filter((m) => m.measurement.length === measurementBytes);
    if (sized.length === 0) refused(`the policy trusts no ${measurementBytes}-byte measurement, the size of its machines'`, 'MEASUREMENT_NOT_TRUSTED');
    else if (!sized.some((m) => within(m, at))) refused(`none of its ${measurementBytes}-byte measurement claims is ${when} (${windows(sized)})`, 'CLAIM_EXPIRED');
  }
  return lines;
}

/**
 * The SEV-SNP roots `policy` trusts (their labels) for which none of `crls` (simpleserver's AMD
 * revocation lists) is: a path ending at one is taken without a revocation check.
 */
export function rootsWithoutCrl(policy: Policy, crls: readonly VerifiedAmdCrl[]): string[] {
  const unlisted = policy.platforms.filter((p) => p.platformType === SEV_SNP_PLATFORM && p.certificate && !crls.some((c) => bytesSame(c.root.der, p.certificate!)));
  return [...new Set(unlisted.map((p) => p.label))];
}
