// A file already where a command would write it (ALREADY_EXISTS): the hint names --force where
// that flag replaces it, and nowhere else (init-trust's --force certifies again, and its
// --save-evidence never replaces a file).

import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { closedPort, run, tempDir } from '../support/helpers.ts';

describe('ALREADY_EXISTS and --force', function () {
  this.slow(6_000);
  const tmp = tempDir('force-hint-');
  const at = (name: string) => join(tmp.dir, name);
  after(() => tmp.cleanup());

  it('hints that --force replaces the file where it does (new-key-file), and not under --json', async () => {
    expect((await run('cert-utility', ['new-key-file', '--out', at('key')])).status).to.equal(0);
    const again = await run('cert-utility', ['new-key-file', '--out', at('key')]);
    expect([again.status, again.out]).to.deep.equal([1, '']);
    expect(again.stderr).to.equal(`cert-utility: error: cannot write ${at('key')}: already exists [ALREADY_EXISTS]\nhint: give --force to replace --out if it exists\n`);
    const json = await run('cert-utility', ['new-key-file', '--out', at('key'), '--json']);
    expect([json.status, json.stderr]).to.deep.equal([1, '']);
  });

  it('gives no such hint where --force means something else (init-trust --save-evidence)', async () => {
    for (const args of [['generate-policy-key', '--domain', 'datica', '--key-out', at('policy-key.pem'), '--cert-out', at('policy-cert.pem')], ['generate-platform-keys', '--out-dir', at('platform')]]) {
      const made = await run('cert-utility', args);
      expect(made.status, made.stderr).to.equal(0);
    }
    writeFileSync(at('m'), Buffer.alloc(32, 7));
    writeFileSync(at('evidence'), 'kept');
    const r = await run('cert-utility', ['init-trust', '--domain', 'datica', '--policy-cert', at('policy-cert.pem'), '--server', `127.0.0.1:${await closedPort()}`,
      '--store', at('store'), '--key-file', at('key'), '--platform-dir', at('platform'), '--measurement-file', at('m'), '--save-evidence', at('evidence')]);
    expect(r.status, r.stderr).to.equal(1);
    expect(r.stderr).to.contain('[ALREADY_EXISTS]').and.not.to.contain('hint:');
    // What to do instead, in the message: --force would not help.
    expect(r.stderr).to.contain(`cannot write ${at('evidence')}: already exists; --save-evidence never replaces a file: name a new one, or move this one away [ALREADY_EXISTS]`);
  });
});
