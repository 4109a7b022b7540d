// Data written by the first key-server and key-client (commit e380c14, with that commit's own
// programs: test/vectors/earlier-versions/e380c14/NOTES.md says how), read by this version as
// README's "Upgrading" says: stores, key databases, policies and the audit log as they are.

import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { decode } from '../../lib/wire/index.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { KeyStore, storageKeyId } from '../../lib/keyservice/keystore.ts';
import { copyOf } from '../support/earlier-versions.ts';
import { run, tempDir } from '../support/helpers.ts';
import { rejects } from '../support/rejects.ts';

/** The last line of the fixture's audit log, as e380c14's key-server logged it at its stop. */
const AUDIT_END = { seq: 11, hash: '6cfdefcdeb2356108710ca71618ea411be36cd84f498ce5e5777a71a93c16e74' };

describe('data written by the first key-server and key-client (e380c14)', function () {
  this.timeout(60_000);
  let tmp: ReturnType<typeof tempDir>;
  let d: string;
  beforeEach(() => {
    tmp = tempDir('earlier-versions-');
    d = copyOf(tmp.dir);
  });
  afterEach(() => tmp.cleanup());

  const sealed = (store: string, measurement: string) => ['--store', join(d, store), '--sealed', '--platform-dir', join(d, 'platform'), '--measurement-file', join(d, measurement)];
  const value = (f: string) => readFileSync(join(d, 'values', f));

  it('verify-audit accepts its audit log and ends where its key-server stopped', async () => {
    const r = await run('key-server', ['verify-audit', join(d, 'ks-data', 'audit.jsonl'), '--json']);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.json()).to.include({ lines: AUDIT_END.seq, lastSeq: AUDIT_END.seq, lastHash: AUDIT_END.hash });
  });

  it('get-item reads the items of its sealed cryptstore byte for byte, every version', async () => {
    const kc = sealed('kc-store', 'kc.measurement');
    for (const [tag, version, file] of [['item/a', '1', 'item-a.v1'], ['item/a', '2', 'item-a.v2'], ['item/a', '0', 'item-a.v2'], ['item/exp', '0', 'item-a.v1'], ['k/multi', '0', 'multi.v3']] as const) {
      const r = await run('cert-utility', ['get-item', ...kc, '--tag', tag, '--version', version, '--out', '-']);
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stdout.equals(value(file)), `${tag} version ${version}`).to.equal(true);
    }
  });

  it('its key database gives every version under the storage key in its store, keeps its deletes and the not-exportable mark', async () => {
    const got = await run('cert-utility', ['get-item', ...sealed('ks-store', 'ks.measurement'), '--tag', 'key-server-storage-key', '--out', '-']);
    expect(got.status, got.stderr).to.equal(0);
    const backend = await LevelBackend.open(join(d, 'ks-data'));
    try {
      const ks = new KeyStore(backend, got.stdout);
      expect((await ks.list('')).map((i) => [i.name, i.version, i.exportable])).to.deep.equal([['k/half', 2, true], ['k/multi', 3, true], ['k/secret', 1, false]]);
      for (const v of [1, 2, 3]) expect(Buffer.from((await ks.release('k/multi', v)).value).equals(value(`multi.v${v}`))).to.equal(true);
      expect(Buffer.from((await ks.release('k/half', 0)).value).equals(value('half.v2'))).to.equal(true);
      await rejects(ks.fetch('k/half', 1), 'NOT_FOUND');
      await rejects(ks.fetch('k/gone'), 'NOT_FOUND');
      await rejects(ks.release('k/secret'), 'NOT_EXPORTABLE');
      expect(Buffer.from((await ks.fetch('k/secret')).value).equals(value('secret.v1'))).to.equal(true);
      // Versions are never given twice: a deleted name goes on from its last version.
      expect((await ks.store('k/gone', Buffer.from('again'), { type: 'binary-blob', exportable: true })).version).to.equal(2);
    } finally {
      await backend.close();
    }
  });

  it('print-policy reads the policy its make-policy signed', async () => {
    const r = await run('cert-utility', ['print-policy', '--policy', join(d, 'policy.bin'), '--policy-cert', join(d, 'policy-cert.pem'), '--json']);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.out).to.include(readFileSync(join(d, 'kc.measurement')).toString('hex'));
  });
});

// Going back: e380c14's programs read the stores and key databases this version writes (README
// "Upgrading"; checked with them by hand, a git worktree of e380c14 on data this version made, as
// test/vectors/earlier-versions/e380c14/NOTES.md says). What they rely on is pinned here: the
// format each first checks, which they refuse when it is another, and keys only where they read
// them as they expect (they read by key range: e!, h! and r!, other keys beginning with !).
describe('data this version writes, as e380c14\'s programs read it', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir('going-back-');
  });
  afterEach(() => tmp.cleanup());

  /** Every key of the LevelDB database in `dir`, with its value. */
  const entries = async (dir: string): Promise<[string, Uint8Array][]> => {
    const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
    try {
      return await db.iterator().all();
    } finally {
      await db.close();
    }
  };
  /** A key e380c14 reads as an item, a record or a high-water mark: a name, then for a version "\0" and 8 hex digits. */
  const versionKey = (prefix: string) => new RegExp(`^${prefix}[^\\x00-\\x1f]+\\x00[0-9a-f]{8}$`);
  const markKey = (prefix: string) => new RegExp(`^${prefix}[^\\x00-\\x1f]+$`);

  it('a cryptstore holds format 1 in !meta, and items and marks under e! and h! as e380c14 names them', async () => {
    const dir = join(tmp.dir, 'store');
    const key = new Uint8Array(32).fill(7);
    const store = await Cryptstore.create(dir, new KeyFileProtector(key));
    for (const tag of ['a', 'a', 'caf\u00e9', 'gone', 'half', 'half']) await store.put(tag, Buffer.from(tag), { exportable: tag === 'a' });
    await store.delete('gone');
    await store.delete('half', 2);
    await store.close();
    const all = await entries(dir);
    const meta = all.find(([k]) => k === '!meta');
    expect(decode<{ formatVersion?: number }>('cryptstore_metadata', meta![1]).formatVersion).to.equal(1);
    const others = all.map(([k]) => k).filter((k) => k !== '!meta' && !versionKey('e!').test(k) && !markKey('h!').test(k));
    expect(others).to.deep.equal([]);
  });

  it('a key database holds e380c14\'s !format mark, records and marks under r! and h! as it names them, and its own keys only under !', async () => {
    const dir = join(tmp.dir, 'data');
    const storageKey = new Uint8Array(32).fill(9);
    const backend = await LevelBackend.open(dir);
    try {
      await backend.bindStorageKey(storageKeyId(storageKey));
      const ks = new KeyStore(backend, storageKey);
      for (const name of ['k/multi', 'k/multi', 'k/caf\u00e9', 'k/gone', 'k/half', 'k/half']) await ks.store(name, Buffer.from(name), { type: 'binary-blob', exportable: name !== 'k/multi' });
      await ks.delete('k/gone');
      await ks.delete('k/half', 1);
    } finally {
      await backend.close();
    }
    const all = await entries(dir);
    expect(Buffer.from(all.find(([k]) => k === '!format')![1]).toString('utf8')).to.equal('certifier-keys key-server level backend, format 1');
    const others = all.map(([k]) => k).filter((k) => !k.startsWith('!') && !versionKey('r!').test(k) && !markKey('h!').test(k));
    expect(others).to.deep.equal([]);
    // The keys e380c14 does not know sort before the ranges it reads.
    expect(all.map(([k]) => k).filter((k) => k.startsWith('!'))).to.have.members(['!format', '!created', '!storage-key-id']);
  });
});
