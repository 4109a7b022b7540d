// Values the cryptstore decrypts or encodes for its own use are wiped once used (fill(0)), as it
// wipes its keys: export and import, list and verify, a put and a bundle's sealing.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, utf8 } from '../../lib/crypto/index.ts';
import { Cryptstore, PassphraseProtector, exportStore, importStore, type Entry } from '../../cryptstore/index.ts';
import type { ValidEntry } from '../../lib/wire/index.ts';
import { PASSPHRASE_ENV, withPassphraseFile, withProtector } from '../../cmd/common/protection.ts';
import { ROOT, supportScript, tempDir } from '../support/helpers.ts';
import { copiesInMemory, memoryReadable } from '../support/process-memory.ts';
import { rejects } from '../support/rejects.ts';

const CHEAP = { logN: 10, r: 8, p: 1 };
const pass = () => new PassphraseProtector(utf8('correct horse'), CHEAP);
const wiped = (b: Uint8Array) => b.length > 0 && b.every((x) => x === 0);

describe('cryptstore: values wiped once used', () => {
  let tmp: ReturnType<typeof tempDir>;
  let s: Cryptstore;
  beforeEach(async () => {
    tmp = tempDir();
    s = await Cryptstore.create(join(tmp.dir, 'store'), pass());
    await s.put('disk-key', randomBytes(64), { exportable: true });
    await s.put('api-token', randomBytes(64), { exportable: true });
  });
  afterEach(async () => {
    await s.close();
    tmp.cleanup();
  });

  it('export wipes each value it decrypted for the bundle, and import the bundle\'s plaintext, imported or refused', async () => {
    const read: Entry[] = [];
    const entriesWhere = s.entriesWhere.bind(s);
    s.entriesWhere = async (keep) => {
      const entries = await entriesWhere(keep);
      read.push(...entries);
      return entries;
    };
    const { bundle } = await exportStore(s, utf8('bundle pass'), CHEAP);
    expect(read).to.have.length(2);
    for (const e of read) expect(wiped(e.blob), e.tag).to.equal(true);

    const other = await Cryptstore.create(join(tmp.dir, 'other'), pass());
    try {
      const given: ValidEntry[][] = [];
      const importEntries = other.importEntries.bind(other);
      other.importEntries = (entries, force) => {
        given.push(entries);
        return importEntries(entries, force);
      };
      await importStore(other, bundle, utf8('bundle pass'));
      await rejects(importStore(other, bundle, utf8('bundle pass')), 'ALREADY_EXISTS');
      expect(given.map((g) => g.length)).to.deep.equal([2, 2]);
      for (const e of given.flat()) expect(wiped(e.blob), e.tag).to.equal(true);
      // What was imported is intact: the store sealed its own copy.
      expect((await other.get('disk-key')).blob).to.deep.equal((await s.get('disk-key')).blob);
    } finally {
      await other.close();
    }
  });

  it('list, verify and the numbering of versions wipe each value they decrypt only to check it', async () => {
    await s.close();
    s = await Cryptstore.open(join(tmp.dir, 'store'), pass()); // nothing known of its tags yet
    const opened: Entry[] = [];
    const internals = s as unknown as { openEntry: (tag: string, version: number, raw: Uint8Array) => Entry };
    const openEntry = internals.openEntry.bind(s);
    internals.openEntry = (tag, version, raw) => {
      const e = openEntry(tag, version, raw);
      opened.push(e);
      return e;
    };
    await s.list();
    await s.verify();
    expect(await s.has('disk-key')).to.equal(true);
    await s.delete('api-token', 1);
    expect(opened.length).to.be.at.least(6);
    for (const e of opened) expect(wiped(e.blob), e.tag).to.equal(true);
  });

  it('closing a store wipes its data key, and the programs\' protector wipes its copy of the passphrase or key file once the store is open', async () => {
    const held = (s as unknown as { dataKey: Uint8Array }).dataKey;
    expect(wiped(held), 'in use while open').to.equal(false);
    await s.close();
    expect(wiped(held), 'the data key once closed').to.equal(true);
    const secrets: Uint8Array[] = [];
    for (const [flag, file] of [['passphraseFile', 'passphrase'], ['keyFile', 'key']] as const) {
      writeFileSync(join(tmp.dir, file), Buffer.from(randomBytes(32)).toString('hex'), { mode: 0o600 });
      const o = { store: join(tmp.dir, `by-${file}`), [flag]: join(tmp.dir, file), scryptLogN: 10 };
      const store = await withProtector('cert-utility', o, (protector) => {
        const own = protector as unknown as { passphrase?: Uint8Array; material?: Uint8Array };
        secrets.push((own.passphrase ?? own.material)!);
        return Cryptstore.create(o.store, protector);
      });
      await store.close();
    }
    expect(secrets.map(wiped)).to.deep.equal([true, true]);
    s = await Cryptstore.open(join(tmp.dir, 'store'), pass()); // for afterEach
  });

  it('the programs read CRYPTSTORE_PASSPHRASE only when it is the secret used: with a passphrase or key file given, no string of it is made (a string cannot be wiped)', async () => {
    writeFileSync(join(tmp.dir, 'passphrase'), 'from the file\n', { mode: 0o600 });
    writeFileSync(join(tmp.dir, 'key'), randomBytes(32), { mode: 0o600 });
    const env = process.env;
    const read: string[] = [];
    process.env = new Proxy(env, { get: (t, k) => (k === PASSPHRASE_ENV && read.push(k), Reflect.get(t, k)) });
    env[PASSPHRASE_ENV] = 'from the environment';
    try {
      for (const [flag, file] of [['passphraseFile', 'passphrase'], ['keyFile', 'key']] as const) {
        const o = { store: join(tmp.dir, `env-${file}`), [flag]: join(tmp.dir, file), scryptLogN: 10 };
        await (await withProtector('cert-utility', o, (protector) => Cryptstore.create(o.store, protector))).close();
      }
      expect(read, 'read with a file given').to.deep.equal([]);
      const o = { store: join(tmp.dir, 'env-only'), scryptLogN: 10 };
      await (await withProtector('cert-utility', o, (protector) => Cryptstore.create(o.store, protector))).close();
      expect(read, 'read as the passphrase, once').to.deep.equal([PASSPHRASE_ENV]);
    } finally {
      process.env = env;
      delete env[PASSPHRASE_ENV];
    }
  });

  it('export-store and import-store wipe the bundle\'s passphrase read from its file once the bundle is sealed or opened, or refused', async () => {
    const file = join(tmp.dir, 'bundle-pass');
    writeFileSync(file, `${Buffer.from(randomBytes(16)).toString('hex')}\n`, { mode: 0o600 });
    const held: Uint8Array[] = [];
    const { bundle } = await withPassphraseFile(file, (p) => (held.push(p), exportStore(s, p, CHEAP)));
    const other = await Cryptstore.create(join(tmp.dir, 'other'), pass());
    try {
      await withPassphraseFile(file, (p) => (held.push(p), importStore(other, bundle, p)));
      await rejects(withPassphraseFile(file, (p) => (held.push(p), importStore(other, bundle, p))), 'ALREADY_EXISTS');
    } finally {
      await other.close();
    }
    expect(held.map(wiped)).to.deep.equal([true, true, true]);
  });

  /** Runs a child of test/support, waits for its "done", and counts the copies of `needle` in its memory. */
  async function copiesInChild(ctx: Mocha.Context, script: string, args: string[], needle: Uint8Array): Promise<number> {
    const child = spawn(process.execPath, supportScript(script, args), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d));
      // The child's own word that it is done, not a guess at how long it takes.
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => d.toString().includes('done') && resolve());
        child.once('exit', (status) => reject(new Error(`the child ended (${status}) before it was done: ${stderr}`)));
      });
      if (!memoryReadable(child.pid!)) ctx.skip();
      return copiesInMemory(child.pid!, needle);
    } finally {
      child.kill();
    }
  }

  it('a put and a bundle\'s sealing leave no copy of the value in memory (searched as an attacker with the process\'s memory would)', async function () {
    if (process.platform !== 'linux') this.skip();
    // 64 KiB: each copy of it is an allocation of its own, never in one of Node's shared pools.
    const value = randomBytes(64 * 1024);
    writeFileSync(join(tmp.dir, 'value'), value, { mode: 0o600 });
    expect(await copiesInChild(this, 'seal-in-memory.ts', [join(tmp.dir, 'sealed'), join(tmp.dir, 'value')], value.subarray(30_000, 30_064)), 'copies of the value').to.equal(0);
  });

  it('a store opened with a key file holds no copy of the file once open, before any garbage collection (Node\'s hkdf kept one in a key object until then)', async function () {
    if (process.platform !== 'linux') this.skip();
    const key = randomBytes(64);
    writeFileSync(join(tmp.dir, 'key'), key, { mode: 0o600 });
    expect(await copiesInChild(this, 'open-in-memory.ts', ['key-file', join(tmp.dir, 'opened'), join(tmp.dir, 'key')], key), 'copies of the key file').to.equal(0);
  });
});
