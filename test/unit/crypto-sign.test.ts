// lib/crypto signatures: round trips for RSA-2048 / P-256 / P-384, verify's "false, never throw"
// contract for bad signatures, TypeError for key/algorithm mismatches, an independent check of
// the encodings (noble-curves for ECDSA, the raw RSA operation for PKCS#1 v1.5), and the signed
// claims written by the original Certifier Framework (test/vectors/certifier-original).

import { expect } from 'chai';
import { constants, createHash, createPublicKey, generateKeyPair as nodeGenerateKeyPair, publicDecrypt, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { p256, p384 } from '@noble/curves/nist.js';
import {
  KEY_ALGS, SIGNATURE_ALGS, fromKeyMessage, generateKeyPair, isSignatureAlg, keyAlgOf, randomBytes, sign,
  signatureAlgFor, toHex, utf8, verify, type KeyAlg, type KeyPair, type SignatureAlg,
} from '../../lib/crypto/index.ts';
import { CertifierError } from '../../lib/errors/index.ts';
import { decode } from '../../lib/wire/index.ts';
import type { ClaimMessage, KeyMessage, SignedClaimMessage, SignedClaimSequence } from '../../lib/wire/types.ts';
import { VECTORS } from '../support/helpers.ts';

const ORIGINAL = join(VECTORS, 'certifier-original');
const RSA = 'rsa-2048-sha256-pkcs-sign' as const;
const ALG_FOR: Record<KeyAlg, SignatureAlg> = {
  rsa2048: 'rsa-2048-sha256-pkcs-sign',
  p256: 'ecc-256-sha256-pkcs-sign',
  p384: 'ecc-384-sha384-pkcs-sign',
};
const ALL_SIG_ALGS = Object.keys(SIGNATURE_ALGS) as SignatureAlg[];
/** DER of DigestInfo { sha256, NULL } that precedes the hash in EMSA-PKCS1-v1_5 (RFC 8017, 9.2). */
const SHA256_DIGEST_INFO = '3031300d060960864801650304020105000420';

function flipBit(b: Uint8Array, i: number, bit = 0): Uint8Array {
  const out = Uint8Array.from(b);
  const at = i < 0 ? out.length + i : i;
  out[at] = out[at]! ^ (1 << bit);
  return out;
}

/** verify must answer false, not throw. */
function expectRejected(pub: KeyObject, data: Uint8Array, sig: Uint8Array, alg: SignatureAlg, what: string): void {
  let result: boolean | undefined;
  expect(() => { result = verify(pub, data, sig, alg); }, what).to.not.throw();
  expect(result, what).to.equal(false);
}

/** The EMSA-PKCS1-v1_5 block an RSA signature opens to under the public key (s^e mod n). */
function rsaOpen(pub: KeyObject, sig: Uint8Array): string {
  return publicDecrypt({ key: pub, padding: constants.RSA_NO_PADDING }, sig).toString('hex');
}
function expectedEmsaSha256(data: Uint8Array): string {
  const t = SHA256_DIGEST_INFO + createHash('sha256').update(data).digest('hex');
  return '0001' + 'ff'.repeat(256 - 3 - t.length / 2) + '00' + t;
}

/** Splits a DER ECDSA-Sig-Value into r and s, checking the encoding strictly. */
function parseDerSignature(sig: Uint8Array): { r: bigint; s: bigint } {
  let i = 0;
  const byte = () => {
    if (i >= sig.length) throw new Error('short DER');
    return sig[i++]!;
  };
  const len = () => {
    const first = byte();
    if (first < 0x80) return first;
    if (first !== 0x81) throw new Error('unexpected DER length form');
    const n = byte();
    if (n < 0x80) throw new Error('non-minimal DER length');
    return n;
  };
  const int = () => {
    if (byte() !== 0x02) throw new Error('expected INTEGER');
    const n = len();
    const v = sig.subarray(i, i + n);
    i += n;
    if (v.length !== n || n === 0 || v[0]! >= 0x80) throw new Error('bad INTEGER');
    if (n > 1 && v[0] === 0 && v[1]! < 0x80) throw new Error('non-minimal INTEGER');
    return BigInt('0x' + Buffer.from(v).toString('hex'));
  };
  if (byte() !== 0x30) throw new Error('expected SEQUENCE');
  const total = len();
  if (total !== sig.length - i) throw new Error('SEQUENCE length mismatch');
  const r = int();
  const s = int();
  if (i !== sig.length) throw new Error('trailing bytes');
  return { r, s };
}

describe('crypto signatures', () => {
  const pairs = {} as Record<KeyAlg, KeyPair>;
  const others = {} as Record<KeyAlg, KeyPair>;
  const message = utf8('policyKey says platformKey is-trusted-for-attestation');

  before(async () => {
    for (const alg of KEY_ALGS) [pairs[alg], others[alg]] = await Promise.all([generateKeyPair(alg), generateKeyPair(alg)]);
  });

  it('the algorithm names are the Certifier ones, and isSignatureAlg knows exactly those', () => {
    expect(ALL_SIG_ALGS.sort()).to.deep.equal(['ecc-256-sha256-pkcs-sign', 'ecc-384-sha384-pkcs-sign', 'rsa-2048-sha256-pkcs-sign']);
    for (const a of ALL_SIG_ALGS) expect(isSignatureAlg(a)).to.equal(true);
    for (const a of ['rsa-2048-sha256-pss-sign', 'ecc-256-sha384-pkcs-sign', 'toString', '']) expect(isSignatureAlg(a), a).to.equal(false);
  });

  for (const alg of KEY_ALGS) {
    const sigAlg = ALG_FOR[alg];

    describe(`${alg} (${sigAlg})`, () => {
      it(`signatureAlgFor gives ${sigAlg} for the private and the public key`, () => {
        expect(signatureAlgFor(pairs[alg].privateKey)).to.equal(sigAlg);
        expect(signatureAlgFor(pairs[alg].publicKey)).to.equal(sigAlg);
      });

      it('a signature made with the default algorithm verifies under the public key', () => {
        const sig = sign(pairs[alg].privateKey, message);
        expect(verify(pairs[alg].publicKey, message, sig, sigAlg)).to.equal(true);
      });

      it('a signature made with the algorithm named explicitly verifies, also for empty and 1 MiB messages', () => {
        for (const data of [message, new Uint8Array(0), randomBytes(1 << 20)]) {
          const sig = sign(pairs[alg].privateKey, data, sigAlg);
          expect(verify(pairs[alg].publicKey, data, sig, sigAlg), `${data.length} bytes`).to.equal(true);
        }
      });

      it('verify accepts the private key in place of the public key', () => {
        const sig = sign(pairs[alg].privateKey, message);
        expect(verify(pairs[alg].privateKey, message, sig, sigAlg)).to.equal(true);
      });

      if (alg === 'rsa2048') {
        it('the signature is 256 bytes, deterministic, and opens to EMSA-PKCS1-v1_5 over SHA-256 of the message', () => {
          const sig = sign(pairs[alg].privateKey, message);
          expect(sig).to.have.length(256);
          expect(toHex(sign(pairs[alg].privateKey, message))).to.equal(toHex(sig));
          expect(rsaOpen(pairs[alg].publicKey, sig)).to.equal(expectedEmsaSha256(message));
        });
      } else {
        const noble = alg === 'p256' ? p256 : p384;
        const size = alg === 'p256' ? 32 : 48;
        it(`the signature is a strict DER SEQUENCE of r and s, both in 1 .. n-1`, () => {
          const n = noble.Point.CURVE().n;
          for (let k = 0; k < 8; k++) {
            const sig = sign(pairs[alg].privateKey, message);
            const { r, s } = parseDerSignature(sig);
            expect(r > 0n && r < n && s > 0n && s < n).to.equal(true);
            expect(sig.length).to.be.at.most(2 + 2 * (3 + size));
          }
        });

        it(`an independent implementation (noble-curves ${alg}, ${alg === 'p256' ? 'SHA-256' : 'SHA-384'} prehash) accepts the DER signature`, () => {
          const jwk = pairs[alg].publicKey.export({ format: 'jwk' });
          const point = Uint8Array.of(4, ...Buffer.from(jwk.x!, 'base64url'), ...Buffer.from(jwk.y!, 'base64url'));
          const sig = sign(pairs[alg].privateKey, message);
          expect(noble.verify(sig, message, point, { format: 'der', lowS: false })).to.equal(true);
          expect(noble.verify(sig, flipBit(message, 0), point, { format: 'der', lowS: false })).to.equal(false);
        });

        it('a signature by noble-curves (DER, low-S) verifies', () => {
          const d = new Uint8Array(Buffer.from(pairs[alg].privateKey.export({ format: 'jwk' }).d!, 'base64url'));
          const sig = noble.sign(message, d, { format: 'der' });
          expect(verify(pairs[alg].publicKey, message, sig, sigAlg)).to.equal(true);
        });

        it('the same (r, s) in raw r || s (IEEE P1363) form is rejected, since DER is required', () => {
          const { r, s } = parseDerSignature(sign(pairs[alg].privateKey, message));
          const raw = new Uint8Array(Buffer.from(r.toString(16).padStart(size * 2, '0') + s.toString(16).padStart(size * 2, '0'), 'hex'));
          expectRejected(pairs[alg].publicKey, message, raw, sigAlg, 'raw r||s');
        });
      }

      it('verify returns false for a modified message: a flipped bit, an appended byte, a truncation, an empty message', () => {
        const sig = sign(pairs[alg].privateKey, message);
        const cases: [string, Uint8Array][] = [
          ['first bit flipped', flipBit(message, 0)],
          ['last byte changed', flipBit(message, -1, 7)],
          ['middle byte changed', flipBit(message, message.length >> 1, 3)],
          ['byte appended', Uint8Array.of(...message, 0)],
          ['last byte dropped', message.subarray(0, message.length - 1)],
          ['empty', new Uint8Array(0)],
        ];
        for (const [what, data] of cases) expectRejected(pairs[alg].publicKey, data, sig, sigAlg, what);
      });

      it('verify returns false for a signature with any one of a spread of bits flipped', () => {
        const sig = sign(pairs[alg].privateKey, message);
        for (let i = 0; i < sig.length; i += Math.max(1, Math.floor(sig.length / 40))) {
          expectRejected(pairs[alg].publicKey, message, flipBit(sig, i, i % 8), sigAlg, `byte ${i}`);
        }
        expectRejected(pairs[alg].publicKey, message, flipBit(sig, -1, 0), sigAlg, 'last bit');
      });

      it('verify returns false for truncated and extended signatures', () => {
        const sig = sign(pairs[alg].privateKey, message);
        for (const cut of [1, 2, sig.length >> 1, sig.length - 1, sig.length]) {
          expectRejected(pairs[alg].publicKey, message, sig.subarray(0, sig.length - cut), sigAlg, `${cut} bytes cut`);
        }
        expectRejected(pairs[alg].publicKey, message, Uint8Array.of(...sig, 0), sigAlg, 'one byte appended');
        expectRejected(pairs[alg].publicKey, message, Uint8Array.of(...sig, ...sig), sigAlg, 'doubled');
      });

      it('verify returns false for garbage signatures', () => {
        const sig = sign(pairs[alg].privateKey, message);
        const garbage: [string, Uint8Array][] = [
          ['random, same length', randomBytes(sig.length)],
          ['random, 1 byte', randomBytes(1)],
          ['random, 1000 bytes', randomBytes(1000)],
          ['all zero', new Uint8Array(sig.length)],
          ['all 0xff', new Uint8Array(sig.length).fill(0xff)],
          ['empty SEQUENCE', Uint8Array.of(0x30, 0x00)],
          ['SEQUENCE of two zero INTEGERs', Uint8Array.of(0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00)],
          ['SEQUENCE claiming more than it holds', Uint8Array.of(0x30, 0x7f, 0x02, 0x01, 0x01)],
          ['text', utf8('this is not a signature')],
        ];
        for (const [what, bad] of garbage) expectRejected(pairs[alg].publicKey, message, bad, sigAlg, what);
      });

      it('verify returns false for a signature by another key of the same algorithm', () => {
        const sig = sign(others[alg].privateKey, message);
        expectRejected(pairs[alg].publicKey, message, sig, sigAlg, 'other key');
      });

      it('sign and verify throw TypeError when the algorithm does not match the key', () => {
        const sig = sign(pairs[alg].privateKey, message);
        for (const wrong of ALL_SIG_ALGS.filter((a) => a !== sigAlg)) {
          expect(() => sign(pairs[alg].privateKey, message, wrong), `sign ${wrong}`).to.throw(TypeError);
          expect(() => verify(pairs[alg].publicKey, message, sig, wrong), `verify ${wrong}`).to.throw(TypeError);
        }
      });

      it('sign throws TypeError when given a public key', () => {
        expect(() => sign(pairs[alg].publicKey, message)).to.throw(TypeError);
        expect(() => sign(pairs[alg].publicKey, message, sigAlg)).to.throw(TypeError);
      });
    });
  }

  it('verify throws TypeError for an algorithm name it does not know', () => {
    const sig = sign(pairs.p256.privateKey, message);
    expect(() => verify(pairs.p256.publicKey, message, sig, 'ecc-256-sha512-pkcs-sign' as SignatureAlg)).to.throw(TypeError);
  });

  it('sign and verify refuse an unsupported key (Ed25519) with UNSUPPORTED', async () => {
    const ed = await promisify(nodeGenerateKeyPair)('ed25519');
    for (const f of [() => sign(ed.privateKey, message), () => verify(ed.publicKey, message, new Uint8Array(64), RSA)]) {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(CertifierError);
      expect((err as CertifierError).code).to.equal('UNSUPPORTED');
    }
  });

  describe('signed claims written by the original Certifier Framework', () => {
    const read = (f: string) => readFileSync(join(ORIGINAL, f));
    const policy = decode<SignedClaimSequence>('signed_claim_sequence', read('policy.bin'));
    const claims = policy.claims ?? [];
    const policyCert = new X509Certificate(read('policy_cert_file.datica'));
    const policyPrivate = fromKeyMessage(decode<KeyMessage>('key_message', read('policy_key_file')));
    const platformPrivate = fromKeyMessage(decode<KeyMessage>('key_message', read('platform_key_file.bin')));
    const endorsement = decode<SignedClaimMessage>('signed_claim_message', read('platform_attest_endorsement.bin'));

    it('policy.bin holds two vse-clause claims, each signed with rsa-2048-sha256-pkcs-sign by an "rsa-2048-public" policyKey', () => {
      expect(claims).to.have.length(2);
      for (const c of claims) {
        expect(c.signingAlgorithm).to.equal(RSA);
        expect(c.signingKey?.keyType).to.equal('rsa-2048-public');
        expect(c.signingKey?.keyName).to.equal('policyKey');
        expect(c.signature).to.have.length(256);
        expect(decode<ClaimMessage>('claim_message', c.serializedClaimMessage!).claimFormat).to.equal('vse-clause');
      }
    });

    claims.forEach((c, i) => {
      const pub = () => fromKeyMessage(c.signingKey!);

      it(`claim ${i + 1} of policy.bin verifies under its signing key, and that key is the policy certificate's`, () => {
        expect(pub().type).to.equal('public');
        expect(keyAlgOf(pub())).to.equal('rsa2048');
        expect(pub().equals(policyCert.publicKey)).to.equal(true);
        expect(verify(pub(), c.serializedClaimMessage!, c.signature!, RSA)).to.equal(true);
        expect(verify(policyCert.publicKey, c.serializedClaimMessage!, c.signature!, RSA)).to.equal(true);
      });

      it(`claim ${i + 1} of policy.bin fails with any one byte of the serialized claim_message flipped`, () => {
        const data = c.serializedClaimMessage!;
        for (let j = 0; j < data.length; j++) {
          expectRejected(pub(), flipBit(data, j, j % 8), c.signature!, RSA, `claim byte ${j}`);
        }
      });

      it(`claim ${i + 1} of policy.bin fails with one byte of the signature flipped, and under the platform key`, () => {
        for (const j of [0, 1, 100, 254, 255]) expectRejected(pub(), c.serializedClaimMessage!, flipBit(c.signature!, j, 7), RSA, `signature byte ${j}`);
        expectRejected(platformPrivate, c.serializedClaimMessage!, c.signature!, RSA, 'platform key');
      });

      it(`claim ${i + 1}'s signature is plain PKCS#1 v1.5 over SHA-256 of serialized_claim_message, reproduced byte for byte by our sign`, () => {
        expect(rsaOpen(pub(), c.signature!)).to.equal(expectedEmsaSha256(c.serializedClaimMessage!));
        expect(toHex(sign(policyPrivate, c.serializedClaimMessage!, RSA))).to.equal(toHex(c.signature!));
      });
    });

    it("one claim's signature does not verify the other claim", () => {
      const [a, b] = [claims[0]!, claims[1]!];
      expectRejected(policyCert.publicKey, a.serializedClaimMessage!, b.signature!, RSA, 'claim 1 with signature 2');
      expectRejected(policyCert.publicKey, b.serializedClaimMessage!, a.signature!, RSA, 'claim 2 with signature 1');
    });

    it('signed_claim_1.bin and signed_claim_2.bin are the same two signed claims and verify', () => {
      ['signed_claim_1.bin', 'signed_claim_2.bin'].forEach((f, i) => {
        const s = decode<SignedClaimMessage>('signed_claim_message', read(f));
        expect(toHex(s.signature!)).to.equal(toHex(claims[i]!.signature!));
        expect(toHex(s.serializedClaimMessage!)).to.equal(toHex(claims[i]!.serializedClaimMessage!));
        expect(verify(fromKeyMessage(s.signingKey!), s.serializedClaimMessage!, s.signature!, RSA)).to.equal(true);
      });
    });

    it('platform_attest_endorsement.bin verifies under its signing key, which is the public half of platform_key_file.bin', () => {
      expect(endorsement.signingAlgorithm).to.equal(RSA);
      expect(endorsement.signingKey?.keyType).to.equal('rsa-2048-public');
      expect(endorsement.signingKey?.keyName).to.equal('platformKey');
      const pub = fromKeyMessage(endorsement.signingKey!);
      expect(pub.equals(createPublicKey(platformPrivate))).to.equal(true);
      expect(verify(pub, endorsement.serializedClaimMessage!, endorsement.signature!, RSA)).to.equal(true);
      expect(verify(platformPrivate, endorsement.serializedClaimMessage!, endorsement.signature!, RSA)).to.equal(true);
    });

    it('platform_attest_endorsement.bin fails with one byte flipped in claim or signature, and under the policy key', () => {
      const pub = fromKeyMessage(endorsement.signingKey!);
      const [data, sig] = [endorsement.serializedClaimMessage!, endorsement.signature!];
      for (const j of [0, data.length >> 1, data.length - 1]) expectRejected(pub, flipBit(data, j, 0), sig, RSA, `claim byte ${j}`);
      for (const j of [0, 128, 255]) expectRejected(pub, data, flipBit(sig, j, 0), RSA, `signature byte ${j}`);
      expectRejected(policyCert.publicKey, data, sig, RSA, 'policy key');
    });

    it('the endorsement signature is reproduced byte for byte by signing its claim with the platform key', () => {
      expect(rsaOpen(platformPrivate, endorsement.signature!)).to.equal(expectedEmsaSha256(endorsement.serializedClaimMessage!));
      expect(toHex(sign(platformPrivate, endorsement.serializedClaimMessage!, RSA))).to.equal(toHex(endorsement.signature!));
    });
  });
});
