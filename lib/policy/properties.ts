// Platform entities in the policy: a hardware vendor's root ("policyKey says platform[amd-sev-snp,
// ARK-Milan] is-trusted-for-attestation") and platform properties ("policyKey says
// platform[amd-sev-snp, debug <= 0, tcb-snp >= 8, ...] has-trusted-platform-property"), encoded
// with the Certifier's platform and property messages; and the pure check of a verifier's
// properties against them. Defaults fail closed: what a claim leaves out is the strictest choice.

import { createHash, type KeyObject } from 'node:crypto';
import { publicKeyFromSpki } from '../crypto/index.ts';
import { CertifierError } from '../errors/index.ts';
import { readStructure } from '../pki/structure.ts';
import type { EntityMessage, Platform as PlatformMessage, Property } from '../wire/types.ts';
import { describeWindows, lastToEnd, within, type Window } from './claims.ts';

export const SEV_SNP_PLATFORM = 'amd-sev-snp';
export const PROPERTY_VERB = 'has-trusted-platform-property';

export type PropertyValue = number | string;
export const COMPARATORS = ['=', '>=', '<='] as const;
export type Comparator = (typeof COMPARATORS)[number];
export interface Requirement { name: string; comparator: Comparator; value: PropertyValue }

/** The SEV-SNP properties a verifier reports (see lib/attest/sev-snp) and a policy may name. */
export const SNP_PROPERTY = {
  debug: 'debug', migrateMa: 'migrate-ma', smtAllowed: 'smt-allowed', singleSocket: 'single-socket',
  abiMajor: 'abi-major', abiMinor: 'abi-minor', abiVersion: 'abi-version',
  firmwareVersion: 'firmware-version', committedFirmwareVersion: 'committed-firmware-version', vmpl: 'vmpl', guestSvn: 'guest-svn',
  tcbBootloader: 'tcb-bootloader', tcbTee: 'tcb-tee', tcbSnp: 'tcb-snp', tcbMicrocode: 'tcb-microcode', tcbFmc: 'tcb-fmc',
  launchTcbBootloader: 'launch-tcb-bootloader', launchTcbTee: 'launch-tcb-tee', launchTcbSnp: 'launch-tcb-snp', launchTcbMicrocode: 'launch-tcb-microcode', launchTcbFmc: 'launch-tcb-fmc',
  hostData: 'host-data', idKeyDigest: 'id-key-digest', authorKeyDigest: 'author-key-digest',
  familyId: 'family-id', imageId: 'image-id', signingKey: 'signing-key', reportVersion: 'report-version',
  cxlAllowed: 'cxl-allowed', memAes256Xts: 'mem-aes-256-xts', raplDisabled: 'rapl-disabled', ciphertextHiding: 'ciphertext-hiding', pageSwapDisabled: 'page-swap-disabled',
  platformSmtEnabled: 'platform-smt-enabled', platformTsmeEnabled: 'platform-tsme-enabled', platformEccEnabled: 'platform-ecc-enabled',
  platformRaplDisabled: 'platform-rapl-disabled', platformCiphertextHiding: 'platform-ciphertext-hiding', platformAliasCheckComplete: 'platform-alias-check-complete',
  product: 'product',
} as const;

/** Applied unless a property claim names the property itself. */
export const PROPERTY_DEFAULTS: Readonly<Record<string, readonly Requirement[]>> = {
  [SEV_SNP_PLATFORM]: [
    { name: SNP_PROPERTY.debug, comparator: '<=', value: 0 },
    { name: SNP_PROPERTY.migrateMa, comparator: '<=', value: 0 },
    { name: SNP_PROPERTY.vmpl, comparator: '=', value: 0 },
  ],
};

/** A property claim for the platform must name these (a minimum TCB has no safe default). */
export const REQUIRED_PROPERTIES: Readonly<Record<string, readonly string[]>> = {
  [SEV_SNP_PLATFORM]: [SNP_PROPERTY.tcbBootloader, SNP_PROPERTY.tcbTee, SNP_PROPERTY.tcbSnp, SNP_PROPERTY.tcbMicrocode],
};

/**
 * What a claim must name when the evidence has it (a minimum TCB has no safe default): Turin's FMC
 * level. Evidence without it (Milan, Genoa) leaves a claim that does not name it as it was.
 */
export const REQUIRED_IF_PRESENT: Readonly<Record<string, readonly string[]>> = {
  [SEV_SNP_PLATFORM]: [SNP_PROPERTY.tcbFmc],
};

/**
 * Properties that say whose claim it is (SEV-SNP: the AMD product, whose TCB levels are on a scale
 * of their own): a claim naming another value than the evidence has is another machine's, and its
 * refusal says less of why than one of the evidence's own.
 */
export const CLAIM_SCOPE: Readonly<Record<string, readonly string[]>> = {
  [SEV_SNP_PLATFORM]: [SNP_PROPERTY.product],
};

export interface TrustedProperties extends Window {
  platformType: string;
  requirements: Requirement[];
  /** Its place in the policy (1 for the first claim), as loadPolicy's errors number claims; set by loadPolicy. */
  claim?: number;
}

/**
 * The properties that are a MAJOR.MINOR version as one number (major * 256 + minor), so that one
 * comparison orders major first, then minor: the guest policy's ABI (abi-version) and the
 * firmware's own, running and committed. People read and write them as MAJOR.MINOR.
 */
export const VERSION_PROPERTIES: readonly string[] = [SNP_PROPERTY.abiVersion, SNP_PROPERTY.firmwareVersion, SNP_PROPERTY.committedFirmwareVersion];
export const versionNumber = (major: number, minor: number) => major * 256 + minor;
const versionText = (v: number) => `${Math.floor(v / 256)}.${v % 256}`;

/** A property's value as people read it: a version property as MAJOR.MINOR, anything else as it is. */
export const showValue = (name: string, value: PropertyValue) => (VERSION_PROPERTIES.includes(name) && typeof value === 'number' ? versionText(value) : String(value));

export const describeRequirement = (r: Requirement) => `${r.name} ${r.comparator} ${showValue(r.name, r.value)}`;

const certLabel = (der: Uint8Array) => `cert:${createHash('sha256').update(der).digest('hex').slice(0, 16)}`;

/** "platform[amd-sev-snp, ARK-Milan cert:ab12..]" or "platform[amd-sev-snp, debug <= 0, ...]" */
export function describePlatform(p: PlatformMessage | undefined): string {
  const parts = [p?.platformType ?? '?'];
  const cert = p?.attestKey?.certificate;
  if (cert?.length) parts.push(`${p?.attestKey?.keyName ?? 'root'} ${certLabel(cert)}`);
  for (const prop of p?.props?.props ?? []) {
    const value = prop.valueType === 'int' ? prop.intValue : prop.stringValue;
    parts.push(`${prop.propertyName ?? '?'} ${prop.comparator ?? '?'} ${value === undefined ? '?' : showValue(prop.propertyName ?? '', value)}`);
  }
  return `platform[${parts.join(', ')}]`;
}

/** A vendor root as a platform entity: the root certificate travels in the signed policy. */
export function platformRootEntity(platformType: string, certificate: Uint8Array, name: string): EntityMessage {
  return { entityType: 'platform', platformEnt: { platformType, hasKey: true, attestKey: { keyName: name, keyFormat: 'x509-der-certificate', certificate } } };
}

export function propertiesEntity(platformType: string, requirements: Requirement[]): EntityMessage {
  const props: Property[] = requirements.map((r) => (typeof r.value === 'number'
    ? { propertyName: r.name, valueType: 'int', comparator: r.comparator, intValue: r.value }
    : { propertyName: r.name, valueType: 'string', comparator: r.comparator, stringValue: r.value }));
  return { entityType: 'platform', platformEnt: { platformType, hasKey: false, props: { props } } };
}

const invalid = (what: string, why: string) => new CertifierError('POLICY_INVALID', `${what} ${why}`);

/** The root a platform entity names: its key (from the certificate) and a label. */
export function platformRootOf(e: EntityMessage, what: string): { key: KeyObject; label: string; platformType: string; certificate: Uint8Array } {
  const p = e.platformEnt;
  const cert = p?.attestKey?.certificate;
  if (!p?.platformType || !cert?.length || p.props?.props?.length) throw invalid(what, 'names a platform root without its type and certificate');
  let key: KeyObject;
  try {
    // The key only: whether the certificate is a valid root is the platform verifier's to check.
    key = publicKeyFromSpki(readStructure(cert).spki); // never a point at infinity, on which Node aborts
  } catch (cause) {
    throw new CertifierError('POLICY_INVALID', `${what} names an unreadable platform root certificate`, { cause });
  }
  return { key, label: `${p.attestKey?.keyName ?? 'root'} ${certLabel(cert)}`, platformType: p.platformType, certificate: cert };
}

/** The requirements of a property claim; POLICY_INVALID for anything malformed or incomplete. */
export function propertiesOf(e: EntityMessage, what: string): { platformType: string; requirements: Requirement[] } {
  const p = e.platformEnt;
  if (!p?.platformType || p.attestKey) throw invalid(what, 'names platform properties without a platform type (or with a key)');
  const requirements = (p.props?.props ?? []).map((prop): Requirement => {
    const name = prop.propertyName ?? '';
    const comparator = prop.comparator as Comparator;
    if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(name)) throw invalid(what, `names a property "${name}" that is not a property name`);
    if (!(COMPARATORS as readonly string[]).includes(comparator)) throw invalid(what, `compares ${name} with "${prop.comparator ?? ''}"`);
    if (prop.valueType === 'int' && prop.intValue !== undefined && prop.stringValue === undefined) {
      // A uint64 past 2^53 arrives rounded, and a comparison with it could go either way.
      if (!Number.isSafeInteger(prop.intValue)) throw invalid(what, `gives property ${name} the value ${prop.intValue}, past 2^53, which cannot be compared exactly`);
      return { name, comparator, value: prop.intValue };
    }
    if (prop.valueType === 'string' && prop.stringValue !== undefined && prop.intValue === undefined && comparator === '=') return { name, comparator, value: prop.stringValue };
    throw invalid(what, `gives property ${name} no single int value, or a string value with a comparator other than "="`);
  });
  if (requirements.length === 0) throw invalid(what, 'names no platform properties');
  const names = requirements.map((r) => r.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw invalid(what, `names property ${twice} twice`);
  const missing = (REQUIRED_PROPERTIES[p.platformType] ?? []).filter((n) => !names.includes(n));
  if (missing.length) throw invalid(what, `must name ${missing.join(', ')} for ${p.platformType} (no safe default exists)`);
  return { platformType: p.platformType, requirements };
}

/** Why `have` does not satisfy `r`, or undefined when it does. A missing property never does. */
function unmet(r: Requirement, have: PropertyValue | undefined): string | undefined {
  if (have === undefined) return `the evidence has no ${r.name}, which the policy requires (${describeRequirement(r)})`;
  if (typeof have !== typeof r.value) return `the evidence's ${r.name} is ${JSON.stringify(have)}, not comparable with ${describeRequirement(r)}`;
  const refused = `${r.name} is ${showValue(r.name, have)}, and the policy requires ${describeRequirement(r)}`;
  if (r.comparator === '=') return have === r.value ? undefined : refused;
  const ok = r.comparator === '>=' ? Number(have) >= Number(r.value) : Number(have) <= Number(r.value);
  return ok ? undefined : refused;
}

/**
 * `notAfter`: when the claim that allowed it ends (of several satisfied, the last to end). A
 * refusal is CLAIM_EXPIRED when the policy has claims for the platform but none in force (a
 * policy to renew), else PLATFORM_PROPERTY_DENIED.
 */
export type PropertyOutcome = { ok: true; proof: string[]; notAfter: Date } | { ok: false; code: 'PLATFORM_PROPERTY_DENIED' | 'CLAIM_EXPIRED'; reason: string };

/**
 * The property claims of `platform` in force at `at` (`inForce`), and all of them whatever their
 * dates (`all`: none at all is a policy that sets none, none in force one to renew). The one
 * reading of "in force" that the evaluator and simpleserver's start check (policyNotInForce) share.
 */
export function propertyClaimsOf(claims: readonly TrustedProperties[], platform: string, at: Date): { all: TrustedProperties[]; inForce: TrustedProperties[] } {
  const all = claims.filter((c) => c.platformType === platform);
  return { all, inForce: all.filter((c) => within(c, at)) };
}

/**
 * Checks a verifier's properties against the policy's property claims for its platform, each
 * completed by the defaults. Any one claim fully satisfied allows; none at all denies.
 */
export function checkProperties(claims: TrustedProperties[], platform: string, have: Readonly<Record<string, PropertyValue>>, at: Date): PropertyOutcome {
  const { all: mine, inForce: current } = propertyClaimsOf(claims, platform, at);
  const denied = (reason: string): PropertyOutcome => ({ ok: false, code: 'PLATFORM_PROPERTY_DENIED', reason });
  if (mine.length === 0) return denied(`the policy sets no ${platform} platform properties (debug, minimum TCB, VMPL): refused by default`);
  if (current.length === 0) {
    return { ok: false, code: 'CLAIM_EXPIRED', reason: `no ${platform} property claim of the policy is valid at ${at.toISOString()} (${describeWindows(mine)})` };
  }
  // A claim for another TCB layout (naming tcb-fmc or not, as the evidence does not), or for another
  // product (CLAIM_SCOPE), says less of why than one for the evidence's own that it fails: that
  // one's reason is given first.
  let firstFailure: string | undefined;
  let otherLayout: string | undefined;
  const allowed: (Window & { proof: string })[] = [];
  const ifPresent = REQUIRED_IF_PRESENT[platform] ?? [];
  const scope = CLAIM_SCOPE[platform] ?? [];
  for (const c of current) {
    const named = new Set(c.requirements.map((r) => r.name));
    const all = [...c.requirements, ...(PROPERTY_DEFAULTS[platform] ?? []).filter((d) => !named.has(d.name))];
    const unnamed = ifPresent.find((n) => have[n] !== undefined && !named.has(n));
    const failure = unnamed ? `the evidence has ${unnamed} (${showValue(unnamed, have[unnamed]!)}), which the claim does not name: a minimum TCB has no safe default` : all.map((r) => unmet(r, have[r.name])).find((f) => f !== undefined);
    const anothers = c.requirements.some((r) => scope.includes(r.name) && unmet(r, have[r.name]) !== undefined);
    if (failure && (unnamed || anothers || ifPresent.some((n) => named.has(n) && have[n] === undefined))) otherLayout ??= failure;
    else if (failure) firstFailure ??= failure;
    else allowed.push({ notBefore: c.notBefore, notAfter: c.notAfter, proof: `policy: policyKey says platform[${platform}] has-trusted-platform-property: ${all.map((r) => `${describeRequirement(r)} (is ${showValue(r.name, have[r.name]!)})`).join(', ')}` });
  }
  // Of several claims satisfied, the one that ends last.
  const best = lastToEnd(allowed, at);
  return best ? { ok: true, proof: [best.proof], notAfter: best.notAfter } : denied((firstFailure ?? otherLayout)!);
}
