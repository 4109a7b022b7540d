// Key derivation: scrypt (RFC 7914) for passphrases and HKDF-SHA-256 (RFC 5869) for keys.

import { scrypt as nodeScrypt, hkdfSync } from 'node:crypto';

export interface ScryptCost {
  /** log2 of the CPU/memory cost N. */
  logN: number;
  r: number;
  p: number;
}

/** The default for passphrase-protected stores: N = 2^17, r = 8, p = 1 (128 MiB, ~0.3 s). */
export const DEFAULT_SCRYPT: ScryptCost = { logN: 17, r: 8, p: 1 };

/** Memory scrypt needs for these parameters, in bytes (128 * N * r, plus p blocks). */
export function scryptMemory(c: ScryptCost): number {
  return 128 * 2 ** c.logN * c.r + 128 * c.r * c.p;
}

/** scrypt(passphrase, salt, N = 2^logN, r, p) -> dkLen bytes (RFC 7914, section 6). */
export function scrypt(passphrase: Uint8Array, salt: Uint8Array, cost: ScryptCost, dkLen = 32): Promise<Uint8Array> {
  if (!Number.isInteger(cost.logN) || cost.logN < 1 || cost.logN > 24) throw new RangeError('scrypt: logN out of range');
  if (!Number.isInteger(cost.r) || cost.r < 1 || !Number.isInteger(cost.p) || cost.p < 1) throw new RangeError('scrypt: bad r or p');
  const maxmem = scryptMemory(cost) + 32 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    nodeScrypt(passphrase, salt, dkLen, { N: 2 ** cost.logN, r: cost.r, p: cost.p, maxmem }, (err, key) => {
      if (err) reject(err);
      else resolve(new Uint8Array(key.buffer, key.byteOffset, key.byteLength)); // a view: wipe() reaches the only copy
    });
  });
}

/** HKDF-SHA-256(ikm, salt, info) -> length bytes (RFC 5869, section 2). */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 1 || length > 255 * 32) throw new RangeError('hkdf: length out of range');
  return new Uint8Array(hkdfSync('sha256', ikm, salt, info, length));
}
