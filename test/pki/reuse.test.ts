// lib/pki remembers parsed certificates and signatures that verified (the same certificates recur
// on every connection). Remembering must never change an answer: every result is the caller's own,
// times are judged on every call, and the cache answers only for the very same bytes. Also the
// shapes our own decoders (names, extensions) refuse, which @peculiar/x509 used to read.

import { expect } from 'chai';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { CertifierError } from '../../lib/errors/index.ts';
import { parseCertificate, validateAdmission, validatePolicyCert } from '../../lib/pki/index.ts';
import { parseShared } from '../../lib/pki/parse.ts';
import { decodeName } from '../../lib/pki/names.ts';
import { decodeAdmission } from '../../lib/pki/admission.ts';
import { DerError, encodeOctets, encodeOid, encodeUtf8, readOne, seq, set, TAG, tlv } from '../../lib/pki/der.ts';
import { AT, DAY, forgeLeaf, forgePolicy, type ForgedPolicy } from './forge.ts';

function refusal(fn: () => unknown): { code: string; reason: unknown } | 'valid' {
  try {
    fn();
    return 'valid';
  } catch (e) {
    if (!(e instanceof CertifierError)) throw e;
    return { code: e.code, reason: e.details?.reason };
  }
}

describe('pki: remembering parses and signatures changes no answer', () => {
  let policy: ForgedPolicy;
  before(async () => {
    policy = await forgePolicy();
  });

  it('hands every caller its own copy: changing one result changes neither the next nor validation', async () => {
    const leaf = await forgeLeaf(policy);
    const first = parseCertificate(leaf);
    const pristine = parseCertificate(leaf);
    first.der.fill(0);
    first.subjectDer.fill(0);
    first.organizations.push('Measured-00');
    first.extKeyUsage.length = 0;
    first.notAfter.setTime(0);
    first.admission!.measurement.fill(0xff);
    const again = parseCertificate(leaf);
    expect(again).to.deep.equal(pristine);
    expect(again.der).to.not.equal(pristine.der);
    const policyCopy = validatePolicyCert(policy.der, AT);
    policyCopy.subjectDer.fill(0);
    policyCopy.notAfter.setTime(0);
    expect(validateAdmission({ chain: [leaf], policyCert: policy.der, at: AT }).domain).to.equal('datica');
  });

  it('copies every field of the shared parse, with each byte view in its own DER', async () => {
    const leaf = await forgeLeaf(policy);
    const shared = parseShared(leaf);
    const copy = parseCertificate(leaf);
    expect(Object.keys(copy).sort()).to.deep.equal(Object.keys(shared).sort());
    expect(copy).to.deep.equal(shared);
    for (const [name, value] of Object.entries(copy)) {
      if (value instanceof Uint8Array) expect(value.buffer, name).to.equal(copy.der.buffer);
    }
    expect(copy.publicKey.equals(shared.publicKey)).to.equal(true);
  });

  it('judges validity at every call: a policy certificate or leaf accepted once is refused once expired', async () => {
    const leaf = await forgeLeaf(policy);
    expect(validatePolicyCert(policy.der, AT).isCA).to.equal(true);
    expect(validateAdmission({ chain: [leaf], policyCert: policy.der, at: AT }).platform).to.equal('simulated-enclave');
    expect(refusal(() => validateAdmission({ chain: [leaf], policyCert: policy.der, at: new Date(AT.getTime() + 2 * DAY) }))).to.deep.equal({ code: 'CERT_EXPIRED', reason: 'expired' });
    const later = new Date(AT.getTime() + 400 * DAY);
    expect(refusal(() => validatePolicyCert(policy.der, later))).to.deep.equal({ code: 'CERT_EXPIRED', reason: 'expired' });
    expect(validateAdmission({ chain: [leaf], policyCert: policy.der, at: AT }).platform).to.equal('simulated-enclave');
  });

  it('answers for the bytes, not the buffer: a buffer changed after a good parse is read again', async () => {
    const leaf = await forgeLeaf(policy);
    const buffer = new Uint8Array(leaf);
    expect(validateAdmission({ chain: [buffer], policyCert: policy.der, at: AT }).domain).to.equal('datica');
    const at = Buffer.from(buffer).indexOf('CertifierUsers');
    buffer[at]! ^= 0x01; // still well formed, no longer what was signed
    expect(refusal(() => validateAdmission({ chain: [buffer], policyCert: policy.der, at: AT }))).to.deep.equal({ code: 'UNTRUSTED_PEER', reason: 'signature' });
    expect(validateAdmission({ chain: [leaf], policyCert: policy.der, at: AT }).domain).to.equal('datica');
    // The same for the pinned policy certificate, which callers pass as one array on every call.
    const pinned = new Uint8Array(policy.der);
    expect(validateAdmission({ chain: [leaf], policyCert: pinned, at: AT }).domain).to.equal('datica');
    const sig = pinned.length - 10; // inside the self-signature: still well formed
    pinned[sig]! ^= 0x01;
    expect(refusal(() => validateAdmission({ chain: [leaf], policyCert: pinned, at: AT }))).to.deep.equal({ code: 'UNTRUSTED_PEER', reason: 'policy-self-signature' });
  });

  it('checks a leaf whose signature verified once against each policy certificate on its own', async () => {
    const leaf = await forgeLeaf(policy);
    expect(validateAdmission({ chain: [leaf], policyCert: policy.der, at: AT }).domain).to.equal('datica');
    // The same name and key identifier, another key: only the signature tells them apart.
    const impostor = await forgePolicy({ subjectKeyIdHex: policy.skiHex });
    expect(refusal(() => validateAdmission({ chain: [leaf], policyCert: impostor.der, at: AT }))).to.deep.equal({ code: 'UNTRUSTED_PEER', reason: 'signature' });
    // The same key under other bytes (a re-issued policy certificate) verifies it, as it should.
    const reissued = await forgePolicy({ subjectKeyIdHex: policy.skiHex }, 'p256', policy.keys);
    expect(validateAdmission({ chain: [leaf], policyCert: reissued.der, at: AT }).domain).to.equal('datica');
  });
});

describe('pki: names and extensions read by our own decoders', () => {
  let policy: ForgedPolicy;
  before(async () => {
    policy = await forgePolicy();
  });

  it('writes names as RFC 4514-style text: specials escaped, multi-valued RDNs joined by +, unknown types by OID', async () => {
    const leaf = parseCertificate(await forgeLeaf(policy, { subject: 'CN=a\\,b, O=x+OU=y, C=US, 1.2.3.4=hello, O=trail\\ ' }));
    expect(leaf.subject).to.equal('CN=a\\,b, O=x+OU=y, C=US, 1.2.3.4=hello, O=trail\\ ');
    expect(leaf.organizations).to.deep.equal(['x', 'trail ']);
    expect(leaf.commonNames).to.deep.equal(['a,b']);
  });

  it('escapes each value as RFC 4514 says, and leaves a value needing nothing as it is', () => {
    const name = (value: string) => {
      const atv = seq(encodeOid('2.5.4.3'), encodeUtf8(value));
      return decodeName(readOne(seq(set(atv))), 'subject').text;
    };
    const cases: [string, string][] = [
      ['plain value-1.2_x', 'CN=plain value-1.2_x'], ['', 'CN='], ['a,b+c"d\\e<f>g;h', 'CN=a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h'],
      ['#x', 'CN=\\#x'], [' x', 'CN=\\ x'], ['x ', 'CN=x\\ '], ['x#y z', 'CN=x#y z'], ['a\nb\u007f', 'CN=a\\0Ab\\7F'], ['\u00e9t\u00e9', 'CN=\u00e9t\u00e9'],
      // One space is both leading and trailing: escaped once. NUL as hex; a space or # inside as is.
      [' ', 'CN=\\ '], ['  ', 'CN=\\ \\ '], ['#', 'CN=\\#'], ['# ', 'CN=\\#\\ '], ['\\ ', 'CN=\\\\\\ '], ['a\u0000b', 'CN=a\\00b'], ['\u0000', 'CN=\\00'], ['a=b', 'CN=a=b'],
    ];
    for (const [value, text] of cases) expect(name(value), JSON.stringify(value)).to.equal(text);
  });

  it('reads the other common extensions, and refuses a certificate that garbles one (malformed)', async () => {
    const crl = new x509.CRLDistributionPointsExtension(['http://crl.example/a.crl']);
    const aia = new x509.AuthorityInfoAccessExtension({ ocsp: ['http://ocsp.example'] });
    const good = await forgeLeaf(policy, { extra: [crl, aia, new x509.CertificatePolicyExtension(['1.2.3.4'])] });
    expect(validateAdmission({ chain: [good], policyCert: policy.der, at: AT }).domain).to.equal('datica');
    const garbled: [string, Uint8Array][] = [
      ['2.5.29.31', Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x05)], // CRL distribution points holding an INTEGER
      ['1.3.6.1.5.5.7.1.1', Uint8Array.of(0x30, 0x00)], // an empty authority information access
      ['2.5.29.17', Uint8Array.of(0x30, 0x0a, 0x87, 0x08, 10, 0, 0, 1, 255, 255, 255, 0)], // an 8-byte iPAddress
      ['2.5.29.19', Uint8Array.of(0x30, 0x03, 0x01, 0x01, 0x01)], // cA TRUE written as 01, not FF
      ['1.3.6.1.4.1.99999.7', Uint8Array.of(0x05, 0x00, 0x00)], // bytes after the value
    ];
    for (const [oid, value] of garbled) {
      const extra = [new x509.Extension(oid, false, value)];
      const basicConstraints = oid === '2.5.29.19' ? null : undefined;
      const leaf = await forgeLeaf(policy, { extra, ...(basicConstraints === null ? { basicConstraints } : {}) });
      expect(refusal(() => parseCertificate(leaf)), oid).to.deep.equal({ code: 'BAD_CERTIFICATE', reason: 'malformed' });
    }
  });

  it('refuses a value that is not the characters its string type says, whatever was decoded before (one strict decoder kept between calls)', () => {
    const name = (value: Uint8Array) => decodeName(readOne(seq(set(seq(encodeOid('2.5.4.3'), value)))), 'subject').text;
    const bad: [string, Uint8Array][] = [
      ['UTF-8 cut off inside a character', tlv(TAG.UTF8, Uint8Array.of(0x61, 0xe2, 0x82))],
      ['UTF-8 continuation byte alone', tlv(TAG.UTF8, Uint8Array.of(0xac, 0x62))],
      ['UTF-8 overlong NUL', tlv(TAG.UTF8, Uint8Array.of(0xc0, 0x80))],
      ['UTF-8 surrogate', tlv(TAG.UTF8, Uint8Array.of(0xed, 0xa0, 0x80))],
      ['PrintableString with a byte over 7f', tlv(TAG.PRINTABLE, Uint8Array.of(0x61, 0xe9))],
      ['BMPString of an odd length', tlv(0x1e, Uint8Array.of(0, 0x61, 0))],
      ['BMPString lone surrogate', tlv(0x1e, Uint8Array.of(0xd8, 0x00))],
      ['UniversalString past U+10FFFF', tlv(0x1c, Uint8Array.of(0, 0x11, 0, 0))],
      ['an OCTET STRING', encodeOctets(Uint8Array.of(0x61))],
    ];
    for (const [what, value] of bad) {
      expect(() => name(value), what).to.throw(DerError);
      // What a failed call left half-read is not carried into the next (the euro sign's last byte).
      expect(() => name(tlv(TAG.UTF8, Uint8Array.of(0xac))), `after ${what}`).to.throw(DerError);
      expect(name(tlv(TAG.UTF8, Uint8Array.of(0xe2, 0x82, 0xac))), `after ${what}`).to.equal('CN=\u20ac');
    }
    // The admission extension's strings share one decoder the same way.
    const admission = (platform: Uint8Array) => decodeAdmission(seq(encodeOctets(Uint8Array.of(1)), tlv(TAG.UTF8, platform), encodeUtf8('datica')));
    expect(() => admission(Uint8Array.of(0x61, 0xe2, 0x82))).to.throw(DerError, 'not valid UTF-8');
    expect(() => admission(Uint8Array.of(0xac))).to.throw(DerError, 'not valid UTF-8');
    expect(admission(new TextEncoder().encode('sev-snp')).platform).to.equal('sev-snp');
  });

  it('keeps nothing of the caller\'s buffer: a view into a pooled Buffer, overwritten after the parse, changes no result', async () => {
    const leaf = await forgeLeaf(policy);
    const pool = Buffer.allocUnsafe(leaf.length + 64); // as a socket's chunk or Buffer's pool would be
    pool.set(leaf, 32);
    const view = pool.subarray(32, 32 + leaf.length);
    const parsed = parseCertificate(view);
    const peer = validateAdmission({ chain: [view], policyCert: policy.der, at: AT });
    const before = JSON.stringify([parsed, peer]);
    pool.fill(0x30);
    expect(JSON.stringify([parsed, peer])).to.equal(before);
    expect(parsed.subjectDer.buffer).to.not.equal(pool.buffer);
    expect(parseCertificate(leaf).subject).to.equal(parsed.subject);
  });

  it('refuses times and strings that are not what DER says they are (malformed)', async () => {
    const leaf = await forgeLeaf(policy);
    const patch = (from: string, to: string) => {
      const buf = Buffer.from(leaf);
      const at = buf.indexOf(from, 0, 'latin1');
      expect(at, from).to.be.greaterThan(0);
      buf.write(to, at, 'latin1');
      return new Uint8Array(buf);
    };
    const notBefore = new Date(AT.getTime() - DAY).toISOString().replace(/[-T:]/g, '').slice(2, 14) + 'Z'; // YYMMDDHHMMSSZ
    expect(refusal(() => parseCertificate(patch(notBefore, `${notBefore.slice(0, 2)}1332000000Z`)))).to.deep.equal({ code: 'BAD_CERTIFICATE', reason: 'malformed' });
    expect(refusal(() => parseCertificate(patch(notBefore, `${notBefore.slice(0, 12)}+`)))).to.deep.equal({ code: 'BAD_CERTIFICATE', reason: 'malformed' });
    expect(refusal(() => parseCertificate(patch('CertifierUsers', 'Certifier\xffsers')))).to.deep.equal({ code: 'BAD_CERTIFICATE', reason: 'malformed' });
  });
});
