// Files holding secrets written 0600 atomically (a temporary file in the same directory, fsync,
// rename, fsync of the directory), so a crash leaves the old file or the new one, never half of
// one; several files all or none (stageFiles, commitAll); a killed run's leftovers swept.

import { promises as fs, constants as C, lstatSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { CertifierError } from '../errors/index.ts';
import { describeErrno, fileError } from './errno.ts';
import { realLocation, refuseDirectoryName, refuseExisting, refuseNonRegular, syncDir } from './places.ts';
import { deferredSignals, forget, listenWhileNeeded, releaseSignals, remember } from './signals.ts';

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
    // A directory's name ("out/"), or anything but a regular file at the name (a directory, a
    // link, a FIFO, a device), in any of the files, is FILE_ERROR before a taken name, in any, is
    // ALREADY_EXISTS: --force would not help.
    for (const f of files) await refuseDirectoryName(f.path);
    for (const f of files) await refuseNonRegular(f.path);
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
    await releaseSignals(complete ? o.completedBeforeSignal : undefined);
  }
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
  const tmp = join(dir, `${leftoverPrefix(basename(path))}${randomBytes(6).toString('hex')}.tmp`);
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
  const kept = join(dir, `${leftoverPrefix(basename(path))}${randomBytes(6).toString('hex')}.old`);
  try {
    await fs.link(path, kept);
  } catch (e) {
    return { made: (e as NodeJS.ErrnoException).code === 'ENOENT' };
  }
  remember(kept);
  return { made: false, previous: kept };
}

/** The most bytes a name in a directory may have (NAME_MAX on Linux and the BSDs). */
const NAME_MAX = 255;
/** What follows leftoverPrefix in a leftover's name: 12 hex digits, then `.tmp` or `.old`. */
const LEFTOVER_TAIL = 12 + 4;

/**
 * How the names of the files a write of `name` leaves beside it begin (its temporary file, the
 * previous content kept aside): `.NAME.`. Where that and the 16 bytes after it would make a name
 * longer than NAME_MAX (a name of more than 237 bytes), which no directory takes, NAME is cut short
 * (whole characters) and followed by `~` and a hash of it: a file of any name can be written, and
 * two long names alike at first keep leftovers of their own.
 */
function leftoverPrefix(name: string): string {
  const whole = `.${name}.`;
  if (Buffer.byteLength(whole) + LEFTOVER_TAIL <= NAME_MAX) return whole;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 16);
  const room = NAME_MAX - LEFTOVER_TAIL - `.~${hash}.`.length;
  let cut = '';
  for (const ch of name) {
    if (Buffer.byteLength(cut + ch) > room) break;
    cut += ch;
  }
  return `.${cut}~${hash}.`;
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
  const prefix = leftoverPrefix(name);
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
