// The embedded key-server backend: one LevelDB directory, held by one process at a time.
//
// Layout (keys are UTF-8):
//   "!format"                     FORMAT_MARK, so another LevelDB (a cryptstore, say) is refused
//   "!created"                    when open made the database (ISO 8601), written with "!format";
//                                 absent from a database made before it was recorded
//   "r!" name "\0" 8 hex digits   one version: serialized key_service_stored_record
//   "h!" name                     highest version ever assigned (uint32 BE), written in the same
//                                 batch as every delete, so a deleted version is never reused
// Names never contain control characters (tagProblem), so "\0" ends a name unambiguously, names
// that are prefixes of each other stay apart, and the keys of one name sort by version.
//
// LevelDB's lock makes this process the only writer, so a name's latest version (and its highest,
// read from its mark only when a write needs it) can be kept in memory once read; appends and deletes of one name are serialized by a per-name
// queue, and every write is { sync: true }, acknowledged only once it is on disk. Only the names
// used most recently are kept (STATE_NAMES): an evicted name's versions are read from disk again
// at its next use, exactly as after a restart, so memory does not grow with the names stored.
//
// Records recently read are kept sealed (metadata and ciphertext, never a value), already
// decoded and checked against their key, in a small cache, so a name asked for again and again
// costs no trip to LevelDB's thread pool and no second decode. The cache is keyed by name (the
// string a read has just looked up, so no key is made per read), one version each: the one read
// last. A version, once written, never changes and is never reused, so only a delete can make a
// cached record stale; every delete drops its name from the cache, and a read that overlapped
// a delete caches nothing.
//
// A deleted record leaves a deletion marker in LevelDB until a compaction drops it, and every
// seek that lands near the markers walks over them, whatever name it looks for. Once deletes
// have left COMPACT_AFTER markers, the span of keys they cover is compacted in the background
// (one compaction at a time; close waits for the one running). A compaction cut short by a crash
// loses nothing: LevelDB installs its result atomically, and the markers stay until a later one.
//
// A write LevelDB could not carry out (a full disk, a file-size limit) may leave the database
// unfit for the next writes: it is reopened before the next write (LevelReopener, which says why),
// and the server writes again as soon as there is room. Reads go on while
// the reopen waits for the writes, backups and compactions under way.
//
// The class is built in layers, each in a file beside this one: level-records.ts (the keys above
// and the record codec), level-core.ts (the database, what is kept in memory, write queues,
// compaction, failures in our terms), level-backup.ts (backupTo); this file opens the database,
// reads, writes, lists and closes.

import { promises as fs } from 'node:fs';
import { Level } from 'level';
import { CertifierError } from '../errors/index.ts';
import { describeErrnoAt, inDir, levelFileError, makeOwnDirs, tightenFiles, unmakeHeldAndDirs, type MadeDirs } from '../files/index.ts';
import { UNFINISHED_FILE } from './backups.ts';
import {
  checkAfter, checkBuilt, checkExpected, checkListed, checkName, checkPrefix, checkVersion, deleteUnknown, infoOf, listLimit, nextVersion, storeUnknown,
  versionConflict, type Deleted, type KeyBackend, type ListOptions, type RecordInfo, type StoredRecord,
} from './backend.ts';
import { DELETE_LISTED } from './protocol.ts';
import { keyDatabase, type Db, type LevelTuning } from './level-core.ts';
import { LevelBackup } from './level-backup.ts';
import {
  CREATED_KEY, FORMAT_KEY, FORMAT_MARK, MARK, RECORD, STORAGE_KEY_ID, decodeRecord, encodeRecord, laterKey, nameRange, ownCiphertext, parseRecordKey, recordKey,
} from './level-records.ts';

export { COMPACT_AFTER, STATE_NAMES, type LevelTuning } from './level-core.ts';

/** Versions of one name a listing walks key by key before it jumps to the name's last one. */
const VERSIONS_WALKED = 4;
/** Records a listing reads at once for their metadata (each with its value, up to 1 MiB). */
const RECORDS_READ = 4;

/** WRONG_KEY: the records in `path` are sealed under storage key `bound`, and this key-server holds `keyId`. */
export function wrongStorageKey(path: string, bound: string, keyId: string): CertifierError {
  return new CertifierError('WRONG_KEY', `the records in ${path} are sealed under storage key id ${bound}, and this key-server's cryptstore holds id ${keyId}: use the cryptstore that holds it, or fetch it with key-server join from a key-server that does`, { details: { keyId, bound } });
}

/** Makes `dir` (0700) if missing; what it made (see makeOwnDirs). */
async function prepareDir(dir: string): Promise<MadeDirs> {
  try {
    const made = await makeOwnDirs(dir, 0o700);
    await fs.chmod(dir, 0o700);
    return made;
  } catch (e) {
    // In words, as other file errors are (Node's message repeats the path, raw, with the call).
    throw new CertifierError('FILE_ERROR', `cannot use ${dir} as the key-server data directory: ${describeErrnoAt(dir, e)}`, { cause: e });
  }
}

export class LevelBackend extends LevelBackup implements KeyBackend {
  /** Opens (creating if needed) the database in `dir`. STORE_LOCKED if another process has it. */
  static async open(dir: string, tuning: LevelTuning = {}): Promise<LevelBackend> {
    // Before LevelDB opens it, which would write to it: a partial copy, whatever its name (and
    // however named: inDir).
    if (await fs.lstat(inDir(dir, UNFINISHED_FILE)).then(() => true, () => false)) {
      throw new CertifierError('STORE_FORMAT', `${dir} is an unfinished backup copy (the key-server writing it stopped before it was whole): it holds only some of the keys; the whole backups are the keys-TIME directories beside it`);
    }
    const made = await prepareDir(dir);
    const db: Db = new Level(dir, { keyEncoding: 'utf8', valueEncoding: 'view', createIfMissing: true });
    try {
      await db.open();
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new CertifierError('STORE_LOCKED', `the key-server data directory is in use by another process (${dir}): stop the key-server serving it first, or give this one a --data of its own (a standby serves a copy of the primary's made while it was stopped, or a keys-TIME backup)`, { cause: e, details: { path: dir } });
      }
      // A full disk, say: LevelDB writes to a database to open it.
      const file = levelFileError(e, keyDatabase(dir), 'opened');
      if (file) throw file;
      throw new CertifierError('STORE_FORMAT', `cannot open ${dir} as a key-server database: ${cause?.message ?? (e as Error).message}`, { cause: e });
    }
    try {
      const mark = await db.get(FORMAT_KEY);
      if (mark === undefined) {
        for await (const _ of db.keys({ limit: 1 })) throw new CertifierError('STORE_FORMAT', `${dir} holds a LevelDB database that is not a key-server database`);
        const text = new TextEncoder();
        await db.batch([
          { type: 'put', key: FORMAT_KEY, value: text.encode(FORMAT_MARK) },
          { type: 'put', key: CREATED_KEY, value: text.encode(new Date().toISOString()) },
        ], { sync: true });
      } else if (Buffer.from(mark).toString('utf8') !== FORMAT_MARK) {
        throw new CertifierError('STORE_FORMAT', `${dir} holds a key-server database of another format ("${Buffer.from(mark).toString('utf8').slice(0, 80)}")`);
      }
      await tightenFiles(dir);
    } catch (e) {
      await db.close();
      throw e;
    }
    const backend = new LevelBackend(dir, db, tuning);
    backend.made = made;
    return backend;
  }

  /**
   * Closes the database and, if this open made its directory and no key was stored since, removes
   * it and the directories above it that the open made, while LevelDB's lock is still held (see
   * unmakeHeldAndDirs): a start refused later (the port taken, the audit log refused) leaves no
   * empty database behind. A directory that was there stays, whatever LevelDB wrote in it, however
   * --data is spelt ("x/new/.." is x, which making x/new did not make).
   */
  async closeUnused(): Promise<void> {
    if (this.closed) return;
    if (this.made.top !== undefined && !(await this.holdsRecords().catch(() => true))) unmakeHeldAndDirs(this.path, this.made);
    await this.close();
  }

  /** When open made this database; undefined for one made before that was recorded. */
  async created(): Promise<Date | undefined> {
    this.checkOpen();
    const v = await this.db.get(CREATED_KEY);
    return v === undefined ? undefined : new Date(Buffer.from(v).toString('utf8'));
  }

  /** Whether the database holds any record (one key read, no value). */
  async holdsRecords(): Promise<boolean> {
    this.checkOpen();
    for await (const key of this.db.keys({ gte: RECORD, limit: 1 })) return key.startsWith(RECORD);
    return false;
  }

  async boundStorageKey(): Promise<string | undefined> {
    this.checkOpen();
    const v = await this.db.get(STORAGE_KEY_ID);
    return v === undefined ? undefined : Buffer.from(v).toString('utf8');
  }

  async bindStorageKey(keyId: string): Promise<void> {
    const bound = await this.boundStorageKey();
    if (bound === undefined) await this.db.put(STORAGE_KEY_ID, new TextEncoder().encode(keyId), { sync: true });
    else if (bound !== keyId) {
      throw wrongStorageKey(this.path, bound, keyId);
    }
  }

  async append(name: string, build: (version: number) => StoredRecord, expectedLatest?: number, check?: (latest: number) => void): Promise<StoredRecord> {
    checkName(name);
    checkExpected(expectedLatest);
    return this.exclusive(name, async () => {
      const st = await this.state(name);
      if (expectedLatest !== undefined && expectedLatest !== st.latest) throw versionConflict(name, expectedLatest, st.latest);
      check?.(st.latest);
      const version = nextVersion(name, st.highest);
      const record = build(version);
      checkBuilt(name, version, record);
      await this.db.put(recordKey(name, version), encodeRecord(record), { sync: true })
        .catch((e: unknown) => Promise.reject(this.writeError(e, name, storeUnknown(name, version))));
      st.latest = st.highest = version;
      this.states.set(name, st);
      return record;
    });
  }

  async get(name: string, version: number): Promise<StoredRecord | undefined> {
    checkName(name);
    checkVersion(version, true);
    this.checkOpen();
    return this.using(() => this.read(name, version));
  }

  private async read(name: string, version: number): Promise<StoredRecord | undefined> {
    // Asynchronous reads on purpose: unlike the cryptstore (one command, one read), the server
    // serves many connections, and a synchronous read of an uncached block would stall them all.
    let v = version || (this.states.get(name)?.latest ?? (await this.loadLatest(name)));
    if (v === 0) return undefined;
    // Kept by name (the string just looked up, no key made per read), one version each: the one read last.
    const hit = this.sealed.get(name);
    if (hit?.version === v) return ownCiphertext(hit);
    const key = recordKey(name, v);
    const deletes = this.deletes;
    let raw: Uint8Array | undefined = await this.db.get(key);
    if (raw !== undefined && deletes === this.deletes && !this.closed) {
      // Its own bytes, not a view that would keep a larger buffer alive.
      const record = decodeRecord(name, v, raw.byteLength === raw.buffer.byteLength ? raw : new Uint8Array(raw));
      this.sealed.set(name, record);
      return ownCiphertext(record);
    }
    if (raw === undefined && version === 0) {
      // A delete of the latest version landed between reading the cache and reading the record:
      // ask the disk, so the answer is the new latest rather than "absent".
      v = await this.latestBelow(name, 0);
      raw = v === 0 ? undefined : await this.db.get(recordKey(name, v));
    }
    return raw === undefined ? undefined : ownCiphertext(decodeRecord(name, v, raw));
  }

  async delete(name: string, version: number, listed = DELETE_LISTED): Promise<Deleted> {
    checkName(name);
    checkVersion(version, true);
    checkListed(listed);
    return this.exclusive(name, async () => {
      let versions: number[] = [];
      if (version) {
        if ((await this.db.get(recordKey(name, version))) !== undefined) versions = [version];
      } else {
        for await (const key of this.db.keys(nameRange(name))) versions.push(parseRecordKey(key).version);
      }
      if (versions.length === 0) return { count: 0, versions };
      const st = await this.state(name);
      // The new latest is found before the write, so readers never see a deleted latest version.
      const latestAfter = !versions.includes(st.latest) ? st.latest : version === 0 ? 0 : await this.latestBelow(name, version);
      const mark = new Uint8Array(4);
      new DataView(mark.buffer).setUint32(0, st.highest, false);
      const keys = versions.map((v) => recordKey(name, v));
      const uncache = () => {
        this.deletes++;
        this.sealed.delete(name);
      };
      uncache();
      try {
        await this.db.batch([...keys.map((key) => ({ type: 'del' as const, key })), { type: 'put' as const, key: MARK + name, value: mark }], { sync: true })
          .catch((e: unknown) => Promise.reject(this.writeError(e, name, deleteUnknown(name, version, versions.length))));
      } finally {
        uncache(); // whatever the outcome: a read that started before the batch ended caches nothing
      }
      this.noteMarkers(keys);
      st.latest = latestAfter;
      // A name with no version left is forgotten: its highest version is on disk (the mark just
      // written), and state() finds it again at its next write. Kept, every name ever deleted would
      // stay in memory for good.
      if (latestAfter === 0) this.states.delete(name);
      else this.states.set(name, st);
      return { count: versions.length, versions: versions.slice(0, listed) };
    });
  }

  async list(prefix: string, options?: ListOptions): Promise<RecordInfo[]> {
    checkPrefix(prefix);
    checkAfter(options);
    const limit = listLimit(options);
    this.checkOpen();
    if (limit === 0) return [];
    return this.using(() => this.listFrom(prefix, limit, options));
  }

  private async listFrom(prefix: string, limit: number, options?: ListOptions): Promise<RecordInfo[]> {
    const out: RecordInfo[] = [];
    const start = RECORD + prefix;
    // Every key of a name after `after` sorts at or after after + "\x01": its own keys are
    // after + "\0" + version, and a longer name goes on with a printable character.
    const from = options?.after === undefined ? start : laterKey(start, RECORD + options.after + '\x01');
    // One snapshot for both passes, so a concurrent delete cannot make a name vanish half-way.
    const snapshot = this.db.snapshot();
    try {
      if (options?.allVersions) {
        for await (const [key, raw] of this.db.iterator({ gte: from, snapshot })) {
          if (!key.startsWith(start)) break;
          const k = parseRecordKey(key);
          out.push(infoOf(decodeRecord(k.name, k.version, raw)));
          if (out.length >= limit) break;
        }
        return out;
      }
      // Keys first (cheap), then only the latest record of each name: values may be 1 MiB each.
      // A name with many versions is not walked key by key (a member could make a list cost as
      // much as every version ever stored): after a few, its last key is looked up from the end
      // and the walk jumps past the name.
      const latest: string[] = [];
      let current: { name: string; key: string; seen: number } | undefined;
      const keys = this.db.keys({ gte: from, snapshot });
      try {
        for (let key = await keys.next(); key !== undefined && key.startsWith(start); key = await keys.next()) {
          const { name } = parseRecordKey(key);
          if (current && current.name !== name) {
            latest.push(current.key);
            if (latest.length >= limit) break;
            current = undefined;
          }
          current = current ? { name, key, seen: current.seen + 1 } : { name, key, seen: 1 };
          if (current.seen === VERSIONS_WALKED) {
            current.key = (await this.lastKeyOf(name, snapshot)) ?? key;
            keys.seek(`${RECORD}${name}\u0001`);
          }
        }
      } finally {
        await keys.close();
      }
      if (current && latest.length < limit) latest.push(current.key);
      // A few records at a time, each dropped once its metadata is taken: a record holds its
      // sealed value, up to 1 MiB, and a page of a thousand read at once held every one of them
      // (a member listing its own large values took a key-server to gigabytes).
      for (let at = 0; at < latest.length; at += RECORDS_READ) {
        const keys = latest.slice(at, at + RECORDS_READ);
        const raws = await this.db.getMany(keys, { snapshot });
        raws.forEach((raw, i) => {
          const k = parseRecordKey(keys[i]!);
          if (raw !== undefined) out.push(infoOf(decodeRecord(k.name, k.version, raw)));
        });
      }
      return out;
    } finally {
      await snapshot.close();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sealed.clear();
    await Promise.all(this.queues.values());
    // A backup abandoned while stuck in a call is not waited for, nor the database closed under
    // its read (LevelDB would wait for it): the process's exit releases both, as a crash would,
    // with every write before it already handed to the system.
    if (!this.backupStuck) await this.backup;
    await this.compaction;
    await this.reopener.settled();
    if (!this.backupStuck) await this.db.close();
  }
}
