// AES-256-GCM (NIST SP 800-38D) with 96-bit nonces and 128-bit tags, through node:crypto.
// `seal`/`open` use the layout nonce || ciphertext || tag and a fresh random nonce per call;
// with random nonces one key must not seal more than 2^32 messages (SP 800-38D, 8.3).

import { createCipheriv, createDecipheriv } from 'node:crypto';
import { randomBytes } from './random.ts';

export const AES_KEY_BYTES = 32;
export const GCM_NONCE_BYTES = 12;
export const GCM_TAG_BYTES = 16;
/** Bytes `seal` adds to a plaintext. */
export const SEAL_OVERHEAD = GCM_NONCE_BYTES + GCM_TAG_BYTES;

function checkKeyNonce(key: Uint8Array, nonce: Uint8Array): void {
  if (key.length !== AES_KEY_BYTES) throw new RangeError(`AES-256-GCM key must be ${AES_KEY_BYTES} bytes`);
  if (nonce.length !== GCM_NONCE_BYTES) throw new RangeError(`AES-256-GCM nonce must be ${GCM_NONCE_BYTES} bytes`);
}

/** Encrypts with an explicit nonce; returns ciphertext || tag. */
export function aesGcmEncrypt(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  return encryptInto(key, nonce, plaintext, aad, 0);
}

/** Encrypts into a new buffer with `offset` bytes left free at its start (for the nonce). */
function encryptInto(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, offset: number): Uint8Array {
  checkKeyNonce(key, nonce);
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_BYTES });
  c.setAAD(aad);
  // One output allocation; large inputs go through in pieces so no second full-size copy is made.
  const out = new Uint8Array(offset + plaintext.length + GCM_TAG_BYTES);
  let o = offset;
  for (let i = 0; i < plaintext.length; i += CHUNK) {
    const part = c.update(plaintext.subarray(i, Math.min(plaintext.length, i + CHUNK)));
    out.set(part, o);
    o += part.length;
  }
  const tail = c.final();
  out.set(tail, o);
  out.set(c.getAuthTag(), o + tail.length);
  return out;
}

const CHUNK = 64 * 1024;

/** Decrypts ciphertext || tag; returns null when authentication fails. */
export function aesGcmDecrypt(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | null {
  checkKeyNonce(key, nonce);
  if (sealed.length < GCM_TAG_BYTES) return null;
  const body = sealed.subarray(0, sealed.length - GCM_TAG_BYTES);
  const tag = sealed.subarray(sealed.length - GCM_TAG_BYTES);
  const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_BYTES });
  d.setAAD(aad);
  d.setAuthTag(tag);
  const head = d.update(body);
  try {
    const tail = d.final();
    if (tail.length === 0) return new Uint8Array(head.buffer, head.byteOffset, head.length);
    const out = new Uint8Array(head.length + tail.length);
    out.set(head, 0);
    out.set(tail, head.length);
    return out;
  } catch {
    head.fill(0);
    return null;
  }
}

/** Encrypts under a fresh random nonce; returns nonce || ciphertext || tag. */
export function seal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  const nonce = randomBytes(GCM_NONCE_BYTES);
  const out = encryptInto(key, nonce, plaintext, aad, GCM_NONCE_BYTES);
  out.set(nonce, 0);
  return out;
}

/** Opens nonce || ciphertext || tag; returns null when it is malformed or fails authentication. */
export function open(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | null {
  if (sealed.length < SEAL_OVERHEAD) return null;
  return aesGcmDecrypt(key, sealed.subarray(0, GCM_NONCE_BYTES), sealed.subarray(GCM_NONCE_BYTES), aad);
}
