// Hashes: SHA-256 and SHA-384 (FIPS 180-4) through node:crypto.

import { createHash, hash as oneShot } from 'node:crypto';

export type HashName = 'sha256' | 'sha384' | 'sha512';

export function hash(name: HashName, ...data: Uint8Array[]): Uint8Array {
  const h = createHash(name);
  for (const d of data) h.update(d);
  return new Uint8Array(h.digest());
}

export const sha256 = (...data: Uint8Array[]) => hash('sha256', ...data);
export const sha384 = (...data: Uint8Array[]) => hash('sha384', ...data);

/**
 * Lowercase hex SHA-256 of the UTF-8 encoding of the texts, one after the other. One call of
 * node:crypto's one-shot hash on the texts joined (no Hash object): key-server hashes every audit
 * line it writes, and the texts are a line's few hundred characters.
 */
export function sha256HexOfText(...texts: string[]): string {
  return oneShot('sha256', texts.length === 1 ? texts[0]! : texts.join(''), 'hex');
}
