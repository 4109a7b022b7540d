// The cryptstore's base layer: its open database and data key, sealing and opening records, each tag's versions, and the write path.

import { CertifierError } from '../lib/errors/index.ts';
import { LevelReopener, levelWriteMayHaveLanded } from '../lib/files/index.ts';
import { open as aeadOpen, seal, wipe } from '../lib/crypto/index.ts';
import { ENTRY_TYPES, checkCryptstoreEntry, decode, encodeSecret, shown, type CryptstoreEntry, type ValidEntry, type ValidMetadata } from '../lib/wire/index.ts';
import * as L from './layout.ts';
import { writeFailed, type Db } from './db.ts';
import { infoOf, isIntegrity } from './checks.ts';
import type { Entry, EntryInfo, PutOptions, StoreOptions } from './types.ts';

interface TagState { latest: number; next: number }

export abstract class StoreRecords {
  protected readonly states = new Map<string, TagState>();
  private readonly entryAad: (tag: string, version: number) => Uint8Array;
  protected tail: Promise<unknown> = Promise.resolve();
  protected closed = false;
  protected readonly reopener: LevelReopener;

  protected constructor(
    readonly path: string,
    protected readonly db: Db,
    protected meta: ValidMetadata,
    protected readonly dataKey: Uint8Array,
    protected readonly sync: boolean,
    private readonly guard: StoreOptions['guardWrite'],
  ) {
    this.entryAad = L.entryAadFor(meta.storeId);
    // A write whose sync failed may be in the log, and is back: each tag's versions are read again.
    this.reopener = new LevelReopener(db, { dir: path, what: `the cryptstore at ${path}`, reopened: () => this.states.clear() });
  }

  /**
   * One write of a change (its atomic batch), through the guard when one was given; FILE_ERROR
   * when it fails, and then the database is reopened before the next change. A failed write may
   * have reached the disk all the same (LevelDB appends the batch to its log, then syncs it, and
   * the sync may be what failed; the next open keeps whatever is in the log): the error says so
   * when LevelDB's log is what failed (levelWriteMayHaveLanded, as key-server's OUTCOME_UNKNOWN).
   * `then`, once the write is made, inside the guard too: the compaction that drops from LevelDB's
   * files what the change deleted or replaced, which a signal ending the program between the two
   * would leave there, the store's key (or the old one, after a rekey) still opening it.
   */
  protected async write(what: string, w: () => Promise<void>, then?: () => Promise<void>): Promise<void> {
    // A failure of `then` leaves the guard as its result, not as a failure of the change, which
    // stands: a signal held meanwhile is then told that error (what was done, and what was not)
    // before it ends the program, rather than end it with nothing said (see StoreOptions.guardWrite).
    const change = async (): Promise<unknown> => {
      await w().catch((e: unknown) => this.writeFailure(what, e));
      return then?.().then(() => undefined, (e: unknown) => e);
    };
    const after = await (this.guard ? this.guard(what, change) : change());
    if (after !== undefined) throw after;
  }

  /** The error a write of the change `what` that failed with `e` is told with (see write). */
  private writeFailure(what: string, e: unknown): Promise<never> {
    this.reopener.failed();
    return writeFailed(this.path)(e).catch((failed: unknown) => {
      // Only a failure of LevelDB's log once the record may be whole in it (its sync): one before
      // (a file-size limit, no descriptor, a failed flush refusing every write) changed nothing.
      if (!(failed instanceof CertifierError && failed.code === 'FILE_ERROR') || !levelWriteMayHaveLanded(e)) throw failed;
      throw new CertifierError('FILE_ERROR', `${failed.message}; the change may or may not have been made (${what}, or nothing was: LevelDB may have written it before it failed, and what reached the disk is kept): the store, opened again, shows which (list-items)`, { cause: e, details: { mayHaveBeenMade: true } });
    });
  }

  /** Runs a change after the ones before it, on the database reopened first if a write failed. */
  protected exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new CertifierError('INTERNAL', 'the cryptstore is closed'));
    const change = () => this.reopener.using(fn, 'write');
    const run = this.tail.then(change, change);
    this.tail = run.catch(() => {});
    return run;
  }

  protected async state(tag: string): Promise<TagState> {
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
  protected async latestOnDisk(tag: string): Promise<number> {
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
  protected async usedOnDisk(tag: string): Promise<number> {
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
  protected async markDamaged(tag: string): Promise<boolean> {
    const raw = await this.db.get(L.markKey(tag));
    return raw !== undefined && !this.opens(() => this.openMark(tag, raw));
  }

  /** Whether `open` succeeds: false for INTEGRITY, any other failure thrown. */
  protected opens(open: () => unknown): boolean {
    try {
      open();
      return true;
    } catch (e) {
      if (isIntegrity(e)) return false;
      throw e;
    }
  }

  /** The highest version any key of `tag`'s entries names, its record opening or not (0 for none). */
  protected async highestNamed(tag: string): Promise<number> {
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
  protected versionIn(tag: string, key: string): number | undefined {
    const k = L.parseEntryKey(key);
    return k && k.tag === tag ? k.version : undefined;
  }

  protected entryOf(tag: string, blob: Uint8Array, version: number, options: PutOptions): ValidEntry {
    const type = options.type ?? 'binary-blob';
    if (!(ENTRY_TYPES as readonly string[]).includes(type)) throw new CertifierError('INVALID_INPUT', `unknown entry type "${type}"`);
    return { tag, type, version, blob, timeEntered: (options.time ?? new Date()).toISOString(), exportable: options.exportable ?? false };
  }

  protected sealEntry(e: ValidEntry): Uint8Array {
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
  protected checkEntry(tag: string, version: number, raw: Uint8Array): EntryInfo {
    const { blob, ...info } = this.openEntry(tag, version, raw);
    wipe(blob);
    return info;
  }

  protected openEntry(tag: string, version: number, raw: Uint8Array): Entry {
    const damaged = (why: string, cause?: unknown) =>
      new CertifierError('INTEGRITY', `item ${shown(tag, 256)} version ${version} failed its integrity check (${why}): its value cannot be read back; delete-item --tag ${shown(tag, 256)} --version ${version} removes the record`, cause ? { cause } : undefined);
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

  protected sealMark(tag: string, next: number): Uint8Array {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, next, false);
    return seal(this.dataKey, b, L.markAad(this.meta.storeId, tag));
  }

  protected openMark(tag: string, raw: Uint8Array): number {
    const plain = aeadOpen(this.dataKey, raw, L.markAad(this.meta.storeId, tag));
    if (!plain || plain.length !== 4) throw new CertifierError('INTEGRITY', `the version record of ${shown(tag, 256)} (its high-water mark) failed its integrity check: verify-store --repair --yes replaces it with one above every version of the tag present (delete-item --tag ${shown(tag, 256)} of every version instead retires the tag, giving no number again)`);
    return new DataView(plain.buffer, plain.byteOffset, 4).getUint32(0, false);
  }
}
