// The cryptstore's checks of its arguments, and the messages and record helpers its layers share.

import { CertifierError } from '../lib/errors/index.ts';
import { MAX_VERSION, shown, tagProblem, type ValidEntry } from '../lib/wire/index.ts';
import * as L from './layout.ts';
import type { Deleted, Entry, EntryInfo } from './types.ts';

export const MAX_BLOB_BYTES = 16 * 1024 * 1024;

/**
 * What verify says of a record it cannot place: under a tag's entries (as `e!` tag NUL names
 * them; a tag holds no NUL), a key naming no version, which delete-item of the whole tag removes.
 */
export function unknownRecord(key: string): string {
  const nul = key.indexOf('\u0000');
  const tag = key.startsWith(L.ENTRY_PREFIX) && nul > 0 ? key.slice(L.ENTRY_PREFIX.length, nul) : undefined;
  if (tag === undefined || tagProblem(tag)) return 'a record under no tag, with a key this store never writes: verify-store --repair --yes removes it';
  return `a record of ${shown(tag, 256)} whose key names no version this store writes (1 to ${MAX_VERSION}): verify-store --repair --yes removes it (as delete-item --tag ${shown(tag, 256)} does, with every version of the tag)`;
}

/** What a delete removed, in words: "versions 1, 2", "version 3 and 1 record whose key named no version", "its damaged version record". */
export function describeDeleted(d: Deleted): string {
  const parts = [];
  if (d.versions.length) parts.push(`version${d.versions.length > 1 ? 's' : ''} ${d.versions.join(', ')}`);
  if (d.damaged) parts.push(`${d.damaged} record${d.damaged > 1 ? 's' : ''} whose key named no version`);
  if (d.retired) parts.push('its damaged version record');
  return parts.join(' and ');
}

/** A put past the last version number: the tag can take no other, and says so. */
export function usedUp(tag: string): CertifierError {
  return new CertifierError('INVALID_INPUT', `${shown(tag, 256)} has used every version number, up to ${MAX_VERSION}, the highest (or was retired: deleted while its record of the numbers used was damaged): no later version can be stored under this tag (a deleted number is never given again); store the value under another tag`);
}

export function isIntegrity(e: unknown): boolean {
  return e instanceof CertifierError && e.code === 'INTEGRITY';
}

/** What `p` gives, or undefined where it fails INTEGRITY (a record that does not open); any other failure stays. */
export function unlessDamaged<T>(p: Promise<T>): Promise<T | undefined> {
  return p.catch((e: unknown) => (isIntegrity(e) ? undefined : Promise.reject(e)));
}

export function infoOf(e: ValidEntry | Entry): EntryInfo {
  return { tag: e.tag, version: e.version, type: e.type, timeEntered: e.timeEntered, exportable: e.exportable, size: e.blob.length };
}

export function checkTag(tag: string): void {
  const p = tagProblem(tag);
  if (p) throw new CertifierError('INVALID_INPUT', `the tag ${p}`);
}

export function checkVersion(v: number, zeroOk: boolean): void {
  if (!Number.isInteger(v) || v < (zeroOk ? 0 : 1) || v > MAX_VERSION) {
    throw new CertifierError('INVALID_INPUT', `version must be an integer from ${zeroOk ? 0 : 1} to ${MAX_VERSION}`);
  }
}

export function checkBlob(blob: Uint8Array): void {
  if (blob.length > MAX_BLOB_BYTES) throw new CertifierError('INVALID_INPUT', `an item may hold at most ${MAX_BLOB_BYTES} bytes`);
}
