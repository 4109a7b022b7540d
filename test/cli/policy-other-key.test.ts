// A policy made under one policy key and given with another's certificate (another domain's, or
// the one before "Replacing the policy key") is refused naming both files and what to do, not
// only two key labels the operator has never seen.

import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair } from '../../lib/crypto/index.ts';
import { run, tempDir } from '../support/helpers.ts';

describe('a policy given with the certificate of another policy key', function () {
  this.slow(6_000);
  const tmp = tempDir('policy-other-key-');
  const at = (name: string) => join(tmp.dir, name);
  before(async () => {
    for (const domain of ['datica', 'other']) {
      const made = await run('cert-utility', ['generate-policy-key', '--domain', domain, '--key-out', at(`${domain}-key.pem`), '--cert-out', at(`${domain}-cert.pem`)]);
      expect(made.status, made.stderr).to.equal(0);
    }
    writeFileSync(at('platform.pem'), (await generateKeyPair('p256')).publicKey.export({ type: 'spki', format: 'pem' }));
    const policy = await run('cert-utility', ['make-policy', '--policy-key', at('datica-key.pem'), '--policy-cert', at('datica-cert.pem'),
      '--trust-platform', at('platform.pem'), '--trust-measurement', 'ab'.repeat(32), '--out', at('policy.bin')]);
    expect(policy.status, policy.stderr).to.equal(0);
  });
  after(() => tmp.cleanup());

  it('is refused by print-policy and simpleserver serve (POLICY_INVALID, exit 4), naming both files, the domain, and what to do', async () => {
    const runs = await Promise.all([
      run('cert-utility', ['print-policy', '--policy', at('policy.bin'), '--policy-cert', at('other-cert.pem'), '--json']),
      run('simpleserver', ['serve', '--policy-key', at('other-key.pem'), '--policy-cert', at('other-cert.pem'), '--policy', at('policy.bin'), '--listen', '127.0.0.1:0', '--json']),
    ]);
    for (const r of runs) {
      expect(r.status, r.stderr).to.equal(4);
      const { error } = JSON.parse(r.out.trim().split('\n').pop()!);
      expect(error.code).to.equal('POLICY_INVALID');
      expect(error.message).to.match(/^policy claim 1 is signed by key:[0-9a-f]+, not by the policy key key:[0-9a-f]+: /);
      expect(error.message).to.contain(`${at('policy.bin')} was made under another policy key than the one of ${at('other-cert.pem')} (domain other): give the policy certificate of the key that made it, or make the policy again with make-policy --policy-key and --policy-cert of this domain`);
    }
  });
});
