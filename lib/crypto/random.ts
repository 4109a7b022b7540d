// Secure randomness and small byte helpers. No IO beyond the kernel's random source.

import { randomBytes as nodeRandomBytes, timingSafeEqual } from 'node:crypto';

/** `n` bytes from the operating system's CSPRNG. */
export function randomBytes(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0) throw new RangeError('randomBytes: n must be a non-negative integer');
  // A view, not a copy: wiping it (wipe()) then wipes the only copy of a key made from it.
  const b = nodeRandomBytes(n);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Constant-time comparison of two byte strings (length is not secret). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * A copy of a secret that wipe() can reach for good: outside the garbage-collected heap, where
 * `new Uint8Array(secret)` of up to 64 bytes would be, and could be moved, leaving the old copy.
 */
export function secretCopy(secret: Uint8Array): Uint8Array {
  const copy = new Uint8Array(new ArrayBuffer(secret.length));
  copy.set(secret);
  return copy;
}

/** Overwrites a buffer holding key material once it is no longer needed. */
export function wipe(...buffers: (Uint8Array | undefined)[]): void {
  for (const b of buffers) b?.fill(0);
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** Strict hex decoding: even length, hex digits only. */
export function fromHex(s: string): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new RangeError('fromHex: not a hex string');
  return new Uint8Array(Buffer.from(s, 'hex'));
}

const encoder = new TextEncoder();

export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * An unambiguous encoding of several fields for use as AAD or as signed context:
 * each field is a 4-byte big-endian length followed by its bytes.
 */
export function encodeFields(...fields: (Uint8Array | string)[]): Uint8Array {
  // One allocation: it is the AAD of every record sealed or opened, so it runs per request.
  let n = 0;
  for (const f of fields) n += 4 + (typeof f === 'string' ? Buffer.byteLength(f, 'utf8') : f.length);
  const out = Buffer.allocUnsafe(n);
  let o = 0;
  for (const f of fields) {
    const len = typeof f === 'string' ? Buffer.byteLength(f, 'utf8') : f.length;
    out.writeUInt32BE(len, o);
    o += 4;
    if (typeof f === 'string') out.write(f, o, 'utf8');
    else out.set(f, o);
    o += len;
  }
  return new Uint8Array(out.buffer, out.byteOffset, n);
}
