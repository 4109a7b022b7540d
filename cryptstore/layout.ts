// The LevelDB layout of a cryptstore and the associated data bound into each ciphertext.
//
//   "!meta"                         cryptstore_metadata (plaintext; the data key inside is wrapped)
//   "e!" tag "\0" 8 hex digits      one entry version: seal(data key, cryptstore_entry, entryAad)
//   "h!" tag                        high-water mark: seal(data key, uint32 BE, markAad), written
//                                   when the highest version of a tag is deleted, so versions are
//                                   never reused
//
// Tags never contain control characters, so "\0" ends a tag unambiguously and the keys of one
// tag sort by version.

import { concatBytes, encodeFields } from '../lib/crypto/index.ts';
import { CRYPTSTORE_FORMAT_VERSION, MAX_VERSION } from '../lib/wire/index.ts';
import type { ProtectionParams } from './protection.ts';

export const META_KEY = '!meta';
export const ENTRY_PREFIX = 'e!';
export const MARK_PREFIX = 'h!';
const FORMAT = String(CRYPTSTORE_FORMAT_VERSION);

export function entryKey(tag: string, version: number): string {
  return `${ENTRY_PREFIX}${tag}\u0000${version.toString(16).padStart(8, '0')}`;
}

/** The key range holding every version of `tag`. */
export function entryRange(tag: string): { gt: string; lt: string } {
  return { gt: `${ENTRY_PREFIX}${tag}\u0000`, lt: `${ENTRY_PREFIX}${tag}\u0001` };
}

/** Every entry of the store. */
export const ALL_ENTRIES = { gt: ENTRY_PREFIX, lt: 'e"' } as const;
export const ALL_MARKS = { gt: MARK_PREFIX, lt: 'h"' } as const;

/**
 * Splits an entry key; undefined when it is not one (a version outside 1..MAX_VERSION is none).
 * The first NUL ends the tag (a tag holds none): a key with another after it names no version.
 */
export function parseEntryKey(key: string): { tag: string; version: number } | undefined {
  if (!key.startsWith(ENTRY_PREFIX)) return undefined;
  const nul = key.indexOf('\u0000');
  const hex = key.slice(nul + 1);
  if (nul < ENTRY_PREFIX.length || !/^[0-9a-f]{8}$/.test(hex)) return undefined;
  const version = parseInt(hex, 16);
  if (version < 1 || version > MAX_VERSION) return undefined;
  return { tag: key.slice(ENTRY_PREFIX.length, nul), version };
}

export function markKey(tag: string): string {
  return MARK_PREFIX + tag;
}

export function entryAad(storeId: Uint8Array, tag: string, version: number): Uint8Array {
  return encodeFields('cryptstore-entry', FORMAT, storeId, tag, String(version));
}

/** entryAad with its constant prefix computed once per store (the same bytes, less work per call). */
export function entryAadFor(storeId: Uint8Array): (tag: string, version: number) => Uint8Array {
  const prefix = encodeFields('cryptstore-entry', FORMAT, storeId);
  return (tag, version) => concatBytes(prefix, encodeFields(tag, String(version)));
}

export function markAad(storeId: Uint8Array, tag: string): Uint8Array {
  return encodeFields('cryptstore-high-water-mark', FORMAT, storeId, tag);
}

/** Binds the wrapped data key to the store and to every protection parameter. */
export function dataKeyAad(storeId: Uint8Array, p: ProtectionParams): Uint8Array {
  const s = p.scrypt;
  return encodeFields(
    'cryptstore-data-key', FORMAT, storeId, p.kind,
    s ? `${s.logN}/${s.r}/${s.p}` : '', s ? s.salt : new Uint8Array(0),
    p.salt ?? new Uint8Array(0), p.platform ?? '',
  );
}

export function bundleAad(logN: number, r: number, p: number, salt: Uint8Array): Uint8Array {
  return encodeFields('cryptstore-bundle', FORMAT, `${logN}/${r}/${p}`, salt);
}
