// Key derivation: scrypt (RFC 7914) for passphrases and HKDF-SHA-256 (RFC 5869) for keys.

import { createHmac, scrypt as nodeScrypt } from 'node:crypto';
import { wipe } from './random.ts';

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

/**
 * HKDF-SHA-256(ikm, salt, info) -> length bytes (RFC 5869, section 2), made of HMAC: Node's
 * hkdfSync copies the input key into a key object, which keeps it until the garbage collector
 * frees it (a key file's bytes in a running key-server's memory). Here the input key is only the
 * message of the extract step (section 2.2), hashed where it lies; PRK and each T(i) are wiped.
 */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 1 || length > 255 * 32) throw new RangeError('hkdf: length out of range');
  const prk = createHmac('sha256', salt).update(ikm).digest();
  const okm = new Uint8Array(length);
  let t = new Uint8Array(0);
  for (let i = 1, at = 0; at < length; i++, at += 32) {
    const next = createHmac('sha256', prk).update(t).update(info).update(Uint8Array.of(i)).digest();
    wipe(t);
    okm.set(next.subarray(0, Math.min(32, length - at)), at);
    t = next;
  }
  wipe(t, prk);
  return okm;
}
