// Distinguished names and validity times, decoded with our strict DER reader: names become
// RFC 4514-style text ("CN=policyKey, O=datica/policyAuthority", RDNs in certificate order, as
// @peculiar/x509 wrote them) plus their attribute values; times become Dates (RFC 5280, 4.1.2.5).

import { calendarTime } from '../util/calendar.ts';
import { children, DerError, decodeOid, expectTag, TAG, type Tlv } from './der.ts';

export interface DecodedName {
  /** RFC 4514-style text, RDNs joined by ", ", multi-valued RDNs by "+". */
  text: string;
  /** Every attribute, in order: [type OID, value as text]. */
  attributes: [oid: string, value: string][];
}

/** Short names for the attribute types people read; others are shown as their OID. */
const SHORT_NAMES: Readonly<Record<string, string>> = {
  '2.5.4.3': 'CN', '2.5.4.7': 'L', '2.5.4.8': 'ST', '2.5.4.10': 'O', '2.5.4.11': 'OU', '2.5.4.6': 'C',
  '0.9.2342.19200300.100.1.25': 'DC', '1.2.840.113549.1.9.1': 'E', '2.5.4.42': 'G', '2.5.4.43': 'I',
  '2.5.4.4': 'SN', '2.5.4.12': 'T',
};

const NUMERIC = 0x12;
const T61 = 0x14;
const VISIBLE = 0x1a;
const UNIVERSAL = 0x1c;
const BMP = 0x1e;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new DerError(`${what}: not valid UTF-8`);
  }
}

/** The text of an ASCII-only string type (IA5String, PrintableString, ...); other bytes are refused. */
export function ascii(bytes: Uint8Array, what: string): string {
  for (const b of bytes) if (b > 0x7f) throw new DerError(`${what}: not ASCII`);
  return Buffer.from(bytes).toString('latin1');
}

/** UTF-16BE (BMPString) or UTF-32BE (UniversalString) code units. */
function wide(bytes: Uint8Array, unit: 2 | 4, what: string): string {
  if (bytes.length % unit !== 0) throw new DerError(`${what}: a partial character`);
  const points: number[] = [];
  for (let i = 0; i < bytes.length; i += unit) {
    const cp = unit === 2 ? (bytes[i]! << 8) | bytes[i + 1]! : ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0;
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw new DerError(`${what}: not a character`);
    points.push(cp);
  }
  return String.fromCodePoint(...points);
}

/** The text of an attribute value; anything but a character string is refused. */
function attributeText(t: Tlv, what: string): string {
  switch (t.tag) {
    case TAG.UTF8: return decodeUtf8(t.contents, what);
    // PrintableString's alphabet is not enforced: other tools put '@' or '*' in it.
    case TAG.PRINTABLE:
    case TAG.IA5:
    case NUMERIC:
    case VISIBLE: return ascii(t.contents, what);
    case T61: return Buffer.from(t.contents).toString('latin1'); // in practice Latin-1
    case BMP: return wide(t.contents, 2, what);
    case UNIVERSAL: return wide(t.contents, 4, what);
    default: throw new DerError(`${what}: the value is not a character string`);
  }
}

/** Anything escapeValue changes: a special, a control character, a leading space or #, a trailing space. */
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /[,+"\\<>;\u0000-\u001f\u007f]|^[ #]| $/;

/** RFC 4514, 2.4: backslash the specials, a leading space or #, a trailing space; hex for control characters. */
function escapeValue(s: string): string {
  // Most values need nothing: one test instead of four replacements (every name of every new peer).
  if (!NEEDS_ESCAPE.test(s)) return s;
  let out = s.replace(/[,+"\\<>;]/g, '\\$&');
  // A lone space leads and trails both: one backslash before it, not two.
  out = out.replace(/^[ #]/, '\\$&').replace(/(?<!^\\) $/, '\\ ');
  // eslint-disable-next-line no-control-regex
  return out.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** Name ::= SEQUENCE OF RelativeDistinguishedName (SET SIZE (1..MAX) OF AttributeTypeAndValue). */
export function decodeName(name: Tlv, what: string): DecodedName {
  const attributes: [string, string][] = [];
  const rdns: string[] = [];
  for (const rdn of children(expectTag(name, TAG.SEQUENCE, what))) {
    const atvs = children(expectTag(rdn, TAG.SET, `${what} RDN`));
    if (atvs.length === 0) throw new DerError(`${what}: an empty RDN`);
    const parts: string[] = [];
    for (const atv of atvs) {
      // By index: destructuring goes through the array iterator, allocating, for every attribute.
      const f = children(expectTag(atv, TAG.SEQUENCE, `${what} attribute`));
      const type = f[0];
      const value = f[1];
      if (!value || f.length > 2) throw new DerError(`${what}: an attribute is not a type and one value`);
      const oid = decodeOid(expectTag(type, TAG.OID, `${what} attribute type`).contents);
      const text = attributeText(value, `${what} ${SHORT_NAMES[oid] ?? oid}`);
      attributes.push([oid, text]);
      parts.push(`${SHORT_NAMES[oid] ?? oid}=${escapeValue(text)}`);
    }
    rdns.push(parts.join('+'));
  }
  return { text: rdns.join(', '), attributes };
}

const UTC_RE = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/;
const GENERALIZED_RE = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/;

/** DER UTCTime (YYMMDDHHMMSSZ, 1950..2049) or GeneralizedTime (YYYYMMDDHHMMSSZ): seconds, Z, no fractions. */
export function decodeTime(t: Tlv | undefined, what: string): Date {
  const text = t ? ascii(t.contents, what) : '';
  const m = t?.tag === TAG.UTC_TIME ? UTC_RE.exec(text) : t?.tag === TAG.GENERALIZED_TIME ? GENERALIZED_RE.exec(text) : null;
  if (!m) throw new DerError(`${what}: not a DER UTCTime or GeneralizedTime`);
  const yy = Number(m[1]);
  const mo = Number(m[2]);
  const d = Number(m[3]);
  const h = Number(m[4]);
  const mi = Number(m[5]);
  const s = Number(m[6]);
  const year = t!.tag === TAG.UTC_TIME ? (yy < 50 ? 2000 + yy : 1900 + yy) : yy;
  // GeneralizedTime 0050 is the year 50 (in a validity, checkTimeForm then refuses it as not UTCTime).
  const at = calendarTime(year, mo, d, h, mi, s);
  if (!at) throw new DerError(`${what}: ${text} is not a valid time`);
  return at;
}

/** Validity ::= SEQUENCE { notBefore Time, notAfter Time } */
export function decodeValidity(validity: Tlv): { notBefore: Date; notAfter: Date } {
  const f = children(expectTag(validity, TAG.SEQUENCE, 'validity'));
  if (f.length > 2) throw new DerError('validity: unexpected extra fields');
  const nb = f[0];
  const na = f[1];
  // RFC 5280 4.1.2.5: dates through 2049 are UTCTime, later ones GeneralizedTime.
  checkTimeForm(nb, 'notBefore');
  checkTimeForm(na, 'notAfter');
  return { notBefore: decodeTime(nb, 'notBefore'), notAfter: decodeTime(na, 'notAfter') };
}

/** A GeneralizedTime is for dates from 2050 on: one before must have been written as UTCTime. */
function checkTimeForm(t: Tlv | undefined, what: string): void {
  if (t?.tag === TAG.GENERALIZED_TIME && decodeTime(t, what).getUTCFullYear() < 2050) throw new DerError(`${what}: a date before 2050 must be UTCTime`);
}
