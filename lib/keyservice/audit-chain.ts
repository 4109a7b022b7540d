// An audit log rotated into segments (AuditLogOptions.rotateBytes) is one chain over several
// files: PATH.FIRST-LAST for the old ones, PATH for the current. Each file verifies on its own,
// holds the seqs its name says, and begins where the one before ends (the next seq, chained to
// its last hash). PATH.end, where the chain stood at the last rotation, must be reached.

import { stat } from 'node:fs/promises';
import { CertifierError } from '../errors/index.ts';
import { realFilePath, realLocation } from '../files/index.ts';
import { AUDIT_GENESIS } from './audit-line.ts';
import { endPath, endSource, missingSeqs, recordedEnd, segmentRange, segmentsOf, segmentStartProblem, startsAfter, verifySegment } from './audit-read.ts';

export type ChainVerification =
  | { ok: true; files: number; lines: number; firstSeq: number; lastSeq: number; lastHash: string; fromGenesis: boolean; logMissing?: true }
  | { ok: false; file: string; line?: number; problem: string };

/** A seq and the hash its record must have: where the chain was seen to stand (PATH.end, a copy kept elsewhere). */
export interface ChainAnchor {
  seq: number;
  hash: string;
  /** Who says so, for the message ("audit.jsonl.end (where the chain stood at its last rotation)"). */
  source: string;
}

/**
 * Verifies FILES in chain order. The first must start the chain (seq 1) unless `continuing`,
 * when it may continue a segment not given (verify that one with it to check the link). The chain
 * must hold each of `anchors`, and the end recorded beside the last file (PATH.end) if there is
 * one; with `continuing`, the files given may instead begin right after that record (no later),
 * and when they hold no line (every segment archived) the chain ends there. A log that is not
 * there while PATH.end is (a rotation cut short between renaming it and making the new one, which
 * key-server continues) holds no line; `files` counts the files read.
 */
export async function verifyChain(files: string[], o: { continuing?: boolean; anchors?: ChainAnchor[] } = {}): Promise<ChainVerification> {
  await refuseFilesBeside(files);
  let lines = 0;
  let first: { seq: number; prev: string; file: string } | undefined;
  let end: { seq: number; hash: string; file: string } | undefined;
  const hashes = new Map<number, { hash: string; file: string; line?: number }>();
  const anchors = [...(o.anchors ?? [])];
  const log = files.at(-1);
  // FILE.end is beside the file itself, where key-server keeps it (a symbolic link given as the log is followed, as serve follows it).
  const real = log !== undefined && !segmentRange(log) ? await realFilePath(log) : undefined;
  const recorded = real !== undefined ? await recordedEnd(real, 'verify the segments alone, or restore it') : undefined;
  const atRotation = recorded && { ...recorded, source: endSource(real!) };
  if (atRotation) anchors.push(atRotation);
  const logMissing = atRotation !== undefined && (await stat(log!).then(() => false, (e: NodeJS.ErrnoException) => e.code === 'ENOENT'));
  const wanted = new Set(anchors.map((a) => a.seq));
  for (const file of files) {
    if (logMissing && file === log) continue;
    const r = await verifySegment(file, (seq, hash, line) => {
      if (wanted.has(seq)) hashes.set(seq, { hash, file, line });
    });
    if (!r.ok) {
      // What a crash leaves in the log itself (never in a segment), which repair-audit moves aside.
      const repair = r.torn && file === log && !segmentRange(file) ? ` (if a crash cut it short: stop the key-server, then key-server repair-audit ${file} moves it aside)` : '';
      return { ok: false, file, line: r.line, problem: `${r.problem}${repair}` };
    }
    const named = segmentRange(file);
    if (named) {
      if (r.lines === 0) return { ok: false, file, problem: `it is empty, but its name says it holds seq ${named.firstSeq} to ${named.lastSeq}: those lines are missing` };
      const start = segmentStartProblem(named, r.firstSeq);
      if (start) return { ok: false, file, line: 1, problem: start };
      if (r.lastSeq !== named.lastSeq) {
        const missing = r.lastSeq < named.lastSeq ? `: ${missingSeqs(r.lastSeq + 1, named.lastSeq)}` : '';
        return { ok: false, file, line: r.lines, problem: `it ends at seq ${r.lastSeq}, not the ${named.lastSeq} its name says${missing}` };
      }
    }
    if (r.lines === 0) continue; // an empty current file: nothing to link
    if (!end) {
      first = { seq: r.firstSeq, prev: r.startPrev, file };
      if (!o.continuing && (r.firstSeq !== 1 || r.startPrev !== AUDIT_GENESIS)) {
        if (file === log && r.firstSeq > 1) await refuseNotGiven(files, 1, r.firstSeq - 1);
        return { ok: false, file, line: 1, problem: `it starts at seq ${r.firstSeq}, not 1: give the segments before it first (or --continuing to check from there)` };
      }
      // The hash the first line chains to is that of the seq before it.
      if (wanted.has(r.firstSeq - 1)) hashes.set(r.firstSeq - 1, { hash: r.startPrev, file, line: 1 });
    } else if (r.firstSeq !== end.seq + 1 || r.startPrev !== end.hash) {
      if (file === log && r.firstSeq > end.seq + 1) await refuseNotGiven(files, end.seq + 1, r.firstSeq - 1);
      return { ok: false, file, line: 1, problem: `it does not continue ${end.file} (which ends at seq ${end.seq}): it starts at seq ${r.firstSeq}${r.firstSeq === end.seq + 1 ? ' after another hash' : ''}` };
    }
    lines += r.lines;
    end = { seq: r.lastSeq, hash: r.last, file };
  }
  // An empty log whose segments were all archived (--continuing): the chain ends where FILE.end
  // says, as key-server goes on from there.
  const atEnd = !end && o.continuing ? atRotation : undefined;
  if (atEnd) hashes.set(atEnd.seq, { hash: atEnd.hash, file: endPath(real!) });
  const lastSeq = end?.seq ?? atEnd?.seq ?? 0;
  for (const a of anchors) {
    // Segments archived (--continuing): the record is checked when the files given reach back to
    // it; they may not start after it (the first line after a rotation is the next seq).
    if (a === atRotation && first && a.seq < first.seq - 1) return { ok: false, file: first.file, line: 1, problem: startsAfter(first.seq, a.seq, a.source) };
    const got = hashes.get(a.seq);
    if (got && got.hash !== a.hash) return { ok: false, file: got.file, line: got.line, problem: `the record of seq ${a.seq} has hash ${got.hash}, but ${a.source} says ${a.hash} (the chain was rewritten from there or before)` };
    if (got) continue;
    if (a.seq > lastSeq) {
      await refuseNotGiven(files, lastSeq + 1, a.seq);
      return { ok: false, file: log!, problem: `the chain ends at seq ${lastSeq}, but ${a.source} says it reached seq ${a.seq}: ${missingSeqs(lastSeq + 1, a.seq)} (a segment removed or emptied, or the log cut short)` };
    }
    // Only an anchor of the caller's can lie before the files given (--continuing): a usage mistake.
    throw new CertifierError('USAGE', `the files given start after seq ${a.seq}, which ${a.source} names: give the segments that hold it, before them`);
  }
  const fromGenesis = first ? first.seq === 1 && first.prev === AUDIT_GENESIS : !atEnd;
  return { ok: true, files: files.length - (logMissing ? 1 : 0), ...(logMissing ? { logMissing } : {}), lines, firstSeq: first?.seq ?? 0, lastSeq, lastHash: end?.hash ?? atEnd?.hash ?? AUDIT_GENESIS, fromGenesis };
}

/**
 * FILE_ERROR for what a glob wider than F.[0-9]* catches beside a log, F.end and F.torn-TIME, as
 * for its lock directory: they are no part of the chain. Such a name is taken for one when F is
 * given, is the log of a segment given, or is a file beside it.
 */
async function refuseFilesBeside(files: string[]): Promise<void> {
  // Told apart where the kernel finds them (realLocation): normalize() would take "link/../F" for
  // the F beside the link, and F.end beside the segments for a log.
  const logs = new Set([...files, ...files.map((f) => segmentRange(f)?.log ?? f)].map((f) => realLocation(f)));
  for (const file of files) {
    const m = /^(.+)\.(end|torn-[^/]*)$/.exec(file);
    if (!m || !(logs.has(realLocation(m[1]!)) || (await stat(m[1]!).then((st) => st.isFile(), () => false)))) continue;
    const what = m[2] === 'end' ? 'where its chain stood at the last rotation (F.end, kept beside the log)' : 'an incomplete last line repair-audit moved aside (F.torn-TIME)';
    throw new CertifierError('FILE_ERROR', `${file} is not an audit log but ${what}: give the segments as F.[0-9]*`);
  }
}

/**
 * USAGE when the seqs `from` to `to`, missing from the chain of FILES, are held by segments beside
 * the log (the last file) that were not given: a rotation since the files were listed (a shell
 * glob expanded before it, the log read after) leaves exactly that, and no line is missing.
 */
async function refuseNotGiven(files: string[], from: number, to: number): Promise<void> {
  const log = files.at(-1)!;
  if (segmentRange(log)) return;
  const given = new Set(files.map((f) => realLocation(f)));
  const beside = (await segmentsOf(await realFilePath(log)).catch(() => [])).filter((s) => s.firstSeq >= from && s.lastSeq <= to && !given.has(realLocation(s.path)));
  let next = from;
  for (const s of beside) {
    if (s.firstSeq !== next) return;
    next = s.lastSeq + 1;
  }
  if (beside.length === 0 || next !== to + 1) return;
  const seqs = from === to ? `seq ${from}` : `seq ${from} to ${to}`;
  // Named in full up to a few; a log rotated for a year has thousands.
  const named = beside.length <= 3 ? beside.map((s) => s.path).join(', ') : `${beside[0]!.path} to ${beside.at(-1)!.path} (${beside.length})`;
  const which = beside.length === 1 ? `the segment ${named} beside ${log}, which holds ${seqs}, was` : `the segments ${named} beside ${log}, which hold ${seqs}, were`;
  throw new CertifierError('USAGE', `${which} not given (a rotation since the files were listed?): give the segments, then the log (${log}.[0-9]* ${log})`);
}
