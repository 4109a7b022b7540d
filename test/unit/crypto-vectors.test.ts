// lib/crypto against published known-answer vectors (test/vectors/crypto/*.json): AES-256-GCM
// (McGrew & Viega test cases 13-16), HKDF-SHA-256 (RFC 5869 A.1-A.3) and scrypt (RFC 7914,
// section 12), plus tamper detection, seal/open and argument checks for the AEAD.

import { expect } from 'chai';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AES_KEY_BYTES, GCM_NONCE_BYTES, GCM_TAG_BYTES, SEAL_OVERHEAD,
  aesGcmDecrypt, aesGcmEncrypt, fromHex, hkdfSha256, open, randomBytes, scrypt, seal, toHex, utf8,
} from '../../lib/crypto/index.ts';
import { VECTORS } from '../support/helpers.ts';

interface VectorFile<T> { source: string; vectors: T[] }
interface GcmVector { name: string; source: string; key: string; iv: string; aad: string; plaintext: string; ciphertext: string; tag: string }
interface HkdfVector { name: string; source: string; ikm: string; salt: string; info: string; length: number; prk: string; okm: string }
interface ScryptVector { name: string; source: string; passphrase: string; salt: string; N: number; r: number; p: number; dkLen: number; dk: string }

function load<T>(file: string): VectorFile<T> {
  return JSON.parse(readFileSync(join(VECTORS, 'crypto', file), 'utf8')) as VectorFile<T>;
}

const gcm = load<GcmVector>('aes-256-gcm.json');
const hkdf = load<HkdfVector>('hkdf-sha256.json');
const scryptVectors = load<ScryptVector>('scrypt.json');

/** A copy of `b` with one bit flipped at byte `i` (negative counts from the end). */
function flipBit(b: Uint8Array, i: number, bit = 0): Uint8Array {
  const out = Uint8Array.from(b);
  const at = i < 0 ? out.length + i : i;
  out[at] = out[at]! ^ (1 << bit);
  return out;
}

describe('crypto vectors: AES-256-GCM (McGrew & Viega test cases 13-16)', () => {
  it('the vector file holds test cases 13, 14, 15 and 16, each well formed and with its source named', () => {
    expect(gcm.vectors.map((v) => v.name)).to.deep.equal([13, 14, 15, 16].map((n) => `McGrew-Viega test case ${n}`));
    for (const v of gcm.vectors) {
      expect(v.source, v.name).to.be.a('string').and.not.be.empty;
      expect(fromHex(v.key).length, v.name).to.equal(AES_KEY_BYTES);
      expect(fromHex(v.iv).length, v.name).to.equal(GCM_NONCE_BYTES);
      expect(fromHex(v.tag).length, v.name).to.equal(GCM_TAG_BYTES);
      expect(fromHex(v.ciphertext).length, v.name).to.equal(fromHex(v.plaintext).length);
    }
  });

  for (const v of gcm.vectors) {
    it(`${v.name}: aesGcmEncrypt produces the published ciphertext || tag`, () => {
      const out = aesGcmEncrypt(fromHex(v.key), fromHex(v.iv), fromHex(v.plaintext), fromHex(v.aad));
      expect(toHex(out)).to.equal(v.ciphertext + v.tag);
    });

    it(`${v.name}: aesGcmDecrypt recovers the published plaintext`, () => {
      const out = aesGcmDecrypt(fromHex(v.key), fromHex(v.iv), fromHex(v.ciphertext + v.tag), fromHex(v.aad));
      expect(out).to.be.instanceOf(Uint8Array);
      expect(toHex(out!)).to.equal(v.plaintext);
    });

    it(`${v.name}: decryption returns null when any single bit of ciphertext, tag, AAD or nonce is flipped`, () => {
      const key = fromHex(v.key);
      const iv = fromHex(v.iv);
      const aad = fromHex(v.aad);
      const sealed = fromHex(v.ciphertext + v.tag);
      const ctLen = sealed.length - GCM_TAG_BYTES;
      // every bit of the tag, and (sampled) bits of the ciphertext
      for (let i = 0; i < sealed.length; i++) {
        const bits = i >= ctLen ? [0, 1, 2, 3, 4, 5, 6, 7] : [i % 8];
        for (const bit of bits) {
          expect(aesGcmDecrypt(key, iv, flipBit(sealed, i, bit), aad), `byte ${i} bit ${bit}`).to.equal(null);
        }
      }
      for (let i = 0; i < iv.length; i++) {
        expect(aesGcmDecrypt(key, flipBit(iv, i, i % 8), sealed, aad), `nonce byte ${i}`).to.equal(null);
      }
      for (let i = 0; i < aad.length; i++) {
        expect(aesGcmDecrypt(key, iv, sealed, flipBit(aad, i, i % 8)), `aad byte ${i}`).to.equal(null);
      }
      // AAD added where there was none, or dropped where there was some
      const otherAad = aad.length === 0 ? new Uint8Array([0]) : new Uint8Array(0);
      expect(aesGcmDecrypt(key, iv, sealed, otherAad)).to.equal(null);
      // a different key
      expect(aesGcmDecrypt(flipBit(key, 0), iv, sealed, aad)).to.equal(null);
    });
  }

  it('decryption returns null for a truncated tag, an appended byte or input shorter than a tag', () => {
    const v = gcm.vectors[3]!;
    const [key, iv, aad] = [fromHex(v.key), fromHex(v.iv), fromHex(v.aad)];
    const sealed = fromHex(v.ciphertext + v.tag);
    expect(aesGcmDecrypt(key, iv, sealed.subarray(0, sealed.length - 1), aad)).to.equal(null);
    expect(aesGcmDecrypt(key, iv, Uint8Array.of(...sealed, 0), aad)).to.equal(null);
    expect(aesGcmDecrypt(key, iv, sealed.subarray(0, GCM_TAG_BYTES - 1), aad)).to.equal(null);
    expect(aesGcmDecrypt(key, iv, new Uint8Array(0), aad)).to.equal(null);
  });

  it('aesGcmEncrypt and aesGcmDecrypt throw RangeError for keys that are not 32 bytes', () => {
    const iv = new Uint8Array(GCM_NONCE_BYTES);
    for (const n of [0, 16, 24, 31, 33, 64]) {
      const key = new Uint8Array(n);
      expect(() => aesGcmEncrypt(key, iv, utf8('x'), new Uint8Array(0)), `${n}-byte key`).to.throw(RangeError);
      expect(() => aesGcmDecrypt(key, iv, new Uint8Array(32), new Uint8Array(0)), `${n}-byte key`).to.throw(RangeError);
    }
  });

  it('aesGcmEncrypt and aesGcmDecrypt throw RangeError for nonces that are not 12 bytes', () => {
    const key = new Uint8Array(AES_KEY_BYTES);
    for (const n of [0, 8, 11, 13, 16, 60]) {
      const iv = new Uint8Array(n);
      expect(() => aesGcmEncrypt(key, iv, utf8('x'), new Uint8Array(0)), `${n}-byte nonce`).to.throw(RangeError);
      expect(() => aesGcmDecrypt(key, iv, new Uint8Array(32), new Uint8Array(0)), `${n}-byte nonce`).to.throw(RangeError);
    }
  });
});

describe('crypto: seal / open', () => {
  const key = randomBytes(AES_KEY_BYTES);
  const aad = utf8('cryptstore entry v1');

  for (const size of [0, 1, 15, 16, 17, 1000, 65537]) {
    it(`a ${size}-byte plaintext round-trips through seal and open, with ${SEAL_OVERHEAD} bytes of overhead`, () => {
      const plaintext = randomBytes(size);
      const sealed = seal(key, plaintext, aad);
      expect(sealed.length).to.equal(size + SEAL_OVERHEAD);
      const opened = open(key, sealed, aad);
      expect(opened).to.be.instanceOf(Uint8Array);
      expect(toHex(opened!)).to.equal(toHex(plaintext));
    });
  }

  it('sealed output is nonce || aesGcmEncrypt(key, nonce, plaintext, aad)', () => {
    const plaintext = utf8('attack at dawn');
    const sealed = seal(key, plaintext, aad);
    const nonce = sealed.subarray(0, GCM_NONCE_BYTES);
    expect(toHex(sealed.subarray(GCM_NONCE_BYTES))).to.equal(toHex(aesGcmEncrypt(key, nonce, plaintext, aad)));
  });

  it('sealing the same plaintext twice gives different nonces and ciphertexts', () => {
    const plaintext = utf8('same message');
    const a = seal(key, plaintext, aad);
    const b = seal(key, plaintext, aad);
    expect(toHex(a.subarray(0, GCM_NONCE_BYTES))).to.not.equal(toHex(b.subarray(0, GCM_NONCE_BYTES)));
    expect(toHex(a)).to.not.equal(toHex(b));
  });

  it('open returns null when any byte of nonce, ciphertext or tag is flipped, or the AAD or key differs', () => {
    const sealed = seal(key, utf8('the secret'), aad);
    for (let i = 0; i < sealed.length; i++) {
      expect(open(key, flipBit(sealed, i, i % 8), aad), `byte ${i}`).to.equal(null);
    }
    expect(open(key, sealed, utf8('cryptstore entry v2'))).to.equal(null);
    expect(open(key, sealed, new Uint8Array(0))).to.equal(null);
    expect(open(randomBytes(AES_KEY_BYTES), sealed, aad)).to.equal(null);
  });

  it('open returns null for input shorter than nonce plus tag, and for truncated or extended input', () => {
    const sealed = seal(key, utf8('abc'), aad);
    expect(open(key, new Uint8Array(0), aad)).to.equal(null);
    expect(open(key, sealed.subarray(0, SEAL_OVERHEAD - 1), aad)).to.equal(null);
    expect(open(key, sealed.subarray(0, sealed.length - 1), aad)).to.equal(null);
    expect(open(key, Uint8Array.of(...sealed, 0), aad)).to.equal(null);
  });

  it('seal and open throw RangeError for a key that is not 32 bytes', () => {
    const sealed = seal(key, utf8('abc'), aad);
    for (const n of [0, 16, 31, 33]) {
      expect(() => seal(new Uint8Array(n), utf8('abc'), aad), `${n}-byte key`).to.throw(RangeError);
      expect(() => open(new Uint8Array(n), sealed, aad), `${n}-byte key`).to.throw(RangeError);
    }
  });
});

describe('crypto vectors: HKDF-SHA-256 (RFC 5869 test cases 1-3)', () => {
  it('the vector file holds RFC 5869 test cases 1, 2 and 3, each with its source named', () => {
    expect(hkdf.vectors).to.have.length(3);
    for (const v of hkdf.vectors) {
      expect(v.source, v.name).to.match(/^RFC 5869, Appendix A\.[123]$/);
      expect(fromHex(v.okm).length, v.name).to.equal(v.length);
    }
  });

  for (const v of hkdf.vectors) {
    it(`${v.name}: hkdfSha256 produces the published OKM`, () => {
      const okm = hkdfSha256(fromHex(v.ikm), fromHex(v.salt), fromHex(v.info), v.length);
      expect(toHex(okm)).to.equal(v.okm);
    });

    it(`${v.name}: the published PRK is HMAC-SHA-256(salt, IKM) and expands to the OKM (data file self-check)`, () => {
      // Extract with an empty salt uses HashLen zero bytes (RFC 5869, 2.2).
      const salt = v.salt === '' ? new Uint8Array(32) : fromHex(v.salt);
      const prk = new Uint8Array(createHmac('sha256', salt).update(fromHex(v.ikm)).digest());
      expect(toHex(prk)).to.equal(v.prk);
      // Expand by hand: T(i) = HMAC(PRK, T(i-1) || info || i).
      let t = new Uint8Array(0);
      let okm = '';
      for (let i = 1; okm.length < v.length * 2; i++) {
        t = new Uint8Array(createHmac('sha256', prk).update(t).update(fromHex(v.info)).update(Uint8Array.of(i)).digest());
        okm += toHex(t);
      }
      expect(okm.slice(0, v.length * 2)).to.equal(v.okm);
    });
  }

  it('a shorter output is a prefix of a longer one for the same inputs', () => {
    const v = hkdf.vectors[1]!;
    const okm = hkdfSha256(fromHex(v.ikm), fromHex(v.salt), fromHex(v.info), 16);
    expect(toHex(okm)).to.equal(v.okm.slice(0, 32));
  });

  it('hkdfSha256 throws RangeError for lengths outside 1 .. 255 * 32', () => {
    const ikm = new Uint8Array(32);
    for (const n of [0, -1, 1.5, 255 * 32 + 1]) {
      expect(() => hkdfSha256(ikm, new Uint8Array(0), new Uint8Array(0), n), `length ${n}`).to.throw(RangeError);
    }
    expect(hkdfSha256(ikm, new Uint8Array(0), new Uint8Array(0), 255 * 32)).to.have.length(255 * 32);
  });
});

describe('crypto vectors: scrypt (RFC 7914 section 12)', () => {
  it('the vector file holds the three fast RFC 7914 vectors and says why the N=1048576 one is left out', () => {
    const file = scryptVectors as VectorFile<ScryptVector> & { notes?: string };
    expect(file.vectors.map((v) => v.N)).to.deep.equal([16, 1024, 16384]);
    expect(file.notes).to.match(/1048576/).and.to.match(/slow/);
  });

  for (const v of scryptVectors.vectors) {
    it(`${v.name}: scrypt produces the published ${v.dkLen}-byte key`, async () => {
      const logN = Math.log2(v.N);
      expect(Number.isInteger(logN)).to.equal(true);
      const dk = await scrypt(utf8(v.passphrase), utf8(v.salt), { logN, r: v.r, p: v.p }, v.dkLen);
      expect(toHex(dk)).to.equal(v.dk);
    });
  }

  it('scrypt defaults to a 32-byte key, the prefix of the longer output', async () => {
    const v = scryptVectors.vectors[0]!;
    const dk = await scrypt(utf8(v.passphrase), utf8(v.salt), { logN: Math.log2(v.N), r: v.r, p: v.p });
    expect(toHex(dk)).to.equal(v.dk.slice(0, 64));
  });

  it('scrypt throws RangeError for a non-integer or out-of-range logN, r or p', () => {
    const [pw, salt] = [utf8('pw'), utf8('salt')];
    for (const cost of [
      { logN: 0, r: 1, p: 1 }, { logN: 25, r: 1, p: 1 }, { logN: 4.5, r: 1, p: 1 },
      { logN: 4, r: 0, p: 1 }, { logN: 4, r: 1, p: 0 }, { logN: 4, r: 1.5, p: 1 },
    ]) {
      expect(() => scrypt(pw, salt, cost), JSON.stringify(cost)).to.throw(RangeError);
    }
  });
});
