// Encodings under lib/pki: PEM in and out, the strict DER reader, the admission extension's value,
// IP address bytes, and signature algorithms we refuse to check.

import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { concatBytes, toHex } from '../../lib/crypto/index.ts';
import { CertifierError, type ErrorCode } from '../../lib/errors/index.ts';
import {
  createPolicyCert, decodeAdmission, encodeAdmission, issueAdmissionCert, itemValue, MAX_CERTIFICATE_BYTES, parseCertificate, readCertificate,
  readCertificateChain, toPem, validatePolicyCert,
} from '../../lib/pki/index.ts';
import {
  checkTree, children, decodeOid, DerError, encodeNull, encodeOctets, encodeOid, encodeUtf8, readOne, seq, set, TAG, tlv, type Tlv,
} from '../../lib/pki/der.ts';
import { generateKeyPair } from '../../lib/crypto/index.ts';
import { ipAddressBytes } from '../../lib/pki/san.ts';
import { readAmdCrl } from '../../lib/attest/index.ts';
import { VECTORS } from '../support/helpers.ts';

const policyDer = new Uint8Array(readFileSync(join(VECTORS, 'certifier-original', 'policy_cert_file.datica')));
const AT = new Date('2026-12-01T00:00:00Z');
const enc = (s: string) => new TextEncoder().encode(s);

function refused(fn: () => unknown, code: ErrorCode, reason?: string): void {
  try {
    fn();
  } catch (e) {
    expect(e, String(e)).to.be.instanceOf(CertifierError);
    expect((e as CertifierError).code).to.equal(code);
    if (reason) expect((e as CertifierError).details?.reason).to.equal(reason);
    return;
  }
  expect.fail(`expected ${code}${reason ? ` (${reason})` : ''}`);
}

/** The certificate with every occurrence of one byte string replaced by another of the same length. */
function patch(der: Uint8Array, from: string, to: string): Uint8Array {
  const hex = toHex(der);
  expect(hex).to.include(from);
  return new Uint8Array(Buffer.from(hex.split(from).join(to), 'hex'));
}

describe('pki: reading certificates', () => {
  it('refuses PEM without a CERTIFICATE block, with two where one is wanted, or with broken base64 (INVALID_INPUT)', () => {
    refused(() => readCertificate(enc('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')), 'INVALID_INPUT');
    refused(() => readCertificate(enc(toPem(policyDer) + toPem(policyDer))), 'INVALID_INPUT');
    refused(() => readCertificate(enc('-----BEGIN CERTIFICATE-----\nMII*@!\n-----END CERTIFICATE-----\n')), 'INVALID_INPUT');
  });

  it('reads PEM of BEGIN lines without their END (an AMD CRL file may hold 1 MiB), and blocks as before', () => {
    // Each BEGIN's END was looked for to the end of the text: 512 KiB of these took seconds, 1 MiB
    // 20 s; now one pass finds the END lines. (Its time is not asserted: tests assert no timings.)
    const rows: [string, (text: string) => unknown][] = [
      ['-----BEGIN CERTIFICATE-----\n', (t) => readCertificateChain(enc(t))],
      ['-----BEGIN X509 CRL-----\n', (t) => readAmdCrl(enc(t), 'crl.pem')],
      ['-----BEGIN CERTIFICATE-----\nQUFB-----END CERTIFICATEX-----\n', (t) => readCertificateChain(enc(t))],
    ];
    for (const [line, read] of rows) {
      const text = line.repeat(Math.floor(512 * 1024 / line.length));
      refused(() => read(text), 'INVALID_INPUT');
    }
    // Blocks read as before: another label's block skipped whole (a BEGIN inside it too), CRLF, an END line of another label inside.
    const b64 = Buffer.from(policyDer).toString('base64');
    const text = `-----BEGIN A-----\nQUFB-----END A-----\n-----BEGIN CERTIFICATE-----\r\n${b64}\n-----END CERTIFICATE-----\n-----END CERTIFICATE-----BEGIN CERTIFICATE-----\n`;
    expect(readCertificateChain(enc(text)).map(toHex)).to.deep.equal([toHex(policyDer)]);
    expect(() => readCertificateChain(enc(`-----BEGIN A-----\n-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n-----END A-----\n`))).to.throw('holds no CERTIFICATE block');
  });

  it('refuses DER with trailing bytes (trailing-bytes), garbage and empty input (malformed)', () => {
    refused(() => readCertificate(new Uint8Array([...policyDer, 0])), 'BAD_CERTIFICATE', 'trailing-bytes');
    refused(() => readCertificate(enc('hello')), 'BAD_CERTIFICATE', 'malformed');
    refused(() => readCertificate(new Uint8Array(0)), 'BAD_CERTIFICATE', 'malformed');
  });

  it('reads PEM (LF or CRLF, with text around it) and DER to the same DER', () => {
    const pem = toPem(policyDer);
    expect(pem.split('\n').slice(1, -2).every((l) => l.length <= 64)).to.equal(true);
    for (const input of [policyDer, enc(pem), enc(pem.replace(/\n/g, '\r\n')), enc(`subject: policy\n${pem}trailing words\n`)]) {
      expect(toHex(readCertificate(input))).to.equal(toHex(policyDer));
    }
    expect(readCertificateChain(enc(pem + pem))).to.have.length(2);
  });

  it('writes PEM as RFC 7468 does: base64 in lines of 64, the last one shorter, none for no bytes', () => {
    const b64 = (n: number) => Buffer.from(Uint8Array.from({ length: n }, (_, i) => i)).toString('base64');
    expect(toPem(new Uint8Array(0))).to.equal('-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
    expect(toPem(Uint8Array.from({ length: 48 }, (_, i) => i))).to.equal(`-----BEGIN CERTIFICATE-----\n${b64(48)}\n-----END CERTIFICATE-----\n`);
    expect(toPem(Uint8Array.from({ length: 49 }, (_, i) => i), 'PUBLIC KEY')).to.equal(`-----BEGIN PUBLIC KEY-----\n${b64(49).slice(0, 64)}\n${b64(49).slice(64)}\n-----END PUBLIC KEY-----\n`);
    // A view into a larger buffer: its own bytes only.
    const whole = Uint8Array.from({ length: 200 }, (_, i) => i);
    expect(toPem(whole.subarray(10, 110))).to.equal(toPem(Uint8Array.from(whole.subarray(10, 110))));
    const lines = toPem(policyDer).split('\n');
    expect(lines.slice(1, -3).every((l) => l.length === 64)).to.equal(true);
    expect(lines.slice(1, -2).join('')).to.equal(Buffer.from(policyDer).toString('base64'));
  });
});

describe('pki: itemValue (an X509-der-cert item)', () => {
  const seq = (...c: Uint8Array[]) => tlv(TAG.SEQUENCE, ...c);
  const name = seq(tlv(TAG.SET, seq(tlv(TAG.OID, encodeOid('2.5.4.3')), tlv(0x0c, new TextEncoder().encode('x')))));
  const alg = seq(tlv(TAG.OID, encodeOid('1.2.840.10045.4.3.2')));
  // Shaped as a certificate whatever its serial: other tools make negative and 24-byte ones.
  const cert = (serial: Uint8Array) => seq(seq(tlv(0xa0, tlv(TAG.INTEGER, Uint8Array.of(2))), tlv(TAG.INTEGER, serial), alg, name, seq(), name, seq(alg, tlv(TAG.BIT_STRING, Uint8Array.of(0, 4)))), alg, tlv(TAG.BIT_STRING, Uint8Array.of(0, 1)));

  it('keeps a certificate other tools make (a negative or 24-byte serial), as DER from PEM too', () => {
    for (const serial of [Uint8Array.of(0xfb), new Uint8Array(24).fill(1)]) {
      const der = cert(serial);
      expect(itemValue('X509-der-cert', der)).to.deep.equal(der);
      expect(itemValue('X509-der-cert', new TextEncoder().encode(toPem(der)))).to.deep.equal(der);
    }
  });

  it('refuses one DER element not shaped as a certificate (a key, an empty SEQUENCE, a CRL): BAD_CERTIFICATE', () => {
    const pkcs8 = seq(tlv(TAG.INTEGER, Uint8Array.of(0)), alg, tlv(TAG.OCTET_STRING, Uint8Array.of(1)));
    // A v2 CRL: version, algorithm, issuer, thisUpdate, nextUpdate (times), the revoked list.
    const time = tlv(0x17, new TextEncoder().encode('261205000000Z'));
    const crl = seq(seq(tlv(TAG.INTEGER, Uint8Array.of(1)), alg, name, time, time, seq(seq(tlv(TAG.INTEGER, Uint8Array.of(5)), time))), alg, tlv(TAG.BIT_STRING, Uint8Array.of(0, 1)));
    for (const der of [seq(), pkcs8, seq(seq(), alg, tlv(TAG.BIT_STRING, Uint8Array.of(0))), crl]) {
      expect(() => itemValue('X509-der-cert', der)).to.throw(CertifierError).with.property('code', 'BAD_CERTIFICATE');
    }
    expect(itemValue('binary-blob', seq())).to.deep.equal(seq());
  });
});

describe('pki: parseCertificate refuses what is not exactly one DER certificate', () => {
  it('refuses PEM, hex or base64 text, which @peculiar/x509 alone would accept (malformed)', () => {
    refused(() => parseCertificate(enc(toPem(policyDer))), 'BAD_CERTIFICATE', 'malformed');
    refused(() => parseCertificate(enc(toHex(policyDer))), 'BAD_CERTIFICATE', 'malformed');
    refused(() => parseCertificate(enc(Buffer.from(policyDer).toString('base64'))), 'BAD_CERTIFICATE', 'malformed');
  });

  it('refuses trailing bytes (trailing-bytes) and oversized input (too-large)', () => {
    refused(() => parseCertificate(new Uint8Array([...policyDer, 0x30, 0x00])), 'BAD_CERTIFICATE', 'trailing-bytes');
    refused(() => parseCertificate(new Uint8Array(MAX_CERTIFICATE_BYTES + 1).fill(0x30)), 'BAD_CERTIFICATE', 'too-large');
  });

  it('refuses BER leniencies: a non-minimal length or an indefinite length (malformed)', () => {
    // 30 82 03 27 -> 30 83 00 03 27: same length, one byte longer to say it.
    const longer = new Uint8Array([0x30, 0x83, 0x00, ...policyDer.subarray(2)]);
    refused(() => parseCertificate(longer), 'BAD_CERTIFICATE', 'malformed');
    const indefinite = new Uint8Array([0x30, 0x80, ...policyDer.subarray(4), 0x00, 0x00]);
    refused(() => parseCertificate(indefinite), 'BAD_CERTIFICATE', 'malformed');
  });

  it('refuses an outer signature algorithm that differs from the signed one (malformed)', () => {
    const tbsAlg = '300d06092a864886f70d01010b0500';
    const hex = toHex(policyDer);
    const outer = hex.lastIndexOf(tbsAlg);
    const swapped = hex.slice(0, outer) + '300d06092a864886f70d01010c0500' + hex.slice(outer + tbsAlg.length);
    refused(() => parseCertificate(new Uint8Array(Buffer.from(swapped, 'hex'))), 'BAD_CERTIFICATE', 'malformed');
  });

  it('refuses to check a SHA-1 signature (signature-algorithm), whatever the bytes', () => {
    // sha256WithRSAEncryption (...01 0b) -> sha1WithRSAEncryption (...01 05), in both places.
    const sha1 = patch(policyDer, '06092a864886f70d01010b', '06092a864886f70d010105');
    expect(parseCertificate(sha1).signatureAlgorithm.oid).to.equal('1.2.840.113549.1.1.5');
    refused(() => validatePolicyCert(sha1, AT), 'BAD_CERTIFICATE', 'signature-algorithm');
  });
});

describe('pki: the strict DER reader', () => {
  it('refuses long-form tags, non-minimal and oversized lengths, and trailing bytes', () => {
    // ... and a length of five bytes, a long form cut off, a long form with nothing after it.
    for (const hex of ['1f0100', '3081050000000000', '308400000000', '0500ff', '3005', '30850000000001', '308200', '3081']) {
      expect(() => readOne(new Uint8Array(Buffer.from(hex, 'hex'))), hex).to.throw(DerError);
    }
    // The shortest long forms are read: 128 bytes (81 80) and 256 (82 01 00).
    for (const n of [128, 256]) expect(readOne(tlv(TAG.OCTET_STRING, new Uint8Array(n))).contents.length).to.equal(n);
  });

  it('refuses, at any depth of the tree, what it refuses at the top, and nesting deeper than 32', () => {
    const inner = (hex: string) => Buffer.from(hex, 'hex');
    const wrap = (b: Uint8Array, levels: number) => {
      let out = b;
      for (let i = 0; i < levels; i++) out = seq(out);
      return out;
    };
    const ok = seq(encodeNull(), set(encodeOctets(Uint8Array.of(1)), seq()));
    expect(() => checkTree(readOne(wrap(ok, 5)))).to.not.throw();
    // Each bad element sits inside a well-formed constructed one, two levels down.
    // A long-form tag, a non-minimal length, an indefinite length, an element longer than what
    // holds it, a length cut off.
    for (const hex of ['1f0100', '3081050000000000', '308005000000', '050300', '3003050000']) {
      const bad = wrap(concatBytes(encodeNull(), seq(inner(hex))), 2);
      expect(() => checkTree(readOne(bad)), hex).to.throw(DerError);
    }
    // 32 levels below the top element are read; a 33rd is refused, primitive or not.
    expect(() => checkTree(readOne(wrap(encodeNull(), 32)))).to.not.throw();
    expect(() => checkTree(readOne(wrap(seq(), 32)))).to.not.throw();
    expect(() => checkTree(readOne(wrap(encodeNull(), 33)))).to.throw(DerError, 'nesting too deep');
  });

  it('round-trips object identifiers with 128-bit arcs, and arcs on either side of 2^45 and 2^53', () => {
    const edges = [2 ** 45 - 1, 2 ** 45, 2 ** 52, 2 ** 53 - 1, 2 ** 53].map(String).concat(['9007199254740993', '340282366920938463463374607431768211455']);
    const oids = ['2.25.330383971473344653765936800923845683440', '1.2.840.113549.1.1.11', '2.999.1', '0.9.2342', '0.0', '1.39', '2.0', '2.47.0'];
    for (const arc of edges) oids.push(`1.2.${arc}.5`, `2.${arc}`, `2.${arc}.${arc}`);
    for (const oid of oids) {
      expect(decodeOid(encodeOid(oid).subarray(2))).to.equal(oid);
    }
  });
});

describe('pki: the admission extension value', () => {
  const good = { measurement: Uint8Array.of(1, 2, 3), platform: 'sev-snp', domain: 'datica' };

  it('refuses extra fields, wrong types, trailing bytes, bad UTF-8 and empty measurements', () => {
    const [m, p, d] = [encodeOctets(good.measurement), encodeUtf8(good.platform), encodeUtf8(good.domain)];
    const cases: [string, Uint8Array][] = [
      ['a fourth field', seq(m, p, d, encodeNull())],
      ['a missing field', seq(m, p)],
      ['measurement as UTF8String', seq(encodeUtf8('abc'), p, d)],
      ['trailing byte', new Uint8Array([...seq(m, p, d), 0])],
      ['platform not UTF-8', seq(m, tlv(TAG.UTF8, Uint8Array.of(0xff)), d)],
      ['empty measurement', seq(encodeOctets(new Uint8Array(0)), p, d)],
      ['domain with a slash', seq(m, p, encodeUtf8('a/b'))],
      ['a SET, not a SEQUENCE', set(m, p, d)],
    ];
    for (const [what, bytes] of cases) expect(() => decodeAdmission(bytes), what).to.throw(DerError);
  });

  it('round-trips measurement, platform and domain', () => {
    expect(decodeAdmission(encodeAdmission(good))).to.deep.equal(good);
  });
});

describe('pki: IP addresses in subjectAltName', () => {
  it('refuses names, zones and malformed addresses (INVALID_INPUT)', () => {
    for (const ip of ['localhost', 'fe80::1%eth0', '1.2.3.4.5', '::g']) refused(() => ipAddressBytes(ip), 'INVALID_INPUT');
  });

  it('writes 4 bytes for IPv4 and 16 for IPv6, including embedded IPv4', () => {
    const hex = (ip: string) => toHex(ipAddressBytes(ip));
    expect(hex('10.0.0.7')).to.equal('0a000007');
    expect(hex('::1')).to.equal('00000000000000000000000000000001');
    expect(hex('2001:db8::7')).to.equal('20010db8000000000000000000000007');
    expect(hex('::ffff:10.1.2.3')).to.equal('00000000000000000000ffff0a010203');
    expect(hex('fe80:1:2:3:4:5:6:7')).to.equal('fe800001000200030004000500060007');
  });
});

describe('pki: DER forms the reader refuses though they carry the same meaning (X.690 11, RFC 5280 4.1)', () => {
  let leaf: Uint8Array;
  before(async () => {
    const k = await generateKeyPair('p256');
    const policyCert = await createPolicyCert({ privateKey: k.privateKey, domain: 'datica' });
    leaf = await issueAdmissionCert({
      policyKey: k.privateKey, policyCert, subjectPublicKey: (await generateKeyPair('p256')).publicKey,
      measurement: new Uint8Array(32), platform: 'simulated-enclave', domain: 'datica', validitySeconds: 3600,
    });
  });
  /** The certificate with its TBS fields edited (the signature is not redone: the reader refuses first). */
  const withTbs = (edit: (fields: Tlv[]) => Uint8Array[]) => {
    const [tbs, alg, sig] = children(readOne(leaf));
    return seq(seq(...edit(children(tbs!))), alg!.bytes, sig!.bytes);
  };
  /** The certificate with the value of one extension (by OID) replaced, or the whole extension re-encoded. */
  const withExtension = (oid: string, rewrite: (parts: Tlv[]) => Uint8Array) => withTbs((f) => {
    const list = children(children(f[7]!)[0]!);
    const edited = list.map((e) => (decodeOid(children(e)[0]!.contents) === oid ? rewrite(children(e)) : e.bytes));
    return [...f.slice(0, 7).map((t) => t.bytes), tlv(0xa3, seq(...edited))];
  });
  const octets = (b: Uint8Array) => tlv(TAG.OCTET_STRING, b);

  it('reads the certificate as issued', () => {
    expect(parseCertificate(withTbs((f) => f.map((t) => t.bytes)))).to.have.property('keyUsage');
  });

  it('refuses a DEFAULT written out: critical FALSE, cA FALSE, version v1', () => {
    refused(() => parseCertificate(withExtension('2.5.29.37', ([oid, value]) => seq(oid!.bytes, tlv(TAG.BOOLEAN, new Uint8Array([0])), value!.bytes))), 'BAD_CERTIFICATE', 'malformed');
    refused(() => parseCertificate(withExtension('2.5.29.19', ([oid, crit]) => seq(oid!.bytes, crit!.bytes, octets(seq(tlv(TAG.BOOLEAN, new Uint8Array([0]))))))), 'BAD_CERTIFICATE', 'malformed');
    refused(() => parseCertificate(patch(leaf, 'a003020102', 'a003020100')), 'BAD_CERTIFICATE', 'malformed');
  });

  it('refuses a keyUsage with bits set in its unused part, or with trailing zero bits', () => {
    refused(() => parseCertificate(patch(leaf, '03020780', '03020781')), 'BAD_CERTIFICATE', 'malformed');
    refused(() => parseCertificate(withExtension('2.5.29.15', ([oid, crit]) => seq(oid!.bytes, crit!.bytes, octets(tlv(TAG.BIT_STRING, new Uint8Array([0, 0x80, 0])))))), 'BAD_CERTIFICATE', 'malformed');
  });

  it('refuses a validity date before 2050 as GeneralizedTime', () => {
    const generalized = withTbs((f) => {
      const [, notAfter] = children(f[4]!);
      return [...f.slice(0, 4).map((t) => t.bytes), seq(tlv(0x18, enc('20291231000000Z')), notAfter!.bytes), ...f.slice(5).map((t) => t.bytes)];
    });
    refused(() => parseCertificate(generalized), 'BAD_CERTIFICATE', 'malformed');
  });

  it('refuses a serial that is negative or over 21 bytes, a version past v3, extensions outside v3 or as an empty list', () => {
    const int = (...b: number[]) => tlv(TAG.INTEGER, Uint8Array.from(b));
    const version = (v: number) => tlv(0xa0, int(v));
    const cases: [string, (f: Tlv[]) => Uint8Array[]][] = [
      ['a negative serial', (f) => f.map((t, i) => (i === 1 ? int(0x80, 1) : t.bytes))],
      ['a 22-byte serial', (f) => f.map((t, i) => (i === 1 ? int(0, ...new Array(21).fill(0xff)) : t.bytes))],
      ['version v4 (without extensions, which only v3 may have)', (f) => [version(3), ...f.slice(1, 7).map((t) => t.bytes)]],
      ['extensions in a v2 certificate', (f) => [version(1), ...f.slice(1).map((t) => t.bytes)]],
      ['an empty extensions list', (f) => [...f.slice(0, 7).map((t) => t.bytes), tlv(0xa3, seq())]],
    ];
    for (const [what, edit] of cases) expect(() => parseCertificate(withTbs(edit)), what).to.throw(CertifierError).with.nested.property('details.reason', 'malformed');
    // The longest serial read: 20 bytes with the high bit set, so 21 with the sign byte.
    const longest = withTbs((f) => f.map((t, i) => (i === 1 ? int(0, ...new Array(20).fill(0xff)) : t.bytes)));
    expect(parseCertificate(longest).serialHex).to.equal('ff'.repeat(20));
  });

  it('refuses a field after the signature, and a signature whose bit string claims unused bits', () => {
    const [tbs, alg, sig] = children(readOne(leaf));
    expect(parseCertificate(seq(tbs!.bytes, alg!.bytes, sig!.bytes)).serialHex).to.equal(parseCertificate(leaf).serialHex);
    refused(() => parseCertificate(seq(tbs!.bytes, alg!.bytes, sig!.bytes, encodeNull())), 'BAD_CERTIFICATE', 'malformed');
    refused(() => parseCertificate(seq(tbs!.bytes, alg!.bytes, tlv(TAG.BIT_STRING, Uint8Array.of(1), sig!.contents.subarray(1)))), 'BAD_CERTIFICATE', 'malformed');
  });

  it('reads each optional TBS field where it is: no version (v1), one unique ID alone, v3 without extensions; and refuses unique IDs in v1 and a TBS cut short', () => {
    const uid = (tag: number) => tlv(tag, new Uint8Array([0, 1]));
    const version = (v: number) => tlv(0xa0, tlv(TAG.INTEGER, Uint8Array.of(v)));
    const base = (f: Tlv[]) => f.slice(1, 7).map((t) => t.bytes); // serial .. subjectPublicKeyInfo
    const read: [string, (f: Tlv[]) => Uint8Array[], number][] = [
      ['v1: no version, no extensions', (f) => base(f), 1],
      ['v2 with issuerUniqueID only', (f) => [version(1), ...base(f), uid(0x81)], 2],
      ['v2 with subjectUniqueID only', (f) => [version(1), ...base(f), uid(0x82)], 2],
      ['v3 without extensions', (f) => [version(2), ...base(f)], 3],
      ['v3 with subjectUniqueID and extensions', (f) => [version(2), ...base(f), uid(0x82), f[7]!.bytes], 3],
    ];
    for (const [what, edit, v] of read) {
      const p = parseCertificate(withTbs(edit));
      expect([p.version, p.serialHex, p.subject], what).to.deep.equal([v, parseCertificate(leaf).serialHex, parseCertificate(leaf).subject]);
    }
    const refusedCases: [string, (f: Tlv[]) => Uint8Array[]][] = [
      ['a unique ID in a v1 certificate', (f) => [...base(f), uid(0x81)]],
      ['no subjectPublicKeyInfo', (f) => f.slice(0, 6).map((t) => t.bytes)],
      ['a version and nothing else', () => [version(2)]],
      ['nothing at all', () => []],
      ['subject and key swapped', (f) => [...f.slice(0, 5).map((t) => t.bytes), f[6]!.bytes, f[5]!.bytes, f[7]!.bytes]],
    ];
    for (const [what, edit] of refusedCases) expect(() => parseCertificate(withTbs(edit)), what).to.throw(CertifierError).with.nested.property('details.reason', 'malformed');
  });

  it('refuses unique IDs after the extensions, repeated, or out of order', () => {
    const uid = (tag: number) => tlv(tag, new Uint8Array([0, 1]));
    const rebuilt = (ids: Uint8Array[], after: Uint8Array[] = []) => withTbs((f) => [...f.slice(0, 7).map((t) => t.bytes), ...ids, f[7]!.bytes, ...after]);
    expect(parseCertificate(rebuilt([uid(0x81), uid(0x82)]))).to.have.property('keyUsage');
    refused(() => parseCertificate(rebuilt([], [uid(0x81)])), 'BAD_CERTIFICATE', 'malformed');
    refused(() => parseCertificate(rebuilt([uid(0x81), uid(0x81)])), 'BAD_CERTIFICATE', 'malformed');
    refused(() => parseCertificate(rebuilt([uid(0x82), uid(0x81)])), 'BAD_CERTIFICATE', 'malformed');
  });
});
