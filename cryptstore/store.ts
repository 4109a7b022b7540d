// The cryptstore: an encrypted LevelDB store of versioned, tagged entries.
//
// One process at a time holds a store (LevelDB's lock); that exclusivity lets this class keep
// each tag's latest and next version in memory, so a put is a single synced LevelDB write and a
// read of the latest version is a single LevelDB get. Every value is sealed with AES-256-GCM
// under the store's data key, with AAD binding it to its store, tag and version (layout.ts).
// After a write LevelDB could not carry out (a full disk), the database is reopened before the
// next write (LevelReopener says why), so a store kept open (key-server) writes on safely.

import { CertifierError } from '../lib/errors/index.ts';
import { LevelReopener, levelWriteMayHaveLanded, unmakeDirs, unmakeHeld, type MadeDirs } from '../lib/files/index.ts';
import { isRfc3339 } from '../lib/policy/index.ts';
import { open as aeadOpen, bytesEqual, randomBytes, seal, toHex, wipe } from '../lib/crypto/index.ts';
import {
  CRYPTSTORE_FORMAT_VERSION, ENTRY_TYPES, MAX_VERSION, checkCryptstoreEntry, decode, encode, encodeSecret,
  parseCryptstoreMetadata, shown, tagProblem, type CryptstoreEntry, type CryptstoreMetadata, type EntryType, type ValidEntry,
  type ValidMetadata,
} from '../lib/wire/index.ts';
import { describeKind, type ProtectionParams, type Protector } from './protection.ts';
import * as L from './layout.ts';
import { compactRange, dirState, holdsOnlyLevelFiles, isUnfinished, levelFilesIn, makeStoreDir, notFound, openDb, tightenPermissions, unfinished, withDb, writeFailed, type Db } from './db.ts';

export const MAX_BLOB_BYTES = 16 * 1024 * 1024;

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
   * Wraps each write of a change (its one atomic batch), told in words what the write does
   * ("\"k\" version 3 was stored"): cert-utility holds SIGINT and SIGTERM around the write alone,
   * never around the key derivation before it, and says what was done if one came meanwhile.
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

interface TagState { latest: number; next: number }

export class Cryptstore {
  private readonly states = new Map<string, TagState>();
  private readonly entryAad: (tag: string, version: number) => Uint8Array;
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly reopener: LevelReopener;

  private constructor(
    readonly path: string,
    private readonly db: Db,
    private meta: ValidMetadata,
    private readonly dataKey: Uint8Array,
    private readonly sync: boolean,
    private readonly guard: StoreOptions['guardWrite'],
  ) {
    this.entryAad = L.entryAadFor(meta.storeId);
    // A write whose sync failed may be in the log, and is back: each tag's versions are read again.
    this.reopener = new LevelReopener(db, { dir: path, what: `the cryptstore at ${path}`, reopened: () => this.states.clear() });
  }

  /** True when `dir` looks like a cryptstore (without opening it). */
  static async exists(dir: string): Promise<boolean> {
    return (await dirState(dir)) === 'store';
  }

  /**
   * Creates a new, empty store protected by `protector`. STORE_EXISTS if `dir` is in use. Failing,
   * it leaves `dir` as it found it: another user's directory is refused before anything is
   * written, and what this call began (see onCreating) is removed.
   */
  static async create(dir: string, protector: Protector, options: StoreOptions = {}): Promise<Cryptstore> {
    const state = await dirState(dir);
    if (state === 'other') throw new CertifierError('STORE_EXISTS', `${dir} exists and is not an empty directory`);
    // LevelDB's files of a creation cut short before it was a database (power lost, SIGKILL)
    // are not cleared here: another process may be making the store right now. LevelDB takes the
    // lock first (STORE_LOCKED if that other process holds it) and writes its files afresh.
    const exists = () => new CertifierError('STORE_EXISTS', `a cryptstore already exists at ${dir}`, { details: { made: true } });
    // A database without its metadata record is a creation cut short: made again, not refused.
    // One gone since it was seen (its creator removed it) is none either.
    const gone = (e: unknown) => (e instanceof CertifierError && e.code === 'STORE_NOT_FOUND' ? true : Promise.reject(e));
    if (state === 'store' && !(await withDb(dir, isUnfinished).catch(gone))) throw exists();
    // Nor over one cut short with a file of anyone else's beside it (checked again under the lock).
    if (state === 'store' && !(await holdsOnlyLevelFiles(dir).catch(() => true))) throw notLevelOnly(dir);
    // The slow part (scrypt) before anything is on disk, so an interrupted create leaves little.
    const { params, kek } = await protector.create();
    let db: Db | undefined;
    let made: MadeDirs = { top: undefined, self: undefined, all: [] };
    for (let attempt = 1; !db; attempt++) {
      try {
        made = await makeStoreDir(dir);
        // Again once made: the directory a path lands in may be another than the one first seen
        // ("x/new/.." was missing until x/new was made, and is x), and what is there now may be
        // something else. A store is made only where nothing else is, so that a creation that
        // fails, removing the store's files, removes nothing that was there (unmakeHeld).
        if ((await dirState(dir)) === 'other') {
          unmakeDirs(made);
          throw new CertifierError('STORE_EXISTS', `${dir} exists and is not an empty directory`);
        }
        db = await openDb(dir, true);
      } catch (e) {
        // Gone as it was made or opened: another run that made it has given it up, removing it
        // under its lock (init-trust refused, say). Made again, as if that run had never been.
        if (attempt < 3 && (await dirState(dir).catch(() => undefined)) === 'missing') continue;
        wipe(kek);
        throw e;
      }
    }
    let making = false;
    try {
      if (!(await isUnfinished(db))) throw exists();
      // A creation cut short is made again only where nothing but LevelDB's files is: a file of
      // the user's beside them would go with the store if this run removed it (unmakeHeld).
      if (!(await holdsOnlyLevelFiles(dir))) throw notLevelOnly(dir);
      making = true;
      options.onCreating?.(made);
      const storeId = randomBytes(16);
      const dataKey = randomBytes(32);
      const meta: CryptstoreMetadata = {
        formatVersion: CRYPTSTORE_FORMAT_VERSION,
        storeId,
        created: new Date().toISOString(),
        protection: { ...params, wrappedDataKey: seal(kek, dataKey, L.dataKeyAad(storeId, params)) },
      };
      const bytes = encode('cryptstore_metadata', meta);
      await db.put(L.META_KEY, bytes, { sync: true }).catch(writeFailed(dir));
      await tightenPermissions(dir);
      return new Cryptstore(dir, db, parseCryptstoreMetadata(bytes), dataKey, options.durable ?? true, options.guardWrite);
    } catch (e) {
      // Removed while the lock is held (see unmakeHeld). Best effort: a file it cannot remove
      // stays, and a later create says what it finds.
      if (making) unmakeHeld(dir, made.self);
      await db.close();
      throw e;
    } finally {
      wipe(kek);
    }
  }

  /** Opens the store in `dir`, or creates it when there is none (or only an unfinished one). */
  static async openOrCreate(dir: string, protector: Protector, options: StoreOptions = {}): Promise<Cryptstore> {
    if (await Cryptstore.exists(dir)) {
      try {
        return await Cryptstore.open(dir, protector, options);
      } catch (e) {
        // Unfinished, or gone since it was seen (a run that made it removed it): made here.
        if (!(e instanceof CertifierError && e.code === 'STORE_NOT_FOUND')) throw e;
      }
    }
    try {
      return await Cryptstore.create(dir, protector, options);
    } catch (e) {
      // Another process made it meanwhile (while this one derived its key): open theirs.
      if (e instanceof CertifierError && e.code === 'STORE_EXISTS' && e.details?.made === true) return Cryptstore.open(dir, protector, options);
      throw e;
    }
  }

  /**
   * Removes the store at `dir`, keeping the directory, when it provably holds nothing: its
   * metadata record alone (no entry, no high-water mark), and nothing but LevelDB's files in the
   * directory (a file of the user's beside them keeps it whole; one put there while it removes
   * the store stays, as only the names it checked are removed). True if it did. Needs no key, so a
   * store that the protection at hand cannot unlock can make way for one it can, losing nothing.
   */
  static async removeIfEmpty(dir: string): Promise<boolean> {
    const db = await openDb(dir, false);
    try {
      for await (const key of db.keys({ limit: 2 })) if (key !== L.META_KEY) return false;
      // Only the names checked go: a file put there since stays (and keeps a store from being made there).
      const names = await levelFilesIn(dir);
      return names !== undefined && unmakeHeld(dir, undefined, names);
    } finally {
      await db.close();
    }
  }

  /** Opens an existing store. WRONG_KEY when the protector cannot unlock it. */
  static async open(dir: string, protector: Protector, options: StoreOptions = {}): Promise<Cryptstore> {
    const state = await dirState(dir);
    if (state === 'missing') throw notFound(dir, 'no such directory');
    if (state === 'unmade') throw unfinished(dir);
    if (state !== 'store') throw notFound(dir, 'not a LevelDB directory');
    const db = await openDb(dir, false);
    try {
      const raw = await db.get(L.META_KEY);
      if (raw === undefined) {
        if (await isUnfinished(db)) throw unfinished(dir);
        throw notFound(dir, 'no metadata record');
      }
      let meta: ValidMetadata;
      try {
        meta = parseCryptstoreMetadata(raw);
      } catch (cause) {
        throw new CertifierError('INTEGRITY', `the metadata of the cryptstore at ${dir} is damaged`, { cause });
      }
      // Not bound into any seal, and written by print-store as it is: what create wrote, or damaged.
      if (!isRfc3339(meta.created)) throw new CertifierError('INTEGRITY', `the metadata of the cryptstore at ${dir} is damaged: its creation time ${shown(meta.created)} is not an RFC 3339 time`);
      if (meta.formatVersion !== CRYPTSTORE_FORMAT_VERSION) {
        throw new CertifierError('STORE_FORMAT', `the cryptstore at ${dir} has format ${meta.formatVersion}; this program reads format ${CRYPTSTORE_FORMAT_VERSION}`);
      }
      const p = meta.protection;
      if (p.kind !== protector.kind) {
        throw new CertifierError('WRONG_KEY', `the cryptstore at ${dir} is protected by ${describeKind(p.kind)}, not by ${protector.description}`, { details: { protection: p.kind } });
      }
      const kek = await protector.derive(p);
      const dataKey = aeadOpen(kek, p.wrappedDataKey, L.dataKeyAad(meta.storeId, p));
      wipe(kek);
      if (!dataKey || dataKey.length !== 32) {
        throw new CertifierError('WRONG_KEY', `cannot unlock the cryptstore at ${dir}: wrong ${p.kind === 'passphrase' ? 'passphrase' : p.kind === 'key-file' ? 'key file' : 'platform or measurement'}, or damaged metadata`);
      }
      await tightenPermissions(dir);
      return new Cryptstore(dir, db, meta, dataKey, options.durable ?? true, options.guardWrite);
    } catch (e) {
      await db.close();
      throw e;
    }
  }

  get info(): StoreInfo {
    const p = this.meta.protection;
    return {
      path: this.path,
      formatVersion: this.meta.formatVersion,
      storeId: toHex(this.meta.storeId),
      created: this.meta.created,
      protection: {
        kind: p.kind,
        ...(p.scrypt ? { scrypt: { logN: p.scrypt.logN, r: p.scrypt.r, p: p.scrypt.p } } : {}),
        ...(p.platform ? { platform: p.platform } : {}),
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail.catch(() => {});
    await this.reopener.settled();
    wipe(this.dataKey);
    await this.db.close();
  }

  // ---- reads ------------------------------------------------------------------------------

  /** The entry `tag` at `version`, or its latest version when `version` is 0. */
  async get(tag: string, version = 0): Promise<Entry> {
    checkTag(tag);
    checkVersion(version, true);
    return this.reopener.using(async () => {
      const v = version || (await this.state(tag)).latest;
      if (v === 0) throw new CertifierError('NOT_FOUND', `no item tagged ${shown(tag, 256)}`);
      // A synchronous read: a cached LevelDB block is microseconds, and the asynchronous path
      // costs more than that in thread hand-offs and garbage (see the benchmark notes in the README).
      const raw = this.db.getSync(L.entryKey(tag, v));
      if (raw === undefined) throw new CertifierError('NOT_FOUND', `no version ${v} of ${shown(tag, 256)}`);
      return this.openEntry(tag, v, raw);
    });
  }

  /** Whether `tag` has any version now. */
  async has(tag: string): Promise<boolean> {
    checkTag(tag);
    return this.reopener.using(async () => (await this.state(tag)).latest > 0);
  }

  /**
   * The latest version of `tag` when it holds `blob`, else undefined, as the store on disk has it:
   * asked after a put that failed with FILE_ERROR, which may have been made all the same. The
   * database is reopened first (as before any change after a failed write), and LevelDB keeps
   * then what its log holds, a write whose sync failed included. FILE_ERROR when it cannot be
   * reopened, INTEGRITY when that latest record does not open.
   */
  async latestIf(tag: string, blob: Uint8Array): Promise<EntryInfo | undefined> {
    checkTag(tag);
    return this.exclusive(async () => {
      const { latest } = await this.state(tag);
      const raw = latest ? await this.db.get(L.entryKey(tag, latest)) : undefined;
      if (raw === undefined) return undefined;
      const { blob: held, ...info } = this.openEntry(tag, latest, raw);
      try {
        return bytesEqual(held, blob) ? info : undefined;
      } finally {
        wipe(held);
      }
    });
  }

  /** Metadata of every entry (every version of every tag), sorted by tag then version. */
  list(): Promise<EntryInfo[]> {
    return this.reopener.using(() => this.listAll());
  }

  private async listAll(): Promise<EntryInfo[]> {
    const out: EntryInfo[] = [];
    await this.eachEntry(({ blob, ...info }) => {
      wipe(blob);
      out.push(info);
    });
    return out;
  }

  /**
   * The entries `keep` takes (told of each in key order, by what its record says), each record
   * decrypted once: export reads its values in the same pass as it learns which are exportable
   * (that flag is sealed with the value). The value of an entry not taken is wiped at once; if
   * `keep` throws, so are those taken. The caller wipes the values it gets.
   */
  entriesWhere(keep: (info: EntryInfo) => boolean): Promise<Entry[]> {
    return this.reopener.using(async () => {
      const out: Entry[] = [];
      try {
        await this.eachEntry((e) => {
          let taken = false;
          try {
            taken = keep(infoOf(e));
          } finally {
            if (taken) out.push(e);
            else wipe(e.blob);
          }
        });
        return out;
      } catch (err) {
        wipe(...out.map((e) => e.blob));
        throw err;
      }
    });
  }

  /** Opens every entry in key order; INTEGRITY for one that does not open or a key that names no version. */
  private async eachEntry(fn: (e: Entry) => void): Promise<void> {
    for await (const [key, raw] of this.db.iterator(L.ALL_ENTRIES)) {
      const k = L.parseEntryKey(key);
      if (!k) throw new CertifierError('INTEGRITY', `the cryptstore holds a record with a damaged key (${shown(key, 256)}): verify-store names every such record, and verify-store --repair --yes removes them`);
      fn(this.openEntry(k.tag, k.version, raw));
    }
  }

  /** Decrypts and checks every record; never throws for a damaged record, reports it. */
  verify(): Promise<VerifyReport> {
    return this.reopener.using(() => this.verifyAll());
  }

  private async verifyAll(): Promise<VerifyReport> {
    const problems: VerifyReport['problems'] = [];
    const tags = new Set<string>();
    let entries = 0;
    for await (const [key, raw] of this.db.iterator()) {
      if (key === L.META_KEY) continue;
      // A record not written here may have a key of any length: named cut short, escaped.
      const named = shown(key, 256);
      try {
        const e = L.parseEntryKey(key);
        if (e) {
          this.checkEntry(e.tag, e.version, raw);
          entries++;
          tags.add(e.tag);
        } else if (key.startsWith(L.MARK_PREFIX) && !tagProblem(key.slice(L.MARK_PREFIX.length))) {
          this.openMark(key.slice(L.MARK_PREFIX.length), raw);
        } else {
          problems.push({ key: named, problem: unknownRecord(key) });
        }
      } catch (err) {
        problems.push({ key: named, problem: (err as Error).message });
      }
    }
    return { entries, tags: tags.size, problems };
  }

  // ---- writes -----------------------------------------------------------------------------

  /** Stores `blob` as the next version of `tag`. */
  async put(tag: string, blob: Uint8Array, options: PutOptions = {}): Promise<EntryInfo> {
    checkTag(tag);
    checkBlob(blob);
    return this.exclusive(async () => {
      const st = await this.state(tag);
      const version = st.next + 1;
      if (version > MAX_VERSION) throw usedUp(tag);
      const entry = this.entryOf(tag, blob, version, options);
      const sealed = this.sealEntry(entry);
      await this.write(`${shown(tag, 256)} version ${version} was stored`, () => this.db.put(L.entryKey(tag, version), sealed, { sync: this.sync }));
      st.latest = st.next = version;
      return infoOf(entry);
    });
  }

  /** Stores several items as one atomic batch: all of them or none. */
  async putAll(items: { tag: string; blob: Uint8Array; options?: PutOptions }[]): Promise<EntryInfo[]> {
    for (const i of items) {
      checkTag(i.tag);
      checkBlob(i.blob);
    }
    return this.exclusive(async () => {
      const next = new Map<string, number>();
      const entries: ValidEntry[] = [];
      for (const i of items) {
        const version = (next.get(i.tag) ?? (await this.state(i.tag)).next) + 1;
        if (version > MAX_VERSION) throw usedUp(i.tag);
        next.set(i.tag, version);
        entries.push(this.entryOf(i.tag, i.blob, version, i.options ?? {}));
      }
      const ops = entries.map((e) => ({ type: 'put' as const, key: L.entryKey(e.tag, e.version), value: this.sealEntry(e) }));
      await this.write(`${entries.length} item version(s) were stored`, () => this.db.batch(ops, { sync: this.sync }));
      for (const [tag, v] of next) {
        const st = await this.state(tag);
        st.latest = st.next = v;
      }
      return entries.map(infoOf);
    });
  }

  /**
   * Deletes one version, or every record of the tag when `version` is 0: its versions, and any
   * record under it whose key names no version (written by something else: version 0, past
   * MAX_VERSION, not a number), which no version number could reach. Every version deleted while
   * the tag's high-water mark does not open (its versions all gone, or none left but that mark)
   * retires the tag: any number up to MAX_VERSION may have been given out, so the mark is replaced
   * with one there, and a later put is refused (see Deleted). One version is refused (INTEGRITY).
   */
  async delete(tag: string, version = 0): Promise<Deleted> {
    checkTag(tag);
    checkVersion(version, true);
    return this.exclusive(async () => {
      // Loaded first, as a read meanwhile finds it and sees it change; none for a tag whose latest
      // record does not open (a damaged one may be deleted, which get and put refuse).
      const st = await unlessDamaged(this.state(tag));
      const versions: number[] = [];
      const keys: string[] = [];
      if (version) {
        if ((await this.db.get(L.entryKey(tag, version))) === undefined) {
          throw new CertifierError('NOT_FOUND', `no version ${version} of ${shown(tag, 256)}`);
        }
        versions.push(version);
        keys.push(L.entryKey(tag, version));
      } else {
        for await (const key of this.db.keys(L.entryRange(tag))) {
          keys.push(key);
          const v = this.versionIn(tag, key);
          if (v !== undefined) versions.push(v);
        }
      }
      // The whole tag going with a mark that does not open retires it (below); read once.
      const retired = !version && (await this.markDamaged(tag));
      if (!version && keys.length === 0 && !retired) throw new CertifierError('NOT_FOUND', `no item tagged ${shown(tag, 256)}`);
      const damaged = keys.length - versions.length;
      // The high-water mark goes in the same atomic batch, so a deleted version is never reused:
      // the highest version used by what opens (a damaged record's number does not count). A mark
      // that does not open could have said any number: the whole tag going, none is given again;
      // one version going, usedOnDisk refuses it (INTEGRITY), as put does.
      const used = retired ? MAX_VERSION : await this.usedOnDisk(tag);
      const ops = [
        ...keys.map((key) => ({ type: 'del' as const, key })),
        { type: 'put' as const, key: L.markKey(tag), value: this.sealMark(tag, used) },
      ];
      const what = `${shown(tag, 256)} ${describeDeleted({ versions, damaged, ...(retired ? { retired } : {}) })} ${keys.length + (retired ? 1 : 0) > 1 ? 'were' : 'was'} deleted`;
      await this.write(retired ? `${what} (the tag retired)` : what, () => this.db.batch(ops, { sync: this.sync }));
      // A version deleted stays whole in LevelDB's files, sealed under the data key, until a
      // compaction reaches it: the store's key would still open it from them. Dropped now.
      const range = L.entryRange(tag);
      await this.compactAway(range.gt, range.lt, what, 'what was deleted, sealed as it was', 'a later compaction drops it');
      if (st && versions.includes(st.latest)) {
        // A new latest that does not open: get and put find it again, and refuse it.
        const latest = await unlessDamaged(this.latestOnDisk(tag));
        if (latest === undefined) this.states.delete(tag);
        else Object.assign(st, { latest, next: Math.max(latest, used) });
      } else if (st) st.next = Math.max(st.latest, used);
      return { versions, damaged, ...(retired ? { retired: true as const } : {}) };
    });
  }

  /**
   * Adds entries with their own versions (import). Refuses, writing nothing, when any
   * tag+version already exists, or is a version number this store used for the tag before (a
   * deleted one: version numbers are never reused), unless `force`, which replaces and restores
   * them. The tag's high-water mark rises to the highest version imported. The last version
   * number (MAX_VERSION) is refused too unless `force`: the tag could then take no later version.
   */
  async importEntries(entries: ValidEntry[], force = false): Promise<EntryInfo[]> {
    const seen = new Set<string>();
    for (const e of entries) {
      checkTag(e.tag);
      checkBlob(e.blob);
      const k = L.entryKey(e.tag, e.version);
      if (seen.has(k)) throw new CertifierError('INVALID_INPUT', `the bundle holds version ${e.version} of ${shown(e.tag, 256)} twice`);
      seen.add(k);
    }
    const last = entries.filter((e) => e.version === MAX_VERSION).map((e) => `${shown(e.tag, 256)} v${e.version}`);
    if (!force && last.length) {
      const one = last.length === 1;
      throw new CertifierError('INVALID_INPUT', `${last.join(', ')} ${one ? 'is' : 'are'} the highest version number: imported, it would leave the tag${one ? '' : 's'} no version for a later put-item or key-client to store; nothing was imported (--force imports ${one ? 'it' : 'them'})`);
    }
    return this.exclusive(async () => {
      const marks = new Map<string, number>(); // tag -> the highest version number used, after the import
      const clashes: string[] = [];
      const replaced = new Set<string>(); // the tags of the clashes
      const reused: string[] = [];
      for (const e of entries) {
        const st = await this.state(e.tag);
        if ((await this.db.get(L.entryKey(e.tag, e.version))) !== undefined) {
          clashes.push(`${shown(e.tag, 256)} v${e.version}`);
          replaced.add(e.tag);
        } else if (e.version <= st.next) reused.push(`${shown(e.tag, 256)} v${e.version}`);
        marks.set(e.tag, Math.max(marks.get(e.tag) ?? st.next, e.version));
      }
      if (!force && clashes.length) {
        throw new CertifierError('ALREADY_EXISTS', `the store already holds ${clashes.join(', ')}; nothing was imported (--force replaces them)`);
      }
      if (!force && reused.length) {
        throw new CertifierError('ALREADY_EXISTS', `${reused.join(', ')} ${reused.length === 1 ? 'is' : 'are'} not in this store but at or below the highest version it has used for the tag: such a version may have been deleted, and a version number is never given to other bytes; nothing was imported (--force imports them)`);
      }
      const ops = entries.map((e) => ({ type: 'put' as const, key: L.entryKey(e.tag, e.version), value: this.sealEntry(e) }));
      for (const [tag, mark] of marks) ops.push({ type: 'put' as const, key: L.markKey(tag), value: this.sealMark(tag, mark) });
      const imported = `${entries.length} item version(s) were imported`;
      await this.write(imported, () => this.db.batch(ops, { sync: this.sync }));
      for (const tag of marks.keys()) this.states.delete(tag);
      // What a forced import replaced stays whole in LevelDB's files, as a version deleted does.
      for (const tag of replaced) {
        const range = L.entryRange(tag);
        await this.compactAway(range.gt, range.lt, imported, `the versions of ${shown(tag, 256)} it replaced, sealed as they were`, 'a later compaction drops them');
      }
      return entries.map(infoOf);
    });
  }

  /** Re-wraps the data key for a new protector; entries are not re-encrypted. */
  async rekey(protector: Protector): Promise<void> {
    return this.exclusive(async () => {
      const { params, kek } = await protector.create();
      const meta: CryptstoreMetadata = {
        ...this.meta,
        protection: { ...params, wrappedDataKey: seal(kek, this.dataKey, L.dataKeyAad(this.meta.storeId, params)) },
      };
      wipe(kek);
      const bytes = encode('cryptstore_metadata', meta);
      const rekeyed = `the store was rekeyed: it now opens with ${protector.description} only`;
      await this.write(rekeyed, () => this.db.put(L.META_KEY, bytes, { sync: true }));
      this.meta = parseCryptstoreMetadata(bytes);
      // The metadata replaced, the data key wrapped for the old passphrase or key file, would stay
      // whole in LevelDB's files until a compaction reached it: the old one would open every item,
      // later ones too, from a copy of the files. Dropped now.
      await this.compactAway(L.META_KEY, L.META_KEY, rekeyed, 'the data key wrapped for the old one', 'rekey the store again once that is fixed');
    });
  }

  /**
   * Clears what verify finds that no delete-item can: removes every record under a key this store
   * never writes (no tag: `e!` without a NUL, a prefix it does not use, a tag no name may be; or a
   * tag's key naming no version), and replaces each high-water mark that does not open with one at
   * the highest version its tag's keys name, so the next put goes above every version present (the
   * numbers deleted above those are forgotten with the mark: it cannot be read). One atomic batch.
   * Never removes a record that opens under this store's key (an entry whose tag no name may be is
   * removed only if it does not open), nor a damaged entry under a key it writes: that is
   * delete-item's, by version. What it did, in key order; nothing is written if nothing is to do.
   */
  async repair(): Promise<Repaired[]> {
    return this.exclusive(async () => {
      const done: Repaired[] = [];
      const ops: ({ type: 'del'; key: string } | { type: 'put'; key: string; value: Uint8Array })[] = [];
      for await (const [key, raw] of this.db.iterator()) {
        if (key === L.META_KEY) continue;
        const entry = L.parseEntryKey(key);
        const markTag = key.startsWith(L.MARK_PREFIX) ? key.slice(L.MARK_PREFIX.length) : undefined;
        if (entry && !tagProblem(entry.tag)) continue; // ours, opening or not
        if (markTag !== undefined && !tagProblem(markTag)) {
          if (this.opens(() => this.openMark(markTag, raw))) continue;
          const used = await this.highestNamed(markTag);
          ops.push(used ? { type: 'put', key, value: this.sealMark(markTag, used) } : { type: 'del', key });
          done.push({ key: shown(key, 256), done: `replaced (versions from ${used + 1} on)` });
          continue;
        }
        if (entry && this.opens(() => this.checkEntry(entry.tag, entry.version, raw))) continue;
        if (markTag !== undefined && this.opens(() => this.openMark(markTag, raw))) continue;
        ops.push({ type: 'del', key });
        done.push({ key: shown(key, 256), done: 'removed' });
      }
      if (ops.length === 0) return done;
      await this.write(`${done.length} record(s) verify-store named were repaired (removed, or a damaged version record replaced)`, () => this.db.batch(ops, { sync: this.sync }));
      this.states.clear();
      return done;
    });
  }

  // ---- internals --------------------------------------------------------------------------

  /**
   * One write of a change (its atomic batch), through the guard when one was given; FILE_ERROR
   * when it fails, and then the database is reopened before the next change. A failed write may
   * have reached the disk all the same (LevelDB appends the batch to its log, then syncs it, and
   * the sync may be what failed; the next open keeps whatever is in the log): the error says so
   * when LevelDB's log is what failed (levelWriteMayHaveLanded, as key-server's OUTCOME_UNKNOWN).
   */
  private write(what: string, w: () => Promise<void>): Promise<void> {
    const guarded = this.guard ? this.guard(what, w) : w();
    return guarded.catch((e: unknown) => {
      this.reopener.failed();
      return writeFailed(this.path)(e).catch((failed: unknown) => {
        // Only a failure of LevelDB's log once the record may be whole in it (its sync): one before
        // (a file-size limit, no descriptor, a failed flush refusing every write) changed nothing.
        if (!(failed instanceof CertifierError && failed.code === 'FILE_ERROR') || !levelWriteMayHaveLanded(e)) throw failed;
        throw new CertifierError('FILE_ERROR', `${failed.message}; the change may or may not have been made (${what}, or nothing was: LevelDB may have written it before it failed, and what reached the disk is kept): the store, opened again, shows which (list-items)`, { cause: e });
      });
    });
  }

  /**
   * After the change `done` was written: has LevelDB drop from its files what it replaced or
   * deleted between `start` and `end` (compactRange). FILE_ERROR when it cannot, saying the change
   * stands but its files may still hold `left`, and what to do (`then`).
   */
  private compactAway(start: string, end: string, done: string, left: string, then: string): Promise<void> {
    return compactRange(this.db, start, end).catch((e: unknown) => {
      this.reopener.failed();
      return writeFailed(this.path)(e).catch((failed: unknown) => {
        throw new CertifierError('FILE_ERROR', `${done}, but LevelDB's files may still hold ${left}, which could not be compacted away (${(failed as Error).message}): ${then}`, { cause: e });
      });
    });
  }

  /** Runs a change after the ones before it, on the database reopened first if a write failed. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new CertifierError('INTERNAL', 'the cryptstore is closed'));
    const change = () => this.reopener.using(fn, 'write');
    const run = this.tail.then(change, change);
    this.tail = run.catch(() => {});
    return run;
  }

  private async state(tag: string): Promise<TagState> {
    let st = this.states.get(tag);
    if (!st) {
      const latest = await this.latestOnDisk(tag);
      const rawMark = await this.db.get(L.markKey(tag));
      const mark = rawMark === undefined ? 0 : this.openMark(tag, rawMark);
      // Another caller may have loaded it while we awaited; keep the first.
      st = this.states.get(tag) ?? { latest, next: Math.max(latest, mark) };
      this.states.set(tag, st);
    }
    return st;
  }

  /**
   * The latest version of `tag`, 0 for none. Its record must open (INTEGRITY otherwise): a record
   * not written here could number any version, up to the last, and every version below it would
   * then seem used, and be marked used for good by the next delete.
   */
  private async latestOnDisk(tag: string): Promise<number> {
    for await (const [key, raw] of this.db.iterator({ ...L.entryRange(tag), reverse: true, limit: 1 })) {
      const version = this.versionOf(tag, key);
      this.checkEntry(tag, version, raw);
      return version;
    }
    return 0;
  }

  /**
   * The highest version number `tag` has used, by what can be read: its high-water mark, and its
   * highest version whose record opens (a damaged or foreign one above it does not count).
   */
  private async usedOnDisk(tag: string): Promise<number> {
    const rawMark = await this.db.get(L.markKey(tag));
    let used = rawMark === undefined ? 0 : this.openMark(tag, rawMark);
    for await (const [key, raw] of this.db.iterator({ ...L.entryRange(tag), reverse: true })) {
      const version = this.versionIn(tag, key);
      if (version === undefined) continue; // a key naming no version: no number it could use
      if (version <= used) break;
      try {
        this.checkEntry(tag, version, raw);
        used = version;
        break;
      } catch (e) {
        if (!isIntegrity(e)) throw e;
      }
    }
    return used;
  }

  /** Whether `tag` has a high-water mark that does not open. */
  private async markDamaged(tag: string): Promise<boolean> {
    const raw = await this.db.get(L.markKey(tag));
    return raw !== undefined && !this.opens(() => this.openMark(tag, raw));
  }

  /** Whether `open` succeeds: false for INTEGRITY, any other failure thrown. */
  private opens(open: () => unknown): boolean {
    try {
      open();
      return true;
    } catch (e) {
      if (isIntegrity(e)) return false;
      throw e;
    }
  }

  /** The highest version any key of `tag`'s entries names, its record opening or not (0 for none). */
  private async highestNamed(tag: string): Promise<number> {
    for await (const key of this.db.keys({ ...L.entryRange(tag), reverse: true })) {
      const v = this.versionIn(tag, key);
      if (v !== undefined) return v;
    }
    return 0;
  }

  /** The version a key of `tag`'s entries names; INTEGRITY for a damaged key (version 0, or past MAX_VERSION). */
  private versionOf(tag: string, key: string): number {
    const v = this.versionIn(tag, key);
    if (v === undefined) throw new CertifierError('INTEGRITY', `the cryptstore holds a record of ${shown(tag, 256)} with a damaged key (${shown(key, 256)}): verify-store --repair --yes removes it (as delete-item of every version of the tag does, with them)`);
    return v;
  }

  /** The version a key in `tag`'s range names, or undefined for one that names none of `tag`'s. */
  private versionIn(tag: string, key: string): number | undefined {
    const k = L.parseEntryKey(key);
    return k && k.tag === tag ? k.version : undefined;
  }

  private entryOf(tag: string, blob: Uint8Array, version: number, options: PutOptions): ValidEntry {
    const type = options.type ?? 'binary-blob';
    if (!(ENTRY_TYPES as readonly string[]).includes(type)) throw new CertifierError('INVALID_INPUT', `unknown entry type "${type}"`);
    return { tag, type, version, blob, timeEntered: (options.time ?? new Date()).toISOString(), exportable: options.exportable ?? false };
  }

  private sealEntry(e: ValidEntry): Uint8Array {
    const body: CryptstoreEntry = {
      tag: e.tag, type: e.type, version: e.version,
      timeEntered: Buffer.from(e.timeEntered, 'utf8'), blob: e.blob, exportable: e.exportable,
    };
    const plain = encodeSecret('cryptstore_entry', body);
    const sealed = seal(this.dataKey, plain, this.entryAad(e.tag, e.version));
    wipe(plain); // a copy of the value: the caller's own is the caller's to wipe
    return sealed;
  }

  /** What an entry's record says of it, checked as openEntry checks it; its value, decrypted for that alone, wiped. */
  private checkEntry(tag: string, version: number, raw: Uint8Array): EntryInfo {
    const { blob, ...info } = this.openEntry(tag, version, raw);
    wipe(blob);
    return info;
  }

  private openEntry(tag: string, version: number, raw: Uint8Array): Entry {
    const damaged = (why: string, cause?: unknown) =>
      new CertifierError('INTEGRITY', `item ${shown(tag, 256)} version ${version} failed its integrity check (${why})`, cause ? { cause } : undefined);
    const plain = aeadOpen(this.dataKey, raw, this.entryAad(tag, version));
    if (!plain) throw damaged('authentication failed');
    let e: ValidEntry;
    try {
      e = checkCryptstoreEntry(decode<CryptstoreEntry>('cryptstore_entry', plain));
    } catch (cause) {
      throw damaged('malformed entry', cause);
    }
    if (e.tag !== tag || e.version !== version) throw damaged('entry does not match its key');
    return { ...infoOf(e), blob: e.blob };
  }

  private sealMark(tag: string, next: number): Uint8Array {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, next, false);
    return seal(this.dataKey, b, L.markAad(this.meta.storeId, tag));
  }

  private openMark(tag: string, raw: Uint8Array): number {
    const plain = aeadOpen(this.dataKey, raw, L.markAad(this.meta.storeId, tag));
    if (!plain || plain.length !== 4) throw new CertifierError('INTEGRITY', `the version record of ${shown(tag, 256)} (its high-water mark) failed its integrity check: verify-store --repair --yes replaces it with one above every version of the tag present (delete-item --tag ${shown(tag, 256)} of every version instead retires the tag, giving no number again)`);
    return new DataView(plain.buffer, plain.byteOffset, 4).getUint32(0, false);
  }
}

/**
 * What verify says of a record it cannot place: under a tag's entries (as `e!` tag NUL names
 * them; a tag holds no NUL), a key naming no version, which delete-item of the whole tag removes.
 */
function unknownRecord(key: string): string {
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
function usedUp(tag: string): CertifierError {
  return new CertifierError('INVALID_INPUT', `${shown(tag, 256)} has used every version number, up to ${MAX_VERSION}, the highest (or was retired: deleted while its record of the numbers used was damaged): no later version can be stored under this tag (a deleted number is never given again); store the value under another tag`);
}

function isIntegrity(e: unknown): boolean {
  return e instanceof CertifierError && e.code === 'INTEGRITY';
}

/** What `p` gives, or undefined where it fails INTEGRITY (a record that does not open); any other failure stays. */
function unlessDamaged<T>(p: Promise<T>): Promise<T | undefined> {
  return p.catch((e: unknown) => (isIntegrity(e) ? undefined : Promise.reject(e)));
}

function infoOf(e: ValidEntry | Entry): EntryInfo {
  return { tag: e.tag, version: e.version, type: e.type, timeEntered: e.timeEntered, exportable: e.exportable, size: e.blob.length };
}

function checkTag(tag: string): void {
  const p = tagProblem(tag);
  if (p) throw new CertifierError('INVALID_INPUT', `the tag ${p}`);
}

function checkVersion(v: number, zeroOk: boolean): void {
  if (!Number.isInteger(v) || v < (zeroOk ? 0 : 1) || v > MAX_VERSION) {
    throw new CertifierError('INVALID_INPUT', `version must be an integer from ${zeroOk ? 0 : 1} to ${MAX_VERSION}`);
  }
}

function checkBlob(blob: Uint8Array): void {
  if (blob.length > MAX_BLOB_BYTES) throw new CertifierError('INVALID_INPUT', `an item may hold at most ${MAX_BLOB_BYTES} bytes`);
}

export type { ProtectionParams };

/** STORE_EXISTS: an unfinished store at `dir` has something beside LevelDB's files, which making it again (and removing it) would take. */
function notLevelOnly(dir: string): CertifierError {
  return new CertifierError('STORE_EXISTS', `${dir} holds files that are not LevelDB's beside an unfinished cryptstore`);
}
