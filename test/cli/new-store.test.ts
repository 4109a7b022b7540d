// A store made to be certified (openToCertify: cert-utility init-trust, key-server serve
// --certifier) goes again when it was not certified, and stays once it was (keep), whatever
// comes after.

import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { KeyFileProtector } from '../../cryptstore/index.ts';
import { openToCertify } from '../../cmd/common/new-store.ts';
import { tempDir } from '../support/helpers.ts';

describe('a store opened to be certified', () => {
  const tmp = tempDir('new-store-');
  after(() => tmp.cleanup());
  const open = (dir: string) => openToCertify('cert-utility', dir, new KeyFileProtector(randomBytes(32)), []);

  it('is removed when closed without being kept (not certified)', async () => {
    const dir = join(tmp.dir, 'uncertified');
    await (await open(dir)).close();
    expect(existsSync(dir)).to.equal(false);
  });

  it('stays once kept (certified), even when closed as after a later failure', async () => {
    const dir = join(tmp.dir, 'certified');
    const s = await open(dir);
    s.keep();
    await s.close();
    expect(existsSync(join(dir, 'CURRENT'))).to.equal(true);
  });
});
