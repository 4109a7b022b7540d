// Decode-then-validate against real bytes written by the original Certifier Framework
// (test/vectors/certifier-original, see its README.md). If these pass, our proto files and
// parsers read what the reference tools write, field for field.

import { expect } from 'chai';
import { X509Certificate, createPublicKey, createHash, verify, type KeyObject } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  decode,
  encode,
  parseClaim,
  parseSignedClaim,
  parseSignedClaimSequence,
  parseTrustRequest,
  parseTrustResponse,
  type MessageName,
} from '../../lib/wire/index.ts';
import type {
  AttestationUserData,
  EntityMessage,
  KeyMessage,
  SignedReport,
  VseAttestationReportInfo,
  VseClause,
} from '../../lib/wire/index.ts';
import { VECTORS } from '../support/helpers.ts';

const DIR = join(VECTORS, 'certifier-original');
const file = (name: string): Buffer => readFileSync(join(DIR, name));

// ---- what the README says, as data -------------------------------------------------------

const MEASUREMENT_HEX = '61bd9182736776eea1304accc7c6aae5ba57e427838586c149a1c05bdd8be65c';
const POLICY_CERT_SHA256 =
  'D7:08:5C:A3:FE:C2:FC:55:91:B3:94:4A:49:3B:7C:85:5E:AF:39:14:F9:E1:C7:77:0A:CA:CF:EA:CE:5C:AE:76';
const SIGNING_ALGORITHM = 'rsa-2048-sha256-pkcs-sign';

/** Every file in the directory and the message it holds ('raw' / 'der' for the two that are not protobuf). */
const FILES: Record<string, MessageName | 'raw' | 'der' | 'text'> = {
  'README.md': 'text',
  'policy_cert_file.datica': 'der',
  'cf_utility.measurement': 'raw',
  policy_key_file: 'key_message',
  'platform_key_file.bin': 'key_message',
  'attest_key_file.bin': 'key_message',
  'policy.bin': 'signed_claim_sequence',
  'signed_claim_1.bin': 'signed_claim_message',
  'signed_claim_2.bin': 'signed_claim_message',
  'platform_attest_endorsement.bin': 'signed_claim_message',
  'treq.bin': 'trust_request_message',
  'tresp.bin': 'trust_response_message',
};

const KEY_FILES = [
  { file: 'policy_key_file', keyName: 'policyKey', keyType: 'rsa-2048-private', keyFormat: 'vse-key', certificate: 'policy_cert_file.datica' },
  { file: 'platform_key_file.bin', keyName: 'platformKey', keyType: 'rsa-2048-private', keyFormat: 'vse-key', certificate: undefined },
  { file: 'attest_key_file.bin', keyName: 'attestKey', keyType: 'rsa-2048-private', keyFormat: 'vse-key', certificate: undefined },
] as const;

/** The statements of the signed claims, in the words of the README. */
const POLICY_CLAIMS = [
  'policyKey says platformKey is-trusted-for-attestation',
  `policyKey says measurement:${MEASUREMENT_HEX} is-trusted`,
];
const ENDORSEMENT = 'platformKey says attestKey is-trusted-for-attestation';
const CLAIM_WINDOW = { notBefore: '2026-11-23T13:38:59.00000Z', notAfter: '2027-12-02T13:38:59.00000Z' };

const TRUST_REQUEST = {
  requestingEnclaveTag: 'requesting-enclave',
  providingEnclaveTag: 'providing-enclave',
  submittedEvidenceType: 'vse-attestation-package',
  purpose: 'authentication',
  proverType: 'vse-verifier',
  enclaveType: 'simulated-enclave',
  evidenceTypes: ['signed-claim', 'signed-vse-attestation-report'],
};

// The reference prints seconds with "%8.5lf": below ten seconds they are padded with a space.
const REPORT_WINDOW = { notBefore: '2026-11-23T13:41: 6.00000Z', notAfter: '2027-11-23T13:41: 6.00000Z' };

const TRUST_RESPONSE = {
  status: 'succeeded',
  requestingEnclaveTag: 'requesting-enclave',
  providingEnclaveTag: 'providing-enclave',
  subject: { O: `Measured-${MEASUREMENT_HEX}`, CN: 'CertifierUsers' },
  issuer: { CN: 'policyKey', O: 'datica/policyAuthority' },
  subjectAltName: 'IP Address:127.0.0.1',
};

// ---- helpers -----------------------------------------------------------------------------

const hex = (b: Uint8Array | undefined): string => Buffer.from(b ?? []).toString('hex');
const same = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean =>
  a !== undefined && b !== undefined && Buffer.from(a).equals(Buffer.from(b));
const toBigInt = (b: Uint8Array | undefined): bigint => BigInt('0x' + (hex(b) || '0'));

/** "name" for a key entity, "measurement:<hex>" for a measurement entity. */
function entityName(e: EntityMessage | undefined): string {
  if (e?.entityType === 'key') return e.key?.keyName ?? '<unnamed key>';
  if (e?.entityType === 'measurement') return `measurement:${hex(e.measurement)}`;
  return `<${e?.entityType ?? 'no entity'}>`;
}

/** Renders "subject verb object" / "subject verb (clause)" the way the README writes claims. */
function statement(c: VseClause): string {
  const parts = [entityName(c.subject), c.verb ?? '<no verb>'];
  if (c.object) parts.push(entityName(c.object));
  if (c.clause) parts.push(statement(c.clause));
  return parts.join(' ');
}

function rsaPublicKey(k: KeyMessage | undefined): KeyObject {
  const n = k?.rsaKey?.publicModulus;
  const e = k?.rsaKey?.publicExponent;
  if (!n || !e) throw new Error('not an RSA key');
  return createPublicKey({ key: { kty: 'RSA', n: Buffer.from(n).toString('base64url'), e: Buffer.from(e).toString('base64url') }, format: 'jwk' });
}

const modulusOf = (k: KeyMessage | undefined): string => hex(k?.rsaKey?.publicModulus);

/** Decodes a signed claim's claim_message and its vse_clause. */
function openClaim(serializedClaimMessage: Uint8Array) {
  const claim = parseClaim(serializedClaimMessage);
  const clause = decode<VseClause>('vse_clause', claim.serializedClaim);
  return { claim, clause };
}

/** Does `der` contain `text` as ASCII bytes? */
const derContains = (der: Uint8Array, text: string): boolean => Buffer.from(der).includes(Buffer.from(text, 'ascii'));

// ---- tests -------------------------------------------------------------------------------

describe('wire: vectors from the original Certifier Framework', () => {
  const policyKey = decode<KeyMessage>('key_message', file('policy_key_file'));
  const platformKey = decode<KeyMessage>('key_message', file('platform_key_file.bin'));
  const attestKey = decode<KeyMessage>('key_message', file('attest_key_file.bin'));

  it('covers every file in the vector directory', () => {
    expect(readdirSync(DIR).sort()).to.deep.equal(Object.keys(FILES).sort());
  });

  describe('measurement and policy certificate', () => {
    it('holds the 32-byte measurement the README gives', () => {
      const m = file('cf_utility.measurement');
      expect(m.length).to.equal(32);
      expect(hex(m)).to.equal(MEASUREMENT_HEX);
    });

    it('holds a self-signed CA policy certificate with the README subject and fingerprint', () => {
      const cert = new X509Certificate(file('policy_cert_file.datica'));
      expect(cert.fingerprint256).to.equal(POLICY_CERT_SHA256);
      expect(cert.subject.split('\n').sort()).to.deep.equal(['CN=policyKey', 'O=datica/policyAuthority']);
      expect(cert.issuer).to.equal(cert.subject);
      expect(cert.ca).to.equal(true);
      expect(cert.verify(cert.publicKey)).to.equal(true);
      expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).to.equal(2048);
    });
  });

  describe('key_message files', () => {
    for (const want of KEY_FILES) {
      it(`decodes ${want.file} as ${want.keyName}, ${want.keyType}, format ${want.keyFormat}, with a consistent RSA-2048 key`, () => {
        const k = decode<KeyMessage>('key_message', file(want.file));
        expect({ keyName: k.keyName, keyType: k.keyType, keyFormat: k.keyFormat }).to.deep.equal({
          keyName: want.keyName,
          keyType: want.keyType,
          keyFormat: want.keyFormat,
        });
        expect(k.eccKey).to.equal(undefined);
        const rsa = k.rsaKey!;
        expect(rsa.publicModulus).to.have.length(256);
        expect(rsa.publicModulus![0]! & 0x80, 'modulus uses all 2048 bits').to.equal(0x80);
        expect(hex(rsa.publicExponent)).to.equal('010001');
        expect(rsa.privateExponent).to.have.length(256);
        for (const part of ['privateP', 'privateQ', 'privateDp', 'privateDq', 'privateIqmp'] as const) {
          expect(rsa[part], part).to.have.length(128);
        }
        // The fields landed in the right slots: n = p * q and iqmp * q = 1 (mod p).
        const [n, p, q, iqmp] = [rsa.publicModulus, rsa.privateP, rsa.privateQ, rsa.privateIqmp].map(toBigInt) as [bigint, bigint, bigint, bigint];
        expect(p * q === n, 'n = p * q').to.equal(true);
        expect((iqmp * q) % p === 1n, 'iqmp = q^-1 mod p').to.equal(true);
        if (want.certificate) expect(k.certificate).to.have.length.greaterThan(0);
        else expect(k.certificate).to.equal(undefined);
      });
    }

    it('carries in field 7 of policy_key_file exactly the bytes of policy_cert_file.datica', () => {
      expect(same(policyKey.certificate, file('policy_cert_file.datica'))).to.equal(true);
    });

    it('matches the policy certificate public key to the policy key modulus', () => {
      const jwk = new X509Certificate(file('policy_cert_file.datica')).publicKey.export({ format: 'jwk' });
      expect(Buffer.from(jwk.n!, 'base64url').toString('hex')).to.equal(modulusOf(policyKey));
    });
  });

  describe('policy.bin', () => {
    const claims = parseSignedClaimSequence(file('policy.bin'));

    it('holds two claims, each signed by the policy key with rsa-2048-sha256-pkcs-sign', () => {
      expect(claims).to.have.length(2);
      for (const sc of claims) {
        expect(sc.signingAlgorithm).to.equal(SIGNING_ALGORITHM);
        expect(sc.signingKey.keyName).to.equal('policyKey');
        expect(sc.signingKey.keyType).to.equal('rsa-2048-public');
        expect(sc.signingKey.keyFormat).to.equal('vse-key');
        expect(sc.signingKey.rsaKey?.privateExponent, 'no private part in a claim').to.equal(undefined);
        expect(modulusOf(sc.signingKey)).to.equal(modulusOf(policyKey));
        expect(same(sc.signingKey.certificate, file('policy_cert_file.datica'))).to.equal(true);
        expect(sc.signature).to.have.length(256);
      }
    });

    it('has inner claim_messages of format "vse-clause" with the README validity window', () => {
      for (const sc of claims) {
        const { claim } = openClaim(sc.serializedClaimMessage);
        expect(claim.claimFormat).to.equal('vse-clause');
        expect({ notBefore: claim.notBefore, notAfter: claim.notAfter }).to.deep.equal(CLAIM_WINDOW);
      }
    });

    it('states "policyKey says platformKey is-trusted-for-attestation" and "policyKey says measurement is-trusted"', () => {
      const statements = claims.map((sc) => statement(openClaim(sc.serializedClaimMessage).clause));
      expect(statements).to.deep.equal(POLICY_CLAIMS);
    });

    it('nests the trusted clause under "says" with a key or measurement subject and no object', () => {
      const [first, second] = claims.map((sc) => openClaim(sc.serializedClaimMessage).clause) as [VseClause, VseClause];
      for (const c of [first, second]) {
        expect(c.verb).to.equal('says');
        expect(c.subject?.entityType).to.equal('key');
        expect(c.object).to.equal(undefined);
        expect(c.clause?.clause).to.equal(undefined);
      }
      expect(first.clause?.verb).to.equal('is-trusted-for-attestation');
      expect(first.clause?.subject?.entityType).to.equal('key');
      expect(modulusOf(first.clause?.subject?.key)).to.equal(modulusOf(platformKey));
      expect(second.clause?.verb).to.equal('is-trusted');
      expect(second.clause?.subject?.entityType).to.equal('measurement');
      expect(same(second.clause?.subject?.measurement, file('cf_utility.measurement'))).to.equal(true);
    });

    it('gives decoded claim bytes that verify under the decoded policy key', () => {
      for (const sc of claims) {
        expect(verify('sha256', sc.serializedClaimMessage, rsaPublicKey(sc.signingKey), sc.signature)).to.equal(true);
      }
    });

    it('equals signed_claim_1.bin and signed_claim_2.bin, claim for claim', () => {
      const separate = ['signed_claim_1.bin', 'signed_claim_2.bin'].map((f) => parseSignedClaim(file(f)));
      expect(separate).to.deep.equal(claims);
      // and byte for byte: each file is the serialization of the corresponding sequence element
      separate.forEach((_, i) => {
        const reencoded = encode('signed_claim_message', claims[i]!);
        expect(same(reencoded, file(`signed_claim_${i + 1}.bin`)), `signed_claim_${i + 1}.bin`).to.equal(true);
      });
    });
  });

  describe('platform_attest_endorsement.bin', () => {
    const sc = parseSignedClaim(file('platform_attest_endorsement.bin'));

    it('states "platformKey says attestKey is-trusted-for-attestation", signed by the platform key', () => {
      const { claim, clause } = openClaim(sc.serializedClaimMessage);
      expect(claim.claimFormat).to.equal('vse-clause');
      expect(statement(clause)).to.equal(ENDORSEMENT);
      expect(sc.signingAlgorithm).to.equal(SIGNING_ALGORITHM);
      expect(sc.signingKey.keyName).to.equal('platformKey');
      expect(modulusOf(sc.signingKey)).to.equal(modulusOf(platformKey));
      expect(modulusOf(clause.clause?.subject?.key)).to.equal(modulusOf(attestKey));
      expect(verify('sha256', sc.serializedClaimMessage, rsaPublicKey(sc.signingKey), sc.signature)).to.equal(true);
    });
  });

  describe('treq.bin', () => {
    const req = parseTrustRequest(file('treq.bin'));

    it('has the README tags, evidence type, purpose, prover, enclave type and assertion types', () => {
      expect({
        requestingEnclaveTag: req.requestingEnclaveTag,
        providingEnclaveTag: req.providingEnclaveTag,
        submittedEvidenceType: req.submittedEvidenceType,
        purpose: req.purpose,
        proverType: req.support.proverType,
        enclaveType: req.support.enclaveType,
        evidenceTypes: req.support.factAssertion.map((f) => f.evidenceType),
      }).to.deep.equal(TRUST_REQUEST);
    });

    it('carries the endorsement as its first assertion, byte for byte', () => {
      const first = req.support.factAssertion[0]!;
      expect(same(first.serializedEvidence, file('platform_attest_endorsement.bin'))).to.equal(true);
      expect(statement(openClaim(parseSignedClaim(first.serializedEvidence).serializedClaimMessage).clause)).to.equal(ENDORSEMENT);
    });

    describe('second assertion', () => {
      const sr = decode<SignedReport>('signed_report', req.support.factAssertion[1]!.serializedEvidence);
      const info = decode<VseAttestationReportInfo>('vse_attestation_report_info', sr.report!);
      const userData = decode<AttestationUserData>('attestation_user_data', info.userData!);

      it('is a signed_report of format "vse-attestation-report" signed by the attestation key', () => {
        expect(sr.reportFormat).to.equal('vse-attestation-report');
        expect(sr.signingAlgorithm).to.equal(SIGNING_ALGORITHM);
        expect(sr.signingKey?.keyName).to.equal('attestKey');
        expect(sr.signingKey?.keyType).to.equal('rsa-2048-public');
        expect(modulusOf(sr.signingKey)).to.equal(modulusOf(attestKey));
        expect(verify('sha256', sr.report!, rsaPublicKey(sr.signingKey), sr.signature!)).to.equal(true);
      });

      it('reports a simulated-enclave whose verified measurement is cf_utility.measurement', () => {
        expect(info.enclaveType).to.equal('simulated-enclave');
        expect(hex(info.verifiedMeasurement)).to.equal(MEASUREMENT_HEX);
        expect(same(info.verifiedMeasurement, file('cf_utility.measurement'))).to.equal(true);
        expect({ notBefore: info.notBefore, notAfter: info.notAfter }).to.deep.equal(REPORT_WINDOW);
      });

      it('has user_data that decodes as attestation_user_data naming the enclave auth key, without a session binding', () => {
        expect(userData.enclaveType).to.equal('simulated-enclave');
        expect(userData.time).to.equal(REPORT_WINDOW.notBefore);
        expect(userData.enclaveKey?.keyName).to.equal('auth-key');
        expect(userData.enclaveKey?.keyType).to.equal('rsa-2048-public');
        expect(userData.enclaveKey?.rsaKey?.publicModulus).to.have.length(256);
        expect(userData.policyKey).to.equal(undefined);
        expect(userData.sessionBinding, 'field 100 is this suite\'s addition').to.equal(undefined);
      });
    });
  });

  describe('tresp.bin', () => {
    const resp = parseTrustResponse(file('tresp.bin'));

    it('says "succeeded", echoes both tags and carries no error code', () => {
      expect(resp.status).to.equal(TRUST_RESPONSE.status);
      expect(resp.requestingEnclaveTag).to.equal(TRUST_RESPONSE.requestingEnclaveTag);
      expect(resp.providingEnclaveTag).to.equal(TRUST_RESPONSE.providingEnclaveTag);
      expect(resp.errorCode).to.equal(undefined);
    });

    it('carries a DER certificate whose bytes contain O=Measured-61bd...e65c and CN=CertifierUsers', () => {
      const der = resp.artifact!;
      expect([der[0], der[1]], 'DER SEQUENCE with a two-byte length').to.deep.equal([0x30, 0x82]);
      expect((der[2]! << 8) + der[3]! + 4).to.equal(der.length);
      expect(derContains(der, TRUST_RESPONSE.subject.O)).to.equal(true);
      expect(derContains(der, TRUST_RESPONSE.subject.CN)).to.equal(true);
    });

    it('parses as an X.509 certificate for the enclave auth key, issued and signed by the policy certificate', () => {
      const cert = new X509Certificate(resp.artifact!);
      const policy = new X509Certificate(file('policy_cert_file.datica'));
      expect(cert.subject.split('\n')).to.have.members(Object.entries(TRUST_RESPONSE.subject).map(([k, v]) => `${k}=${v}`));
      expect(cert.issuer.split('\n')).to.have.members(Object.entries(TRUST_RESPONSE.issuer).map(([k, v]) => `${k}=${v}`));
      expect(cert.subjectAltName).to.equal(TRUST_RESPONSE.subjectAltName);
      expect(cert.checkIssued(policy)).to.equal(true);
      expect(cert.verify(policy.publicKey)).to.equal(true);
      expect(cert.publicKey.asymmetricKeyType).to.equal('rsa');

      const sr = decode<SignedReport>('signed_report', parseTrustRequest(file('treq.bin')).support.factAssertion[1]!.serializedEvidence);
      const info = decode<VseAttestationReportInfo>('vse_attestation_report_info', sr.report!);
      const authKey = decode<AttestationUserData>('attestation_user_data', info.userData!).enclaveKey;
      expect(Buffer.from(cert.publicKey.export({ format: 'jwk' }).n!, 'base64url').toString('hex')).to.equal(modulusOf(authKey));
    });
  });

  describe('round trips through encode', () => {
    for (const [name, kind] of Object.entries(FILES)) {
      if (kind === 'raw' || kind === 'der' || kind === 'text') continue;
      it(`re-encodes ${name} (${kind}) to an object that decodes the same, and to the same bytes`, () => {
        const bytes = file(name);
        const first = decode<object>(kind, bytes);
        const again = encode(kind, first);
        expect(decode<object>(kind, again)).to.deep.equal(first);
        // Presence (including the empty strings and bytes the reference writes) and field
        // order survive, so signatures over re-encoded bytes still hold.
        expect(createHash('sha256').update(again).digest('hex')).to.equal(createHash('sha256').update(bytes).digest('hex'));
      });
    }

    it('re-encodes every nested message (claims, clauses, report, user data) to the same object', () => {
      const req = parseTrustRequest(file('treq.bin'));
      const sr = decode<SignedReport>('signed_report', req.support.factAssertion[1]!.serializedEvidence);
      const info = decode<VseAttestationReportInfo>('vse_attestation_report_info', sr.report!);
      const nested: [MessageName, Uint8Array][] = [
        ['signed_report', req.support.factAssertion[1]!.serializedEvidence],
        ['vse_attestation_report_info', sr.report!],
        ['attestation_user_data', info.userData!],
      ];
      for (const sc of [...parseSignedClaimSequence(file('policy.bin')), parseSignedClaim(file('platform_attest_endorsement.bin'))]) {
        nested.push(['claim_message', sc.serializedClaimMessage]);
        nested.push(['vse_clause', parseClaim(sc.serializedClaimMessage).serializedClaim]);
      }
      for (const [kind, bytes] of nested) {
        const first = decode<object>(kind, bytes);
        const again = encode(kind, first);
        expect(decode<object>(kind, again), kind).to.deep.equal(first);
        expect(same(again, bytes), `${kind} bytes`).to.equal(true);
      }
    });
  });
});
