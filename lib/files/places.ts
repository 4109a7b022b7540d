// Where a file may be written: checks made before the work whose result would be lost, the
// directories a command makes (private, and durably named in their parents), and where a path
// really is once its links are followed.

import { promises as fs, constants as C, lstatSync, readdirSync, realpathSync, rmdirSync, rmSync, statSync, type Stats } from 'node:fs';
import { dirname, basename, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { CertifierError } from '../errors/index.ts';
import { describeDiskErrno, describeErrno, diskErrno, fileError, noDirectory, notDirOnTheWay } from './errno.ts';
import { modeText } from './mode.ts';

/**
 * Checks, before any work whose result would be lost, that a file can be written at `path`: its
 * directory exists and is writable, nothing but a regular file is there (FILE_ERROR, which no
 * --force would replace, so said first), and, if `exclusive`, nothing is there yet
 * (ALREADY_EXISTS). The write itself checks again.
 */
export async function checkWritable(path: string, options: { exclusive?: boolean } = {}): Promise<void> {
  await refuseDirectoryName(path);
  await refuseNonRegular(path);
  if (options.exclusive) await refuseExisting(path);
  const dir = dirname(path);
  try {
    if (!(await fs.stat(dir)).isDirectory()) throw Object.assign(new Error(`${dir} is not a directory`), { code: 'ENOTDIR' });
    await fs.access(dir, C.W_OK | C.X_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const disk = diskErrno(e);
    const why = code === 'ENOENT' ? noDirectory(dir) : code === 'ENOTDIR' ? `${notDirOnTheWay(path) ?? dir} is not a directory` : `cannot write in ${dir}${disk ? ` (${describeDiskErrno(disk)})` : ''}`;
    throw new CertifierError('FILE_ERROR', `cannot write ${path}: ${why}`, { cause: e });
  }
}

/** Why a directory is no place for files only this user may replace (ownDirProblem). */
export type OwnDirProblem = 'not a directory' | 'a symbolic link' | "another user's" | 'writable by its group' | 'writable by others';

/**
 * Why a directory with this stat is not this user's alone, or undefined: it is not a directory (a
 * symbolic link is seen only in an lstat: a caller that takes a link to a directory of its own
 * passes a stat), it belongs to another user than `uid` (not checked where there are no user ids:
 * `uid` undefined), or its group or other users can write in it, sticky bit or not: they could
 * plant names in it, or replace what is written there.
 */
export function ownDirProblem(st: { uid: number; mode: number }, uid: number | undefined): OwnDirProblem | undefined {
  const type = st.mode & C.S_IFMT;
  if (type === C.S_IFLNK) return 'a symbolic link';
  if (type !== C.S_IFDIR) return 'not a directory';
  if (uid !== undefined && st.uid !== uid) return "another user's";
  if (st.mode & 0o002) return 'writable by others';
  if (st.mode & 0o020) return 'writable by its group';
  return undefined;
}

/**
 * Refuses (FILE_ERROR, nothing written) to write a secret at `path` where another user could
 * replace it: the directory it would really go in, or one above it, belongs to another user than
 * this one or root (as sshd's StrictModes has it: its owner may rename what is in it, whatever its
 * mode), or may be written in by its group or by other users without the sticky bit (which keeps
 * each user's entries their own, as in /tmp), so they could rename the file, or a directory on its
 * way, and put their own in its place. Every command writing a secret (a value, a private key, a
 * bundle) to a named file asks this before anything is fetched, derived or written. A directory
 * not there yet is passed over (checkWritable says so). `checks`: what this run found already (one
 * run writing many files in one directory looks at each directory once).
 */
export async function refuseReplaceable(path: string, checks = new DirChecks()): Promise<void> {
  for (let dir = dirname(checks.realLocation(path)); ; dir = dirname(dir)) {
    const why = await checks.replaceable(dir);
    if (why) throw new CertifierError('FILE_ERROR', `cannot write ${path}: ${dir} ${why}; nothing was written`);
    if (dir === dirname(dir)) return;
  }
}

/**
 * refuseReplaceable for a directory that will hold secrets (a cryptstore): the directories above it,
 * as named and, where a link there leads elsewhere, above where it leads. (The directory itself is
 * held to the stricter rule of whoever makes it: this user's alone.)
 */
export async function refuseReplaceableDir(dir: string): Promise<void> {
  const checks = new DirChecks();
  await refuseReplaceable(dir, checks);
  const real = await fs.realpath(dir).catch(() => undefined);
  if (real !== undefined) await refuseReplaceable(real, checks);
}

/**
 * What refuseReplaceable found of directories in one run of a program (a provision run, whose many
 * LocalPaths may share a directory): each directory is resolved and looked at once. Made afresh for
 * each run, never kept from one to the next: a directory may change between them.
 */
export class DirChecks {
  private readonly reals = new Map<string, string>();
  private readonly verdicts = new Map<string, Promise<string | undefined>>();
  private readonly uid = process.getuid?.();

  /** realLocation, the directory's resolved once. */
  realLocation(path: string): string {
    const abs = isAbsolute(path) ? path : `${process.cwd()}/${path}`;
    let real = this.reals.get(dirname(abs));
    if (real === undefined) this.reals.set(dirname(abs), (real = dirname(realLocation(path))));
    return join(real, basename(abs));
  }

  /** Why another user could replace what is put in `dir` (replaceableIn), or undefined; one stat a run. */
  replaceable(dir: string): Promise<string | undefined> {
    let verdict = this.verdicts.get(dir);
    if (!verdict) {
      verdict = fs.stat(dir).then((st) => (st.isDirectory() ? replaceableIn(st, this.uid) : undefined), () => undefined);
      this.verdicts.set(dir, verdict);
    }
    return verdict;
  }
}

/**
 * Why another user than `uid` could replace what is put in a directory with this stat, or
 * undefined: its owner is neither `uid` nor root (not checked where there are no user ids), or its
 * group or other users may write in it without the sticky bit.
 */
function replaceableIn(st: { uid: number; mode: number }, uid: number | undefined): string | undefined {
  if (uid !== undefined && st.uid !== uid && st.uid !== 0) return `belongs to another user (uid ${st.uid}), who could replace what is written there; use a directory of your own (or root's)`;
  if (st.mode & 0o1000 || !(st.mode & 0o022)) return undefined;
  const who = st.mode & 0o002 ? 'other users' : 'its group';
  return `is writable by ${who} (mode ${modeText(st.mode)}), who could replace what is written there; chmod go-w it, or use another directory`;
}

/**
 * Makes the directory `dir` (0700), or checks the one there (or the one a link there names): it
 * must be this user's and writable by no one else (ownDirProblem). Another user who can write in it
 * could swap what a command writes there before it is used. FILE_ERROR otherwise, naming `dir` as
 * `what` ("the output directory").
 */
export async function makePrivateDir(dir: string, what: string): Promise<void> {
  const refuse = (why: string, cause?: unknown) => new CertifierError('FILE_ERROR', `cannot use ${dir} as ${what}: ${why}`, { cause });
  let st: Stats;
  try {
    await makeOwnDirs(dir, 0o700);
    st = await fs.stat(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw refuse(code === 'EEXIST' || code === 'ENOTDIR' ? 'a file is in the way' : describeErrno(e), e);
  }
  const problem = ownDirProblem(st, process.getuid?.());
  if (problem === "another user's") throw refuse(`it belongs to another user (uid ${st.uid}), who could replace what is written there; use a directory of your own`);
  if (problem === 'writable by its group' || problem === 'writable by others') {
    const who = problem === 'writable by others' ? 'other users' : 'its group';
    throw refuse(`it is writable by ${who} (mode ${modeText(st.mode)}), who could replace what is written there; chmod go-w ${dir}, or use another directory`);
  }
  if (problem) throw refuse('a file is in the way');
}

/**
 * FILE_ERROR if something other than a regular file is at `path`. A rename would replace it, not
 * write to it: a symbolic link would become a file of ours (the file it names untouched), and a
 * device or FIFO (--out /dev/stdout, say) a file holding the secret where the device was. Every
 * write refuses these, with --force too, so a caller asks this before it calls a taken name
 * ALREADY_EXISTS (whose remedy is --force).
 */
export async function refuseNonRegular(path: string): Promise<void> {
  const st = await fs.lstat(path).catch(() => undefined);
  if (!st || st.isFile()) return;
  if (st.isDirectory()) throw directoryThere(path);
  const target = st.isSymbolicLink() ? await fs.readlink(path).catch(() => '?') : '';
  // /dev/stdout is a link to /proc/self/fd/1.
  const toFd = /^\/(proc\/self\/fd|dev\/fd)\//.test(target);
  const what = st.isSymbolicLink() ? `a symbolic link (to ${target}); ${toFd ? 'standard output is --out - where a command offers it' : 'name the file itself'}`
    : st.isFIFO() ? 'a FIFO, not a regular file'
    : st.isSocket() ? 'a socket, not a regular file'
    : 'a device, not a regular file (standard output is --out - where a command offers it)';
  throw new CertifierError('FILE_ERROR', `cannot write ${path}: it is ${what}; nothing was replaced`);
}

/** A directory where a file is to be written, which no --force replaces: what to name instead. */
function directoryThere(path: string): CertifierError {
  // The errno kept as its cause, for callers that say a failure in their own words (the audit log's rotation).
  return new CertifierError('FILE_ERROR', `cannot write ${path}: is a directory; name a file (in it, or elsewhere); nothing was written`, { cause: Object.assign(new Error('directory'), { code: 'EISDIR' }) });
}

/**
 * FILE_ERROR for a path that by its form names a directory ("out/", "out/.", ".."): dirname() would
 * take "o/new/" to be "new" in "o", and rename() refuses it. Says whether one is there. (A
 * directory at any other name is refuseNonRegular's, which its callers ask next.)
 */
export async function refuseDirectoryName(path: string): Promise<void> {
  if (!path.endsWith(sep) && basename(path) !== '.' && basename(path) !== '..') return;
  const isDir = (await fs.stat(path).catch(() => undefined))?.isDirectory();
  if (isDir) throw directoryThere(path);
  const ending = path.endsWith(sep) ? sep : `${sep}${basename(path)}`;
  throw new CertifierError('FILE_ERROR', `cannot write ${path}: a name ending in "${ending}" is a directory's; name the file itself`);
}

/**
 * Where `path` really is: its directory with every link (and a ".." after a link) resolved as the
 * kernel would, then its own name; the file itself is not followed. A directory not there yet is
 * placed under the deepest one above it that is (the directories still to make, real ones, taken
 * as text, but what a ".." among them leads back to, which may be a link). Unresolvable: `path` as
 * given.
 */
export function realLocation(path: string): string {
  const abs = isAbsolute(path) ? path : `${process.cwd()}/${path}`; // not resolve(): it would undo ".." lexically
  const rest = [basename(abs)];
  for (let dir = dirname(abs); ; dir = dirname(dir)) {
    try {
      // The native realpath(3): Node's own realpathSync undoes ".." as text before following links.
      let at = realpathSync.native(dir);
      // new/../link/x: once new is made, its ".." is the directory above it, where "link" is followed.
      for (const name of rest.slice(0, -1)) at = realOrAsIs(join(at, name));
      return join(at, rest.at(-1)!);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || dir === dirname(dir)) return resolve(path);
      rest.unshift(basename(dir));
    }
  }
}

/** realpath(3) of `path`, or `path` itself where it cannot be resolved (not there yet). */
function realOrAsIs(path: string): string {
  try {
    return realpathSync.native(path);
  } catch {
    return path;
  }
}

/**
 * The path of `name` in the directory `dir`, as the kernel reads it: not join(), which takes a ".."
 * after a link as text ("link/../x" + "f" would be the x beside the link, not where it leads).
 */
export function inDir(dir: string, name: string): string {
  return dir.endsWith(sep) ? `${dir}${name}` : `${dir}${sep}${name}`;
}

/**
 * Where a file really is: every symbolic link followed, the file's own too, even when what it
 * names does not exist yet (a link to a log the first start will create), as the kernel would.
 */
export async function realFilePath(path: string): Promise<string> {
  let p = path;
  for (let hops = 0; hops < 40; hops++) {
    const st = await fs.lstat(p).catch(() => undefined);
    if (!st?.isSymbolicLink()) break;
    // A relative target is read from the directory the link really is in, as the kernel reads
    // it: "../logs/x" under a linked directory is not where the path's text would put it.
    const target = await fs.readlink(p);
    const at = await fs.realpath(dirname(p)).catch(() => resolve(dirname(p)));
    p = resolve(at, target);
  }
  return fs.realpath(p).catch(() => realLocation(p));
}

/**
 * Every directory in which opening `path` looks up a name, as the kernel does: each directory on
 * the way as named (the working directory's own for a relative path), and, where a name there is
 * a symbolic link, every directory on the way to where it leads, link after link. Whoever may
 * replace a name in any of them decides what `path` opens. Real paths, each once, in the order
 * first looked in (the root first), but the file's own directory last; a name that cannot be looked
 * at ends the walk there (opening the path fails there too).
 */
export async function directoriesLookedIn(path: string): Promise<string[]> {
  const dirs: string[] = [];
  let links = 0;
  let last: string | undefined; // where the last name was looked up: the file's own directory
  // Walks `rel` from the real directory `from`; returns where it leads (undefined: it does not).
  const walk = async (from: string, rel: string): Promise<string | undefined> => {
    let at = from;
    for (const name of rel.split(sep)) {
      if (name === '' || name === '.') continue;
      if (name === '..') {
        at = dirname(at); // `at` is real: its parent is the one ".." names
        continue;
      }
      if (!dirs.includes(at)) dirs.push(at);
      last = at;
      const next = inDir(at, name);
      const st = await fs.lstat(next).catch(() => undefined);
      if (!st) return undefined;
      if (!st.isSymbolicLink()) {
        at = next;
        continue;
      }
      if (++links > 40) return undefined; // ELOOP, as the kernel would say
      const target = await fs.readlink(next).catch(() => undefined);
      const reached = target === undefined ? undefined : await walk(isAbsolute(target) ? sep : at, target);
      if (reached === undefined) return undefined;
      at = reached;
    }
    return at;
  };
  // Not resolve(): it would undo a ".." after a link as text. process.cwd() is a real path.
  await walk(sep, isAbsolute(path) ? path : `${process.cwd()}${sep}${path}`);
  if (last !== undefined) dirs.push(...dirs.splice(dirs.indexOf(last), 1));
  return dirs;
}

/** What a command works with and must never overwrite with what it writes: its store, its key files. */
export interface OwnFiles {
  dirs: string[];
  files: string[];
}

/** INVALID_INPUT if writing `path` would replace one of `own`'s files or a file inside one of its directories. */
export function refuseOwnFiles(path: string, own: OwnFiles, what = path): void {
  const problem = ownFileProblem(path, own, what);
  if (problem) throw new CertifierError('INVALID_INPUT', `${problem}: nothing was written`);
}

/** Why writing `path` would replace one of `own`'s files or write inside one of its directories; undefined when it would not. */
export function ownFileProblem(path: string, own: OwnFiles, what = path): string | undefined {
  const target = realLocation(path);
  const real = (p: string) => { try { return realpathSync.native(p); } catch { return realLocation(p); } };
  const file = own.files.find((f) => real(f) === target);
  if (file) return `${what} is ${file}, which this command needs`;
  const dir = own.dirs.find((d) => {
    const rel = relative(real(d), target);
    // Inside: the directory itself, or below it ("..x" is a name inside it, not its parent).
    return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
  });
  return dir ? `${what} is inside ${dir}, which this command needs` : undefined;
}

/** ALREADY_EXISTS if anything (a file, a directory, a dangling link) is at `path`. */
export async function refuseExisting(path: string): Promise<void> {
  try {
    await fs.lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw fileError('write', path, e);
  }
  throw fileError('write', path, Object.assign(new Error('exists'), { code: 'EEXIST' }));
}

/** A directory's identity (its device and inode): the same directory, whatever path names it. */
export interface DirId {
  dev: number;
  ino: number;
}

/** The identity of the directory at `path` (a link followed); throws as statSync does. */
export function dirIdentity(path: string): DirId {
  const { dev, ino } = statSync(path);
  return { dev, ino };
}

/** Whether two identities are of one directory. */
function sameDir(a: DirId, b: DirId): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/** A directory a making made: where it really was then (realpath(3)), and its identity. */
export interface MadeDir {
  real: string;
  id: DirId;
}

/**
 * What makeOwnDirs made: the first directory (`top`, fs.mkdir's answer), the identity of `dir`
 * itself (`self`) when this call made it, and every directory it made (`all`, in the order made),
 * also those off the way to `dir` ("up/new/../sub" makes up/new, then up/sub). A `dir` that was
 * there, or that mkdir -p reached without making it ("x/new/.." is x, which making x/new only
 * passes through), has no `self`: the run never removes it, or anything that was in it.
 * ("new/store/." is new/store, made by that name.)
 */
export interface MadeDirs {
  top: string | undefined;
  self: DirId | undefined;
  all: MadeDir[];
}

/**
 * `mkdir -p dir` (each directory made with `mode`), and each directory it made named durably in
 * its parent (syncDir), so that what is then written and synced in it outlives a power failure;
 * telling also what it made (MadeDirs), `dir` itself among them or not: the directories
 * are made one name at a time, as mkdir -p does, so that the last mkdir(2), of `dir` itself, says
 * whether this run made it (it succeeded) or found one there (EEXIST), however `dir` is spelt and
 * whoever made one meanwhile. Its identity, taken at once, is what a removal checks before it
 * touches anything (unmakeHeld): never a directory that was there before, or another in its place.
 */
export async function makeOwnDirs(dir: string, mode: number): Promise<MadeDirs> {
  let top: string | undefined;
  const all: MadeDir[] = [];
  // True if this call made `d`; false if a directory was there.
  const make = async (d: string, parentMade = false): Promise<boolean> => {
    try {
      await fs.mkdir(d, { mode });
      top ??= d; // the parents are made first: the first made is the topmost
      // Where it is, taken now: "up/new/../sub" names up/sub only while up/new is there.
      const real = await fs.realpath(d).catch(() => undefined);
      if (real !== undefined) all.push({ real, id: dirIdentity(real) });
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Something at the name: a directory (or a link to one) is passed through; a link that
      // leads nowhere says why (ENOENT, ELOOP), as fs.mkdir's own -p does.
      if (code === 'EEXIST' && (await fs.stat(d)).isDirectory()) return false;
      if (code !== 'ENOENT' || parentMade || dirname(d) === d) throw e;
    }
    await make(dirname(d));
    return make(d, true);
  };
  // "new/store/." is new/store, made by that name: its own, as "new/store" would be.
  const self = (await make(ownName(dir))) ? dirIdentity(dir) : undefined;
  // The parent of each directory made, the last made first, each once: those off the way to `dir`
  // too (up/new/deeper in "up/new/deeper/../../sub"). By the real paths taken as each was made:
  // mkdir took "link/../x" where the link leads, and path.resolve would name the x beside the
  // link, whose parent is not the one to sync. (One removed meanwhile: nothing to sync.)
  for (const parent of new Set(all.map(({ real }) => dirname(real)).reverse())) await syncDir(parent);
  return { top, self, all };
}

/**
 * Undoes makeOwnDirs once what was put in its directories is gone: removes every directory it made
 * (`made.all`), the last made first, each only while it is empty and still the one made (its
 * identity), by the real path it had when made, whatever the spelling: "up/new/../sub" made up/new
 * too, off the way to up/sub. One not empty (another's file in it, say) stays, and so do those
 * above it. Best effort: what cannot be removed stays.
 */
export function unmakeDirs(made: MadeDirs): void {
  // Synchronous, so that a signal's handler can call it: the program dies of the signal next, with
  // no turn of the event loop for a promise to settle.
  for (const { real, id } of [...made.all].reverse()) {
    try {
      // lstat: a link put in its place is not the directory made, nor is another directory.
      const now = lstatSync(real);
      if (now.isDirectory() && sameDir(now, id)) rmdirSync(real);
    } catch {
      // Gone already (the store's own, removed with its files), or not empty: it stays.
    }
  }
}

/**
 * Removes a LevelDB database a creation made (a cryptstore, a key database, a lock): its files,
 * and the directory too if this run made it (`made`, its identity when made: makeOwnDirs). Call it
 * while this process still holds the store's lock (its database open), and close the database
 * after: until the lock goes, another process finds the database in use (STORE_LOCKED), first whole,
 * then, CURRENT gone, a creation cut short whose lock is held; once it goes, an empty directory or
 * none, where it may make its own store. Never a half-removed database it could open. Best effort:
 * false when something could not be removed (what stays is what a later creation finds); true
 * when `dir` is gone already.
 *
 * Only what the run made goes, whatever the path's spelling: a directory made is removed, files
 * and all, only while it is still the one made (its identity); one that was there is only emptied,
 * and its callers make a store only in one that held nothing (Cryptstore.create). Names are taken
 * in the directory's real path: "x/new/.." would name another directory once x/new went, and
 * "new/store/." cannot be removed by that name (EINVAL).
 *
 * Given `only` (names already checked to be the database's files), it removes those names alone,
 * and no directory among them: a name put there since, or turned into a directory, stays.
 */
export function unmakeHeld(dir: string, made: DirId | undefined, only?: readonly string[]): boolean {
  try {
    const real = realpathSync.native(dir);
    if (made !== undefined) {
      if (!sameDir(dirIdentity(real), made)) return false;
    }
    const names = only ?? readdirSync(real);
    const last = ['CURRENT', 'LOCK'].filter((n) => names.includes(n));
    for (const name of [...names.filter((n) => !last.includes(n)), ...last]) rmSync(inDir(real, name), { recursive: only === undefined, force: true });
    if (made !== undefined) rmdirSync(real);
    return true;
  } catch (e) {
    // Another run began its own store there once the lock went: that one is not this run's. Gone
    // already (the making that failed removed it before a signal came): nothing is left to remove.
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOTEMPTY' || code === 'ENOENT';
  }
}

/** `dir` without a trailing "/." ("new/store/." is new/store): the name mkdir(2) makes it by. */
function ownName(dir: string): string {
  let d = dir;
  while (basename(d) === '.' && dirname(d) !== d) d = dirname(d);
  return d;
}

/**
 * For a start refused before it served: removes the LevelDB database at `dir` while its lock is
 * still held, with `dir` itself if the start made it (unmakeHeld, `made.self`), then every other
 * directory the start made (unmakeDirs); nothing when it made none. A `dir` that was there, and
 * what is in it, stay.
 */
export function unmakeHeldAndDirs(dir: string, made: MadeDirs): void {
  if (made.top === undefined) return;
  if (made.self === undefined || unmakeHeld(dir, made.self)) unmakeDirs(made);
}

/** Makes a directory's entries (a rename, a new file) durable. */
export async function syncDir(dir: string): Promise<void> {
  let h: fs.FileHandle | undefined;
  try {
    h = await fs.open(dir, 'r');
    await h.sync();
  } catch {
    // Some filesystems cannot fsync a directory; the rename itself is still atomic.
  } finally {
    await h?.close();
  }
}
