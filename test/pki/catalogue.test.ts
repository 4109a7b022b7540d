// A catalogue of bad certificates, each with one defect, and the exact code and reason our
// validator gives it. The forged good leaf passing first shows each defect is the only one.

import { expect } from 'chai';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair, toHex, type KeyPair } from '../../lib/crypto/index.ts';
import { VECTORS } from '../support/helpers.ts';
import { CertifierError, ErrorCodes, type ErrorCode } from '../../lib/errors/index.ts';
import { encodeAdmission, validateAdmission, validatePolicyCert, withDateFix, type Usage } from '../../lib/pki/index.ts';
import { children, encodeBitString, encodeNull, encodeOid, readOne, seq, set, TAG, tlv } from '../../lib/pki/der.ts';
import { AT, DAY, forgeLeaf, forgePolicy, GOOD_ADMISSION, KeyUsageFlags, MEASUREMENT, readPolicySubject, resign, withSignatureAlgorithm, type ForgedPolicy } from './forge.ts';

function outcome(fn: () => unknown): { code: ErrorCode; reason: unknown; exit: number; message: string } | 'valid' {
  try {
    fn();
    return 'valid';
  } catch (e) {
    if (!(e instanceof CertifierError)) throw e;
    return { code: e.code, reason: e.details?.reason, exit: e.exitStatus, message: e.message };
  }
}

function expectRefused(fn: () => unknown, code: ErrorCode, reason: string): void {
  const got = outcome(fn);
  expect(got).to.not.equal('valid');
  if (got === 'valid') return;
  expect({ code: got.code, reason: got.reason }).to.deep.equal({ code, reason });
  expect(got.exit).to.equal(ErrorCodes[code]);
  expect(got.message, 'the message names the reason').to.include(`(${reason})`);
}

describe('pki: a catalogue of bad certificates', () => {
  let policy: ForgedPolicy;
  const check = (leaf: Uint8Array, usage?: Usage, pinned: Uint8Array = policy.der) =>
    () => validateAdmission({ chain: [leaf], policyCert: pinned, at: AT, ...(usage ? { usage } : {}) });

  before(async () => {
    policy = await forgePolicy();
  });

  it('refuses a leaf signed by another key under the policy certificate\'s name and key id (UNTRUSTED_PEER, signature)', async () => {
    const other = await generateKeyPair('p256');
    expectRefused(check(await forgeLeaf(policy, { signWith: other.privateKey })), 'UNTRUSTED_PEER', 'signature');
  });

  it('refuses a leaf whose issuer is not the policy certificate\'s subject (UNTRUSTED_PEER, issuer)', async () => {
    expectRefused(check(await forgeLeaf(policy, { issuer: 'CN=policyKey, O=elsewhere/policyAuthority' })), 'UNTRUSTED_PEER', 'issuer');
  });

  it('compares the issuer with the policy certificate\'s subject byte for byte: a name that differs in length, order, type, grouping, case or string type is another name', async () => {
    const atv = (oid: string, value: Uint8Array) => seq(encodeOid(oid), value);
    const text = (v: string, type: number) => tlv(type, new TextEncoder().encode(v));
    const cn = (v: string, type: number = TAG.PRINTABLE) => atv('2.5.4.3', text(v, type));
    const o = (v: string) => atv('2.5.4.10', text(v, TAG.PRINTABLE));
    const same = seq(set(cn('policyKey')), set(o('datica/policyAuthority')));
    expect(toHex(same), 'the policy certificate\'s subject, as written here').to.equal(toHex(readPolicySubject(policy.der)));
    expect(check(await forgeLeaf(policy, { issuer: same }))()).to.have.property('domain', 'datica');
    const others: [string, Uint8Array][] = [
      ['one RDN more', seq(set(cn('policyKey')), set(o('datica/policyAuthority')), set(o('x')))],
      ['one RDN fewer', seq(set(cn('policyKey')))],
      ['RDNs in the other order', seq(set(o('datica/policyAuthority')), set(cn('policyKey')))],
      ['another attribute type, same value', seq(set(atv('2.5.4.4', text('policyKey', TAG.PRINTABLE))), set(o('datica/policyAuthority')))],
      ['both attributes in one multi-valued RDN', seq(set(cn('policyKey'), o('datica/policyAuthority')))],
      ['another case', seq(set(cn('PolicyKey')), set(o('datica/policyAuthority')))],
      ['UTF8String, same text', seq(set(cn('policyKey', TAG.UTF8)), set(o('datica/policyAuthority')))],
      ['a trailing space', seq(set(cn('policyKey ')), set(o('datica/policyAuthority')))],
    ];
    for (const [what, issuer] of others) expect(outcome(check(await forgeLeaf(policy, { issuer }))), what).to.deep.include({ code: 'UNTRUSTED_PEER', reason: 'issuer' });
  });

  it('refuses a leaf issued by a different policy certificate with the same name (UNTRUSTED_PEER, root-mismatch)', async () => {
    const twin = await forgePolicy();
    const leaf = await forgeLeaf(twin);
    expect(outcome(check(leaf, 'any', twin.der))).to.equal('valid');
    expectRefused(check(leaf), 'UNTRUSTED_PEER', 'root-mismatch');
    // Without a key identifier to compare, the signature check catches the same leaf.
    expectRefused(check(await forgeLeaf(twin, { authorityKeyIdHex: undefined })), 'UNTRUSTED_PEER', 'signature');
  });

  it('refuses a chain carrying a certificate other than the pinned policy certificate (UNTRUSTED_PEER, root-mismatch)', async () => {
    const twin = await forgePolicy();
    const leaf = await forgeLeaf(policy);
    expectRefused(() => validateAdmission({ chain: [leaf, twin.der], policyCert: policy.der, at: AT }), 'UNTRUSTED_PEER', 'root-mismatch');
  });

  it('refuses an empty chain (UNTRUSTED_PEER, no-certificate)', () => {
    expectRefused(() => validateAdmission({ chain: [], policyCert: policy.der, at: AT }), 'UNTRUSTED_PEER', 'no-certificate');
  });

  it('refuses an expired leaf (CERT_EXPIRED, expired)', async () => {
    const leaf = await forgeLeaf(policy, { notBefore: new Date(AT.getTime() - 3 * DAY), notAfter: new Date(AT.getTime() - 1000) });
    expectRefused(check(leaf), 'CERT_EXPIRED', 'expired');
    expect(outcome(check(leaf))).to.have.property('message').that.does.not.contain('policy key');
  });

  it('refuses a leaf that is not valid yet (CERT_EXPIRED, not-yet-valid)', async () => {
    const leaf = await forgeLeaf(policy, { notBefore: new Date(AT.getTime() + 1000), notAfter: new Date(AT.getTime() + 3 * DAY) });
    expectRefused(check(leaf), 'CERT_EXPIRED', 'not-yet-valid');
  });

  it('says by how much this machine\'s clock is behind for a leaf or policy certificate not valid yet (withDateFix): its start less the time checked, plus the 5 minutes every certificate is backdated', async () => {
    const fix = { expired: 'renew it', notYetValid: (behind: string) => `this machine's clock is ${behind} behind` };
    const leaf = await forgeLeaf(policy, { notBefore: new Date(AT.getTime() + 2 * 3_600_000), notAfter: new Date(AT.getTime() + 3 * DAY) });
    const refused = (fn: () => unknown) => { try { fn(); } catch (e) { return e; } return expect.fail('accepted'); };
    const early = refused(check(leaf)) as CertifierError;
    expect(early.details).to.include({ notBefore: '2026-12-01T02:00:00.000Z', checkedAt: AT.toISOString() });
    const fixed = withDateFix(early, fix) as CertifierError;
    expect(fixed).to.include({ code: 'CERT_EXPIRED' });
    expect(fixed.message).to.equal(`${early.message}: this machine's clock is at least 2 hours 5 minutes behind`);
    expect((withDateFix(early, fix, { justIssued: true }) as CertifierError).message).to.equal(`${early.message}: this machine's clock is about 2 hours 5 minutes behind`);
    // The policy certificate not valid yet: this machine's clock again, though an ended one keeps its own fix.
    const later = await forgePolicy({ notBefore: new Date(AT.getTime() + 3 * DAY), notAfter: new Date(AT.getTime() + 9 * DAY) });
    const underLater = refused(check(await forgeLeaf(later), 'any', later.der)) as CertifierError;
    expect(underLater.details).to.include({ certificate: 'policy', reason: 'not-yet-valid' });
    expect((withDateFix(underLater, fix) as CertifierError).message).to.match(/: this machine's clock is at least 3 days behind that of the machine that made the policy certificate: set it right \(NTP, e\.g\. chrony; README "Clocks"\)$/);
    const old = await forgePolicy({ notBefore: new Date(AT.getTime() - 9 * DAY), notAfter: new Date(AT.getTime() - DAY) });
    const ended = refused(check(await forgeLeaf(old), 'any', old.der));
    expect(withDateFix(ended, fix)).to.equal(ended);
  });

  it('refuses a leaf under an expired policy certificate (CERT_EXPIRED, expired, certificate: policy)', async () => {
    const old = await forgePolicy({ notBefore: new Date(AT.getTime() - 9 * DAY), notAfter: new Date(AT.getTime() - DAY) });
    const leaf = await forgeLeaf(old);
    expectRefused(check(leaf, 'any', old.der), 'CERT_EXPIRED', 'expired');
    // The pinned certificate alone, as every program checks it before connecting: what to do, too.
    expect(() => validatePolicyCert(old.der, AT)).to.throw(/the policy certificate expired at .*the policy key must be replaced \(README "Replacing the policy key"\), or a clock is wrong/);
    try {
      check(leaf, 'any', old.der)();
    } catch (e) {
      expect((e as CertifierError).details?.certificate).to.equal('policy');
    }
  });

  it('refuses a leaf that is a CA (BAD_CERTIFICATE, is-ca)', async () => {
    expectRefused(check(await forgeLeaf(policy, { basicConstraints: { ca: true } })), 'BAD_CERTIFICATE', 'is-ca');
  });

  it('refuses a leaf without digitalSignature (BAD_CERTIFICATE, key-usage)', async () => {
    expectRefused(check(await forgeLeaf(policy, { keyUsage: KeyUsageFlags.keyEncipherment })), 'BAD_CERTIFICATE', 'key-usage');
  });

  it('refuses a leaf with no key usage extension at all (BAD_CERTIFICATE, key-usage)', async () => {
    expectRefused(check(await forgeLeaf(policy, { keyUsage: null })), 'BAD_CERTIFICATE', 'key-usage');
  });

  it('refuses a non-CA leaf allowed to sign certificates (BAD_CERTIFICATE, key-usage)', async () => {
    const leaf = await forgeLeaf(policy, { keyUsage: KeyUsageFlags.digitalSignature | KeyUsageFlags.keyCertSign });
    expectRefused(check(leaf), 'BAD_CERTIFICATE', 'key-usage');
  });

  it('refuses a server-only leaf as a client, and a client-only leaf as a server (BAD_CERTIFICATE, ext-key-usage)', async () => {
    const serverOnly = await forgeLeaf(policy, { extKeyUsage: [x509.ExtendedKeyUsage.serverAuth] });
    const clientOnly = await forgeLeaf(policy, { extKeyUsage: [x509.ExtendedKeyUsage.clientAuth] });
    expectRefused(check(serverOnly, 'client'), 'BAD_CERTIFICATE', 'ext-key-usage');
    expectRefused(check(clientOnly, 'server'), 'BAD_CERTIFICATE', 'ext-key-usage');
    expect(outcome(check(serverOnly, 'server'))).to.equal('valid');
    expect(outcome(check(clientOnly, 'client'))).to.equal('valid');
    expect(outcome(check(clientOnly, 'any'))).to.equal('valid');
    // A role credential: its own purpose, or clientAuth as older ones carry; never serverAuth alone.
    expectRefused(check(serverOnly, 'role'), 'BAD_CERTIFICATE', 'ext-key-usage');
    expect(outcome(check(clientOnly, 'role'))).to.equal('valid');
    // A machine's own certificate: it serves and connects with it, so it needs both.
    expectRefused(check(serverOnly, 'machine'), 'BAD_CERTIFICATE', 'ext-key-usage');
    expectRefused(check(clientOnly, 'machine'), 'BAD_CERTIFICATE', 'ext-key-usage');
    expect(outcome(check(await forgeLeaf(policy), 'machine'))).to.equal('valid');
  });

  it('refuses a leaf without any extended key usage, for every usage (BAD_CERTIFICATE, ext-key-usage)', async () => {
    const leaf = await forgeLeaf(policy, { extKeyUsage: null });
    for (const usage of ['client', 'server', 'any', 'machine'] as const) expectRefused(check(leaf, usage), 'BAD_CERTIFICATE', 'ext-key-usage');
  });

  it('refuses a leaf without the admission extension (BAD_CERTIFICATE, no-admission-extension)', async () => {
    expectRefused(check(await forgeLeaf(policy, { admission: null })), 'BAD_CERTIFICATE', 'no-admission-extension');
  });

  it('refuses a leaf whose extension measurement differs from its subject (BAD_CERTIFICATE, measurement-mismatch)', async () => {
    const other = MEASUREMENT.map((b) => b ^ 0xff);
    const leaf = await forgeLeaf(policy, { admission: encodeAdmission({ ...GOOD_ADMISSION, measurement: other }) });
    expectRefused(check(leaf), 'BAD_CERTIFICATE', 'measurement-mismatch');
  });

  it('refuses a leaf whose subject has no Measured- organization (BAD_CERTIFICATE, measurement-mismatch)', async () => {
    const leaf = await forgeLeaf(policy, { subject: 'CN=CertifierUsers' });
    expectRefused(check(leaf), 'BAD_CERTIFICATE', 'measurement-mismatch');
  });

  it('refuses a leaf whose subject has a second Measured- organization beside the right one (BAD_CERTIFICATE, measurement-mismatch)', async () => {
    const other = toHex(MEASUREMENT.map((b) => b ^ 0xff));
    expectRefused(check(await forgeLeaf(policy, { subject: `O=Measured-${toHex(MEASUREMENT)}, O=Measured-${other}, CN=CertifierUsers` })), 'BAD_CERTIFICATE', 'measurement-mismatch');
    expectRefused(check(await forgeLeaf(policy, { subject: `O=Measured-${other}, O=Measured-${toHex(MEASUREMENT)}, CN=CertifierUsers` })), 'BAD_CERTIFICATE', 'measurement-mismatch');
  });

  it('refuses a leaf naming another domain than the policy certificate (BAD_CERTIFICATE, domain-mismatch)', async () => {
    const leaf = await forgeLeaf(policy, { admission: encodeAdmission({ ...GOOD_ADMISSION, domain: 'other' }) });
    expectRefused(check(leaf), 'BAD_CERTIFICATE', 'domain-mismatch');
  });

  it('refuses a leaf with a malformed admission extension (BAD_CERTIFICATE, bad-admission-extension)', async () => {
    const leaf = await forgeLeaf(policy, { admission: Uint8Array.of(0x30, 0x03, 0x04, 0x01, 0xaa) });
    expectRefused(check(leaf), 'BAD_CERTIFICATE', 'bad-admission-extension');
  });

  it('refuses a leaf with an unknown critical extension (BAD_CERTIFICATE, unknown-critical-extension)', async () => {
    const leaf = await forgeLeaf(policy, { extra: [new x509.Extension('1.3.6.1.4.1.99999.7', true, Uint8Array.of(0x05, 0x00))] });
    expectRefused(check(leaf), 'BAD_CERTIFICATE', 'unknown-critical-extension');
  });

  it('refuses a leaf carrying the same extension twice (BAD_CERTIFICATE, duplicate-extension)', async () => {
    const leaf = await forgeLeaf(policy, { extra: [new x509.KeyUsagesExtension(KeyUsageFlags.digitalSignature, true)] });
    expectRefused(check(leaf), 'BAD_CERTIFICATE', 'duplicate-extension');
  });

  it('refuses a leaf under a policy certificate that is not a CA (BAD_CERTIFICATE, policy-not-ca)', async () => {
    const notCa = await forgePolicy({ basicConstraints: { ca: false } });
    expectRefused(check(await forgeLeaf(notCa), 'any', notCa.der), 'BAD_CERTIFICATE', 'policy-not-ca');
    const noConstraints = await forgePolicy({ basicConstraints: null });
    expectRefused(check(await forgeLeaf(noConstraints), 'any', noConstraints.der), 'BAD_CERTIFICATE', 'policy-not-ca');
  });

  it('refuses a policy certificate without keyCertSign (BAD_CERTIFICATE, policy-key-usage)', async () => {
    const weak = await forgePolicy({ keyUsage: KeyUsageFlags.digitalSignature });
    expectRefused(() => validatePolicyCert(weak.der, AT), 'BAD_CERTIFICATE', 'policy-key-usage');
  });

  it('refuses a policy certificate without key usage at all, saying so (BAD_CERTIFICATE, policy-key-usage)', async () => {
    const none = await forgePolicy({ keyUsage: null });
    expectRefused(() => validatePolicyCert(none.der, AT), 'BAD_CERTIFICATE', 'policy-key-usage');
    expect(() => validatePolicyCert(none.der, AT)).to.throw('has no key usage extension');
  });

  it('refuses a policy certificate whose extended key usage does not allow both TLS purposes (certificates it issued would fail TLS one way)', async () => {
    for (const refused of [['1.3.6.1.5.5.7.3.3'], ['1.3.6.1.5.5.7.3.1'], ['1.3.6.1.5.5.7.3.2', '1.3.6.1.5.5.7.3.3']]) {
      const weak = await forgePolicy({ extKeyUsage: refused });
      expectRefused(() => validatePolicyCert(weak.der, AT), 'BAD_CERTIFICATE', 'policy-ext-key-usage');
    }
    for (const allowed of [['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], ['2.5.29.37.0']]) {
      const ok = await forgePolicy({ extKeyUsage: allowed });
      expect(() => validatePolicyCert(ok.der, AT), allowed.join()).to.not.throw();
    }
  });

  it('refuses a policy certificate naming two domains (BAD_CERTIFICATE, policy-domains)', async () => {
    const two = await forgePolicy({ subject: 'CN=policyKey, O=evil/policyAuthority, O=datica/policyAuthority', issuer: 'CN=policyKey, O=evil/policyAuthority, O=datica/policyAuthority' });
    expectRefused(() => validatePolicyCert(two.der, AT), 'BAD_CERTIFICATE', 'policy-domains');
  });

  it('refuses a policy certificate with an unknown critical extension (BAD_CERTIFICATE, unknown-critical-extension, certificate: policy)', async () => {
    const odd = await forgePolicy({ extra: [new x509.Extension('1.3.6.1.4.1.99999.7', true, Uint8Array.of(0x05, 0x00))] });
    expectRefused(() => validatePolicyCert(odd.der, AT), 'BAD_CERTIFICATE', 'unknown-critical-extension');
    expectRefused(check(await forgeLeaf(odd), 'any', odd.der), 'BAD_CERTIFICATE', 'unknown-critical-extension');
  });

  it('refuses a policy certificate whose self-signature is not its own (UNTRUSTED_PEER, policy-self-signature)', async () => {
    const stranger = await generateKeyPair('p256');
    const forged = await forgePolicy({ signWith: stranger.privateKey });
    expectRefused(() => validatePolicyCert(forged.der, AT), 'UNTRUSTED_PEER', 'policy-self-signature');
    const notSelfIssued = await forgePolicy({ issuer: 'CN=someone else' });
    expectRefused(() => validatePolicyCert(notSelfIssued.der, AT), 'UNTRUSTED_PEER', 'policy-self-signature');
  });

  it('refuses garbage bytes in place of the leaf (BAD_CERTIFICATE, malformed)', () => {
    const garbage = new TextEncoder().encode('this is not a certificate at all');
    expectRefused(check(garbage), 'BAD_CERTIFICATE', 'malformed');
    expectRefused(check(Uint8Array.of(0x30, 0x80, 0x00, 0x00)), 'BAD_CERTIFICATE', 'malformed');
    expectRefused(check(new Uint8Array(0)), 'BAD_CERTIFICATE', 'malformed');
  });

  it('refuses a good leaf with bytes after its DER (BAD_CERTIFICATE, trailing-bytes)', async () => {
    const leaf = await forgeLeaf(policy);
    const padded = new Uint8Array([...leaf, 0x00]);
    expectRefused(check(padded), 'BAD_CERTIFICATE', 'trailing-bytes');
  });

  it('refuses a leaf with one flipped bit in its signed part (UNTRUSTED_PEER, signature)', async () => {
    const leaf = await forgeLeaf(policy);
    const text = Buffer.from(leaf);
    const at = text.indexOf('CertifierUsers');
    expect(at).to.be.greaterThan(0);
    text.writeUInt8(text.readUInt8(at) ^ 0x01, at); // still well formed, no longer what was signed
    expectRefused(check(new Uint8Array(text)), 'UNTRUSTED_PEER', 'signature');
  });

  it('refuses a leaf whose ECDSA signature algorithm carries parameters (BAD_CERTIFICATE, signature-algorithm)', async () => {
    const ecdsaSha256 = (...params: Uint8Array[]) => seq(encodeOid('1.2.840.10045.4.3.2'), ...params);
    const leaf = await forgeLeaf(policy);
    expect(outcome(check(withSignatureAlgorithm(leaf, ecdsaSha256(), policy.keys.privateKey)))).to.equal('valid');
    expectRefused(check(withSignatureAlgorithm(leaf, ecdsaSha256(encodeNull()), policy.keys.privateKey)), 'BAD_CERTIFICATE', 'signature-algorithm');
  });

  it('refuses a leaf naming an RSA signature algorithm though an ECDSA policy key signed it (UNTRUSTED_PEER, signature)', async () => {
    const rsaSha256 = seq(encodeOid('1.2.840.113549.1.1.11'), encodeNull());
    expectRefused(check(withSignatureAlgorithm(await forgeLeaf(policy), rsaSha256, policy.keys.privateKey)), 'UNTRUSTED_PEER', 'signature');
  });

  it('refuses a leaf whose key is on no curve we use (BAD_CERTIFICATE, key-algorithm)', async () => {
    const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' });
    expectRefused(check(await forgeLeaf(policy, {}, p521)), 'BAD_CERTIFICATE', 'key-algorithm');
  });

  it('refuses a leaf whose P-256 point is off the curve, though the policy key signed it (BAD_CERTIFICATE, public-key)', async () => {
    const keys = await generateKeyPair('p256');
    const point = Buffer.from(keys.publicKey.export({ type: 'spki', format: 'der' })).subarray(-65);
    const der = Buffer.from(await forgeLeaf(policy, {}, keys));
    const at = der.indexOf(point);
    expect(at).to.be.greaterThan(0);
    der[at + 64]! ^= 1; // y + or - 1
    expectRefused(check(resign(new Uint8Array(der), policy.keys.privateKey)), 'BAD_CERTIFICATE', 'public-key');
  });

  it('refuses a leaf whose key is the point at infinity (a lone 00) or a hybrid point, though the policy key signed it (BAD_CERTIFICATE, public-key)', async () => {
    // OpenSSL reads the point at infinity as a key, and Node aborts the process asking for its details.
    const [tbs, alg, sig] = children(readOne(await forgeLeaf(policy)));
    const fields = children(tbs!);
    const withKey = (curveOid: string, point: Uint8Array) => {
      const spki = seq(seq(encodeOid('1.2.840.10045.2.1'), encodeOid(curveOid)), encodeBitString(point));
      return resign(seq(seq(...fields.map((f, i) => (i === 6 ? spki : f.bytes))), alg!.bytes, sig!.bytes), policy.keys.privateKey);
    };
    for (const curveOid of ['1.2.840.10045.3.1.7', '1.3.132.0.34', '1.3.132.0.35']) {
      expectRefused(check(withKey(curveOid, Uint8Array.of(0))), 'BAD_CERTIFICATE', 'public-key');
    }
    const point = Buffer.from((await generateKeyPair('p256')).publicKey.export({ type: 'spki', format: 'der' })).subarray(-65);
    expect(check(withKey('1.2.840.10045.3.1.7', point))()).to.have.property('domain', 'datica');
    point[0] = 0x06 | (point[64]! & 1); // hybrid: 06 for an even y, 07 for an odd one
    expectRefused(check(withKey('1.2.840.10045.3.1.7', point)), 'BAD_CERTIFICATE', 'public-key');
  });

  it('refuses a leaf, and a policy certificate, whose EC key gives its curve\'s parameters instead of naming the curve (RFC 5480 2.1.1; CVE-2020-0601), though the right key signed each (BAD_CERTIFICATE, public-key)', async () => {
    // The key of test/vectors/pki/explicit-p256.key.pem (openssl ecparam -param_enc explicit), and the same key with its curve named.
    const explicit = createPrivateKey(readFileSync(join(VECTORS, 'pki', 'explicit-p256.key.pem')));
    const named = createPrivateKey({ key: explicit.export({ format: 'jwk' }), format: 'jwk' });
    const pair = (publicKey: KeyObject): KeyPair => ({ privateKey: named, publicKey });
    const leaf = await forgeLeaf(policy, {}, pair(createPublicKey(explicit)));
    expectRefused(check(leaf), 'BAD_CERTIFICATE', 'public-key');
    expect(outcome(check(leaf))).to.have.property('message').that.includes('gives its curve\'s parameters');
    expect(check(await forgeLeaf(policy, {}, pair(createPublicKey(named))))()).to.have.property('domain', 'datica');
    const explicitPolicy = await forgePolicy({}, 'p256', pair(createPublicKey(explicit)));
    expectRefused(() => validatePolicyCert(explicitPolicy.der, AT), 'BAD_CERTIFICATE', 'public-key');
    expect(validatePolicyCert((await forgePolicy({}, 'p256', pair(createPublicKey(named)))).der, AT)).to.have.property('publicKey');
  });

  it('gives the peer\'s key as the very key of the certificate, imported only when asked for', async () => {
    const keys = await generateKeyPair('p256');
    const peer = validateAdmission({ chain: [await forgeLeaf(policy, {}, keys)], policyCert: policy.der, at: AT, usage: 'client' });
    expect(peer.publicKey.equals(keys.publicKey)).to.equal(true);
    expect(peer.publicKey).to.equal(peer.publicKey);
  });

  it('gives the path\'s window as the later start and the earlier end of the leaf and the policy certificate', async () => {
    const window = async (notBefore: Date, notAfter: Date) => {
      const peer = validateAdmission({ chain: [await forgeLeaf(policy, { notBefore, notAfter })], policyCert: policy.der, at: AT });
      return [peer.validFrom.toISOString(), peer.validUntil.toISOString()];
    };
    // An hour's leaf inside the policy certificate's year: the leaf's own dates.
    const [start, end] = [new Date(AT.getTime() - 1_800_000), new Date(AT.getTime() + 1_800_000)];
    expect(await window(start, end)).to.deep.equal([start.toISOString(), end.toISOString()]);
    // A leaf starting before and ending after the policy certificate: the policy certificate's dates.
    const policyDates = [new Date(AT.getTime() - DAY).toISOString(), new Date(AT.getTime() + 365 * DAY).toISOString()];
    expect(await window(new Date(AT.getTime() - 2 * DAY), new Date(AT.getTime() + 400 * DAY))).to.deep.equal(policyDates);
  });

  it('accepts the forged good leaf, so each defect above is the only one', async () => {
    const leaf = await forgeLeaf(policy);
    const peer = validateAdmission({ chain: [leaf, policy.der], policyCert: policy.der, at: AT, usage: 'client' });
    expect(peer.measurementHex).to.equal(toHex(MEASUREMENT));
    expect(peer).to.include({ platform: 'simulated-enclave', domain: 'datica' });
  });
});
