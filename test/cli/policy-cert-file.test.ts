// A --policy-cert file that holds the policy key beside the certificate (a combined PEM, as some
// tools write) is refused wherever a certificate is read: the policy certificate goes into every
// VM image, and the key with it would let anyone holding an image admit any machine.

import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { closedPort, run, tempDir } from '../support/helpers.ts';

describe('a certificate file that holds a private key too', function () {
  this.slow(6_000);
  const tmp = tempDir('policy-cert-file-');
  const at = (name: string) => join(tmp.dir, name);
  before(async () => {
    const made = await run('cert-utility', ['generate-policy-key', '--domain', 'datica', '--key-out', at('policy-key.pem'), '--cert-out', at('policy-cert.pem')]);
    expect(made.status, made.stderr).to.equal(0);
    writeFileSync(at('combined.pem'), Buffer.concat([readFileSync(at('policy-cert.pem')), readFileSync(at('policy-key.pem'))]), { mode: 0o600 });
  });
  after(() => tmp.cleanup());
  const says = `${at('combined.pem')} holds a private key beside the certificate: a certificate file is handed out (the policy certificate goes into every VM image), its key never; give a file holding the certificate alone [INVALID_INPUT]`;

  it('is refused by key-client before its store is opened, and by show-cert (INVALID_INPUT, exit 1), naming no key', async () => {
    const port = await closedPort();
    const runs = await Promise.all([
      run('key-client', ['list', '--server', `127.0.0.1:${port}`, '--domain', 'datica', '--policy-cert', at('combined.pem'), '--store', at('store'), '--key-file', at('policy-key.pem')]),
      run('cert-utility', ['show-cert', at('combined.pem')]),
    ]);
    for (const r of runs) {
      expect([r.status, r.out], r.stderr).to.deep.equal([1, '']);
      expect(r.stderr).to.contain(says).and.not.to.contain('PRIVATE KEY-----');
    }
  });

  it('says of the key alone, given where the certificate goes, that it holds no certificate', async () => {
    const r = await run('cert-utility', ['show-cert', at('policy-key.pem')]);
    expect([r.status, r.out], r.stderr).to.deep.equal([1, '']);
    expect(r.stderr).to.contain(`${at('policy-key.pem')}: the PEM text holds no CERTIFICATE block [INVALID_INPUT]`);
  });

  it('still takes the certificate alone, PEM with CRLF line ends included', async () => {
    writeFileSync(at('crlf.pem'), readFileSync(at('policy-cert.pem'), 'utf8').replace(/\n/g, '\r\n'));
    const r = await run('cert-utility', ['show-cert', at('crlf.pem')]);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.out).to.contain('CN=policyKey');
  });
});
