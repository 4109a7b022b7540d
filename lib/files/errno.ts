// A failed file operation in words: what it met, and the CertifierError a command reports; and
// the failures that are its disk's or a limit's, by errno, in one vocabulary.

import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { CertifierError } from '../errors/index.ts';

/**
 * What a failed file operation met, in a few words ("permission denied"), without Node's code and
 * call; the disk's or a limit's as describeDiskErrno says it ("the disk is full").
 */
export function describeErrno(cause: unknown): string {
  const code = (cause as NodeJS.ErrnoException)?.code;
  const disk = diskErrno(cause);
  if (disk) return describeDiskErrno(disk);
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  if (code === 'EEXIST') return 'already exists';
  const message = (cause as Error)?.message ?? String(cause);
  // "ENOTDIR: not a directory, open": the words between the code and the call.
  return /^E[A-Z]+: ([^,]+)/.exec(message)?.[1] ?? message;
}

/**
 * The name on the way to `path` that is something other than a directory (a regular file, say),
 * where nothing can be at `path` nor be made there (ENOTDIR); undefined if every directory above
 * it that is there is one. By its spelling: "x/a/store" under a file x is x. (Asked once a call
 * failed: a few stat calls, synchronous so that fileError may say it.)
 */
export function notDirOnTheWay(path: string): string | undefined {
  for (let d = dirname(path); ; d = dirname(d)) {
    let st;
    try {
      st = statSync(d);
    } catch {
      // Missing, or itself under a file: the name above is asked next.
    }
    if (st) return st.isDirectory() ? undefined : d;
    if (dirname(d) === d) return undefined;
  }
}

/**
 * What a failed operation on `path` met, in words (describeErrno), but for ENOTDIR which name on
 * its way is not a directory ("x is not a directory"), rather than "not a directory", which reads
 * as if `path` itself were something and should be a directory.
 */
export function describeErrnoAt(path: string, cause: unknown): string {
  const blocked = (cause as NodeJS.ErrnoException)?.code === 'ENOTDIR' ? notDirOnTheWay(path) : undefined;
  return blocked === undefined ? describeErrno(cause) : `${blocked} is not a directory`;
}

/**
 * Why nothing can be written in `dir`: it is not there. Programs make no directory for what they
 * write (whose owner and mode they could not know); one under /run, which every boot empties, is
 * what a unit's RuntimeDirectory= is for.
 */
export function noDirectory(dir: string): string {
  return `no directory ${dir} (make it first, or correct the path)`;
}

/** FILE_ERROR (ALREADY_EXISTS for EEXIST): "cannot WHAT PATH: why". */
export function fileError(what: string, path: string, cause: unknown): CertifierError {
  const code = (cause as NodeJS.ErrnoException)?.code;
  // Writing, a missing name is a directory on the way: the file itself is created.
  const why = code === 'ENOENT' && what === 'write' ? noDirectory(dirname(path)) : describeErrnoAt(path, cause);
  return new CertifierError(code === 'EEXIST' ? 'ALREADY_EXISTS' : 'FILE_ERROR', `cannot ${what} ${path}: ${why}`, { cause });
}

/**
 * The failures that are not a file's or a call's but its disk's (full, a used-up quota,
 * read-only, failing) or a limit's (a file size limit, no file descriptor left for this process
 * or for the system), by errno code: what the C library says of each (strerror, all LevelDB
 * passes on) and what we say.
 */
const DISK_ERRNOS = {
  ENOSPC: { text: 'No space left on device', words: 'the disk is full' },
  EDQUOT: { text: 'Disk quota exceeded', words: 'the disk quota is used up' },
  EFBIG: { text: 'File too large', words: 'a file size limit is reached (ulimit -f, LimitFSIZE=)' },
  // A service's unit makes every path read-only under ProtectSystem= but its ReadWritePaths=, where `mount` shows none.
  EROFS: { text: 'Read-only file system', words: 'the file system is read-only, to this process at least: a service whose unit has ProtectSystem= may write only under its ReadWritePaths=' },
  EIO: { text: 'Input/output error', words: 'the disk reported an I/O error' },
  EMFILE: { text: 'Too many open files', words: 'this process has no file descriptor left (ulimit -n, LimitNOFILE=)' },
  ENFILE: { text: 'Too many open files in system', words: 'the system has no file descriptor left (fs.file-max)' },
} as const;

export type DiskErrno = keyof typeof DISK_ERRNOS;

const isDiskErrno = (code: unknown): code is DiskErrno => typeof code === 'string' && Object.hasOwn(DISK_ERRNOS, code);

/** The errno of a failed file operation (Node's error) where it is its disk's or a limit's. */
export function diskErrno(cause: unknown): DiskErrno | undefined {
  const code = (cause as NodeJS.ErrnoException)?.code;
  return isDiskErrno(code) ? code : undefined;
}

/** The errno of the disk's or a limit's whose C library text (strerror) is `text`. */
export function diskErrnoOfText(text: string): DiskErrno | undefined {
  return (Object.keys(DISK_ERRNOS) as DiskErrno[]).find((code) => DISK_ERRNOS[code].text === text);
}

/** What a disk's or a limit's errno means, in words ("the disk is full"). */
export function describeDiskErrno(code: DiskErrno): string {
  return DISK_ERRNOS[code].words;
}
