// KeyStore: values round-trip through a real LevelBackend, and every tamper with what the backend
// keeps (ciphertext, name, version, type, exportable, size) comes back as INTEGRITY.

import { expect } from 'chai';
import { join } from 'node:path';
import { Level } from 'level';
import { CertifierError } from '../../lib/errors/index.ts';
import { encodeFields, randomBytes, utf8 } from '../../lib/crypto/index.ts';
import { decode, encode } from '../../lib/wire/index.ts';
import type { KeyBackend, StoredRecord } from '../../lib/keyservice/backend.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { KeyStore, MAX_KEY_VALUE_BYTES, recordAad } from '../../lib/keyservice/keystore.ts';
import { tempDir } from '../support/helpers.ts';
import { rejects } from '../support/rejects.ts';

interface RecordMessage { resourceName?: string; version?: number; valueType?: string; exportable?: boolean; timeEntered?: string; size?: number; ciphertext?: Uint8Array }


const key = (name: string, version: number) => `r!${name}\u0000${version.toString(16).padStart(8, '0')}`;

describe('KeyStore', () => {
  let tmp: ReturnType<typeof tempDir>;
  let dir: string;
  let backend: LevelBackend;
  let ks: KeyStore;
  const storageKey = randomBytes(32);

  beforeEach(async () => {
    tmp = tempDir('keyserver-keystore-');
    dir = join(tmp.dir, 'data');
    backend = await LevelBackend.open(dir);
    ks = new KeyStore(backend, storageKey);
  });
  afterEach(async () => {
    await backend.close();
    tmp.cleanup();
  });

  /** Closes the backend, edits stored records through `fn`, and reopens. */
  async function tamper(fn: (db: Level<string, Uint8Array>, read: (k: string) => Promise<RecordMessage>, write: (k: string, m: RecordMessage) => Promise<void>) => Promise<void>): Promise<void> {
    await backend.close();
    const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db.open();
    try {
      await fn(
        db,
        async (k) => decode<RecordMessage>('key_service_stored_record', (await db.get(k))!),
        async (k, m) => db.put(k, encode('key_service_stored_record', m)),
      );
    } finally {
      await db.close();
    }
    backend = await LevelBackend.open(dir);
    ks = new KeyStore(backend, storageKey);
  }

  it('once wiped, seals and opens nothing: a store still running at shutdown writes no record under a zeroed key', async () => {
    await ks.store('before', utf8('v'), { type: 'binary-blob', exportable: true });
    ks.wipe();
    await rejects(ks.store('after', utf8('secret'), { type: 'binary-blob', exportable: true }), 'UNREACHABLE');
    await rejects(ks.fetch('before'), 'UNREACHABLE');
    expect(await backend.get('after', 0)).to.equal(undefined);
    const again = new KeyStore(backend, storageKey);
    expect(Buffer.from((await again.fetch('before')).value).toString()).to.equal('v');
    // Its own copy of the key is zeroed, not merely fenced off (a memory scan finds no key).
    const kept = (ks as unknown as { key: Uint8Array }).key;
    expect(kept.length).to.equal(storageKey.length);
    expect(kept.every((b) => b === 0)).to.equal(true);
    expect(storageKey.some((b) => b !== 0), "the caller's key is its own").to.equal(true);
  });

  it('round-trips values of every type, size and exportability', async () => {
    const values = [new Uint8Array(0), utf8('disk key'), randomBytes(MAX_KEY_VALUE_BYTES)];
    const types = ['binary-blob', 'key-message-serialized-protobuf', 'X509-der-cert'] as const;
    for (let i = 0; i < values.length; i++) {
      const info = await ks.store('k', values[i]!, { type: types[i]!, exportable: i % 2 === 0 });
      expect(info).to.include({ name: 'k', version: i + 1, type: types[i], exportable: i % 2 === 0, size: values[i]!.length });
      expect(new Date(info.timeEntered).toISOString()).to.equal(info.timeEntered);
    }
    for (let i = 0; i < values.length; i++) {
      const { info, value } = await ks.fetch('k', i + 1);
      expect(Buffer.from(value).equals(Buffer.from(values[i]!))).to.equal(true);
      expect(info.version).to.equal(i + 1);
    }
    expect((await ks.fetch('k')).info.version).to.equal(3);
  });

  it('never hands the backend the plaintext', async () => {
    const secret = utf8('a very recognizable secret value');
    await ks.store('k', secret, { type: 'binary-blob', exportable: true });
    const r = (await backend.get('k', 0))!;
    expect(Buffer.from(r.ciphertext).includes(Buffer.from(secret))).to.equal(false);
    expect(r.ciphertext.length).to.equal(secret.length + 28);
  });

  it('binds name, version, type and exportable into the AAD as specified', () => {
    expect(Buffer.from(recordAad('n', 2, 'other', true))).to.deep.equal(Buffer.from(encodeFields('key-service-record', '1', 'n', '2', 'other', '1')));
    expect(Buffer.from(recordAad('n', 2, 'other', false))).to.deep.equal(Buffer.from(encodeFields('key-service-record', '1', 'n', '2', 'other', '0')));
  });

  it('answers NOT_FOUND for an absent name or version, and list shows metadata only', async () => {
    await rejects(ks.fetch('nothing'), 'NOT_FOUND');
    await ks.store('a/x', utf8('v'), { type: 'other', exportable: false });
    await rejects(ks.fetch('a/x', 2), 'NOT_FOUND');
    const list = await ks.list('a/');
    expect(list).to.have.length(1);
    expect(list[0]).to.not.have.property('ciphertext');
    expect(list[0]).to.include({ name: 'a/x', version: 1, type: 'other', exportable: false, size: 1 });
    expect(await ks.delete('a/x', 0)).to.deep.equal({ count: 1, versions: [1] });
    expect(await ks.delete('a/x', 0)).to.deep.equal({ count: 0, versions: [] });
  });

  it('refuses bad input with INVALID_INPUT, and a short storage key with INVALID_KEY', async () => {
    await rejects(ks.store('', utf8('v'), { type: 'binary-blob', exportable: false }), 'INVALID_INPUT');
    await rejects(ks.store('bad\nname', utf8('v'), { type: 'binary-blob', exportable: false }), 'INVALID_INPUT');
    await rejects(ks.store('k', new Uint8Array(MAX_KEY_VALUE_BYTES + 1), { type: 'binary-blob', exportable: false }), 'INVALID_INPUT');
    await rejects(ks.store('k', utf8('v'), { type: 'text' as never, exportable: false }), 'INVALID_INPUT');
    await rejects(ks.fetch('k', -1), 'INVALID_INPUT');
    expect(() => new KeyStore(backend, randomBytes(16))).to.throw(CertifierError).with.property('code', 'INVALID_KEY');
  });

  it('passes expectedLatest through: VERSION_CONFLICT when another store came first', async () => {
    await ks.store('k', utf8('1'), { type: 'binary-blob', exportable: true, expectedLatest: 0 });
    await rejects(ks.store('k', utf8('2'), { type: 'binary-blob', exportable: true, expectedLatest: 0 }), 'VERSION_CONFLICT');
    expect((await ks.store('k', utf8('2'), { type: 'binary-blob', exportable: true, expectedLatest: 1 })).version).to.equal(2);
  });

  it('fails with INTEGRITY under another storage key', async () => {
    await ks.store('k', utf8('v'), { type: 'binary-blob', exportable: true });
    await rejects(new KeyStore(backend, randomBytes(32)).fetch('k'), 'INTEGRITY');
  });

  const tampers: [string, (read: (k: string) => Promise<RecordMessage>, write: (k: string, m: RecordMessage) => Promise<void>) => Promise<void>, string, number][] = [
    ['a flipped ciphertext byte', async (read, write) => {
      const m = await read(key('a', 1));
      const c = Uint8Array.from(m.ciphertext!);
      c[20]! ^= 0x01;
      await write(key('a', 1), { ...m, ciphertext: c });
    }, 'a', 1],
    ['a ciphertext swapped with another name\'s', async (read, write) => {
      const a = await read(key('a', 1));
      const b = await read(key('b', 1));
      await write(key('a', 1), { ...a, ciphertext: b.ciphertext });
      await write(key('b', 1), { ...b, ciphertext: a.ciphertext });
    }, 'b', 1],
    ['a ciphertext moved to another version', async (read, write) => {
      const v1 = await read(key('a', 1));
      const v2 = await read(key('a', 2));
      await write(key('a', 2), { ...v2, ciphertext: v1.ciphertext });
    }, 'a', 2],
    ['a changed type', async (read, write) => {
      const m = await read(key('a', 1));
      await write(key('a', 1), { ...m, valueType: 'X509-der-cert' });
    }, 'a', 1],
    ['a flipped exportable bit', async (read, write) => {
      const m = await read(key('b', 1));
      await write(key('b', 1), { ...m, exportable: true });
    }, 'b', 1],
    ['a changed size', async (read, write) => {
      const m = await read(key('a', 1));
      await write(key('a', 1), { ...m, size: m.size! + 1 });
    }, 'a', 1],
  ];

  for (const [what, edit, name, version] of tampers) {
    it(`detects ${what} as INTEGRITY`, async () => {
      await ks.store('a', utf8('value of a, version 1'), { type: 'binary-blob', exportable: true });
      await ks.store('a', utf8('value of a, version 2'), { type: 'binary-blob', exportable: true });
      await ks.store('b', utf8('value of b, version 1'), { type: 'binary-blob', exportable: false });
      await tamper((_db, read, write) => edit(read, write));
      const e = await rejects(ks.fetch(name, version), 'INTEGRITY');
      expect(e.message).to.include(`"${name}" version ${version}`);
      // Untouched records still open.
      if (!(name === 'a' && version === 1) && what !== 'a ciphertext swapped with another name\'s') {
        expect(Buffer.from((await ks.fetch('a', 1)).value).toString()).to.equal('value of a, version 1');
      }
    });
  }

  it('checks a record fetched again whose metadata or bytes changed underneath, though it opened before under the same name and version', async () => {
    await ks.store('a', utf8('value of a'), { type: 'binary-blob', exportable: true });
    await ks.store('b', utf8('value of b'), { type: 'binary-blob', exportable: false });
    // One KeyStore throughout (what it learnt from the first fetches kept), its backend's answers edited by `edit`.
    let edit = (r: StoredRecord): StoredRecord => r;
    const edited = new KeyStore({ get: async (n: string, v: number) => edit((await backend.get(n, v))!) } as unknown as KeyBackend, storageKey);
    expect(Buffer.from((await edited.fetch('a')).value).toString()).to.equal('value of a');
    expect((await edited.fetch('b', 1)).info.exportable).to.equal(false);
    const flipped = (c: Uint8Array) => Uint8Array.from(c, (x, i) => (i === 20 ? x ^ 1 : x));
    const changes: [string, (r: StoredRecord) => StoredRecord, string][] = [
      ['a flipped ciphertext byte', (r) => ({ ...r, ciphertext: flipped(r.ciphertext) }), 'authentication failed'],
      ['a changed type', (r) => ({ ...r, type: 'X509-der-cert' }), 'authentication failed'],
      ['a flipped exportable bit', (r) => ({ ...r, exportable: !r.exportable }), 'authentication failed'],
      ['a changed size', (r) => ({ ...r, size: r.size + 1 }), 'the record says'],
      ['a time entered that is no time', (r) => ({ ...r, timeEntered: 'yesterday' }), 'time entered "yesterday"'],
      ['a type no store writes', (r) => ({ ...r, type: 'text' }), 'type "text"'],
    ];
    for (const [what, change, why] of changes) {
      edit = change;
      const e = await rejects(edited.fetch('a', 1), 'INTEGRITY');
      expect(e.message, what).to.include(why);
      edit = (r) => r;
      expect(Buffer.from((await edited.fetch('a', 1)).value).toString(), `after ${what}`).to.equal('value of a');
    }
    // b's sealed value under a's name: its AAD is b's.
    const b = (await backend.get('b', 1))!;
    edit = (r) => ({ ...r, ciphertext: b.ciphertext });
    await rejects(edited.fetch('a', 1), 'INTEGRITY');
    // Another replica's record of the same name and version (a restored backup, say) with another time: opened, and its time shown.
    edit = (r) => ({ ...r, timeEntered: '2020-01-02T03:04:05.000Z' });
    expect((await edited.fetch('a', 1)).info.timeEntered).to.equal('2020-01-02T03:04:05.000Z');
    edit = (r) => r;
    expect((await edited.fetch('a', 1)).info.timeEntered).to.not.equal('2020-01-02T03:04:05.000Z');
    // Versions of one name fetched in turn each open with their own AAD.
    await ks.store('a', utf8('value of a, version 2'), { type: 'X509-der-cert', exportable: true });
    for (const v of [2, 1, 0, 1]) expect(Buffer.from((await edited.fetch('a', v)).value).toString(), `version ${v}`).to.equal(v === 1 ? 'value of a' : 'value of a, version 2');
  });

  it('release refuses a value marked not exportable before opening it, and a record relabelled exportable fails to open', async () => {
    await ks.store('sealed', utf8('never leaves'), { type: 'binary-blob', exportable: false });
    await ks.store('open', utf8('may leave'), { type: 'binary-blob', exportable: true });
    expect(Buffer.from((await ks.release('open')).value).toString()).to.equal('may leave');
    // Garbage in place of the sealed value: release refuses on the mark without opening, fetch tries and fails.
    let edit = (r: StoredRecord): StoredRecord => r;
    const edited = new KeyStore({ get: async (n: string, v: number) => edit((await backend.get(n, v))!) } as unknown as KeyBackend, storageKey);
    edit = (r) => ({ ...r, ciphertext: new Uint8Array(r.ciphertext.length) });
    expect((await rejects(edited.release('sealed'), 'NOT_EXPORTABLE')).message).to.equal('"sealed" version 1 is not exportable');
    await rejects(edited.fetch('sealed'), 'INTEGRITY');
    // Relabelled exportable: the mark is in the AAD, so nothing is released.
    edit = (r) => ({ ...r, exportable: true });
    await rejects(edited.release('sealed', 1), 'INTEGRITY');
    // Damaged metadata is still INTEGRITY, not a refusal.
    edit = (r) => ({ ...r, size: r.size + 1, timeEntered: 'yesterday' });
    await rejects(edited.release('sealed'), 'INTEGRITY');
  });

  it('keeps the AAD of a checked record as bytes of its own, not a view holding a pooled buffer alive', async () => {
    await ks.store('pooled', utf8('v'), { type: 'binary-blob', exportable: true });
    await ks.fetch('pooled');
    const kept = (ks as unknown as { checked: { get(name: string): { aad: Uint8Array } | undefined } }).checked.get('pooled')!;
    expect(Buffer.from(kept.aad).equals(Buffer.from(recordAad('pooled', 1, 'binary-blob', true)))).to.equal(true);
    expect(kept.aad.buffer.byteLength, 'the buffer behind the kept AAD').to.equal(kept.aad.length);
  });

  it('detects a whole record copied under another name as INTEGRITY (the backend sees the label mismatch)', async () => {
    await ks.store('a', utf8('a'), { type: 'binary-blob', exportable: true });
    await ks.store('b', utf8('b'), { type: 'binary-blob', exportable: true });
    await tamper(async (db) => db.put(key('b', 1), (await db.get(key('a', 1)))!));
    await rejects(ks.fetch('b'), 'INTEGRITY');
  });

  it('detects a backend answering with another name\'s or another version\'s intact record as INTEGRITY, naming what came back', async () => {
    await ks.store('a', utf8('value of a, version 1'), { type: 'binary-blob', exportable: true });
    await ks.store('a', utf8('value of a, version 2'), { type: 'binary-blob', exportable: true });
    await ks.store('b', utf8('value of b, version 1'), { type: 'binary-blob', exportable: true });
    // fetch asks its backend for nothing but get: this one always hands back the record of `name` version `version`.
    const answering = (name: string, version: number) => new KeyStore({ get: () => backend.get(name, version) } as unknown as KeyBackend, storageKey);
    for (const [asked, version, got, gotVersion] of [['b', 0, 'a', 1], ['b', 1, 'a', 1], ['a', 2, 'a', 1], ['a', 1, 'b', 1]] as const) {
      const e = await rejects(answering(got, gotVersion).fetch(asked, version), 'INTEGRITY');
      expect(e.message, `${asked} ${version}`).to.equal(`"${asked}" version ${version || gotVersion} failed its integrity check (the backend returned "${got}" version ${gotVersion})`);
    }
  });
});
