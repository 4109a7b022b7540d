// A Turin machine certified end to end with the real programs, as e2e.test.ts does a Milan-shaped
// one: the test signer in Turin mode (its ARK named ARK-Turin, a VCEK with fmcSPL and an 8-byte
// hwID, family 1Ah reports) serves a temporary configfs-tsm; make-policy trusts its ARK by file
// with Turin's own minimum (--snp-min-tcb turin=...); one simpleserver certifies the machine,
// explain shows the FMC level and the Turin claim's proof, and the same machine is refused once
// the policy's Turin minimum is above its level (PLATFORM_PROPERTY_DENIED, exit 1).

import { expect } from 'chai';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, toHex } from '../../lib/crypto/index.ts';
import { readCertificate, toPem } from '../../lib/pki/index.ts';
import { loadIdentity } from '../../lib/certifier/index.ts';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { run, tempDir } from '../support/helpers.ts';
import { expectFailure, expectSuccess, startServer, type Child } from '../e2e/domain.ts';
import { serveFakeTsm, type FakeTsm } from './fake-tsm.ts';
import { TestSnpSigner } from './signer.ts';

describe('SEV-SNP end to end on a Turin machine: make-policy turin=, simpleserver, init-trust --platform sev-snp (test signer in Turin mode)', () => {
  let tmp: ReturnType<typeof tempDir>;
  let fake: FakeTsm;
  let server: { child: Child; port: number } | undefined;
  // As the real Turin vector: FMC 0, bootloader 1, TEE 0, SNP 2, microcode 71.
  const signer = TestSnpSigner.create({ product: 'turin', tcb: { bootloader: 1, tee: 0, snp: 2, microcode: 71 }, fmc: 0 });
  const measurement = randomBytes(48);
  const at = (f: string) => join(tmp.dir, f);
  const cu = (args: string[]) => run('cert-utility', args, { cwd: tmp.dir });
  const makePolicy = (out: string, turinMin: string) => cu(['make-policy', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--out', out,
    '--trust-amd-root-cert', 'ark-turin.pem', '--snp-min-tcb', `turin=${turinMin}`, '--trust-measurement', toHex(measurement)]);
  const initTrust = (more: string[] = []) => cu(['init-trust', '--domain', 'turin-test', '--policy-cert', 'policy-cert.pem', '--server', `127.0.0.1:${server!.port}`,
    '--store', 'store', '--key-file', 'store.key', '--platform', 'sev-snp', '--tsm-dir', 'tsm', ...more]);
  const explain = (policy: string) => run('simpleserver', ['explain', '--policy', policy, '--policy-cert', 'policy-cert.pem', '--evidence', 'evidence.bin'], { cwd: tmp.dir });

  before(async () => {
    tmp = tempDir('snp-turin-e2e-');
    mkdirSync(at('tsm'));
    writeFileSync(at('ark-turin.pem'), toPem(signer.ark));
    fake = serveFakeTsm(at('tsm'), signer, { measurement });
    expectSuccess(await cu(['generate-policy-key', '--domain', 'turin-test', '--key-out', 'policy-key.pem', '--cert-out', 'policy-cert.pem']));
    expectSuccess(await cu(['new-key-file', '--out', 'store.key']));
  });
  after(async () => {
    fake.stop();
    await server?.child.stop();
    tmp.cleanup();
  });

  it('writes the Turin claim for the test root named ARK-Turin, given by file, with turin= as its minimum', async () => {
    const r = expectSuccess(await makePolicy('policy.bin', '0:1:0:2:71'));
    expect(r.stderr).to.contain('("ARK-Turin") is not one of AMD\'s pinned roots').and.contain('its machines are taken to report Turin\'s TCB');
    expect(r.out).to.contain('platform[amd-sev-snp, ARK-Turin cert:').and.contain('tcb-fmc >= 0').and.contain('tcb-microcode >= 71');
    expectSuccess(await makePolicy('policy-above.bin', '1:1:0:2:71'));
  });

  it('certifies the Turin machine (evidence from the temporary configfs-tsm, verified to the test ARK-Turin) and stores its admission certificate', async () => {
    copyFileSync(at('policy.bin'), at('serving.bin'));
    server = await startServer('simpleserver', ['serve', '--policy-key', at('policy-key.pem'), '--policy-cert', at('policy-cert.pem'), '--policy', at('serving.bin'), '--listen', '127.0.0.1:0']);
    expect(server.child.stderr, 'nothing to say of a policy that admits its machines').not.to.contain('warning: in the policy');
    const r = expectSuccess(await initTrust(['--save-evidence', 'evidence.bin']));
    expect(r.out).to.match(new RegExp(`^certified: serial \\w+, measurement ${toHex(measurement)}, valid until `));
    const store = await Cryptstore.open(at('store'), new KeyFileProtector(readFileSync(at('store.key')), 'store.key'));
    try {
      const id = await loadIdentity(store, 'turin-test', readCertificate(readFileSync(at('policy-cert.pem'))));
      expect(id.peer).to.include({ platform: 'amd-sev-snp', measurementHex: toHex(measurement) });
    } finally {
      await store.close();
    }
  });

  it('explains the saved evidence: Turin\'s CPU and FMC level, and the Turin claim\'s proof', async () => {
    const r = expectSuccess(await explain('policy.bin'));
    expect(r.out).to.match(/^ {2}cpuid fam\/model\/step +0x1a\//m);
    expect(r.out).to.match(/^ {2}reported_tcb +0001000200000047 \(fmc=0 bootloader=1 tee=0 snp=2 microcode=71\)$/m);
    expect(r.out).to.contain('SEV-VCEK, Turin-TEST, TCB fmc 0, 1/0/2/71, hwID ');
    expect(r.out).to.contain('decision: allow').and.match(/^ {2}ARK-Turin key:\w+ signed SEV-TEST, which signed the VCEK for Turin-TEST at TCB fmc=0 bootloader=1 tee=0 snp=2 microcode=71 /m);
    expect(r.out).to.match(/^ {2}policy: policyKey says platform\[amd-sev-snp\] has-trusted-platform-property: .*, tcb-fmc >= 0 \(is 0\), tcb-bootloader >= 1 \(is 1\), tcb-tee >= 0 \(is 0\), tcb-snp >= 2 \(is 2\), tcb-microcode >= 71 \(is 71\), launch-tcb-fmc >= 0 \(is 0\), launch-tcb-bootloader >= 1 \(is 1\), launch-tcb-tee >= 0 \(is 0\), launch-tcb-snp >= 2 \(is 2\), launch-tcb-microcode >= 71 \(is 71\)$/m);
  });

  it('refuses the same machine once the Turin minimum is above its FMC level: explain and the server, PLATFORM_PROPERTY_DENIED (exit 1)', async () => {
    const denied = await explain('policy-above.bin');
    expectFailure(denied, 1, 'PLATFORM_PROPERTY_DENIED');
    expect(denied.out).to.contain('decision: deny (PLATFORM_PROPERTY_DENIED)').and.contain('tcb-fmc is 0, and the policy requires tcb-fmc >= 1');
    copyFileSync(at('policy-above.bin'), at('serving.bin'));
    const from = server!.child.mark();
    process.kill(server!.child.pid, 'SIGHUP');
    await server!.child.waitForLog(/ reloaded /, from);
    const r = await initTrust(['--force']);
    expectFailure(r, 1, 'PLATFORM_PROPERTY_DENIED');
    await server!.child.waitForLog(/certification .*decision=deny .*PLATFORM_PROPERTY_DENIED.*tcb-fmc is 0/, from);
  });
});
