// The cryptstore: an encrypted LevelDB store of versioned, tagged entries.
//
// One process at a time holds a store (LevelDB's lock); that exclusivity lets this class keep
// each tag's latest and next version in memory, so a put is a single synced LevelDB write and a
// read of the latest version is a single LevelDB get. Every value is sealed with AES-256-GCM
// under the store's data key, with AAD binding it to its store, tag and version (layout.ts).
// After a write LevelDB could not carry out (a full disk), the database is reopened before the
// next write (LevelReopener says why), so a store kept open (key-server) writes on safely.
// The class is built in layers, each in a file beside this one: records.ts (the database, sealing
// and opening records, each tag's versions, the write path), reads.ts, changes.ts; this file makes,
// opens and closes stores, and types.ts and checks.ts hold what the layers share.

import { promises as fs } from 'node:fs';
import { CertifierError } from '../lib/errors/index.ts';
import { unmakeDirs, unmakeHeld, type MadeDirs } from '../lib/files/index.ts';
import { isRfc3339 } from '../lib/policy/index.ts';
import { open as aeadOpen, randomBytes, seal, toHex, wipe } from '../lib/crypto/index.ts';
import { CRYPTSTORE_FORMAT_VERSION, encode, parseCryptstoreMetadata, shown, type CryptstoreMetadata, type ValidMetadata } from '../lib/wire/index.ts';
import { describeKind, type ProtectionParams, type Protector } from './protection.ts';
import * as L from './layout.ts';
import { dirState, FOREIGN_DB, holdsOnlyLevelFiles, isUnfinished, levelFilesIn, makeStoreDir, notFound, openDb, refuseNoWayTo, tightenPermissions, unfinished, withDb, writeFailed, type Db } from './db.ts';
import { StoreChanges } from './changes.ts';
import type { StoreInfo, StoreOptions } from './types.ts';

export { MAX_BLOB_BYTES, describeDeleted } from './checks.ts';
export type { Deleted, Entry, EntryInfo, PutOptions, Repaired, StoreInfo, StoreOptions, VerifyReport } from './types.ts';

/** STORE_EXISTS for a directory holding something else, naming what (the first five names, escaped). */
async function notEmpty(dir: string): Promise<CertifierError> {
  const names = (await fs.readdir(dir).catch(() => [] as string[])).sort();
  const some = names.slice(0, 5).map((n) => shown(n)).join(', ');
  const holds = names.length ? `: it holds ${some}${names.length > 5 ? ` and ${names.length - 5} more` : ''}` : '';
  return new CertifierError('STORE_EXISTS', `${dir} exists and is not an empty directory${holds}`);
}

export class Cryptstore extends StoreChanges {
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
    if (state === 'other') throw await notEmpty(dir);
    // Nothing there, and no room for it (a file where a directory on its way should be).
    if (state === 'missing') await refuseNoWayTo(dir);
    // LevelDB's files of a creation cut short before it was a database (power lost, SIGKILL)
    // are not cleared here: another process may be making the store right now. LevelDB takes the
    // lock first (STORE_LOCKED if that other process holds it) and writes its files afresh.
    const exists = async (db: Db) => new CertifierError('STORE_EXISTS', (await db.get(L.META_KEY)) === undefined ? `${dir} ${FOREIGN_DB}, or a new one` : `a cryptstore already exists at ${dir}`, { details: { made: true } });
    // A database without its metadata record is a creation cut short: made again, not refused.
    // One gone since it was seen (its creator removed it) is none either.
    const gone = (e: unknown) => (e instanceof CertifierError && e.code === 'STORE_NOT_FOUND' ? true : Promise.reject(e));
    const there = state === 'store' ? await withDb(dir, async (db) => ((await isUnfinished(db)) ? undefined : exists(db))).catch(gone) : undefined;
    if (there instanceof CertifierError) throw there;
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
          throw await notEmpty(dir);
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
      if (!(await isUnfinished(db))) throw await exists(db);
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
        throw new CertifierError('STORE_NOT_FOUND', `no cryptstore at ${dir}: it ${FOREIGN_DB}`);
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
        // A sealed one is most often opened with another measurement file, or by a new image.
        const sealed = ' (a sealed store opens only on the platform, and under the measurement, it was sealed to: check --platform-dir and --measurement-file; a new image or program cannot open it, README "Upgrading")';
        throw new CertifierError('WRONG_KEY', `cannot unlock the cryptstore at ${dir}: wrong ${p.kind === 'passphrase' ? 'passphrase' : p.kind === 'key-file' ? 'key file' : 'platform or measurement'}, or damaged metadata${p.kind === 'passphrase' || p.kind === 'key-file' ? '' : sealed}`, { details: { unlock: 'failed' } });
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
}

export type { ProtectionParams };

/** STORE_EXISTS: an unfinished store at `dir` has something beside LevelDB's files, which making it again (and removing it) would take. */
function notLevelOnly(dir: string): CertifierError {
  return new CertifierError('STORE_EXISTS', `${dir} holds files that are not LevelDB's beside an unfinished cryptstore`);
}
