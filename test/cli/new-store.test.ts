// A store made to be certified (openToCertify: cert-utility init-trust, key-server serve
// --certifier) goes again when it was not certified, and stays once it was (keep), whatever
// comes after.

import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
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

  it('is made again with the protection asked for when one there holds nothing (a run killed before it certified)', async () => {
    const dir = join(tmp.dir, 'killed');
    await (await Cryptstore.create(dir, new KeyFileProtector(randomBytes(32)))).close();
    const key = randomBytes(32);
    const s = await openToCertify('cert-utility', dir, new KeyFileProtector(key), []);
    await s.store.put('item', new Uint8Array([1]));
    s.keep();
    await s.close();
    const again = await Cryptstore.open(dir, new KeyFileProtector(key));
    expect((await again.get('item')).blob).to.deep.equal(new Uint8Array([1]));
    await again.close();
  });

  it('is refused, and kept whole, when one there holds anything and the protection asked for does not unlock it', async () => {
    const dir = join(tmp.dir, 'holds-an-item');
    const key = randomBytes(32);
    const before = await Cryptstore.create(dir, new KeyFileProtector(key));
    await before.put('kept', new Uint8Array([2]));
    await before.close();
    const e = await open(dir).then(() => undefined, (x: unknown) => x);
    expect((e as { code?: string }).code).to.equal('WRONG_KEY');
    const after = await Cryptstore.open(dir, new KeyFileProtector(key));
    expect((await after.get('kept')).blob).to.deep.equal(new Uint8Array([2]));
    await after.close();
  });
});
