// The key-server's encryption layer over any KeyBackend: values are sealed with AES-256-GCM under
// the storage key before a backend sees them, and opened (and checked) after it returns them.
//
// The AAD binds (purpose, format, name, version, type, exportable), so a backend, or whoever can
// write its files or database, cannot move a value to another name or version, relabel its type,
// or make a non-exportable value exportable without fetch failing with INTEGRITY. What it can
// still do is delete records or roll a name back to an older state; time_entered is metadata the
// AAD does not cover (it is shown, never trusted for a decision).

import { CertifierError } from '../errors/index.ts';
import { AES_KEY_BYTES, encodeFields, hkdfSha256, open as aeadOpen, seal, toHex, utf8 } from '../crypto/index.ts';
import { ENTRY_TYPES, MAX_VERSION, shown, tagProblem, type EntryType } from '../wire/index.ts';
import { isRfc3339 } from '../policy/index.ts';
import { LruMap } from '../util/lru.ts';
import {
  checkExpected, checkName, checkPrefix, checkVersion, infoOf, type Deleted, type KeyBackend, type ListOptions, type RecordInfo, type StoredRecord,
} from './backend.ts';

export const KEY_RECORD_FORMAT = 1;
/** The tag of the storage key in the key-server's own cryptstore. */
export const STORAGE_KEY_TAG = 'key-server-storage-key';
/** Names under it are kept for the key-server's own use: never served, listed nor stored by a client. */
export const RESERVED_PREFIX = 'key-server/';

/** Names kept from clients: these, and every name under these prefixes. */
export interface ReservedNames {
  names: string[];
  prefixes: string[];
}

/** Whether `name` is one of `reserved`. */
export function isReserved(reserved: ReservedNames, name: string): boolean {
  return reserved.names.includes(name) || reserved.prefixes.some((p) => name.startsWith(p));
}
export const MAX_KEY_VALUE_BYTES = 1024 * 1024;

export interface StoreValueOptions {
  type: EntryType;
  exportable: boolean;
  /** Refuse (VERSION_CONFLICT) unless the latest version is this one; 0 = the name must not exist. */
  expectedLatest?: number;
  /** Refuse (VERSION_CONFLICT) unless the store makes exactly this version (numbers are never reused). */
  version?: number;
  /** Refuse with this error unless the name has a version now (checked atomically with the store). */
  onlyIfExisting?: () => Error;
  /** The time recorded as time_entered (default now). */
  time?: Date;
}

/** The associated data of one record's ciphertext. */
export function recordAad(name: string, version: number, type: string, exportable: boolean): Uint8Array {
  return encodeFields('key-service-record', String(KEY_RECORD_FORMAT), name, String(version), type, exportable ? '1' : '0');
}

/**
 * Why a record's metadata is not what store() writes, or undefined. Whoever can write the backend's
 * rows (a shared database) could put anything there: the AAD makes a value that was moved or
 * relabelled fail to open, but a list opens nothing, and the time is not in the AAD at all.
 */
function metadataProblem(r: RecordInfo, nameChecked = false): string | undefined {
  const name = nameChecked ? undefined : tagProblem(r.name);
  if (name) return `its name ${name}`;
  if (!Number.isInteger(r.version) || r.version < 1 || r.version > MAX_VERSION) return `version ${r.version}`;
  if (!(ENTRY_TYPES as readonly string[]).includes(r.type)) return `type ${shown(String(r.type))}`;
  // A column changed to text underneath reads "false", which the answer to a list would give as exportable.
  if (typeof r.exportable !== 'boolean') return `exportable ${shown(String(r.exportable))}`;
  if (typeof r.timeEntered !== 'string' || !isRfc3339(r.timeEntered)) return `time entered ${shown(String(r.timeEntered))}`;
  if (!Number.isInteger(r.size) || r.size < 0 || r.size > MAX_KEY_VALUE_BYTES) return `size ${r.size}`;
  return undefined;
}

/**
 * A public name for a storage key (32 hex digits), derived one-way from it: a shared database
 * records it so that replicas holding different keys are told apart without revealing the key.
 */
export function storageKeyId(key: Uint8Array): string {
  return toHex(hkdfSha256(key, new Uint8Array(), utf8('certifier-keys key-server storage key id v1'), 16));
}

/**
 * A record's metadata as fetch last checked it, and the AAD made from it: both are functions of
 * these fields alone (with the name and version they are kept under), never of the ciphertext.
 */
interface CheckedMetadata {
  version: number;
  type: string;
  exportable: boolean;
  timeEntered: string;
  size: number;
  aad: Uint8Array;
}

/** Names whose last record's metadata fetch keeps checked (a name, its AAD and a few fields each: at most about 2 MiB with the longest names). */
const CHECKED_NAMES = 1024;

/** A name, or a version of it (0: any), that is not there: a retrieve's refusal and a delete's say it alike. */
export function notFound(name: string, version: number | undefined): CertifierError {
  return new CertifierError('NOT_FOUND', version ? `no version ${version} of "${name}"` : `no key named "${name}"`);
}

export class KeyStore {
  private readonly key: Uint8Array;
  private wiped = false;
  /**
   * The metadata of the record fetch last checked for each name (keyed by the name asked for, the
   * string the backend has just looked up, so no key is made per fetch), so that a record fetched
   * again with the very same version and metadata needs only its AES-GCM open. A record whose
   * metadata changed underneath (another replica's write, a tampered byte) differs in a field and
   * is checked afresh; its ciphertext is opened every time, so a tampered one still fails.
   */
  private readonly checked: LruMap<string, CheckedMetadata>;

  /** `checkedNames`: how many names' checked metadata to keep (default CHECKED_NAMES; fewer in tests, to evict often). */
  constructor(readonly backend: KeyBackend, storageKey: Uint8Array, tuning: { checkedNames?: number } = {}) {
    if (storageKey.length !== AES_KEY_BYTES) throw new CertifierError('INVALID_KEY', `the storage key must be ${AES_KEY_BYTES} bytes, not ${storageKey.length}`);
    // A private copy: the caller may wipe its buffer.
    this.key = Uint8Array.from(storageKey);
    this.checked = new LruMap(tuning.checkedNames ?? CHECKED_NAMES);
  }

  /** Stores `value` as the next version of `name`. */
  async store(name: string, value: Uint8Array, options: StoreValueOptions): Promise<RecordInfo> {
    checkName(name);
    if (!(ENTRY_TYPES as readonly string[]).includes(options.type)) {
      throw new CertifierError('INVALID_INPUT', `unknown value type "${options.type}" (one of ${ENTRY_TYPES.join(', ')})`);
    }
    if (value.length > MAX_KEY_VALUE_BYTES) throw new CertifierError('INVALID_INPUT', `a value may hold at most ${MAX_KEY_VALUE_BYTES} bytes, not ${value.length}`);
    checkExpected(options.expectedLatest);
    const exportable = options.exportable === true;
    const timeEntered = (options.time ?? new Date()).toISOString();
    // Sealed inside the callback: only the backend knows the version, and it is part of the AAD.
    const wanted = options.version;
    const refuse = options.onlyIfExisting;
    const record = await this.backend.append(
      name,
      (version) => {
        if (wanted !== undefined && version !== wanted) {
          throw new CertifierError('VERSION_CONFLICT', `"${name}" would get version ${version}, not the ${wanted} asked for (a version number is never given twice)`, { details: { expected: wanted, next: version } });
        }
        return {
          name, version, type: options.type, exportable, timeEntered, size: value.length,
          ciphertext: seal(this.usableKey(), value, recordAad(name, version, options.type, exportable)),
        };
      },
      options.expectedLatest,
      refuse ? (latest) => { if (latest === 0) throw refuse(); } : undefined,
    );
    return infoOf(record);
  }

  /** A value and its metadata: `version` 0 is the latest. NOT_FOUND when absent, INTEGRITY when it does not open. */
  async fetch(name: string, version = 0): Promise<{ info: RecordInfo; value: Uint8Array }> {
    return this.open(name, version, false);
  }

  /**
   * fetch() for a value that is to leave the key-server: NOT_EXPORTABLE, before the value is
   * opened, when its record is marked not exportable, so a refused value is never decrypted into
   * the heap. The mark is in the AAD: a record relabelled exportable fails to open (INTEGRITY), one
   * relabelled not exportable is only refused.
   */
  async release(name: string, version = 0): Promise<{ info: RecordInfo; value: Uint8Array }> {
    return this.open(name, version, true);
  }

  private async open(name: string, version: number, exportableOnly: boolean): Promise<{ info: RecordInfo; value: Uint8Array }> {
    checkName(name);
    checkVersion(version, true);
    const r = await this.backend.get(name, version);
    if (!r) throw notFound(name, version);
    const v = version || r.version;
    const damaged = (why: string) => new CertifierError('INTEGRITY', `"${name}" version ${v} failed its integrity check (${why})`);
    // The AAD is built from what was asked for, not from what the record claims.
    if (r.name !== name || r.version !== v) throw damaged(`the backend returned "${r.name}" version ${r.version}`);
    const aad = this.checkedAad(name, r, damaged);
    if (exportableOnly && !r.exportable) throw new CertifierError('NOT_EXPORTABLE', `"${name}" version ${v} is not exportable`);
    const value = aeadOpen(this.usableKey(), r.ciphertext, aad);
    if (!value) throw damaged('authentication failed: tampered, moved, relabelled, or sealed under another storage key');
    if (value.length !== r.size) throw damaged(`the record says ${r.size} bytes, the value has ${value.length}`);
    return { info: infoOf(r), value };
  }

  /**
   * The AAD of record `r` of `name` (its name and version those asked for) once its metadata is
   * checked: kept from the last fetch of that name when the version and every field are the same.
   */
  private checkedAad(name: string, r: StoredRecord, damaged: (why: string) => CertifierError): Uint8Array {
    const c = this.checked.get(name);
    if (c && c.version === r.version && c.type === r.type && c.exportable === r.exportable && c.timeEntered === r.timeEntered && c.size === r.size) return c.aad;
    // Its name is the one asked for, which checkName has passed: the rest is checked here.
    const problem = metadataProblem(r, true);
    if (problem) throw damaged(problem);
    const aad = recordAad(name, r.version, r.type, r.exportable);
    // Kept as bytes of its own: recordAad's are a slice of Node's buffer pool, which a kept view would hold whole.
    this.checked.set(name, { version: r.version, type: r.type, exportable: r.exportable, timeEntered: r.timeEntered, size: r.size, aad: new Uint8Array(aad) });
    return aad;
  }

  /** Deletes one version, or all when `version` is 0: how many it deleted (0 when none), and the lowest of them (KeyBackend.delete). */
  async delete(name: string, version = 0, listed?: number): Promise<Deleted> {
    checkName(name);
    checkVersion(version, true);
    return this.backend.delete(name, version, listed);
  }

  /** Metadata (never values) of the names starting with `prefix` ('' = all); INTEGRITY for a record store() never writes. */
  async list(prefix: string, options?: ListOptions): Promise<RecordInfo[]> {
    checkPrefix(prefix);
    const infos = await this.backend.list(prefix, options);
    for (const r of infos) {
      const problem = metadataProblem(r);
      if (problem) throw new CertifierError('INTEGRITY', `the key database holds a damaged record: ${shown(r.name, 256)} version ${r.version} (${problem})`);
    }
    return infos;
  }

  /**
   * Forgets the storage key; the backend is closed by its owner. Whatever is still running after
   * this fails (a store whose backend call outlived the server's grace period must not be sealed
   * under a zeroed key).
   */
  wipe(): void {
    this.wiped = true;
    this.key.fill(0);
  }

  private usableKey(): Uint8Array {
    if (this.wiped) throw new CertifierError('UNREACHABLE', 'the key-server is stopping: its storage key is forgotten');
    return this.key;
  }
}
