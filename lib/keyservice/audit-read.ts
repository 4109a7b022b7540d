// Reading the audit log's files without changing them: a whole file verified line by line in
// bounded memory (verifyAudit, verifySegment), the chain's end read from the last two lines
// (scanEnd, for a log about to be extended), and what rotation leaves beside a log: its segments
// PATH.FIRST-LAST and PATH.end, where the chain stood at the last rotation.

import { constants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { CertifierError } from '../errors/index.ts';
import { describeErrno, inDir, noDirectory, readFileLimited } from '../files/index.ts';
import { AUDIT_GENESIS, checkLine, HASH_RE, MAX_LINE_BYTES, startOf, startProblem } from './audit-line.ts';

export type AuditVerification = { ok: true; lines: number } | { ok: false; line: number; problem: string };

const TORN = 'the last line is incomplete (no newline): a write cut short by a crash or power loss, or data appended by something else';

/**
 * What a file of the chain holds when it verifies: its line count, the seq and hash of its last
 * line, and where it starts (seq 1 after the genesis hash, or, for a segment that continues a
 * rotated one, the first line's seq and the hash it chains to).
 */
export interface AuditSegment {
  lines: number;
  firstSeq: number;
  startPrev: string;
  lastSeq: number;
  last: string;
}

type Failure = { ok: false; line: number; problem: string; tornAt?: number };
type ScanResult = ({ ok: true } & AuditSegment) | Failure;

/**
 * Reads the whole file in bounded memory. Its first line must be seq 1 after the genesis hash,
 * unless `continuing`: then it may continue an earlier segment, from any seq and hash it names.
 */
export async function scan(path: string, continuing = false, seen?: (seq: number, hash: string, line: number) => void): Promise<ScanResult> {
  let fh: FileHandle;
  try {
    // Without blocking: a FIFO given (or put in a log's place) is refused below, not waited on.
    fh = await fs.open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    // A shell glob that matched nothing arrives as itself: a log never rotated has no segments.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && /[*?[]/.test(path)) {
      // The segments' glob (F.[0-9]*): a log rotated before has F.end beside it.
      const log = path.replace(/\.\[0-9\]\*$/, '');
      const rotated = log !== path && (await fs.stat(endPath(log)).then(() => true, () => false));
      const why = rotated
        ? `the log was rotated (${endPath(log)} is there) and its segments moved away: give the log alone with --continuing, or the archived segments before it`
        : 'a log that was never rotated has no segments: give the log alone';
      throw new CertifierError('FILE_ERROR', `no file matches ${path} (${why})`, { cause: e });
    }
    throw new CertifierError('FILE_ERROR', `cannot read the audit log ${path}: ${describeErrno(e)}`, { cause: e });
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    // A directory is most likely the lock beside the log (F.lock/) caught by a glob meant for segments.
    throw st.isDirectory() ? directoryGiven(path, 'give the segments as F.[0-9]*') : new CertifierError('FILE_ERROR', `the audit log ${path} is not a regular file`);
  }
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let line = 0;
  let prev = AUDIT_GENESIS;
  let firstSeq = 1;
  let startPrev = AUDIT_GENESIS;
  let complete = 0; // bytes of the lines checked so far
  let pending = Buffer.alloc(0);
  const buf = Buffer.alloc(64 * 1024);
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      pending = Buffer.concat([pending, buf.subarray(0, bytesRead)]);
      let nl: number;
      while ((nl = pending.indexOf(0x0a)) >= 0) {
        line++;
        let text: string;
        try {
          text = decoder.decode(pending.subarray(0, nl));
        } catch {
          return { ok: false, line, problem: 'not UTF-8' };
        }
        if (line === 1 && continuing) {
          const start = startOf(text);
          const problem = startProblem(start);
          if (problem) return { ok: false, line, problem };
          if (start) ({ seq: firstSeq, prev: startPrev } = start);
          prev = startPrev;
        }
        const r = checkLine(text, firstSeq + line - 1, prev);
        if ('problem' in r) return { ok: false, line, problem: r.problem };
        prev = r.hash;
        seen?.(firstSeq + line - 1, prev, line);
        complete += nl + 1;
        pending = pending.subarray(nl + 1);
      }
      if (pending.length > MAX_LINE_BYTES) return { ok: false, line: line + 1, problem: `longer than ${MAX_LINE_BYTES} bytes` };
    }
  } finally {
    await fh.close();
  }
  if (pending.length > 0) return { ok: false, line: line + 1, problem: TORN, tornAt: complete };
  return { ok: true, lines: line, firstSeq, startPrev, lastSeq: firstSeq + line - 1, last: prev };
}

/**
 * The chain's end from the last two lines alone, which is all a log being extended needs: its
 * last seq and hash, a whole last line (no torn write), and the line before it chaining to it.
 * Reading the whole chain instead made a key-server's start grow with its history (a year of
 * requests: minutes). Anything unexpected at the end, or a line longer than the window, falls back
 * to the full scan, which names the line. Lines before the last two are verify-audit's to check.
 */
type EndResult = { ok: true; lastSeq: number; last: string } | Failure;

export async function scanEnd(path: string): Promise<EndResult> {
  const fast = await readEnd(path).catch(() => undefined);
  return fast ?? scan(path, true);
}

async function readEnd(path: string): Promise<EndResult | undefined> {
  // Without blocking: a FIFO in a segment's place is left to the full scan, which refuses it.
  const fh = await fs.open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  let window: Buffer;
  let start: number;
  try {
    const st = await fh.stat();
    if (!st.isFile()) return undefined;
    const { size } = st;
    if (size === 0) return { ok: true, lastSeq: 0, last: AUDIT_GENESIS };
    start = Math.max(0, size - 2 * (MAX_LINE_BYTES + 1));
    window = Buffer.alloc(size - start);
    const { bytesRead } = await fh.read(window, 0, window.length, start);
    if (bytesRead !== window.length) return undefined;
  } finally {
    await fh.close();
  }
  if (window[window.length - 1] !== 0x0a) return undefined;
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  // The last line, then the one before: each must begin inside the window (after a newline, or at
  // the start of the file).
  const lineBefore = (end: number): string | undefined => {
    const nl = window.lastIndexOf(0x0a, end - 1);
    if (nl < 0 && start > 0) return undefined;
    return decoder.decode(window.subarray(nl + 1, end));
  };
  const lastEnd = window.length - 1;
  const lastText = lineBefore(lastEnd);
  if (lastText === undefined) return undefined;
  const claimed = JSON.parse(lastText) as { seq?: unknown; prev?: unknown };
  if (!Number.isInteger(claimed.seq) || (claimed.seq as number) < 1 || typeof claimed.prev !== 'string') return undefined;
  const seq = claimed.seq as number;
  const lastStart = lastEnd - Buffer.byteLength(lastText);
  let prev = AUDIT_GENESIS;
  if (seq === 1) {
    if (start + lastStart !== 0) return undefined; // line 1 must be the file's first line
  } else if (start + lastStart === 0) {
    prev = claimed.prev; // the only line of a segment that continues a rotated one
  } else {
    if (lastStart === 0) return undefined;
    const beforeText = lineBefore(lastStart - 1);
    if (beforeText === undefined) return undefined;
    const before = JSON.parse(beforeText) as { prev?: unknown };
    if (typeof before.prev !== 'string') return undefined;
    const b = checkLine(beforeText, seq - 1, before.prev);
    if ('problem' in b) return undefined;
    prev = b.hash;
  }
  const r = checkLine(lastText, seq, prev);
  return 'problem' in r ? undefined : { ok: true, lastSeq: seq, last: r.hash };
}

/**
 * FILE_ERROR unless `dir`, where the audit log `given` goes, is a directory that is there: a log is
 * made only in one, so a mistyped --audit never starts a new chain where no one looks (key-server
 * makes --data, the default's directory, itself).
 */
export async function refuseMissingAuditDir(given: string, dir = dirname(given)): Promise<void> {
  if (await fs.stat(dir).then((st) => st.isDirectory(), () => false)) return;
  throw new CertifierError('FILE_ERROR', `cannot open the audit log ${given}: ${noDirectory(dir)}`, { details: { path: given } });
}

/** Verifies a log without changing it: the number of lines, or the first bad line (1-based). */
export async function verifyAudit(path: string): Promise<AuditVerification> {
  const r = await scan(path);
  return r.ok ? { ok: true, lines: r.lines } : { ok: false, line: r.line, problem: r.problem };
}

/**
 * Verifies one file of a rotated chain: as verifyAudit, but its first line may continue an
 * earlier segment (see AuditSegment); the caller checks that it links to the one before.
 * `seen` is told each line's seq, hash and number once the line verifies.
 */
export async function verifySegment(path: string, seen?: (seq: number, hash: string, line: number) => void): Promise<({ ok: true } & AuditSegment) | { ok: false; line: number; problem: string; torn: boolean }> {
  const r = await scan(path, true, seen);
  return r.ok ? r : { ok: false, line: r.line, problem: r.problem, torn: r.tornAt !== undefined };
}

/** FILE_ERROR for a directory given where a log goes (a directory's links are its entries, not names of a log). */
export function directoryGiven(path: string, then: string): CertifierError {
  return new CertifierError('FILE_ERROR', `${path} is a directory, not an audit log${path.endsWith('.lock') ? ' (the lock a key-server keeps beside its log)' : ''}: ${then}`);
}

export function notVerified(path: string, r: { line: number; problem: string }, then: string): CertifierError {
  return new CertifierError('INTEGRITY', `the audit log ${path} does not verify at line ${r.line}: ${r.problem}; ${then}`, { details: { line: r.line, problem: r.problem } });
}

/** PATH.end: where the chain stood at the last rotation, so that moving every segment away cannot restart it. */
export const endPath = (path: string) => `${path}.end`;

/** PATH.end, named for a message. */
export const endSource = (path: string) => `${endPath(path)} (where the chain stood at its last rotation)`;

export const missingSeqs = (from: number, to: number) => (from === to ? `seq ${from} is missing` : `seq ${from} to ${to} are missing`);

/** What is wrong with a log (or the first file given) that starts after the seq that follows `source`'s. */
export function startsAfter(firstSeq: number, seq: number, source: string): string {
  return `it starts at seq ${firstSeq}, but ${source} says the chain reached seq ${seq}: ${missingSeqs(seq + 1, firstSeq - 1)} (its first lines cut away?)`;
}

/**
 * The chain's end recorded at the last rotation, if any: INTEGRITY if the record is damaged,
 * FILE_ERROR if it cannot be read (a directory, a FIFO, which is refused without waiting on it).
 */
export async function recordedEnd(path: string, then = 'refusing to restart the chain'): Promise<{ seq: number; hash: string } | undefined> {
  const damaged = () => new CertifierError('INTEGRITY', `${endPath(path)} (where the audit chain stood at its last rotation) is damaged; ${then}`);
  let bytes: Uint8Array;
  try {
    bytes = await readFileLimited(endPath(path), 4096, { regularOnly: true });
  } catch (e) {
    if (((e as CertifierError).cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return undefined;
    throw (e as CertifierError).code === 'INVALID_INPUT' ? damaged() : e; // larger than any record
  }
  let end: unknown;
  try {
    end = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    end = undefined;
  }
  const { seq, hash } = (end ?? {}) as { seq?: unknown; hash?: unknown };
  if (!Number.isSafeInteger(seq) || (seq as number) < 1 || typeof hash !== 'string' || !HASH_RE.test(hash)) throw damaged();
  return { seq: seq as number, hash };
}

const SEQ_DIGITS = 12;

/** PATH.FIRST-LAST, zero-padded so that the segments of one log sort in chain order. */
export function segmentPath(path: string, firstSeq: number, lastSeq: number): string {
  return `${path}.${String(firstSeq).padStart(SEQ_DIGITS, '0')}-${String(lastSeq).padStart(SEQ_DIGITS, '0')}`;
}

const SEGMENT_RE = /^(.+)\.(\d{12})-(\d{12})$/;

/**
 * The seqs a segment's name (PATH.FIRST-LAST) says it holds, and the log it was rotated from; undefined for any other name.
 * The log is named in the segment's directory as the kernel reads it (inDir): join() would put the
 * log of "link/../F.1-2" beside the link.
 */
export function segmentRange(path: string): { log: string; firstSeq: number; lastSeq: number } | undefined {
  const m = SEGMENT_RE.exec(basename(path));
  return m ? { log: inDir(dirname(path), m[1]!), firstSeq: Number(m[2]), lastSeq: Number(m[3]) } : undefined;
}

/** The rotated segments of PATH beside it, in chain order (by last seq). */
export async function segmentsOf(path: string): Promise<{ path: string; firstSeq: number; lastSeq: number }[]> {
  const dir = dirname(path);
  const base = basename(path);
  const found: { path: string; firstSeq: number; lastSeq: number }[] = [];
  for (const name of await fs.readdir(dir)) {
    // Named in the directory read (inDir), not by join(): also one named through "link/..".
    const r = segmentRange(inDir(dir, name));
    if (r && basename(r.log) === base) found.push({ path: inDir(dir, name), firstSeq: r.firstSeq, lastSeq: r.lastSeq });
  }
  return found.sort((a, b) => a.lastSeq - b.lastSeq);
}

/**
 * What is wrong with a rotated segment whose first line says `firstSeq` (undefined: it says none),
 * against the seq its name (PATH.FIRST-LAST) says it begins with; undefined when they agree.
 * verify-audit asks it of every segment, a start of the segments it reads.
 */
export function segmentStartProblem(named: { firstSeq: number }, firstSeq: number | undefined): string | undefined {
  if (firstSeq === undefined) return 'it does not say its seq and prev';
  return firstSeq === named.firstSeq ? undefined : `it starts at seq ${firstSeq}, not the ${named.firstSeq} its name says`;
}

/** The rotated segment of PATH with the highest last seq, if any is beside it. */
export async function latestSegment(path: string): Promise<{ path: string; firstSeq: number; lastSeq: number } | undefined> {
  return (await segmentsOf(path)).at(-1);
}

/**
 * Why the segments beside PATH that end after `end` (FILE.end's record) do not chain from it, or
 * undefined when they do: the first begins at the next seq after its hash, and each begins where
 * the one before ends, with its hash. A key-server of an earlier version rotates without writing
 * FILE.end, so going back to one, then forward, leaves such segments; the first of them holds
 * the record itself when a rotation was cut short after writing FILE.end. Only each one's first
 * line and end (and that record) are read; the rest is verify-audit's to check.
 */
export async function segmentsAfterProblem(path: string, end: { seq: number; hash: string }): Promise<string | undefined> {
  let before: { seq: number; hash: string; what: string } = { ...end, what: endPath(path) };
  for (const segment of (await segmentsOf(path)).filter((s) => s.lastSeq > end.seq)) {
    const start = await startOfFile(segment.path);
    const tail = await scanEnd(segment.path);
    if (!start || !tail.ok || tail.lastSeq !== segment.lastSeq) return `${segment.path} does not verify, or does not hold the seqs its name says (verify-audit names what is wrong)`;
    const named = segmentStartProblem(segment, start.seq);
    if (named) return `${segment.path}: ${named}`;
    if (start.seq > before.seq + 1) return `${missingSeqs(before.seq + 1, start.seq - 1)} after ${before.what} (a segment moved away? put it back beside the log)`;
    // The first may hold the record itself: a rotation cut short after writing FILE.end (the log
    // not renamed), served on and rotated by such a key-server, as verify-audit accepts it.
    const holdsRecord = before.what === endPath(path) && start.seq <= before.seq && (await hashAt(segment.path, before.seq)) === before.hash;
    if (!holdsRecord && (start.seq <= before.seq || start.prev !== before.hash)) return `${segment.path} does not continue ${before.what}, which ends at seq ${before.seq}`;
    before = { seq: tail.lastSeq, hash: tail.last, what: segment.path };
  }
  return undefined;
}

/**
 * The seq and prev of a log's first line (undefined when it has none that says). FILE_ERROR naming
 * it for a file that cannot be read: a segment beside the log may be a directory, a link to one
 * archived away, or a FIFO (refused without waiting on it).
 */
export async function startOfFile(path: string): Promise<{ seq: number; prev: string } | undefined> {
  let fh: FileHandle;
  try {
    fh = await fs.open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new CertifierError('FILE_ERROR', `cannot read the audit log ${path}: ${describeErrno(e)}`, { cause: e });
  }
  try {
    if (!(await fh.stat()).isFile()) throw new CertifierError('FILE_ERROR', `the audit log ${path} is not a regular file`);
    const buf = Buffer.alloc(MAX_LINE_BYTES + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const nl = buf.subarray(0, bytesRead).indexOf(0x0a);
    return nl < 0 ? undefined : startOf(buf.subarray(0, nl).toString('utf8'));
  } finally {
    await fh.close();
  }
}

/**
 * The hash of the line of `seq`, found by bisecting the file on its lines' seqs (a few reads
 * however long the log is), or undefined when no whole, well-formed line of that seq is found.
 */
export async function hashAt(path: string, seq: number): Promise<string | undefined> {
  const fh = await fs.open(path, 'r');
  try {
    const { size } = await fh.stat();
    const window = Buffer.alloc(2 * (MAX_LINE_BYTES + 1));
    // The first whole line that starts at or after `at`, and where the one after it starts.
    const lineFrom = async (at: number) => {
      const from = Math.max(0, at - 1);
      const { bytesRead } = await fh.read(window, 0, window.length, from);
      const got = window.subarray(0, bytesRead);
      const begin = at === 0 ? 0 : got.indexOf(0x0a) + 1;
      const nl = begin === 0 && at > 0 ? -1 : got.indexOf(0x0a, begin);
      return nl < 0 ? undefined : { text: got.subarray(begin, nl).toString('utf8'), next: from + nl + 1 };
    };
    // Every line that starts before lo has a lower seq.
    let [lo, hi] = [0, size];
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const l = await lineFrom(mid);
      if (l && (startOf(l.text)?.seq ?? seq) < seq) lo = l.next;
      else hi = mid;
    }
    const l = await lineFrom(lo);
    const claimed = l && startOf(l.text);
    const r = claimed?.seq === seq ? checkLine(l!.text, seq, claimed.prev) : undefined;
    return r && 'hash' in r ? r.hash : undefined;
  } finally {
    await fh.close();
  }
}
