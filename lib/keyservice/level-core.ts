// The key-server LevelDB backend's base layer: its open database, the names' versions and sealed records kept in memory, write queues, compaction, and failures in our terms.

import { Level } from 'level';
import { CertifierError } from '../errors/index.ts';
import { compactRange, LevelReopener, levelFileError, levelWriteMayHaveLanded, type MadeDirs, type OperationKind } from '../files/index.ts';
import { LruMap } from '../util/lru.ts';
import { outcomeUnknown, type StoredRecord, type UnknownChange } from './backend.ts';
import { MARK, laterKey, nameRange, parseRecordKey, recordKey } from './level-records.ts';

export type Db = Level<string, Uint8Array>;
/**
 * How much the backend keeps and when it compacts: the defaults, smaller in tests (the sealed-record
 * cache's names and bytes too, so that a test evicts and reads from disk again often).
 */
export interface LevelTuning { stateNames?: number; compactAfter?: number; cacheRecords?: number; cacheBytes?: number }
/** `highest` is read (from the mark) only when a write needs it: a read needs only `latest`. */
interface NameState { latest: number; highest?: number }
/** The sealed-record cache: at most this many names (a record each) and bytes (a record over the byte budget is never cached). */
const CACHE_RECORDS = 4096;
const CACHE_BYTES = 4 * 1024 * 1024;
const CACHE_ENTRY_OVERHEAD = 256; // the Map entry and the decoded record around the ciphertext, roughly
/** The names whose latest and highest version are kept in memory (the most recently used). */
export const STATE_NAMES = 20_000;
/** Deleted records whose markers start a compaction of the keys they span. */
export const COMPACT_AFTER = 1000;

/** How errors name the database in `dir`. */
export const keyDatabase = (dir: string) => `the key database in ${dir}`;

export abstract class LevelCore {
  protected readonly states: LruMap<string, NameState>;
  private readonly compactAfter: number;
  protected readonly queues = new Map<string, Promise<void>>();
  protected closed = false;
  protected backup: Promise<unknown> | undefined;
  protected readonly sealed: LruMap<string, StoredRecord>;
  /** Counts delete starts and ends: a read that saw it change may have read what is being deleted. */
  protected deletes = 0;
  /** Reads of names' latest versions from disk in progress, each marked once a write of its name starts. */
  private readonly reading = new Map<string, Set<{ written: boolean }>>();
  /** Deletion markers not yet compacted: how many, and the first and last of their keys. */
  private markers: { count: number; from: string; to: string } | undefined;
  protected compaction: Promise<void> | undefined;
  protected readonly reopener: LevelReopener;
  /** What this open made: `path` itself, if it was not there, and the first directory it made. */
  protected made: MadeDirs = { top: undefined, self: undefined, all: [] };

  protected constructor(readonly path: string, protected readonly db: Db, tuning: LevelTuning) {
    this.states = new LruMap(tuning.stateNames ?? STATE_NAMES);
    this.compactAfter = tuning.compactAfter ?? COMPACT_AFTER;
    this.sealed = new LruMap(tuning.cacheRecords ?? CACHE_RECORDS, {
      // The ciphertext is a view into the record's bytes as read, which it keeps alive whole.
      weigh: (r) => r.ciphertext.buffer.byteLength + r.name.length + CACHE_ENTRY_OVERHEAD, maxWeight: tuning.cacheBytes ?? CACHE_BYTES,
    });
    this.reopener = new LevelReopener(db, {
      dir: path,
      what: keyDatabase(path),
      // A write whose sync failed may be in the log, and is back: read every name from disk again.
      reopened: () => {
        this.states.clear();
        this.sealed.clear();
      },
    });
  }

  /** Runs fn after every earlier write of `name` has finished (one writer per name at a time). */
  protected exclusive<T>(name: string, fn: () => Promise<T>): Promise<T> {
    try {
      this.checkOpen();
    } catch (e) {
      return Promise.reject(e);
    }
    // What a read of this name finds from now on may be stale before the read ends.
    for (const read of this.reading.get(name) ?? []) read.written = true;
    const run = (this.queues.get(name) ?? Promise.resolve()).then(() => this.using(fn, 'write'));
    const tail = run.then(() => {}, () => {});
    this.queues.set(name, tail);
    // Forget idle queues, so the map holds only names with writes in flight.
    void tail.then(() => {
      if (this.queues.get(name) === tail) this.queues.delete(name);
    });
    return run;
  }

  /** Counts the deletion markers of `keys` (in key order), and compacts their span once there are enough. */
  protected noteMarkers(keys: string[]): void {
    const first = keys[0]!;
    const last = keys[keys.length - 1]!;
    const m = this.markers;
    this.markers = m
      ? { count: m.count + keys.length, from: laterKey(m.from, first) === first ? m.from : first, to: laterKey(m.to, last) }
      : { count: keys.length, from: first, to: last };
    this.compactMarkers();
  }

  private compactMarkers(): void {
    const m = this.markers;
    if (this.compaction || this.closed || !m || m.count < this.compactAfter) return;
    this.markers = undefined;
    // Its failure loses nothing (the markers stay, and the records stay deleted).
    this.compaction = this.using(() => compactRange(this.db, m.from, m.to), 'long').catch(() => {}).finally(() => {
      this.compaction = undefined;
      this.compactMarkers();
    });
  }

  /** The state of a name with its highest version, loading what is missing under the caller's queue slot. */
  protected async state(name: string): Promise<Required<NameState>> {
    const st = this.states.get(name);
    if (st?.highest !== undefined) return { latest: st.latest, highest: st.highest };
    const latest = st?.latest ?? (await this.latestBelow(name, 0));
    return { latest, highest: Math.max(latest, await this.highestMark(name)) };
  }

  /**
   * The latest version of a name not in memory, read from disk (its mark only matters to writes,
   * so a damaged one fails writes of the name, not reads). It is kept when no write of the name
   * was queued or started while it was read (one may have left it stale; writes of other names do
   * not matter) and the name exists (readers of names that do not exist evict no one).
   */
  protected async loadLatest(name: string): Promise<number> {
    const read = { written: this.queues.has(name) };
    const reads = this.reading.get(name) ?? new Set();
    this.reading.set(name, reads.add(read));
    let latest: number;
    try {
      latest = await this.latestBelow(name, 0);
    } finally {
      reads.delete(read);
      if (reads.size === 0) this.reading.delete(name);
    }
    if (latest !== 0 && !read.written && !this.closed && this.states.get(name) === undefined) this.states.set(name, { latest });
    return latest;
  }

  /** The highest version ever assigned to `name` as its mark records it (0 without one). */
  private async highestMark(name: string): Promise<number> {
    const raw = await this.db.get(MARK + name);
    if (raw !== undefined && raw.length !== 4) throw new CertifierError('INTEGRITY', `the version record of "${name}" is damaged`);
    return raw === undefined ? 0 : new DataView(raw.buffer, raw.byteOffset, 4).getUint32(0, false);
  }

  /** The key of `name`'s highest version in `snapshot`, or undefined when it has none. */
  protected async lastKeyOf(name: string, snapshot: ReturnType<Db['snapshot']>): Promise<string | undefined> {
    for await (const key of this.db.keys({ ...nameRange(name), reverse: true, limit: 1, snapshot })) return key;
    return undefined;
  }

  /** The highest stored version of `name` below `below` (0: any), or 0 when there is none. */
  protected async latestBelow(name: string, below: number): Promise<number> {
    const range = below === 0 ? nameRange(name) : { gt: nameRange(name).gt, lt: recordKey(name, below) };
    for await (const key of this.db.keys({ ...range, reverse: true, limit: 1 })) return parseRecordKey(key).version;
    return 0;
  }

  /** Runs fn on the open database (LevelReopener.using), its LevelDB failures in our terms. */
  protected using<T>(fn: () => Promise<T>, kind: OperationKind = 'read'): Promise<T> {
    return this.reopener.using(fn, kind).catch((e: unknown) => Promise.reject(this.fileError(e, kind === 'write' ? 'written' : 'read')));
  }

  /**
   * A failed write of a change: the database is reopened before the next write. A failure of its
   * log is OUTCOME_UNKNOWN, not FILE_ERROR, saying the change may or may not have been made:
   * LevelDB appends the batch to its log, then syncs it, and where the sync (EIO, ENOSPC) is what
   * failed, the change may be on disk all the same, and the next open keeps what the log holds.
   * Nothing in LevelDB's answer tells that from an append that failed. One refused before the
   * record was written (levelWriteMayHaveLanded) stays FILE_ERROR. The name's versions are
   * read from disk again, so a read of its latest finds the change if it was made, as a list does.
   */
  protected writeError(e: unknown, name: string, change: UnknownChange): unknown {
    this.reopener.failed();
    this.states.delete(name);
    const failed = this.fileError(e, 'written');
    if (!(failed instanceof CertifierError && failed.code === 'FILE_ERROR') || !levelWriteMayHaveLanded(e)) return failed;
    return outcomeUnknown(failed, change, 'LevelDB may have put it on disk before it failed, and the next open keeps what it put there', e);
  }

  /**
   * A LevelDB failure in our terms: a file operation's (the disk full, read-only or failing, out
   * of file descriptors) is FILE_ERROR (levelFileError), not a bug; any other passes as it is.
   */
  private fileError(e: unknown, action: 'read' | 'written'): unknown {
    return levelFileError(e, keyDatabase(this.path), action) ?? e;
  }

  protected checkOpen(): void {
    if (this.closed) throw new CertifierError('INTERNAL', 'the key-server backend is closed');
  }
}
