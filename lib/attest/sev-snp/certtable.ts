// The certificate table a host attaches to an extended SEV-SNP report (GHCB specification,
// "SNP Extended Guest Request"), which Linux's configfs-tsm hands to the guest as `auxblob`:
// entries of {GUID (16 bytes, in the order the GUID is written), offset u32 LE, length u32 LE},
// ended by an all-zero entry; offsets count from the start of the table.

import { CertifierError } from '../../errors/index.ts';
import { toHex } from '../../crypto/index.ts';

export const CERT_GUIDS = {
  vcek: '63da758d-e664-4564-adc5-f4b93be8accd',
  vlek: 'a8074bc2-a25a-483e-aae6-39c045a0b8a1',
  ask: '4ab7b379-bbac-4fe4-a02f-05aef327c782',
  ark: 'c0b406a4-a803-4952-9743-3fb6014cd0ae',
} as const;
export type CertKind = keyof typeof CERT_GUIDS;

export interface TableCert { kind: CertKind | 'other'; guid: string; der: Uint8Array }

const ENTRY = 24;
/** More entries than any host sends: a table that never ends is refused. */
const MAX_ENTRIES = 64;

function guidText(b: Uint8Array): string {
  const h = toHex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const bad = (why: string) => new CertifierError('EVIDENCE_MALFORMED', `the host's certificate table (auxblob) ${why}`);

/**
 * Parses a certificate table; the certificates are copies. EVIDENCE_MALFORMED for a table without
 * its terminator, an entry outside the table or inside its list of entries, or a GUID listed twice
 * (which certificate would be the VCEK?).
 */
export function parseCertTable(table: Uint8Array): TableCert[] {
  const v = new DataView(table.buffer, table.byteOffset, table.byteLength);
  const entries: { guid: string; offset: number; length: number }[] = [];
  for (let i = 0; ; i++) {
    const at = i * ENTRY;
    if (i >= MAX_ENTRIES || at + ENTRY > table.length) throw bad('has no terminating all-zero entry');
    const guid = table.subarray(at, at + 16);
    const offset = v.getUint32(at + 16, true);
    const length = v.getUint32(at + 20, true);
    if (guid.every((x) => x === 0)) {
      if (offset !== 0 || length !== 0) throw bad('ends with a non-zero terminator');
      break;
    }
    if (length === 0 || offset + length > table.length) throw bad(`entry ${i + 1} points outside the table`);
    const text = guidText(guid);
    if (entries.some((e) => e.guid === text)) throw bad(`lists GUID ${text} twice`);
    entries.push({ guid: text, offset, length });
  }
  const listEnd = (entries.length + 1) * ENTRY;
  return entries.map(({ guid, offset, length }, i) => {
    if (offset < listEnd) throw bad(`entry ${i + 1} points into the list of entries`);
    const kind = (Object.keys(CERT_GUIDS) as CertKind[]).find((k) => CERT_GUIDS[k] === guid) ?? 'other';
    return { kind, guid, der: table.slice(offset, offset + length) };
  });
}
