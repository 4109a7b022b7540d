// A store made to be certified (openToCertify: cert-utility init-trust, key-server serve
// --certifier) goes again when it was not certified, and stays once it was (keep), whatever
// comes after.

import { expect } from 'chai';
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Cryptstore, KeyFileProtector, type Protector } from '../../cryptstore/index.ts';
import { openDb } from '../../cryptstore/db.ts';
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

  it('goes with the folders it made above it, and only those: not one another made while its key was derived', async () => {
    const dir = join(tmp.dir, 'shared', 'mine');
    const keys = new KeyFileProtector(randomBytes(32));
    // Another run (or an operator's mkdir) makes the folder first, during this run's scrypt.
    const racing: Protector = { kind: keys.kind, description: keys.description, derive: (p) => keys.derive(p), create: () => (mkdirSync(join(tmp.dir, 'shared')), keys.create()) };
    await (await openToCertify('cert-utility', dir, racing, [])).close();
    expect(existsSync(dir), 'the store').to.equal(false);
    expect(existsSync(join(tmp.dir, 'shared')), 'the folder another made').to.equal(true);
    await (await open(join(tmp.dir, 'made', 'for', 'it'))).close();
    expect(existsSync(join(tmp.dir, 'made')), 'the folders it made').to.equal(false);
  });

  it('goes with the folders it made above it when its making fails once begun, as when certifying fails', async () => {
    const keys = new KeyFileProtector(randomBytes(32));
    // A key the store's data key cannot be sealed under: the making fails after it began (onCreating).
    const failing: Protector = { kind: keys.kind, description: keys.description, derive: (p) => keys.derive(p), create: async () => ({ ...(await keys.create()), kek: new Uint8Array(7) }) };
    const failed = await openToCertify('cert-utility', join(tmp.dir, 'failed', 'nested', 'store'), failing, []).then(() => false, () => true);
    expect(failed, 'the making failed').to.equal(true);
    expect(existsSync(join(tmp.dir, 'failed')), 'the folders it made').to.equal(false);
  });

  it('named "up/new/../sub", goes with every folder its making made, the one ".." passed through too', async () => {
    await (await open(`${tmp.dir}/up/new/../sub`)).close(); // not join(), which takes the .. as text
    expect(existsSync(join(tmp.dir, 'up')), 'up, up/new and up/sub').to.equal(false);
    mkdirSync(join(tmp.dir, 'was'));
    await (await open(`${tmp.dir}/was/new/../sub`)).close();
    expect(readdirSync(join(tmp.dir, 'was')), 'a folder that was there stays').to.deep.equal([]);
  });

  it('named through "link/..", goes with the folders it made where the link leads', async () => {
    mkdirSync(join(tmp.dir, 'elsewhere', 'deep'), { recursive: true });
    mkdirSync(join(tmp.dir, 'here'));
    symlinkSync(join(tmp.dir, 'elsewhere', 'deep'), join(tmp.dir, 'here', 'link'));
    await (await open(`${tmp.dir}/here/link/../x/store`)).close(); // not join(), which takes the .. lexically
    expect(readdirSync(join(tmp.dir, 'elsewhere'))).to.deep.equal(['deep']);
  });

  it('empties, and keeps, a store\'s directory another made while its key was derived: only what this run made goes', async () => {
    const dir = join(tmp.dir, 'made-meanwhile');
    const keys = new KeyFileProtector(randomBytes(32));
    const racing: Protector = { kind: keys.kind, description: keys.description, derive: (p) => keys.derive(p), create: () => (mkdirSync(dir), keys.create()) };
    await (await openToCertify('cert-utility', dir, racing, [])).close();
    expect(readdirSync(dir)).to.deep.equal([]);
  });

  it('named "new/store/.", goes with the folders it made', async () => {
    await (await open(`${tmp.dir}/dot/store/.`)).close();
    expect(existsSync(join(tmp.dir, 'dot'))).to.equal(false);
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

  it('is refused, and a file of the user\'s kept, where an empty LevelDB database (a creation cut short) has that file beside it', async () => {
    const dir = join(tmp.dir, 'empty-db-and-notes');
    await (await openDb(dir, true)).close();
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    chmodSync(dir, 0o755);
    const e = await open(dir).then(async (s) => (await s.close(), undefined), (x: unknown) => x);
    expect((e as { code?: string }).code).to.equal('STORE_EXISTS');
    expect(readdirSync(dir)).to.include('notes.txt');
    expect(statSync(dir).mode & 0o777, 'its mode, untouched').to.equal(0o755);
  });
});
