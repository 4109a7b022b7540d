// The key-server's audit log: one JSON line per request decision, hash-chained so that an edited,
// removed, reordered or inserted line is detected by verifyAudit (key-server verify-audit). The
// line format is audit-line.ts's; reading and verifying files is audit-read.ts's; this file writes.
// Anyone can check a log with any JSON tool and sha256sum. The chain has no key: whoever can
// write the file can recompute it after an edit, or cut its last lines, and it still verifies.
// Its end (writtenEnd, which key-server logs, and verify-audit prints), kept elsewhere, is what
// finds that (--expect).
//
// Durability: lines are chained in call order and written in that order on an O_APPEND | O_DSYNC
// descriptor, so a write returns only once its data (and the file size) is on disk, as write +
// fdatasync would, in one system call. append() resolves only after the write that holds its
// line. Writes are group-committed without any added delay: the lines appended while one write
// runs go out together in the next, so under load the cost is amortized, and a decision is never
// reported before it is on disk. A failed write poisons the log (every later append fails)
// rather than leaving a gap, and what it wrote of its lines is cut off again, so no torn line is
// left for the next start to refuse. A log poisoned by a full disk (ENOSPC) goes on once its file
// system has room again (RESUME_FREE), from the last line on disk: the lines that failed were
// refused to their callers, and no line was queued behind them. Not one poisoned by a used-up quota
// (EDQUOT): the file system's free space does not show a user's quota, so the log would go on at
// each request and fail again after the request was carried out.
//
// One process at a time: an open log holds a lock (lock.ts, in PATH.lock/), so two key-servers
// given one --audit cannot fork the chain. A write cut short by a crash leaves an incomplete last
// line, never acknowledged; open refuses the log until repairAuditTail (key-server repair-audit)
// moves that line aside. open checks only the chain's end (scanEnd); verifyAudit checks it all.

import { constants, fstatSync, promises as fs, statfsSync, statSync, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CertifierError } from '../errors/index.ts';
import { describeErrno, dirIdentity, diskErrno, realFilePath, syncDir, unmakeHeld, writeFileAtomic } from '../files/index.ts';
import { isoNow } from '../util/clock.ts';
import { type AuditEntry, type AuditRecord, auditHash, canonicalFields, canonicalJson, fieldProblem, lineOf, startProblem } from './audit-line.ts';
import {
  directoryGiven, endPath, endSource, hashAt, latestSegment, notVerified, recordedEnd, refuseMissingAuditDir, scan, scanEnd,
  segmentPath, segmentRange, segmentsAfterProblem, segmentStartProblem, startOfFile, startsAfter,
} from './audit-read.ts';
import { holdLock } from './lock.ts';

export { AUDIT_GENESIS, auditHash, type AuditEntry, type AuditRecord } from './audit-line.ts';
export { endPath, refuseMissingAuditDir, verifyAudit, verifySegment, type AuditVerification } from './audit-read.ts';

/**
 * After a crash or power loss cut the last write short: moves the incomplete last line out of the
 * log, into `PATH.torn-TIME` for inspection, so the chain can be extended again. (A crash
 * mid-write leaves such a line, never acknowledged: an answer leaves only once its line is whole
 * on disk. Whether this one came from a crash, the file cannot say.) Holds the log's lock, so no
 * key-server is using it. Changes nothing when the log verifies; INTEGRITY, changing nothing,
 * when anything but the last line is wrong. A rotated segment is refused before anything is made
 * beside it: it is never written after rotation, so a torn one is damage or tampering.
 */
export async function repairAuditTail(path: string): Promise<{ lines: number; removedBytes: number; savedTo?: string }> {
  if (segmentRange(path)) {
    throw segmentGiven(path, ', so an incomplete line in one is damage or tampering, not a write cut short; repair-audit repairs only the log itself (verify-audit names what is wrong)');
  }
  // A log that is not there has nothing to repair, and gets no lock directory beside it.
  await fs.stat(path).catch((e: Error) => {
    throw new CertifierError('FILE_ERROR', `cannot read the audit log ${path}: ${describeErrno(e)}`, { cause: e });
  });
  const lock = await lockAudit(path, `the audit log ${path} is in use by a running key-server: stop it before repairing the log`);
  try {
    return await cutTornTail(path);
  } finally {
    // Whatever the outcome, no lock of its own is left beside the file (a key-server's own stays):
    // nothing needs it once released, and one made by root beside a copy restored for the
    // service's user would stop that user's key-server at start (another user's lock).
    await lock.releaseRemovingOwn();
  }
}

/** repairAuditTail's work, under the log's lock. */
async function cutTornTail(path: string): Promise<{ lines: number; removedBytes: number; savedTo?: string }> {
  const r = await scan(path, true);
  if (r.ok) return { lines: r.lines, removedBytes: 0 };
  if (r.tornAt === undefined) throw notVerified(path, r, 'only an incomplete last line can be repaired');
  const fh = await fs.open(path, 'r+');
  try {
    const { size } = await fh.stat();
    const tail = Buffer.alloc(size - r.tornAt);
    await fh.read(tail, 0, tail.length, r.tornAt);
    const savedTo = `${path}.torn-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    await writeFileAtomic(savedTo, tail, { exclusive: true });
    await fh.truncate(r.tornAt);
    await fh.sync();
    return { lines: r.line - 1, removedBytes: tail.length, savedTo };
  } finally {
    await fh.close();
  }
}

/** USAGE: `path` is named as a rotated segment (PATH.FIRST-LAST), which is never written after rotation; `then` says why that matters here. */
function segmentGiven(path: string, then: string): CertifierError {
  return new CertifierError('USAGE', `${path} is a rotated segment of an audit log (F.FIRST-LAST): segments are never written after rotation${then}`);
}

/** The log whose PATH.end `path` is, when that log is a file beside it (its rotations replace PATH.end). */
async function logEndedAt(path: string): Promise<string | undefined> {
  const log = /^(.+)\.end$/.exec(path)?.[1];
  return log !== undefined && (await fs.stat(log).then((st) => st.isFile(), () => false)) ? log : undefined;
}

/** INTEGRITY: the log's first line does not go on from where `what` says the chain stood. */
function doesNotContinue(path: string, start: { seq: number; prev: string }, what: string, seq: number, hash: string): CertifierError {
  return new CertifierError('INTEGRITY', `the audit log ${path} does not continue ${what} (which ends at seq ${seq}): it starts at seq ${start.seq}${start.seq === seq + 1 && start.prev !== hash ? ' after another hash' : ''}; refusing to extend it (another log in its place?)`);
}

interface AuditLock {
  release(): Promise<void>;
  /** Removes the lock's directory if this call made it, while still holding it, then releases: an open refused, or repair-audit done either way. */
  releaseRemovingOwn(): Promise<void>;
}

/**
 * The lock that keeps a second process (another replica given the same --audit) off the log:
 * the one-writer lock of a log, beside the file itself: two paths to one file (a symbolic link,
 * a linked directory) meet at the same lock.
 */
async function lockAudit(path: string, inUse = `the audit log ${path} is in use by another process: give each key-server its own --audit`): Promise<AuditLock> {
  const real = await realFilePath(path);
  // A second name for the file (a hard link) would be a second lock: refused, not followed.
  const st = await fs.stat(real).catch(() => undefined);
  if (st?.isDirectory()) throw directoryGiven(path, 'give the log file itself');
  if (st && !st.isFile()) throw new CertifierError('FILE_ERROR', `the audit log ${path} is not a regular file`);
  if (st && st.nlink > 1) throw new CertifierError('FILE_ERROR', `the audit log ${path} has ${st.nlink} hard links: give each log one name, so that one lock keeps one writer`);
  const dir = `${real}.lock`;
  const wasThere = await fs.lstat(dir).then(() => true, () => false);
  const release = await holdLock(dir, inUse);
  const own = wasThere ? undefined : dirIdentity(dir);
  return {
    release,
    releaseRemovingOwn: async () => {
      // Removed while held, as closeUnused removes it: a start racing this one makes its own.
      if (own) unmakeHeld(dir, own);
      await release();
    },
  };
}

/** The device and inode a descriptor is open on. */
function fileOf(fh: FileHandle): { ino: number; dev: number } {
  const { ino, dev } = fstatSync(fh.fd);
  return { ino, dev };
}

function statAt(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

export interface AuditLogOptions {
  /** Starts a new file once the current one holds this many bytes; the old one is kept as a segment. */
  rotateBytes?: number;
  /** Told of each rotation (for the server's log). */
  onRotate?: (segment: { path: string; firstSeq: number; lastSeq: number }) => void;
  /**
   * Told once, when the log breaks: from then on every append fails (for the server's log), or,
   * when `resumes`, until its file system has room again.
   */
  onBroken?: (error: CertifierError, resumes: boolean) => void;
  /** Told when a rotation could not begin (FILE.end not written: a full disk), once until one succeeds; the log goes on in its file. */
  onRotateFailed?: (error: CertifierError) => void;
  /** Told when a log broken by a full disk goes on (for the server's log). */
  onResumed?: (end: { seq: number; hash: string }) => void;
}

/** Free bytes a log broken by a full disk waits for before it goes on. */
export const RESUME_FREE = 1024 * 1024;

interface PendingLine {
  bytes: Buffer;
  hash: string;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class AuditLog {
  private pending: PendingLine[] = [];
  private flushing: Promise<void> | undefined;
  private broken: Error | undefined;
  /** The log broke on a full disk, and the file holds whole lines only: it may go on. */
  private resumable = false;
  /** The last rotation failed before it changed anything: the next write tries again. */
  private rotationFailing = false;
  private closed = false;

  /** Bytes in the current file, the seq of the last line written, and the seq of the file's first. */
  private size = 0;
  /** This open made the file (a log that was missing). */
  private created = false;
  private written: number;
  /** The hash of the last line written (not merely appended). */
  private writtenHash: string;
  private fileFirst: number;
  /** The file the descriptor is open on (fixed while it is open: an open file's inode is never reused). */
  private file: { ino: number; dev: number };

  private constructor(
    readonly path: string, private fh: FileHandle, private readonly release: () => Promise<void>,
    private seq: number, private last: string, private readonly options: AuditLogOptions,
  ) {
    this.written = seq;
    this.writtenHash = last;
    this.fileFirst = seq + 1;
    this.file = fileOf(fh);
  }

  /**
   * Opens (creating, 0600) a log and continues its chain; INTEGRITY naming the line if its end
   * does not verify. An empty or missing log continues the latest rotated segment beside it.
   */
  static async open(given: string, options: AuditLogOptions = {}): Promise<AuditLog> {
    // The log is worked on where it really is: a symbolic link given as --audit would otherwise
    // be renamed into a segment at the first rotation, leaving an unlocked file at its name.
    const path = await realFilePath(given);
    // Lines written there would break the chain the segment belongs to (verify-audit holds it to its name).
    const segment = segmentRange(given) ?? segmentRange(path);
    if (segment) throw segmentGiven(given === path ? given : `${given} (${path})`, `: give the log itself (${segment.log}), or a name of its own`);
    const ended = (await logEndedAt(given)) ?? (await logEndedAt(path));
    if (ended) throw new CertifierError('USAGE', `${given} is where the audit log ${ended} beside it keeps the end of its chain at each rotation, which puts a new file in its place: give this log a name of its own`);
    await refuseMissingAuditDir(given, dirname(path));
    let fh: FileHandle;
    let created = false;
    const lock = await lockAudit(path);
    try {
      created = !(await fs.stat(path).then(() => true, () => false));
      fh = await fs.open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC, 0o600);
    } catch (e) {
      // A log that cannot be opened (a link loop at its name) leaves no lock of this open's beside it.
      await lock.releaseRemovingOwn();
      throw new CertifierError('FILE_ERROR', `cannot open the audit log ${path}: ${(e as Error).message}`, { cause: e });
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new CertifierError('FILE_ERROR', `the audit log ${path} is not a regular file`);
      if ((st.mode & 0o077) !== 0) await fh.chmod(st.mode & 0o600);
      if (created) await syncDir(dirname(path));
      let r = await scanEnd(path);
      if (!r.ok) {
        throw notVerified(path, r, r.tornAt === undefined ? 'refusing to extend it' : `refusing to extend it (key-server repair-audit ${path} moves that line aside)`);
      }
      // The log must go on from the chain's latest end (not another server's log put in its
      // place): the later of the newest segment beside it and FILE.end. Segments may be moved away,
      // the newest ones included, while an older one is still beside the log or copied back: a
      // segment is checked against only when it is that end. Its first line, that segment's end
      // and the record are each read cheaply; the rest is verify-audit's to check.
      const start = r.lastSeq > 0 ? await startOfFile(path) : undefined;
      const startBad = r.lastSeq > 0 && (start ? startProblem(start) : 'it does not say its seq and prev');
      if (startBad) throw notVerified(path, { line: 1, problem: startBad }, 'refusing to extend it');
      let end = await recordedEnd(path);
      const segment = await latestSegment(path);
      const fromSegment = segment !== undefined && (!end || segment.lastSeq >= end.seq);
      if (fromSegment) {
        const s = await scanEnd(segment.path);
        if (!s.ok) throw notVerified(segment.path, s, `refusing to continue it in ${path}`);
        if (s.lastSeq !== segment.lastSeq) throw new CertifierError('INTEGRITY', `the audit segment ${segment.path} ends at seq ${s.lastSeq}, not the ${segment.lastSeq} its name says`);
        // Nor may it begin elsewhere than its name says (verify-audit refuses it too): its first line only.
        const named = segmentStartProblem(segment, (await startOfFile(segment.path))?.seq);
        if (named) throw notVerified(segment.path, { line: 1, problem: named }, `refusing to continue it in ${path}`);
        // FILE.end is written before each rotation's rename: the newest segment ends where it says,
        // with its hash. One ending elsewhere, or another way, is not this chain's (copied in from
        // another server's archive under the same name), and verify-audit refuses it too; unless
        // it ends later and the segments after FILE.end's record chain from it to this one, as a
        // key-server of an earlier version leaves them (it rotated without writing FILE.end).
        if (end && (s.lastSeq !== end.seq || s.last !== end.hash)) {
          const unlinked = s.lastSeq > end.seq ? await segmentsAfterProblem(path, end) : '';
          if (unlinked !== undefined) {
            const after = unlinked ? `, and the segments after that record do not lead to it: ${unlinked}` : '';
            throw new CertifierError('INTEGRITY', `the audit segment ${segment.path} ends at seq ${s.lastSeq} with hash ${s.last}, but ${endPath(path)} says the last rotation left the chain at seq ${end.seq} with hash ${end.hash}${after}: the segment is not this chain's (copied in from elsewhere?); refusing to continue it`);
          }
          end = { seq: s.lastSeq, hash: s.last }; // where the earlier key-server's last rotation left it
        }
        if (!start) r = s;
        else if (start.seq !== s.lastSeq + 1 || start.prev !== s.last) throw doesNotContinue(path, start, `its latest segment ${segment.path}`, s.lastSeq, s.last);
      }
      let [seq, last] = [r.lastSeq, r.last];
      if (end && start) {
        if (end.seq > r.lastSeq) throw new CertifierError('INTEGRITY', `${endPath(path)} says the audit chain reached seq ${end.seq} at its last rotation, but the log ${path} ends at seq ${r.lastSeq}; refusing to extend it`);
        if (start.seq === end.seq + 1 && start.prev !== end.hash) throw doesNotContinue(path, start, endPath(path), end.seq, end.hash);
        // The first line after a rotation is the next seq: a log that starts later lost lines.
        // (Continuing the newest segment, which ends at FILE.end, it has been checked above.)
        if (start.seq > end.seq + 1) throw new CertifierError('INTEGRITY', `the audit log ${path}: ${startsAfter(start.seq, end.seq, endSource(path))}; refusing to extend it`);
        // A log that began at or before that seq (a rotation cut short, then served on) holds its record.
        if (start.seq <= end.seq) {
          const hash = end.seq === r.lastSeq ? r.last : await hashAt(path, end.seq);
          if (hash !== end.hash) {
            throw new CertifierError('INTEGRITY', hash
              ? `the record of seq ${end.seq} in the audit log ${path} has hash ${hash}, but ${endPath(path)} says ${end.hash} (the line edited, or another log in its place); refusing to extend it`
              : `no whole, well-formed record of seq ${end.seq}, where ${endPath(path)} says the last rotation left the chain, could be read in the audit log ${path} (a line there or near it is damaged: key-server verify-audit names it); refusing to extend it`);
          }
        }
      }
      // An empty log after a rotation whose segments were moved away (all, or the latest ones):
      // the chain goes on from where the last rotation left it, never from an earlier point.
      if (end && !start && end.seq > seq) [seq, last] = [end.seq, end.hash];
      const log = new AuditLog(path, fh, lock.release, seq, last, options);
      log.size = st.size;
      log.created = created;
      if (st.size > 0) log.fileFirst = start?.seq ?? 1;
      return log;
    } catch (e) {
      await fh.close();
      // A refusal (a file that is not an audit log, `serve --audit notes.txt`) leaves no lock of
      // this open's beside the file, as repair-audit's does not.
      await lock.releaseRemovingOwn();
      throw e;
    }
  }

  /**
   * Throws the log's failure if it can no longer record anything: a caller about to carry out a
   * decision (a store, a delete) asks first, so that nothing takes effect unrecorded.
   */
  checkUsable(): void {
    if (this.closed) throw new CertifierError('INTERNAL', 'the audit log is closed');
    if (this.broken && !this.resumed()) throw this.failure(this.broken);
  }

  /** Whether a log broken by a full disk went on now: its file system has room again, and no write is under way. */
  private resumed(): boolean {
    if (!this.resumable || this.flushing) return false;
    try {
      const { bavail, bsize } = statfsSync(dirname(this.path));
      if (bavail * bsize < RESUME_FREE) return false;
    } catch {
      return false;
    }
    this.broken = undefined;
    this.resumable = false;
    [this.seq, this.last] = [this.written, this.writtenHash];
    this.options.onResumed?.(this.writtenEnd);
    return true;
  }

  /** The seq of the last line appended (0 for a chain not begun). */
  get lastSeq(): number {
    return this.seq;
  }

  /** The chain's end on disk: the seq and hash of the last line written (0 and the genesis hash for a chain not begun). */
  get writtenEnd(): { seq: number; hash: string } {
    return { seq: this.written, hash: this.writtenHash };
  }

  /** Appends one decision; resolves once its line is on disk. */
  append(entry: AuditEntry): Promise<AuditRecord> {
    if (this.closed) return Promise.reject(new CertifierError('INTERNAL', 'the audit log is closed'));
    if (this.broken && !this.resumed()) return Promise.reject(this.failure(this.broken));
    const kept = canonicalFields(entry as unknown as Record<string, unknown>, this.seq + 1, entry.time ?? isoNow());
    const problem = fieldProblem(kept);
    if (problem) return Promise.reject(new CertifierError('INVALID_INPUT', `audit entry: ${problem}`));
    // seq, prev and hash are fixed now, synchronously, so lines are chained in call order.
    const canon = canonicalJson(kept);
    const prev = this.last;
    const hash = auditHash(prev, canon);
    this.seq++;
    this.last = hash;
    const bytes = Buffer.from(lineOf(canon, prev, hash), 'utf8');
    const durable = new Promise<void>((resolve, reject) => this.pending.push({ bytes, hash, resolve, reject }));
    this.flushing ??= this.flush();
    return durable.then(() => ({ ...kept, prev, hash }) as AuditRecord);
  }

  /**
   * Closes the log and, if this open made the file and nothing was ever written to it, removes
   * it: a start refused later (the wrong storage key) leaves no empty log behind to begin a
   * chain the next start would then call new.
   */
  async closeUnused(): Promise<void> {
    if (this.closed) return;
    const unused = this.created && this.size === 0 && this.written === this.seq && this.seq === 0;
    const st = unused ? await this.fh.stat().catch(() => undefined) : undefined;
    const here = st ? await fs.stat(this.path).catch(() => undefined) : undefined;
    // Removed only while the lock is held, and only if the name still leads to this empty file.
    if (st && here && st.ino === here.ino && st.dev === here.dev && here.size === 0) {
      await fs.unlink(this.path).catch(() => {});
      // The lock goes too, while still held: a start racing this one makes a new one, never
      // shares this one's.
      await fs.rm(`${this.path}.lock`, { recursive: true, force: true }).catch(() => {});
      await syncDir(dirname(this.path)).catch(() => {});
    }
    await this.close();
  }

  /** Waits for every append, then closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flushing;
    await this.fh.close();
    await this.release();
  }

  /**
   * Writes what is pending in one synchronous-data write, until nothing is; never rejects. It
   * starts after the I/O callbacks of this event-loop turn have run, so the lines they append
   * (say, a batch of reads that finished together) share the first write rather than the first
   * line going alone; that waits for no timer, only the rest of the current turn.
   */
  private async flush(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (;;) {
      const batch = this.pending;
      if (batch.length === 0) {
        // Cleared in the same step that finds nothing pending, so no append can be left behind.
        this.flushing = undefined;
        return;
      }
      this.pending = [];
      try {
        if (this.broken) throw this.broken;
        const bytes = batch.length === 1 ? batch[0]!.bytes : Buffer.concat(batch.map((l) => l.bytes));
        let off = 0;
        try {
          while (off < bytes.length) off += (await this.fh.write(bytes, off, bytes.length - off, null)).bytesWritten;
        } catch (e) {
          const whole = await this.cutTorn();
          // A full disk passes once space is freed, as statfs shows; a used-up quota it does not show.
          this.resumable = whole && diskErrno(e) === 'ENOSPC';
          throw e;
        }
        // Written, but to a file someone removed or renamed (logrotate's default): nothing after
        // this would be found at the log's name. (A synchronous stat: microseconds, where the
        // promise form would cost a thread-pool trip per batch.) Where the name still leads to our
        // file (the device and inode our descriptor has had since it was opened), what the stat
        // says is what an fstat of the descriptor would: one system call, not two.
        const named = statAt(this.path);
        if (!named || named.nlink === 0 || named.ino !== this.file.ino || named.dev !== this.file.dev) throw new Error('the file was removed or renamed while in use');
        // Cut short (truncated) while in use: O_APPEND put this write where the file now ends.
        if (named.size < this.size + bytes.length) throw new Error(`the file was cut short while in use (it holds ${named.size} bytes, not the ${this.size + bytes.length} written)`);
        this.size += bytes.length;
        this.written += batch.length;
        this.writtenHash = batch[batch.length - 1]!.hash;
        for (const l of batch) l.resolve();
        if (this.options.rotateBytes && this.size >= this.options.rotateBytes) await this.rotate();
      } catch (e) {
        const first = this.broken === undefined;
        this.broken ??= e as Error;
        const failure = this.failure(this.broken);
        if (first) this.options.onBroken?.(failure, this.resumable);
        for (const l of batch) l.reject(failure);
      }
    }
  }

  /**
   * Keeps the current file as a segment (PATH.FIRST-LAST) and goes on in a new PATH, whose first
   * line will continue the chain. Between the rename and the new file, a crash leaves no PATH,
   * and open continues the segment. A failure to write FILE.end (a full disk) changes nothing: the
   * log goes on in its file, and the next write tries again. A later failure breaks the log, as a
   * failed write does.
   */
  private async rotate(): Promise<void> {
    const segment = segmentPath(this.path, this.fileFirst, this.written);
    try {
      await writeFileAtomic(endPath(this.path), new TextEncoder().encode(`${JSON.stringify({ seq: this.written, hash: this.writtenHash })}\n`));
    } catch (e) {
      // Told once, until a rotation succeeds. (FILE.end written but the file not renamed is a
      // rotation cut short, which open and verify-audit take.)
      if (!this.rotationFailing) {
        this.options.onRotateFailed?.(new CertifierError('FILE_ERROR', `the audit log ${this.path} cannot be rotated: ${endPath(this.path)} cannot be written (${met(e)}); it goes on in its file, and each write tries again`, { cause: e }));
      }
      this.rotationFailing = true;
      return;
    }
    this.rotationFailing = false;
    let next: FileHandle | undefined;
    try {
      await fs.rename(this.path, segment);
      next = await fs.open(this.path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC, 0o600);
      await syncDir(dirname(this.path));
      const file = fileOf(next);
      await this.fh.close().catch(() => {});
      [this.fh, this.file] = [next, file];
    } catch (e) {
      // The log is broken from here on: the new file is not kept open (close() closes the old;
      // nothing after the swap above can throw).
      await next?.close().catch(() => {});
      if (this.broken === undefined) this.options.onBroken?.(this.failure(e as Error), false);
      this.broken ??= e as Error;
      return;
    }
    const firstSeq = this.fileFirst;
    this.size = 0;
    this.fileFirst = this.written + 1;
    this.options.onRotate?.({ path: segment, firstSeq, lastSeq: this.written });
  }

  /**
   * After a failed write: cuts off what it wrote of its lines (a full disk takes part of a write),
   * so the file ends with a whole line. Whether it does; never throws.
   */
  private async cutTorn(): Promise<boolean> {
    try {
      const { size } = await this.fh.stat();
      // Smaller: cut short by someone else, which the next write's checks report.
      if (size < this.size) return false;
      if (size > this.size) {
        await this.fh.truncate(this.size);
        await this.fh.datasync();
      }
      return true;
    } catch {
      return false;
    }
  }

  private failure(cause: Error): CertifierError {
    return new CertifierError('FILE_ERROR', `the audit log ${this.path} cannot be written (${met(cause)}); no further decisions can be recorded`, { cause });
  }
}

/**
 * What a failed write of the log or of FILE.end met, in lib/files' words (describeErrno): "the disk
 * is full". lib/files' own error (writeFileAtomic's "cannot write PATH: why") is said by its cause,
 * the path being named by the message it goes into.
 */
function met(e: unknown): string {
  return describeErrno(e instanceof CertifierError && e.cause !== undefined ? e.cause : e);
}
