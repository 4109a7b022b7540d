// The machine's side of SEV-SNP: the configfs-tsm exchange against a temporary directory laid out
// as /sys/kernel/config/tsm/report (served by the test signer), the host's certificate table, the
// evidence package SnpGuest builds and its verification, and the errors on a machine without SNP.

import { expect } from 'chai';
import { existsSync, mkdirSync, promises as fs, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CertifierError } from '../../lib/errors/index.ts';
import { generateKeyPair, publicKeyOf, randomBytes, toKeyMessage } from '../../lib/crypto/index.ts';
import { parseTrustRequest, encode, type EvidencePackage } from '../../lib/wire/index.ts';
import { formatCertifierTime, sameKey } from '../../lib/policy/index.ts';
import { outblobError, parseCertTable, parseReport, requestTsmReport, SnpGuest, verifyEvidence } from '../../lib/attest/index.ts';
import { tempDir } from '../support/helpers.ts';
import { serveFakeTsm, type FakeTsm } from './fake-tsm.ts';
import { TestSnpSigner } from './signer.ts';

const MEASUREMENT = randomBytes(48);

/** An evidence package as the server receives it, inside a trust request. */
const asReceived = (support: EvidencePackage) =>
  parseTrustRequest(encode('trust_request_message', { requestingEnclaveTag: 'a', providingEnclaveTag: 'b', submittedEvidenceType: 'vse-attestation-package', purpose: 'authentication', support })).support;

async function thrown(p: Promise<unknown>): Promise<CertifierError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).to.be.instanceOf(CertifierError);
  return e as CertifierError;
}

describe('SEV-SNP guest: configfs-tsm and the evidence package', () => {
  let signer: TestSnpSigner;
  let tmp: ReturnType<typeof tempDir>;
  let tsm: string;
  let fake: FakeTsm | undefined;
  before(() => {
    signer = TestSnpSigner.create();
  });
  beforeEach(() => {
    tmp = tempDir('snp-guest-');
    tsm = join(tmp.dir, 'report');
    mkdirSync(tsm);
  });
  afterEach(() => {
    fake?.stop();
    fake = undefined;
    tmp.cleanup();
  });

  it('reads the host\'s certificate table: VCEK, ASK and ARK by GUID', () => {
    const table = parseCertTable(signer.certTable());
    expect(table.map((c) => c.kind)).to.deep.equal(['vcek', 'ask', 'ark']);
    expect(Buffer.from(table[0]!.der).equals(Buffer.from(signer.vcek))).to.equal(true);
  });

  it('refuses a certificate table without its terminator, or pointing outside itself', () => {
    const t = signer.certTable();
    const unended = new Uint8Array(32).fill(0x11); // one entry (offset 24, length 8) and its 8 bytes, then nothing
    new DataView(unended.buffer).setUint32(16, 24, true);
    new DataView(unended.buffer).setUint32(20, 8, true);
    expect(() => parseCertTable(unended)).to.throw(CertifierError, /terminating/);
    const bad = new Uint8Array(t);
    new DataView(bad.buffer).setUint32(20, 1 << 20, true);
    expect(() => parseCertTable(bad)).to.throw(CertifierError, /outside the table/);
    const empty = new Uint8Array(t);
    new DataView(empty.buffer).setUint32(20, 0, true); // the VCEK's length
    expect(() => parseCertTable(empty)).to.throw(CertifierError, /entry 1 points outside the table/);
    const ended = new Uint8Array(t);
    new DataView(ended.buffer).setUint32(3 * 24 + 16, 96, true); // an offset in the all-zero GUID's entry
    expect(() => parseCertTable(ended)).to.throw(CertifierError, /non-zero terminator/);
  });

  it('refuses a certificate table listing a GUID twice, or with an entry inside its list of entries', () => {
    const t = signer.certTable(); // VCEK, ASK, ARK, terminator: the certificates start at 96
    const twice = new Uint8Array(t);
    twice.copyWithin(24, 0, 16); // the ASK's entry now names the VCEK's GUID
    expect(() => parseCertTable(twice)).to.throw(CertifierError, /GUID 63da758d-e664-4564-adc5-f4b93be8accd twice/);
    const inside = new Uint8Array(t);
    new DataView(inside.buffer).setUint32(24 + 16, 95, true); // the ASK's offset: the terminator's last byte
    expect(() => parseCertTable(inside)).to.throw(CertifierError, /entry 2 points into the list of entries/);
  });

  it('gets a report over the given data through inblob/outblob, with the auxblob, and removes its entry', async () => {
    fake = serveFakeTsm(tsm, signer, { measurement: MEASUREMENT });
    const data = randomBytes(64);
    const got = await requestTsmReport(data, { dir: tsm });
    expect(Buffer.from(parseReport(got.report).reportData).equals(Buffer.from(data))).to.equal(true);
    expect(parseCertTable(got.auxblob!).map((c) => c.kind)).to.include('vcek');
    expect(readdirSync(tsm)).to.deep.equal([]);
  });

  describe('a guest whose kernel runs above VMPL 0 (configfs-tsm privlevel_floor, as under an SVSM)', () => {
    const vmplOf = async (o: Partial<Parameters<typeof serveFakeTsm>[2]>) => {
      fake = serveFakeTsm(tsm, signer, { measurement: MEASUREMENT, ...o });
      return parseReport((await requestTsmReport(randomBytes(64), { dir: tsm })).report).vmpl;
    };

    it('asks at the floor: privlevel 2 written before the report, which says VMPL 2', async () => {
      expect(await vmplOf({ privlevelFloor: 2 })).to.equal(2);
      expect(fake!.privlevels()).to.deep.equal(['2']);
      expect(readdirSync(tsm)).to.deep.equal([]);
    });

    it('leaves privlevel unwritten at a floor of 0, as with no privlevel_floor file: a VMPL 0 report', async () => {
      expect(await vmplOf({ privlevelFloor: 0 })).to.equal(0);
      expect(fake!.privlevels()).to.deep.equal(['']);
      fake!.stop();
      expect(await vmplOf({})).to.equal(0);
      expect(fake!.privlevels()).to.deep.equal(['']);
    });

    it('names the VMPL, and the policy claim a report of it needs, when privlevel cannot be written (FILE_ERROR)', async () => {
      fake = serveFakeTsm(tsm, signer, { measurement: MEASUREMENT, privlevelFloor: 2, refusePrivlevel: true });
      const e = await thrown(requestTsmReport(randomBytes(64), { dir: tsm }));
      expect(e.code).to.equal('FILE_ERROR');
      expect(e.message).to.contain('VMPL 2').and.contain('privlevel_floor').and.contain('/privlevel').and.contain('vmpl = 2').and.contain('--snp-vmpl 2');
      expect(fake.served()).to.equal(0);
      expect(readdirSync(tsm)).to.deep.equal([]);
    });

    it('names the VMPL it asked at when the platform gives no report (a floor the kernel does not show)', async () => {
      fake = serveFakeTsm(tsm, signer, { measurement: MEASUREMENT, privlevelFloor: 2, hideFloor: true });
      const e = await thrown(requestTsmReport(randomBytes(64), { dir: tsm }));
      expect(e.code).to.equal('FILE_ERROR');
      expect(e.message).to.contain('outblob').and.contain('asked for at VMPL 0');
      expect(fake.refused()).to.equal(1);
    });

    it('says why when the kernel refuses the report (EINVAL: a VMPL below its own), and what to do: the VMPL it runs at, and the policy claim', () => {
      const einval = Object.assign(new Error('EINVAL: invalid argument, read'), { code: 'EINVAL' });
      const unsaid = outblobError('/t/e/outblob', einval, 0, undefined);
      expect(unsaid.code).to.equal('FILE_ERROR');
      expect(unsaid.message).to.contain('refused a report at VMPL 0').and.contain('no privlevel_floor').and.contain('--snp-vmpl');
      const said = outblobError('/t/e/outblob', einval, 1, 1);
      expect(said.message).to.contain('refused a report at VMPL 1').and.contain('privlevel_floor says 1');
      const other = outblobError('/t/e/outblob', Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }), 0, 0);
      expect(other.message).to.equal('cannot read /t/e/outblob: EIO: i/o error, read (asked for at VMPL 0)');
    });
  });

  it('says what is missing on a machine without SEV-SNP (no configfs-tsm directory)', async () => {
    const e = await thrown(requestTsmReport(randomBytes(64), { dir: join(tmp.dir, 'nowhere') }));
    expect(e.code).to.equal('UNSUPPORTED');
    expect(e.message).to.contain(`no configfs-tsm report interface at ${join(tmp.dir, 'nowhere')}`).and.contain('/dev/sev-guest');
  });

  it('refuses with FILE_ERROR, naming the file, an entry whose provider cannot be read or whose inblob cannot be written (an error with its code, not a bare system error)', async () => {
    const cases = [[{ unreadableProvider: true }, /^cannot read .*\/provider: /], [{ unwritableInblob: true }, /^cannot write .*\/inblob: /]] as const;
    for (const [broken, said] of cases) {
      fake?.stop();
      fake = serveFakeTsm(tsm, signer, { measurement: MEASUREMENT, ...broken });
      const e = await thrown(requestTsmReport(randomBytes(64), { dir: tsm }));
      expect(e.code).to.equal('FILE_ERROR');
      expect(e.message).to.match(said);
      expect(readdirSync(tsm)).to.deep.equal([]);
    }
  });

  it('refuses another TSM provider (not sev_guest) by name', async () => {
    fake = serveFakeTsm(tsm, signer, { measurement: MEASUREMENT, provider: 'tdx_guest' });
    const e = await thrown(requestTsmReport(randomBytes(64), { dir: tsm }));
    expect(e.code).to.equal('UNSUPPORTED');
    expect(e.message).to.contain('"tdx_guest", not sev_guest');
  });

  it('refuses with the request\'s own error when removing the entry fails too, the removal\'s failure added to it (details.cleanup)', async () => {
    fake = serveFakeTsm(tsm, signer, { measurement: MEASUREMENT, provider: 'tdx_guest' });
    const { rmdir } = fs;
    fs.rmdir = (async () => {
      throw Object.assign(new Error('EBUSY: resource busy or locked'), { code: 'EBUSY' });
    }) as typeof fs.rmdir;
    let e: CertifierError;
    try {
      e = await thrown(requestTsmReport(randomBytes(64), { dir: tsm }));
    } finally {
      fs.rmdir = rmdir;
    }
    expect(e.code).to.equal('UNSUPPORTED');
    expect(e.message).to.contain('"tdx_guest", not sev_guest').and.contain('EBUSY');
    expect(e.details?.cleanup).to.match(/^cannot remove .*certifier-\d+-[0-9a-f]+: EBUSY/);
    // A request that went well and an entry that cannot be removed: that failure is the error.
    fake.stop();
    fake = serveFakeTsm(tsm, signer, { measurement: MEASUREMENT });
    fs.rmdir = (async () => {
      throw Object.assign(new Error('EBUSY: resource busy or locked'), { code: 'EBUSY' });
    }) as typeof fs.rmdir;
    try {
      e = await thrown(requestTsmReport(randomBytes(64), { dir: tsm }));
    } finally {
      fs.rmdir = rmdir;
    }
    expect(e.code).to.equal('FILE_ERROR');
    expect(e.message).to.match(/^cannot remove /);
  });

  it('gives up on a directory that never answers, naming the outblob', async () => {
    const e = await thrown(requestTsmReport(randomBytes(64), { dir: tsm, waitMs: 50 }));
    expect(e.code).to.equal('UNSUPPORTED');
    expect(e.message).to.contain('outblob');
    expect(readdirSync(tsm)).to.deep.equal([]);
  });

  it('makes evidence that verifies: SHA-384 of the user data in REPORT_DATA (then zeros, as the Certifier Framework does), the VCEK and ASK from the auxblob', async () => {
    fake = serveFakeTsm(tsm, signer, { measurement: MEASUREMENT });
    const guest = await SnpGuest.open({ tsm: { dir: tsm } });
    expect(Buffer.from(guest.measurement).equals(Buffer.from(MEASUREMENT))).to.equal(true);
    const machine = await generateKeyPair('p256');
    const binding = randomBytes(32);
    const pkg = await guest.attest({ enclaveType: guest.type, time: formatCertifierTime(new Date()), enclaveKey: toKeyMessage(publicKeyOf(machine.privateKey)), sessionBinding: binding });
    expect(pkg.factAssertion!.map((f) => f.evidenceType)).to.deep.equal(['sev-attestation', 'cert', 'cert']);
    const facts = verifyEvidence(asReceived(pkg), { snpRoots: [signer.ark] });
    expect(facts.platform).to.equal('amd-sev-snp');
    expect(sameKey(facts.enclaveKey, machine.publicKey)).to.equal(true);
    expect(Buffer.from(facts.sessionBinding!).equals(Buffer.from(binding))).to.equal(true);
    expect(fake.served()).to.equal(2); // the probe for the measurement, and the evidence
  });

  it('uses the --vcek certificates when the host attaches none, and says so when there are neither', async () => {
    fake = serveFakeTsm(tsm, signer, { measurement: MEASUREMENT, auxblob: false });
    const userData = { enclaveType: 'sev-enclave', time: formatCertifierTime(new Date()), enclaveKey: toKeyMessage(publicKeyOf((await generateKeyPair('p256')).privateKey)) };
    const bare = await SnpGuest.open({ tsm: { dir: tsm } });
    const e = await thrown(bare.attest(userData));
    expect(e.code).to.equal('NOT_FOUND');
    expect(e.message).to.contain('--vcek').and.contain(`path /vcek/v1/Milan/${Buffer.from(signer.chipId).toString('hex')}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`);
    const withFile = await SnpGuest.open({ tsm: { dir: tsm }, certs: [signer.vcek, signer.ask] });
    expect((await withFile.attest(userData)).factAssertion).to.have.length(3);
  });

  it('refuses more --vcek certificates than a verifier takes (INVALID_INPUT), before asking for a report', async () => {
    fake = serveFakeTsm(tsm, signer, { measurement: MEASUREMENT, auxblob: false });
    const e = await thrown(SnpGuest.open({ tsm: { dir: tsm }, certs: [signer.vcek, signer.ask, signer.asvk, signer.ark, signer.ask] }));
    expect(e.code).to.equal('INVALID_INPUT');
    expect(e.message).to.contain('5 certificates').and.contain('at most 4');
    expect(fake.served()).to.equal(0);
  });

  it('says a masked chip id is masked, rather than naming a KDS path for chip 0000…, when the host attaches no VCEK', async () => {
    fake = serveFakeTsm(tsm, signer, { measurement: MEASUREMENT, auxblob: false, fields: { chipId: new Uint8Array(64) } });
    const userData = { enclaveType: 'sev-enclave', time: formatCertifierTime(new Date()), enclaveKey: toKeyMessage(publicKeyOf((await generateKeyPair('p256')).privateKey)) };
    const e = await thrown((await SnpGuest.open({ tsm: { dir: tsm } })).attest(userData));
    expect(e.code).to.equal('NOT_FOUND');
    expect(e.message).to.contain('CHIP_ID is masked').and.contain('--vcek').and.not.contain('0000000000000000');
  });

  it('sends a report with a masked chip id with the VCEK the host attaches, and that evidence verifies', async () => {
    fake = serveFakeTsm(tsm, signer, { measurement: MEASUREMENT, fields: { chipId: new Uint8Array(64) } });
    const userData = { enclaveType: 'sev-enclave', time: formatCertifierTime(new Date()), enclaveKey: toKeyMessage(publicKeyOf((await generateKeyPair('p256')).privateKey)) };
    const evidence = await (await SnpGuest.open({ tsm: { dir: tsm } })).attest(userData);
    expect(verifyEvidence(asReceived(evidence), { snpRoots: [signer.ark] }).steps.join('\n')).to.contain('CHIP_ID is masked');
  });

  it('cannot seal a cryptstore yet, and says what to use instead', async () => {
    fake = serveFakeTsm(tsm, signer, { measurement: MEASUREMENT });
    const guest = await SnpGuest.open({ tsm: { dir: tsm } });
    expect(() => guest.sealingProtector()).to.throw(CertifierError, /--key-file/).with.property('code', 'UNSUPPORTED');
    expect(existsSync(tsm)).to.equal(true);
  });
});
