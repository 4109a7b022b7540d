// A LevelDB database kept open across writes, reopened after a write it could not carry out.
//
// Such a write (a full disk, a file-size limit) may leave a torn record at the end of LevelDB's
// log, and LevelDB appends the next writes after it: at the next open, recovery drops the log from
// the torn record on, writes acknowledged since included. A failed sync or background compaction,
// instead, makes LevelDB refuse every write until it is opened again. So after a failed write the
// database is reopened before the next write (recovery moves what the log holds into a table and
// starts a new log). The reopen waits first for the writes and long operations (a backup, a
// compaction: minutes) under way, while reads go on; only then are reads held too, for the few it
// waits for and the reopen itself. While the disk has no room for that, the database is left open
// for reads and writes are refused; a reopen that fails all the same leaves it closed, and the
// next operation opens it again.

import { promises as fs } from 'node:fs';
import { CertifierError } from '../errors/index.ts';
import { describeErrno } from './errno.ts';
import { inDir } from './places.ts';
import { describeLevelFailure } from './level-failure.ts';

/** Free space a reopen needs beyond what LevelDB's logs hold: a new manifest, and slack. */
const REOPEN_MARGIN = 1024 * 1024;
/** Inodes a reopen needs: a new log, a table, a manifest, and slack. */
const REOPEN_INODES = 8;

/** What a reopen needs of a LevelDB database (a classic-level, say). */
export interface Reopenable {
  open(): Promise<void>;
  close(): Promise<void>;
}

export interface ReopenOptions {
  /** The database's directory. */
  dir: string;
  /** Names it in errors: "<what> cannot be written: ...". */
  what: string;
  /** Called once it is open again: what was kept in memory may be stale (a write whose sync failed may be back). */
  reopened: () => void;
}

/**
 * The bytes of the database's logs in `dir`, which a reopen recovers into a table. Each named in
 * the directory as given (inDir: a `--data link/..` is where the link leads, as readdir read it).
 */
export async function logBytes(dir: string): Promise<number> {
  const names = (await fs.readdir(dir)).filter((n) => n.endsWith('.log'));
  const sizes = await Promise.all(names.map((n) => fs.stat(inDir(dir, n)).then((st) => st.size, () => 0)));
  return sizes.reduce((a, b) => a + b, 0);
}

/**
 * Why the disk of the database in `dir` has no room to recover its logs into a table (bytes, or
 * inodes for its new files where the file system counts them), or undefined when it has.
 */
async function noRoomToRecover(dir: string): Promise<string | undefined> {
  const { bavail, bsize, files, ffree } = await fs.statfs(dir);
  const needed = (await logBytes(dir)) + REOPEN_MARGIN;
  if (bavail * bsize < needed) return `its disk has ${bavail * bsize} bytes free, too few to recover (${needed})`;
  // (A file system that makes inodes as it needs them, btrfs say, counts none: files is 0.)
  if (files > 0 && ffree < REOPEN_INODES) return `its disk has ${ffree} inodes free, too few for the new files recovery makes`;
  return undefined;
}

/**
 * What an operation does to the database: a read (goes on while a reopen waits for the others), a
 * write (reopens it first after a failed one), or a long operation that is neither (a backup, a
 * compaction), which a reopen waits for as it waits for writes.
 */
export type OperationKind = 'read' | 'write' | 'long';

/** Counts the operations on one database, and reopens it after a failed write (see the top of the file). */
export class LevelReopener {
  /** A write failed: the database is reopened before the next one. */
  private damaged = false;
  /** A reopen failed and left the database closed: the next operation opens it again. */
  private shut = false;
  private reopening: Promise<void> | undefined;
  /**
   * Operations using the database, which a reopen waits for: all, and those other than reads; how
   * it learns one has ended; and whether it holds new reads back.
   */
  private active = 0;
  private heavy = 0;
  private ended: (() => void) | undefined;
  private holdingReads = false;

  constructor(private readonly db: Reopenable, private readonly o: ReopenOptions) {}

  /**
   * Runs fn on the open database, counted so that a reopen waits for it. A write first has the
   * database reopened after a failed one, and any operation after a reopen that failed. A write or
   * long operation waits for a reopen under way; a read only once the reopen holds reads back, or
   * while the database is closed.
   */
  async using<T>(fn: () => Promise<T> | T, kind: OperationKind = 'read'): Promise<T> {
    const read = kind === 'read';
    for (;;) {
      if (this.reopening && (!read || this.holdingReads || this.shut)) await this.reopening.catch(() => {});
      else if (this.shut || (kind === 'write' && this.damaged)) await (this.reopening = this.reopen().finally(() => (this.reopening = undefined)));
      else break;
    }
    this.active++;
    if (!read) this.heavy++;
    try {
      return await fn();
    } finally {
      this.active--;
      if (!read) this.heavy--;
      this.ended?.();
    }
  }

  /** A write failed: the database is reopened before the next one. */
  failed(): void {
    this.damaged = true;
  }

  /** Waits for a reopen in progress (before the database is closed for good). */
  async settled(): Promise<void> {
    await this.reopening?.catch(() => {});
  }

  /** Closes and opens the database again; FILE_ERROR if it cannot. */
  private async reopen(): Promise<void> {
    const cannot = (why: string, cause?: unknown) =>
      new CertifierError('FILE_ERROR', `${this.o.what} cannot be written: ${why}`, cause ? { cause } : undefined);
    try {
      await this.until(() => this.heavy === 0);
      if (!this.shut) {
        // Recovery writes what the log holds into a table: without room for it, the database would
        // stay closed, reads included, until there is.
        // (Reading the directory fails too when this process is out of file descriptors.)
        const noRoom = await noRoomToRecover(this.o.dir).catch((e: unknown) => Promise.reject(cannot(`a write failed, and ${describeErrno(e)}`, e)));
        if (noRoom) throw cannot(`a write failed, and ${noRoom}: free some space`);
        this.holdingReads = true;
        await this.until(() => this.active === 0);
        await this.db.close();
      }
      try {
        await this.db.open();
      } catch (e) {
        this.shut = true;
        throw cannot(`a write failed, and it cannot be opened again: ${describeLevelFailure(e)}`, e);
      }
    } finally {
      this.holdingReads = false;
    }
    // Every operation that began before the reopen has ended: nothing can put back what was stale.
    this.o.reopened();
    this.shut = this.damaged = false;
  }

  /** Resolves once `done` holds, checked as each operation using the database ends. */
  private async until(done: () => boolean): Promise<void> {
    while (!done()) await new Promise<void>((resolve) => (this.ended = resolve));
    this.ended = undefined;
  }
}
