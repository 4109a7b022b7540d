// make-policy holds LAUNCH_TCB to the minimum TCB too: a host could launch a VM under firmware
// older than the minimum, update it live, and the VM's reports would then carry a REPORTED_TCB that
// passes. Each --snp-min-tcb form writes its levels as launch-tcb-* minimums into its own claim,
// unless --snp-any-launch-tcb; print-policy shows them, and a real simpleserver refuses a machine
// of the test signer launched below the minimum (PLATFORM_PROPERTY_DENIED, exit 1).

import { expect } from 'chai';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, toHex } from '../../lib/crypto/index.ts';
import { toPem } from '../../lib/pki/index.ts';
import { run, tempDir } from '../support/helpers.ts';
import { expectFailure, expectSuccess, startServer, type Child } from '../e2e/domain.ts';
import { serveFakeTsm, type FakeTsm } from './fake-tsm.ts';
import { TestSnpSigner, type ReportFields } from './signer.ts';

describe('SEV-SNP: make-policy holds LAUNCH_TCB to the minimum TCB (--snp-any-launch-tcb to accept VMs launched under older firmware)', () => {
  let tmp: ReturnType<typeof tempDir>;
  const measurement = randomBytes(48);
  const cu = (args: string[]) => run('cert-utility', args, { cwd: tmp.dir });
  const makePolicy = (out: string, args: string[]) => cu(['make-policy', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--out', out, '--trust-measurement', toHex(measurement), ...args]);
  const printPolicy = (policy: string, more: string[] = []) => cu(['print-policy', '--policy', policy, '--policy-cert', 'policy-cert.pem', ...more]);
  /** The property claims' lines of make-policy's or print-policy's output. */
  const claimLines = (out: string) => out.split('\n').filter((l) => l.includes('has-trusted-platform-property'));
  const MILAN_LAUNCH = 'launch-tcb-bootloader >= 3, launch-tcb-tee >= 0, launch-tcb-snp >= 8, launch-tcb-microcode >= 115';
  const TURIN_LAUNCH = 'launch-tcb-fmc >= 0, launch-tcb-bootloader >= 1, launch-tcb-tee >= 0, launch-tcb-snp >= 2, launch-tcb-microcode >= 71';

  before(async () => {
    tmp = tempDir('snp-launch-tcb-');
    expectSuccess(await cu(['generate-policy-key', '--domain', 'launch-test', '--key-out', 'policy-key.pem', '--cert-out', 'policy-cert.pem']));
    expectSuccess(await cu(['new-key-file', '--out', 'store.key']));
  });
  after(() => tmp.cleanup());

  it('writes each --snp-min-tcb form\'s levels as launch-tcb-* minimums into its own claim, and print-policy (text and --json) shows them', async () => {
    const r = expectSuccess(await makePolicy('milan.bin', ['--trust-amd-root', 'milan', '--snp-min-tcb', '3:0:8:115']));
    expect(r.stderr).to.equal('');
    expect(claimLines(r.out)).to.have.length(1);
    expect(claimLines(r.out)[0]).to.contain(`tcb-microcode >= 115, ${MILAN_LAUNCH}] has-trusted-platform-property`);
    const p = expectSuccess(await printPolicy('milan.bin'));
    expect(claimLines(p.out)[0]).to.contain(`tcb-microcode >= 115, ${MILAN_LAUNCH}] has-trusted-platform-property`).and.contain('(for family 19h machines: Milan, Genoa)');
    const j = expectSuccess(await printPolicy('milan.bin', ['--json'])).json();
    expect(j.statements.filter((s: string) => s.includes(MILAN_LAUNCH))).to.have.length(1);

    // Beside Turin's root: Turin's claim gets Turin's five levels, launch-tcb-fmc first; family 19h's none of Turin's.
    const both = expectSuccess(await makePolicy('both.bin', ['--trust-amd-root', 'milan', '--trust-amd-root', 'turin', '--snp-min-tcb', '3:0:8:115', '--snp-min-tcb', 'turin=0:1:0:2:71']));
    const [family19h, turin] = claimLines(expectSuccess(await printPolicy('both.bin')).out);
    expect(claimLines(both.out)).to.deep.equal([family19h, turin]);
    expect(family19h).to.contain(`tcb-microcode >= 115, ${MILAN_LAUNCH}]`).and.contain('(for family 19h machines: Milan, Genoa)').and.not.contain('fmc');
    expect(turin).to.contain(`tcb-microcode >= 71, ${TURIN_LAUNCH}]`).and.contain('(for Turin machines)');

    // A minimum per product: each product's claim its own levels.
    const products = expectSuccess(await makePolicy('products.bin', ['--trust-amd-root', 'milan', '--trust-amd-root', 'genoa', '--snp-min-tcb', 'milan=3:0:8:115', '--snp-min-tcb', 'genoa=10:0:23:84']));
    const [milan, genoa] = claimLines(products.out);
    expect(milan).to.contain('product = milan').and.contain(MILAN_LAUNCH);
    expect(genoa).to.contain('product = genoa').and.contain('launch-tcb-bootloader >= 10, launch-tcb-tee >= 0, launch-tcb-snp >= 23, launch-tcb-microcode >= 84]');
  });

  it('writes no launch-tcb-* minimum with --snp-any-launch-tcb, with a warning saying what it admits; --snp-property levels then stand as given', async () => {
    const r = expectSuccess(await makePolicy('any.bin', ['--trust-amd-root', 'milan', '--snp-min-tcb', '3:0:8:115', '--snp-any-launch-tcb']));
    expect(claimLines(r.out)[0]).not.to.contain('launch-tcb');
    expect(r.stderr).to.match(/^cert-utility: warning: --snp-any-launch-tcb: .*LAUNCH_TCB.*older firmware/m);
    expect(claimLines(expectSuccess(await printPolicy('any.bin')).out)[0]).not.to.contain('launch-tcb');
    const lower = expectSuccess(await makePolicy('any-lower.bin', ['--trust-amd-root', 'milan', '--snp-min-tcb', '3:0:8:115', '--snp-any-launch-tcb', '--snp-property', 'launch-tcb-snp>=7']));
    expect(claimLines(lower.out)[0]).to.contain('tcb-microcode >= 115, launch-tcb-snp >= 7]');
    // --check-only takes it and says nothing, as of make-policy's other warnings.
    const check = expectSuccess(await makePolicy('never.bin', ['--trust-amd-root', 'milan', '--snp-min-tcb', '3:0:8:115', '--snp-any-launch-tcb', '--check-only']));
    expect(check.stderr).to.equal('');
    // Like every --snp-* flag, it needs an AMD root.
    const alone = await makePolicy('alone.bin', ['--snp-any-launch-tcb']);
    expectFailure(alone, 2, 'USAGE');
    expect(alone.stderr).to.contain('--trust-amd-root');
  });

  it('takes a --snp-property launch-tcb-* level at or above the minimum in the default\'s place, and refuses one that admits a launch below it (USAGE naming both and --snp-any-launch-tcb)', async () => {
    const milan = ['--trust-amd-root', 'milan', '--snp-min-tcb', '3:0:8:115'];
    const stricter = expectSuccess(await makePolicy('stricter.bin', [...milan, '--snp-property', 'launch-tcb-snp>=9', '--snp-property', 'launch-tcb-microcode=115']));
    expect(claimLines(stricter.out)[0]).to.contain('launch-tcb-bootloader >= 3, launch-tcb-tee >= 0, launch-tcb-snp >= 9, launch-tcb-microcode = 115]');
    expect(stricter.stderr).to.equal('');
    const equal = expectSuccess(await makePolicy('equal.bin', [...milan, '--snp-property', 'launch-tcb-snp>=8']));
    expect(claimLines(equal.out)[0]).to.contain(`${MILAN_LAUNCH}]`);
    expect(claimLines(equal.out)[0]!.match(/launch-tcb-snp/g)).to.have.length(1);
    for (const [flags, prop, what] of [
      [milan, 'launch-tcb-snp>=7', 'launch-tcb-snp >= 8'],
      [milan, 'launch-tcb-microcode<=200', 'launch-tcb-microcode >= 115'],
      [milan, 'launch-tcb-tee=0', undefined],
      [['--trust-amd-root', 'turin', '--snp-min-tcb', 'turin=1:1:0:2:71'], 'launch-tcb-fmc>=0', 'launch-tcb-fmc >= 1'],
      [['--trust-amd-root', 'milan', '--trust-amd-root', 'turin', '--snp-min-tcb', '3:0:8:115', '--snp-min-tcb', 'turin=0:1:0:2:71'], 'family19h:launch-tcb-snp>=2', 'launch-tcb-snp >= 8'],
    ] as [string[], string, string | undefined][]) {
      const r = await makePolicy('refused.bin', [...flags, '--snp-property', prop]);
      if (what === undefined) {
        expectSuccess(r); // TEE 0 is the minimum: = 0 admits nothing the default would refuse
        continue;
      }
      expectFailure(r, 2, 'USAGE');
      expect(r.stderr, prop).to.contain(`--snp-property ${prop}`).and.contain(what).and.contain('--snp-any-launch-tcb');
      // --check-only refuses it too, as deployment-setup.sh asks before making anything.
      expectFailure(await makePolicy('refused.bin', [...flags, '--snp-property', prop, '--check-only']), 2, 'USAGE');
      expectSuccess(await makePolicy(`taken-${prop.replace(/\W/g, '_')}.bin`, [...flags, '--snp-property', prop, '--snp-any-launch-tcb']));
    }
    // Turin's prefix beside both layouts: stricter in Turin's claim only.
    const both = expectSuccess(await makePolicy('both-stricter.bin', ['--trust-amd-root', 'milan', '--trust-amd-root', 'turin', '--snp-min-tcb', '3:0:8:115', '--snp-min-tcb', 'turin=0:1:0:2:71', '--snp-property', 'turin:launch-tcb-fmc>=1']));
    const [family19h, turin] = claimLines(both.out);
    expect(family19h).to.contain(`${MILAN_LAUNCH}]`);
    expect(turin).to.contain('launch-tcb-fmc >= 1, launch-tcb-bootloader >= 1, launch-tcb-tee >= 0, launch-tcb-snp >= 2, launch-tcb-microcode >= 71]');
  });

  describe('a real simpleserver and init-trust --platform sev-snp, the test signer\'s machine launched under older firmware', () => {
    const servers: Child[] = [];
    const fakes: FakeTsm[] = [];
    after(async () => {
      for (const f of fakes) f.stop();
      for (const s of servers) await s.stop();
    });
    /** A simpleserver under `policy`: its port. */
    const serve = async (policy: string) => {
      const server = await startServer('simpleserver', ['serve', '--policy-key', join(tmp.dir, 'policy-key.pem'), '--policy-cert', join(tmp.dir, 'policy-cert.pem'), '--policy', join(tmp.dir, policy), '--listen', '127.0.0.1:0']);
      servers.push(server.child);
      return server;
    };
    /** init-trust on a machine of `signer` at its own REPORTED_TCB, launched as `fields` say, against the server at `port`. */
    const certify = (signer: TestSnpSigner, fields: Pick<ReportFields, 'launchTcb' | 'launchFmc'>, port: number) => {
      const tsm = `tsm-${fakes.length}`;
      mkdirSync(join(tmp.dir, tsm));
      fakes.push(serveFakeTsm(join(tmp.dir, tsm), signer, { measurement, fields }));
      return cu(['init-trust', '--domain', 'launch-test', '--policy-cert', 'policy-cert.pem', '--server', `127.0.0.1:${port}`,
        '--store', `store-${tsm}`, '--key-file', 'store.key', '--platform', 'sev-snp', '--tsm-dir', tsm]);
    };

    it('refuses a Milan-shaped machine launched at SNP 7 whose firmware now reports 3:0:8:115 (PLATFORM_PROPERTY_DENIED, exit 1), and certifies it under a policy made with --snp-any-launch-tcb', async () => {
      const signer = TestSnpSigner.create();
      writeFileSync(join(tmp.dir, 'test-ark.pem'), toPem(signer.ark));
      const root = ['--trust-amd-root-cert', 'test-ark.pem', '--snp-min-tcb', '3:0:8:115'];
      expectSuccess(await makePolicy('test-root.bin', root));
      expectSuccess(await makePolicy('test-root-any.bin', [...root, '--snp-any-launch-tcb']));
      const launchTcb = { bootloader: 3, tee: 0, snp: 7, microcode: 115 };
      const server = await serve('test-root.bin');
      expect(expectSuccess(await certify(signer, {}, server.port)).out, 'launched at the TCB it reports').to.match(/^certified: /);
      const r = await certify(signer, { launchTcb }, server.port);
      expectFailure(r, 1, 'PLATFORM_PROPERTY_DENIED');
      // The reason stays in the server's log (a refusal carries its code only).
      await server.child.waitForLog(/certification .*decision=deny .*PLATFORM_PROPERTY_DENIED.*launch-tcb-snp is 7, and the policy requires launch-tcb-snp >= 8/);
      const any = await serve('test-root-any.bin');
      expect(expectSuccess(await certify(signer, { launchTcb }, any.port)).out).to.match(/^certified: /);
    });

    it('refuses a Turin-shaped machine launched under an FMC level below Turin\'s minimum (launch-tcb-fmc), its other levels at the minimum', async () => {
      const signer = TestSnpSigner.create({ product: 'turin', fmc: 1 });
      writeFileSync(join(tmp.dir, 'ark-turin.pem'), toPem(signer.ark));
      expectSuccess(await makePolicy('turin-root.bin', ['--trust-amd-root-cert', 'ark-turin.pem', '--snp-min-tcb', 'turin=1:1:0:2:71']));
      const server = await serve('turin-root.bin');
      const r = await certify(signer, { launchFmc: 0 }, server.port);
      expectFailure(r, 1, 'PLATFORM_PROPERTY_DENIED');
      await server.child.waitForLog(/certification .*decision=deny .*launch-tcb-fmc is 0, and the policy requires launch-tcb-fmc >= 1/);
    });
  });
});
