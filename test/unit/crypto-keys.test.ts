// lib/crypto keys: generation, PKCS#8 / SPKI import and export in PEM and DER, the algorithm
// check, and the Certifier key_message form, including keys written by the original Certifier
// Framework (test/vectors/certifier-original) and a catalogue of malformed key_messages.

import { expect } from 'chai';
import { X509Certificate, constants, createPrivateKey, createPublicKey, generateKeyPair as nodeGenerateKeyPair, generateKeyPairSync, sign as nodeSign, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { p256, p384 } from '@noble/curves/nist.js';
import {
  KEY_ALGS, KEY_FORMAT, certifierKeyType, exportPrivateKey, exportPublicKey, fromKeyMessage, generateKeyPair,
  importPrivateKey, importPublicKey, isKeyAlg, keyAlgOf, looksLikePem, publicKeyFromSpki, publicKeyOf, randomBytes, readSpki, sign,
  toKeyMessage, utf8, verify, type KeyAlg, type KeyPair,
} from '../../lib/crypto/index.ts';
import { CertifierError, type ErrorCode } from '../../lib/errors/index.ts';
import { decode, encode } from '../../lib/wire/index.ts';
import { isPssSignedBy, pinnedAmdCerts, readAmdCert } from '../../lib/attest/index.ts';
import type { KeyMessage } from '../../lib/wire/types.ts';
import { encodeBitString, encodeOctets, encodeOid, encodeSmallInt, explicit, seq } from '../../lib/pki/der.ts';
import { VECTORS } from '../support/helpers.ts';

const ORIGINAL = join(VECTORS, 'certifier-original');
const genPair = promisify(nodeGenerateKeyPair);

const BASE_TYPE: Record<KeyAlg, string> = { p256: 'ecc-256', p384: 'ecc-384', rsa2048: 'rsa-2048' };
const CURVE: Partial<Record<KeyAlg, { name: string; size: number; p: bigint; n: bigint }>> = {
  p256: {
    name: 'P-256', size: 32,
    p: 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n,
    n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  },
  p384: {
    name: 'P-384', size: 48,
    p: 2n ** 384n - 2n ** 128n - 2n ** 96n + 2n ** 32n - 1n,
    n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
  },
};

const pkcs8 = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'der' });
const spki = (k: KeyObject) => publicKeyOf(k).export({ type: 'spki', format: 'der' });
const big = (b: Uint8Array | undefined) => (b && b.length ? BigInt('0x' + Buffer.from(b).toString('hex')) : 0n);
const bigToBytes = (n: bigint, size: number) => new Uint8Array(Buffer.from(n.toString(16).padStart(size * 2, '0'), 'hex'));
const text = (b: Uint8Array) => Buffer.from(b).toString('latin1');

function expectSamePrivate(a: KeyObject, b: KeyObject): void {
  expect(a.type).to.equal('private');
  expect(b.type).to.equal('private');
  expect(Buffer.from(pkcs8(a)).equals(pkcs8(b)), 'PKCS#8 encodings differ').to.equal(true);
}
function expectSamePublic(a: KeyObject, b: KeyObject): void {
  expect(Buffer.from(spki(a)).equals(spki(b)), 'SPKI encodings differ').to.equal(true);
}

/** Runs f, expecting a CertifierError with the given code; returns it. */
function expectCertifierError(f: () => unknown, code: ErrorCode, what?: string): CertifierError {
  let thrown: unknown;
  try {
    f();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, `${what ?? 'call'} did not throw`).to.be.instanceOf(CertifierError);
  expect((thrown as CertifierError).code, what).to.equal(code);
  return thrown as CertifierError;
}

/** key_message -> protobuf bytes -> key_message, as it would travel. */
const overTheWire = (km: KeyMessage): KeyMessage => decode<KeyMessage>('key_message', encode('key_message', km));
const readKeyMessage = (file: string) => decode<KeyMessage>('key_message', readFileSync(join(ORIGINAL, file)));

describe('crypto keys', () => {
  const pairs = {} as Record<KeyAlg, KeyPair>;
  const others = {} as Record<KeyAlg, KeyPair>;

  before(async () => {
    for (const alg of KEY_ALGS) {
      [pairs[alg], others[alg]] = await Promise.all([generateKeyPair(alg), generateKeyPair(alg)]);
    }
  });

  it('KEY_ALGS is p256, p384 and rsa2048, and isKeyAlg recognises exactly those', () => {
    expect([...KEY_ALGS]).to.deep.equal(['p256', 'p384', 'rsa2048']);
    for (const alg of KEY_ALGS) expect(isKeyAlg(alg)).to.equal(true);
    for (const s of ['P256', 'p521', 'rsa4096', 'ed25519', '']) expect(isKeyAlg(s), s).to.equal(false);
  });

  for (const alg of KEY_ALGS) {
    describe(`${alg}: generation and PKCS#8 / SPKI`, () => {
      it(`generateKeyPair('${alg}') gives a private and a public key that keyAlgOf reports as ${alg}`, () => {
        const { privateKey, publicKey } = pairs[alg];
        expect(privateKey.type).to.equal('private');
        expect(publicKey.type).to.equal('public');
        expect(keyAlgOf(privateKey)).to.equal(alg);
        expect(keyAlgOf(publicKey)).to.equal(alg);
        expectSamePublic(privateKey, publicKey);
        if (alg === 'rsa2048') expect(publicKey.asymmetricKeyDetails?.publicExponent).to.equal(65537n);
      });

      it('two generated key pairs differ', () => {
        expect(Buffer.from(spki(pairs[alg].publicKey)).equals(spki(others[alg].publicKey))).to.equal(false);
      });

      it('the private key exported as PKCS#8 PEM imports back as the same key', () => {
        const pem = exportPrivateKey(pairs[alg].privateKey, 'pem');
        expect(text(pem)).to.match(/^-----BEGIN PRIVATE KEY-----\n/);
        expect(looksLikePem(pem)).to.equal(true);
        const back = importPrivateKey(pem);
        expectSamePrivate(back, pairs[alg].privateKey);
        expect(keyAlgOf(back)).to.equal(alg);
      });

      it('a PEM public key after a long text preamble (openssl -text) is still read as PEM', () => {
        const pem = exportPublicKey(pairs[alg].publicKey, 'pem');
        const withText = new TextEncoder().encode(`${'Public-Key: (text openssl prints first)\n'.repeat(20)}${text(pem)}`);
        expect(looksLikePem(withText)).to.equal(true);
        expect(importPublicKey(withText).equals(pairs[alg].publicKey)).to.equal(true);
      });

      it('PEM is the default private export format', () => {
        expect(text(exportPrivateKey(pairs[alg].privateKey))).to.equal(text(exportPrivateKey(pairs[alg].privateKey, 'pem')));
      });

      it('the private key exported as PKCS#8 DER imports back as the same key', () => {
        const der = exportPrivateKey(pairs[alg].privateKey, 'der');
        expect(der[0]).to.equal(0x30);
        expect(looksLikePem(der)).to.equal(false);
        expect(Buffer.from(der).equals(pkcs8(pairs[alg].privateKey))).to.equal(true);
        expectSamePrivate(importPrivateKey(der), pairs[alg].privateKey);
      });

      it('the public key exported as SPKI PEM imports back as the same key', () => {
        const pem = exportPublicKey(pairs[alg].publicKey, 'pem');
        expect(text(pem)).to.match(/^-----BEGIN PUBLIC KEY-----\n/);
        const back = importPublicKey(pem);
        expect(back.type).to.equal('public');
        expectSamePublic(back, pairs[alg].publicKey);
      });

      it('the public key exported as SPKI DER imports back as the same key', () => {
        const der = exportPublicKey(pairs[alg].publicKey, 'der');
        expect(Buffer.from(der).equals(spki(pairs[alg].publicKey))).to.equal(true);
        const back = importPublicKey(der);
        expect(back.type).to.equal('public');
        expectSamePublic(back, pairs[alg].publicKey);
      });

      it('exportPublicKey of the private key gives the same bytes as of the public key, in PEM and DER', () => {
        for (const f of ['pem', 'der'] as const) {
          expect(Buffer.from(exportPublicKey(pairs[alg].privateKey, f)).equals(exportPublicKey(pairs[alg].publicKey, f)), f).to.equal(true);
        }
      });

      it('exportPrivateKey of a public key throws TypeError', () => {
        expect(() => exportPrivateKey(pairs[alg].publicKey)).to.throw(TypeError);
      });

      it('importPublicKey of the private key PEM returns its public key', () => {
        const pub = importPublicKey(exportPrivateKey(pairs[alg].privateKey, 'pem'));
        expect(pub.type).to.equal('public');
        expectSamePublic(pub, pairs[alg].publicKey);
      });

      it(`importPrivateKey reads the traditional ${alg === 'rsa2048' ? 'PKCS#1 "RSA' : 'SEC1 "EC'} PRIVATE KEY" PEM as the same key`, () => {
        const type = alg === 'rsa2048' ? 'pkcs1' : 'sec1';
        const pem = pairs[alg].privateKey.export({ type, format: 'pem' }) as string;
        expect(pem).to.match(alg === 'rsa2048' ? /^-----BEGIN RSA PRIVATE KEY-----/ : /^-----BEGIN EC PRIVATE KEY-----/);
        expectSamePrivate(importPrivateKey(utf8(pem)), pairs[alg].privateKey);
      });

      it('publicKeyOf gives the public key of a private key and returns a public key unchanged', () => {
        expectSamePublic(publicKeyOf(pairs[alg].privateKey), pairs[alg].publicKey);
        expect(publicKeyOf(pairs[alg].publicKey)).to.equal(pairs[alg].publicKey);
      });
    });
  }

  it('exportPublicKey writes EC keys (built from the coordinates, not by OpenSSL) byte for byte as OpenSSL does', async () => {
    // 64 keys per curve: some coordinates start with a zero byte, which must stay.
    for (const namedCurve of ['P-256', 'P-384', 'P-521', 'secp256k1']) {
      for (let i = 0; i < 64; i++) {
        const { publicKey, privateKey } = await genPair('ec', { namedCurve });
        const want = publicKey.export({ type: 'spki', format: 'der' });
        expect(Buffer.from(exportPublicKey(publicKey, 'der')).equals(want), namedCurve).to.equal(true);
        expect(Buffer.from(exportPublicKey(privateKey, 'der')).equals(want), namedCurve).to.equal(true);
      }
    }
  });

  it('publicKeyFromSpki reads every key createPublicKey reads, as the same key, and refuses a point off the curve', async () => {
    for (const [type, o] of [['ec', { namedCurve: 'P-256' }], ['ec', { namedCurve: 'P-384' }], ['ec', { namedCurve: 'P-521' }], ['rsa', { modulusLength: 2048 }], ['ed25519', {}]] as const) {
      const { publicKey } = await genPair(type as 'ec', o as { namedCurve: string });
      const der = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
      expect(publicKeyFromSpki(der).equals(publicKey), type).to.equal(true);
      if (type !== 'ec') continue;
      const offCurve = new Uint8Array(der);
      offCurve[offCurve.length - 1]! ^= 1; // y + or - 1: no longer on the curve
      expect(() => publicKeyFromSpki(offCurve)).to.throw();
      expect(() => createPublicKey({ key: Buffer.from(offCurve), format: 'der', type: 'spki' })).to.throw();
    }
  });

  it('readSpki checks a key as strictly as publicKeyFromSpki, names its algorithm, and imports the same key', async () => {
    const cases = [['ec', { namedCurve: 'P-256' }, 'p256'], ['ec', { namedCurve: 'P-384' }, 'p384'], ['ec', { namedCurve: 'P-521' }, undefined],
      ['rsa', { modulusLength: 2048 }, 'rsa2048'], ['rsa', { modulusLength: 1024 }, undefined], ['ed25519', {}, undefined]] as const;
    for (const [type, o, alg] of cases) {
      const { publicKey } = await genPair(type as 'ec', o as { namedCurve: string });
      const der = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
      const read = readSpki(der);
      expect(read.alg, `${type} ${JSON.stringify(o)}`).to.equal(alg);
      der.fill(0); // the key must not depend on the caller's buffer
      expect(read.key().equals(publicKey), type).to.equal(true);
      expect(read.key()).to.equal(read.key()); // imported once
    }
    for (const namedCurve of ['P-256', 'P-384']) {
      const { publicKey } = await genPair('ec', { namedCurve });
      const der = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
      const offCurve = new Uint8Array(der);
      offCurve[offCurve.length - 1]! ^= 1;
      expect(() => readSpki(offCurve), namedCurve).to.throw();
      const xTooBig = new Uint8Array(der);
      xTooBig.fill(0xff, der.length - 2 * (namedCurve === 'P-256' ? 32 : 48), der.length - (namedCurve === 'P-256' ? 32 : 48));
      expect(() => readSpki(xTooBig), `${namedCurve} x >= p`).to.throw();
    }
  });

  it('readSpki takes exactly the points noble\'s Point.fromBytes takes (coordinates below p, on the curve, not (0, 0))', async () => {
    for (const [namedCurve, Point, size] of [['P-256', p256.Point, 32], ['P-384', p384.Point, 48]] as const) {
      const { publicKey } = await genPair('ec', { namedCurve });
      const der = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
      const start = der.length - 2 * size; // x || y, after 0x04
      const variants: Uint8Array[] = [der];
      const variant = (change: (d: Uint8Array) => void) => {
        const d = new Uint8Array(der);
        change(d);
        variants.push(d);
      };
      variant((d) => d.fill(0, start)); // (0, 0)
      variant((d) => d.fill(0xff, start + size)); // y >= p
      variant((d) => d.set(Point.Fp.toBytes(Point.Fp.neg(Point.Fp.fromBytes(der.subarray(start + size)))), start + size)); // -y: on the curve
      for (let i = 0; i < 40; i++) variant((d) => (d[start + ((i * 7) % (2 * size))]! ^= 1 << (i % 8)));
      for (const d of variants) {
        let noble = true;
        try {
          Point.fromBytes(d.subarray(start - 1));
        } catch {
          noble = false;
        }
        let ours = true;
        try {
          readSpki(d);
        } catch {
          ours = false;
        }
        expect(ours, `${namedCurve} ${Buffer.from(d.subarray(start)).toString('hex')}`).to.equal(noble);
      }
      expect(variants.filter((d) => { try { return Boolean(readSpki(d)); } catch { return false; } })).to.have.length(2); // the key and its negation
    }
  });

  // Each form a P-256 or P-384 point can take in an SPKI, against the curve its OID names. The
  // points are real: (5, y) and (x, 1) on P-256, (2, y) and (x, 1) on P-384, so x + p and y + p
  // (same coordinates modulo p, still 32 or 48 bytes) test the range check, not the curve equation.
  const POINT_FORMS = {
    'P-256': {
      oid: '1.2.840.10045.3.1.7',
      smallX: [`${'00'.repeat(31)}05`, '459243b9aa581806fe913bce99817ade11ca503c64d9a3c533415c083248fbcc', 'ffffffff00000001000000000000000000000001000000000000000000000004'],
      smallY: ['09e78d4ef60d05f750f6636209092bc43cbdd6b47e11a9de20a9feb2a50bb96c', `${'00'.repeat(31)}01`, 'ffffffff00000001000000000000000000000001000000000000000000000000'],
    },
    'P-384': {
      oid: '1.3.132.0.34',
      smallX: [`${'00'.repeat(47)}02`, '8cdeadbbd04911a3c1931e26df3fa6439dca9c7eb286fbd46fc319f0e2bb780232baf57825fc0c1912ada2fefe84024c', 'fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff000000000000000100000001'],
      smallY: ['2261b2bf605c22f2f3aef6338719b2c486388ad5240719a5257315969ef01ba27f0a104c89704773a81fdabee6ab5c78', `${'00'.repeat(47)}01`, 'fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff000000000000000100000000'],
    },
  } as const;

  it('readSpki takes a point in the uncompressed or compressed form on the curve its OID names, coordinates below p, as noble does, and no other form', () => {
    const spki = (oid: string, pointHex: string) => seq(seq(encodeOid('1.2.840.10045.2.1'), encodeOid(oid)), encodeBitString(Uint8Array.from(Buffer.from(pointHex, 'hex'))));
    for (const [crv, Point, other] of [['P-256', p256.Point, 'P-384'], ['P-384', p384.Point, 'P-256']] as const) {
      const { oid, smallX: [x, y, xPlusP], smallY: [x1, y1, y1PlusP] } = POINT_FORMS[crv];
      const odd = (BigInt(`0x${y}`) & 1n) === 1n; // the parity of (x, y)'s y: its compressed prefix
      const rows: [what: string, point: string, takes: boolean][] = [
        ['uncompressed', `04${x}${y}`, true],
        ['uncompressed, y small', `04${x1}${y1}`, true],
        ['uncompressed, x + p', `04${xPlusP}${y}`, false],
        ['uncompressed, y + p', `04${x1}${y1PlusP}`, false],
        ['uncompressed (0, 0)', `04${'00'.repeat(x.length)}`, false],
        ['uncompressed, off the curve', `04${x}${y.slice(0, -1)}${(parseInt(y.slice(-1), 16) ^ 1).toString(16)}`, false],
        ['compressed', `${odd ? '03' : '02'}${x}`, true],
        ['compressed, the other y', `${odd ? '02' : '03'}${x}`, true],
        ['compressed, x + p', `02${xPlusP}`, false],
        ['hybrid', `${odd ? '07' : '06'}${x}${y}`, false],
        ['hybrid, the wrong parity', `${odd ? '06' : '07'}${x}${y}`, false],
        ['prefix 05', `05${x}${y}`, false],
        ['prefix 00', `00${x}${y}`, false],
        ['the point at infinity', '00', false],
        ['a byte short', `04${x}${y.slice(2)}`, false],
        ['a byte long', `04${x}${y}00`, false],
        ['compressed, a byte short', `02${x.slice(2)}`, false],
        ['no point', '', false],
      ];
      for (const [what, point, takes] of rows) {
        const label = `${crv} ${what}`;
        let noble = true;
        try {
          Point.fromBytes(Uint8Array.from(Buffer.from(point, 'hex'))).assertValidity();
        } catch {
          noble = false;
        }
        expect(noble, `noble: ${label}`).to.equal(takes);
        if (takes) {
          const read = readSpki(spki(oid, point));
          expect(read.alg, label).to.equal(crv === 'P-256' ? 'p256' : 'p384');
          expect(read.key().export({ format: 'jwk' }).x, label).to.equal(Buffer.from(point.slice(2, 2 + x.length), 'hex').toString('base64url'));
        } else {
          expect(() => readSpki(spki(oid, point)), label).to.throw();
        }
      }
      // A file holding such a key: refused, not an abort (Node's answer to the point at infinity).
      const infinity = spki(oid, '00');
      expect(() => importPublicKey(infinity), `${crv} importPublicKey`).to.throw(CertifierError).with.property('code', 'INVALID_KEY');
      expect(() => importPublicKey(new TextEncoder().encode(`-----BEGIN PUBLIC KEY-----\n${Buffer.from(infinity).toString('base64')}\n-----END PUBLIC KEY-----\n`)), `${crv} PEM`).to.throw(CertifierError);
      // The curve is the one the OID names: this curve's point under the other's OID is no key.
      expect(() => readSpki(spki(POINT_FORMS[other].oid, `04${x}${y}`)), `${crv} point, ${other} OID`).to.throw();
      expect(() => readSpki(spki(POINT_FORMS[other].oid, `02${x}`)), `${crv} compressed point, ${other} OID`).to.throw();
    }
  });

  it('refuses an EC key whose curve is given by its parameters rather than named (RFC 5480 2.1.1; CVE-2020-0601), though OpenSSL reads it as P-256 or P-384 (INVALID_KEY)', () => {
    // Written by openssl ecparam -param_enc explicit (test/vectors/pki/README.md).
    const vector = (name: string) => new Uint8Array(readFileSync(join(VECTORS, 'pki', name)));
    const derOf = (pem: Uint8Array) => new Uint8Array(Buffer.from(Buffer.from(pem).toString('latin1').replace(/-----[^-]+-----|\s/g, ''), 'base64'));
    const expectExplicit = (read: () => unknown, label: string) =>
      expect(read, label).to.throw(CertifierError, 'gives its curve\'s parameters').with.property('code', 'INVALID_KEY');
    const privates = { 'P-256 PKCS#8': vector('explicit-p256.key.pem'), 'P-384 SEC1': vector('explicit-p384.sec1.pem') };
    for (const [label, pem] of Object.entries(privates)) {
      expectExplicit(() => importPrivateKey(pem), `${label} PEM`);
      expectExplicit(() => importPrivateKey(derOf(pem)), `${label} DER`);
    }
    const spki = derOf(vector('explicit-p256.pub.pem'));
    expectExplicit(() => importPublicKey(vector('explicit-p256.pub.pem')), 'SPKI PEM');
    expectExplicit(() => importPublicKey(spki), 'SPKI DER');
    expectExplicit(() => importPublicKey(vector('explicit-p256.cert.pem')), 'certificate PEM');
    expectExplicit(() => publicKeyFromSpki(spki), 'publicKeyFromSpki');
    expectExplicit(() => readSpki(spki), 'readSpki');
    // The same keys with the curve named are taken: the parameters, not the keys, are refused.
    for (const pem of Object.values(privates)) {
      const named = createPrivateKey({ key: createPrivateKey(Buffer.from(pem)).export({ format: 'jwk' }), format: 'jwk' });
      expectSamePrivate(importPrivateKey(new Uint8Array(pkcs8(named))), named);
    }
    const namedSpki = new Uint8Array(createPublicKey({ key: createPublicKey(Buffer.from(vector('explicit-p256.pub.pem'))).export({ format: 'jwk' }), format: 'jwk' }).export({ type: 'spki', format: 'der' }));
    expect(readSpki(namedSpki).alg).to.equal('p256');
    expect(keyAlgOf(importPublicKey(namedSpki))).to.equal('p256');
  });

  describe('EC keys in SEC1, and encrypted keys', () => {
    it('reads an EC key in SEC1 DER (openssl ec -outform DER) as in SEC1 PEM', async () => {
      const { privateKey } = await generateKeyPair('p256');
      const sec1 = privateKey.export({ type: 'sec1', format: 'der' });
      expectSamePrivate(importPrivateKey(new Uint8Array(sec1)), privateKey);
      expectSamePrivate(importPrivateKey(utf8(privateKey.export({ type: 'sec1', format: 'pem' }) as string)), privateKey);
    });

    it('says an encrypted private key is encrypted (INVALID_KEY), rather than "not a private key"', async () => {
      const { privateKey } = await generateKeyPair('p256');
      const encrypted = privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }) as string;
      expect(() => importPrivateKey(utf8(encrypted))).to.throw(CertifierError, 'the private key is encrypted with a passphrase');
    });
  });

  describe('refusing keys', () => {
    const unsupported = {} as Record<'ed25519' | 'x25519' | 'p521' | 'secp256k1' | 'rsa1024' | 'rsa3072' | 'rsaPss', { privateKey: KeyObject; publicKey: KeyObject }>;
    before(async () => {
      [unsupported.ed25519, unsupported.x25519, unsupported.p521, unsupported.secp256k1, unsupported.rsa1024, unsupported.rsa3072, unsupported.rsaPss] = await Promise.all([
        genPair('ed25519'),
        genPair('x25519'),
        genPair('ec', { namedCurve: 'P-521' }),
        genPair('ec', { namedCurve: 'secp256k1' }),
        genPair('rsa', { modulusLength: 1024 }),
        genPair('rsa', { modulusLength: 3072 }),
        genPair('rsa-pss', { modulusLength: 2048 }),
      ]);
    });

    it('keyAlgOf throws UNSUPPORTED for Ed25519, X25519, P-521, secp256k1, RSA-1024, RSA-3072 and RSASSA-PSS keys', () => {
      for (const [name, pair] of Object.entries(unsupported)) {
        expectCertifierError(() => keyAlgOf(pair.privateKey), 'UNSUPPORTED', `${name} private`);
        expectCertifierError(() => keyAlgOf(pair.publicKey), 'UNSUPPORTED', `${name} public`);
      }
    });

    it('the UNSUPPORTED message names the rejected key type', () => {
      expect(expectCertifierError(() => keyAlgOf(unsupported.rsa1024.publicKey), 'UNSUPPORTED').message).to.include('RSA-1024');
      expect(expectCertifierError(() => keyAlgOf(unsupported.ed25519.publicKey), 'UNSUPPORTED').message).to.include('ed25519');
    });

    it('importPrivateKey refuses well-formed but unsupported keys (Ed25519, RSA-1024, ...) with UNSUPPORTED, in PEM and DER', () => {
      for (const [name, pair] of Object.entries(unsupported)) {
        for (const format of ['pem', 'der'] as const) {
          const bytes = format === 'pem'
            ? utf8(pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)
            : new Uint8Array(pair.privateKey.export({ type: 'pkcs8', format: 'der' }));
          expectCertifierError(() => importPrivateKey(bytes), 'UNSUPPORTED', `${name} ${format}`);
        }
      }
    });

    it('importPublicKey refuses well-formed but unsupported keys (Ed25519, RSA-1024, ...) with UNSUPPORTED, in PEM and DER', () => {
      for (const [name, pair] of Object.entries(unsupported)) {
        for (const format of ['pem', 'der'] as const) {
          const bytes = format === 'pem'
            ? utf8(pair.publicKey.export({ type: 'spki', format: 'pem' }) as string)
            : new Uint8Array(pair.publicKey.export({ type: 'spki', format: 'der' }));
          expectCertifierError(() => importPublicKey(bytes), 'UNSUPPORTED', `${name} ${format}`);
        }
      }
    });

    const garbage = (): Record<string, Uint8Array> => {
      const der = exportPrivateKey(pairs.p256.privateKey, 'der');
      const pubDer = exportPublicKey(pairs.p256.publicKey, 'der');
      return {
        'empty input': new Uint8Array(0),
        'random bytes': randomBytes(200),
        'plain text': utf8('this is not a key'),
        'a PEM block with a broken body': utf8('-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n'),
        'a PEM header alone': utf8('-----BEGIN PUBLIC KEY-----\n'),
        'truncated PKCS#8 DER': der.subarray(0, der.length - 10),
        'truncated SPKI DER': pubDer.subarray(0, pubDer.length - 10),
        'DER with a flipped tag byte': Uint8Array.of(0x31, ...der.subarray(1)),
      };
    };

    // SEC1 ECPrivateKey (RFC 5915) rows: curve OID, scalar, public point written in the file (if any).
    const P256 = '1.2.840.10045.3.1.7';
    const P384 = '1.3.132.0.34';
    const atInfinity: [string, string, string, string?][] = [
      ['P-256, scalar 1, public point 00 (infinity)', P256, '01'.padStart(64, '0'), '00'],
      ['P-384, scalar 1, public point 00 (infinity)', P384, '01'.padStart(96, '0'), '00'],
      ['P-256, scalar 0', P256, '00'.repeat(32)],
      ['P-256, scalar the group order', P256, 'ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551'],
      ['P-384, scalar 0', P384, '00'.repeat(48)],
    ];
    it('importPrivateKey refuses an EC key whose public point is at infinity (written so, or from a scalar of 0 or the order) with INVALID_KEY, not an abort', () => {
      for (const [label, oid, scalar, point] of atInfinity) {
        const der = seq(encodeSmallInt(1), encodeOctets(Buffer.from(scalar, 'hex')), explicit(0, encodeOid(oid)), ...(point ? [explicit(1, encodeBitString(Buffer.from(point, 'hex')))] : []));
        const pem = new TextEncoder().encode(`-----BEGIN EC PRIVATE KEY-----\n${Buffer.from(der).toString('base64')}\n-----END EC PRIVATE KEY-----\n`);
        expectCertifierError(() => importPrivateKey(der), 'INVALID_KEY', `${label} (DER)`);
        expectCertifierError(() => importPrivateKey(pem), 'INVALID_KEY', `${label} (PEM)`);
      }
    });

    it('importPrivateKey refuses, in PEM and DER, a key whose parts do not belong together (INVALID_KEY), as fromKeyMessage does: an EC scalar not matching its public point, an RSA private exponent or CRT value of another key', () => {
      const jwkOf = (k: KeyObject) => k.export({ format: 'jwk' });
      const [ec, ecOther] = [jwkOf(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey), jwkOf(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey)];
      const [rsa, rsaOther] = [jwkOf(pairs.rsa2048.privateKey), jwkOf(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey)];
      // Node reads each of these, and OpenSSL signs with them (with the RSA ones, correctly: it
      // checks a CRT result and falls back to d, hiding the bad value).
      const mixed: [string, JsonWebKey][] = [
        ['P-384 scalar of another key', { ...ec, d: ecOther.d }],
        ['RSA private exponent of another key', { ...rsa, d: rsaOther.d }],
        ['RSA dp of another key', { ...rsa, dp: rsaOther.dp }],
        ['RSA iqmp of another key', { ...rsa, qi: rsaOther.qi }],
      ];
      for (const [label, jwk] of mixed) {
        const key = createPrivateKey({ key: jwk, format: 'jwk' });
        const e = expectCertifierError(() => importPrivateKey(new Uint8Array(key.export({ type: 'pkcs8', format: 'der' }))), 'INVALID_KEY', `${label} (DER)`);
        expect(e.message, label).to.match(/^the private key's parts do not belong together: /);
        expectCertifierError(() => importPrivateKey(utf8(key.export({ type: 'pkcs8', format: 'pem' }) as string)), 'INVALID_KEY', `${label} (PEM)`);
      }
      expectSamePrivate(importPrivateKey(utf8(pairs.rsa2048.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string)), pairs.rsa2048.privateKey);
    });

    it('importPrivateKey refuses garbage with INVALID_KEY', () => {
      for (const [name, bytes] of Object.entries(garbage())) {
        expectCertifierError(() => importPrivateKey(bytes), 'INVALID_KEY', name);
      }
    });

    it('importPublicKey refuses garbage with INVALID_KEY', () => {
      for (const [name, bytes] of Object.entries(garbage())) {
        expectCertifierError(() => importPublicKey(bytes), 'INVALID_KEY', name);
      }
    });

    it('importPrivateKey refuses a public key, in PEM and DER, with INVALID_KEY', () => {
      expectCertifierError(() => importPrivateKey(exportPublicKey(pairs.p256.publicKey, 'pem')), 'INVALID_KEY', 'pem');
      expectCertifierError(() => importPrivateKey(exportPublicKey(pairs.p256.publicKey, 'der')), 'INVALID_KEY', 'der');
    });

    it('importPublicKey refuses a PKCS#8 DER private key (DER must be SPKI) with INVALID_KEY', () => {
      expectCertifierError(() => importPublicKey(exportPrivateKey(pairs.p384.privateKey, 'der')), 'INVALID_KEY');
    });

    it('importPrivateKey refuses a passphrase-encrypted PKCS#8 PEM with INVALID_KEY', () => {
      const pem = pairs.p256.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' }) as string;
      expect(pem).to.match(/^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
      expectCertifierError(() => importPrivateKey(utf8(pem)), 'INVALID_KEY');
    });

    it('the INVALID_KEY error keeps the underlying parse error as its cause', () => {
      const err = expectCertifierError(() => importPrivateKey(utf8('nope')), 'INVALID_KEY');
      expect(err.cause).to.be.instanceOf(Error);
      expect(err.exitStatus).to.equal(1);
    });
  });

  describe('key_message (Certifier "vse-key" form)', () => {
    for (const alg of KEY_ALGS) {
      it(`a ${alg} private key becomes a "${BASE_TYPE[alg]}-private" key_message and comes back as the same private key`, () => {
        const km = toKeyMessage(pairs[alg].privateKey, 'my-key');
        expect(km.keyType).to.equal(`${BASE_TYPE[alg]}-private`);
        expect(km.keyFormat).to.equal(KEY_FORMAT).and.to.equal('vse-key');
        expect(km.keyName).to.equal('my-key');
        expect(certifierKeyType(pairs[alg].privateKey)).to.equal(km.keyType);
        const back = fromKeyMessage(overTheWire(km));
        expectSamePrivate(back, pairs[alg].privateKey);
        expect(keyAlgOf(back)).to.equal(alg);
      });

      it(`a ${alg} public key becomes a "${BASE_TYPE[alg]}-public" key_message without private fields and comes back as the same public key`, () => {
        const km = toKeyMessage(pairs[alg].publicKey);
        expect(km.keyType).to.equal(`${BASE_TYPE[alg]}-public`);
        expect(km).to.not.have.property('keyName');
        if (alg === 'rsa2048') {
          expect(Object.keys(km.rsaKey!).sort()).to.deep.equal(['publicExponent', 'publicModulus']);
        } else {
          expect(km.eccKey!.privateMultiplier).to.equal(undefined);
        }
        const back = fromKeyMessage(overTheWire(km));
        expect(back.type).to.equal('public');
        expectSamePublic(back, pairs[alg].publicKey);
      });

      it(`a ${alg} private key_message relabelled "-public" imports as the public key only`, () => {
        const km = { ...toKeyMessage(pairs[alg].privateKey), keyType: `${BASE_TYPE[alg]}-public` };
        const back = fromKeyMessage(km);
        expect(back.type).to.equal('public');
        expectSamePublic(back, pairs[alg].publicKey);
      });
    }

    for (const alg of ['p256', 'p384'] as const) {
      it(`a ${alg} key_message whose curve parameters are not ${CURVE[alg]!.name}'s is refused (INVALID_KEY), and one without them is read`, () => {
        const km = toKeyMessage(pairs[alg].publicKey);
        const e = km.eccKey!;
        const flipped = (b: Uint8Array) => Uint8Array.from(b, (x, i) => (i === b.length - 1 ? x ^ 1 : x));
        for (const [field, changed] of [
          ['order_of_base_point', { orderOfBasePoint: flipped(e.orderOfBasePoint!) }], ['curve_p', { curveP: flipped(e.curveP!) }],
          ['curve_b', { curveB: flipped(e.curveB!) }], ['base_point.y', { basePoint: { x: e.basePoint!.x, y: flipped(e.basePoint!.y!) } }],
        ] as const) {
          expect(() => fromKeyMessage({ ...km, eccKey: { ...e, ...changed } }), field).to.throw(CertifierError, `${field} is not that of`).with.property('code', 'INVALID_KEY');
        }
        const bare = { ...km, eccKey: { curveName: e.curveName, publicPoint: e.publicPoint } };
        expectSamePublic(fromKeyMessage(bare), pairs[alg].publicKey);
      });

      it(`a ${alg} key_message carries the ${CURVE[alg]!.name} name, field prime, order and a ${CURVE[alg]!.size}-byte affine public point`, () => {
        const c = CURVE[alg]!;
        const e = toKeyMessage(pairs[alg].privateKey).eccKey!;
        expect(e.curveName).to.equal(c.name);
        expect(big(e.curveP)).to.equal(c.p);
        expect(big(e.orderOfBasePoint)).to.equal(c.n);
        expect(big(e.curveA)).to.equal(c.p - 3n);
        for (const b of [e.curveP, e.curveA, e.curveB, e.basePoint?.x, e.basePoint?.y, e.publicPoint?.x, e.publicPoint?.y, e.privateMultiplier]) {
          expect(b).to.have.length(c.size);
        }
        const jwk = pairs[alg].publicKey.export({ format: 'jwk' });
        expect(Buffer.from(e.publicPoint!.x!).toString('base64url')).to.equal(jwk.x);
        expect(Buffer.from(e.publicPoint!.y!).toString('base64url')).to.equal(jwk.y);
      });

      it(`a ${alg} private key_message without public_point imports, the point derived from private_multiplier`, () => {
        const km = toKeyMessage(pairs[alg].privateKey);
        delete km.eccKey!.publicPoint;
        expectSamePrivate(fromKeyMessage(km), pairs[alg].privateKey);
      });

      it(`a ${alg} key_message with a one-byte private_multiplier (d = 1) and the base point as public point imports`, () => {
        const km = toKeyMessage(pairs[alg].privateKey);
        const e = km.eccKey!;
        e.privateMultiplier = Uint8Array.of(1);
        e.publicPoint = { x: e.basePoint!.x!, y: e.basePoint!.y! };
        const key = fromKeyMessage(overTheWire(km));
        const jwk = key.export({ format: 'jwk' });
        expect(big(new Uint8Array(Buffer.from(jwk.d!, 'base64url')))).to.equal(1n);
        expect(jwk.x).to.equal(Buffer.from(e.basePoint!.x!).toString('base64url'));
      });
    }

    it('an RSA-2048 key_message carries a 256-byte modulus, exponent 65537 and all CRT fields', () => {
      const r = toKeyMessage(pairs.rsa2048.privateKey).rsaKey!;
      expect(r.publicModulus).to.have.length(256);
      expect(Buffer.from(r.publicExponent!).toString('hex')).to.equal('010001');
      expect(big(r.privateP) * big(r.privateQ)).to.equal(big(r.publicModulus));
      for (const f of ['privateExponent', 'privateP', 'privateQ', 'privateDp', 'privateDq', 'privateIqmp'] as const) {
        expect(r[f]?.length, f).to.be.greaterThan(0);
      }
    });

    it('an RSA-2048 key_message without the CRT fields (dp, dq, iqmp) still imports, signs and verifies', () => {
      const km = toKeyMessage(pairs.rsa2048.privateKey);
      delete km.rsaKey!.privateDp;
      delete km.rsaKey!.privateDq;
      delete km.rsaKey!.privateIqmp;
      const key = fromKeyMessage(overTheWire(km));
      expectSamePrivate(key, pairs.rsa2048.privateKey);
      const msg = utf8('signed with derived CRT values');
      expect(verify(pairs.rsa2048.publicKey, msg, sign(key, msg), 'rsa-2048-sha256-pkcs-sign')).to.equal(true);
    });

    it('an RSA-1024 key_message is refused with UNSUPPORTED', async () => {
      const { privateKey } = await genPair('rsa', { modulusLength: 1024 });
      const jwk = privateKey.export({ format: 'jwk' });
      const b = (s: string | undefined) => new Uint8Array(Buffer.from(s!, 'base64url'));
      const rsaKey = {
        publicModulus: b(jwk.n), publicExponent: b(jwk.e), privateExponent: b(jwk.d),
        privateP: b(jwk.p), privateQ: b(jwk.q), privateDp: b(jwk.dp), privateDq: b(jwk.dq), privateIqmp: b(jwk.qi),
      };
      expectCertifierError(() => fromKeyMessage({ keyType: 'rsa-1024-private', keyFormat: 'vse-key', rsaKey }), 'UNSUPPORTED', 'private');
      expectCertifierError(() => fromKeyMessage({ keyType: 'rsa-1024-public', keyFormat: 'vse-key', rsaKey }), 'UNSUPPORTED', 'public');
    });

    it('an RSA key_message of a modulus far larger than 2048 bits is refused (UNSUPPORTED) before any arithmetic on it', () => {
      // Anybody may send simpleserver such a key (an endorsement's signer): checking a private
      // one's numbers grows with the square of its size, seconds here and minutes in one frame.
      const factor = () => {
        const b = randomBytes(16_384);
        b[0] = b[0]! | 0xc0; // two top bits: the product has all 2 x 131,072 bits
        b[b.length - 1] = b[b.length - 1]! | 1;
        return big(b);
      };
      const [p, q] = [factor(), factor()];
      const bytes = (n: bigint) => bigToBytes(n, Math.ceil(n.toString(16).length / 2));
      const rsaKey = { publicModulus: bytes(p * q), publicExponent: bytes(65537n), privateExponent: bytes(3n), privateP: bytes(p), privateQ: bytes(q) };
      // Its time is not asserted (tests assert no timings): the refusal names the size, found before any arithmetic.
      for (const keyType of ['rsa-2048-private', 'rsa-2048-public']) {
        const e = expectCertifierError(() => fromKeyMessage({ keyType, keyFormat: 'vse-key', rsaKey }), 'UNSUPPORTED', keyType);
        expect(e.message, keyType).to.contain('RSA-262144');
      }
    });

    it('an RSA key whose public exponent is longer than 64 bits is refused (UNSUPPORTED), from a key_message and from SPKI, and verifies no AMD certificate', () => {
      // Node turns the exponent into a BigInt, in time growing with the square of its length (this
      // one: seconds); a key_message or a certificate anybody sends may carry one.
      const n = Buffer.from(pairs.rsa2048.publicKey.export({ format: 'jwk' }).n!, 'base64url');
      const e = Buffer.from(randomBytes(150_000));
      e[0] = e[0]! | 0x80;
      e[e.length - 1] = e[e.length - 1]! | 1;
      const fresh = () => createPublicKey({ key: { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') }, format: 'jwk' });
      const spkiDer = new Uint8Array(fresh().export({ type: 'spki', format: 'der' }));
      const ask = readAmdCert(pinnedAmdCerts()[0]!.ask, 'ASK');
      // Each refused before the exponent is read as a number (its time is not asserted: tests assert no timings).
      const within = (_what: string, f: () => void) => f();
      within('key_message', () => expectCertifierError(() => fromKeyMessage({ keyType: 'rsa-2048-public', keyFormat: 'vse-key', rsaKey: { publicModulus: n, publicExponent: e } }), 'UNSUPPORTED', 'key_message'));
      within('readSpki', () => expect(readSpki(spkiDer).alg).to.equal(undefined));
      within('keyAlgOf', () => expectCertifierError(() => keyAlgOf(fresh()), 'UNSUPPORTED', 'keyAlgOf'));
      within('isPssSignedBy', () => expect(isPssSignedBy(ask, fresh())).to.equal(false));
    });

    it('verifies no AMD certificate with an RSA key over 4096 bits (AMD\'s are 4096), even when it made the signature: evidence may name a host\'s keys of up to 16384 as the VCEK\'s issuer', () => {
      // Each certificate named as the VCEK's issuer is tried with its own key; one of 16384 bits
      // and a long exponent costs tens of times the check of AMD's.
      const ask = readAmdCert(pinnedAmdCerts()[0]!.ask, 'ASK');
      const signedWith = (bits: number) => {
        const k = generateKeyPairSync('rsa', { modulusLength: bits });
        const signature = new Uint8Array(nodeSign('sha384', ask.tbs, { key: k.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }));
        return isPssSignedBy({ ...ask, signature }, k.publicKey);
      };
      expect(signedWith(2048), 'the control: a key AMD\'s rule allows').to.equal(true);
      expect(signedWith(4104)).to.equal(false);
    });

    describe('keys written by the original Certifier Framework', () => {
      const files = ['policy_key_file', 'platform_key_file.bin', 'attest_key_file.bin'];
      const policyCert = new X509Certificate(readFileSync(join(ORIGINAL, 'policy_cert_file.datica')));

      for (const file of files) {
        it(`${file} decodes to an "rsa-2048-private" key_message that imports as an RSA-2048 private key`, () => {
          const km = readKeyMessage(file);
          expect(km.keyType).to.equal('rsa-2048-private');
          expect(km.keyFormat).to.equal('vse-key');
          const key = fromKeyMessage(km);
          expect(key.type).to.equal('private');
          expect(keyAlgOf(key)).to.equal('rsa2048');
          expect(key.asymmetricKeyDetails?.publicExponent).to.equal(65537n);
          expect(certifierKeyType(key)).to.equal('rsa-2048-private');
        });

        it(`${file}: the imported key converts back to a key_message with the same RSA numbers`, () => {
          const original = readKeyMessage(file).rsaKey!;
          const ours = toKeyMessage(fromKeyMessage(readKeyMessage(file))).rsaKey!;
          for (const f of ['publicModulus', 'publicExponent', 'privateExponent', 'privateP', 'privateQ', 'privateDp', 'privateDq', 'privateIqmp'] as const) {
            expect(big(ours[f]), f).to.equal(big(original[f]));
          }
        });

        it(`${file} without its CRT fields (private_dp, private_dq, private_iqmp) imports as the same key and signs verifiably`, () => {
          const full = fromKeyMessage(readKeyMessage(file));
          const km = readKeyMessage(file);
          delete km.rsaKey!.privateDp;
          delete km.rsaKey!.privateDq;
          delete km.rsaKey!.privateIqmp;
          const key = fromKeyMessage(km);
          const [a, b] = [key.export({ format: 'jwk' }), full.export({ format: 'jwk' })];
          for (const f of ['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi'] as const) expect(a[f], f).to.equal(b[f]);
          const msg = utf8(`signed by ${file}`);
          const sig = sign(key, msg, 'rsa-2048-sha256-pkcs-sign');
          expect(verify(full, msg, sig, 'rsa-2048-sha256-pkcs-sign')).to.equal(true);
        });
      }

      it('the three original keys are different keys', () => {
        const mods = files.map((f) => big(readKeyMessage(f).rsaKey!.publicModulus));
        expect(new Set(mods).size).to.equal(3);
      });

      it("the policy key's public key equals the public key of policy_cert_file.datica", () => {
        const key = fromKeyMessage(readKeyMessage('policy_key_file'));
        expect(policyCert.subject).to.include('CN=policyKey');
        expect(policyCert.publicKey.equals(createPublicKey(key))).to.equal(true);
        expectSamePublic(key, policyCert.publicKey);
      });

      it('policy_key_file carries the policy certificate (field 7) byte for byte', () => {
        const km = readKeyMessage('policy_key_file');
        expect(Buffer.from(km.certificate!).equals(readFileSync(join(ORIGINAL, 'policy_cert_file.datica')))).to.equal(true);
      });

      it('the policy certificate in PEM imports through importPublicKey as the policy public key', () => {
        const key = importPublicKey(utf8(policyCert.toString()));
        expect(key.type).to.equal('public');
        expectSamePublic(key, fromKeyMessage(readKeyMessage('policy_key_file')));
      });

      it('a signature by the imported policy key verifies under the certificate public key, and not under the platform key', () => {
        const key = fromKeyMessage(readKeyMessage('policy_key_file'));
        const msg = utf8('policyKey says something');
        const sig = sign(key, msg);
        expect(verify(policyCert.publicKey, msg, sig, 'rsa-2048-sha256-pkcs-sign')).to.equal(true);
        expect(verify(fromKeyMessage(readKeyMessage('platform_key_file.bin')), msg, sig, 'rsa-2048-sha256-pkcs-sign')).to.equal(false);
      });
    });

    describe('malformed key_messages', () => {
      const ecPriv = (alg: 'p256' | 'p384') => toKeyMessage(pairs[alg].privateKey);
      const ecPub = (alg: 'p256' | 'p384') => toKeyMessage(pairs[alg].publicKey);
      const rsaPriv = () => toKeyMessage(pairs.rsa2048.privateKey);
      const flipLast = (b: Uint8Array) => {
        const out = Uint8Array.from(b);
        out[out.length - 1] = out[out.length - 1]! ^ 1;
        return out;
      };

      const catalogue: [string, () => KeyMessage][] = [
        ['P-256 public point not on the curve', () => {
          const km = ecPub('p256');
          km.eccKey!.publicPoint!.y = flipLast(km.eccKey!.publicPoint!.y!);
          return km;
        }],
        ['P-384 public point not on the curve', () => {
          const km = ecPub('p384');
          km.eccKey!.publicPoint!.x = flipLast(km.eccKey!.publicPoint!.x!);
          return km;
        }],
        ['P-256 public point (0, 0)', () => {
          const km = ecPub('p256');
          km.eccKey!.publicPoint = { x: new Uint8Array(32), y: new Uint8Array(32) };
          return km;
        }],
        ['P-256 public point written unreduced: x = p, y = sqrt(b) (the curve point (0, sqrt(b)) with x not below p)', () => {
          const km = ecPub('p256');
          km.eccKey!.publicPoint = { x: bigToBytes(CURVE.p256!.p, 32), y: bigToBytes(p256.Point.Fp.sqrt(p256.Point.CURVE().b), 32) };
          return km;
        }],
        ['P-384 public point written unreduced: x = p, y = sqrt(b)', () => {
          const km = ecPub('p384');
          km.eccKey!.publicPoint = { x: bigToBytes(CURVE.p384!.p, 48), y: bigToBytes(p384.Point.Fp.sqrt(p384.Point.CURVE().b), 48) };
          return km;
        }],
        ['P-256 private key whose public point is off the curve', () => {
          const km = ecPriv('p256');
          km.eccKey!.publicPoint!.y = flipLast(km.eccKey!.publicPoint!.y!);
          return km;
        }],
        ['P-256 private_multiplier not matching public_point', () => {
          const km = ecPriv('p256');
          km.eccKey!.publicPoint = toKeyMessage(others.p256.publicKey).eccKey!.publicPoint!;
          return km;
        }],
        ['P-384 private_multiplier not matching public_point', () => {
          const km = ecPriv('p384');
          km.eccKey!.privateMultiplier = toKeyMessage(others.p384.privateKey).eccKey!.privateMultiplier!;
          return km;
        }],
        ['P-256 private_multiplier of zero', () => {
          const km = ecPriv('p256');
          km.eccKey!.privateMultiplier = new Uint8Array(32);
          delete km.eccKey!.publicPoint;
          return km;
        }],
        ['P-256 private_multiplier equal to the group order', () => {
          const km = ecPriv('p256');
          km.eccKey!.privateMultiplier = bigToBytes(CURVE.p256!.n, 32);
          delete km.eccKey!.publicPoint;
          return km;
        }],
        ['P-256 private_multiplier longer than 32 bytes', () => {
          const km = ecPriv('p256');
          km.eccKey!.privateMultiplier = Uint8Array.of(1, ...km.eccKey!.privateMultiplier!);
          return km;
        }],
        ['P-256 private key without private_multiplier', () => {
          const km = ecPriv('p256');
          delete km.eccKey!.privateMultiplier;
          return km;
        }],
        ['P-256 public coordinate of 33 bytes', () => {
          const km = ecPub('p256');
          km.eccKey!.publicPoint!.x = Uint8Array.of(0, ...km.eccKey!.publicPoint!.x!);
          return km;
        }],
        ['EC public key without public_point', () => {
          const km = ecPub('p384');
          delete km.eccKey!.publicPoint;
          return km;
        }],
        ['EC key_type without ecc_key', () => ({ keyType: 'ecc-256-public', keyFormat: 'vse-key', rsaKey: rsaPriv().rsaKey! })],
        ['unknown curve "P-521"', () => {
          const km = ecPub('p256');
          km.eccKey!.curveName = 'P-521';
          return km;
        }],
        ['unknown curve "secp256k1"', () => {
          const km = ecPriv('p256');
          km.eccKey!.curveName = 'secp256k1';
          return km;
        }],
        ['missing curve name', () => {
          const km = ecPub('p256');
          delete km.eccKey!.curveName;
          return km;
        }],
        ['key_type "ecc-384-public" with P-256 material', () => ({ ...ecPub('p256'), keyType: 'ecc-384-public' })],
        ['key_type "ecc-256-private" with an RSA key', () => ({ ...rsaPriv(), keyType: 'ecc-256-private' })],
        ['RSA private_p * private_q != public_modulus (q of another key)', () => {
          const km = rsaPriv();
          km.rsaKey!.privateQ = toKeyMessage(others.rsa2048.privateKey).rsaKey!.privateQ!;
          return km;
        }],
        ['RSA private_p * private_q != public_modulus (modulus changed, original policy key)', () => {
          const km = readKeyMessage('policy_key_file');
          km.rsaKey!.publicModulus = flipLast(km.rsaKey!.publicModulus!);
          return km;
        }],
        ['RSA private_p * private_q != public_modulus (CRT fields removed)', () => {
          const km = rsaPriv();
          km.rsaKey!.privateP = toKeyMessage(others.rsa2048.privateKey).rsaKey!.privateP!;
          delete km.rsaKey!.privateDp;
          delete km.rsaKey!.privateDq;
          delete km.rsaKey!.privateIqmp;
          return km;
        }],
        ['RSA private_p 1 and private_q the modulus (a product that is the modulus, but no factorisation)', () => {
          const km = rsaPriv();
          [km.rsaKey!.privateP, km.rsaKey!.privateQ] = [Uint8Array.of(1), km.rsaKey!.publicModulus!];
          return km;
        }],
        ['RSA private_p the modulus and private_q 1, without CRT fields', () => {
          const km = rsaPriv();
          [km.rsaKey!.privateP, km.rsaKey!.privateQ] = [km.rsaKey!.publicModulus!, Uint8Array.of(1)];
          delete km.rsaKey!.privateDp;
          delete km.rsaKey!.privateDq;
          delete km.rsaKey!.privateIqmp;
          return km;
        }],
        ['RSA private key without private_q', () => {
          const km = rsaPriv();
          delete km.rsaKey!.privateQ;
          return km;
        }],
        ['RSA private key without private_exponent', () => {
          const km = rsaPriv();
          delete km.rsaKey!.privateExponent;
          return km;
        }],
        ['RSA public key without public_modulus', () => {
          const km = toKeyMessage(pairs.rsa2048.publicKey);
          delete km.rsaKey!.publicModulus;
          return km;
        }],
        ['RSA public key without public_exponent', () => {
          const km = toKeyMessage(pairs.rsa2048.publicKey);
          km.rsaKey!.publicExponent = new Uint8Array(0);
          return km;
        }],
        ['RSA private_exponent of another key (OpenSSL would sign with the CRT values regardless)', () => {
          const km = rsaPriv();
          km.rsaKey!.privateExponent = toKeyMessage(others.rsa2048.privateKey).rsaKey!.privateExponent!;
          return km;
        }],
        ['RSA private_dp that does not match private_exponent', () => {
          const km = rsaPriv();
          km.rsaKey!.privateDp = flipLast(km.rsaKey!.privateDp!);
          return km;
        }],
        ['RSA private_iqmp that does not match the primes', () => {
          const km = rsaPriv();
          km.rsaKey!.privateIqmp = flipLast(km.rsaKey!.privateIqmp!);
          return km;
        }],
        ['RSA public exponent 0', () => {
          const km = toKeyMessage(pairs.rsa2048.publicKey);
          km.rsaKey!.publicExponent = new Uint8Array([0]);
          return km;
        }],
        ['RSA even public exponent', () => {
          const km = toKeyMessage(pairs.rsa2048.publicKey);
          km.rsaKey!.publicExponent = new Uint8Array([1, 0, 0]);
          return km;
        }],
        ['RSA even modulus', () => {
          const km = toKeyMessage(pairs.rsa2048.publicKey);
          km.rsaKey!.publicModulus = flipLast(km.rsaKey!.publicModulus!);
          return km;
        }],
        ['RSA key_type without rsa_key', () => ({ keyType: 'rsa-2048-public', keyFormat: 'vse-key', eccKey: ecPub('p256').eccKey! })],
        ['key_type "rsa-3072-private" with RSA-2048 material', () => ({ ...rsaPriv(), keyType: 'rsa-3072-private' })],
        ['unknown key_type "dsa-2048-private"', () => ({ ...rsaPriv(), keyType: 'dsa-2048-private' })],
        ['unknown key_type "ed25519-public"', () => ({ ...ecPub('p256'), keyType: 'ed25519-public' })],
        ['unknown key_type "aes-256-gcm" (a symmetric key)', () => ({ keyType: 'aes-256-gcm', keyFormat: 'vse-key', secretKeyBits: new Uint8Array(32) })],
        ['unknown key_type "rsa-2048" (no -private / -public)', () => ({ ...toKeyMessage(pairs.rsa2048.publicKey), keyType: 'rsa-2048' })],
        ['unknown key_type "ecc-256-secret"', () => ({ ...ecPriv('p256'), keyType: 'ecc-256-secret' })],
        ['empty key_type', () => ({ ...ecPub('p256'), keyType: '' })],
        ['missing key_type', () => {
          const km = ecPub('p256');
          delete km.keyType;
          return km;
        }],
        ['an empty key_message', () => ({})],
      ];

      for (const [name, build] of catalogue) {
        it(`a key_message with ${name} is rejected with INVALID_KEY`, () => {
          const km = build();
          expectCertifierError(() => fromKeyMessage(km), 'INVALID_KEY', name);
          // the same after a trip over the wire, where absent and empty fields look alike
          expectCertifierError(() => fromKeyMessage(overTheWire(km)), 'INVALID_KEY', `${name} (over the wire)`);
        });
      }

      it('INVALID_KEY from fromKeyMessage says "invalid key_message" and maps to exit status 1', () => {
        const err = expectCertifierError(() => fromKeyMessage({ keyType: 'dsa-1024-private' }), 'INVALID_KEY');
        expect(err.message).to.match(/^invalid key_message: /);
        expect(err.exitStatus).to.equal(1);
      });
    });
  });
});
