// The ACL's "revoked" list: certificate serial numbers the key-server refuses whatever the rules
// allow, a machine's admission certificate (CERT_REVOKED) or a role credential (CREDENTIAL_REVOKED). Parsed with
// the rest of the ACL (acl.ts) and looked up once a request, in a Map keyed by the serial as a
// certificate reads (ValidatedPeer.serialHex), so the lookup builds nothing.

import { CertifierError } from '../errors/index.ts';
import { visibleJson } from '../wire/index.ts';
import { isObject } from '../util/json.ts';

export interface RevokedEntry {
  /** Lowercase hex without leading zeros, as the ACL's subjects are kept. */
  serial: string;
  comment?: string;
}

const ENTRY_FIELDS = ['serial', 'comment'];
const SERIAL_RE = /^[0-9a-fA-F]{1,42}$/; // at most 20 octets (RFC 5280, 4.1.2.2), with a sign octet

/** A serial number compared as a number: lowercase, leading zeros dropped. */
export function normalSerial(hex: string): string {
  return hex.toLowerCase().replace(/^0+(?=.)/, '');
}

/**
 * A serial number as a parsed certificate gives it (lib/pki readSerial): the hex of its minimal
 * octets, so an even number of digits, a leading 0 where the first octet is below 0x10.
 */
function asCertificateReads(normal: string): string {
  return normal.length % 2 === 1 ? `0${normal}` : normal;
}

/** For hex copied as `openssl x509 -text` prints it (7f:e7:01), what to write instead; else ''. */
export function withoutColons(s: string): string {
  return /^[0-9a-fA-F]{1,2}(?::[0-9a-fA-F]{2})+$/.test(s) ? `: write it without the colons (${s.replaceAll(':', '')})` : '';
}

/** Why `s` is not a serial number as the ACL takes one, or undefined. */
export function serialProblem(s: string): string | undefined {
  return SERIAL_RE.test(s) ? undefined : `is not a certificate serial number in hex${withoutColons(s)}`;
}

/**
 * The entries of the ACL's "revoked" (absent: none), each problem added to `problems`: an entry
 * that is not an object, lacks a serial, has a field other than serial and comment, or names a
 * serial number an entry before it names (which comment would hold?).
 */
export function checkRevoked(v: unknown, problems: string[]): RevokedEntry[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    problems.push('revoked is not a list');
    return [];
  }
  const out: RevokedEntry[] = [];
  const first = new Map<string, number>();
  v.forEach((e, i) => {
    const at = `revoked[${i}]`;
    if (!isObject(e)) return void problems.push(`${at} is not an object`);
    for (const k of Object.keys(e)) if (!ENTRY_FIELDS.includes(k)) problems.push(`${at}: unknown field ${visibleJson(k)}`);
    if (e.comment !== undefined && typeof e.comment !== 'string') problems.push(`${at}.comment is not a string`);
    const s = e.serial;
    if (s === undefined) return void problems.push(`${at}.serial is missing`);
    const p = typeof s === 'string' ? serialProblem(s) : 'is not a string';
    if (p) return void problems.push(`${at}.serial ${typeof s === 'string' ? `${visibleJson(s)} ` : ''}${p}`);
    const serial = normalSerial(s as string);
    const before = first.get(serial);
    if (before !== undefined) return void problems.push(`${at}.serial names the same serial number as revoked[${before}]`);
    first.set(serial, i);
    out.push({ serial, ...(typeof e.comment === 'string' ? { comment: e.comment } : {}) });
  });
  return out;
}

/** Each revoked serial number as a certificate reads, to the entry's index. */
export function indexRevoked(entries: readonly RevokedEntry[]): ReadonlyMap<string, number> {
  return new Map(entries.map((e, i) => [asCertificateReads(e.serial), i]));
}

/**
 * A refusal of `code` for the certificate `what` ("this machine's admission certificate" is
 * CERT_REVOKED, "the role credential" CREDENTIAL_REVOKED) of serial number `serialHex` if the list
 * revokes it. The message, for the server's log alone, names the entry and its comment.
 */
export function checkNotRevoked(acl: { revoked: readonly RevokedEntry[]; revokedIndex: ReadonlyMap<string, number> } | undefined, serialHex: string, what: string, code: 'CERT_REVOKED' | 'CREDENTIAL_REVOKED' = 'CERT_REVOKED'): void {
  const i = acl?.revokedIndex.get(serialHex);
  if (i === undefined) return;
  const comment = acl!.revoked[i]!.comment;
  throw new CertifierError(code, `${what}, serial ${serialHex}, is revoked by the ACL (revoked[${i}]${comment === undefined ? '' : `: ${visibleJson(comment)}`})`);
}
