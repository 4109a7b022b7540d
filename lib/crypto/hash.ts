// Hashes: SHA-256 and SHA-384 (FIPS 180-4) through node:crypto.

import { createHash } from 'node:crypto';

export type HashName = 'sha256' | 'sha384' | 'sha512';

export function hash(name: HashName, ...data: Uint8Array[]): Uint8Array {
  const h = createHash(name);
  for (const d of data) h.update(d);
  return new Uint8Array(h.digest());
}

export const sha256 = (...data: Uint8Array[]) => hash('sha256', ...data);
export const sha384 = (...data: Uint8Array[]) => hash('sha384', ...data);

/** Lowercase hex SHA-256 of the UTF-8 encoding of the texts, one after the other. */
export function sha256HexOfText(...texts: string[]): string {
  const h = createHash('sha256');
  for (const t of texts) h.update(t, 'utf8');
  return h.digest('hex');
}
