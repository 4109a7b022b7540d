// A key-server given a new, empty key database for a storage key it held before (a mistyped
// restore path, most likely) says so at every start until the database holds a record, however
// the start that made the database ended; a fresh deployment and a restored backup are not warned.

import { expect } from 'chai';
import { cpSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { Level } from 'level';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { STORAGE_KEY_TAG } from '../../lib/keyservice/server.ts';
import { run } from '../support/helpers.ts';
import { Domain, expectFailure, expectSuccess, type Machine } from './domain.ts';

const WARNING = 'is new and empty, made after this key-server';

describe('e2e: a new, empty key database for a storage key made before is warned of at start', function () {
  let d: Domain;
  let keyHolder: Machine;
  let alice: Machine;
  let taken: Server;

  before(async () => {
    ({ d, machines: { 'ks-key-holder': keyHolder, alice } } = await Domain.setUp({ 'ks-key-holder': 'key-server', alice: 'client-alice' }));
    // Its storage key was stored an hour ago, as a deployment's that has served for a while.
    const store = await d.openStore(keyHolder.store);
    await store.put(STORAGE_KEY_TAG, randomBytes(32), { type: 'binary-blob', exportable: false, time: new Date(Date.now() - 3_600_000) });
    await store.close();
    taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  });
  after(async () => {
    await new Promise((r) => taken?.close(r));
    await d?.close();
  });

  const warnsAtStart = async (data: string) => {
    const ks = await d.startAndStop(keyHolder, { data });
    expect(ks.child.stderr).to.contain(`the key database in ${data} is new and empty, made after this key-server's storage key: if a restore or an existing database was meant, stop it and check --data`);
  };

  it('warns at the start after one that made the database and failed (its port taken), in a missing, empty or other directory', async () => {
    const missing = join(d.path('backups-typo'), 'keys-2026');
    const empty = d.path('empty-data');
    mkdirSync(empty);
    const other = d.path('other-data');
    mkdirSync(other);
    writeFileSync(join(other, 'notes.txt'), 'not a key database\n');
    for (const data of [missing, empty, other]) {
      const failed = await run('key-server', d.keyServerArgs(keyHolder, data, `127.0.0.1:${(taken.address() as AddressInfo).port}`));
      // A port another process holds is the machine's resource withheld, not bad input.
      expectFailure(failed, 1, 'ADDRESS_IN_USE');
      expect(failed.stderr).to.contain(`key-server: error: cannot listen on 127.0.0.1:${(taken.address() as AddressInfo).port}: address already in use: another process holds that port (stop it, or give --listen another port) [ADDRESS_IN_USE]`);
      await warnsAtStart(data);
      await warnsAtStart(data); // and again, until it holds a record
    }
  });

  it('a start refused (its port taken, its --audit a link loop) removes the key database and the folders it made, but not a directory that was there', async () => {
    const parent = d.path('refused-start');
    mkdirSync(parent);
    const port = String((taken.address() as AddressInfo).port);
    const loop = join(parent, 'loop');
    symlinkSync(loop, loop);
    for (const [listen, audit] of [[port, undefined], ['0', loop]] as const) {
      const failed = await run('key-server', ['serve', '--domain', d.name, '--policy-cert', d.policyCertFile, '--data', join(parent, 'new', 'data'),
        '--listen', `127.0.0.1:${listen}`, ...(audit ? ['--audit', audit] : []), ...keyHolder.storeArgs]);
      expect(failed.status, failed.stderr).to.equal(1);
      expect(readdirSync(parent), failed.stderr).to.deep.equal(['loop']);
    }
    const there = join(parent, 'there');
    mkdirSync(there);
    writeFileSync(join(there, 'notes.txt'), 'kept\n');
    const failed = await run('key-server', d.keyServerArgs(keyHolder, join(there, 'data'), `127.0.0.1:${port}`));
    expect(failed.status).to.equal(1);
    expect(readdirSync(there)).to.deep.equal(['notes.txt']);
  });

  it('warns at the start after one killed once it made the database', async () => {
    const data = d.path('killed-data');
    await (await LevelBackend.open(data)).close(); // what a start killed before it listened leaves
    await warnsAtStart(data);
  });

  it('does not warn once the database holds a record, nor of a restored backup of it', async () => {
    const data = d.path('stored-data');
    const first = await d.startKeyServer(keyHolder, { data });
    expect(first.child.stderr).to.contain(WARNING);
    expectSuccess(await d.kc(alice, first, 'store', ['dr/disk-key', '--in', '-'], randomBytes(32)));
    await first.child.stop();
    const restored = d.path('restored-data');
    cpSync(data, restored, { recursive: true });
    for (const dir of [data, restored]) {
      const ks = await d.startAndStop(keyHolder, { data: dir });
      expect(ks.child.stderr).not.to.contain(WARNING);
    }
  });

  // Whether it holds a record is asked once, for this warning and the new audit chain's: of a key
  // name, never by reading a record, so a damaged one does not stop a start with a new audit log.
  it('starts over a damaged record with a new audit log, as with its old one, and says the chain is new', async () => {
    const data = d.path('damaged-data');
    const first = await d.startKeyServer(keyHolder, { data });
    expectSuccess(await d.kc(alice, first, 'store', ['dr/damaged', '--in', '-'], randomBytes(32)));
    await first.child.stop();
    const db = new Level<string, Uint8Array>(data, { keyEncoding: 'utf8', valueEncoding: 'view' });
    for await (const key of db.keys({ gte: 'r!', lt: 'r"' })) await db.put(key, new Uint8Array([0xff, 0xff]));
    await db.close();
    rmSync(join(data, 'audit.jsonl'));
    const ks = await d.startAndStop(keyHolder, { data });
    expect(ks.child.stderr).to.contain('begins a new chain, but the key database already holds keys').and.not.contain(WARNING);
  });

  it('does not warn a fresh deployment started again before its first store', async () => {
    const fresh = await d.certify('ks-fresh', 'key-server');
    const data = d.path('fresh-data');
    for (let i = 0; i < 2; i++) {
      const ks = await d.startAndStop(fresh, { data });
      expect(ks.child.stderr).not.to.contain(WARNING);
    }
  });
});
