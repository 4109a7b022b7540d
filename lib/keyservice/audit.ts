// The key-server's audit log: one JSON line per request decision, hash-chained so that an edited,
// removed, reordered or inserted line is detected by verifyAudit (key-server verify-audit).
//
// A line is the canonical JSON of the entry (keys in FIELDS order, absent fields omitted, and what
// would not show as itself written \uXXXX, as visibleJson does for every log) with "prev" and
// "hash" appended, where hash = hex SHA-256 of the UTF-8 bytes of prev followed by that JSON as
// written, and prev is the previous line's hash (64 zeros for line 1). Lines written before names
// were escaped (raw, hashed raw) verify too. Anyone can check it with any JSON tool and sha256sum.
// The chain has no key: whoever can write the file can recompute it after an edit, or cut its
// last lines, and it still verifies. Its end (writtenEnd, which
// key-server logs, and verify-audit prints), kept elsewhere, is what finds that (--expect).
//
// Durability: lines are chained in call order and written in that order on an O_APPEND | O_DSYNC
// descriptor, so a write returns only once its data (and the file size) is on disk, as write +
// fdatasync would, in one system call. append() resolves only after the write that holds its
// line. Writes are group-committed without any added delay: the lines appended while one write
// runs go out together in the next, so under load the cost is amortized, and a decision is never
// reported before it is on disk. A failed write poisons the log (every later append fails)
// rather than leaving a gap.
//
// One process at a time: an open log holds a lock (lock.ts, in PATH.lock/), so two key-servers
// given one --audit cannot fork the chain. A write cut short by a crash leaves an incomplete last
// line, never acknowledged; open refuses the log until repairAuditTail (key-server repair-audit)
// moves that line aside. open checks only the chain's end (scanEnd); verifyAudit checks it all.

import { constants, fstatSync, promises as fs, statSync, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CertifierError } from '../errors/index.ts';
import { sha256HexOfText } from '../crypto/index.ts';
import { describeErrno, readFileLimited, realFilePath, syncDir, writeFileAtomic } from '../files/index.ts';
import { visibleJson } from '../wire/index.ts';
import { holdLock } from './lock.ts';

export interface AuditEntry {
  /** RFC 3339; default now. */
  time?: string;
  conn?: string;
  peerSerial?: string;
  measurement?: string;
  role?: string;
  action: string;
  resource?: string;
  /** The version acted on; for a delete, the one asked for (0 = all); for a refusal, the one asked for. */
  version?: number;
  /** A delete's number of versions removed. */
  deleted?: number;
  /** challenge: an auth-challenge nonce was issued, and nothing else done. */
  decision: 'allow' | 'deny' | 'challenge';
  /** The error code of a refusal. */
  code?: string;
}

export interface AuditRecord extends AuditEntry {
  seq: number;
  time: string;
  prev: string;
  hash: string;
}

export type AuditVerification = { ok: true; lines: number } | { ok: false; line: number; problem: string };

const FIELDS = ['seq', 'time', 'conn', 'peerSerial', 'measurement', 'role', 'action', 'resource', 'version', 'deleted', 'decision', 'code'] as const;
const OPTIONAL_TEXT = ['conn', 'peerSerial', 'measurement', 'role', 'resource', 'code'] as const;
export const AUDIT_GENESIS = '0'.repeat(64);
const MAX_FIELD = 4096;
const MAX_LINE_BYTES = 64 * 1024;
const HASH_RE = /^[0-9a-f]{64}$/;
const TORN = 'the last line is incomplete (no newline): a write cut short by a crash or power loss, or data appended by something else';

/** The canonical JSON of an entry's fields with its seq, every character raw (a line may write some \uXXXX: unescapeShown). */
function canonical(r: Record<string, unknown>): string {
  return JSON.stringify(canonicalFields(r));
}

/** The entry's known fields in FIELDS order, absent ones left out; seq and time when given replace the entry's. */
function canonicalFields(r: Record<string, unknown>, seq?: number, time?: string): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const k of FIELDS) {
    const v = k === 'seq' && seq !== undefined ? seq : k === 'time' && time !== undefined ? time : r[k];
    if (v !== undefined) o[k] = v;
  }
  return o;
}

export function auditHash(prev: string, canonicalJson: string): string {
  return sha256HexOfText(prev, canonicalJson);
}

/**
 * `json` with the \uXXXX escapes of what JSON.stringify writes raw (U+007F and above; a pair of
 * surrogates as two escapes) decoded: the canonical JSON of a line written with visibleJson.
 * Other escapes (\\, \", a lone surrogate, a control) stay as JSON.stringify writes them.
 */
function unescapeShown(json: string): string {
  return json.replace(/\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})|\\u([0-9a-f]{4})|\\./g, (m: string, hi?: string, lo?: string, u?: string) => {
    if (hi && lo) return String.fromCharCode(parseInt(hi, 16), parseInt(lo, 16));
    const c = u ? parseInt(u, 16) : -1;
    return c >= 0x7f && (c < 0xd800 || c > 0xdfff) ? String.fromCharCode(c) : m;
  });
}

function lineOf(canon: string, prev: string, hash: string): string {
  return `${canon.slice(0, -1)},"prev":"${prev}","hash":"${hash}"}\n`;
}

/** Why an entry's fields are malformed (as written by us or read back), or undefined. */
function fieldProblem(r: Record<string, unknown>): string | undefined {
  const text = (k: string, required: boolean) => {
    const v = r[k];
    if (v === undefined) return required ? `${k} is missing` : undefined;
    if (typeof v !== 'string') return `${k} is not a string`;
    if (v.length > MAX_FIELD) return `${k} is longer than ${MAX_FIELD} characters`;
    if (required && v.length === 0) return `${k} is empty`;
    return undefined;
  };
  return text('time', true) ?? text('action', true) ?? OPTIONAL_TEXT.map((k) => text(k, false)).find((p) => p !== undefined) ??
    (['version', 'deleted'] as const).map((k) => (r[k] !== undefined && !(Number.isInteger(r[k]) && (r[k] as number) >= 0) ? `${k} is not a non-negative integer` : undefined)).find((p) => p !== undefined) ??
    (r.decision !== 'allow' && r.decision !== 'deny' && r.decision !== 'challenge' ? 'decision is not "allow", "deny" or "challenge"' : undefined);
}

/** Checks one line against the chain so far; returns its hash, or the problem. */
function checkLine(text: string, seq: number, prev: string): { hash: string } | { problem: string } {
  let r: unknown;
  try {
    r = JSON.parse(text);
  } catch {
    return { problem: 'not JSON' };
  }
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return { problem: 'not a JSON object' };
  const o = r as Record<string, unknown>;
  const unknown = Object.keys(o).find((k) => k !== 'prev' && k !== 'hash' && !(FIELDS as readonly string[]).includes(k));
  if (unknown !== undefined) return { problem: `unknown field "${unknown}"` };
  if (o.seq !== seq) return { problem: `seq is ${JSON.stringify(o.seq)}, expected ${seq} (a line was removed, reordered or inserted)` };
  if (typeof o.prev !== 'string' || !HASH_RE.test(o.prev) || typeof o.hash !== 'string' || !HASH_RE.test(o.hash)) return { problem: 'prev or hash is not 64 lowercase hex digits' };
  const fp = fieldProblem(o);
  if (fp) return { problem: fp };
  if (o.prev !== prev) return { problem: 'prev is not the hash of the line before (a line was removed, reordered or replaced)' };
  // The hash covers the entry as written: the canonical JSON, in which characters that would not
  // show as themselves are written \uXXXX (visibleJson), as lines written before were not.
  const suffix = `,"prev":"${prev}","hash":"${o.hash}"}`;
  const written = text.endsWith(suffix) ? `${text.slice(0, -suffix.length)}}` : undefined;
  const canon = canonical(o);
  const inForm = written !== undefined && unescapeShown(written) === canon;
  if (auditHash(prev, inForm ? written : canon) !== o.hash) return { problem: 'hash does not match the line\'s contents (edited)' };
  if (!inForm) return { problem: 'not in canonical form (edited)' };
  return { hash: o.hash };
}

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
async function scan(path: string, continuing = false, seen?: (seq: number, hash: string, line: number) => void): Promise<ScanResult> {
  let fh: FileHandle;
  try {
    // Without blocking: a FIFO given (or put in a log's place) is refused below, not waited on.
    fh = await fs.open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    // A shell glob that matched nothing arrives as itself: a log never rotated has no segments.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && /[*?[]/.test(path)) {
      throw new CertifierError('FILE_ERROR', `no file matches ${path} (a log that was never rotated has no segments: give the log alone)`, { cause: e });
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

/** The seq and prev a line claims, when it has them (checkLine judges the rest). */
function startOf(text: string): { seq: number; prev: string } | undefined {
  try {
    const o = JSON.parse(text) as { seq?: unknown; prev?: unknown };
    return Number.isInteger(o.seq) && (o.seq as number) >= 1 && typeof o.prev === 'string' && HASH_RE.test(o.prev) ? { seq: o.seq as number, prev: o.prev } : undefined;
  } catch {
    return undefined;
  }
}

/** What is wrong with a first line's seq and prev that a segment's could not make right: seq 1 begins the chain. */
function startProblem(start: { seq: number; prev: string } | undefined): string | undefined {
  return start?.seq === 1 && start.prev !== AUDIT_GENESIS ? 'seq 1 begins a chain, so its prev must be 64 zeros, but it names a line before it (prev edited)' : undefined;
}

/**
 * The chain's end from the last two lines alone, which is all a log being extended needs: its
 * last seq and hash, a whole last line (no torn write), and the line before it chaining to it.
 * Reading the whole chain instead made a key-server's start grow with its history (a year of
 * requests: minutes). Anything unexpected at the end, or a line longer than the window, falls back
 * to the full scan, which names the line. Lines before the last two are verify-audit's to check.
 */
type EndResult = { ok: true; lastSeq: number; last: string } | Failure;

async function scanEnd(path: string): Promise<EndResult> {
  const fast = await readEnd(path).catch(() => undefined);
  return fast ?? scan(path, true);
}

async function readEnd(path: string): Promise<EndResult | undefined> {
  const fh = await fs.open(path, 'r');
  let window: Buffer;
  let start: number;
  try {
    const { size } = await fh.stat();
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
  throw new CertifierError('FILE_ERROR', `cannot open the audit log ${given}: no directory ${dir} (make it first, or correct the path)`, { details: { path: given } });
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
export async function verifySegment(path: string, seen?: (seq: number, hash: string, line: number) => void): Promise<({ ok: true } & AuditSegment) | { ok: false; line: number; problem: string }> {
  const r = await scan(path, true, seen);
  return r.ok ? r : { ok: false, line: r.line, problem: r.problem };
}

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
    throw new CertifierError('USAGE', `${path} is a rotated segment of an audit log (F.FIRST-LAST): segments are never written after rotation, so an incomplete line in one is damage or tampering, not a write cut short; repair-audit repairs only the log itself (verify-audit names what is wrong)`);
  }
  // A log that is not there has nothing to repair, and gets no lock directory beside it.
  await fs.stat(path).catch((e: Error) => {
    throw new CertifierError('FILE_ERROR', `cannot read the audit log ${path}: ${describeErrno(e)}`, { cause: e });
  });
  const release = await lockAudit(path, `the audit log ${path} is in use by a running key-server: stop it before repairing the log`);
  try {
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
  } finally {
    await release();
  }
}

/** FILE_ERROR for a directory given where a log goes (a directory's links are its entries, not names of a log). */
function directoryGiven(path: string, then: string): CertifierError {
  return new CertifierError('FILE_ERROR', `${path} is a directory, not an audit log${path.endsWith('.lock') ? ' (the lock a key-server keeps beside its log)' : ''}: ${then}`);
}

/** INTEGRITY: the log's first line does not go on from where `what` says the chain stood. */
function doesNotContinue(path: string, start: { seq: number; prev: string }, what: string, seq: number, hash: string): CertifierError {
  return new CertifierError('INTEGRITY', `the audit log ${path} does not continue ${what} (which ends at seq ${seq}): it starts at seq ${start.seq}${start.seq === seq + 1 && start.prev !== hash ? ' after another hash' : ''}; refusing to extend it (another log in its place?)`);
}

function notVerified(path: string, r: { line: number; problem: string }, then: string): CertifierError {
  return new CertifierError('INTEGRITY', `the audit log ${path} does not verify at line ${r.line}: ${r.problem}; ${then}`, { details: { line: r.line, problem: r.problem } });
}

/**
 * The lock that keeps a second process (another replica given the same --audit) off the log:
 * the one-writer lock of a log, beside the file itself: two paths to one file (a symbolic link,
 * a linked directory) meet at the same lock.
 */
async function lockAudit(path: string, inUse = `the audit log ${path} is in use by another process: give each key-server its own --audit`): Promise<() => Promise<void>> {
  const real = await realFilePath(path);
  // A second name for the file (a hard link) would be a second lock: refused, not followed.
  const st = await fs.stat(real).catch(() => undefined);
  if (st?.isDirectory()) throw directoryGiven(path, 'give the log file itself');
  if (st && !st.isFile()) throw new CertifierError('FILE_ERROR', `the audit log ${path} is not a regular file`);
  if (st && st.nlink > 1) throw new CertifierError('FILE_ERROR', `the audit log ${path} has ${st.nlink} hard links: give each log one name, so that one lock keeps one writer`);
  return holdLock(`${real}.lock`, inUse);
}


function statAt(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
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

export interface AuditLogOptions {
  /** Starts a new file once the current one holds this many bytes; the old one is kept as a segment. */
  rotateBytes?: number;
  /** Told of each rotation (for the server's log). */
  onRotate?: (segment: { path: string; firstSeq: number; lastSeq: number }) => void;
  /** Told once, when the log breaks: from then on every append fails (for the server's log). */
  onBroken?: (error: CertifierError) => void;
}

const SEQ_DIGITS = 12;

/** PATH.FIRST-LAST, zero-padded so that the segments of one log sort in chain order. */
function segmentPath(path: string, firstSeq: number, lastSeq: number): string {
  return `${path}.${String(firstSeq).padStart(SEQ_DIGITS, '0')}-${String(lastSeq).padStart(SEQ_DIGITS, '0')}`;
}

const SEGMENT_RE = /^(.+)\.(\d{12})-(\d{12})$/;

/** The seqs a segment's name (PATH.FIRST-LAST) says it holds, and the log it was rotated from; undefined for any other name. */
export function segmentRange(path: string): { log: string; firstSeq: number; lastSeq: number } | undefined {
  const m = SEGMENT_RE.exec(basename(path));
  return m ? { log: join(dirname(path), m[1]!), firstSeq: Number(m[2]), lastSeq: Number(m[3]) } : undefined;
}

/** The rotated segment of PATH with the highest last seq, if any is beside it. */
async function latestSegment(path: string): Promise<{ path: string; lastSeq: number } | undefined> {
  const dir = dirname(path);
  const base = basename(path);
  let latest: { path: string; lastSeq: number } | undefined;
  for (const name of await fs.readdir(dir)) {
    const r = segmentRange(join(dir, name));
    if (r && basename(r.log) === base && (!latest || r.lastSeq > latest.lastSeq)) latest = { path: join(dir, name), lastSeq: r.lastSeq };
  }
  return latest;
}

/** The seq and prev of a log's first line (undefined when it has none that says). */
async function startOfFile(path: string): Promise<{ seq: number; prev: string } | undefined> {
  const fh = await fs.open(path, 'r');
  try {
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
async function hashAt(path: string, seq: number): Promise<string | undefined> {
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
  private closed = false;

  /** Bytes in the current file, the seq of the last line written, and the seq of the file's first. */
  private size = 0;
  /** This open made the file (a log that was missing). */
  private created = false;
  private written: number;
  /** The hash of the last line written (not merely appended). */
  private writtenHash: string;
  private fileFirst: number;

  private constructor(
    readonly path: string, private fh: FileHandle, private readonly release: () => Promise<void>,
    private seq: number, private last: string, private readonly options: AuditLogOptions,
  ) {
    this.written = seq;
    this.writtenHash = last;
    this.fileFirst = seq + 1;
  }

  /**
   * Opens (creating, 0600) a log and continues its chain; INTEGRITY naming the line if its end
   * does not verify. An empty or missing log continues the latest rotated segment beside it.
   */
  static async open(given: string, options: AuditLogOptions = {}): Promise<AuditLog> {
    // The log is worked on where it really is: a symbolic link given as --audit would otherwise
    // be renamed into a segment at the first rotation, leaving an unlocked file at its name.
    const path = await realFilePath(given);
    await refuseMissingAuditDir(given, dirname(path));
    let fh: FileHandle;
    let created = false;
    const release = await lockAudit(path);
    try {
      created = !(await fs.stat(path).then(() => true, () => false));
      fh = await fs.open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC, 0o600);
    } catch (e) {
      await release();
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
      const end = await recordedEnd(path);
      const segment = await latestSegment(path);
      const fromSegment = segment !== undefined && (!end || segment.lastSeq >= end.seq);
      if (fromSegment) {
        const s = await scanEnd(segment.path);
        if (!s.ok) throw notVerified(segment.path, s, `refusing to continue it in ${path}`);
        if (s.lastSeq !== segment.lastSeq) throw new CertifierError('INTEGRITY', `the audit segment ${segment.path} ends at seq ${s.lastSeq}, not the ${segment.lastSeq} its name says`);
        // FILE.end is written before each rotation's rename: the newest segment ends where it says,
        // with its hash. One ending elsewhere, or another way, is not this chain's (copied in from
        // another server's archive under the same name), and verify-audit refuses it too.
        if (end && (s.lastSeq !== end.seq || s.last !== end.hash)) {
          throw new CertifierError('INTEGRITY', `the audit segment ${segment.path} ends at seq ${s.lastSeq} with hash ${s.last}, but ${endPath(path)} says the last rotation left the chain at seq ${end.seq} with hash ${end.hash}: the segment is not this chain's (copied in from elsewhere?); refusing to continue it`);
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
      const log = new AuditLog(path, fh, release, seq, last, options);
      log.size = st.size;
      log.created = created;
      if (st.size > 0) log.fileFirst = start?.seq ?? 1;
      return log;
    } catch (e) {
      await fh.close();
      await release();
      throw e;
    }
  }

  /**
   * Throws the log's failure if it can no longer record anything: a caller about to carry out a
   * decision (a store, a delete) asks first, so that nothing takes effect unrecorded.
   */
  checkUsable(): void {
    if (this.closed) throw new CertifierError('INTERNAL', 'the audit log is closed');
    if (this.broken) throw this.failure(this.broken);
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
    if (this.broken) return Promise.reject(this.failure(this.broken));
    const kept = canonicalFields(entry as unknown as Record<string, unknown>, this.seq + 1, entry.time ?? new Date().toISOString());
    const problem = fieldProblem(kept);
    if (problem) return Promise.reject(new CertifierError('INVALID_INPUT', `audit entry: ${problem}`));
    // seq, prev and hash are fixed now, synchronously, so lines are chained in call order.
    const canon = visibleJson(kept);
    const prev = this.last;
    const hash = auditHash(prev, canon);
    this.seq++;
    this.last = hash;
    const bytes = Buffer.from(lineOf(canon, prev, hash), 'utf8');
    const durable = new Promise<void>((resolve, reject) => this.pending.push({ bytes, hash, resolve, reject }));
    this.flushing ??= this.flush();
    return durable.then(() => ({ ...kept, prev, hash }) as AuditRecord);
  }

  /** Waits for every append, then closes the file. */
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
        while (off < bytes.length) off += (await this.fh.write(bytes, off, bytes.length - off, null)).bytesWritten;
        // Written, but to a file someone removed or renamed (logrotate's default): nothing after
        // this would be found at the log's name. (Synchronous stats: microseconds, where the
        // promise forms would cost two thread-pool trips per batch.)
        const mine = fstatSync(this.fh.fd);
        const named = statAt(this.path);
        if (mine.nlink === 0 || !named || named.ino !== mine.ino || named.dev !== mine.dev) throw new Error('the file was removed or renamed while in use');
        // Cut short (truncated) while in use: O_APPEND put this write where the file now ends.
        if (mine.size < this.size + bytes.length) throw new Error(`the file was cut short while in use (it holds ${mine.size} bytes, not the ${this.size + bytes.length} written)`);
        this.size += bytes.length;
        this.written += batch.length;
        this.writtenHash = batch[batch.length - 1]!.hash;
        for (const l of batch) l.resolve();
        if (this.options.rotateBytes && this.size >= this.options.rotateBytes) await this.rotate();
      } catch (e) {
        const first = this.broken === undefined;
        this.broken ??= e as Error;
        const failure = this.failure(this.broken);
        if (first) this.options.onBroken?.(failure);
        for (const l of batch) l.reject(failure);
      }
    }
  }

  /**
   * Keeps the current file as a segment (PATH.FIRST-LAST) and goes on in a new PATH, whose first
   * line will continue the chain. Between the rename and the new file, a crash leaves no PATH,
   * and open continues the segment. A failure breaks the log, as a failed write does.
   */
  private async rotate(): Promise<void> {
    const segment = segmentPath(this.path, this.fileFirst, this.written);
    try {
      await writeFileAtomic(endPath(this.path), new TextEncoder().encode(`${JSON.stringify({ seq: this.written, hash: this.writtenHash })}\n`));
      await fs.rename(this.path, segment);
      const next = await fs.open(this.path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC, 0o600);
      await syncDir(dirname(this.path));
      await this.fh.close().catch(() => {});
      this.fh = next;
    } catch (e) {
      if (this.broken === undefined) this.options.onBroken?.(this.failure(e as Error));
      this.broken ??= e as Error;
      return;
    }
    const firstSeq = this.fileFirst;
    this.size = 0;
    this.fileFirst = this.written + 1;
    this.options.onRotate?.({ path: segment, firstSeq, lastSeq: this.written });
  }

  private failure(cause: Error): CertifierError {
    return new CertifierError('FILE_ERROR', `the audit log ${this.path} cannot be written (${cause.message}); no further decisions can be recorded`, { cause });
  }
}
