// A machine whose kernel runs at VMPL 2 (as under an SVSM), certified end to end with the real
// programs on loopback: its temporary configfs-tsm shows privlevel_floor 2 and refuses a report
// asked for below it, as the kernel does. init-trust asks at VMPL 2; simpleserver refuses that
// report under make-policy's default (vmpl = 0) and admits it under --snp-vmpl 2.

import { expect } from 'chai';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, toHex } from '../../lib/crypto/index.ts';
import { toPem } from '../../lib/pki/index.ts';
import { run, tempDir } from '../support/helpers.ts';
import { expectFailure, expectSuccess, startServer, type Child } from '../e2e/domain.ts';
import { serveFakeTsm, type FakeTsm } from './fake-tsm.ts';
import { TestSnpSigner } from './signer.ts';

describe('SEV-SNP end to end on a guest whose kernel runs at VMPL 2 (configfs-tsm privlevel_floor 2): init-trust, simpleserver, make-policy --snp-vmpl', () => {
  let tmp: ReturnType<typeof tempDir>;
  const fakes: FakeTsm[] = [];
  let server: { child: Child; port: number } | undefined;
  const signer = TestSnpSigner.create();
  const measurement = randomBytes(48);
  const at = (f: string) => join(tmp.dir, f);
  const cu = (args: string[]) => run('cert-utility', args, { cwd: tmp.dir });
  const makePolicy = (out: string, more: string[] = []) => cu(['make-policy', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--out', out,
    '--trust-amd-root-cert', 'test-ark.pem', '--snp-min-tcb', '3:0:8:115', '--trust-measurement', toHex(measurement), ...more]);
  const initTrust = (tsm: string, more: string[] = []) => cu(['init-trust', '--domain', 'vmpl-test', '--policy-cert', 'policy-cert.pem', '--server', `127.0.0.1:${server!.port}`,
    '--store', `store-${tsm}`, '--key-file', 'store.key', '--platform', 'sev-snp', '--tsm-dir', tsm, ...more]);
  /** A temporary configfs-tsm served by the test signer, its kernel at `privlevelFloor`. */
  const serveTsm = (name: string, privlevelFloor?: number) => {
    mkdirSync(at(name));
    const fake = serveFakeTsm(at(name), signer, { measurement, ...(privlevelFloor === undefined ? {} : { privlevelFloor }) });
    fakes.push(fake);
    return fake;
  };
  const serve = async (policy: string) => {
    copyFileSync(at(policy), at('serving.bin'));
    if (!server) {
      server = await startServer('simpleserver', ['serve', '--policy-key', at('policy-key.pem'), '--policy-cert', at('policy-cert.pem'), '--policy', at('serving.bin'), '--listen', '127.0.0.1:0']);
      return 0;
    }
    const from = server.child.mark();
    process.kill(server.child.pid, 'SIGHUP');
    await server.child.waitForLog(/ reloaded /, from);
    return from;
  };

  before(async () => {
    tmp = tempDir('snp-vmpl-e2e-');
    writeFileSync(at('test-ark.pem'), toPem(signer.ark));
    expectSuccess(await cu(['generate-policy-key', '--domain', 'vmpl-test', '--key-out', 'policy-key.pem', '--cert-out', 'policy-cert.pem']));
    expectSuccess(await cu(['new-key-file', '--out', 'store.key']));
    expectSuccess(await makePolicy('policy-vmpl0.bin'));
  });
  after(async () => {
    for (const f of fakes) f.stop();
    await server?.child.stop();
    tmp.cleanup();
  });

  it('refuses the VMPL 2 report under the default policy (vmpl = 0): PLATFORM_PROPERTY_DENIED, naming vmpl, at the server and in explain', async () => {
    const fake = serveTsm('tsm-vmpl2', 2);
    const from = await serve('policy-vmpl0.bin');
    const r = await initTrust('tsm-vmpl2', ['--save-evidence', 'evidence-vmpl2.bin']);
    expectFailure(r, 1, 'PLATFORM_PROPERTY_DENIED');
    await server!.child.waitForLog(/certification .*decision=deny .*PLATFORM_PROPERTY_DENIED.*vmpl is 2, and the policy requires vmpl = 0/, from);
    expect(fake.privlevels(), 'asked at the floor, never below it').to.deep.equal(['2', '2']);
    expect(fake.refused()).to.equal(0);
    const explain = await run('simpleserver', ['explain', '--policy', 'policy-vmpl0.bin', '--policy-cert', 'policy-cert.pem', '--evidence', 'evidence-vmpl2.bin'], { cwd: tmp.dir });
    expectFailure(explain, 1, 'PLATFORM_PROPERTY_DENIED');
    expect(explain.out).to.match(/^ {2}vmpl +2$/m).and.contain('vmpl is 2, and the policy requires vmpl = 0');
  });

  it('admits it under a policy written with --snp-vmpl 2 (vmpl = 2), which a VMPL 0 report then fails', async () => {
    const written = expectSuccess(await makePolicy('policy-vmpl2.bin', ['--snp-vmpl', '2']));
    expect(written.out).to.contain('vmpl = 2');
    const from = await serve('policy-vmpl2.bin');
    expect(expectSuccess(await initTrust('tsm-vmpl2', ['--force'])).out).to.match(new RegExp(`^certified: serial \\w+, measurement ${toHex(measurement)}, valid until `));
    await server!.child.waitForLog(/certification .*decision=allow .*platform=amd-sev-snp/, from);
    serveTsm('tsm-vmpl0', 0);
    expectFailure(await initTrust('tsm-vmpl0'), 1, 'PLATFORM_PROPERTY_DENIED');
  });

  it('leaves a guest at VMPL 0 as it was: privlevel_floor 0, or none, gives a VMPL 0 report the default policy admits, privlevel unwritten', async () => {
    await serve('policy-vmpl0.bin');
    for (const [tsm, fake] of [['tsm-floor0', serveTsm('tsm-floor0', 0)], ['tsm-nofloor', serveTsm('tsm-nofloor')]] as const) {
      expect(expectSuccess(await initTrust(tsm, ['--force'])).out, tsm).to.match(/^certified: /);
      expect(fake.privlevels().every((p) => p === ''), tsm).to.equal(true);
    }
  });
});
