// What the cryptstore takes and gives: its options, entries, store info and reports (store.ts re-exports them).

import type { MadeDirs } from '../lib/files/index.ts';
import type { EntryType } from '../lib/wire/index.ts';

export interface StoreOptions {
  /** fsync every write before acknowledging it (default true). */
  durable?: boolean;
  /**
   * create (and openOrCreate when it creates): called once this process holds the new store's
   * lock and is the one making it; from then on what is at `dir` is this creation's (until then
   * another process may be making or have made it), and a creation that fails removes it.
   * `made`: the directories this creation made (makeOwnDirs): the first (`dir`, or a folder above
   * it), if any, `dir` itself if it made it, and every one it made, for unmakeDirs.
   */
  onCreating?: (made: MadeDirs) => void;
  /**
   * Wraps each write of a change (its one atomic batch, and the compaction after a delete, a
   * forced import or a rekey), told in words what the write does
   * ("\"k\" version 3 was stored"): cert-utility holds SIGINT and SIGTERM around the write (and that compaction),
   * never around the key derivation before it, and says what was done if one came meanwhile.
   * `write` resolves with the error of the compaction when that failed after the change was
   * written (a FILE_ERROR whose message says what was done, and what was not): that is what to say.
   */
  guardWrite?: <T>(what: string, write: () => Promise<T>) => Promise<T>;
}

export interface PutOptions {
  type?: EntryType;
  exportable?: boolean;
  /** The time recorded as time_entered (default now). */
  time?: Date;
}

export interface EntryInfo {
  tag: string;
  version: number;
  type: EntryType;
  timeEntered: string;
  exportable: boolean;
  size: number;
}

export interface Entry extends EntryInfo {
  blob: Uint8Array;
}

export interface StoreInfo {
  path: string;
  formatVersion: number;
  storeId: string;
  created: string;
  protection: { kind: string; scrypt?: { logN: number; r: number; p: number }; platform?: string };
}

export interface VerifyReport {
  entries: number;
  tags: number;
  problems: { key: string; problem: string }[];
}

/** What repair did to one record (its key as verify names it): "removed", or "replaced (versions from N on)". */
export interface Repaired {
  key: string;
  done: string;
}

/**
 * What a delete removed: versions, and records under the tag whose key named no version; and
 * `retired` when every version went while the tag's high-water mark did not open: the numbers it
 * used cannot be known, so its mark was replaced with one at MAX_VERSION, and no version can be
 * stored under the tag again (rather than a number given out before given to other bytes).
 */
export interface Deleted {
  versions: number[];
  damaged: number;
  retired?: true;
}
