// The storage interface every key-server backend implements (LevelDB now, PostgreSQL later),
// and the argument checks they share. test/keyservice/backend-contract.ts is its executable spec.

import { CertifierError } from '../errors/index.ts';
import { MAX_TAG_LENGTH, MAX_VERSION, tagProblem } from '../wire/index.ts';
import { DELETE_LISTED } from './protocol.ts';

/** What a backend stores: ciphertext and metadata only. Backends never see plaintext or keys. */
export interface StoredRecord {
  name: string;
  version: number;
  type: string;
  exportable: boolean;
  /** RFC 3339 */
  timeEntered: string;
  /** plaintext length */
  size: number;
  ciphertext: Uint8Array;
}

/** A record's metadata: what list returns. */
export interface RecordInfo {
  name: string;
  version: number;
  type: string;
  exportable: boolean;
  timeEntered: string;
  size: number;
}

export interface ListOptions {
  /** Every version of every name instead of the latest of each. */
  allVersions?: boolean;
  /** At most this many results (the first ones in sort order). */
  limit?: number;
  /**
   * Only names after this one in code point order: the last name of the page before, so a long
   * listing comes in pages. Versions of one name are never split by it without allVersions.
   */
  after?: string;
}

/** What a delete removed: how many versions, and the lowest of them (at most as many as asked), in order. */
export interface Deleted {
  count: number;
  versions: number[];
}

export interface KeyBackend {
  /**
   * Assigns the next version of `name` atomically (never reusing a deleted one) and stores the
   * record built for it. If expectedLatest is given and the current latest version differs,
   * throws CertifierError('VERSION_CONFLICT'); 0 means "no version exists". `check`, called
   * with the latest version under the same lock, and `build` may throw to store nothing (and
   * use up no version number).
   */
  append(name: string, build: (version: number) => StoredRecord, expectedLatest?: number, check?: (latest: number) => void): Promise<StoredRecord>;
  /** One version, or the latest when `version` is 0; undefined when absent. */
  get(name: string, version: number): Promise<StoredRecord | undefined>;
  /**
   * Deletes one version, or all when version is 0: how many versions it deleted (0 when none), and
   * the lowest `listed` of them in order (default DELETE_LISTED, the most a delete's answer names),
   * so the answer is bounded however many versions a name has (PostgreSQL's rows too; LevelDB
   * still gathers every key for its one atomic batch).
   */
  delete(name: string, version: number, listed?: number): Promise<Deleted>;
  /**
   * Metadata of the latest version of every name starting with `prefix` (or every version with
   * allVersions), sorted by name (code point order) then version; never ciphertext.
   */
  list(prefix: string, options?: ListOptions): Promise<RecordInfo[]>;
  close(): Promise<void>;
  /**
   * Backends shared by several key-server replicas record which storage key their records are
   * sealed under, by its id (storageKeyId in keystore.ts), so a replica holding another key is
   * refused at start instead of writing records nobody else can open.
   * boundStorageKey: the recorded id, or undefined before the first start.
   */
  boundStorageKey?(): Promise<string | undefined>;
  /**
   * Records `keyId` if no id is recorded yet; WRONG_KEY if another one is. From then on a
   * backend that may reach another database while it runs (a new connection) refuses with
   * WRONG_KEY to use one bound to another key.
   */
  bindStorageKey?(keyId: string): Promise<void>;
}

/** The default and largest answer of list, so one request cannot make a server build a huge reply. */
export const MAX_LIST_LIMIT = 100_000;

export function checkName(name: string): void {
  const p = tagProblem(name);
  if (p) throw new CertifierError('INVALID_INPUT', `the resource name ${p}`);
}

/** A list prefix is a name, except that '' (everything) is allowed. */
export function checkPrefix(prefix: string): void {
  if (prefix !== '') checkName(prefix);
}

export function checkVersion(version: number, zeroOk: boolean): void {
  if (!Number.isInteger(version) || version < (zeroOk ? 0 : 1) || version > MAX_VERSION) {
    throw new CertifierError('INVALID_INPUT', `a version must be an integer from ${zeroOk ? 0 : 1} to ${MAX_VERSION}, not ${version}`);
  }
}

/** The `after` of a list, when given, is a name. */
export function checkAfter(options: ListOptions | undefined): void {
  if (options?.after !== undefined) checkName(options.after);
}

/** How many deleted versions a delete may name: 1 to DELETE_LISTED. */
export function checkListed(listed: number): void {
  if (!Number.isInteger(listed) || listed < 1 || listed > DELETE_LISTED) throw new RangeError(`a delete names 1 to ${DELETE_LISTED} versions, not ${listed}`);
}

export function checkExpected(expectedLatest: number | undefined): void {
  if (expectedLatest !== undefined) checkVersion(expectedLatest, true);
}

/** The limit to apply, from the caller's option (refusing nonsense rather than guessing). */
export function listLimit(options: ListOptions | undefined): number {
  const limit = options?.limit ?? MAX_LIST_LIMIT;
  if (!Number.isInteger(limit) || limit < 0) throw new CertifierError('INVALID_INPUT', `a list limit must be a non-negative integer, not ${limit}`);
  return Math.min(limit, MAX_LIST_LIMIT);
}

/** The next version after `highest`, or INVALID_INPUT when the name has used them all. */
export function nextVersion(name: string, highest: number): number {
  if (highest >= MAX_VERSION) throw new CertifierError('INVALID_INPUT', `"${name}" has used every version number`);
  return highest + 1;
}

export function versionConflict(name: string, expected: number, latest: number): CertifierError {
  return new CertifierError('VERSION_CONFLICT', `the latest version of "${name}" is ${latest}, not ${expected}`, { details: { expected, latest } });
}

/** A change whose write failed after it may have taken effect: what it was, and its audit details. */
export interface UnknownChange { what: string; details: { version: number; deleted?: number } }

export function storeUnknown(name: string, version: number): UnknownChange {
  return { what: `"${name}" version ${version} may or may not have been stored`, details: { version } };
}

/** `asked` is the version a delete named (0: all), `count` how many it was deleting. */
export function deleteUnknown(name: string, asked: number, count: number): UnknownChange {
  const which = asked ? `version ${asked}` : `all ${count} version${count === 1 ? '' : 's'}`;
  return { what: `${which} of "${name}" may or may not have been deleted`, details: { version: asked, deleted: count } };
}

/**
 * OUTCOME_UNKNOWN for a write of `change` that failed as `failed` says, where the failure may have
 * come after the change took effect (`how`): KeyService answers it as neither done nor refused.
 */
export function outcomeUnknown(failed: CertifierError, change: UnknownChange, how: string, cause: unknown): CertifierError {
  return new CertifierError('OUTCOME_UNKNOWN', `${failed.message}; ${change.what} (${how})`, { cause, details: change.details });
}

/** Checks that a record built by append's callback is the one asked for (a programmer error otherwise). */
export function checkBuilt(name: string, version: number, r: StoredRecord): void {
  if (r.name !== name || r.version !== version) {
    throw new CertifierError('INTERNAL', `append("${name}") built a record for "${r.name}" version ${r.version}, not version ${version}`);
  }
}

export function infoOf(r: StoredRecord | RecordInfo): RecordInfo {
  return { name: r.name, version: r.version, type: r.type, exportable: r.exportable, timeEntered: r.timeEntered, size: r.size };
}

export { MAX_TAG_LENGTH as MAX_NAME_LENGTH };
