// The measurement of an empty file (a download that failed, a build that wrote nothing) is a
// measurement like any other, SHA-256 of no bytes: measure prints it, and a policy or certificate
// would trust it. Each says so, and still does what it was asked.

import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair } from '../../lib/crypto/index.ts';
import { run, tempDir } from '../support/helpers.ts';

const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

describe('the measurement of an empty file', function () {
  this.slow(6_000);
  const tmp = tempDir('empty-measurement-');
  const at = (name: string) => join(tmp.dir, name);
  before(async () => {
    const made = await run('cert-utility', ['generate-policy-key', '--domain', 'datica', '--key-out', at('policy-key.pem'), '--cert-out', at('policy-cert.pem')]);
    expect(made.status, made.stderr).to.equal(0);
    writeFileSync(at('machine.pem'), (await generateKeyPair('p256')).publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(at('empty.img'), '');
    writeFileSync(at('app'), 'a program');
  });
  after(() => tmp.cleanup());
  const warning = `is the measurement of an empty file (SHA-256 of no bytes): whatever is measured to it holds nothing; measure the program or image itself`;

  it('measure prints it with a warning naming the file (exit 0), and none for a file that is not empty', async () => {
    const r = await run('cert-utility', ['measure', at('empty.img'), at('app')]);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.out).to.contain(`${EMPTY}  ${at('empty.img')}`);
    expect(r.stderr.trim().split('\n')).to.deep.equal([`cert-utility: warning: ${at('empty.img')} is empty: ${EMPTY} ${warning}`]);
  });

  it('make-policy and issue-cert write what they were asked, warning of it (exit 0)', async () => {
    const keys = ['--policy-key', at('policy-key.pem'), '--policy-cert', at('policy-cert.pem')];
    const runs = await Promise.all([
      run('cert-utility', ['make-policy', ...keys, '--trust-platform', at('machine.pem'), '--trust-measurement', EMPTY, '--out', at('policy.bin')]),
      run('cert-utility', ['issue-cert', ...keys, '--public-key', at('machine.pem'), '--measurement', EMPTY.toUpperCase(), '--out', at('cert.pem')]),
    ]);
    for (const r of runs) {
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stderr).to.contain(`cert-utility: warning: ${EMPTY} ${warning}`);
    }
  });
});
