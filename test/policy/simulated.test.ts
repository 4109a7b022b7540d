// The simulated platform end to end through verification and the policy engine, and each
// refusal with its own code.

import { expect } from 'chai';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { CertifierError } from '../../lib/errors/index.ts';
import { generateKeyPair, randomBytes, sha256, sign, signatureAlgFor, toKeyMessage, publicKeyOf, utf8 } from '../../lib/crypto/index.ts';
import { decode, encode, parseTrustRequest, type EvidencePackage, type SignedClaimSequence, type SignedReport } from '../../lib/wire/index.ts';
import { evaluate, formatCertifierTime, keyEntity, keyLabel, loadPolicy, makePolicy, measurementEntity, saysClause, signClaim, simpleClause, verifySignedClaim, type Decision, type Window } from '../../lib/policy/index.ts';
import { generateSimulatedPlatform, SimulatedEnclave, verifiedBefore, verifyEvidence } from '../../lib/attest/index.ts';
import { Cryptstore } from '../../cryptstore/index.ts';
import { basicConstraints, encodeName, randomSerial, signCertificate, spkiOf } from '../../lib/pki/build.ts';
import { tempDir } from '../support/helpers.ts';
import { joinPolicies } from '../support/policies.ts';

const DAY = 86_400_000;
// Set when the suite starts (not when mocha loads the file, minutes earlier in a full run): the
// platform's endorsement is made then and is not valid before.
let now = new Date();
const measurement = sha256(utf8('the program'));

async function setup() {
  const policy = await generateKeyPair('p256');
  const platform = await generateSimulatedPlatform();
  const enclave = new SimulatedEnclave(platform.attestKey, platform.endorsement, measurement);
  const machine = await generateKeyPair('p256');
  const policyFile = makePolicy({
    policyKey: policy.privateKey, platforms: [{ key: platform.platformKey }], measurements: [measurement],
    notBefore: new Date(now.getTime() - DAY), notAfter: new Date(now.getTime() + DAY),
  });
  return { policy, platform, enclave, machine, policyFile };
}

function request(pkg: EvidencePackage) {
  return parseTrustRequest(encode('trust_request_message', {
    requestingEnclaveTag: 'requesting-enclave', providingEnclaveTag: 'providing-enclave',
    submittedEvidenceType: 'vse-attestation-package', purpose: 'authentication', support: pkg,
  }));
}

async function decide(s: Awaited<ReturnType<typeof setup>>, o: { binding?: Uint8Array; expected?: Uint8Array; enclave?: SimulatedEnclave; at?: Date; policyFile?: Uint8Array } = {}): Promise<Decision> {
  const binding = o.binding ?? randomBytes(32);
  const pkg = await (o.enclave ?? s.enclave).attest({
    enclaveType: 'simulated-enclave', time: formatCertifierTime(now), enclaveKey: toKeyMessage(publicKeyOf(s.machine.privateKey), 'auth-key'), sessionBinding: binding,
  });
  const facts = verifyEvidence(request(pkg).support);
  return evaluate(loadPolicy(o.policyFile ?? s.policyFile, s.policy.publicKey), facts, { at: o.at ?? now, purpose: 'authentication', expectedBinding: o.expected ?? binding });
}

describe('simulated platform and policy engine', () => {
  let s: Awaited<ReturnType<typeof setup>>;
  before(async () => {
    now = new Date();
    s = await setup();
  });

  it('refuses, over the plain protocol, evidence bound to a TLS session (made for a TLS connection: a replay)', async () => {
    const binding = randomBytes(32);
    const pkg = await s.enclave.attest({
      enclaveType: 'simulated-enclave', time: formatCertifierTime(now), enclaveKey: toKeyMessage(publicKeyOf(s.machine.privateKey), 'auth-key'), sessionBinding: binding,
    });
    const facts = verifyEvidence(request(pkg).support);
    const d = evaluate(loadPolicy(s.policyFile, s.policy.publicKey), facts, { at: now, purpose: 'authentication', sessionless: true });
    expect(d).to.include({ allow: false, code: 'SESSION_MISMATCH' });
    const bare = await s.enclave.attest({ enclaveType: 'simulated-enclave', time: formatCertifierTime(now), enclaveKey: toKeyMessage(publicKeyOf(s.machine.privateKey), 'auth-key') });
    expect(evaluate(loadPolicy(s.policyFile, s.policy.publicKey), verifyEvidence(request(bare).support), { at: now, purpose: 'authentication', sessionless: true }).allow).to.equal(true);
  });

  it('refuses signed user data it does not fully understand: an unknown field, a time that is none, another enclave type (EVIDENCE_MALFORMED)', async () => {
    const base = { enclaveType: 'simulated-enclave', time: formatCertifierTime(now), enclaveKey: toKeyMessage(publicKeyOf(s.machine.privateKey), 'auth-key') };
    /** The enclave's evidence with its user data replaced, the report signed again with the attestation key. */
    const withUserData = async (ud: Uint8Array) => {
      const pkg = await s.enclave.attest(base);
      const fact = pkg.factAssertion![1]!;
      const sr = decode<SignedReport>('signed_report', fact.serializedEvidence!);
      const info = encode('vse_attestation_report_info', { ...decode<Record<string, unknown>>('vse_attestation_report_info', sr.report!), userData: ud });
      fact.serializedEvidence = encode('signed_report', { ...sr, report: info, signature: sign(s.platform.attestKey, info, sr.signingAlgorithm as never) });
      return request(pkg).support;
    };
    const good = encode('attestation_user_data', base);
    expect(verifyEvidence(await withUserData(good)).platform).to.equal('simulated-enclave');
    for (const ud of [
      new Uint8Array([...good, 0x90, 0x03, 0x01]),
      encode('attestation_user_data', { ...base, time: 'yesterday' }),
      encode('attestation_user_data', { ...base, enclaveType: 'sev-enclave' }),
    ]) {
      const support = await withUserData(ud);
      expect(() => verifyEvidence(support)).to.throw(CertifierError).with.property('code', 'EVIDENCE_MALFORMED');
    }
  });

  it('allows a trusted measurement on a trusted platform bound to this session, with the proof', async () => {
    const d = await decide(s);
    expect(d.allow).to.equal(true);
    expect(d.proof).to.have.length(6);
    expect(d.proof.join('\n')).to.contain('bound to this TLS session');
  });

  it('denies an untrusted measurement with MEASUREMENT_NOT_TRUSTED naming it', async () => {
    const other = new SimulatedEnclave(s.platform.attestKey, s.platform.endorsement, sha256(utf8('another program')));
    const d = await decide(s, { enclave: other });
    expect(d).to.include({ allow: false, code: 'MEASUREMENT_NOT_TRUSTED' });
    if (!d.allow) expect(d.reason).to.contain(Buffer.from(sha256(utf8('another program'))).toString('hex'));
  });

  it('says a decision is bound only once the evidence is proven bound to this session: not a refusal before that, anybody\'s to have with a copy of the evidence, nor anything over the plain protocol', async () => {
    const other = new SimulatedEnclave(s.platform.attestKey, s.platform.endorsement, sha256(utf8('another program')));
    const p2 = await generateSimulatedPlatform();
    const cases: [string, Decision, string, boolean][] = [
      ['allowed', await decide(s), 'allow', true],
      ['measurement not trusted', await decide(s, { enclave: other }), 'MEASUREMENT_NOT_TRUSTED', true],
      ['bound to another session', await decide(s, { expected: randomBytes(32) }), 'SESSION_MISMATCH', false],
      ['two days on, the platform claim ended', await decide(s, { at: new Date(now.getTime() + 2 * DAY) }), 'CLAIM_EXPIRED', false],
      ['platform not trusted', await decide(s, { enclave: new SimulatedEnclave(p2.attestKey, p2.endorsement, measurement) }), 'PLATFORM_NOT_TRUSTED', false],
    ];
    for (const [what, d, code, bound] of cases) expect({ code: d.allow ? 'allow' : d.code, bound: d.bound }, what).to.deep.equal({ code, bound });
    const bare = await other.attest({ enclaveType: 'simulated-enclave', time: formatCertifierTime(now), enclaveKey: toKeyMessage(publicKeyOf(s.machine.privateKey), 'auth-key') });
    const plain = evaluate(loadPolicy(s.policyFile, s.policy.publicKey), verifyEvidence(request(bare).support), { at: now, purpose: 'authentication', sessionless: true });
    expect(plain).to.include({ allow: false, code: 'MEASUREMENT_NOT_TRUSTED', bound: false });
  });

  it('denies an untrusted platform with PLATFORM_NOT_TRUSTED', async () => {
    const p2 = await generateSimulatedPlatform();
    const d = await decide(s, { enclave: new SimulatedEnclave(p2.attestKey, p2.endorsement, measurement) });
    expect(d).to.include({ allow: false, code: 'PLATFORM_NOT_TRUSTED' });
  });

  it('denies with PLATFORM_NOT_TRUSTED a platform key the policy trusts only as the root of another platform type', async () => {
    const key = s.platform.platformKey;
    const rootCert = signCertificate({
      serial: randomSerial(), issuer: encodeName([['2.5.4.3', 'root']]), subject: encodeName([['2.5.4.3', 'root']]),
      notBefore: new Date(now.getTime() - DAY), notAfter: new Date(now.getTime() + DAY), spki: spkiOf(key), extensions: [basicConstraints(true)],
    }, key);
    const rootPolicy = (platformType: string) => makePolicy({
      policyKey: s.policy.privateKey, platforms: [], platformRoots: [{ platformType, certificate: rootCert, name: 'root' }], measurements: [measurement],
      notBefore: new Date(now.getTime() - DAY), notAfter: new Date(now.getTime() + DAY),
    });
    expect(await decide(s, { policyFile: rootPolicy('amd-sev-snp') })).to.include({ allow: false, code: 'PLATFORM_NOT_TRUSTED' });
    expect((await decide(s, { policyFile: rootPolicy('simulated-enclave') })).allow, 'the same key as a simulated-enclave root').to.equal(true);
  });

  it('denies with CLAIM_EXPIRED when the platform claim alone, or the measurement claim alone, is not in force yet or any more, naming it', async () => {
    const HOUR = 3_600_000;
    const inForce = { notBefore: new Date(now.getTime() - DAY), notAfter: new Date(now.getTime() + DAY) };
    const notYet = { notBefore: new Date(now.getTime() + HOUR), notAfter: new Date(now.getTime() + DAY) };
    const noLonger = { notBefore: new Date(now.getTime() - DAY), notAfter: new Date(now.getTime() - HOUR) };
    const policyFile = (platform: Window, trusted: Window) => joinPolicies(
      makePolicy({ policyKey: s.policy.privateKey, platforms: [{ key: s.platform.platformKey }], measurements: [], ...platform }),
      makePolicy({ policyKey: s.policy.privateKey, platforms: [], measurements: [measurement], ...trusted }),
    );
    for (const out of [notYet, noLonger]) {
      for (const [file, claim] of [[policyFile(out, inForce), 'platform key'], [policyFile(inForce, out), 'measurement']] as const) {
        const d = await decide(s, { policyFile: file });
        expect(d).to.include({ allow: false, code: 'CLAIM_EXPIRED' });
        if (!d.allow) expect(d.reason).to.contain(`the policy claim trusting ${claim}`);
      }
    }
    expect((await decide(s, { policyFile: policyFile(inForce, inForce) })).allow).to.equal(true);
  });

  it('tolerates evidence dated up to 5 minutes ahead of the clock, but none past its end (CLAIM_EXPIRED)', async () => {
    const MINUTE = 60_000;
    const longPolicy = makePolicy({
      policyKey: s.policy.privateKey, platforms: [{ key: s.platform.platformKey }], measurements: [measurement],
      notBefore: new Date(now.getTime() - DAY), notAfter: new Date(now.getTime() + 3 * DAY),
    });
    const at = (ms: number) => decide(s, { policyFile: longPolicy, at: new Date(Date.now() + ms) }); // the report: valid a day from when it is made
    expect((await at(-MINUTE)).allow, 'a minute ahead').to.equal(true);
    for (const [ms, what] of [[-10 * MINUTE, 'ten minutes ahead'], [DAY + MINUTE, 'a minute past its end']] as const) {
      const d = await at(ms);
      expect(d, what).to.include({ allow: false, code: 'CLAIM_EXPIRED' });
      if (!d.allow) expect(d.reason).to.match(/^the (endorsement|attestation report) is valid from/);
    }
  });

  it('keeps no endorsement padded to a megabyte among those it remembers: anybody may send such, and the memory stayed taken', async () => {
    // A sound endorsement of the client's own making, and an unknown field of a megabyte after it
    // (field 15, bytes): verifying it needs no trust, so the verifier remembered it.
    const { endorsement } = await generateSimulatedPlatform();
    const fill = Buffer.from(randomBytes(1 << 20));
    const pkg = (i: number): EvidencePackage => {
      fill.writeUInt32BE(i); // a different endorsement each time
      const padded = Buffer.concat([endorsement, Uint8Array.of(0x7a, 0x80, 0x80, 0x40), fill]);
      return { proverType: 'vse-verifier', enclaveType: 'simulated-enclave', factAssertion: [{ evidenceType: 'signed-claim', serializedEvidence: padded }, { evidenceType: 'signed-vse-attestation-report', serializedEvidence: Uint8Array.of(1) }] };
    };
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    const used = () => { const m = process.memoryUsage(); return m.heapUsed + m.external; };
    const before = used();
    for (let i = 0; i < 64; i++) expect(() => verifyEvidence(request(pkg(i)).support), `request ${i}`).to.throw(CertifierError, 'not a valid signed_report');
    // Buffers' memory goes back a moment after the collection that drops them.
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect((used() - before) / 2 ** 20, 'MiB kept').to.be.below(16);
  });

  it('refuses an endorsement signed by the wrong key with ENDORSEMENT_INVALID', async () => {
    // The clause claims the trusted platform key speaks, but another key signed it.
    const impostor = await generateKeyPair('p256');
    const clause = saysClause(keyEntity(s.platform.platformKey, 'platformKey'), simpleClause(keyEntity(s.platform.attestKey, 'attestKey'), 'is-trusted-for-attestation'));
    const sc = signClaim({ signer: impostor.privateKey, clause, notBefore: now, notAfter: new Date(now.getTime() + DAY) });
    sc.signingKey = toKeyMessage(publicKeyOf(s.platform.platformKey), 'platformKey');
    const forged = new SimulatedEnclave(s.platform.attestKey, encode('signed_claim_message', sc), measurement);
    const e = await decide(s, { enclave: forged }).catch((x) => x);
    expect(e).to.be.instanceOf(CertifierError).with.property('code', 'ENDORSEMENT_INVALID');
  });

  it('refuses a "says" claim signed by another key than the one that says it, though its signature verifies (ENDORSEMENT_INVALID)', async () => {
    const impostor = await generateKeyPair('p256');
    const clause = saysClause(keyEntity(s.platform.platformKey, 'platformKey'), simpleClause(keyEntity(s.platform.attestKey, 'attestKey'), 'is-trusted-for-attestation'));
    const sc = signClaim({ signer: impostor.privateKey, clause, notBefore: now, notAfter: new Date(now.getTime() + DAY) });
    const e = await decide(s, { enclave: new SimulatedEnclave(s.platform.attestKey, encode('signed_claim_message', sc), measurement) }).catch((x) => x);
    expect(e).to.be.instanceOf(CertifierError).with.property('code', 'ENDORSEMENT_INVALID');
    expect(e.message).to.include('a "says" claim must be signed by the key that says it');
  });

  it('refuses as an endorsement what the platform key signed but that does not make the key an attestation key, or says more than that (an object, a nested clause), as the policy is read (ENDORSEMENT_INVALID)', async () => {
    const platformKey = keyEntity(s.platform.platformKey, 'platformKey');
    const trusted = (verb: 'is-trusted-for-attestation' | 'is-trusted-for-authentication') => simpleClause(keyEntity(s.platform.attestKey, 'attestKey'), verb);
    const clauses = [
      saysClause(platformKey, trusted('is-trusted-for-authentication')), // another verb
      { ...saysClause(platformKey, trusted('is-trusted-for-attestation')), verb: 'is-trusted' as const }, // not "says"
      // Something more than "attestKey is-trusted-for-attestation", which would be read as that alone:
      saysClause(platformKey, { ...trusted('is-trusted-for-attestation'), object: measurementEntity(sha256(utf8('another program'))) }), // for one measurement only
      saysClause(platformKey, { ...trusted('is-trusted-for-attestation'), clause: trusted('is-trusted-for-attestation') }), // a nested clause
      { ...saysClause(platformKey, trusted('is-trusted-for-attestation')), object: measurementEntity(measurement) }, // "says" with an object
    ];
    for (const [i, clause] of clauses.entries()) {
      const sc = signClaim({ signer: s.platform.platformKey, signerName: 'platformKey', clause, notBefore: now, notAfter: new Date(now.getTime() + DAY) });
      const e = await decide(s, { enclave: new SimulatedEnclave(s.platform.attestKey, encode('signed_claim_message', sc), measurement) }).catch((x) => x);
      expect(e, `clause ${i + 1}`).to.be.instanceOf(CertifierError).with.property('code', 'ENDORSEMENT_INVALID');
    }
  });

  it('takes a report of a 32-byte measurement only, whatever the policy trusts (a 48-byte SEV-SNP one too), valid between two times, and its evidence in any order, one of each', async () => {
    const m48 = randomBytes(48);
    const policyFile = makePolicy({ policyKey: s.policy.privateKey, platforms: [{ key: s.platform.platformKey }], measurements: [measurement, m48, m48.subarray(0, 32)], notBefore: new Date(now.getTime() - DAY), notAfter: new Date(now.getTime() + DAY) });
    const binding = randomBytes(32);
    const userData = encode('attestation_user_data', { enclaveType: 'simulated-enclave', time: formatCertifierTime(now), enclaveKey: toKeyMessage(publicKeyOf(s.machine.privateKey), 'auth-key'), sessionBinding: binding });
    /** Evidence as SimulatedEnclave makes it, but of any measurement, its assertions changed by `edit`. */
    const evidence = (m: Uint8Array, edit: (a: NonNullable<EvidencePackage['factAssertion']>) => void = () => {}, window: { notBefore?: string; notAfter?: string } = {}) => {
      const info = encode('vse_attestation_report_info', { enclaveType: 'simulated-enclave', verifiedMeasurement: m, notBefore: formatCertifierTime(now), notAfter: formatCertifierTime(new Date(now.getTime() + DAY)), ...window, userData });
      const alg = signatureAlgFor(s.platform.attestKey);
      const report = encode('signed_report', { reportFormat: 'vse-attestation-report', report: info, signingKey: toKeyMessage(publicKeyOf(s.platform.attestKey), 'attestKey'), signingAlgorithm: alg, signature: sign(s.platform.attestKey, info, alg) });
      const factAssertion = [{ evidenceType: 'signed-claim', serializedEvidence: s.platform.endorsement }, { evidenceType: 'signed-vse-attestation-report', serializedEvidence: report }];
      edit(factAssertion);
      return { proverType: 'vse-verifier', enclaveType: 'simulated-enclave', factAssertion };
    };
    const outcome = (pkg: EvidencePackage) => {
      try {
        const d = evaluate(loadPolicy(policyFile, s.policy.publicKey), verifyEvidence(request(pkg).support), { at: now, purpose: 'authentication', expectedBinding: binding });
        return d.allow ? 'ok' : d.code;
      } catch (e) {
        if (e instanceof CertifierError) return e.code;
        throw e;
      }
    };
    const attempts: [string, string, EvidencePackage][] = [
      ['32 bytes', 'ok', evidence(measurement)],
      ['48 bytes, trusted for SEV-SNP machines', 'EVIDENCE_MALFORMED', evidence(m48)],
      ['31 bytes', 'EVIDENCE_MALFORMED', evidence(measurement.subarray(1))],
      ['33 bytes', 'EVIDENCE_MALFORMED', evidence(Uint8Array.of(...measurement, 0))],
      ['none', 'EVIDENCE_MALFORMED', evidence(new Uint8Array())],
      ['the report before the endorsement', 'ok', evidence(measurement, (a) => a.reverse())],
      ['a certificate and an SEV-SNP report beside them (not this platform\'s evidence)', 'ok', evidence(measurement, (a) => a.push({ evidenceType: 'cert', serializedEvidence: randomBytes(64) }, { evidenceType: 'sev-attestation', serializedEvidence: randomBytes(64) }))],
      ['the endorsement twice', 'EVIDENCE_MALFORMED', evidence(measurement, (a) => a.push(a[0]!))],
      ['a second report, of another measurement', 'EVIDENCE_MALFORMED', evidence(measurement, (a) => a.push(evidence(m48.subarray(0, 32)).factAssertion[1]!))],
      ['a report valid from a time that is none', 'EVIDENCE_MALFORMED', evidence(measurement, undefined, { notBefore: 'now' })],
      ['a report valid until no time', 'EVIDENCE_MALFORMED', evidence(measurement, undefined, { notAfter: '' })],
    ];
    expect(attempts.map(([what, , pkg]) => [what, outcome(pkg)])).to.deep.equal(attempts.map(([what, want]) => [what, want]));
  });

  it('refuses a report signed by a key the platform did not endorse with REPORT_INVALID', async () => {
    const rogue = await generateKeyPair('p256');
    const d = await decide(s, { enclave: new SimulatedEnclave(rogue.privateKey, s.platform.endorsement, measurement) }).catch((x) => x);
    expect(d).to.be.instanceOf(CertifierError).with.property('code', 'REPORT_INVALID');
    // The endorsement verified before: the refusal names it (explain's proof), as a refused endorsement names nothing.
    expect(verifiedBefore(d)).to.deep.equal([`${keyLabel(s.platform.platformKey, 'platformKey')} says ${keyLabel(publicKeyOf(s.platform.attestKey), 'attestKey')} is-trusted-for-attestation (signature verified)`]);
    const impostor = await generateKeyPair('p256');
    const forged = signClaim({ signer: impostor.privateKey, clause: saysClause(keyEntity(s.platform.platformKey, 'platformKey'), simpleClause(keyEntity(s.platform.attestKey, 'attestKey'), 'is-trusted-for-attestation')), notBefore: now, notAfter: new Date(now.getTime() + DAY) });
    const refused = await decide(s, { enclave: new SimulatedEnclave(s.platform.attestKey, encode('signed_claim_message', forged), measurement) }).catch((x) => x);
    expect(refused).to.have.property('code', 'ENDORSEMENT_INVALID');
    expect(verifiedBefore(refused)).to.deep.equal([]);
  });

  it('refuses a report whose signature does not verify with REPORT_INVALID', async () => {
    const pkg = await s.enclave.attest({ enclaveType: 'simulated-enclave', enclaveKey: toKeyMessage(publicKeyOf(s.machine.privateKey)) });
    const sr = decode<SignedReport>('signed_report', pkg.factAssertion![1]!.serializedEvidence!);
    sr.report = new Uint8Array(sr.report!);
    sr.report[sr.report.length - 1]! ^= 1;
    pkg.factAssertion![1]!.serializedEvidence = encode('signed_report', sr);
    expect(() => verifyEvidence(request(pkg).support)).to.throw(CertifierError).with.property('code', 'REPORT_INVALID');
  });

  it('denies evidence under an expired policy claim with CLAIM_EXPIRED', async () => {
    const expired = makePolicy({
      policyKey: s.policy.privateKey, platforms: [{ key: s.platform.platformKey }], measurements: [measurement],
      notBefore: new Date(now.getTime() - 3 * DAY), notAfter: new Date(now.getTime() - DAY),
    });
    expect(await decide(s, { policyFile: expired })).to.include({ allow: false, code: 'CLAIM_EXPIRED' });
  });

  it('refuses a policy whose signature does not verify with POLICY_INVALID', () => {
    const bad = new Uint8Array(s.policyFile);
    bad[bad.length - 5]! ^= 1;
    expect(() => loadPolicy(bad, s.policy.publicKey)).to.throw(CertifierError).with.property('code', 'POLICY_INVALID');
  });

  it('denies evidence bound to a different TLS session (a replay) with SESSION_MISMATCH', async () => {
    expect(await decide(s, { binding: randomBytes(32), expected: randomBytes(32) })).to.include({ allow: false, code: 'SESSION_MISMATCH' });
  });

  describe('sealing', () => {
    let tmp: ReturnType<typeof tempDir>;
    beforeEach(() => (tmp = tempDir()));
    afterEach(() => tmp.cleanup());

    it('opens a sealed store with the same platform and measurement, and refuses another measurement, or another platform\'s secret with the same measurement, with WRONG_KEY', async () => {
      const dir = join(tmp.dir, 'sealed');
      const st = await Cryptstore.create(dir, s.enclave.sealingProtector());
      await st.put('k', utf8('v'));
      await st.close();
      const again = await Cryptstore.open(dir, s.enclave.sealingProtector());
      expect(Buffer.from((await again.get('k')).blob).toString()).to.equal('v');
      expect(again.info.protection).to.deep.equal({ kind: 'sealed', platform: 'simulated-enclave' });
      await again.close();
      const other = new SimulatedEnclave(s.platform.attestKey, s.platform.endorsement, sha256(utf8('changed program')));
      const e = await Cryptstore.open(dir, other.sealingProtector()).catch((x) => x);
      expect(e).to.be.instanceOf(CertifierError).with.property('code', 'WRONG_KEY');
      // README, "The cryptstore": the key is derived from the platform's secret and the measurement.
      const elsewhere = await generateSimulatedPlatform({ alg: 'p256' });
      const sameProgram = new SimulatedEnclave(elsewhere.attestKey, elsewhere.endorsement, s.enclave.measurement);
      const e2 = await Cryptstore.open(dir, sameProgram.sealingProtector()).catch((x) => x);
      expect(e2).to.be.instanceOf(CertifierError).with.property('code', 'WRONG_KEY');
    });

    it('forgets the attestation key\'s bytes it derives with once disposed, as a key file\'s protector does', async () => {
      const protector = s.enclave.sealingProtector();
      const { params, kek } = await protector.create();
      expect(Buffer.from(await protector.derive(params)).equals(kek)).to.equal(true);
      protector.dispose?.();
      expect(Buffer.from(await protector.derive(params)).equals(kek), 'derives the same key after dispose').to.equal(false);
    });

    // Regression: the key was derived from the attestation key's PKCS#8 as read, which holds its
    // public point only if the file did; the same key without it (openssl ec -no_public) sealed to another.
    it('opens a sealed store with the same attestation key read from a file that leaves out its public point', async () => {
      const dir = join(tmp.dir, 'sealed');
      const st = await Cryptstore.create(dir, s.enclave.sealingProtector());
      await st.put('k', utf8('v'));
      await st.close();
      const d = Buffer.from(s.platform.attestKey.export({ format: 'jwk' }).d!, 'base64url');
      // SEC1 ECPrivateKey (RFC 5915) with the curve named and no publicKey: version 1, d, [0] prime256v1.
      const sec1 = Buffer.concat([Buffer.from('30310201010420', 'hex'), d, Buffer.from('a00a06082a8648ce3d030107', 'hex')]);
      const bare = SimulatedEnclave.fromFiles(sec1, s.platform.endorsement, s.enclave.measurement);
      const again = await Cryptstore.open(dir, bare.sealingProtector());
      expect(Buffer.from((await again.get('k')).blob).toString()).to.equal('v');
      await again.close();
    });
  });

  // README, "Threat model": a policy is claims each signed on its own, so whoever may write the
  // file but lacks the policy key can drop claims and bring back older ones still in force, and
  // no more.
  describe('someone who can write the policy file but does not hold the policy key', () => {
    const theirs = sha256(utf8('their program'));
    const theirEnclave = () => new SimulatedEnclave(s.platform.attestKey, s.platform.endorsement, theirs);
    const trusting = (policyKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'], from: number, to: number) =>
      makePolicy({ policyKey, platforms: [], measurements: [theirs], notBefore: new Date(now.getTime() + from), notAfter: new Date(now.getTime() + to) });

    it('cannot add a claim of their own signing: the whole policy is refused (POLICY_INVALID), naming the claim', async () => {
      const own = await generateKeyPair('p256');
      const spliced = joinPolicies(s.policyFile, trusting(own.privateKey, -DAY, DAY));
      expect(() => loadPolicy(spliced, s.policy.publicKey)).to.throw(CertifierError, /^policy claim 3 is signed by .*, not by the policy key /).with.property('code', 'POLICY_INVALID');
    });

    it('can drop a claim: the measurement it trusted is no longer admitted (MEASUREMENT_NOT_TRUSTED)', async () => {
      const claims = decode<SignedClaimSequence>('signed_claim_sequence', s.policyFile).claims!;
      expect(claims).to.have.length(2);
      const dropped = encode('signed_claim_sequence', { claims: claims.slice(0, 1) });
      expect(await decide(s, { policyFile: dropped })).to.include({ allow: false, code: 'MEASUREMENT_NOT_TRUSTED' });
    });

    it('can add back a claim of an older policy of the same key while it is in force, and gains nothing by one whose dates have passed (CLAIM_EXPIRED)', async () => {
      expect(await decide(s, { enclave: theirEnclave() })).to.include({ allow: false, code: 'MEASUREMENT_NOT_TRUSTED' });
      const inForce = joinPolicies(s.policyFile, trusting(s.policy.privateKey, -2 * DAY, DAY));
      expect((await decide(s, { enclave: theirEnclave(), policyFile: inForce })).allow).to.equal(true);
      const ended = joinPolicies(s.policyFile, trusting(s.policy.privateKey, -3 * DAY, -DAY));
      expect(await decide(s, { enclave: theirEnclave(), policyFile: ended })).to.include({ allow: false, code: 'CLAIM_EXPIRED' });
    });
  });

  describe('a signed claim\'s times', () => {
    /** A claim signed by `key` whose times are these strings, as a faulty or foreign tool might write them. */
    const claimWith = async (notBefore: string, notAfter: string) => {
      const key = (await generateKeyPair('p256')).privateKey;
      const clause = simpleClause(keyEntity(publicKeyOf(key)), 'is-trusted');
      const claim = encode('claim_message', { claimFormat: 'vse-clause', claimDescriptor: '', notBefore, notAfter, serializedClaim: encode('vse_clause', clause) });
      const alg = signatureAlgFor(key);
      return { serializedClaimMessage: claim, signingKey: toKeyMessage(publicKeyOf(key)), signingAlgorithm: alg, signature: sign(key, claim, alg) };
    };
    const refusal = (sc: Awaited<ReturnType<typeof claimWith>>) => {
      try {
        verifySignedClaim(sc, 'POLICY_INVALID', 'policy claim 1');
      } catch (e) {
        return e as CertifierError;
      }
      return undefined;
    };

    it('refuses an impossible date, a 60th second and a time with an offset as the claim\'s fault (POLICY_INVALID, not BAD_FIELD)', async () => {
      for (const [bad, why] of [['2026-02-30T00:00:00.00000Z', 'not a valid date'], ['2026-03-01T12:00:60.00000Z', 'not a valid date'], ['2026-03-01T12:00:00+01:00', 'not a time']] as const) {
        const e = refusal(await claimWith(bad, '2027-01-01T00:00:00.00000Z'));
        expect(e?.code, bad).to.equal('POLICY_INVALID');
        expect(e?.message).to.equal(`policy claim 1: not_before "${bad}" is ${why}`);
      }
    });

    it('refuses a field it does not know anywhere in what is signed, rather than enforcing the rest (POLICY_INVALID)', async () => {
      const key = (await generateKeyPair('p256')).privateKey;
      const clause = encode('vse_clause', simpleClause(keyEntity(publicKeyOf(key)), 'is-trusted'));
      const unknown = new Uint8Array([0x90, 0x03, 0x01]); // field 50, varint 1: a newer tool's restriction, say
      const signed = (claimBytes: Uint8Array) => {
        const alg = signatureAlgFor(key);
        return { serializedClaimMessage: claimBytes, signingKey: toKeyMessage(publicKeyOf(key)), signingAlgorithm: alg, signature: sign(key, claimBytes, alg) };
      };
      const claim = (serializedClaim: Uint8Array, extra = new Uint8Array()) => new Uint8Array([...encode('claim_message', {
        claimFormat: 'vse-clause', claimDescriptor: '', notBefore: '2026-01-01T00:00:00.00000Z', notAfter: '2027-01-01T00:00:00.00000Z', serializedClaim,
      }), ...extra]);
      expect(refusal(signed(claim(clause)))).to.equal(undefined);
      for (const sc of [signed(claim(new Uint8Array([...clause, ...unknown]))), signed(claim(clause, unknown))]) {
        const e = refusal(sc);
        expect(e?.code).to.equal('POLICY_INVALID');
        expect(e?.message).to.match(/field 50 is not part of (vse_clause|claim_message)/);
      }
    });

    it('refuses a policy with a field it does not know around its claims, or a "says" with an object', async () => {
      const policyKey = (await generateKeyPair('p256')).privateKey;
      const me = keyEntity(publicKeyOf(policyKey));
      const inner = simpleClause(measurementEntity(measurement), 'is-trusted');
      const claimOf = (clause: Parameters<typeof signClaim>[0]['clause']) => signClaim({ signer: policyKey, clause, notBefore: new Date(now.getTime() - DAY), notAfter: new Date(now.getTime() + DAY) });
      const good = encode('signed_claim_sequence', { claims: [claimOf(saysClause(me, inner))] });
      expect(loadPolicy(good, publicKeyOf(policyKey)).measurements).to.have.length(1);
      const wrapped = new Uint8Array([...good, 0x90, 0x03, 0x01]);
      expect(() => loadPolicy(wrapped, publicKeyOf(policyKey))).to.throw(CertifierError, /not a signed_claim_sequence/).with.property('code', 'POLICY_INVALID');
      const saysWithObject = encode('signed_claim_sequence', { claims: [claimOf({ ...saysClause(me, inner), object: me })] });
      expect(() => loadPolicy(saysWithObject, publicKeyOf(policyKey))).to.throw(CertifierError, /does not understand/).with.property('code', 'POLICY_INVALID');
    });

    it('refuses a claim whose not_before is after its not_after: it is never in force', async () => {
      const e = refusal(await claimWith('2027-01-01T00:00:00.00000Z', '2026-01-01T00:00:00.00000Z'));
      expect(e?.code).to.equal('POLICY_INVALID');
      expect(e?.message).to.contain('is after not_after');
      expect(refusal(await claimWith('2026-01-01T00:00:00.00000Z', '2026-01-01T00:00:00.00000Z'))).to.equal(undefined);
    });
  });
});
