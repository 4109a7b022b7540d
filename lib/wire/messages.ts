// Decode-then-validate for each message the suite accepts from outside (disk or network).
// Each parseX returns a value whose required fields are no longer optional, or throws one
// CertifierError (DECODE_FAILED, MISSING_FIELD or BAD_FIELD) naming every problem.

import { decode } from './proto.ts';
import { FieldCheck, shown } from './check.ts';
import type * as T from './types.ts';

export const ENTRY_TYPES = ['key-message-serialized-protobuf', 'X509-der-cert', 'binary-blob', 'other'] as const;
export type EntryType = (typeof ENTRY_TYPES)[number];

export const MAX_TAG_LENGTH = 256;
export const MAX_VERSION = 0x7fffffff; // int32 on the wire

/** The order of tags and resource names wherever they are sorted: by code point, as their UTF-8 bytes sort. */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/** Why a tag or resource name is unacceptable, or undefined when it is fine. */
export function tagProblem(tag: string): string | undefined {
  if (tag.length === 0) return 'is empty';
  if (tag.length > MAX_TAG_LENGTH) {
    // String length counts UTF-16 code units; say so when that is not the characters a user sees.
    const astral = tag.length !== [...tag].length;
    return `is longer than ${MAX_TAG_LENGTH} characters${astral ? ' (counted in UTF-16 units: a character beyond U+FFFF, such as an emoji, counts as two)' : ''}`;
  }
  // Printable ASCII (most names) has none of the faults below: one test instead of three. Every
  // name is checked at each layer a request passes (the request, KeyStore, the backend).
  if (PRINTABLE_ASCII.test(tag)) return undefined;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(tag)) return 'contains a control character';
  // protobufjs turns invalid UTF-8 into U+FFFD; refusing it keeps two byte strings from
  // reading as the same tag.
  if (tag.includes('\ufffd')) return 'is not valid UTF-8';
  // A lone surrogate has no UTF-8 form: it would be written as U+FFFD, and read back as another tag.
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(tag)) return 'holds a lone UTF-16 surrogate (not text)';
  return undefined;
}

/**
 * Why a name may not be given to something new (an item a command stores, a key): tagProblem, and
 * also C1 control characters and the characters that display as nothing (zero-width marks, the
 * bidirectional controls), which make one name look like another on a terminal or in a log.
 * Names made before this rule are still read, addressed and kept (tagProblem alone).
 */
export function newNameProblem(tag: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  // Default-ignorable code points render as nothing (zero-width spaces and joiners, soft hyphens,
  // variation selectors, the bidirectional controls); C1 controls may start terminal sequences.
  return tagProblem(tag) ?? (/[\u0080-\u009f\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/u.test(tag) ? 'contains a C1 control or an invisible character, such as a zero-width or bidirectional mark (it would display as another name)' : undefined)
    // "café" as e + a combining accent displays as the precomposed "café", another name.
    ?? (tag.normalize('NFC') !== tag ? 'is not in Unicode normalization form C (a letter written as a base and a combining mark displays as another name that is one code point): write it composed' : undefined);
}

/**
 * A name as text output shows it: as it is, or quoted and escaped if it could pass for another;
 * a name that itself begins with a quote is quoted too, so that it never reads as the escaped
 * form of another (`"cafe\u0301"` typed in plain ASCII).
 */
export function printableName(name: string): string {
  return newNameProblem(name) || name.startsWith('"') ? shown(name, 256) : name;
}

export interface ValidEntry {
  tag: string;
  type: EntryType;
  version: number;
  timeEntered: string;
  blob: Uint8Array;
  exportable: boolean;
}

export function parseCryptstoreEntry(bytes: Uint8Array): ValidEntry {
  const m = decode<T.CryptstoreEntry>('cryptstore_entry', bytes);
  return checkCryptstoreEntry(m);
}

export function checkCryptstoreEntry(m: T.CryptstoreEntry, what = 'cryptstore_entry'): ValidEntry {
  const c = new FieldCheck(what);
  if (c.need('tag', m.tag)) {
    const p = tagProblem(m.tag!);
    if (p) c.add(`tag ${p}`);
  }
  c.oneOf('type', m.type, ENTRY_TYPES);
  c.int('version', m.version, 1, MAX_VERSION);
  c.need('blob', m.blob);
  c.bytes('time_entered', m.timeEntered, { min: 1, max: 64 });
  c.done();
  return {
    tag: m.tag!,
    type: m.type as EntryType,
    version: m.version!,
    timeEntered: Buffer.from(m.timeEntered!).toString('utf8'),
    blob: m.blob!,
    exportable: m.exportable ?? false,
  };
}

export const CRYPTSTORE_FORMAT_VERSION = 1;
export const PROTECTION_KINDS = ['passphrase', 'key-file', 'sealed'] as const;
export type ProtectionKind = (typeof PROTECTION_KINDS)[number];

export interface ValidScrypt { logN: number; r: number; p: number; salt: Uint8Array }
export interface ValidProtection {
  kind: ProtectionKind;
  scrypt?: ValidScrypt;
  salt?: Uint8Array;
  platform?: string;
  wrappedDataKey: Uint8Array;
}
export interface ValidMetadata {
  formatVersion: number;
  storeId: Uint8Array;
  created: string;
  protection: ValidProtection;
}

/**
 * scrypt parameters we accept from disk: exactly what this suite writes (N from 2^10 to 2^22, r 8,
 * p 1). They are read before anything is authenticated, so whoever can edit a store's metadata or
 * hand over a bundle chooses the cost of opening it: r 32 and p 16 would mean 16 GiB and minutes.
 */
function checkScrypt(c: FieldCheck, name: string, s: T.ScryptParams | undefined): ValidScrypt | undefined {
  if (!c.need(name, s)) return undefined;
  c.int(`${name}.log_n`, s!.logN, 10, 22);
  c.int(`${name}.r`, s!.r, 8, 8);
  c.int(`${name}.p`, s!.p, 1, 1);
  c.bytes(`${name}.salt`, s!.salt, { min: 16, max: 64 });
  return s as ValidScrypt;
}

export function parseCryptstoreMetadata(bytes: Uint8Array): ValidMetadata {
  const m = decode<T.CryptstoreMetadata>('cryptstore_metadata', bytes);
  const c = new FieldCheck('cryptstore metadata');
  c.int('format_version', m.formatVersion, 1, 0xffffffff);
  c.bytes('store_id', m.storeId, 16);
  c.text('created', m.created, 64);
  let protection: ValidProtection | undefined;
  if (c.need('protection', m.protection)) {
    const p = m.protection!;
    c.oneOf('protection.kind', p.kind, PROTECTION_KINDS);
    c.bytes('protection.wrapped_data_key', p.wrappedDataKey, 12 + 32 + 16);
    if (p.kind === 'passphrase') checkScrypt(c, 'protection.scrypt', p.scrypt);
    else c.bytes('protection.salt', p.salt, { min: 16, max: 64 });
    if (p.kind === 'sealed') c.text('protection.platform', p.platform, 64);
    protection = p as ValidProtection;
  }
  c.done();
  return { formatVersion: m.formatVersion!, storeId: m.storeId!, created: m.created!, protection: protection! };
}

export interface ValidBundle { formatVersion: number; scrypt: ValidScrypt; ciphertext: Uint8Array }

export function parseCryptstoreBundle(bytes: Uint8Array): ValidBundle {
  const m = decode<T.CryptstoreBundle>('cryptstore_bundle', bytes);
  const c = new FieldCheck('cryptstore bundle');
  c.int('format_version', m.formatVersion, 1, 0xffffffff);
  const scrypt = checkScrypt(c, 'scrypt', m.scrypt);
  c.bytes('ciphertext', m.ciphertext, { min: 12 + 16 });
  c.done();
  return { formatVersion: m.formatVersion!, scrypt: scrypt!, ciphertext: m.ciphertext! };
}

export interface ValidSignedClaim {
  serializedClaimMessage: Uint8Array;
  signingKey: T.KeyMessage;
  signingAlgorithm: string;
  signature: Uint8Array;
}

export function checkSignedClaim(m: T.SignedClaimMessage, what = 'signed_claim_message'): ValidSignedClaim {
  const c = new FieldCheck(what);
  c.bytes('serialized_claim_message', m.serializedClaimMessage, { min: 1 });
  c.need('signing_key', m.signingKey);
  c.text('signing_algorithm', m.signingAlgorithm, 128);
  c.bytes('signature', m.signature, { min: 1, max: 1024 });
  c.done();
  return m as ValidSignedClaim;
}

export function parseSignedClaim(bytes: Uint8Array): ValidSignedClaim {
  return checkSignedClaim(decode<T.SignedClaimMessage>('signed_claim_message', bytes));
}

export function parseSignedClaimSequence(bytes: Uint8Array): ValidSignedClaim[] {
  const m = decode<T.SignedClaimSequence>('signed_claim_sequence', bytes);
  return (m.claims ?? []).map((sc, i) => checkSignedClaim(sc, `signed_claim_sequence claim ${i}`));
}

export interface ValidClaim { claimFormat: string; notBefore: string; notAfter: string; serializedClaim: Uint8Array; claimDescriptor?: string }

export function parseClaim(bytes: Uint8Array): ValidClaim {
  const m = decode<T.ClaimMessage>('claim_message', bytes, { strict: true }); // signed: nothing in it may go unread
  const c = new FieldCheck('claim_message');
  c.text('claim_format', m.claimFormat, 64);
  c.text('not_before', m.notBefore, 64);
  c.text('not_after', m.notAfter, 64);
  c.bytes('serialized_claim', m.serializedClaim, { min: 1 });
  c.done();
  return m as ValidClaim;
}

export interface ValidTrustRequest {
  requestingEnclaveTag: string;
  providingEnclaveTag: string;
  submittedEvidenceType: string;
  purpose: string;
  support: { proverType: string; enclaveType?: string; factAssertion: { evidenceType: string; serializedEvidence: Uint8Array }[] };
}

export function parseTrustRequest(bytes: Uint8Array): ValidTrustRequest {
  const m = decode<T.TrustRequestMessage>('trust_request_message', bytes);
  const c = new FieldCheck('trust_request_message');
  c.text('requesting_enclave_tag', m.requestingEnclaveTag, 256);
  c.text('providing_enclave_tag', m.providingEnclaveTag, 256);
  c.text('submitted_evidence_type', m.submittedEvidenceType, 128);
  c.oneOf('purpose', m.purpose, ['authentication', 'attestation']);
  if (c.need('support', m.support)) {
    c.text('support.prover_type', m.support!.proverType, 64);
    const facts = m.support!.factAssertion ?? [];
    if (facts.length === 0) c.add('support.fact_assertion is empty');
    if (facts.length > 16) c.add('support.fact_assertion has more than 16 items');
    facts.forEach((f, i) => {
      c.text(`support.fact_assertion[${i}].evidence_type`, f.evidenceType, 128);
      c.bytes(`support.fact_assertion[${i}].serialized_evidence`, f.serializedEvidence, { min: 1 });
    });
  }
  c.done();
  return m as ValidTrustRequest;
}

export interface ValidTrustResponse {
  status: 'succeeded' | 'failed';
  requestingEnclaveTag?: string;
  providingEnclaveTag?: string;
  artifact?: Uint8Array;
  errorCode?: string;
}

export function parseTrustResponse(bytes: Uint8Array): ValidTrustResponse {
  const m = decode<T.TrustResponseMessage>('trust_response_message', bytes);
  const c = new FieldCheck('trust_response_message');
  c.oneOf('status', m.status, ['succeeded', 'failed']);
  if (m.status === 'succeeded') c.bytes('artifact', m.artifact, { min: 1, max: 64 * 1024 });
  c.done();
  return m as ValidTrustResponse;
}
