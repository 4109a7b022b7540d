// --domain beside --policy-cert: every program that takes both refuses a domain the policy
// certificate does not name (a typo, or the certificate of another deployment) as a usage
// mistake, before it opens a store, makes a directory or connects, as init-trust always did.

import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { closedPort, run, tempDir, type Program, type RunResult } from '../support/helpers.ts';

describe('a --domain that is not the policy certificate\'s', function () {
  this.slow(6_000);
  const tmp = tempDir('domain-flag-');
  const at = (name: string) => join(tmp.dir, name);
  let port = 0;
  before(async () => {
    const made = await run('cert-utility', ['generate-policy-key', '--domain', 'datica', '--key-out', at('policy-key.pem'), '--cert-out', at('policy-cert.pem')]);
    expect(made.status, made.stderr).to.equal(0);
    port = await closedPort();
  });
  after(() => tmp.cleanup());

  const refused = (r: RunResult, program: Program) => {
    expect(r.status, r.stderr).to.equal(2);
    expect(r.stderr).to.contain(`${program}: error: --domain datca is not the domain of ${at('policy-cert.pem')} (datica) [USAGE]`);
    expect(r.out).to.equal('');
  };
  // A store that is not there: the refusal comes before it is looked for, or made.
  const store = () => ['--store', at('store'), '--passphrase-file', at('policy-key.pem')];
  const common = () => ['--domain', 'datca', '--policy-cert', at('policy-cert.pem'), ...store()];

  it('is refused by key-client (USAGE, exit 2), not taken for a machine not certified yet', async () => {
    refused(await run('key-client', ['list', '--server', `127.0.0.1:${port}`, ...common()]), 'key-client');
    const json = await run('key-client', ['list', '--json', '--server', `127.0.0.1:${port}`, ...common()]);
    expect(json.json()).to.deep.include({ ok: false });
    expect(json.json().error.code).to.equal('USAGE');
  });

  it('is refused by key-server serve --certifier before it certifies itself under that domain, leaving nothing made', async () => {
    const r = await run('key-server', ['serve', ...common(), '--data', at('data'), '--listen', '127.0.0.1:0', '--certifier', `127.0.0.1:${port}`,
      '--platform-dir', at('platform'), '--measurement-file', at('m'), '--backup-dir', at('backups')]);
    refused(r, 'key-server');
    for (const made of ['store', 'data', 'backups']) expect(existsSync(at(made)), made).to.equal(false);
  });

  it('is refused by key-server join', async () => {
    refused(await run('key-server', ['join', '--from', `127.0.0.1:${port}`, ...common()]), 'key-server');
  });
});
