// Files holding secrets: read with a size cap, written 0600 atomically (temporary file in the
// same directory, fsync, rename, fsync of the directory), so a crash leaves the old file or the
// new one, never half of one.

import { promises as fs, constants as C, fstatSync, lstatSync, realpathSync, unlinkSync, type Stats } from 'node:fs';
import { dirname, basename, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CertifierError } from '../errors/index.ts';

export const DEFAULT_READ_LIMIT = 64 * 1024 * 1024;

/** What a failed file operation met, in a few words ("permission denied"), without Node's code and call. */
export function describeErrno(cause: unknown): string {
  const code = (cause as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  if (code === 'EEXIST') return 'already exists';
  const message = (cause as Error)?.message ?? String(cause);
  // "ENOSPC: no space left on device, write": the words between the code and the call.
  return /^E[A-Z]+: ([^,]+)/.exec(message)?.[1] ?? message;
}

/** FILE_ERROR (ALREADY_EXISTS for EEXIST): "cannot WHAT PATH: why". */
export function fileError(what: string, path: string, cause: unknown): CertifierError {
  const code = (cause as NodeJS.ErrnoException)?.code;
  // Writing, a missing name is a directory on the way: the file itself is created.
  const why = code === 'ENOENT' && what === 'write' ? `no directory ${dirname(path)}` : describeErrno(cause);
  return new CertifierError(code === 'EEXIST' ? 'ALREADY_EXISTS' : 'FILE_ERROR', `cannot ${what} ${path}: ${why}`, { cause });
}

/**
 * Opens `path` to read, refusing a directory, and runs `read` on it: what either throws other than
 * a CertifierError is FILE_ERROR ("cannot read PATH: why"). The file is closed however it ends.
 */
async function withReadHandle<T>(path: string, flags: number, read: (handle: fs.FileHandle, st: Stats) => Promise<T>): Promise<T> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(path, flags);
    const st = await handle.stat();
    if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    return await read(handle, st);
  } catch (e) {
    if (e instanceof CertifierError) throw e;
    throw fileError('read', path, e);
  } finally {
    await handle?.close();
  }
}

const tooLarge = (path: string, limit: number) => new CertifierError('INVALID_INPUT', `${path} is larger than ${limit} bytes`);

/**
 * Reads a whole file, refusing files larger than `limit`. With `regularOnly`, anything but a
 * regular file is refused, without blocking: what a running server reads again (a policy, an ACL,
 * a revocation list on SIGHUP) must not wait in open() on a FIFO put in a file's place.
 */
export function readFileLimited(path: string, limit = DEFAULT_READ_LIMIT, o: { regularOnly?: boolean } = {}): Promise<Uint8Array> {
  return withReadHandle(path, o.regularOnly ? C.O_RDONLY | C.O_NONBLOCK : C.O_RDONLY, async (handle, st) => {
    if (o.regularOnly && !st.isFile()) throw new CertifierError('FILE_ERROR', `cannot read ${path}: not a regular file`);
    if (st.size > limit) throw tooLarge(path, limit);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.alloc(Math.min(1 << 20, limit + 1 - total) || 1);
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > limit) throw tooLarge(path, limit);
      chunks.push(buf.subarray(0, bytesRead));
    }
    return new Uint8Array(Buffer.concat(chunks, total));
  });
}

/**
 * Reads a whole file holding a secret (a passphrase, a key file), refusing files larger than
 * `limit`: into one buffer, outside the garbage-collected heap (which moves what it keeps, and
 * leaves the old copy behind), and never a shared pool's. The bytes returned are a view of it, the
 * only copy: wipe() them once used. Refused, the buffer is wiped here.
 */
export async function readSecretFile(path: string, limit: number): Promise<Uint8Array> {
  const buf = new Uint8Array(new ArrayBuffer(limit + 1));
  try {
    return await withReadHandle(path, C.O_RDONLY, async (handle) => {
      let total = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buf, total, buf.length - total, null);
        total += bytesRead;
        if (bytesRead === 0 || total > limit) break;
      }
      if (total > limit) throw tooLarge(path, limit);
      return buf.subarray(0, total);
    });
  } catch (e) {
    buf.fill(0);
    throw e;
  }
}

/** Reads all of standard input, refusing more than `limit` bytes. */
export async function readStdin(limit = DEFAULT_READ_LIMIT): Promise<Uint8Array> {
  // A directory as standard input (`< .`) reads as nothing at all; say what it is instead.
  const st = (() => {
    try {
      return fstatSync(0);
    } catch {
      return undefined;
    }
  })();
  if (st?.isDirectory()) throw new CertifierError('FILE_ERROR', 'cannot read standard input: it is a directory');
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of process.stdin) {
      total += (chunk as Buffer).length;
      if (total > limit) throw new CertifierError('INVALID_INPUT', `standard input is larger than ${limit} bytes`);
      chunks.push(chunk as Buffer);
    }
  } catch (e) {
    if (e instanceof CertifierError) throw e;
    // Opened for writing only (`0>file`), say: EBADF.
    throw new CertifierError('FILE_ERROR', `cannot read standard input: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  return new Uint8Array(Buffer.concat(chunks, total));
}

export interface WriteOptions {
  /** File mode; 0600 unless the content is public. */
  mode?: number;
  /** Refuse to replace an existing file (ALREADY_EXISTS). */
  exclusive?: boolean;
}

/** Writes `data` to `path` atomically with mode 0600 (or `mode`). */
export async function writeFileAtomic(path: string, data: Uint8Array, options: WriteOptions = {}): Promise<void> {
  await writeFilesAtomic([{ path, data, ...options }]);
}

/** One file of writeFilesAtomic. */
export interface FileToWrite extends WriteOptions {
  path: string;
  data: Uint8Array;
}

/**
 * Writes several files, all or none: each is checked (an exclusive one must not exist) and
 * staged before any is put in place, so a name already taken or a missing directory leaves
 * nothing behind.
 */
export async function writeFilesAtomic(files: FileToWrite[]): Promise<void> {
  const staged = await stageFiles(files);
  await commitAll(staged);
}

/** A file of stageFiles, staged, with how it is to be put in place. */
export interface Staged {
  file: StagedFile;
  exclusive: boolean;
}

/** Checks and stages every file (see writeFilesAtomic); on failure discards those staged. */
export async function stageFiles(files: FileToWrite[]): Promise<Staged[]> {
  const staged: Staged[] = [];
  try {
    for (const f of files) if (f.exclusive) await refuseExisting(f.path);
    for (const f of files) staged.push({ file: await stageFile(f.path, f.data, f.mode), exclusive: f.exclusive === true });
    return staged;
  } catch (e) {
    for (const s of staged) await s.file.discard();
    throw e;
  }
}

/** What commitAll does beside putting the files in place. */
export interface CommitOptions<T = void> {
  /**
   * Run once every file is in place, with signals still held: a failure of it, or a signal that
   * came before it began, undoes the files (key-client provision: its tags' atomic batch). Once
   * begun it is not cut short. What it returns, commitAll returns.
   */
  finish?: () => Promise<T>;
  /** Told of a signal that came once everything stood, just before it ends the program as it would have. */
  completedBeforeSignal?: (signal: NodeJS.Signals) => void;
}

/**
 * Puts staged files in place, in order, all or none: a failure discards those not yet placed and
 * undoes those placed before it (a file made is removed, a file replaced is put back). Returns
 * what `finish` returned (undefined without one).
 */
export async function commitAll<T = void>(staged: Staged[], o: CommitOptions<T> = {}): Promise<T | undefined> {
  const undoable = staged.length > 1 || o.finish !== undefined;
  // SIGINT, SIGTERM and SIGHUP wait while the files go in place (a few ms): a link or rename in
  // flight on libuv's threads could land after a handler had judged what was in place. One that
  // came meanwhile, before `finish` began, then undoes them all, and ends the program as it would
  // have; one that came later waits for `finish`, and ends it once everything stands.
  deferredSignals.depth++;
  listenWhileNeeded();
  let placed = 0;
  let complete = false;
  try {
    for (; placed < staged.length; placed++) {
      if (undoable && deferredSignals.pending) throw new Error('interrupted');
      await staged[placed]!.file.commit(staged[placed]!.exclusive, undoable);
    }
    if (undoable && deferredSignals.pending) throw new Error('interrupted');
    const finished = await o.finish?.();
    complete = true;
    // Started together: each settle is synchronous up to its first await, so none is half-settled.
    await Promise.all(staged.map((s) => s.file.settle()));
    return finished;
  } catch (e) {
    for (const s of staged.slice(placed)) await s.file.discard();
    const lost: string[] = [];
    for (const s of staged.slice(0, placed).reverse()) {
      const problem = await s.file.undo();
      if (problem) lost.push(problem);
    }
    if (lost.length && e instanceof CertifierError) throw new CertifierError(e.code, `${e.message}; ${lost.join('; ')}`, { cause: e });
    throw e;
  } finally {
    releaseSignals(complete ? o.completedBeforeSignal : undefined);
  }
}

/**
 * Runs `work` with SIGINT, SIGTERM and SIGHUP held, as commitAll does while files go in place: a
 * change that cannot be cut short (a store's batch) is never cut off from its report. One that
 * came meanwhile waits for the work; then, if it succeeded, `completed` is told what it returned,
 * and the signal ends the program as it would have.
 */
export async function holdingSignals<T>(work: () => Promise<T>, completed?: (signal: NodeJS.Signals, result: T) => void): Promise<T> {
  deferredSignals.depth++;
  listenWhileNeeded();
  let done: { result: T } | undefined;
  try {
    done = { result: await work() };
    return done.result;
  } finally {
    releaseSignals(done && completed ? (signal) => completed(signal, done!.result) : undefined);
  }
}

/** The end of a stretch of held signals: the one that came meanwhile (if any) now acts, once `completed` is told. */
function releaseSignals(completed: ((signal: NodeJS.Signals) => void) | undefined): void {
  deferredSignals.depth--;
  const signal = deferredSignals.pending;
  if (deferredSignals.depth === 0 && signal) {
    deferredSignals.pending = undefined;
    completed?.(signal);
    onSignal(signal);
  }
  listenWhileNeeded();
}

/**
 * Checks, before any work whose result would be lost, that a file can be written at `path`: its
 * directory exists and is writable, `path` is not a directory, and, if `exclusive`, nothing is
 * there yet (ALREADY_EXISTS). The write itself checks again.
 */
export async function checkWritable(path: string, options: { exclusive?: boolean } = {}): Promise<void> {
  await refuseDirectoryName(path);
  if (options.exclusive) await refuseExisting(path);
  await refuseNonRegular(path);
  const dir = dirname(path);
  try {
    if (!(await fs.stat(dir)).isDirectory()) throw Object.assign(new Error(`${dir} is not a directory`), { code: 'ENOTDIR' });
    await fs.access(dir, C.W_OK | C.X_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? `no directory ${dir}` : code === 'ENOTDIR' ? `${dir} is not a directory` : `cannot write in ${dir}${code === 'EROFS' ? ' (a read-only file system)' : ''}`;
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
 * Makes the directory `dir` (0700), or checks the one there (or the one a link there names): it
 * must be this user's and writable by no one else (ownDirProblem). Another user who can write in it
 * could swap what a command writes there before it is used. FILE_ERROR otherwise, naming `dir` as
 * `what` ("the output directory").
 */
export async function makePrivateDir(dir: string, what: string): Promise<void> {
  const refuse = (why: string, cause?: unknown) => new CertifierError('FILE_ERROR', `cannot use ${dir} as ${what}: ${why}`, { cause });
  let st: Stats;
  try {
    await makeDirs(dir, 0o700);
    st = await fs.stat(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw refuse(code === 'EEXIST' || code === 'ENOTDIR' ? 'a file is in the way' : describeErrno(e), e);
  }
  const problem = ownDirProblem(st, process.getuid?.());
  if (problem === "another user's") throw refuse(`it belongs to another user (uid ${st.uid}), who could replace what is written there; use a directory of your own`);
  if (problem === 'writable by its group' || problem === 'writable by others') {
    const who = problem === 'writable by others' ? 'other users' : 'its group';
    throw refuse(`it is writable by ${who} (mode ${(st.mode & 0o7777).toString(8)}), who could replace what is written there; chmod go-w ${dir}, or use another directory`);
  }
  if (problem) throw refuse('a file is in the way');
}

/**
 * FILE_ERROR if something other than a regular file is at `path`. A rename would replace it, not
 * write to it: a symbolic link would become a file of ours (the file it names untouched), and a
 * device or FIFO (--out /dev/stdout, say) a file holding the secret where the device was.
 */
export async function refuseNonRegular(path: string): Promise<void> {
  const st = await fs.lstat(path).catch(() => undefined);
  if (!st || st.isFile()) return;
  if (st.isDirectory()) throw fileError('write', path, Object.assign(new Error('directory'), { code: 'EISDIR' }));
  const target = st.isSymbolicLink() ? await fs.readlink(path).catch(() => '?') : '';
  // /dev/stdout is a link to /proc/self/fd/1.
  const toFd = /^\/(proc\/self\/fd|dev\/fd)\//.test(target);
  const what = st.isSymbolicLink() ? `a symbolic link (to ${target}); ${toFd ? 'standard output is --out - where a command offers it' : 'name the file itself'}`
    : st.isFIFO() ? 'a FIFO, not a regular file'
    : st.isSocket() ? 'a socket, not a regular file'
    : 'a device, not a regular file (standard output is --out - where a command offers it)';
  throw new CertifierError('FILE_ERROR', `cannot write ${path}: it is ${what}; nothing was replaced`);
}

/**
 * FILE_ERROR for a path that by its form names a directory ("out/", "out/.", ".."): dirname() would
 * take "o/new/" to be "new" in "o", and rename() refuses it. Says whether one is there.
 */
async function refuseDirectoryName(path: string): Promise<void> {
  if (!path.endsWith(sep) && basename(path) !== '.' && basename(path) !== '..') return;
  const isDir = (await fs.stat(path).catch(() => undefined))?.isDirectory();
  if (isDir) throw fileError('write', path, Object.assign(new Error('directory'), { code: 'EISDIR' }));
  const ending = path.endsWith(sep) ? sep : `${sep}${basename(path)}`;
  throw new CertifierError('FILE_ERROR', `cannot write ${path}: a name ending in "${ending}" is a directory's; name the file itself`);
}

/**
 * Where `path` really is: its directory with every link (and a ".." after a link) resolved as the
 * kernel would, then its own name; the file itself is not followed. Unresolvable: `path` as given.
 */
export function realLocation(path: string): string {
  const abs = isAbsolute(path) ? path : `${process.cwd()}/${path}`; // not resolve(): it would undo ".." lexically
  try {
    // The native realpath(3): Node's own realpathSync undoes ".." as text before following links.
    return join(realpathSync.native(dirname(abs)), basename(abs));
  } catch {
    return resolve(path);
  }
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
async function refuseExisting(path: string): Promise<void> {
  try {
    await fs.lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw fileError('write', path, e);
  }
  throw fileError('write', path, Object.assign(new Error('exists'), { code: 'EEXIST' }));
}

/** A file written and synced beside its destination, not yet in place. */
export interface StagedFile {
  readonly path: string;
  /**
   * Moves it into place (exclusive: only if nothing is there yet) and syncs the directory.
   * `undoable` keeps what was there (a hard link to it) until undo or settle.
   */
  commit(exclusive?: boolean, undoable?: boolean): Promise<void>;
  /**
   * After an undoable commit: puts back the file that was there, or removes ours if none was.
   * Never throws; says what could not be put back (and where the previous content is kept).
   */
  undo(): Promise<string | undefined>;
  /** After an undoable commit that stands: lets go of what undo would have put back. Never throws. */
  settle(): Promise<void>;
  /** Removes it; never throws. */
  discard(): Promise<void>;
}

/**
 * The first half of writeFileAtomic: `data` in a temporary file in `path`'s directory, mode 0600
 * (or `mode`), synced. Several files staged first and committed after are all written or none,
 * barring a failed rename in a directory just written to. Fails now if `path` is a directory.
 * `swept`: the caller swept `path`'s leftovers itself this run (sweepLeftovers), not to be done again.
 */
export async function stageFile(path: string, data: Uint8Array, mode = 0o600, o: { swept?: boolean } = {}): Promise<StagedFile> {
  // The temporary file goes where the file really will be: "link/../x" is not "x" to the kernel.
  const dir = dirname(realLocation(path));
  await refuseDirectoryName(path);
  await refuseNonRegular(path);
  if (!o.swept) await sweepStale(dir, basename(path));
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const discard = () => {
    forget(tmp);
    return fs.unlink(tmp).catch(() => {});
  };
  remember(tmp);
  let handle: fs.FileHandle | undefined;
  let ours = { ino: -1, dev: -1 };
  try {
    handle = await fs.open(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL, mode);
    await handle.writeFile(data);
    await handle.chmod(mode); // the umask may have narrowed or widened the open() mode
    await handle.sync();
    ours = await handle.stat();
    await handle.close();
  } catch (e) {
    await handle?.close().catch(() => {});
    await discard();
    throw fileError('write', path, e);
  }
  // After an undoable commit (commitAll, which holds signals meanwhile): whether the file is one
  // we made, and where the one it replaced is kept, so that undo can put things back.
  let made = false;
  let previous: string | undefined;
  const settle = async () => {
    made = false;
    const kept = previous;
    previous = undefined;
    if (kept === undefined) return;
    await fs.unlink(kept).catch(() => {});
    forget(kept);
  };
  return {
    path,
    discard,
    async commit(exclusive = false, undoable = false) {
      try {
        if (exclusive) {
          // link() fails if the target appeared meanwhile, unlike rename().
          await fs.link(tmp, path);
          await fs.unlink(tmp);
          made = undoable;
        } else {
          if (undoable) ({ made, previous } = await keepPrevious(path, dir));
          await fs.rename(tmp, path);
        }
        forget(tmp);
        await syncDir(dir);
      } catch (e) {
        await discard();
        made = false;
        await settle();
        throw fileError('write', path, e);
      }
    },
    async undo() {
      let lost: string | undefined;
      if (previous !== undefined) {
        const kept = previous;
        // The previous file's only copy: never removed, and named if it cannot be put back.
        await fs.rename(kept, path).catch(() => (lost = `${path} was replaced and could not be put back: its previous content is in ${kept}`));
        forget(kept);
      } else if (made && sameFile(path, ours)) {
        await fs.unlink(path).catch(() => {});
      }
      previous = undefined;
      made = false;
      await syncDir(dir).catch(() => {});
      return lost;
    },
    settle,
  };
}

/** Whether `p` is (still) the file `id` names; a link is not followed. */
function sameFile(p: string, id: { ino: number; dev: number }): boolean {
  try {
    const st = lstatSync(p);
    return st.ino === id.ino && st.dev === id.dev;
  } catch {
    return false;
  }
}

/**
 * Before a file at `path` is replaced: a hard link to it beside it (`.NAME.XXXXXXXXXXXX.old`), so
 * the replacement can be undone; `made` when nothing was there. A link that cannot be made leaves
 * the replacement without an undo; it goes ahead, as a single write would.
 */
async function keepPrevious(path: string, dir: string): Promise<{ made: boolean; previous?: string }> {
  const kept = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.old`);
  try {
    await fs.link(path, kept);
  } catch (e) {
    return { made: (e as NodeJS.ErrnoException).code === 'ENOENT' };
  }
  remember(kept);
  return { made: false, previous: kept };
}

/** How old a temporary file of ours must be before a later write of the same file removes it. */
const STALE_TMP_MS = 10 * 60_000;

/** A file a killed run left beside a destination that a sweep left (sweepLeftovers). */
export interface Leftover {
  path: string;
  /** When a sweep will take it: once older than any write still going on could be. */
  removableAfter: Date;
  /** Old enough, but its removal failed: why (its directory cannot be written, say). */
  notRemoved?: string;
}

/**
 * Removes temporary files a killed run left beside `name` (SIGKILL, power loss: nobody could
 * clean up, and they may hold a secret): ours by their name's pattern, and older than any write
 * still going on could be. Best effort. Returns those left: younger, or whose removal failed (an
 * immutable directory, a read-only mount), to be named.
 */
async function sweepStale(dir: string, name: string): Promise<Leftover[]> {
  const prefix = `.${name}.`;
  const entries = await fs.readdir(dir).catch(() => [] as string[]);
  const young: Leftover[] = [];
  for (const entry of entries) {
    if (!entry.startsWith(prefix) || !/^[0-9a-f]{12}\.(tmp|old)$/.test(entry.slice(prefix.length))) continue;
    const path = join(dir, entry);
    const st = await fs.lstat(path).catch(() => undefined);
    if (!st?.isFile()) continue;
    // A kept copy (.old, a hard link) has the previous file's mtime; when it was made is its ctime.
    const since = entry.endsWith('.old') ? st.ctimeMs : st.mtimeMs;
    const removableAfter = new Date(since + STALE_TMP_MS);
    if (Date.now() - since <= STALE_TMP_MS) young.push({ path, removableAfter });
    else {
      await fs.unlink(path).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') young.push({ path, removableAfter, notRemoved: describeErrno(e) });
      });
    }
  }
  return young;
}

/**
 * What a write of `path` sweeps first (sweepStale), for a run that may not write it (its value is
 * there already): a killed run's leftovers would otherwise stay until the file next changes.
 */
export function sweepLeftovers(path: string): Promise<Leftover[]> {
  return sweepStale(dirname(realLocation(path)), basename(path));
}

// Temporary files not yet renamed into place may hold a secret (get-item --out). A program that
// is interrupted while one exists removes it on the way out, unless the program handles the
// signal itself (a server finishing its work), which then commits or discards its files.
// (While commitAll puts files in place, a signal waits for it: see deferredSignals.)
const live = new Set<string>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Signals the program had its own listeners for when we began listening: those are its to handle. */
const theirs = new Set<NodeJS.Signals>();

function remember(tmp: string): void {
  live.add(tmp);
  listenWhileNeeded();
}

function forget(tmp: string): void {
  if (live.delete(tmp)) listenWhileNeeded();
}

/** Whether onSignal is listening: while a temporary file lives, and while commitAll runs. */
let listening = false;

function listenWhileNeeded(): void {
  const needed = live.size > 0 || deferredSignals.depth > 0;
  if (needed === listening) return;
  listening = needed;
  if (!needed) {
    for (const sig of SIGNALS) process.off(sig, onSignal);
    return;
  }
  theirs.clear();
  // Decided now, not when the signal comes: a listener added with process.once is already gone by then.
  for (const sig of SIGNALS) {
    if (process.listenerCount(sig) > 0) theirs.add(sig);
    process.on(sig, onSignal);
  }
}

/** While commitAll puts files in place: how many are doing so, and a signal that came meanwhile. */
const deferredSignals: { depth: number; pending?: NodeJS.Signals } = { depth: 0 };

function onSignal(signal: NodeJS.Signals): void {
  if (theirs.has(signal)) return;
  if (deferredSignals.depth > 0) {
    deferredSignals.pending ??= signal;
    return;
  }
  for (const tmp of live) {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
  }
  live.clear();
  listenWhileNeeded();
  // As if there had been no listener: the default action, so the exit status says which signal.
  process.kill(process.pid, signal);
}

/**
 * `mkdir -p dir` (each directory made with `mode`), and each directory it made named durably in
 * its parent (syncDir), so that what is then written and synced in it outlives a power failure.
 * Returns the first directory made, as fs.mkdir does (undefined when `dir` was there).
 */
export async function makeDirs(dir: string, mode: number): Promise<string | undefined> {
  const first = await fs.mkdir(dir, { recursive: true, mode });
  if (first === undefined) return undefined;
  const top = resolve(first);
  for (let made = resolve(dir); ; made = dirname(made)) {
    await syncDir(dirname(made));
    if (made === top || made === dirname(made)) break;
  }
  return first;
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
