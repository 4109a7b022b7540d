// What someone who can write an audit log can do: rewrite lines and recompute every hash.

import { AUDIT_GENESIS, auditHash } from '../../lib/keyservice/audit.ts';

/** The lines chained again from `prev` (each hash recomputed over the line as JSON.stringify writes it). */
export function rechain(lines: string[], prev = AUDIT_GENESIS): string[] {
  return lines.map((l) => {
    const { prev: _p, hash: _h, ...fields } = JSON.parse(l) as Record<string, unknown>;
    const canon = JSON.stringify(fields);
    const hash = auditHash(prev, canon);
    const line = `${canon.slice(0, -1)},"prev":"${prev}","hash":"${hash}"}`;
    prev = hash;
    return line;
  });
}
