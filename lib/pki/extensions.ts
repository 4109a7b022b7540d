// The standard extensions validation relies on (RFC 5280, 4.2.1), decoded with our strict DER
// reader: basicConstraints, keyUsage, extKeyUsage, subject and authority key identifiers, and
// subjectAltName. Every extension value, understood or not, must be exactly one DER element, and
// the other common ones (issuerAltName, CRL distribution points, authority information access,
// certificate policies) must have their shape: a certificate that garbles them is refused, as before.

import { toHex } from '../crypto/index.ts';
import { checkTree, children, DerError, decodeOid, expectTag, readOne, TAG, type Tlv } from './der.ts';
import { ascii, decodeName } from './names.ts';
import { ADMISSION_EXTENSION_OID, EKU_NAMES, KEY_USAGE_BITS, OID, type KeyUsageName } from './oids.ts';
import type { AltNames } from './san.ts';
import type { RawExtension } from './structure.ts';

export interface StandardExtensions {
  /** basicConstraints cA; false when the extension is absent. */
  isCA: boolean;
  pathLength?: number;
  /** Empty when the keyUsage extension is absent. */
  keyUsage: KeyUsageName[];
  /** Names for the usual purposes (serverAuth, clientAuth, ...), OIDs for others; empty when absent. */
  extKeyUsage: string[];
  subjectKeyIdHex?: string;
  authorityKeyIdHex?: string;
  altNames: AltNames;
}

/** A non-negative INTEGER, minimally encoded, small enough to be a number. */
function smallUnsigned(t: Tlv | undefined, what: string): number {
  const c = expectTag(t, TAG.INTEGER, what).contents;
  if (c.length === 0 || c.length > 5) throw new DerError(`${what}: bad length`);
  if (c.length > 1 && c[0] === 0 && (c[1]! & 0x80) === 0) throw new DerError(`${what}: non-minimal encoding`);
  if ((c[0]! & 0x80) !== 0) throw new DerError(`${what}: negative`);
  let n = 0;
  for (const b of c) n = n * 256 + b;
  if (n > 0x7fffffff) throw new DerError(`${what}: too large`);
  return n;
}

/** BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER (0..MAX) OPTIONAL } */
function basicConstraints(v: Tlv): Pick<StandardExtensions, 'isCA' | 'pathLength'> {
  const fields = children(expectTag(v, TAG.SEQUENCE, 'basicConstraints'));
  let isCA = false;
  if (fields[0]?.tag === TAG.BOOLEAN) {
    const b = fields.shift()!.contents;
    if (b.length !== 1 || (b[0] !== 0 && b[0] !== 0xff)) throw new DerError('basicConstraints: bad cA flag');
    if (b[0] === 0) throw new DerError('basicConstraints: cA FALSE written out (DER leaves the default out)');
    isCA = true;
  }
  const pathLength = fields[0] ? smallUnsigned(fields.shift(), 'basicConstraints pathLenConstraint') : undefined;
  if (fields.length > 0) throw new DerError('basicConstraints: unexpected extra fields');
  return pathLength === undefined ? { isCA } : { isCA, pathLength };
}

/** KeyUsage ::= BIT STRING, bit 0 (the first byte's top bit) digitalSignature. */
function keyUsage(v: Tlv): KeyUsageName[] {
  const c = expectTag(v, TAG.BIT_STRING, 'keyUsage').contents;
  const unused = c[0];
  if (unused === undefined || unused > 7 || (c.length === 1 && unused !== 0)) throw new DerError('keyUsage: bad unused-bit count');
  // DER (X.690 11.2): unused bits are zero, and a named-bit list has no trailing zero bits, so
  // its last byte is not zero and its lowest used bit is set. Else OpenSSL and we might read
  // different usages from one encoding.
  const last = c[c.length - 1]!;
  if (c.length > 1 && (last === 0 || (last & ((1 << unused) - 1)) !== 0 || (last & (1 << unused)) === 0)) {
    throw new DerError('keyUsage: not DER (bits set in the unused part, or trailing zero bits)');
  }
  return KEY_USAGE_BITS.filter((_, i) => ((c[1 + (i >> 3)] ?? 0) & (0x80 >> (i & 7))) !== 0);
}

/** ExtKeyUsageSyntax ::= SEQUENCE OF KeyPurposeId; the usual purposes by name, others by OID. */
function extKeyUsage(v: Tlv): string[] {
  return children(expectTag(v, TAG.SEQUENCE, 'extKeyUsage')).map((p) => {
    const oid = decodeOid(expectTag(p, TAG.OID, 'extKeyUsage purpose').contents);
    return EKU_NAMES[oid] ?? oid;
  });
}

/** Context-tagged fields [0], [1], ... each optional, in increasing order; `tags[n]` is field n's tag. */
function optionalFields(fields: Tlv[], tags: number[], what: string): (Tlv | undefined)[] {
  const out: (Tlv | undefined)[] = [];
  let last = -1;
  for (const f of fields) {
    const n = tags.indexOf(f.tag);
    if (n <= last) throw new DerError(`${what}: unexpected field`);
    out[n] = f;
    last = n;
  }
  return out;
}

/** AuthorityKeyIdentifier ::= SEQUENCE { [0] keyIdentifier, [1] authorityCertIssuer GeneralNames, [2] serial } */
function authorityKeyId(v: Tlv): string | undefined {
  const fields = children(expectTag(v, TAG.SEQUENCE, 'authorityKeyIdentifier'));
  const [keyId, issuer, serial] = optionalFields(fields, [0x80, 0xa1, 0x82], 'authorityKeyIdentifier');
  if (issuer) children(issuer).forEach((n) => generalName(n, 'authorityCertIssuer'));
  if (serial && serial.contents.length === 0) throw new DerError('authorityKeyIdentifier: empty serial');
  return keyId && toHex(keyId.contents);
}

/** RFC 5952 text for 16 bytes: lowercase, no leading zeros, the first longest run of 2+ zero groups as "::". */
function ipv6Text(b: Uint8Array): string {
  const groups = Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16));
  let best = { at: -1, len: 0 };
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > best.len) best = { at: i, len: j - i };
    i = j === i ? i + 1 : j;
  }
  if (best.len < 2) return groups.join(':');
  return `${groups.slice(0, best.at).join(':')}::${groups.slice(best.at + best.len).join(':')}`;
}

/** One GeneralName (RFC 5280, 4.2.1.6), checked; a URI, DNS name or IP address is returned as text. */
function generalName(n: Tlv, what: string): { kind: 'uri' | 'dns' | 'ip'; text: string } | undefined {
  switch (n.tag) {
    case 0x86: return { kind: 'uri', text: ascii(n.contents, `${what} URI`) };
    case 0x82: return { kind: 'dns', text: ascii(n.contents, `${what} dNSName`) };
    case 0x87: {
      const b = n.contents;
      if (b.length === 4) return { kind: 'ip', text: Array.from(b).join('.') };
      if (b.length === 16) return { kind: 'ip', text: ipv6Text(b) };
      throw new DerError(`${what}: an iPAddress of ${b.length} bytes`);
    }
    case 0x81: ascii(n.contents, `${what} rfc822Name`); return undefined;
    case 0x88: decodeOid(n.contents); return undefined; // registeredID
    case 0xa4: { // directoryName, EXPLICIT
      const [name, ...rest] = children(n);
      if (!name || rest.length > 0) throw new DerError(`${what}: a directoryName is not one Name`);
      decodeName(name, `${what} directoryName`);
      return undefined;
    }
    case 0xa0: { // otherName ::= SEQUENCE { type-id OID, value [0] EXPLICIT ANY }
      const [type, value, ...rest] = children(n);
      decodeOid(expectTag(type, TAG.OID, `${what} otherName`).contents);
      if (value?.tag !== 0xa0 || rest.length > 0) throw new DerError(`${what}: a malformed otherName`);
      return undefined;
    }
    case 0xa3: case 0xa5: return undefined; // x400Address, ediPartyName: not read
    default: throw new DerError(`${what}: unknown name type 0x${n.tag.toString(16)}`);
  }
}

/** GeneralNames ::= SEQUENCE OF GeneralName; URIs, DNS names and IP addresses are kept. */
function generalNames(v: Tlv, what: string): AltNames {
  const out: AltNames = { uris: [], dnsNames: [], ipAddresses: [] };
  for (const n of children(expectTag(v, TAG.SEQUENCE, what))) {
    const got = generalName(n, what);
    if (got?.kind === 'uri') out.uris.push(got.text);
    else if (got?.kind === 'dns') out.dnsNames.push(got.text);
    else if (got?.kind === 'ip') out.ipAddresses.push(got.text);
  }
  return out;
}

/** SEQUENCE OF SEQUENCE, each checked by `item` (which gets the inner fields). */
function sequenceOf(v: Tlv, what: string, item: (fields: Tlv[]) => void): void {
  const list = children(expectTag(v, TAG.SEQUENCE, what));
  if (list.length === 0) throw new DerError(`${what}: empty`);
  for (const t of list) item(children(expectTag(t, TAG.SEQUENCE, what)));
}

// The shapes of extensions we do not use but whose garbling has always been refused.
const OTHER_SHAPES: Readonly<Record<string, (v: Tlv) => void>> = {
  '2.5.29.18': (v) => void generalNames(v, 'issuerAltName'),
  // DistributionPoint ::= SEQUENCE { [0] distributionPoint, [1] reasons, [2] cRLIssuer }, each optional
  '2.5.29.31': (v) => sequenceOf(v, 'cRLDistributionPoints', (f) => {
    const [point, , issuer] = optionalFields(f, [0xa0, 0x81, 0xa2], 'distributionPoint');
    // DistributionPointName ::= CHOICE { fullName [0] GeneralNames, nameRelativeToCRLIssuer [1] RDN }
    const [name, ...more] = point ? children(point) : [];
    if (point && (!name || more.length > 0 || (name.tag !== 0xa0 && name.tag !== 0xa1))) throw new DerError('distributionPoint: malformed name');
    if (name?.tag === 0xa0) children(name).forEach((n) => generalName(n, 'distributionPoint'));
    if (issuer) children(issuer).forEach((n) => generalName(n, 'cRLIssuer'));
  }),
  // AccessDescription ::= SEQUENCE { accessMethod OID, accessLocation GeneralName }
  '1.3.6.1.5.5.7.1.1': (v) => sequenceOf(v, 'authorityInfoAccess', ([method, location, ...rest]) => {
    decodeOid(expectTag(method, TAG.OID, 'accessMethod').contents);
    if (!location || rest.length > 0) throw new DerError('authorityInfoAccess: malformed access description');
    generalName(location, 'accessLocation');
  }),
  // PolicyInformation ::= SEQUENCE { policyIdentifier OID, policyQualifiers SEQUENCE OF ... OPTIONAL }
  '2.5.29.32': (v) => sequenceOf(v, 'certificatePolicies', ([id, qualifiers, ...rest]) => {
    decodeOid(expectTag(id, TAG.OID, 'policyIdentifier').contents);
    if (qualifiers) sequenceOf(qualifiers, 'policyQualifiers', ([q]) => decodeOid(expectTag(q, TAG.OID, 'policyQualifierId').contents));
    if (rest.length > 0) throw new DerError('certificatePolicies: unexpected extra fields');
  }),
};

/** Decodes the standard extensions. Throws DerError when any extension value is malformed. */
export function decodeStandardExtensions(list: RawExtension[]): StandardExtensions {
  const out: StandardExtensions = { isCA: false, keyUsage: [], extKeyUsage: [], altNames: { uris: [], dnsNames: [], ipAddresses: [] } };
  for (const e of list) {
    if (e.oid === ADMISSION_EXTENSION_OID) continue; // admission.ts reads it, strictly, with its own reason
    let v: Tlv;
    try {
      v = readOne(e.value);
      checkTree(v);
    } catch (cause) {
      throw new DerError(`extension ${e.oid}: ${(cause as Error).message}`);
    }
    switch (e.oid) {
      case OID.basicConstraints: Object.assign(out, basicConstraints(v)); break;
      case OID.keyUsage: out.keyUsage = keyUsage(v); break;
      case OID.extKeyUsage: out.extKeyUsage = extKeyUsage(v); break;
      case OID.subjectKeyIdentifier: out.subjectKeyIdHex = toHex(expectTag(v, TAG.OCTET_STRING, 'subjectKeyIdentifier').contents); break;
      case OID.authorityKeyIdentifier: {
        const id = authorityKeyId(v);
        if (id !== undefined) out.authorityKeyIdHex = id;
        break;
      }
      case OID.subjectAltName: out.altNames = generalNames(v, 'subjectAltName'); break;
      default: OTHER_SHAPES[e.oid]?.(v); // others are judged by their critical flag, in validate.ts
    }
  }
  return out;
}
