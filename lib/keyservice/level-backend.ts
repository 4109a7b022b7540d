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

import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';
import { CertifierError } from '../errors/index.ts';
import { describeErrno, describeLevelFailure, inDir, LevelReopener, levelFileError, levelWriteMayHaveLanded, makeOwnDirs, realLocation, syncDir, unmakeHeldAndDirs, type MadeDirs, type OperationKind } from '../files/index.ts';
import { KEY_ID_FILE, UNFINISHED_FILE } from './backups.ts';
import { LruMap } from '../util/lru.ts';
import { compareNames, decode, encode } from '../wire/index.ts';
import {
  checkAfter, checkBuilt, checkExpected, checkName, checkPrefix, checkVersion, deleteUnknown, infoOf, listLimit, nextVersion, outcomeUnknown, storeUnknown,
  versionConflict, type KeyBackend, type ListOptions, type RecordInfo, type StoredRecord, type UnknownChange,
} from './backend.ts';

type Db = Level<string, Uint8Array>;
/** How much the backend keeps and when it compacts: the defaults, smaller in tests. */
export interface LevelTuning { stateNames?: number; compactAfter?: number }
/** In Node.js `level` is classic-level, which can also compact a range; its type does not say so. */
type CompactingDb = Db & { compactRange(start: string, end: string): Promise<void> };
/** `highest` is read (from the mark) only when a write needs it: a read needs only `latest`. */
interface NameState { latest: number; highest?: number }
/** The protobuf shape of key_service_stored_record (proto/keyservice.proto). */
interface RecordMessage {
  resourceName?: string; version?: number; valueType?: string; exportable?: boolean; timeEntered?: string; size?: number; ciphertext?: Uint8Array;
}

const FORMAT_KEY = '!format';
/** When open made the database (ISO 8601), put with FORMAT_KEY. */
const CREATED_KEY = '!created';
/** The id (storageKeyId) of the storage key the records are sealed under, recorded at first start. */
const STORAGE_KEY_ID = '!storage-key-id';
const FORMAT_MARK = 'certifier-keys key-server level backend, format 1';
const RECORD = 'r!';
/** The sealed-record cache: at most this many names (a record each) and bytes (a record over the byte budget is never cached). */
const CACHE_RECORDS = 4096;
const CACHE_BYTES = 4 * 1024 * 1024;
const CACHE_ENTRY_OVERHEAD = 256; // the Map entry and the decoded record around the ciphertext, roughly
/** Versions of one name a listing walks key by key before it jumps to the name's last one. */
const VERSIONS_WALKED = 4;
const MARK = 'h!';
/** The names whose latest and highest version are kept in memory (the most recently used). */
export const STATE_NAMES = 20_000;
/** Deleted records whose markers start a compaction of the keys they span. */
export const COMPACT_AFTER = 1000;

/** How errors name the database in `dir`. */
const keyDatabase = (dir: string) => `the key database in ${dir}`;
const recordKey = (name: string, version: number) => `${RECORD}${name}\u0000${version.toString(16).padStart(8, '0')}`;
const nameRange = (name: string) => ({ gt: `${RECORD}${name}\u0000`, lt: `${RECORD}${name}\u0001` });

/** The later of two keys as LevelDB orders them (UTF-8 bytes, which is code point order). */
function laterKey(a: string, b: string): string {
  return compareNames(a, b) >= 0 ? a : b;
}

function parseRecordKey(key: string): { name: string; version: number } {
  const nul = key.lastIndexOf('\u0000');
  const hex = key.slice(nul + 1);
  if (!key.startsWith(RECORD) || nul < RECORD.length || !/^[0-9a-f]{8}$/.test(hex)) {
    throw new CertifierError('INTEGRITY', `the key-server database holds a damaged key ${JSON.stringify(key)}`);
  }
  return { name: key.slice(RECORD.length, nul), version: parseInt(hex, 16) };
}

function encodeRecord(r: StoredRecord): Uint8Array {
  const m: RecordMessage = {
    resourceName: r.name, version: r.version, valueType: r.type, exportable: r.exportable, timeEntered: r.timeEntered, size: r.size, ciphertext: r.ciphertext,
  };
  return encode('key_service_stored_record', m);
}

function decodeRecord(name: string, version: number, raw: Uint8Array): StoredRecord {
  const damaged = (why: string, cause?: unknown) =>
    new CertifierError('INTEGRITY', `the stored record of "${name}" version ${version} is damaged (${why})`, cause ? { cause } : undefined);
  let m: RecordMessage;
  try {
    m = decode<RecordMessage>('key_service_stored_record', raw);
  } catch (cause) {
    throw damaged('not a key_service_stored_record', cause);
  }
  const { resourceName, valueType, timeEntered, size, ciphertext } = m;
  if (resourceName === undefined || m.version === undefined || valueType === undefined || timeEntered === undefined || size === undefined || ciphertext === undefined) {
    throw damaged('a field is missing');
  }
  if (resourceName !== name || m.version !== version) throw damaged(`it is labelled "${resourceName}" version ${m.version}`);
  if (!Number.isInteger(size) || size < 0) throw damaged(`size ${size}`);
  return { name, version, type: valueType, exportable: m.exportable ?? false, timeEntered, size, ciphertext };
}

/** A copy of the record with a ciphertext of its own: the caller may change neither the cache's record nor its bytes. */
function ownCiphertext(r: StoredRecord): StoredRecord {
  return { ...r, ciphertext: new Uint8Array(r.ciphertext) }; // a copy (a Buffer's slice() would be a view)
}

/** Makes `dir` (0700) if missing; what it made (see makeOwnDirs). */
async function prepareDir(dir: string): Promise<MadeDirs> {
  try {
    const made = await makeOwnDirs(dir, 0o700);
    await fs.chmod(dir, 0o700);
    return made;
  } catch (e) {
    // In words, as other file errors are (Node's message repeats the path, raw, with the call).
    throw new CertifierError('FILE_ERROR', `cannot use ${dir} as the key-server data directory: ${describeErrno(e)}`, { cause: e });
  }
}

/** ALREADY_EXISTS if anything is at `dir`, even a link that leads nowhere. */
async function refuseTaken(dir: string): Promise<void> {
  if (await fs.lstat(dir).then(() => true, () => false)) throw new CertifierError('ALREADY_EXISTS', `${dir} exists; a backup goes to a new directory`);
}

/** A new file holding `data`, 0600, synced, and its directory entry with it. */
async function writeSynced(path: string, data: Uint8Array): Promise<void> {
  const h = await fs.open(path, 'wx', 0o600);
  try {
    await h.writeFile(data);
    await h.sync();
  } finally {
    await h.close();
  }
  await syncDir(join(path, '..'));
}

/**
 * The database holds only ciphertext, but its files are nobody else's business: 0600. Each named
 * in `dir` as read (inDir): a directory named through "link/.." is listed where the link leads.
 */
async function tightenFiles(dir: string): Promise<void> {
  for (const name of await fs.readdir(dir)) {
    const path = inDir(dir, name);
    try {
      const st = await fs.lstat(path);
      if (st.isFile() && (st.mode & 0o077) !== 0) await fs.chmod(path, st.mode & 0o600);
    } catch (e) {
      // Compaction may remove a file between readdir and lstat.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
}

export class LevelBackend implements KeyBackend {
  private readonly states: LruMap<string, NameState>;
  private readonly compactAfter: number;
  private readonly queues = new Map<string, Promise<void>>();
  private closed = false;
  private backup: Promise<unknown> | undefined;
  private readonly sealed = new LruMap<string, StoredRecord>(CACHE_RECORDS, {
    // The ciphertext is a view into the record's bytes as read, which it keeps alive whole.
    weigh: (r) => r.ciphertext.buffer.byteLength + r.name.length + CACHE_ENTRY_OVERHEAD, maxWeight: CACHE_BYTES,
  });
  /** Counts delete starts and ends: a read that saw it change may have read what is being deleted. */
  private deletes = 0;
  /** Reads of names' latest versions from disk in progress, each marked once a write of its name starts. */
  private readonly reading = new Map<string, Set<{ written: boolean }>>();
  /** Deletion markers not yet compacted: how many, and the first and last of their keys. */
  private markers: { count: number; from: string; to: string } | undefined;
  private compaction: Promise<void> | undefined;
  private readonly reopener: LevelReopener;
  /** What this open made: `path` itself, if it was not there, and the first directory it made. */
  private made: MadeDirs = { top: undefined, self: undefined, all: [] };

  private constructor(readonly path: string, private readonly db: Db, tuning: LevelTuning) {
    this.states = new LruMap(tuning.stateNames ?? STATE_NAMES);
    this.compactAfter = tuning.compactAfter ?? COMPACT_AFTER;
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
        throw new CertifierError('STORE_LOCKED', `the key-server data directory is in use by another process (${dir})`, { cause: e, details: { path: dir } });
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
      throw new CertifierError('WRONG_KEY', `the records in ${this.path} are sealed under storage key id ${bound}, and this key-server's cryptstore holds id ${keyId}: use the cryptstore that holds it, or fetch it with key-server join from a key-server that does`, { details: { keyId, bound } });
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

  async delete(name: string, version: number): Promise<number[]> {
    checkName(name);
    checkVersion(version, true);
    return this.exclusive(name, async () => {
      let versions: number[] = [];
      if (version) {
        if ((await this.db.get(recordKey(name, version))) !== undefined) versions = [version];
      } else {
        for await (const key of this.db.keys(nameRange(name))) versions.push(parseRecordKey(key).version);
      }
      if (versions.length === 0) return [];
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
      return versions;
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
      const raws = await this.db.getMany(latest, { snapshot });
      raws.forEach((raw, i) => {
        const k = parseRecordKey(latest[i]!);
        if (raw !== undefined) out.push(infoOf(decodeRecord(k.name, k.version, raw)));
      });
      return out;
    } finally {
      await snapshot.close();
    }
  }

  /**
   * Writes a consistent copy of the whole database (one snapshot: records, version marks, format
   * and storage key id) to DIR, whose parent must exist, while the backend serves on. The copy is
   * filled in a new directory beside DIR (DIR.partial-PID-XXXXXX), synced, then renamed, so DIR is
   * whole or absent; it opens as a key-server data directory and, like the original, holds only
   * ciphertext. Until just before the rename the copy holds UNFINISHED_FILE, written before LevelDB
   * makes its database there, so one cut short is refused by open under any name without being
   * opened (which would write to it). Beside LevelDB's files it holds KEY_ID_FILE, the storage key id the
   * records are sealed under (where one is bound), so pruning tells the backups of another
   * key-server sharing the directory from this one's without opening them, and returned as `keyId`.
   * One backup at a time.
   */
  async backupTo(dir: string): Promise<{ records: number; path: string; keyId?: string }> {
    this.checkOpen();
    if (this.backup) throw new CertifierError('STORE_LOCKED', 'a backup of this key database is already being written');
    // Where it really is, once: named through "link/..", the names joined to it (the copy's files,
    // the parent synced after the rename) would lead beside the link.
    const real = realLocation(dir);
    const run = this.using(() => this.copyTo(real), 'long');
    this.backup = run.then(() => undefined, () => undefined).finally(() => (this.backup = undefined));
    return run;
  }

  private async copyTo(dir: string): Promise<{ records: number; path: string; keyId?: string }> {
    await refuseTaken(dir);
    // Made by mkdir(2), which fails on anything already at the name (a link is never followed),
    // under a name no one can guess, 0700 from the start: nothing planted beside it is written
    // through, and nothing is chmod'ed.
    const tmp = await fs.mkdtemp(`${dir}.partial-${process.pid}-`).catch((e: Error) => {
      throw new CertifierError('FILE_ERROR', `cannot write a backup to ${dir}: ${e.message}`, { cause: e });
    });
    let records = 0;
    let keyId: Uint8Array | undefined;
    try {
      await writeSynced(join(tmp, UNFINISHED_FILE), new TextEncoder().encode('a backup copy being written\n'));
      // Made only now: a Level opens itself (makes its files) as soon as it is made, and the
      // marker must be whole on disk, and named in the directory, before any of them.
      const copy: Db = new Level(tmp, { keyEncoding: 'utf8', valueEncoding: 'view', createIfMissing: true, errorIfExists: true });
      await copy.open();
      const snapshot = this.db.snapshot();
      try {
        let batch: { type: 'put'; key: string; value: Uint8Array }[] = [];
        for await (const [key, value] of this.db.iterator({ snapshot })) {
          // Written before the next entry is added, so the last batch is never empty (the database
          // holds FORMAT_KEY at least): an empty batch is not written, nor synced.
          if (batch.length >= 512) {
            await copy.batch(batch);
            batch = [];
          }
          if (key.startsWith(RECORD)) records++;
          if (key === STORAGE_KEY_ID) keyId = value;
          batch.push({ type: 'put', key, value });
        }
        await copy.batch(batch, { sync: true }); // syncs the log that holds every batch before it
      } finally {
        await snapshot.close();
        await copy.close();
      }
      if (keyId !== undefined) await writeSynced(join(tmp, KEY_ID_FILE), keyId);
      await tightenFiles(tmp);
      await fs.unlink(join(tmp, UNFINISHED_FILE));
      await syncDir(tmp);
      // rename(2) never follows a link at the new name, and fails on one (a directory cannot
      // replace a non-directory); this says so plainly.
      await refuseTaken(dir);
      await fs.rename(tmp, dir);
      await syncDir(join(dir, '..'));
      return { records, path: dir, ...(keyId !== undefined ? { keyId: Buffer.from(keyId).toString('utf8') } : {}) };
    } catch (e) {
      await fs.rm(tmp, { recursive: true, force: true });
      // LevelDB's failure in words (a failed open's is in its cause), as Node's.
      throw e instanceof CertifierError ? e : new CertifierError('FILE_ERROR', `cannot write a backup to ${dir}: ${describeLevelFailure(e)}`, { cause: e });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sealed.clear();
    await Promise.all(this.queues.values());
    await this.backup;
    await this.compaction;
    await this.reopener.settled();
    await this.db.close();
  }

  // ---- internals --------------------------------------------------------------------------

  /** Runs fn after every earlier write of `name` has finished (one writer per name at a time). */
  private exclusive<T>(name: string, fn: () => Promise<T>): Promise<T> {
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
  private noteMarkers(keys: string[]): void {
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
    this.compaction = this.using(() => (this.db as CompactingDb).compactRange(m.from, m.to), 'long').catch(() => {}).finally(() => {
      this.compaction = undefined;
      this.compactMarkers();
    });
  }

  /** The state of a name with its highest version, loading what is missing under the caller's queue slot. */
  private async state(name: string): Promise<Required<NameState>> {
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
  private async loadLatest(name: string): Promise<number> {
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
  private async lastKeyOf(name: string, snapshot: ReturnType<Db['snapshot']>): Promise<string | undefined> {
    for await (const key of this.db.keys({ ...nameRange(name), reverse: true, limit: 1, snapshot })) return key;
    return undefined;
  }

  /** The highest stored version of `name` below `below` (0: any), or 0 when there is none. */
  private async latestBelow(name: string, below: number): Promise<number> {
    const range = below === 0 ? nameRange(name) : { gt: nameRange(name).gt, lt: recordKey(name, below) };
    for await (const key of this.db.keys({ ...range, reverse: true, limit: 1 })) return parseRecordKey(key).version;
    return 0;
  }

  /** Runs fn on the open database (LevelReopener.using), its LevelDB failures in our terms. */
  private using<T>(fn: () => Promise<T>, kind: OperationKind = 'read'): Promise<T> {
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
  private writeError(e: unknown, name: string, change: UnknownChange): unknown {
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

  private checkOpen(): void {
    if (this.closed) throw new CertifierError('INTERNAL', 'the key-server backend is closed');
  }
}
