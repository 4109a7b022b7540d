// Data written by earlier versions (test/vectors/earlier-versions/COMMIT/NOTES.md says how each was
// made): copies with a deployment's modes, and c1b090e's rotated audit log rebuilt from its seed.

import { chmodSync, cpSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { rechain } from './audit-lines.ts';
import { VECTORS } from './helpers.ts';

export const EARLIER = join(VECTORS, 'earlier-versions');

/** A copy of EARLIER/`commit` in `dir`, with a deployment's modes (git keeps neither 0700 nor 0600). */
export function copyOf(dir: string, commit = 'e380c14'): string {
  const to = join(dir, commit);
  cpSync(join(EARLIER, commit), to, { recursive: true });
  const tighten = (d: string): void => {
    chmodSync(d, 0o700);
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) tighten(join(d, e.name));
      else chmodSync(join(d, e.name), 0o600);
    }
  };
  tighten(to);
  return to;
}

/** What c1b090e's AuditLog wrote with rotateBytes 1 MiB (c1b090e/NOTES.md): one segment and the log that continues it. */
export interface C1b090eLog {
  /** The seed's lines, as committed. */
  seed: string[];
  /** The segment's name beside audit.jsonl (audit.jsonl.FIRST-LAST) and its bytes. */
  segmentName: string;
  segment: Buffer;
  /** audit.jsonl: the lines after the rotation. */
  log: Buffer;
}

/**
 * c1b090e's log rebuilt from its first lines (seed.jsonl). Line n repeats the entry of seed line
 * ((n - 1) mod the seed's length) with seq n, the time and conn its maker gave line n, chained in
 * that commit's format (the fields in its order, every character raw, as JSON.stringify writes
 * them: rechain's). The file rotates after the line that brings it to 1 MiB, and the log ends at
 * the first whole round of the seed after that, as the maker stopped.
 */
export function c1b090eLog(): C1b090eLog {
  const seed = readFileSync(join(EARLIER, 'c1b090e', 'seed.jsonl'), 'utf8').split('\n').slice(0, -1);
  const entries = seed.map((l) => {
    const { seq: _s, time: _t, conn: _c, prev: _p, hash: _h, ...rest } = JSON.parse(l) as Record<string, unknown>;
    return rest;
  });
  const start = Date.UTC(2026, 11, 5, 10, 0, 0);
  const fields: string[] = [];
  let size = 0;
  let rotatedAfter = 0;
  for (let n = 1; rotatedAfter === 0 || (n - 1) % entries.length !== 0; n++) {
    const line = JSON.stringify({ seq: n, time: new Date(start + n * 1000).toISOString(), conn: n.toString(16).padStart(8, '0'), ...entries[(n - 1) % entries.length] });
    fields.push(line);
    // The size of the chained line: its JSON, prev and hash (64 hex digits each) and the newline.
    size += Buffer.byteLength(line) + ',"prev":"","hash":""'.length + 128 + 1;
    if (rotatedAfter === 0 && size >= 2 ** 20) rotatedAfter = n;
  }
  const lines = rechain(fields).map((l) => `${l}\n`);
  const pad = (n: number) => String(n).padStart(12, '0');
  return {
    seed,
    segmentName: `audit.jsonl.${pad(1)}-${pad(rotatedAfter)}`,
    segment: Buffer.from(lines.slice(0, rotatedAfter).join('')),
    log: Buffer.from(lines.slice(rotatedAfter).join('')),
  };
}
