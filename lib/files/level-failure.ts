// A LevelDB failure in our terms, for each LevelDB database kept here (the key-server's key
// database, the cryptstore). LevelDB passes on a failed file operation as "IO error: FILE: TEXT",
// TEXT the C library's words for the errno (strerror): classic-level gives that as the message of
// its error (LEVEL_IO_ERROR), and a failed open as the cause of its own ("Database failed to
// open"). Its lock held by another process is an IO error too, which classic-level tells apart
// (LEVEL_LOCKED): not a file's failure. Any other (a damaged database: "Corruption: ...") is none.

import { CertifierError } from '../errors/index.ts';
import { describeDiskErrno, diskErrnoOfText, type DiskErrno } from './errno.ts';

/** A failed file operation as LevelDB said it, and its errno where it is its disk's or a limit's. */
export interface LevelIoError {
  message: string;
  errno: DiskErrno | undefined;
}

const IO_ERROR = 'IO error: ';

/** The IO error of a LevelDB failure (the error, or the cause of a failed open), or undefined. */
export function levelIoError(e: unknown): LevelIoError | undefined {
  if (e instanceof CertifierError) return undefined;
  for (const err of [e, (e as { cause?: unknown })?.cause] as { code?: unknown; message?: unknown }[]) {
    if (typeof err?.message !== 'string' || !err.message.startsWith(IO_ERROR) || err.code === 'LEVEL_LOCKED') continue;
    // The errno's words come last, after the file's name (which may hold ": " itself).
    return { message: err.message, errno: diskErrnoOfText(err.message.slice(err.message.lastIndexOf(': ') + 2)) };
  }
  return undefined;
}

/** A LevelDB failure in words: ours first where it is the disk's or a limit's, then LevelDB's. */
export function describeLevelFailure(e: unknown): string {
  const io = levelIoError(e);
  if (io) return io.errno ? `${describeDiskErrno(io.errno)}: ${io.message}` : io.message;
  return (e as { cause?: Error })?.cause?.message ?? (e as Error)?.message ?? String(e);
}

/**
 * The failures of its disk or a limit that LevelDB meets as it opens a database, which it writes
 * to (its lock file, a new log and manifest): a command that only reads a store meets them there.
 */
const WRITES_TO_OPEN: ReadonlySet<DiskErrno> = new Set(['ENOSPC', 'EDQUOT', 'EFBIG', 'EROFS']);

/**
 * FILE_ERROR for a LevelDB failure that is a file operation's: "WHAT cannot be ACTION: why", the
 * disk's or a limit's said in words, not a damaged store or a bug; undefined for any other
 * failure. Opening, what the database holds is said to be unchanged where LevelDB failed for its
 * disk or a limit, before it changed anything, but not for an I/O error, which may have come from
 * anywhere; a failed write may have reached the disk (a sync that failed), so nothing is said.
 */
export function levelFileError(e: unknown, what: string, action: 'opened' | 'read' | 'written'): CertifierError | undefined {
  const io = levelIoError(e);
  if (!io) return undefined;
  const writes = io.errno && WRITES_TO_OPEN.has(io.errno) ? ', as LevelDB writes to a store to open it' : '';
  const unchanged = io.errno && io.errno !== 'EIO' ? ' (what it holds is unchanged)' : '';
  const how = action === 'opened' ? `${writes}${unchanged}` : '';
  return new CertifierError('FILE_ERROR', `${what} cannot be ${action}${how}: ${describeLevelFailure(e)}`, { cause: e });
}

/** Failures LevelDB meets before a write's record is whole in its log: a file it could not open, a record cut short. */
const BEFORE_THE_RECORD: ReadonlySet<DiskErrno> = new Set(['EFBIG', 'EMFILE', 'ENFILE']);

/**
 * Whether a write LevelDB reported failed may have been made all the same. A failure of its log
 * (FILE.log) may come from the sync after the record was appended (EIO, ENOSPC), and the next
 * open keeps the record. Not so for one whose file is another (a table or the manifest: a flush
 * in the background failed, and LevelDB refuses every write until it is reopened), nor for a file
 * it could not open (EMFILE, ENFILE) or a record cut short by a file-size limit (EFBIG, which the
 * next open drops); nor for any failure that is not a file's.
 */
export function levelWriteMayHaveLanded(e: unknown): boolean {
  const io = levelIoError(e);
  if (!io || (io.errno && BEFORE_THE_RECORD.has(io.errno))) return false;
  const file = io.message.slice(IO_ERROR.length, io.message.lastIndexOf(': '));
  return file.endsWith('.log');
}
