// A --store naming another program's LevelDB database (a key-server's --data, which looks like a
// store from outside) is said to be that, not "no cryptstore: create one" while create-store then
// said "a cryptstore already exists"; and a store is never made inside it.

import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { run, tempDir } from '../support/helpers.ts';

describe('a key-server\'s key database given as --store', function () {
  this.slow(6_000);
  const tmp = tempDir('foreign-database-');
  const data = join(tmp.dir, 'keyserver-data');
  const pass = join(tmp.dir, 'pass');
  before(async () => {
    await (await LevelBackend.open(data)).close();
    writeFileSync(pass, 'hunter2\n', { mode: 0o600 });
  });
  after(() => tmp.cleanup());
  const says = `${data} holds a LevelDB database that is not a cryptstore (another program's, such as a key-server's --data): give the cryptstore's own directory`;

  it('is no cryptstore to open, and says whose it may be (STORE_NOT_FOUND, exit 1)', async () => {
    const r = await run('cert-utility', ['list-items', '--store', data, '--passphrase-file', pass]);
    expect([r.status, r.out], r.stderr).to.deep.equal([1, '']);
    expect(r.stderr).to.equal(`cert-utility: error: no cryptstore at ${data}: it ${says.slice(data.length + 1)} [STORE_NOT_FOUND]\n`);
  });

  it('is no place to make one, and is not called a cryptstore (STORE_EXISTS, exit 1)', async () => {
    const made = await run('cert-utility', ['create-store', '--store', data, '--passphrase-file', pass, '--scrypt-log-n', '10']);
    expect([made.status, made.out], made.stderr).to.deep.equal([1, '']);
    expect(made.stderr).to.contain(`cert-utility: error: ${says}, or a new one [STORE_EXISTS]`);
  });
});
