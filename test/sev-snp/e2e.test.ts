// A machine certified end to end with --platform sev-snp, on loopback, with the real programs:
// make-policy trusts the test signer's ARK explicitly (--trust-amd-root-cert), simpleserver runs
// as its own process, and init-trust gets its report from a temporary directory laid out as
// configfs-tsm and served by the test signer. The same saved evidence is then refused under a
// policy that trusts only AMD's pinned roots, by `simpleserver explain` and by a running server.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bytesEqual, generateKeyPair, importPrivateKey, randomBytes, toHex } from '../../lib/crypto/index.ts';
import { decode, encode, type TrustRequestMessage } from '../../lib/wire/index.ts';
import { AMD_EXT } from '../../lib/attest/index.ts';
import { identityItems } from '../bench/domain.ts';
import { issueAdmissionCert, readCertificate, toPem } from '../../lib/pki/index.ts';
import { loadIdentity } from '../../lib/certifier/index.ts';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { ROOT, run, runScript, tempDir, type RunResult } from '../support/helpers.ts';
import { serveFakeTsm, type FakeTsm } from './fake-tsm.ts';
import { TestSnpSigner } from './signer.ts';

interface Server { port: number; stop(): Promise<void>; log(): string; hup(): void }

/** simpleserver serve on port 0; resolves once it prints "listening HOST:PORT". */
function startServer(cwd: string, policy: string, more: string[] = []): Promise<Server> {
  return startProgram(cwd, 'simpleserver', ['serve', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--policy', policy, '--listen', '127.0.0.1:0', ...more]);
}

/** A server program listening on a port of its choosing; resolves once it prints "listening HOST:PORT". */
function startProgram(cwd: string, program: 'simpleserver' | 'key-server', args: string[]): Promise<Server> {
  const env = { ...process.env };
  delete env.CERTIFIER_DEBUG;
  const child = spawn(process.execPath, [join(ROOT, 'cmd', 'bin', `${program}.js`), ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${program} did not start:\n${err}`));
    }, 20_000);
    void exited.then(() => reject(new Error(`${program} exited:\n${err}`)));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      const m = /^listening \S+:(\d+)$/m.exec(out);
      if (!m) return;
      clearTimeout(timer);
      resolve({ port: Number(m[1]), log: () => err, hup: () => process.kill(child.pid!, 'SIGHUP'), stop: async () => {
        process.kill(child.pid!, 'SIGTERM');
        await exited;
      } });
    });
  });
}

function ok(r: RunResult): RunResult {
  expect(r.status, `stderr:\n${r.stderr}`).to.equal(0);
  return r;
}

describe('SEV-SNP end to end: simpleserver + init-trust --platform sev-snp (test signer, temporary configfs-tsm)', () => {
  let tmp: ReturnType<typeof tempDir>;
  let signer: TestSnpSigner;
  let fake: FakeTsm;
  const servers: Server[] = [];
  const measurement = randomBytes(48);
  const cu = (args: string[]) => run('cert-utility', args, { cwd: tmp.dir });
  const initTrust = (port: number, more: string[] = []) => cu([
    'init-trust', '--domain', 'snp-test', '--policy-cert', 'policy-cert.pem', '--server', `127.0.0.1:${port}`,
    '--store', 'store', '--key-file', 'store.key', '--platform', 'sev-snp', '--tsm-dir', 'tsm', ...more,
  ]);
  /** A policy trusting the test signer's ARK (named explicitly) and the machine's measurement. */
  const testRootPolicy = (out: string) => cu(['make-policy', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--out', out,
    '--trust-amd-root-cert', 'test-ark.pem', '--snp-min-tcb', '3:0:8:115', '--trust-measurement', toHex(measurement)]);

  before(async () => {
    tmp = tempDir('snp-e2e-');
    signer = TestSnpSigner.create();
    mkdirSync(join(tmp.dir, 'tsm'));
    writeFileSync(join(tmp.dir, 'test-ark.pem'), toPem(signer.ark));
    fake = serveFakeTsm(join(tmp.dir, 'tsm'), signer, { measurement });
    ok(await cu(['generate-policy-key', '--domain', 'snp-test', '--key-out', 'policy-key.pem', '--cert-out', 'policy-cert.pem']));
    ok(await cu(['new-key-file', '--out', 'store.key']));
  });
  after(async () => {
    fake.stop();
    for (const s of servers) await s.stop();
    tmp.cleanup();
  });

  it('writes a policy trusting the test root only when its ARK file is named, with a warning', async () => {
    const r = ok(await testRootPolicy('policy.bin'));
    expect(r.stderr).to.contain('is not one of AMD\'s pinned roots');
    expect(r.out).to.contain('platform[amd-sev-snp, ARK-TEST cert:').and.contain('debug <= 0').and.contain('tcb-microcode >= 115');
    ok(await cu(['make-policy', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--out', 'policy-amd.bin',
      '--trust-amd-root', 'milan', '--trust-amd-root', 'genoa', '--snp-min-tcb', '3:0:8:115', '--trust-measurement', toHex(measurement)]));
  });

  it('refuses an AMD root without a minimum TCB (no safe default), as a usage error', async () => {
    const r = await cu(['make-policy', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--out', 'x.bin', '--trust-amd-root', 'milan', '--trust-measurement', toHex(measurement)]);
    expect(r.status).to.equal(2);
    expect(r.stderr).to.contain('--snp-min-tcb');
  });

  it('refuses a misspelt --snp-property, or a number compared with a text property, as a usage error; takes good ones', async () => {
    const policy = (prop: string) => cu(['make-policy', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--out', `prop-${prop.replace(/\W/g, '_')}.bin`,
      '--trust-amd-root', 'milan', '--snp-min-tcb', '3:0:8:115', '--snp-property', prop, '--trust-measurement', toHex(measurement)]);
    for (const [prop, why] of [
      ['gust-svn>=0', 'no SEV-SNP property is named "gust-svn"'], ['host-data>=5', 'host-data is text'], ['guest-svn=abc', 'guest-svn is a number'],
      ['smt-allowed=2', 'smt-allowed is reported as a number from 0 to 1'], ['report-version=9', 'report-version is reported as a number from 2 to 5'],
      ['signing-key=vcke', 'signing-key is vcek or vlek'], ['image-id=zz', 'image-id is 32 hex digits'], ['family-id=01', 'family-id is 32 hex digits'], [`host-data=${'ab'.repeat(31)}`, 'host-data is 64 hex digits'],
      ['abi-version>=307', 'abi-version is MAJOR.MINOR'], ['abi-version>=1.256', 'abi-version is MAJOR.MINOR, each from 0 to 255'],
      ['firmware-version>=311', 'firmware-version is MAJOR.MINOR'], ['committed-firmware-version>=256.0', 'committed-firmware-version is MAJOR.MINOR, each from 0 to 255'],
    ]) {
      const r = await policy(prop!);
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stderr).to.contain(why);
    }
    for (const prop of ['guest-svn>=2', 'signing-key=VCEK', `host-data=${'ab'.repeat(32)}`]) ok(await policy(prop));
    expect(ok(await policy('abi-version>=1.51')).out, 'written as one number, shown as MAJOR.MINOR').to.contain('abi-version >= 1.51');
    expect(ok(await policy('firmware-version>=1.55')).out, 'the running firmware, likewise').to.contain('firmware-version >= 1.55');
    expect(ok(await policy('committed-firmware-version>=1.52')).out, 'the committed firmware, likewise').to.contain('committed-firmware-version >= 1.52');
  });

  it('certifies the machine: evidence from the temporary configfs-tsm, verified to the test root, admission certificate stored', async () => {
    const server = await startServer(tmp.dir, 'policy.bin');
    servers.push(server);
    expect(server.log(), 'nothing to say of a policy that admits its platform').not.to.contain('warning: in the policy');
    const r = ok(await initTrust(server.port, ['--save-evidence', 'evidence.bin']));
    expect(r.out).to.match(new RegExp(`^certified: serial \\w+, measurement ${toHex(measurement)}, valid until `));
    const store = await Cryptstore.open(join(tmp.dir, 'store'), new KeyFileProtector(readFileSync(join(tmp.dir, 'store.key')), 'store.key'));
    try {
      const id = await loadIdentity(store, 'snp-test', readCertificate(readFileSync(join(tmp.dir, 'policy-cert.pem'))));
      expect(id.peer.platform).to.equal('amd-sev-snp');
      expect(id.peer.measurementHex).to.equal(toHex(measurement));
    } finally {
      await store.close();
    }
    expect(server.log()).to.match(/certification .*decision=allow .*platform=amd-sev-snp/);
  });

  it('certifies with --vcek (VCEK and ASK fetched ahead of time) when the host attaches no certificates', async () => {
    mkdirSync(join(tmp.dir, 'tsm-bare'));
    const bare = serveFakeTsm(join(tmp.dir, 'tsm-bare'), signer, { measurement, auxblob: false });
    try {
      writeFileSync(join(tmp.dir, 'vcek.pem'), toPem(signer.vcek) + toPem(signer.ask));
      const args = ['init-trust', '--domain', 'snp-test', '--policy-cert', 'policy-cert.pem', '--server', `127.0.0.1:${servers[0]!.port}`, '--store', 'store-vcek', '--key-file', 'store.key', '--platform', 'sev-snp', '--tsm-dir', 'tsm-bare'];
      const without = await cu(args);
      expect(without.status).to.equal(1);
      expect(without.stderr).to.contain('/vcek/v1/Milan/').and.match(/\[NOT_FOUND\]$/m);
      expect(ok(await cu([...args, '--vcek', 'vcek.pem'])).out).to.match(/^certified: /);
    } finally {
      bare.stop();
    }
  });

  describe('first boot', () => {
    // Its own policy, so that it runs alone too (mocha -g), not on the one an earlier test makes.
    before(async () => void ok(await testRootPolicy('first-boot-policy.bin')));

    it('runs a SEV-SNP VM\'s first boot: first-boot.sh --platform sev-snp certifies it and fetches its key from key-server', async () => {
      // key-server and the operator's key-client get their certificates offline, as Scenario 2's
      // issue-cert makes them (made here in-process: these two are not what this test is about).
      const machineMeasurement = randomBytes(32);
      const policyKey = importPrivateKey(readFileSync(join(tmp.dir, 'policy-key.pem')));
      const policyCert = readCertificate(readFileSync(join(tmp.dir, 'policy-cert.pem')));
      const offline = async (name: string) => {
        const { privateKey, publicKey } = await generateKeyPair('p256');
        const cert = await issueAdmissionCert({ policyKey, policyCert, subjectPublicKey: publicKey, measurement: machineMeasurement, platform: 'issued-offline', domain: 'snp-test', validitySeconds: 86_400 });
        const store = await Cryptstore.create(join(tmp.dir, `${name}-store`), new KeyFileProtector(readFileSync(join(tmp.dir, 'store.key')), 'store.key'));
        try {
          await store.putAll(identityItems('snp-test', privateKey, cert));
        } finally {
          await store.close();
        }
        return ['--store', `${name}-store`, '--key-file', 'store.key'];
      };
      const [ksStore, opStore] = await Promise.all([offline('ks'), offline('op')]);
      const certifier = await startServer(tmp.dir, 'first-boot-policy.bin');
      servers.push(certifier);
      const keyServer = await startProgram(tmp.dir, 'key-server', ['serve', '--domain', 'snp-test', '--policy-cert', 'policy-cert.pem', '--data', 'ks-data', '--listen', '127.0.0.1:0', ...ksStore]);
      servers.push(keyServer);
      const key = randomBytes(32);
      const pin = ['--server-measurement', toHex(machineMeasurement)];
      ok(await run('key-client', ['store', 'vm/disk-key', '--in', '-', '--server', `127.0.0.1:${keyServer.port}`, '--domain', 'snp-test', '--policy-cert', 'policy-cert.pem', ...pin, ...opStore], { cwd: tmp.dir, input: key }));

      const firstBoot = (more: string[]) => runScript('first-boot.sh', [
        '--host', '127.0.0.1', '--certifier-port', String(certifier.port), '--keyserver-port', String(keyServer.port), '--keys', 'vm/disk-key',
        '--domain', 'snp-test', '--policy-cert', 'policy-cert.pem', '--store', 'vm-store', '--platform', 'sev-snp', '--tsm-dir', 'tsm', ...pin, ...more,
      ], { cwd: tmp.dir });
      // Sealing is not available on SEV-SNP: the script says so instead of failing later.
      const sealed = await firstBoot([]);
      expect(sealed.status).to.equal(2);
      expect(sealed.stderr).to.contain('--platform sev-snp cannot seal the store yet');

      const boot = ok(await firstBoot(['--key-file', 'store.key']));
      expect(boot.stderr).to.contain('done: vm/disk-key kept in vm-store');
      const got = ok(await cu(['get-item', '--tag', 'vm/disk-key', '--out', '-', '--store', 'vm-store', '--key-file', 'store.key']));
      expect(got.stdout.equals(key)).to.equal(true);
      const store = await Cryptstore.open(join(tmp.dir, 'vm-store'), new KeyFileProtector(readFileSync(join(tmp.dir, 'store.key')), 'store.key'));
      try {
        const id = await loadIdentity(store, 'snp-test', readCertificate(readFileSync(join(tmp.dir, 'policy-cert.pem'))));
        expect(id.peer).to.include({ platform: 'amd-sev-snp', measurementHex: toHex(measurement) });
      } finally {
        await store.close();
      }
      // The next boot needs nobody.
      const again = ok(await firstBoot(['--key-file', 'store.key']));
      expect(again.stderr).to.contain('every key is already in the cryptstore');
    });
  });

  it('explains the saved evidence: every report field, and the rules that allowed it', async () => {
    const r = ok(await run('simpleserver', ['explain', '--policy', 'policy.bin', '--policy-cert', 'policy-cert.pem', '--evidence', 'evidence.bin'], { cwd: tmp.dir }));
    for (const field of ['version', 'policy', 'vmpl', 'current_tcb', 'reported_tcb', 'committed_tcb', 'launch_tcb', 'platform_info', 'flags', 'report_data', 'host_data', 'id_key_digest', 'author_key_digest', 'report_id', 'chip_id', 'signature r']) {
      expect(r.out).to.match(new RegExp(`^  ${field} +\\S`, 'm'));
    }
    expect(r.out).to.contain(`measurement            ${toHex(measurement)}`);
    expect(r.out).to.contain('REPORT_DATA is the SHA-384 of the user data sent with it (and 16 zero bytes)');
    expect(r.out).to.contain('REPORT_DATA is the SHA-384 of the user data, which names');
    expect(r.out).to.contain('decision: allow').and.contain('has-trusted-platform-property: debug <= 0 (is 0)');
  });

  it('explain says, as serve does at start, that revocation is not checked for an AMD root without --amd-crl: on stderr, and under --json in the result or the refusal', async () => {
    const explain = (policy: string, more: string[] = []) => run('simpleserver', ['explain', '--policy', policy, '--policy-cert', 'policy-cert.pem', '--evidence', 'evidence.bin', ...more], { cwd: tmp.dir });
    const line = /^no AMD revocation list \(--amd-crl\) for ARK-TEST cert:[0-9a-f]{16}, which the policy trusts: an ASK or ASVK AMD has revoked under it is not refused$/;
    const text = ok(await explain('policy.bin'));
    expect(text.stderr.split('\n').filter((l) => l.startsWith('simpleserver: warning: ')).map((l) => l.slice('simpleserver: warning: '.length))).to.satisfy((ls: string[]) => ls.length === 1 && line.test(ls[0]!));
    expect(text.out).to.contain('decision: allow');
    const json = ok(await explain('policy.bin', ['--json']));
    expect(json.json().warnings).to.have.length(1);
    expect(json.json().warnings[0]).to.match(line);
    // A refusal under --json carries them beside its proof; AMD's pinned roots are named as serve names them.
    const refused = await explain('policy-amd.bin', ['--json']);
    expect(refused.status).to.equal(4);
    expect(refused.json().error.warnings).to.deep.equal([refused.stderr.match(/^simpleserver: warning: (no AMD revocation list .*)$/m)![1]]);
    expect(refused.json().error.warnings[0]).to.match(/^no AMD revocation list \(--amd-crl\) for ARK-Milan cert:[0-9a-f]{16}, ARK-Genoa cert:[0-9a-f]{16}, which the policy trusts/);
    // With a list for the root: nothing to say.
    writeFileSync(join(tmp.dir, 'crl-explain.crl'), signer.crl({ revoked: [9] }));
    const listed = ok(await explain('policy.bin', ['--json', '--amd-crl', 'crl-explain.crl']));
    expect(listed.stderr).not.to.contain('no AMD revocation list');
    expect(listed.json()).not.to.have.property('warnings');
  });

  it('refuses the same evidence under a policy that does not trust the test root (explain: SNP_CHAIN_UNTRUSTED, exit 4)', async () => {
    const r = await run('simpleserver', ['explain', '--policy', 'policy-amd.bin', '--policy-cert', 'policy-cert.pem', '--evidence', 'evidence.bin'], { cwd: tmp.dir });
    expect(r.status).to.equal(4);
    expect(r.out).to.contain('decision: deny (SNP_CHAIN_UNTRUSTED)').and.contain('measurement ');
    expect(r.stderr).to.match(/\[SNP_CHAIN_UNTRUSTED\]$/m);
    // Under --json the refusal carries its proof as the text does; --at wants an offset.
    const j = await run('simpleserver', ['explain', '--json', '--policy', 'policy-amd.bin', '--policy-cert', 'policy-cert.pem', '--evidence', 'evidence.bin'], { cwd: tmp.dir });
    expect(j.status).to.equal(4);
    expect(j.json().error).to.include({ code: 'SNP_CHAIN_UNTRUSTED' }).and.to.have.property('proof');
    const at = await run('simpleserver', ['explain', '--policy', 'policy.bin', '--policy-cert', 'policy-cert.pem', '--evidence', 'evidence.bin', '--at', '2026-12-05T15:30'], { cwd: tmp.dir });
    expect(at.status).to.equal(2);
    expect(at.stderr).to.contain('--at takes an ISO 8601 time with its offset');
    // A field out of its range is refused, not carried over (February 30th is not March 2nd).
    for (const bad of ['2026-02-30T00:00:00Z', '2026-12-05T24:00:00Z', '2026-13-01T00:00Z', '2026-12-05T12:00:60Z', '2026-12-05T12:00+24:00']) {
      const r = await run('simpleserver', ['explain', '--policy', 'policy.bin', '--policy-cert', 'policy-cert.pem', '--evidence', 'evidence.bin', '--at', bad], { cwd: tmp.dir });
      expect(r.status, bad).to.equal(2);
      expect(r.stderr).to.contain(`--at "${bad}" is not a time`);
    }
  });

  it('warns at start, and on a reload, of a policy trusting an AMD root but no 48-byte measurement: every SEV-SNP machine would be refused', async () => {
    // A SHA-256 (what `cert-utility measure` gives for a program) where the VM's launch digest belongs.
    ok(await cu(['make-policy', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--out', 'policy-sha256.bin',
      '--trust-amd-root-cert', 'test-ark.pem', '--snp-min-tcb', '3:0:8:115', '--trust-measurement', toHex(randomBytes(32))]));
    const server = await startServer(tmp.dir, 'policy-sha256.bin');
    servers.push(server);
    expect(server.log()).to.match(/^simpleserver: warning: in the policy, platform amd-sev-snp: the policy trusts no 48-byte measurement, the size of its machines': every machine of it will be refused \(MEASUREMENT_NOT_TRUSTED\)$/m);
    server.hup();
    for (let i = 0; i < 400 && !/ reloaded /.test(server.log()); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.log()).to.match(/ reloaded .*warnings=\["platform amd-sev-snp: the policy trusts no 48-byte measurement/);
  });

  it('refuses the machine at a server whose policy trusts only AMD\'s pinned roots', async () => {
    const server = await startServer(tmp.dir, 'policy-amd.bin');
    servers.push(server);
    const r = await initTrust(server.port, ['--force']);
    expect(r.status, r.stderr).to.equal(4);
    expect(r.stderr).to.match(/\[SNP_CHAIN_UNTRUSTED\]$/m);
  });

  it('consults AMD revocation lists (--amd-crl): a revoked ASK is refused by explain and by a running server until a list without it is loaded (SIGHUP)', async () => {
    writeFileSync(join(tmp.dir, 'crl-ok.crl'), signer.crl({ revoked: [9] }));
    writeFileSync(join(tmp.dir, 'crl-revoked.crl'), signer.crl({ revoked: [2] }));
    const explain = (crl: string) => run('simpleserver', ['explain', '--policy', 'policy.bin', '--policy-cert', 'policy-cert.pem', '--evidence', 'evidence.bin', '--amd-crl', crl], { cwd: tmp.dir });
    expect(ok(await explain('crl-ok.crl')).out).to.contain('SEV-TEST is not on ARK-TEST\'s CRL of ');
    const refused = await explain('crl-revoked.crl');
    expect(refused.status).to.equal(4);
    expect(refused.out).to.contain('is revoked by AMD\'s CRL');
    expect(refused.stderr).to.match(/\[SNP_CHAIN_UNTRUSTED\]$/m);
    // Revoked whatever else is wrong: a VCEK under that ASK without its blSPL extension, the path named as the proof.
    const request = decode<TrustRequestMessage>('trust_request_message', readFileSync(join(tmp.dir, 'evidence.bin')));
    for (const f of request.support!.factAssertion!) if (f.evidenceType === 'cert' && bytesEqual(f.serializedEvidence!, signer.vcek)) f.serializedEvidence = signer.vcekLacking([AMD_EXT.blSpl]);
    writeFileSync(join(tmp.dir, 'evidence-no-tcb.bin'), encode('trust_request_message', request));
    const lacking = await run('simpleserver', ['explain', '--policy', 'policy.bin', '--policy-cert', 'policy-cert.pem', '--evidence', 'evidence-no-tcb.bin', '--amd-crl', 'crl-revoked.crl'], { cwd: tmp.dir });
    expect(lacking.status, lacking.stderr).to.equal(4);
    expect(lacking.out).to.contain('decision: deny (SNP_CHAIN_UNTRUSTED)').and.contain('is revoked by AMD\'s CRL');
    expect(lacking.out).to.match(/^ {2}ARK-TEST key:\w+ signed SEV-TEST, which signed the VCEK for Milan-TEST \(RSA-PSS SHA-384 signatures verified\)$/m);

    writeFileSync(join(tmp.dir, 'crl.crl'), signer.crl({ revoked: [2] }));
    const server = await startServer(tmp.dir, 'policy.bin', ['--amd-crl', 'crl.crl']);
    servers.push(server);
    const r = await initTrust(server.port, ['--force']);
    expect(r.status, r.stderr).to.equal(4);
    expect(r.stderr).to.match(/\[SNP_CHAIN_UNTRUSTED\]$/m);
    expect(server.log()).to.contain('AMD CRL of ARK-TEST').and.match(/decision=deny .*is revoked by AMD's CRL/);
    // An older list would lift the revocation: the reload is refused and the list in force stays.
    writeFileSync(join(tmp.dir, 'crl.crl'), signer.crl({ thisUpdate: new Date(Date.now() - 3 * 86_400_000) }));
    server.hup();
    for (let i = 0; i < 400 && !/reload-failed/.test(server.log()); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.log()).to.match(/reload-failed code=INVALID_INPUT .*older than the one in force/);
    expect((await initTrust(server.port, ['--force'])).status).to.equal(4);
    writeFileSync(join(tmp.dir, 'crl.crl'), signer.crl({ revoked: [9] }));
    server.hup();
    for (let i = 0; i < 400 && !/ reloaded /.test(server.log()); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    ok(await initTrust(server.port, ['--force']));
  });

  it('warns once at start that revocation is not checked for an AMD root the policy trusts without --amd-crl for it, and on a reload only while that is still so', async () => {
    const unchecked = /^simpleserver: warning: no AMD revocation list \(--amd-crl\) for ARK-TEST cert:[0-9a-f]{16}, which the policy trusts: an ASK or ASVK AMD has revoked under it is not refused$/gm;
    const bare = await startServer(tmp.dir, 'policy.bin');
    servers.push(bare);
    expect(bare.log().match(unchecked)).to.have.length(1);
    const reloaded = async (server: Server, times: number) => {
      server.hup();
      for (let i = 0; i < 400 && (server.log().match(/ reloaded /g) ?? []).length < times; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      return server.log().split('\n').filter((l) => / reloaded /.test(l)).at(-1)!;
    };
    expect(await reloaded(bare, 1)).to.contain('warnings=["no AMD revocation list (--amd-crl) for ARK-TEST');
    expect(bare.log().match(unchecked), 'said once as a start warning; the reload line carries it').to.have.length(1);
    // With a list for the root: nothing to say, at start or on a reload.
    writeFileSync(join(tmp.dir, 'crl-listed.crl'), signer.crl({ revoked: [9] }));
    const listed = await startServer(tmp.dir, 'policy.bin', ['--amd-crl', 'crl-listed.crl']);
    servers.push(listed);
    expect(listed.log()).not.to.contain('no AMD revocation list');
    expect(await reloaded(listed, 1)).not.to.contain('no AMD revocation list');
    // AMD's pinned roots, neither with a list: both named, in one line.
    const pinned = await startServer(tmp.dir, 'policy-amd.bin');
    servers.push(pinned);
    expect(pinned.log()).to.match(/^simpleserver: warning: no AMD revocation list \(--amd-crl\) for ARK-Milan cert:[0-9a-f]{16}, ARK-Genoa cert:[0-9a-f]{16}, which the policy trusts: an ASK or ASVK AMD has revoked under them is not refused$/m);
  });

  it('will not start, or explain, with a revocation list past its next update (SNP_CRL_STALE, exit 4), or one no trusted root signed (exit 1)', async () => {
    writeFileSync(join(tmp.dir, 'crl-stale.crl'), signer.crl({ nextUpdate: new Date(Date.now() - 60_000) }));
    const serve = (crl: string) => run('simpleserver', ['serve', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--policy', 'policy.bin', '--listen', '127.0.0.1:0', '--amd-crl', crl], { cwd: tmp.dir });
    const stale = await serve('crl-stale.crl');
    expect(stale.status).to.equal(4);
    expect(stale.stderr).to.contain('fetch a fresh one').and.match(/\[SNP_CRL_STALE\]$/m);
    // The test root's list is no use under a policy that trusts only AMD's roots.
    const r = await run('simpleserver', ['explain', '--policy', 'policy-amd.bin', '--policy-cert', 'policy-cert.pem', '--evidence', 'evidence.bin', '--amd-crl', 'crl-ok.crl'], { cwd: tmp.dir });
    expect(r.status).to.equal(1);
    expect(r.stderr).to.contain('not signed by an AMD root the policy trusts').and.match(/\[INVALID_INPUT\]$/m);
  });

  it('says what is missing on a machine without SEV-SNP', async () => {
    const r = await cu(['init-trust', '--domain', 'snp-test', '--policy-cert', 'policy-cert.pem', '--server', '127.0.0.1:1', '--store', 'store2', '--key-file', 'store.key', '--platform', 'sev-snp', '--tsm-dir', 'no-such-dir']);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.contain('no configfs-tsm report interface at no-such-dir').and.match(/\[UNSUPPORTED\]$/m);
  });
});
