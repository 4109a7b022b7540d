// An audit log rotated into segments (AuditLogOptions.rotateBytes) is one chain over several
// files: PATH.FIRST-LAST for the old ones, PATH for the current. Each file verifies on its own,
// and each begins where the one before ends (the next seq, chained to its last hash).

import { AUDIT_GENESIS, verifySegment } from './audit.ts';

export type ChainVerification =
  | { ok: true; files: number; lines: number; firstSeq: number; lastSeq: number; fromGenesis: boolean }
  | { ok: false; file: string; line: number; problem: string };

/**
 * Verifies FILES in chain order. The first must start the chain (seq 1) unless `continuing`,
 * when it may continue a segment not given (verify that one with it to check the link).
 */
export async function verifyChain(files: string[], o: { continuing?: boolean } = {}): Promise<ChainVerification> {
  let lines = 0;
  let first: { seq: number; prev: string } | undefined;
  let end: { seq: number; hash: string; file: string } | undefined;
  for (const file of files) {
    const r = await verifySegment(file);
    if (!r.ok) return { ok: false, file, line: r.line, problem: r.problem };
    if (r.lines === 0) continue; // an empty current file: nothing to link
    if (!end) {
      first = { seq: r.firstSeq, prev: r.startPrev };
      if (!o.continuing && (r.firstSeq !== 1 || r.startPrev !== AUDIT_GENESIS)) {
        return { ok: false, file, line: 1, problem: `it starts at seq ${r.firstSeq}, not 1: give the segments before it first (or --continuing to check from there)` };
      }
    } else if (r.firstSeq !== end.seq + 1 || r.startPrev !== end.hash) {
      return { ok: false, file, line: 1, problem: `it does not continue ${end.file} (which ends at seq ${end.seq}): it starts at seq ${r.firstSeq}${r.startPrev === end.hash ? '' : ' after another hash'}` };
    }
    lines += r.lines;
    end = { seq: r.lastSeq, hash: r.last, file };
  }
  return { ok: true, files: files.length, lines, firstSeq: first?.seq ?? 0, lastSeq: end?.seq ?? 0, fromGenesis: !first || (first.seq === 1 && first.prev === AUDIT_GENESIS) };
}
