// The key-server's access control list: a JSON file mapping resource-name patterns and actions to
// the measurements, certificate serial numbers (subjects) or roles allowed them, with the serial
// numbers revoked whatever the rules say (acl-revoked.ts); and `decide`, the pure function that
// applies the rules to one request.
//
// Patterns: `*` matches any run of characters except '/', `**` any run including '/', `?` one
// character except '/'; everything else is literal. A pattern matches the whole name (in time
// linear in the lengths of both: acl-pattern.ts).
//
// list: the request names a prefix, and the answer would reveal every name starting with it. A
// rule allows list of prefix P only when its pattern ends in `**` and P itself matches the
// pattern: then every name starting with P matches too (the trailing `**` absorbs any suffix), so
// list cannot reveal a name the rule does not cover. Nothing else is accepted, not even P equal to
// a pattern's literal part: listing "vhd/" under "vhd/*" would reveal "vhd/a/b", and listing
// "disk-key" under the literal "disk-key" would reveal "disk-key-old". So `"resources": ["**"]`
// allows listing everything, and `"vhd/**"` allows listing "vhd/", "vhd/x" and so on.
//
// Without an ACL, every admitted machine of the domain may store, retrieve and list (the
// documented first behaviour, announced by a warning at start); delete always needs a rule.

import { CertifierError } from '../errors/index.ts';
import { newNameProblem, tagProblem, visibleJson } from '../wire/index.ts';
import { isObject, parseJsonText } from '../util/json.ts';
import { checkRoleName, ROLE_NAME_RULE } from './roles.ts';
import { compilePattern, patternMatches, type Pattern } from './acl-pattern.ts';
import { RESERVED_PREFIX, STORAGE_KEY_TAG } from './keystore.ts';
import { checkRevoked, indexRevoked, normalSerial, serialProblem, withoutColons, type RevokedEntry } from './acl-revoked.ts';

export { checkNotRevoked, type RevokedEntry } from './acl-revoked.ts';

export const ACL_ACTIONS = ['store', 'retrieve', 'delete', 'list'] as const;
export type AclAction = (typeof ACL_ACTIONS)[number];

export interface AclRule {
  resources: string[];
  actions: AclAction[];
  /** Lowercase hex, 64 or 96 digits. */
  measurements: string[];
  /** Certificate serial numbers, lowercase hex without leading zeros. */
  subjects: string[];
  roles: string[];
}

/** A rule as decide() applies it, made once when the ACL is read: patterns compiled, names in sets. */
interface CompiledRule {
  actions: Set<AclAction>;
  patterns: Pattern[];
  measurements: Set<string>;
  subjects: Set<string>;
  roles: Set<string>;
}

export interface Acl {
  version: 1;
  rules: AclRule[];
  /** Certificate serial numbers refused whatever the rules allow (CERT_REVOKED), in the file's order. */
  revoked: RevokedEntry[];
  /** Each revoked serial number as a parsed certificate gives it, to its index in revoked (made by parseAcl). */
  readonly revokedIndex: ReadonlyMap<string, number>;
  /** The rules in the same order, compiled by parseAcl. */
  readonly compiled: readonly CompiledRule[];
  /** What is taken but cannot do what it reads as (a rule's list that no pattern allows), for the operator (made by parseAcl). */
  readonly warnings: readonly string[];
  /** The numbers of the rules naming each measurement, subject and role, in order (made by parseAcl). */
  readonly index: { measurements: Map<string, number[]>; subjects: Map<string, number[]>; roles: Map<string, number[]> };
}

export interface AclRequest {
  action: AclAction;
  /** The resource name; for list, the prefix ('' = everything). */
  resource: string;
}

export interface Principal {
  measurementHex: string;
  serialHex: string;
  roles: string[];
}

export interface Decision {
  allow: boolean;
  code?: 'ACL_DENIED';
  /** For the server log (names the rule that allowed, or why nothing did); never sent to clients. */
  reason: string;
  /** The index of the rule that allowed the request. */
  rule?: number;
}

const TOP_FIELDS = ['version', 'rules', 'revoked', 'comment'];
const RULE_FIELDS = ['resources', 'actions', 'measurements', 'subjects', 'roles', 'comment'];
const MEASUREMENT_RE = /^(?:[0-9a-fA-F]{64}|[0-9a-fA-F]{96})$/;

/**
 * Why a pattern is unacceptable, or undefined. It is held to the rule a new key's name is held to
 * (newNameProblem: no invisible characters, Unicode form C): a pattern breaking it could match
 * only names made before that rule, never a key stored since, and would read as another pattern.
 */
export function patternProblem(p: string): string | undefined {
  if (p.includes('***')) return 'has "***" (use * or **)';
  const notAName = tagProblem(p);
  if (notAName) return notAName;
  const notANewName = newNameProblem(p);
  return notANewName && `${notANewName}; a pattern is held to the rule on new key names, since one breaking it matches no key stored since`;
}

/**
 * Why a pattern can match only the key-server's own keys, which no rule reaches (RESERVED_NAME),
 * or undefined: a rule naming one allows nothing, though it reads as if it did. (The domain's own
 * names are not known here; those two are the same in every deployment.)
 */
function reservedOnly(p: string): string | undefined {
  const { prefix, codes } = compilePattern(p);
  if (prefix.startsWith(RESERVED_PREFIX)) return `matches only names under ${RESERVED_PREFIX}, which the key-server keeps for itself and no rule reaches`;
  if (codes.length === 0 && prefix === STORAGE_KEY_TAG) return "matches only the key-server's storage key, which no rule reaches";
  return undefined;
}

/** May a list of `prefix` go ahead under this pattern (see the header)? */
function listAllows(p: Pattern, prefix: string): boolean {
  return p.source.endsWith('**') && patternMatches(p, prefix);
}

/** Decodes and validates an ACL file; INVALID_INPUT naming every problem (rule index and field). */
export function parseAcl(text: string): Acl {
  const doc = parseJsonText(text, 'invalid ACL: the file');
  const problems: string[] = [];
  const rules: AclRule[] = [];
  let revoked: RevokedEntry[] = [];
  if (!isObject(doc)) {
    problems.push('the ACL must be a JSON object');
  } else {
    for (const k of Object.keys(doc)) if (!TOP_FIELDS.includes(k)) problems.push(`unknown field "${k}"`);
    if (doc.version === undefined) problems.push('version is missing');
    else if (doc.version !== 1) problems.push('version is not 1'); // the value itself is not echoed: a wrong file may hold a secret
    if (doc.comment !== undefined && typeof doc.comment !== 'string') problems.push('comment is not a string');
    if (doc.rules === undefined) problems.push('rules is missing');
    else if (!Array.isArray(doc.rules)) problems.push('rules is not a list');
    else if (doc.rules.length === 0) problems.push('rules is empty (an ACL without rules would deny everything)');
    else doc.rules.forEach((r, i) => rules.push(checkRule(r, `rules[${i}]`, problems)));
    revoked = checkRevoked(doc.revoked, problems);
  }
  if (problems.length) {
    throw new CertifierError('INVALID_INPUT', `invalid ACL: ${problems.join('; ')}`, { details: { problems } });
  }
  return { version: 1, rules, revoked, revokedIndex: indexRevoked(revoked), compiled: rules.map(compileRule), index: indexRules(rules), warnings: rules.flatMap(deadList) };
}

/**
 * Why a rule's list allows nothing, or nothing: listing needs a pattern ending in ** (listAllows).
 * Taken, not refused, since the rule's other actions may be meant, but said.
 */
function deadList(rule: AclRule, i: number): string[] {
  if (!rule.actions.includes('list') || rule.resources.some((p) => p.endsWith('**'))) return [];
  return [`rules[${i}] allows list, but none of its resources ends in **, so it allows no listing (listing a prefix needs a pattern ending in ** that matches it, as "vhd/**" does for "vhd/")`];
}

/** For each measurement, subject and role the rules name, the numbers of the rules naming it, in order. */
function indexRules(rules: AclRule[]): Acl['index'] {
  const index: Acl['index'] = { measurements: new Map(), subjects: new Map(), roles: new Map() };
  const add = (map: Map<string, number[]>, names: string[], i: number) => {
    for (const name of new Set(names)) {
      const numbers = map.get(name);
      if (numbers) numbers.push(i);
      else map.set(name, [i]);
    }
  };
  rules.forEach((rule, i) => {
    add(index.measurements, rule.measurements, i);
    add(index.subjects, rule.subjects, i);
    add(index.roles, rule.roles, i);
  });
  return index;
}

/** The numbers of the rules naming the client's measurement, serial number or one of its roles, in order. */
function rulesNaming(acl: Acl, who: Principal): number[] {
  const { measurements, subjects, roles } = acl.index;
  const named = [measurements.get(who.measurementHex), subjects.get(who.serialHex), ...who.roles.map((r) => roles.get(r))];
  return [...new Set(named.flatMap((rules) => rules ?? []))].sort((a, b) => a - b);
}

function compileRule(rule: AclRule): CompiledRule {
  return {
    actions: new Set(rule.actions),
    patterns: rule.resources.map(compilePattern),
    measurements: new Set(rule.measurements),
    subjects: new Set(rule.subjects),
    roles: new Set(rule.roles),
  };
}

function checkRule(r: unknown, at: string, problems: string[]): AclRule {
  const rule: AclRule = { resources: [], actions: [], measurements: [], subjects: [], roles: [] };
  if (!isObject(r)) {
    problems.push(`${at} is not an object`);
    return rule;
  }
  for (const k of Object.keys(r)) if (!RULE_FIELDS.includes(k)) problems.push(`${at}: unknown field "${k}"`);
  if (r.comment !== undefined && typeof r.comment !== 'string') problems.push(`${at}.comment is not a string`);
  const list = (field: string, required: boolean, check: (s: string) => string | undefined): string[] => {
    const v = r[field];
    if (v === undefined) {
      if (required) problems.push(`${at}.${field} is missing`);
      return [];
    }
    if (!Array.isArray(v)) {
      problems.push(`${at}.${field} is not a list`);
      return [];
    }
    if (v.length === 0) problems.push(`${at}.${field} is empty`);
    const out: string[] = [];
    v.forEach((s, j) => {
      const p = typeof s === 'string' ? check(s) : 'is not a string';
      // The value written so that it reads as itself (a combining mark or a zero-width space escaped).
      if (p) problems.push(`${at}.${field}[${j}] ${typeof s === 'string' ? `${visibleJson(s)} ` : ''}${p}`);
      else out.push(s as string);
    });
    return out;
  };
  rule.resources = list('resources', true, (p) => patternProblem(p) ?? reservedOnly(p));
  rule.actions = list('actions', true, (s) =>
    (ACL_ACTIONS as readonly string[]).includes(s) ? undefined : `is not one of ${ACL_ACTIONS.join(', ')}`) as AclAction[];
  rule.measurements = list('measurements', false, (s) => (MEASUREMENT_RE.test(s) ? undefined : `is not 64 or 96 hex digits${withoutColons(s)}`)).map((s) => s.toLowerCase());
  rule.subjects = list('subjects', false, serialProblem).map(normalSerial);
  rule.roles = list('roles', false, (s) => {
    try {
      checkRoleName(s);
      return undefined;
    } catch {
      return `is not a role name (${ROLE_NAME_RULE})`;
    }
  });
  if (r.measurements === undefined && r.subjects === undefined && r.roles === undefined) {
    problems.push(`${at} names no measurements, subjects or roles, so it would match nobody`);
  }
  return rule;
}

/**
 * What of the principal (measurement and serial normalized) a rule naming it names: its
 * measurement, else its serial number, else the first of its roles the rule has.
 */
function matchedBy(rule: CompiledRule, who: Principal): string {
  if (rule.measurements.has(who.measurementHex)) return `measurement ${who.measurementHex}`;
  if (rule.subjects.has(who.serialHex)) return `subject ${who.serialHex}`;
  return `role ${who.roles.find((x) => rule.roles.has(x))}`;
}

/** Applies the ACL (or its absence) to one request. Pure: no IO, no clock. */
export function decide(acl: Acl | undefined, request: AclRequest, principal: Principal): Decision {
  const { action, resource } = request;
  const what = action === 'list' ? `list of prefix ${JSON.stringify(resource)}` : `${action} of ${JSON.stringify(resource)}`;
  if (!acl) {
    if (action === 'delete') return { allow: false, code: 'ACL_DENIED', reason: `${what} refused: no ACL is configured, and delete needs an ACL rule that allows it (key-server serve --acl)` };
    return { allow: true, reason: `no ACL is configured: every admitted machine may ${action}` };
  }
  const covers = (p: Pattern) => (action === 'list' ? listAllows(p, resource) : patternMatches(p, resource));
  const client = { ...principal, measurementHex: principal.measurementHex.toLowerCase(), serialHex: normalSerial(principal.serialHex) };
  // Only the rules that name the client are looked at (the index says which), and only the
  // patterns of those that have the action are matched: the (perhaps thousands of) rules for
  // others cost a client nothing. So a denial cannot say whether a rule for someone else covers
  // the name, and does not try.
  for (const i of rulesNaming(acl, client)) {
    const rule = acl.compiled[i]!;
    if (!rule.actions.has(action) || !rule.patterns.some(covers)) continue;
    return { allow: true, reason: `rule ${i} allows ${what} to ${matchedBy(rule, client)}`, rule: i };
  }
  // Read at 3 a.m.: who the rules were looked up by, then what a rule would need, then what to do.
  const by = [`measurement ${client.measurementHex}`, `serial number ${client.serialHex}`, ...client.roles.map((r) => `role ${r}`)];
  const whom = `${by.slice(0, -1).join(', ')} or ${by.at(-1)}`;
  const fits = action === 'list' ? 'ends in ** and matches the prefix' : 'matches the name';
  const why = `no ACL rule for ${whom} allows ${action} with a pattern that ${fits}; to allow it, add one to the ACL and reload it (SIGHUP)`;
  return { allow: false, code: 'ACL_DENIED', reason: `${what} denied: ${why}` };
}
