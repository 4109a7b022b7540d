// A VM booting with its clock far behind (before NTP) first meets the policy certificate in its
// image, which the programs check before anything else: the refusal says this machine's clock is
// behind, by how much, and what to do, as the library's checks further on do.

import { expect } from 'chai';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportPrivateKey, generateKeyPair } from '../../lib/crypto/index.ts';
import { createPolicyCert, toPem } from '../../lib/pki/index.ts';
import { closedPort, run, tempDir } from '../support/helpers.ts';

describe('a policy certificate not valid yet by this machine\'s clock', function () {
  this.slow(6_000);
  const tmp = tempDir('policy-cert-clock-');
  const at = (name: string) => join(tmp.dir, name);
  let server: string;
  before(async () => {
    // Made on a clock three and a half days ahead of this one: to this machine's clock it begins in three and a half days.
    const { privateKey } = await generateKeyPair('p256');
    const cert = await createPolicyCert({ privateKey, domain: 'datica', now: new Date(Date.now() + 3.5 * 86_400_000) });
    writeFileSync(at('policy-cert.pem'), toPem(cert));
    writeFileSync(at('policy-key.pem'), exportPrivateKey(privateKey), { mode: 0o600 });
    writeFileSync(at('machine.pem'), (await generateKeyPair('p256')).publicKey.export({ type: 'spki', format: 'pem' }));
    expect((await run('cert-utility', ['new-key-file', '--out', at('store.key')])).status).to.equal(0);
    server = `127.0.0.1:${await closedPort()}`;
  });
  after(() => tmp.cleanup());

  const says = /the policy certificate is not valid before \S+ \(checked at \S+ by this machine's clock\) \(not-yet-valid\): this machine's clock is at least 3 days behind that of the machine that made the policy certificate: set it right \(NTP, e\.g\. chrony; README "Clocks"\) \[CERT_EXPIRED\]/;

  it('says so to init-trust and key-client (CERT_EXPIRED, exit 4), naming the clock as the fault and what to do', async () => {
    const common = ['--domain', 'datica', '--policy-cert', at('policy-cert.pem'), '--server', server, '--key-file', at('store.key')];
    const runs = await Promise.all([
      run('cert-utility', ['init-trust', ...common, '--store', at('store-a'), '--platform', 'simulated', '--platform-dir', at('platform'), '--measurement-file', at('m')]),
      run('key-client', ['check', ...common, '--store', at('store-b')]),
    ]);
    for (const r of runs) {
      expect([r.status, r.out], r.stderr).to.deep.equal([4, '']);
      expect(r.stderr).to.match(says);
    }
  });

  it('says so to the domain owner\'s commands too (make-policy, issue-cert, issue-role-cert, print-policy, simpleserver serve), nothing written', async () => {
    const keys = ['--policy-key', at('policy-key.pem'), '--policy-cert', at('policy-cert.pem')];
    const measurement = 'ab'.repeat(32);
    const runs = await Promise.all([
      run('cert-utility', ['make-policy', ...keys, '--trust-platform', at('machine.pem'), '--trust-measurement', measurement, '--out', at('policy.bin')]),
      run('cert-utility', ['issue-cert', ...keys, '--public-key', at('machine.pem'), '--measurement', measurement, '--out', at('cert.pem')]),
      run('cert-utility', ['issue-role-cert', ...keys, '--public-key', at('machine.pem'), '--role', 'operator', '--out', at('role.pem')]),
      run('cert-utility', ['print-policy', '--policy', at('policy.bin'), '--policy-cert', at('policy-cert.pem')]),
      run('simpleserver', ['serve', ...keys, '--policy', at('policy.bin'), '--listen', '127.0.0.1:0']),
    ]);
    for (const r of runs) {
      expect([r.status, r.out], r.stderr).to.deep.equal([4, '']);
      expect(r.stderr).to.match(says);
    }
    expect(existsSync(at('policy.bin')) || existsSync(at('cert.pem')) || existsSync(at('role.pem'))).to.equal(false);
  });
});
