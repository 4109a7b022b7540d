// What a policy can admit at a time, for simpleserver to say at start and on a reload: the policy
// as a whole (policyNotInForce: a reload of one that admits nobody is refused), and each platform
// it trusts (platformWarnings: one whose machines would all be refused, beside others admitted).

import { pinnedProductOf, rootLayout, SIMULATED_ENCLAVE } from '../attest/index.ts';
import { describeWindow, propertyClaimsOf, REQUIRED_IF_PRESENT, SEV_SNP_PLATFORM, within, type Policy, type TrustedPlatform, type TrustedProperties, type Window } from '../policy/index.ts';

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

/**
 * Of the AMD roots the policy trusts in force, the products (Milan, Genoa, Turin) none of whose
 * machines any property claim in force could admit because of their TCB's layout: a claim must
 * name a property of REQUIRED_IF_PRESENT (Turin's tcb-fmc) when the evidence has it, and one
 * naming it denies evidence without it. A root not pinned is of the layout lib/attest's
 * rootLayout gives it (Turin's when named ARK-Turin, else family 19h's), named as such.
 */
function productWarnings(roots: TrustedPlatform[], claims: TrustedProperties[], at: Date): string[] {
  const ifPresent = REQUIRED_IF_PRESENT[SEV_SNP_PLATFORM] ?? [];
  const lines: string[] = [];
  for (const root of roots.filter((r) => within(r, at) && r.certificate)) {
    const turin = rootLayout(root.certificate!) === 'turin';
    // Only Turin's TCB has an FMC level (tcb-fmc), which is all REQUIRED_IF_PRESENT names.
    const has = turin ? ifPresent : [];
    const suits = (c: TrustedProperties) => ifPresent.every((n) => c.requirements.some((r) => r.name === n) === has.includes(n));
    if (claims.some(suits)) continue;
    const product = pinnedProductOf(root.certificate!);
    const Product = product ? product[0]!.toUpperCase() + product.slice(1) : turin ? 'Turin' : 'family 19h';
    const why = has.length
      ? `no property claim in force names ${has.join(', ')}, which the reports of its ${Product} machines (${root.label}) have`
      : `every property claim in force names ${ifPresent.join(', ')}, which the reports of its ${Product} machines (${root.label}) do not have`;
    lines.push(`platform ${SEV_SNP_PLATFORM}: ${why}: every ${Product} machine will be refused (PLATFORM_PROPERTY_DENIED)`);
  }
  return lines;
}

/**
 * For each platform `policy` trusts whose every machine it would refuse at `at`, one line saying
 * why and with which code: no platform claim of it in force (CLAIM_EXPIRED), no property claim for
 * a platform whose evidence carries properties (PLATFORM_PROPERTY_DENIED) or none in force
 * (CLAIM_EXPIRED), no measurement of its size (MEASUREMENT_NOT_TRUSTED) or none in force
 * (CLAIM_EXPIRED); and for SEV-SNP, a pinned AMD product none of whose machines a property claim
 * in force suits (productWarnings). A platform the policy does not trust at all is not named.
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
