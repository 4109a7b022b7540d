// The cryptstore's LevelDB directory: opening it with our error codes, keeping its files
// private, and telling a store from an empty or foreign directory before touching it.

import { promises as fs, type Stats } from 'node:fs';
import { Level } from 'level';
import { CertifierError } from '../lib/errors/index.ts';
import { describeErrnoAt, fileError, notDirOnTheWay, inDir, levelFileError, makeOwnDirs, ownDirProblem, tightenFiles, type MadeDirs } from '../lib/files/index.ts';

export type Db = Level<string, Uint8Array>;

export const notFound = (dir: string, why: string) =>
  new CertifierError('STORE_NOT_FOUND', `no cryptstore at ${dir} (${why}); create one with cert-utility create-store, or, for a machine's identity, cert-utility init-trust`);

/** Said of a database holding records but no cryptstore metadata: another program's, such as a key-server's --data. */
export const FOREIGN_DB = 'holds a LevelDB database that is not a cryptstore (another program\'s, such as a key-server\'s --data): give the cryptstore\'s own directory';

/** A database that create-store began and never finished: no metadata record, nothing else either. */
export const unfinished = (dir: string) =>
  new CertifierError('STORE_NOT_FOUND', `no cryptstore at ${dir} (its creation was interrupted before it was written); create-store or init-trust makes it again`, { details: { unfinished: true } });

/** True when the database holds no record at all. */
export async function isUnfinished(db: Db): Promise<boolean> {
  for await (const _ of db.keys({ limit: 1 })) return false;
  return true;
}

/** Runs `fn` on the database in `dir` (which must exist), closing it after. */
export async function withDb<T>(dir: string, fn: (db: Db) => Promise<T>): Promise<T> {
  const db = await openDb(dir, false);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}


/** Opens LevelDB, turning its errors into ours. */
export async function openDb(dir: string, create: boolean): Promise<Db> {
  const db: Db = new Level(dir, { keyEncoding: 'utf8', valueEncoding: 'view', createIfMissing: create, errorIfExists: false });
  try {
    await db.open();
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code === 'LEVEL_LOCKED') {
      throw new CertifierError('STORE_LOCKED', `the cryptstore is in use by another process (${dir}): a program that opened it holds it while it runs (a key-server serving it, another key-client or cert-utility command, first-boot); let it finish, or stop it, and run this again`, { cause: e });
    }
    if (!create && /does not exist/i.test(cause?.message ?? '')) throw notFound(dir, 'no database');
    if (/permission denied/i.test(cause?.message ?? '')) {
      throw new CertifierError('FILE_ERROR', `cannot open the cryptstore at ${dir}: permission denied (${cause?.message})`, { cause: e });
    }
    // LevelDB writes (a new log and manifest) as it opens a store, so a command that only reads
    // one meets a full or failing disk here: FILE_ERROR saying so, not a damaged store.
    const disk = levelFileError(e, `the cryptstore at ${dir}`, create ? 'written' : 'opened');
    if (disk) throw disk;
    throw new CertifierError('STORE_FORMAT', `cannot open ${dir} as a cryptstore: ${cause?.message ?? (e as Error).message}`, { cause: e });
  }
  return db;
}

/**
 * Rejects with FILE_ERROR for a write LevelDB failed on a file operation (the disk full, read-only
 * or failing, a limit reached: see levelFileError), rather than a damaged store or a bug; else with `e`.
 */
export function writeFailed(dir: string): (e: unknown) => Promise<never> {
  return (e: unknown) => Promise.reject(levelFileError(e, `the cryptstore at ${dir}`, 'written') ?? e);
}

const MUST_OWN = 'a cryptstore must belong to the user who opens it';

const notPrivate = (path: string, e: unknown) =>
  new CertifierError('FILE_ERROR', `cannot make ${path} private (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ${MUST_OWN}`, { cause: e });

/**
 * The directory of a store about to be created, made (0700) or taken as it is (or the one a link
 * there names), and checked before anything is written in it: this user's (another could replace
 * the store's files), and made private. Unlike other directories of ours (ownDirProblem), one that
 * others may write in is not refused but tightened: it is the user's own to make private.
 * Returns what it made (makeOwnDirs').
 */
export async function makeStoreDir(dir: string): Promise<MadeDirs> {
  const made = await makeOwnDirs(dir, 0o700).catch(async (e: unknown) => {
    const link = await fs.readlink(dir).catch(() => undefined);
    const why = link === undefined ? describeErrnoAt(dir, e) : `it is a symbolic link to ${link}, which does not exist`;
    throw cannotMake(dir, why, e);
  });
  const st = await fs.stat(dir).catch((e: unknown) => Promise.reject(fileError('read', dir, e)));
  const problem = ownDirProblem(st, process.getuid?.());
  if (problem === "another user's") throw new CertifierError('FILE_ERROR', `${dir} belongs to another user (uid ${st.uid}); ${MUST_OWN}`);
  // Only where something replaced the directory since mkdir: a stat follows links.
  if (problem === 'not a directory' || problem === 'a symbolic link') throw cannotMake(dir, 'it is not a directory');
  await tightenDir(dir, st);
  return made;
}

const cannotMake = (dir: string, why: string, cause?: unknown) => new CertifierError('FILE_ERROR', `cannot create the cryptstore directory ${dir}: ${why}`, { cause });

/**
 * Rejects with FILE_ERROR where no store can be made at `dir` because a name on its way is not a
 * directory (a regular file): said before a store's key is derived, as makeStoreDir would after.
 */
export async function refuseNoWayTo(dir: string): Promise<void> {
  const blocked = notDirOnTheWay(dir);
  if (blocked !== undefined) throw cannotMake(dir, `${blocked} is not a directory`);
}

/** Makes `dir` 0700 unless it is already, from its stat `st` if the caller has one. */
async function tightenDir(dir: string, st?: Stats): Promise<void> {
  try {
    if (((st ?? (await fs.stat(dir))).mode & 0o777) !== 0o700) await fs.chmod(dir, 0o700);
  } catch (e) {
    throw notPrivate(dir, e);
  }
}

/**
 * Store files hold only ciphertext, but keep them private anyway: directory 0700, files 0600. Each
 * named in `dir` as read (inDir): a store named through "link/.." is listed where the link leads.
 */
export async function tightenPermissions(dir: string): Promise<void> {
  await tightenDir(dir);
  await tightenFiles(dir, notPrivate);
}

/**
 * What LevelDB writes while it creates a database, before CURRENT names its manifest: the lock,
 * its info log, the first manifest and CURRENT's temporary file, and nothing else. Data files
 * (a log or a table) mean a database that held something: never taken for a creation cut short.
 */
const CREATION_LEFTOVER = /^(LOCK|LOG|LOG\.old|MANIFEST-000001|000001\.dbtmp)$/;

/**
 * Every name LevelDB gives a database's files (a store writes no file of its own beside them):
 * CURRENT, the lock, its info logs, manifests, logs, tables (.ldb, .sst of older versions) and
 * CURRENT's temporary file.
 */
const LEVELDB_FILE = /^(CURRENT|LOCK|LOG|LOG\.old|MANIFEST-\d+|\d+\.(log|ldb|sst|dbtmp))$/;

/**
 * The names in `dir` when it holds LevelDB's files alone (LEVELDB_FILE, each a regular file):
 * nothing of anyone else's that removing the store, name by name, would take with it. Undefined
 * when anything else is there.
 */
export async function levelFilesIn(dir: string): Promise<string[] | undefined> {
  const names = await fs.readdir(dir);
  for (const name of names) {
    if (!LEVELDB_FILE.test(name)) return undefined;
    // Removed meanwhile (a compaction's old table): nothing to keep.
    const st = await fs.lstat(inDir(dir, name)).catch(() => undefined);
    if (st && !st.isFile()) return undefined;
  }
  return names;
}

/** Whether `dir` holds LevelDB's files alone (levelFilesIn). */
export async function holdsOnlyLevelFiles(dir: string): Promise<boolean> {
  return (await levelFilesIn(dir)) !== undefined;
}

/**
 * What is at `dir`: nothing, an empty directory, a LevelDB database, the files of one whose
 * creation was cut short before it was a database at all (no CURRENT yet: 'unmade'), or other.
 */
export async function dirState(dir: string): Promise<'missing' | 'empty' | 'store' | 'unmade' | 'other'> {
  // Looked at again when a file listed went before it was looked at: another run removing the
  // store it made (its LOCK last) is no "other" thing there.
  for (let look = 1; ; look++) {
    const state = await dirStateOnce(dir);
    if (state !== 'changed') return state;
    if (look === 10) return 'other';
  }
}

/** A file listed that was gone when looked at. */
const GONE = Symbol('gone');

/** dirState's one look, or 'changed' when a file it listed was gone when it looked at it. */
async function dirStateOnce(dir: string): Promise<'missing' | 'empty' | 'store' | 'unmade' | 'other' | 'changed'> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'missing';
    // A file at `dir` is something else there; one above it leaves nothing there (nor room for
    // anything: Cryptstore.create says so).
    if (code === 'ENOTDIR') return notDirOnTheWay(dir) === undefined ? 'other' : 'missing';
    throw fileError('read', dir, e);
  }
  if (names.length === 0) return 'empty';
  if (names.includes('CURRENT')) return 'store';
  if (!names.every((n) => CREATION_LEFTOVER.test(n))) return 'other';
  // LevelDB's first acts are to start its info log (LOG, the old one moved to LOG.old) and to
  // make and lock LOCK, an empty file. Files of those names that are not LevelDB's (someone's
  // notes called LOG, say) are not taken for a creation cut short.
  // Named in `dir` as read (inDir), also one named through "link/..".
  const gone = (e: unknown) => ((e as NodeJS.ErrnoException).code === 'ENOENT' ? GONE : undefined);
  const lock = names.includes('LOCK') ? await fs.stat(inDir(dir, 'LOCK')).catch(gone) : undefined;
  if (lock === GONE) return 'changed';
  if (lock?.isFile() && lock.size === 0) return 'unmade';
  if (lock || !names.every((n) => n === 'LOG' || n === 'LOG.old')) return 'other';
  for (const n of names) {
    const head = await fs.readFile(inDir(dir, n)).then((b) => b.subarray(0, 64).toString('latin1'), gone);
    if (head === GONE) return 'changed';
    // Empty, or LevelDB's log line: "2026/12/05-17:00:00.123456 7f0a... ".
    if (head === undefined || !(head === '' || /^\d{4}\/\d{2}\/\d{2}-\d{2}:\d{2}:\d{2}\.\d{6} /.test(head))) return 'other';
  }
  return 'unmade';
}


